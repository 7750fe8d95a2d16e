"""RFC 4028 session refreshes through the gateway: SIPp refreshes an answered
call with a re-INVITE carrying the same SDP and then an UPDATE without SDP.
Both are answered 200 by the gateway on its own (RFC 3261 §14.2: a re-INVITE
that changes nothing keeps the session; RFC 3311 §5.2: an UPDATE without an
offer is answered without one), the re-INVITE's 200 carries the SDP the
gateway answered with at the start (RFC 3264 §8: an unchanged session keeps
its o= version), the XMPP user sees nothing of it, and the call then ends as
usual."""

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, call_sip, call_xmpp

pytestmark = pytest.mark.gateway



def assert_jingle_seen(juliet, sid, expected):
    """The refresh sent juliet nothing: only the call's own Jingle actions."""
    seen = [st.action for st in juliet.received() if st.sid == sid]
    assert seen == expected, seen


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_rfc4028_sip_to_xmpp_call_survives_reinvite_and_update_refresh(gateway, juliet, sipp,
                                                                       transport):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_refresh_bye", transport, hold_ms=300)
    accept(juliet, init)
    term = juliet.expect("session-terminate", 15, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()

    trace = uac.wait()
    trace.assert_ok()
    oks = trace.find("received", status=200, cseq="INVITE")
    assert len({ok.header("cseq") for ok in oks}) == 2, trace.summary()
    first, refresh = oks[0], [ok for ok in oks if ok.header("cseq").startswith("2 ")][0]
    assert refresh.header("content-type").startswith("application/sdp"), refresh
    assert refresh.sdp == first.sdp, f"a refresh must get the same SDP:\n{first}\n{refresh}"
    assert refresh.header("to") == first.header("to"), "same dialog, same To tag"
    update_ok = trace.one("received", status=200, cseq="UPDATE")
    assert not update_ok.body, f"an UPDATE without an offer gets no answer:\n{update_ok}"
    assert trace.one("received", status=200, cseq="BYE")
    assert_jingle_seen(juliet, init.sid, ["session-initiate", "session-terminate"])

    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["end_reason"] == "success" and row["ended_by"] == "sip", row
    assert row["answered_at"] and row["sip_status"] == 200, row


def test_rfc4028_xmpp_to_sip_call_survives_reinvite_and_update_refresh(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_refresh_send_bye", ring_ms=100,
                        hold_ms=300)
    juliet.expect("session-accept", 10, sid=sid)
    term = juliet.expect("session-terminate", 15, sid=sid)
    assert term.frm == ROMEO_JID
    assert jingle.reason(term.xml)[0] == "success", term.text()

    trace = uas.wait()
    trace.assert_ok()
    offer = trace.one("received", method="INVITE")
    refresh = trace.one("received", status=200, cseq="INVITE")
    assert refresh.header("content-type").startswith("application/sdp"), refresh
    assert refresh.sdp == offer.sdp, (
        f"the refresh's answer must be the SDP of the gateway's offer, unchanged:\n{offer}\n{refresh}")
    # The 200 answers the callee's request: its To is the gateway's end of the dialog.
    assert refresh.header("to").split("tag=")[1] == offer.header("from").split("tag=")[1]
    update_ok = trace.one("received", status=200, cseq="UPDATE")
    assert not update_ok.body, f"an UPDATE without an offer gets no answer:\n{update_ok}"
    assert trace.one("received", status=200, cseq="BYE")
    assert_jingle_seen(juliet, sid, ["session-info", "session-accept", "session-terminate"])

    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["end_reason"] == "success" and row["ended_by"] == "sip", row
    assert row["answered_at"] and row["sip_status"] == 200, row
