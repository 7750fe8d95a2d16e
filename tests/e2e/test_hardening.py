"""Issue 11 against real peers: stanzas over the limits from an ordinary user
through Prosody at its default limits, a store on a full disk, Prosody
restarted mid-call, a SIP callee that never answers, and kill -9 while calls
ring. Each ends with the gateway up and a normal call completing."""

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import jingle
from harness.calls import (ROMEO_JID, accept, assert_iq_error, assert_result, call_sip,
                           call_xmpp, new_sid, quick_call_to_sip)
from harness.gateway import Gateway
from harness.net import HOST
from harness.prosody import COMPONENT, DOMAIN, PASSWORD, Prosody
from harness.xmpp_client import JingleClient

pytestmark = pytest.mark.gateway

# Prosody 0.12's default c2s_stanza_size_limit: larger stanzas never reach
# the component (Prosody closes the sender's stream).
PROSODY_C2S_LIMIT = 256 * 1024


def attacker(xloop, prosody, n: int) -> JingleClient:
    return JingleClient(xloop, f"alice@{DOMAIN}/attack{n}", PASSWORD, HOST,
                        prosody.c2s_port).connect()


def rtp_session_initiate(sid: str, initiator: str, payload_types: int) -> str:
    pts = "".join(f"<payload-type id='{i % 128}'/>" for i in range(payload_types))
    return (f"<jingle xmlns='{jingle.NS_JINGLE}' action='session-initiate' sid='{sid}' "
            f"initiator='{initiator}'><content creator='initiator' name='audio'>"
            f"<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{pts}</description>"
            "</content></jingle>")


def component_reconnects(gateway) -> int:
    return gateway.log_text().count("xmpp component offline")


@pytest.mark.timeout(120)
def test_stanzas_over_the_limits_leave_the_gateway_and_its_link_up(
        gateway, juliet, sipp, prosody, xloop):
    cases = [
        # (what, payload, IQ type, reaches the gateway?)
        ("nested 10,000 deep", "<a>" * 10_000 + "</a>" * 10_000, "get", True),
        ("a 200 KiB attribute", f"<q xmlns='urn:test' x='{'y' * 200 * 1024}'/>", "get", True),
        ("a 1 MiB attribute", f"<q xmlns='urn:test' x='{'y' * (1 << 20)}'/>", "get", False),
        ("6,000 payload-types", None, "set", True),
        ("100,000 payload-types", None, "set", False),
        ("200 payload-types (Jingle limit)", None, "set", True),
    ]
    for n, (what, payload, kind, reaches) in enumerate(cases):
        client = attacker(xloop, prosody, n)
        if payload is None:
            count = int(what.split()[0].replace(",", ""))
            payload = rtp_session_initiate(new_sid("big"), client.full_jid, count)
        assert (len(payload) < PROSODY_C2S_LIMIT) == reaches, what
        answer = client.send_iq(ROMEO_JID, payload, kind, timeout=10)
        if reaches:
            # The gateway dropped it unread and said why.
            assert_iq_error(answer, "policy-violation")
        else:
            # Prosody refused it itself: the sender's stream was closed
            # with a stream error.
            assert client.dropped.wait(10), f"{what}: Prosody should close the stream"
            assert "policy-violation" in client.stream_errors, (what, client.stream_errors)
        client.disconnect()

    assert gateway.exit_code() is None, "the gateway is still running"
    assert component_reconnects(gateway) == 0, "the component link never dropped"
    log = gateway.log_text()
    assert "stanza dropped unread" in log and "max_depth" in log
    row = quick_call_to_sip(gateway, juliet, sipp)
    assert (row["end_reason"], row["sip_status"]) == ("success", 200)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"mount tmpfs (the test runs as root): {done.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Fills the file system of `path` to 100 %."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while os.write(fd, b"\0" * size) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.timeout(150)
def test_rows_written_while_the_disk_is_full_all_land_once_it_is_freed(
        tmp_path, prosody, probe, juliet, sipp, attach):
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        gw = Gateway(tmp_path, prosody, db=disk / "gw.db",
                     extra={"store": {"max_backlog": 3}})
        attach("gateway log", gw.log)
        gw.start(probe)
        try:
            placed = [quick_call_to_sip(gw, juliet, sipp)["jingle_sid"]]
            filler = fill(disk)
            # Calls go on while nothing can be written: their rows wait.
            refused_xmpp = refused_sip = 0
            for _ in range(6):
                sid = new_sid("full")
                uas = sipp.uas("uas_answer_send_bye", port=gw.uas_port, ring_ms=50, hold_ms=200)
                answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid))
                if answer is not None and answer.type == "error":
                    # Backlog over its limit: refused before anything starts.
                    assert_iq_error(answer, "resource-constraint")
                    refused_xmpp += 1
                    uas.kill()
                    break
                assert_result(answer, "session-initiate")
                placed.append(sid)
                juliet.expect("session-accept", 10, sid=sid)
                juliet.expect("session-terminate", 10, sid=sid)
                uas.wait().assert_ok()
            assert refused_xmpp == 1, "new calls are refused while the backlog is over 3 rows"
            # A SIP caller meanwhile gets 503 with Retry-After (and a row).
            uac = sipp.uac("uac_expect_error", remote=gw.sip_addr(), code=503)
            res = uac.wait()
            res.assert_ok()
            resp = res.one("received", status=503)
            assert resp.header("retry-after") == "10", str(resp)
            refused_sip = 1
            assert gw.db.exists()
            log = gw.log_text()
            assert log.count("session store: write failed") == 1, "said once, not per row"
            assert "backlog over its limit" in log

            filler.unlink()
            # Everything kept meanwhile lands, and new calls are taken again.
            deadline = time.monotonic() + 20
            while "writable again" not in gw.log_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "writable again" in gw.log_text()
            placed.append(quick_call_to_sip(gw, juliet, sipp)["jingle_sid"])
            rows = gw.rows()
            by_sid = {r["jingle_sid"]: r for r in rows}
            for sid in placed:
                assert by_sid[sid]["state"] == "ended", by_sid.get(sid)
                assert by_sid[sid]["end_reason"] == "success"
            sip_refused = [r for r in rows if r["sip_status"] == 503]
            assert len(sip_refused) == refused_sip
            assert len(rows) == len(placed) + refused_sip, "rows = calls placed"
        finally:
            gw.stop()


def restarted_prosody_setup(tmp_path, xloop, attach):
    server = Prosody().start()
    attach("prosody (own) log", server.log)
    probe = JingleClient(xloop, f"alice@{DOMAIN}/probe", PASSWORD, HOST,
                         server.c2s_port).connect()
    gw = Gateway(tmp_path, server)
    attach("gateway log", gw.log)
    gw.start(probe)
    juliet = JingleClient(xloop, f"juliet@{DOMAIN}/balcony", PASSWORD, HOST,
                          server.c2s_port).connect()
    return server, probe, gw, juliet


@pytest.mark.timeout(120)
def test_prosody_restart_mid_call_the_bye_reaches_the_user_afterwards(tmp_path, xloop, sipp,
                                                                      attach):
    server, probe, gw, juliet = restarted_prosody_setup(tmp_path, xloop, attach)
    clients = [probe, juliet]
    try:
        uac, init = call_xmpp(gw, juliet, sipp, "uac_call_bye", hold_ms=6000)
        accept(juliet, init)
        gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")

        server.stop()
        # The SIP side hangs up during the outage: the row ends at once.
        uac.wait().assert_ok()
        row = gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended",
                          timeout=10)
        assert (row["end_reason"], row["ended_by"]) == ("success", "sip")
        # A new INVITE meanwhile gets 503 with Retry-After, not 408.
        res = sipp.uac("uac_expect_error", remote=gw.sip_addr(), code=503).wait()
        res.assert_ok()
        assert res.one("received", status=503).header("retry-after") == "10"
        # Let the gateway's reconnect backoff grow past a second or two, so
        # that Juliet is back before it is (as a user's client would be).
        deadline = time.monotonic() + 15
        while component_reconnects(gw) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert component_reconnects(gw) >= 4

        server.start(fresh=False)
        juliet = JingleClient(xloop, f"juliet@{DOMAIN}/balcony", PASSWORD, HOST,
                              server.c2s_port).connect()
        clients.append(juliet)
        term = juliet.expect("session-terminate", 20, sid=init.sid)
        assert jingle.reason(term.xml)[0] == "success"
        assert "xmpp component online" in gw.log_text().split("xmpp component offline")[-1]
    finally:
        for c in clients:
            c.disconnect()
        gw.stop()
        server.stop()
        server.cleanup()


@pytest.mark.gateway_config(ring_timeout_secs=2)
def test_ring_timeout_cancels_the_sip_callee(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_ring_expect_cancel", wait_ms=10000)
    juliet.expect("session-info", 10, sid=sid)
    term = juliet.expect("session-terminate", 10, sid=sid)
    assert jingle.reason(term.xml)[0] == "timeout"
    trace = uas.wait()
    trace.assert_ok()
    cancel = trace.one("received", method="CANCEL")
    assert cancel.header("call-id") == f"{sid}@{COMPONENT}"
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["sip_status"] == 487)
    assert (row["state"], row["end_reason"], row["ended_by"]) == ("ended", "timeout", "gateway")


def kill_and_restart(gateway, probe):
    gateway.proc.kill()
    gateway.proc.wait(5)
    gateway.start(probe)


def test_kill_9_while_an_xmpp_call_rings_both_sides_are_told(gateway, juliet, sipp, probe):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_ring_expect_cancel_no_ack", wait_ms=20000)
    juliet.expect("session-info", 10, sid=sid)
    ringing = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ringing"
                               and r["sip_pending"])
    kill_and_restart(gateway, probe)
    # SIP: the INVITE the old process left is CANCELled.
    trace = uas.wait()
    trace.assert_ok()
    assert trace.one("received", method="CANCEL").header("call-id") == f"{sid}@{COMPONENT}"
    # XMPP: Juliet's session is terminated.
    term = juliet.expect("session-terminate", 15, sid=sid)
    assert jingle.reason(term.xml)[0] == "connectivity-error"
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["id"] == ringing["id"]
    assert (row["end_reason"], row["ended_by"]) == ("connectivity-error", "gateway")
    assert "CANCEL to the SIP callee" in row["end_detail"]
    assert "session-terminate to the XMPP user" in row["end_detail"]


def test_kill_9_while_a_sip_call_rings_both_sides_are_told(gateway, juliet, sipp, probe):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_expect_error", code=500)
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)), "ringing")
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ringing"
                     and r["sip_pending"])
    kill_and_restart(gateway, probe)
    # SIP: the caller's INVITE gets a final response (and is ACKed).
    trace = uac.wait()
    trace.assert_ok()
    assert "restarted" in trace.one("received", status=500).first_line
    # XMPP: Juliet's session is terminated.
    term = juliet.expect("session-terminate", 15, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "connectivity-error"
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert (row["sip_status"], row["end_reason"]) == (500, "connectivity-error")
    assert "500 to the SIP caller" in row["end_detail"]
