"""Operations (issue 16, docs/operations.md): /metrics moves with calls,
/ready and OPTIONS follow the XMPP component, and SIGTERM drains: new calls
refused, live ones go on, what is left at the deadline ended on both sides,
exit code 0."""

import signal
import time

import pytest

from harness import jingle
from harness.calls import (ROMEO_JID, accept, assert_iq_error, call_xmpp, new_sid,
                           quick_call_to_sip, quick_call_to_xmpp)
from harness.gateway import Gateway
from harness.net import HOST, sip_options, wait_until
from harness.prosody import DOMAIN, PASSWORD, Prosody
from harness.xmpp_client import JingleClient

pytestmark = pytest.mark.gateway


def metric(values: dict, name: str, **labels) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def test_metrics_move_with_calls_and_health_answers(gateway, juliet, sipp):
    assert gateway.http_get("/health") == (200, "ok\n")
    assert gateway.http_get("/ready") == (200, "ready\n")
    assert gateway.http_get("/nothing")[0] == 404
    before = gateway.metrics()
    assert metric(before, "stox_xmpp_component_connected") == 1.0

    quick_call_to_sip(gateway, juliet, sipp)
    quick_call_to_xmpp(gateway, juliet, sipp)
    # A call refused on the XMPP side: a Jingle error the gateway sends.
    bad = juliet.send_iq(ROMEO_JID, jingle.jingle("session-info", "no-such-session"))
    assert_iq_error(bad, "item-not-found")

    after = gateway.metrics()
    for direction in ("xmpp-to-sip", "sip-to-xmpp"):
        assert metric(after, "stox_calls_started_total", direction=direction) \
            == metric(before, "stox_calls_started_total", direction=direction) + 1, direction
        assert metric(after, "stox_calls_ended_total", direction=direction,
                      outcome="answered", reason="success") >= 1, direction
        assert metric(after, "stox_call_setup_seconds_count", direction=direction) >= 1
    assert metric(after, "stox_sip_responses_sent_total", code="200") >= 2
    assert metric(after, "stox_sip_invite_responses_received_total", code="200") >= 1
    assert metric(after, "stox_jingle_errors_sent_total", condition="item-not-found") >= 1
    assert metric(after, "stox_store_write_seconds_count") >= 1
    assert metric(after, "stox_store_write_failures_total") == 0


@pytest.mark.timeout(120)
def test_ready_and_options_follow_the_xmpp_component(tmp_path, xloop, sipp, attach):
    server = Prosody().start()
    attach("prosody (own) log", server.log)
    probe = JingleClient(xloop, f"alice@{DOMAIN}/probe", PASSWORD, HOST,
                         server.c2s_port).connect()
    gw = Gateway(tmp_path, server)
    attach("gateway log", gw.log)
    gw.start(probe)
    try:
        assert gw.http_get("/ready")[0] == 200
        assert sip_options(gw.sip_addr()).startswith("SIP/2.0 200"), "available: 200"

        server.stop()
        assert wait_until(lambda: gw.http_get("/ready")[0] == 503, 10), gw.http_get("/ready")
        assert "xmpp component not connected" in gw.http_get("/ready")[1]
        assert gw.http_get("/health")[0] == 200, "the process is up all the same"
        refused = sip_options(gw.sip_addr())
        assert refused.startswith("SIP/2.0 503"), refused
        assert "Retry-After: 10" in refused, refused
        res = sipp.uac("uac_expect_error", remote=gw.sip_addr(), code=503).wait()
        res.assert_ok()
        assert metric(gw.metrics(), "stox_xmpp_component_connected") == 0.0

        server.start(fresh=False)
        assert wait_until(lambda: gw.http_get("/ready")[0] == 200, 30), gw.http_get("/ready")
        assert sip_options(gw.sip_addr()).startswith("SIP/2.0 200")
        assert metric(gw.metrics(), "stox_xmpp_reconnects_total") >= 1
    finally:
        gw.stop()
        probe.disconnect()
        server.stop()
        server.cleanup()


@pytest.mark.timeout(60)
@pytest.mark.gateway_config(drain_secs=3)
def test_sigterm_drains_refuses_new_calls_and_ends_the_rest_at_the_deadline(gateway, juliet,
                                                                          sipp):
    # A live SIP -> XMPP call that would last a minute.
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", hold_ms=60000)
    accept(juliet, init)
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")

    gateway.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: gateway.http_get("/ready")[0] == 503, 3)
    assert "draining" in gateway.http_get("/ready")[1]
    # New calls are refused on both sides meanwhile.
    res = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), code=503).wait()
    res.assert_ok()
    refused = juliet.send_iq(ROMEO_JID, jingle.session_initiate(new_sid("drain"),
                                                                juliet.full_jid))
    assert_iq_error(refused, "service-unavailable")
    assert gateway.proc.poll() is None, "the live call keeps the gateway up"

    # At the deadline (3 s) the call is ended on both sides, then it exits 0.
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "gone", term.text()
    assert gateway.proc.wait(10) == 0
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid)
    assert (row["state"], row["ended_by"]) == ("ended", "gateway"), row
    assert row["end_detail"] == "the gateway is shutting down", row
    assert "drain time over" in gateway.log_text()


@pytest.mark.timeout(60)
@pytest.mark.gateway_config(drain_secs=30)
def test_sigterm_exits_as_soon_as_the_last_call_ends(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", hold_ms=1500)
    accept(juliet, init)
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    started = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    # The caller hangs up on its own after 1.5 s: the drain ends there.
    assert gateway.proc.wait(15) == 0
    assert time.monotonic() - started < 10, "not the whole 30 s"
    uac.wait().assert_ok()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid)
    assert (row["state"], row["end_reason"], row["ended_by"]) == ("ended", "success", "sip")


@pytest.mark.timeout(60)
def test_sighup_reloads_the_peers_without_dropping_calls_and_keeps_them_on_a_bad_file(
        gateway, juliet, sipp):
    # A call in progress across the reloads.
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", hold_ms=6000)
    accept(juliet, init)
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")

    # 127.0.0.3 is nobody's: 403.
    sipp.uac("uac_expect_error", remote=gateway.sip_addr(), local_ip="127.0.0.3",
             code=403).wait().assert_ok()

    # It becomes a peer: after SIGHUP its INVITE reaches Juliet.
    gateway.peers = [{"name": "pbx", "sources": ["127.0.0.3/32"]}]
    gateway.write_config()
    gateway.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP: config reloaded" in gateway.log_text(), 5)
    uac2, init2 = call_xmpp(gateway, juliet, sipp, "uac_call_bye", local_ip="127.0.0.3",
                            hold_ms=300)
    accept(juliet, init2)
    uac2.wait().assert_ok()

    # A broken file is refused: the running config stays, and so do calls.
    gateway.config.write_text(gateway.config.read_text() + "\n[sip.nonsense\n")
    gateway.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload refused" in gateway.log_text(), 5)
    uac3, init3 = call_xmpp(gateway, juliet, sipp, "uac_call_bye", local_ip="127.0.0.3",
                            hold_ms=300)
    accept(juliet, init3)
    uac3.wait().assert_ok()

    # The first call went on through all of it.
    uac.wait().assert_ok()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert (row["end_reason"], row["ended_by"]) == ("success", "sip"), row
    m = gateway.metrics()
    assert metric(m, "stox_config_reloads_total", result="applied") == 1
    assert metric(m, "stox_config_reloads_total", result="refused") == 1


@pytest.mark.timeout(60)
def test_retention_deletes_old_ended_rows_and_never_a_live_one(tmp_path, prosody, probe, attach):
    import sqlite3
    db = tmp_path / "retention.db"
    first = Gateway(tmp_path, prosody, db=db)
    attach("gateway log", first.log)
    first.start(probe)
    first.stop()
    old = "2020-01-01T00:00:00.000Z"
    with sqlite3.connect(db) as conn:
        for id_, state, ended in ((1, "ended", old), (2, "active", None), (3, "ended", None)):
            conn.execute(
                "INSERT INTO sessions (id, jingle_sid, sip_call_id, direction, xmpp_jid, sip_uri, "
                "gateway_jid, state, created_at, ended_at, updated_at) VALUES "
                "(?, ?, ?, 'xmpp-to-sip', 'juliet@example.com/x', 'sip:r@example.net', "
                "'r\\\\40example.net@sip.example.com', ?, ?, ?, ?)",
                (id_, f"ret{id_}", f"ret{id_}@x", state, old, ended, old))
        # Row 3 ended just now: younger than the limit.
        conn.execute("UPDATE sessions SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                     "WHERE id = 3")
    gw = Gateway(tmp_path, prosody, db=db, extra={"store": {"retention_days": 1}})
    attach("gateway log (retention)", gw.log)
    gw.start(probe)
    try:
        assert wait_until(lambda: "retention: ended calls older than the limit deleted"
                          in gw.log_text(), 15), gw.log_text()[-2000:]
        ids = {r["id"] for r in gw.rows()}
        assert 1 not in ids, "the old ended row is gone"
        assert {3}.issubset(ids), "an ended row younger than the limit stays"
        # Row 2 was live: the restart ended it (Core::recover), it stays.
        assert 2 in ids
        assert metric(gw.metrics(), "stox_store_rows_pruned_total") == 1
    finally:
        gw.stop()
