"""The XMPP side's liveness through the gateway (issue 13), against SIPp and
slixmpp clients on Prosody: an XMPP user who vanishes mid-call (its client
gone without a session-terminate) is found out by the gateway's XEP-0199
ping — Prosody answers it service-unavailable — and the SIP side gets a BYE
with a Reason within the configured time; a call that reaches the longest
duration configured is ended on both sides."""

import time

import pytest

from harness import jingle
from harness.calls import accept, call_xmpp

pytestmark = pytest.mark.gateway


@pytest.mark.gateway_config(extra={"calls": {"peer_ping_secs": 1}})
def test_xep0199_an_xmpp_user_who_vanishes_is_hung_up_on(gateway, juliet_phone, sipp):
    uac = sipp.uac("uac_call_wait_bye", remote=gateway.sip_addr(),
                   ruri="sip:juliet@example.com;gr=phone", wait_ms=10000)
    init = juliet_phone.expect("session-initiate", 10)
    accept(juliet_phone, init)
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    gone = time.monotonic()
    juliet_phone.disconnect()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended",
                           timeout=10)
    took = time.monotonic() - gone
    assert took <= 4.0, f"BYE {took:.1f} s after the client vanished (ping every 1 s)"
    assert row["ended_by"] == "gateway" and row["end_reason"] == "connectivity-error", row
    assert "is gone" in (row["end_detail"] or ""), row
    trace = uac.wait()
    trace.assert_ok()
    bye = trace.one("received", method="BYE")
    assert (bye.header("reason") or "").startswith("SIP;cause=480"), bye


@pytest.mark.gateway_config(extra={"calls": {"max_duration_secs": 2}})
def test_the_longest_call_duration_ends_the_call_on_both_sides(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_wait_bye", wait_ms=10000)
    accept(juliet, init)
    answered = time.monotonic()
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert 1.5 <= time.monotonic() - answered <= 4.0
    assert jingle.reason(term.xml)[0] == "expired", term.text()
    trace = uac.wait()
    trace.assert_ok()
    assert "maximum duration" in (trace.one("received", method="BYE").header("reason") or "")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["end_reason"] == "expired" and row["ended_by"] == "gateway", row
