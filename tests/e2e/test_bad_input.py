"""Bad input on both sides: each gets the contracted answer, and the next
valid call still works."""

import pytest

from harness import garbage, jingle
from harness.calls import (ROMEO_JID, assert_iq_error, assert_result, call_sip, new_sid,
                           quick_call_to_sip, quick_call_to_xmpp)

pytestmark = pytest.mark.gateway

AUDIO = jingle.content(jingle.rtp_description(), jingle.raw_udp("127.0.0.1", 40000))


def test_jingle_without_sid(gateway, juliet, sipp):
    payload = jingle.jingle("session-initiate", None, AUDIO, initiator=juliet.full_jid)
    assert_iq_error(juliet.send_iq(ROMEO_JID, payload), "bad-request")
    assert gateway.rows() == []
    log = gateway.log_text()
    assert "IQ refused" in log and "condition=bad-request" in log, "a log line says why"
    quick_call_to_sip(gateway, juliet, sipp)


def test_unknown_action(gateway, juliet, sipp):
    payload = jingle.jingle("session-dance", new_sid(), AUDIO, initiator=juliet.full_jid)
    assert_iq_error(juliet.send_iq(ROMEO_JID, payload), "bad-request")
    quick_call_to_sip(gateway, juliet, sipp)


@pytest.mark.parametrize("build", [
    lambda sid, me: jingle.session_terminate(sid),
    lambda sid, me: jingle.ringing(sid),
    lambda sid, me: jingle.session_accept(sid, me),
], ids=["session-terminate", "session-info", "session-accept"])
def test_action_for_unknown_sid(gateway, juliet, sipp, build):
    answer = juliet.send_iq(ROMEO_JID, build(new_sid("nobody"), juliet.full_jid))
    assert_iq_error(answer, "item-not-found", "unknown-session")
    quick_call_to_sip(gateway, juliet, sipp)


def test_out_of_order_actions(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_ring_expect_cancel")
    juliet.expect("session-info", 10, sid=sid)

    # The initiator accepting its own call, and a second initiate with the same sid.
    answer = juliet.send_iq(ROMEO_JID, jingle.session_accept(sid, juliet.full_jid))
    assert_iq_error(answer, "unexpected-request", "out-of-order")
    answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid))
    assert_iq_error(answer, "unexpected-request", "out-of-order")
    assert len([r for r in gateway.rows() if r["jingle_sid"] == sid]) == 1

    # The call itself is unharmed: hanging up still CANCELs it.
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid, "cancel")))
    uas.wait().assert_ok()
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                     and r["sip_status"] == 487)
    quick_call_to_sip(gateway, juliet, sipp)


def test_non_rtp_application_is_refused(gateway, juliet, sipp):
    file_offer = jingle.content(
        f"<description xmlns='{jingle.NS_FILE_TRANSFER}'><file><name>a.txt</name>"
        "<size>10</size></file></description>",
        "<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='ibb1'/>",
        name="file")
    sid = new_sid("ft")
    answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid,
                                                               contents=file_offer))
    assert_result(answer, "session-initiate (file transfer)")
    term = juliet.expect("session-terminate", 10, sid=sid)
    assert jingle.reason(term.xml)[0] == "unsupported-applications", term.text()
    quick_call_to_sip(gateway, juliet, sipp)


@pytest.mark.parametrize("where", ["udp", "tcp", "ws"])
def test_garbage_on_sip_ports(gateway, juliet, sipp, where):
    if where == "ws":
        garbage.ws(gateway.ws_port)
    else:
        getattr(garbage, where)(gateway.sip_port)
    assert gateway.exit_code() is None, "the gateway died on garbage"
    row = quick_call_to_xmpp(gateway, juliet, sipp, "tcp" if where == "tcp" else "udp")
    assert row["end_reason"] == "success"
    quick_call_to_sip(gateway, juliet, sipp)
    assert gateway.exit_code() is None


def test_unmappable_sdp_gets_488(gateway, juliet, sipp):
    trace = sipp.uac("uac_bad_sdp", remote=gateway.sip_addr()).wait()
    trace.assert_ok()
    assert trace.one("received", status=488)
    juliet.expect_nothing("session-initiate", within=0.3)
    quick_call_to_xmpp(gateway, juliet, sipp)
