"""A gateway killed with SIGKILL mid-call: the row it left live is closed
honestly at the next start (SIP dialog state is not resumable yet), and the
restarted gateway takes calls on the same database."""

import pytest

from harness.calls import call_sip, quick_call_to_sip

pytestmark = pytest.mark.gateway


def test_kill_9_mid_call_then_restart(gateway, juliet, sipp, probe):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_wait_bye", ring_ms=100)
    juliet.expect("session-accept", 10, sid=sid)
    live = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active")
    assert live["ended_at"] is None

    gateway.proc.kill()            # SIGKILL: no shutdown path runs
    gateway.proc.wait(5)
    rows = gateway.rows()
    assert [r["state"] for r in rows if r["jingle_sid"] == sid] == ["active"], rows

    gateway.start(probe)           # same config, same database
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["id"] == live["id"], "the same row is closed, not a new one"
    assert row["end_reason"] == "connectivity-error", row
    assert row["ended_by"] == "gateway", row
    assert row["answered_at"] == live["answered_at"], row

    # The SIP side of the lost call is orphaned: stop its UAS (it holds the
    # outbound proxy port). New calls get fresh ids after the old ones.
    uas.kill()
    new = quick_call_to_sip(gateway, juliet, sipp)
    assert new["id"] > live["id"], (new, live)
