"""juliet@example.com/balcony (slixmpp) calls sip:romeo@example.net (SIPp UAS)
through the gateway: STOX media §3.3.1 in the XMPP -> SIP direction."""

import pytest

from harness import jingle
from harness.calls import (GATEWAY_DOMAIN, JULIET_SIP, ROMEO_JID, ROMEO_SIP,
                           assert_result, call_sip)

pytestmark = pytest.mark.gateway


def branch(msg) -> str:
    return msg.header("via").split("branch=")[1].split(";")[0]


def check_invite(trace, sid: str, juliet_jid: str):
    invite = trace.one("received", method="INVITE")
    assert invite.uri.startswith(ROMEO_SIP), invite
    assert JULIET_SIP in invite.header("from") and "tag=" in invite.header("from"), invite
    assert invite.header("call-id") == f"{sid}@{GATEWAY_DOMAIN}"
    sdp = invite.sdp
    assert any(line.startswith("o=juliet ") for line in sdp), sdp
    for line in ("m=audio 40000 RTP/AVP 0 8 101", "c=IN IP4 127.0.0.1",
                 "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
                 "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
                 "a=sendrecv", "a=mid:audio"):
        assert line in sdp, f"{line!r} missing from the offer:\n{invite}"
    return invite


def check_ringing_then_accept(gateway, juliet, sid: str):
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid)
    assert row["direction"] == "xmpp-to-sip"
    assert row["sip_call_id"] == f"{sid}@{GATEWAY_DOMAIN}"
    assert row["xmpp_jid"] == juliet.full_jid
    assert ROMEO_SIP in row["sip_uri"]
    assert row["gateway_jid"] == ROMEO_JID
    assert row["state"] in ("pending", "ringing")

    info = juliet.expect("session-info", 10, sid=sid)
    assert info.frm == ROMEO_JID
    assert jingle.has_ringing(info.xml), info.text()
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ringing")

    acc = juliet.expect("session-accept", 10, sid=sid)
    assert acc.frm == ROMEO_JID
    assert acc.jingle.get("responder") == ROMEO_JID, acc.text()
    assert [pt[0] for pt in jingle.payload_types(acc.xml)] == [8, 101], acc.text()
    assert jingle.payload_types(acc.xml)[0][1:] == ("PCMA", 8000)
    # raw-udp component 1 = the answer's c=/m= (RTP), component 2 = RTCP at port + 1.
    assert jingle.candidates(acc.xml) == [("127.0.0.1", 6000), ("127.0.0.1", 6001)], acc.text()
    assert jingle.transports(acc.xml) == [jingle.NS_RAW_UDP]
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active")
    assert row["answered_at"] and row["sip_status"] == 200 and row["ended_at"] is None


def check_ended(gateway, sid: str, **expected) -> dict:
    """Waits for the ended row to carry every expected value: a row is marked
    ended as soon as a side hangs up, and the INVITE's final status (e.g. the
    487 after a CANCEL) may be written a moment later."""
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                           and all(r[k] == v for k, v in expected.items()))
    assert row["ended_at"], row
    return row


def test_answered_call_hung_up_by_sip(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_send_bye", ring_ms=1000, hold_ms=2000)
    check_ringing_then_accept(gateway, juliet, sid)

    term = juliet.expect("session-terminate", 10, sid=sid)
    assert term.frm == ROMEO_JID
    assert jingle.reason(term.xml)[0] == "success", term.text()

    trace = uas.wait()
    trace.assert_ok()
    check_invite(trace, sid, juliet.full_jid)
    assert trace.one("received", method="ACK")
    assert trace.one("received", status=200, cseq="BYE")
    row = check_ended(gateway, sid, end_reason="success", sip_status=200, ended_by="sip")
    assert row["answered_at"]


def test_answered_call_hung_up_by_xmpp(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_wait_bye", ring_ms=1000)
    check_ringing_then_accept(gateway, juliet, sid)

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "session-terminate")
    trace = uas.wait()
    trace.assert_ok()
    check_invite(trace, sid, juliet.full_jid)
    bye = trace.one("received", method="BYE")
    assert bye.header("call-id") == f"{sid}@{GATEWAY_DOMAIN}"
    row = check_ended(gateway, sid, end_reason="success", sip_status=200, ended_by="xmpp")
    assert row["answered_at"]


def test_cancel_before_answer(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_ring_expect_cancel")
    assert jingle.has_ringing(juliet.expect("session-info", 10, sid=sid).xml)
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ringing")

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid, "cancel")),
                  "session-terminate")
    trace = uas.wait()
    trace.assert_ok()
    invite = trace.one("received", method="INVITE")
    cancel = trace.one("received", method="CANCEL")
    assert branch(cancel) == branch(invite), "a CANCEL must carry the INVITE's branch"
    assert trace.one("received", method="ACK")          # for the 487
    assert not trace.find("received", method="BYE")
    row = check_ended(gateway, sid, end_reason="cancel", sip_status=487, ended_by="xmpp")
    assert row["answered_at"] is None


@pytest.mark.parametrize("code,reason,condition", [
    # One status per row of the SIP status -> Jingle reason table (docs/mapping.md).
    (486, "Busy Here", "busy"),
    (600, "Busy Everywhere", "busy"),
    (603, "Decline", "decline"),
    (607, "Unwanted", "decline"),                   # other 6xx
    (404, "Not Found", "gone"),
    (410, "Gone", "gone"),
    (480, "Temporarily Unavailable", "gone"),
    (302, "Moved Temporarily", "gone"),             # 3xx, not followed
    (408, "Request Timeout", "timeout"),
    (403, "Forbidden", "security-error"),
    (488, "Not Acceptable Here", "incompatible-parameters"),
    (415, "Unsupported Media Type", "incompatible-parameters"),
    (606, "Not Acceptable", "incompatible-parameters"),
    (500, "Server Internal Error", "general-error"),
    (503, "Service Unavailable", "general-error"),
    (420, "Bad Extension", "general-error"),        # other 4xx
])
def test_final_error_maps_to_reason(gateway, juliet, sipp, code, reason, condition):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_reject", code=code, reason=reason, ring_ms=300)

    term = juliet.expect("session-terminate", 10, sid=sid)
    assert term.frm == ROMEO_JID
    cond, sip_status, text = jingle.reason(term.xml)
    assert (cond, sip_status) == (condition, code), term.text()
    assert text, f"the reason should carry a <text>: {term.text()}"

    trace = uas.wait()
    trace.assert_ok()
    assert trace.one("received", method="ACK")          # the gateway ACKs the error
    juliet.expect_nothing("session-accept", within=0.2)
    row = check_ended(gateway, sid, end_reason=condition, sip_status=code, ended_by="sip")
    assert row["answered_at"] is None
