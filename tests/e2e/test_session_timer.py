"""RFC 4028 session timers through the gateway, against SIPp and a slixmpp
client on Prosody. The gateway's timers are shortened by its config
(Session-Expires 4 s, Min-SE 2 s; RFC 4028's floor of 90 s is for real
deployments), the rules are what is tested:

- a SIP trunk that refreshes (refresher=uac) does so three times (re-INVITE,
  UPDATE, re-INVITE), each answered 200 with Session-Expires, and the call
  lives until its BYE;
- a trunk that asks to refresh and then stops gets a BYE with a Reason
  header, and the XMPP user a session-terminate <expired/>, on time;
- a trunk that makes the gateway refresh (200 with refresher=uac and
  Require: timer toward the gateway's INVITE) gets the gateway's
  refreshing re-INVITEs;
- a Session-Expires below Min-SE gets 422 with Min-SE."""

import time

import pytest

from harness import jingle
from harness.calls import accept, call_sip, call_xmpp

pytestmark = pytest.mark.gateway

TIMERS = {"sip": {"session_expires_secs": 4, "min_se_secs": 2}}


@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc4028_a_refreshing_trunk_keeps_the_call_up(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_session_timer")
    accept(juliet, init)
    term = juliet.expect("session-terminate", 20, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    trace = uac.wait()
    trace.assert_ok()
    oks = trace.find("received", status=200)
    refreshes = [ok for ok in oks if ok.cseq_method in ("INVITE", "UPDATE")]
    assert len(refreshes) == 4, trace.summary()
    for ok in refreshes:
        assert ok.header("session-expires") == "4;refresher=uac", ok
        assert "timer" in (ok.header("require") or ""), ok
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["ended_by"] == "sip" and row["end_reason"] == "success", row


@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc4028_10_a_trunk_that_stops_refreshing_is_hung_up_on_time(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_timer_no_refresh", wait_ms=10000)
    accept(juliet, init)
    answered = time.monotonic()
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    took = time.monotonic() - answered
    assert jingle.reason(term.xml)[0] == "expired", term.text()
    # 4 s minus a third of it (RFC 4028 §10): about 3 s after the answer.
    assert 2.0 <= took <= 5.0, took
    uac.wait().assert_ok()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["end_reason"] == "expired" and row["ended_by"] == "gateway", row
    assert "RFC 4028" in (row["end_detail"] or ""), row


@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc4028_10_the_gateway_refreshes_when_the_trunk_makes_it_the_refresher(
        gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_timer_caller_refreshes",
                        wait_ms=10000)
    juliet.expect("session-accept", 10, sid=sid)
    term = juliet.expect("session-terminate", 20, sid=sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    trace = uas.wait()
    trace.assert_ok()
    invites = trace.find("received", method="INVITE")
    assert len(invites) == 3, trace.summary()
    assert invites[0].header("session-expires") == "4", invites[0]
    assert "timer" in invites[0].header("supported"), invites[0]
    for refresh in invites[1:]:
        assert refresh.header("session-expires") == "4;refresher=uac", refresh
        assert refresh.sdp == invites[0].sdp, "a refresh offers the same SDP (RFC 3264 §8)"


@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc4028_8_1_too_short_an_interval_gets_422(gateway, juliet, sipp):
    uac = sipp.uac("uac_session_interval_too_small", remote=gateway.sip_addr())
    trace = uac.wait()
    trace.assert_ok()
    refused = trace.one("received", status=422)
    assert refused.header("min-se") == "2", refused
    juliet.expect_nothing("session-initiate", 0.5)
