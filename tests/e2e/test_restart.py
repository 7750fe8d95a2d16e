"""The gateway killed with SIGKILL mid-call and restarted on the same
database: answered calls are resumed (their SIP dialogs restored from the
store) and can still be ended from either side; calls that were not answered
yet are closed honestly; new calls work."""

import time

import pytest

from harness import jingle
from harness.calls import (ROMEO_JID, accept, assert_result, call_sip, call_xmpp,
                           quick_call_to_sip)

pytestmark = pytest.mark.gateway


def kill_and_restart(gateway, probe):
    gateway.proc.kill()            # SIGKILL: no shutdown path runs
    gateway.proc.wait(5)
    gateway.start(probe)           # same config, same database


def test_answered_call_survives_kill_9_and_xmpp_hangs_up(gateway, juliet, sipp, probe):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_wait_bye", ring_ms=100, wait_ms=30000)
    juliet.expect("session-accept", 10, sid=sid)
    live = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active"
                            and r["sip_dialog"])

    kill_and_restart(gateway, probe)
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid)
    assert row["state"] == "active", "the answered call is resumed, not closed"
    log = gateway.log_text()
    assert "resumed" in log
    # bench/run.sh times a restart up to this line (crates/bench/src/run.rs).
    assert "ready: calls of the previous run restored restored=1" in log

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "session-terminate")
    trace = uas.wait()
    trace.assert_ok()
    bye = trace.one("received", method="BYE")
    assert bye.header("call-id") == f"{sid}@sip.example.com", "BYE in the restored dialog"
    ended = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert (ended["id"], ended["end_reason"], ended["ended_by"]) == (live["id"], "success", "xmpp")


def test_answered_call_survives_kill_9_and_sip_hangs_up(gateway, juliet, sipp, probe):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_send_bye", ring_ms=100, hold_ms=6000)
    juliet.expect("session-accept", 10, sid=sid)
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active" and r["sip_dialog"])

    kill_and_restart(gateway, probe)
    term = juliet.expect("session-terminate", 15, sid=sid)   # the UAS's BYE, after the restart
    assert jingle.reason(term.xml)[0] == "success"
    uas.wait().assert_ok()                                     # and the BYE got its 200
    ended = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert (ended["end_reason"], ended["ended_by"]) == ("success", "sip")


def test_unanswered_call_is_closed_and_new_calls_work(gateway, juliet, sipp, probe):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_ring_expect_cancel")
    juliet.expect("session-info", 10, sid=sid)
    ringing = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ringing")

    kill_and_restart(gateway, probe)
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["id"] == ringing["id"], "the same row is closed, not a new one"
    assert (row["end_reason"], row["ended_by"]) == ("connectivity-error", "gateway"), row

    uas.kill()                      # its INVITE transaction died with the old process
    new = quick_call_to_sip(gateway, juliet, sipp)
    assert new["id"] > ringing["id"], (new, ringing)


def test_resumed_call_answers_a_session_refresh_with_its_stored_sdp(gateway, juliet, sipp, probe):
    """RFC 4028 after kill -9: the media session is in the row (local_sdp,
    remote_sdp), so the resumed call answers the callee's re-INVITE
    with the same SDP (RFC 3264 §8: same o= version) and its UPDATE 200."""
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_refresh_send_bye", ring_ms=100,
                        refresh_after_ms=6000, hold_ms=300)
    juliet.expect("session-accept", 10, sid=sid)
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active"
                     and r["sip_dialog"] and r["local_sdp"] and r["remote_sdp"])

    kill_and_restart(gateway, probe)
    term = juliet.expect("session-terminate", 20, sid=sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    trace = uas.wait()
    trace.assert_ok()
    offer = trace.one("received", method="INVITE")
    refresh = trace.one("received", status=200, cseq="INVITE")
    assert refresh.sdp == offer.sdp, f"the resumed call's answer changed:\n{offer}\n{refresh}"
    assert trace.one("received", status=200, cseq="UPDATE")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert (row["end_reason"], row["ended_by"]) == ("success", "sip"), row


@pytest.mark.gateway_config(extra={"sip": {"session_expires_secs": 4, "min_se_secs": 2}})
def test_rfc4028_a_session_timer_survives_kill_9(gateway, juliet, sipp, probe):
    """The timer is stored with the dialog: a trunk that asked to refresh
    and stops after the restart is still hung up on, on time."""
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_timer_no_refresh", wait_ms=20000)
    accept(juliet, init)
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active"
                     and "session-timer: 4;refresher=peer" in (r["sip_dialog"] or ""))
    kill_and_restart(gateway, probe)
    restarted = time.monotonic()
    term = juliet.expect("session-terminate", 15, sid=init.sid)
    took = time.monotonic() - restarted
    assert jingle.reason(term.xml)[0] == "expired", term.text()
    assert took <= 5.0, f"ended {took:.1f} s after the restart (interval 4 s)"
    trace = uac.wait()
    trace.assert_ok()
    bye = trace.one("received", method="BYE")
    assert (bye.header("reason") or "").startswith("SIP;cause=408"), bye
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["end_reason"] == "expired", row
