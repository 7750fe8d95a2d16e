"""A SIPp UAC (sip:romeo@example.net) calls sip:juliet@example.com;gr=balcony
through the gateway, and juliet (slixmpp) answers: the SIP -> XMPP direction."""

import pytest

from harness import jingle
from harness.calls import (ROMEO_JID, ROMEO_SIP, accept, assert_result, call_xmpp)
from harness.xmpp_client import Reply

pytestmark = pytest.mark.gateway


def check_initiate(gateway, juliet, init):
    assert init.frm == ROMEO_JID and init.to == juliet.full_jid, init.text()
    assert init.jingle.get("initiator") == ROMEO_JID, init.text()
    assert jingle.payload_types(init.xml) == list(jingle.AUDIO_OFFER), init.text()
    # raw-udp component 1 = c=/m= (RTP), component 2 = RTCP at port + 1 (no a=rtcp, no rtcp-mux).
    assert jingle.candidates(init.xml) == [("127.0.0.1", 7078), ("127.0.0.1", 7079)], init.text()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid)
    assert row["direction"] == "sip-to-xmpp"
    assert row["xmpp_jid"] == juliet.full_jid
    assert ROMEO_SIP in row["sip_uri"]
    assert row["gateway_jid"] == ROMEO_JID
    assert row["sip_call_id"].split("@")[0] == init.sid
    assert row["state"] == "pending", row


def check_answered(gateway, init):
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    assert row["answered_at"] and row["sip_status"] == 200 and row["ended_at"] is None, row


def check_trace(trace, init):
    trace.assert_ok()
    invite = trace.one("sent", method="INVITE")
    assert invite.header("call-id").split("@")[0] == init.sid
    for status in (100, 180):
        assert trace.one("received", status=status)
    ok = trace.one("received", status=200, cseq="INVITE")
    assert ok.header("content-type").startswith("application/sdp")
    for line in ("m=audio 41000 RTP/AVP 8 101", "c=IN IP4 127.0.0.1", "a=rtpmap:8 PCMA/8000"):
        assert line in ok.sdp, f"{line!r} missing from the answer:\n{ok}"
    assert "tag=" in ok.header("to")


def ended(gateway, sid, **expected) -> dict:
    """Waits for the ended row to carry every expected value (the row is
    written by the gateway's store task, a moment after the SIP exchange)."""
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                           and all(r[k] == v for k, v in expected.items()))
    assert row["ended_at"]
    return row


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_answered_call_hung_up_by_sip(gateway, juliet, sipp, transport):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", transport, hold_ms=2000)
    check_initiate(gateway, juliet, init)
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)))
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ringing")
    assert_result(juliet.send_iq(init.frm, jingle.session_accept(init.sid, juliet.full_jid)))
    check_answered(gateway, init)

    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    trace = uac.wait()
    check_trace(trace, init)
    assert trace.one("received", status=200, cseq="BYE")
    ended(gateway, init.sid, end_reason="success", sip_status=200, ended_by="sip")


def test_answered_call_hung_up_by_xmpp(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_wait_bye")
    check_initiate(gateway, juliet, init)
    accept(juliet, init)
    check_answered(gateway, init)

    assert_result(juliet.send_iq(init.frm, jingle.session_terminate(init.sid)))
    trace = uac.wait()
    check_trace(trace, init)
    assert trace.one("received", method="BYE")
    ended(gateway, init.sid, end_reason="success", sip_status=200, ended_by="xmpp")


def test_cancel_before_answer(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_cancel", hold_ms=1500)
    check_initiate(gateway, juliet, init)
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)))
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ringing")

    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "cancel", term.text()
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=200, cseq="CANCEL")
    assert trace.one("received", status=487)
    row = ended(gateway, init.sid, end_reason="cancel", sip_status=487, ended_by="sip")
    assert row["answered_at"] is None


# One reason per row of the Jingle reason -> SIP status table (docs/mapping.md).
@pytest.mark.parametrize("reason,code", [
    ("busy", 486), ("alternative-session", 486), ("decline", 603), ("cancel", 487),
    ("timeout", 408), ("expired", 408), ("gone", 480), ("success", 480),
    ("media-error", 488), ("unsupported-applications", 488), ("failed-transport", 488),
    ("security-error", 403), ("connectivity-error", 503), ("general-error", 500),
])
def test_callee_rejects(gateway, juliet, sipp, reason, code):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_expect_error", code=code)
    check_initiate(gateway, juliet, init)
    assert_result(juliet.send_iq(init.frm, jingle.session_terminate(init.sid, reason)))
    uac.wait().assert_ok()
    row = ended(gateway, init.sid, end_reason=reason, sip_status=code, ended_by="xmpp")
    assert row["answered_at"] is None


@pytest.mark.parametrize("condition,code", [
    ("item-not-found", 404),
    ("service-unavailable", 405),  # to a full JID (RFC 7247: 405 for a full JID, 403 otherwise)
    ("feature-not-implemented", 405),
    ("not-acceptable", 406),
    ("recipient-unavailable", 480),
])
def test_iq_error_on_initiate_maps_to_status(gateway, juliet, sipp, condition, code):
    juliet.replies["session-initiate"] = Reply.error(condition)
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_expect_error", code=code)
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=code)
    row = ended(gateway, init.sid, sip_status=code)
    assert row["answered_at"] is None


@pytest.mark.gateway_config(iq_timeout_ms=2000)
def test_unanswered_initiate_times_out_with_408(gateway, juliet, sipp):
    juliet.replies["session-initiate"] = Reply.none()
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_expect_error", code=408)
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=408)
    row = ended(gateway, init.sid, sip_status=408, end_reason="timeout")
    assert row["answered_at"] is None


@pytest.mark.parametrize("ruri,code", [
    ("sip:juliet@example.org", 404),        # not one of xmpp.domains
])
def test_unroutable_request_uri(gateway, juliet, sipp, ruri, code):
    uac = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), ruri=ruri, code=code)
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=code)
    juliet.expect_nothing("session-initiate", within=0.3)
