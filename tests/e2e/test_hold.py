"""Hold and resume through the gateway, both ways (RFC 3264 §8.4 ⇄ XEP-0167
§7), against SIPp and a slixmpp client on Prosody.

- SIP → XMPP: SIPp holds with a re-INVITE `a=sendonly` and resumes with
  `a=sendrecv`; each gets 200 with the answering direction (recvonly, then
  sendrecv) and the o= version one up, and juliet sees session-info
  `<hold/>` then `<active/>`.
- XMPP → SIP: juliet sends session-info `<hold/>` then `<active/>`; SIPp
  (the callee) gets re-INVITEs with `a=sendonly` then `a=sendrecv`, and the
  row says who holds the call meanwhile."""

import time

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, assert_result, call_sip, call_xmpp

pytestmark = pytest.mark.gateway


def origin_version(sdp_lines: list[str]) -> int:
    return int(next(l for l in sdp_lines if l.startswith("o=")).split()[2])


def info_seen(juliet, sid) -> list[str]:
    return [name for st in juliet.received()
            if st.sid == sid and st.action == "session-info"
            for name in jingle.info_names(st.xml)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc3264_8_4_sip_hold_and_resume_reach_xmpp(gateway, juliet, sipp, transport):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_hold_resume_bye", transport,
                          hold_ms=500)
    accept(juliet, init)
    juliet.expect("session-info", 10, sid=init.sid)
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["hold"] == "sip")
    assert row["state"] == "active", row
    term = juliet.expect("session-terminate", 15, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    assert info_seen(juliet, init.sid) == ["hold", "active"]

    trace = uac.wait()
    trace.assert_ok()
    answers = {ok.header("cseq"): ok.sdp for ok in trace.find("received", status=200,
                                                              cseq="INVITE")}
    first, held, resumed = answers["1 INVITE"], answers["2 INVITE"], answers["3 INVITE"]
    assert "a=recvonly" in held and "a=sendrecv" in resumed, answers
    assert origin_version(held) == origin_version(first) + 1, answers
    assert origin_version(resumed) == origin_version(held) + 1, answers
    # DTMF by SIP INFO is refused (RFC 6086 legacy INFO is not mapped).
    refused = trace.one("received", status=415)
    assert "application/sdp" in (refused.header("accept") or ""), refused
    assert "in-dialog request refused" in gateway.log_text() and "status=415" in gateway.log_text()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["hold"] is None and row["ended_by"] == "sip", row


def test_xep0167_7_xmpp_hold_and_resume_reach_sip_as_re_invites(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_hold_resume")
    juliet.expect("session-accept", 10, sid=sid)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "hold")), "hold")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["hold"] == "xmpp")
    assert "a=sendonly" in row["local_sdp"], row["local_sdp"]
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "active")), "active")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["hold"] is None
                           and "a=sendrecv" in (r["local_sdp"] or ""))
    # Mute is acknowledged and changes nothing on the SIP side.
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "mute")), "mute")
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")

    trace = uas.wait()
    trace.assert_ok()
    invites = trace.find("received", method="INVITE")
    assert len(invites) == 3, trace.summary()
    versions = [origin_version(i.sdp) for i in invites]
    assert versions[1] == versions[0] + 1 and versions[2] == versions[1] + 1, versions
    assert [i.header("cseq") for i in invites][1:] == ["2 INVITE", "3 INVITE"], trace.summary()
    acks = trace.find("received", method="ACK")
    assert len(acks) == 3, "each 2xx is ACKed: " + trace.summary()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["ended_by"] == "xmpp" and row["end_reason"] == "success", row


def test_xep0166_7_2_4_content_modify_senders_reach_sip_as_re_invites(gateway, juliet, sipp):
    # The same SIPp UAS: it wants sendonly, then sendrecv, in the re-INVITEs.
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_hold_resume")
    juliet.expect("session-accept", 10, sid=sid)
    modify = lambda senders: jingle.jingle(
        "content-modify", sid, f"<content creator='initiator' name='audio' senders='{senders}'/>")
    assert_result(juliet.send_iq(ROMEO_JID, modify("initiator")), "content-modify initiator")
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and "a=sendonly" in (r["local_sdp"] or ""))
    assert_result(juliet.send_iq(ROMEO_JID, modify("both")), "content-modify both")
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and "a=sendrecv" in (r["local_sdp"] or ""))
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")
    trace = uas.wait()
    trace.assert_ok()
    invites = trace.find("received", method="INVITE")
    assert len(invites) == 3, trace.summary()
    assert "a=sendonly" in invites[1].sdp and "a=sendrecv" in invites[2].sdp, trace.summary()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["hold"] is None, "content-modify is not a hold"


def test_rfc3261_14_1_a_hold_refused_491_is_offered_again_and_succeeds(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_hold_glare")
    juliet.expect("session-accept", 10, sid=sid)
    asked = time.monotonic()
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_info(sid, "hold")), "hold")
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["hold"] == "xmpp", timeout=10)
    took = time.monotonic() - asked
    # We placed the call (own its Call-ID): the retry waits 2.1-4 s.
    assert 2.0 <= took <= 6.0, took
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")
    trace = uas.wait()
    trace.assert_ok()
    invites = trace.find("received", method="INVITE")
    assert len(invites) == 3, trace.summary()
    assert invites[1].sdp == invites[2].sdp, "the same offer again"
    assert [i.header("cseq") for i in invites[1:]] == ["2 INVITE", "3 INVITE"]
