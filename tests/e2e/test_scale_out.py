"""Several gateways on one store behind Kamailio's dispatcher (issue 16,
docs/decisions/0010-scale-out.md): two gateways on one PostgreSQL carry
calls both ways; after a kill -9 of one, new calls go on through the
other, and the killed one restores its own calls when it restarts, none
claimed twice.

The set-up (docs/scale-out-test.md says more):

* one Prosody of this module's own with two components,
  `sip1.example.com` and `sip2.example.com` (Prosody takes one connection
  per component name), and juliet@example.com/balcony as the XMPP user;
* one private PostgreSQL 15 cluster for the module (harness/postgres.py),
  a fresh database in it for each test;
* per test, gateway 1 (`[xmpp] component = "sip1.example.com"`,
  `[store] instance = 1`) and gateway 2 (`sip2…`, instance 2), each on its
  own SIP port, both with `[store] url` = that database; each trusts
  Kamailio as a `[[sip.peers]]` source;
* per test, a Kamailio 5.6 (harness/kamailio.py) whose dispatcher set 1 is
  the two gateways, probed with OPTIONS every second; SIP callers (SIPp
  or harness/sip_ua.py) send their INVITEs to Kamailio, which
  record-routes, so the BYE of either side goes through it and
  loose-routes to the gateway carrying the call.
* XMPP -> SIP calls leave each gateway straight to its own SIPp UAS (its
  outbound proxy), not through Kamailio: the dispatcher is only the SIP
  front of the gateways; what is tested on that path is that each
  component reaches its own gateway and each row lands in that gateway's
  id range.

A row's id is `instance << 40 | n`: `id >> 40` says which gateway wrote it.

STOX_E2E_SCALE_OUT_STORE=sqlite runs the same flows with each gateway on
its own SQLite file and no `instance` (a way to tell a dispatcher problem
from a store problem); the checks of id ranges are skipped then."""

import json
import os
import re
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import jingle
from harness.calls import accept, assert_result, new_sid
from harness.gateway import BINARY, Gateway
from harness.kamailio import Kamailio
from harness.net import HOST, free_port, sip_options_status, wait_until
from harness.postgres import Postgres
from harness.prosody import DOMAIN, PASSWORD, Prosody
from harness.sip_ua import SipUa
from harness.xmpp_client import JingleClient

pytestmark = pytest.mark.gateway

COMPONENTS = {1: "sip1.example.com", 2: "sip2.example.com"}    # instance -> component
SPARE = "sip3.example.com"      # a third component, for a gateway that must not start
ID_BITS = 40
ROMEO_SIP = "sip:romeo@example.net"
JULIET_SIP = "sip:juliet@example.com;gr=balcony"
SQLITE = os.environ.get("STOX_E2E_SCALE_OUT_STORE") == "sqlite"


def romeo_jid(instance: int) -> str:
    """sip:romeo@example.net as a JID of this gateway's component."""
    return f"romeo\\40example.net@{COMPONENTS[instance]}"


def instance_of(jid: str) -> int:
    """The gateway (instance) whose component a JID belongs to."""
    domain = jid.rpartition("@")[2].split("/")[0]
    by_domain = {c: n for n, c in COMPONENTS.items()}
    assert domain in by_domain, f"{jid} is not on a gateway's component"
    return by_domain[domain]


def assert_range(row: dict, instance: int):
    """The row was written by this instance: id >> 40 == instance."""
    if not SQLITE:
        assert row["id"] >> ID_BITS == instance, \
            f"row {row['id']} (instance {row['id'] >> ID_BITS}) is not instance {instance}'s: {row}"


# --- module-wide servers ------------------------------------------------------------

@pytest.fixture(scope="module")
def xmpp_server():
    server = Prosody(components=(*COMPONENTS.values(), SPARE)).start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture(scope="module")
def postgres():
    if SQLITE:
        yield None
        return
    server = Postgres().start()
    yield server
    server.stop()
    server.cleanup()


def _client(xloop, server, user, resource) -> JingleClient:
    return JingleClient(xloop, f"{user}@{DOMAIN}/{resource}", PASSWORD,
                        HOST, server.c2s_port).connect()


@pytest.fixture(scope="module")
def alice_probe(xloop, xmpp_server):
    """alice@example.com/probe: pings each component until its gateway is up."""
    client = _client(xloop, xmpp_server, "alice", "probe")
    yield client
    client.disconnect()


@pytest.fixture
def juliet(xloop, xmpp_server, attach):
    attach("prosody log", xmpp_server.log)
    client = _client(xloop, xmpp_server, "juliet", "balcony")
    yield client
    client.disconnect()


# --- the site: two gateways, one store, Kamailio in front -----------------------------

class Site:
    def __init__(self, gateways: dict[int, Gateway], kamailio: Kamailio, postgres, database):
        self.gateways = gateways
        self.kamailio = kamailio
        self.postgres = postgres
        self.database = database

    def query(self, sql: str) -> list[tuple]:
        return self.postgres.query(sql, self.database)

    def carrier(self, call_id: str) -> int:
        """The instance Kamailio sent this call's INVITE to (last)."""
        addr = self.kamailio.gateway_of(call_id)
        for n, gw in self.gateways.items():
            if gw.sip_addr() == addr:
                return n
        raise AssertionError(f"Kamailio did not dispatch {call_id} to a gateway: "
                             f"{self.kamailio.dispatched()}")


def _check_store_config(gw: Gateway):
    """The gateway accepts [store] url and instance, or the test fails saying so."""
    gw.write_config()
    done = subprocess.run([str(BINARY), "--config", str(gw.config), "check-config"],
                          capture_output=True, text=True, timeout=30, cwd=gw.dir)
    if done.returncode != 0:
        text = (done.stdout + done.stderr).strip()
        hint = ""
        if "unknown field" in text and ("`url`" in text or "`instance`" in text):
            hint = ("this build of stox-gateway has no shared PostgreSQL store yet "
                    "([store] url and instance, decision 0010); ")
        pytest.fail(f"{hint}check-config refused the scale-out config of {gw.component}: {text}",
                    pytrace=False)


@pytest.fixture
def site(request, tmp_path, xmpp_server, postgres, alice_probe, attach):
    # gateway_config(**options): more Gateway options for both gateways.
    marker = request.node.get_closest_marker("gateway_config")
    more = marker.kwargs if marker else {}
    database = None
    if not SQLITE:
        database = f"scale_{uuid.uuid4().hex[:8]}"
        postgres.create_database(database)
    gateways = {}
    kamailio = None
    try:
        for n, component in COMPONENTS.items():
            workdir = tmp_path / f"gw{n}"
            workdir.mkdir()
            options = dict(component=component,
                           peers=[{"name": "kamailio", "sources": [f"{HOST}/32"]}], **more)
            if not SQLITE:
                options.update(postgres=postgres, pg_database=database, instance=n)
            gw = gateways[n] = Gateway(workdir, xmpp_server, **options)
            attach(f"gateway {n} ({component}) log", gw.log)
            _check_store_config(gw)
        for gw in gateways.values():
            gw.start(alice_probe)
        kamailio = Kamailio(tmp_path, [gw.sip_addr() for gw in gateways.values()])
        attach("kamailio log", kamailio.log)
        kamailio.start()
        for gw in gateways.values():
            kamailio.wait_state(gw.sip_addr(), active=True, timeout=5)
        yield Site(gateways, kamailio, postgres, database)
    finally:
        if kamailio is not None:
            kamailio.stop()
        for gw in gateways.values():
            gw.stop()


@pytest.fixture
def callers():
    """callers(name): a new SIP UA (harness/sip_ua.py) calling from
    127.0.0.1, closed after the test."""
    opened = []

    def new(name: str) -> SipUa:
        ua = SipUa(media="rtp", name=name)
        opened.append(ua)
        return ua

    yield new
    with ThreadPoolExecutor(max(1, len(opened))) as pool:    # each close takes ~0.2 s
        list(pool.map(SipUa.close, opened))


def call_through_kamailio(site, juliet, ua: SipUa) -> tuple:
    """`ua` calls juliet/balcony through Kamailio and juliet answers;
    returns (the session-initiate, the gateway's instance)."""
    ua.invite(JULIET_SIP, HOST, site.kamailio.port, from_user=ROMEO_SIP)
    init = juliet.expect("session-initiate", 15)
    accept(juliet, init)
    ua.wait_answered(10)
    return init, instance_of(init.frm)


def hang_up(juliet, ua: SipUa, init):
    """The SIP caller hangs up (through Kamailio); juliet hears it."""
    assert ua.bye().status == 200, ua.summary()
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()


def ended_lines(log: str, sid: str) -> int:
    """How many times a gateway log says this call ended."""
    return sum(1 for line in log.splitlines()
               if f"sid={sid}" in line and 'state="ended"' in line)


def assert_back_in_the_round_robin(site, juliet, callers):
    """Gateway 1 is back in the round robin: of two new calls, one is its."""
    got = set()
    for i in range(2):
        ua = callers(f"after-restart{i}")
        init, n = call_through_kamailio(site, juliet, ua)
        got.add(n)
        hang_up(juliet, ua, init)
    assert got == {1, 2}, f"after the restart calls went to {got}"


# --- the tests ----------------------------------------------------------------------

def test_sip_calls_through_kamailio_are_spread_over_both_gateways_and_both_id_ranges(
        site, sipp, juliet):
    carried = {1: [], 2: []}
    for i in range(4):
        uac = sipp.uac("uac_call_bye", remote=site.kamailio.addr, hold_ms=200)
        init = juliet.expect("session-initiate", 15)
        n = instance_of(init.frm)
        assert init.frm == romeo_jid(n), init.text()
        accept(juliet, init)
        term = juliet.expect("session-terminate", 10, sid=init.sid)
        assert jingle.reason(term.xml)[0] == "success", term.text()
        trace = uac.wait()
        trace.assert_ok()
        call_id = trace.one("sent", method="INVITE").header("call-id")
        assert site.carrier(call_id) == n, "the component that rang juliet is the gateway " \
                                           "Kamailio sent the INVITE to"
        ok = trace.one("received", status=200, cseq="INVITE")
        assert f"{site.kamailio.addr};lr" in (ok.header("record-route") or ""), \
            f"Kamailio record-routes, so the BYE goes through it:\n{ok}"
        assert trace.one("received", status=200, cseq="BYE")
        gw = site.gateways[n]
        row = gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
        assert (row["direction"], row["end_reason"], row["ended_by"], row["sip_status"]) \
            == ("sip-to-xmpp", "success", "sip", 200), row
        assert row["sip_call_id"] == call_id and row["gateway_jid"] == romeo_jid(n), row
        assert_range(row, n)
        carried[n].append(row["id"])
    assert carried[1] and carried[2], f"round robin over both gateways: {carried}"

    if not SQLITE:
        by_instance = dict(site.query(
            "SELECT id >> 40, count(*) FROM sessions GROUP BY 1 ORDER BY 1"))
        assert by_instance == {1: len(carried[1]), 2: len(carried[2])}, by_instance
        states = site.query("SELECT DISTINCT state, ended_by FROM sessions")
        assert states == [("ended", "sip")], states
        # The views answer on PostgreSQL too, and `stox-gateway sessions`
        # run with either gateway's config reads every instance's calls.
        outcomes = site.query("SELECT id >> 40, outcome FROM call_records ORDER BY id")
        assert sorted(set(outcomes)) == [(1, "answered"), (2, "answered")], outcomes
        gw = site.gateways[1]
        out = subprocess.run([str(BINARY), "--config", str(gw.config), "sessions", "--json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        listed = [json.loads(line) for line in out.stdout.splitlines()]
        assert sorted(r["id"] for r in listed) == sorted(carried[1] + carried[2]), out.stdout
        assert {r["outcome"] for r in listed} == {"answered"}, out.stdout


def test_xmpp_calls_through_each_gateways_component_are_answered_and_ended(site, sipp, juliet):
    for n, gw in site.gateways.items():
        uas = sipp.uas("uas_answer_send_bye", port=gw.uas_port, ring_ms=100, hold_ms=300)
        sid = new_sid(f"x2s{n}")
        assert_result(juliet.send_iq(romeo_jid(n), jingle.session_initiate(sid, juliet.full_jid)),
                      f"session-initiate to {COMPONENTS[n]}")
        juliet.expect("session-accept", 10, sid=sid)
        term = juliet.expect("session-terminate", 10, sid=sid)
        assert jingle.reason(term.xml)[0] == "success", term.text()
        trace = uas.wait()
        trace.assert_ok()
        invite = trace.one("received", method="INVITE")
        assert invite.header("call-id") == f"{sid}@{COMPONENTS[n]}", invite
        row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
        assert (row["direction"], row["end_reason"], row["ended_by"]) \
            == ("xmpp-to-sip", "success", "sip"), row
        assert row["gateway_jid"] == romeo_jid(n) and row["xmpp_jid"] == juliet.full_jid, row
        assert_range(row, n)
    if not SQLITE:
        rows = site.query("SELECT id >> 40, direction, state FROM sessions ORDER BY id")
        assert rows == [(1, "xmpp-to-sip", "ended"), (2, "xmpp-to-sip", "ended")], rows


def test_kill_9_of_one_gateway_new_calls_go_through_the_other_and_it_restores_only_its_own(
        site, juliet, alice_probe, callers):
    k = site.kamailio
    gw1, gw2 = site.gateways[1], site.gateways[2]

    # One answered SIP -> XMPP call on each gateway (round robin: two calls
    # in a row go to both; a third goes round if one was taken out meanwhile).
    calls = {}
    for i in range(4):
        ua = callers(f"caller{i}")
        init, n = call_through_kamailio(site, juliet, ua)
        if n in calls:
            hang_up(juliet, ua, init)
            continue
        calls[n] = (ua, init)
        if len(calls) == 2:
            break
    assert sorted(calls) == [1, 2], f"both gateways carry a call: {sorted(calls)}"
    (ua1, init1), (ua2, init2) = calls[1], calls[2]
    live1 = gw1.wait_row(lambda r: r["jingle_sid"] == init1.sid and r["state"] == "active"
                         and r["sip_dialog"])
    live2 = gw2.wait_row(lambda r: r["jingle_sid"] == init2.sid and r["state"] == "active"
                         and r["sip_dialog"])
    assert_range(live1, 1)
    assert_range(live2, 2)

    # Round robin: make gateway 1 the next pick (one more short call, to
    # gateway 2, if the last INVITE went to gateway 1).
    if k.dispatched()[-1][1] == gw1.sip_addr():
        ua = callers("turn")
        init, n = call_through_kamailio(site, juliet, ua)
        assert n == 2, "round robin: after gateway 1, gateway 2"
        hang_up(juliet, ua, init)

    # kill -9 of gateway 1.
    gw1.proc.kill()
    gw1.proc.wait(5)
    killed = time.monotonic()

    # A new call at once, before the dispatcher's probes can tell (a probe
    # fails fr_timer = 1 s after it is sent): tried on gateway 1, no answer,
    # the failure_route takes gateway 1 out and the call reaches juliet
    # through gateway 2.
    ua3 = callers("after-kill")
    init3, n3 = call_through_kamailio(site, juliet, ua3)
    failed_over_in = time.monotonic() - killed
    assert n3 == 2, f"a call right after the kill went to instance {n3}"
    call_id = ua3.dialog.call_id
    assert [gw for cid, gw in k.dispatched() if cid == call_id] \
        == [gw1.sip_addr(), gw2.sip_addr()], f"{call_id}: {k.dispatched()}"
    assert f"stox-e2e: failover {call_id} from sip:{gw1.sip_addr()} (408)" in k.log_text()
    hang_up(juliet, ua3, init3)

    # The dispatcher takes gateway 1 out within a few seconds of the kill …
    k.wait_state(gw1.sip_addr(), active=False,
                 timeout=max(0.5, 6 - (time.monotonic() - killed)))
    out_after = time.monotonic() - killed
    # … and then every new call goes to gateway 2 straight away, no failover.
    for i in range(2):
        ua = callers(f"while-down{i}")
        started = time.monotonic()
        init, n = call_through_kamailio(site, juliet, ua)
        assert n == 2, f"a call while gateway 1 is out went to instance {n}"
        call_id = ua.dialog.call_id
        assert [gw for cid, gw in k.dispatched() if cid == call_id] == [gw2.sip_addr()], \
            f"{call_id} was not sent to gateway 2 alone: {k.dispatched()}"
        assert time.monotonic() - started < 5
        hang_up(juliet, ua, init)

    # Gateway 2's call was not disturbed.
    assert not ua2.ended.is_set(), ua2.summary()
    row2 = gw2.wait_row(lambda r: r["jingle_sid"] == init2.sid)
    assert row2["state"] == "active" and row2["ended_at"] is None, row2

    # Gateway 1 comes back with the same config and instance: it restores
    # its own answered call, and only that one (gateway 2's live row is not
    # its own).
    gw1.start(alice_probe)
    back_after = k.wait_state(gw1.sip_addr(), active=True, timeout=5)
    row1 = gw1.wait_row(lambda r: r["jingle_sid"] == init1.sid)
    assert row1["state"] == "active" and row1["id"] == live1["id"], row1
    row2 = gw2.wait_row(lambda r: r["jingle_sid"] == init2.sid)
    assert row2["state"] == "active", f"gateway 1's restart touched gateway 2's call: {row2}"

    # The SIP side hangs up gateway 1's call through Kamailio: the restored
    # dialog answers the BYE and juliet gets her session-terminate.
    hang_up(juliet, ua1, init1)
    ended1 = gw1.wait_row(lambda r: r["jingle_sid"] == init1.sid and r["state"] == "ended")
    assert (ended1["id"], ended1["end_reason"], ended1["ended_by"]) \
        == (live1["id"], "success", "sip"), ended1

    # Gateway 2's call is still up and ends normally, by gateway 2: juliet
    # hangs up, gateway 2's BYE goes through Kamailio to the caller.
    assert gw2.wait_row(lambda r: r["jingle_sid"] == init2.sid)["state"] == "active"
    assert_result(juliet.send_iq(init2.frm, jingle.session_terminate(init2.sid)),
                  "session-terminate to gateway 2")
    ua2.wait_ended(10)
    assert ua2.messages("received", method="BYE"), ua2.summary()
    ended2 = gw2.wait_row(lambda r: r["jingle_sid"] == init2.sid and r["state"] == "ended")
    assert (ended2["id"], ended2["end_reason"], ended2["ended_by"]) \
        == (live2["id"], "success", "xmpp"), ended2

    # Gateway 1 is back in the round robin: of two new calls, one is its.
    assert_back_in_the_round_robin(site, juliet, callers)

    # None claimed twice. Juliet heard gateway 1's call end once (she ended
    # gateway 2's herself); the store holds one row per call, none left live.
    terminates = [s.sid for s in juliet.received() if s.action == "session-terminate"]
    assert terminates.count(init1.sid) == 1 and terminates.count(init2.sid) == 0, terminates
    # The restarted gateway 1 restored one call, its own (gateway 2's was
    # live in the same table); each call's end is logged once, by the
    # gateway that carried it; neither logged the other's call or ids.
    logs = {1: gw1.log_text(all_runs=True), 2: gw2.log_text()}
    restart_log = gw1.log_text()
    assert "ready: calls of the previous run restored restored=1 " in restart_log, \
        "gateway 1's restart restores exactly its own call\n" + restart_log[-3000:]
    assert init1.sid not in logs[2] and init2.sid not in logs[1]
    assert (ended_lines(logs[1], init1.sid), ended_lines(logs[2], init1.sid)) == (1, 0), \
        "gateway 1 logs its call's end once (restored call ended from SIP)"
    assert (ended_lines(logs[1], init2.sid), ended_lines(logs[2], init2.sid)) == (0, 1), \
        "gateway 2 logs its call's end once (ended from XMPP)"
    if not SQLITE:
        for n, log in logs.items():
            ids = {int(i) for i in re.findall(r"\bid=(\d+)", log)}
            assert ids and all(i >> ID_BITS == n for i in ids), \
                f"gateway {n} logged ids of another instance: {sorted(ids)}"
        dupes = site.query("SELECT jingle_sid FROM sessions GROUP BY 1 HAVING count(*) > 1")
        assert dupes == [], dupes
        left = site.query("SELECT id FROM sessions WHERE state <> 'ended'")
        assert left == [], f"rows left live: {left}"
    print(f"after kill -9: a call failed over to gateway 2 in {failed_over_in:.1f} s, "
          f"gateway 1 out of the dispatcher in {out_after:.1f} s; back {back_after:.1f} s "
          f"after its restart")


@pytest.mark.gateway_config(drain_secs=30)
def test_a_draining_gateway_answers_503_is_taken_out_and_its_call_goes_on_to_the_end(
        site, juliet, alice_probe, callers):
    """SIGTERM (a rolling restart): the gateway answers OPTIONS 503 while it
    drains, the dispatcher stops sending it calls (no failover needed), its
    own call goes on and is hung up through Kamailio, it exits 0, and once
    started again and answering 200 it is back in the round robin."""
    k = site.kamailio
    gw1, gw2 = site.gateways[1], site.gateways[2]
    call = None
    for i in range(3):
        ua = callers(f"caller{i}")
        init, n = call_through_kamailio(site, juliet, ua)
        if n == 1:
            call = (ua, init)
            break
        hang_up(juliet, ua, init)
    assert call is not None, f"no call went to gateway 1: {k.dispatched()}"
    ua1, init1 = call

    gw1.proc.send_signal(signal.SIGTERM)
    drained = time.monotonic()
    assert wait_until(lambda: sip_options_status(gw1.sip_addr()) == 503, 5, 0.1), \
        "a draining gateway answers OPTIONS with 503"
    k.wait_state(gw1.sip_addr(), active=False, timeout=max(0.5, 5 - (time.monotonic() - drained)))
    out_after = time.monotonic() - drained

    for i in range(2):
        ua = callers(f"while-draining{i}")
        init, n = call_through_kamailio(site, juliet, ua)
        assert n == 2, f"a call while gateway 1 drains went to instance {n}"
        assert [gw for cid, gw in k.dispatched() if cid == ua.dialog.call_id] \
            == [gw2.sip_addr()], k.dispatched()
        hang_up(juliet, ua, init)

    assert gw1.proc.poll() is None, "gateway 1 waits for its call"
    assert not ua1.ended.is_set()
    # Its call goes on and is hung up by the SIP side through Kamailio.
    assert ua1.bye().status == 200, ua1.summary()
    row = gw1.wait_row(lambda r: r["jingle_sid"] == init1.sid and r["state"] == "ended")
    assert (row["end_reason"], row["ended_by"]) == ("success", "sip"), row
    assert_range(row, 1)
    assert gw1.proc.wait(10) == 0, "a drained gateway exits 0 after its last call"

    gw1.start(alice_probe)
    back_after = k.wait_state(gw1.sip_addr(), active=True, timeout=5)
    assert_back_in_the_round_robin(site, juliet, callers)
    if not SQLITE:
        assert site.query("SELECT count(*) FROM sessions WHERE state <> 'ended'") == [(0,)]
    # The last call's end reached juliet before the drained gateway exited
    # (docs/operations.md: calls in progress go on, and end on both sides).
    try:
        term = juliet.expect("session-terminate", 5, sid=init1.sid)
    except AssertionError as e:
        raise AssertionError(
            "the draining gateway exited when its last call was hung up from SIP "
            "without sending juliet its session-terminate (the BYE got 200, the row "
            f"is ended, the component went away first): {e}") from None
    assert jingle.reason(term.xml)[0] == "success", term.text()
    print(f"draining gateway out of the dispatcher in {out_after:.1f} s; "
          f"back {back_after:.1f} s after its restart")


@pytest.mark.skipif(SQLITE, reason="a PostgreSQL outage")
def test_a_store_outage_loses_no_row_and_calls_go_on_meanwhile(site, juliet, callers, postgres):
    """The shared store goes away (PostgreSQL stopped) with a call up: that
    call ends and a new one is made and ended meanwhile; the gateways keep
    every row in memory and write them all once PostgreSQL is back (the
    writer's retry, docs/decisions/0006), none lost, none twice."""
    ua1 = callers("before-outage")
    init1, n1 = call_through_kamailio(site, juliet, ua1)
    site.gateways[n1].wait_row(lambda r: r["jingle_sid"] == init1.sid and r["state"] == "active")

    postgres.stop()
    try:
        hang_up(juliet, ua1, init1)
        ua2 = callers("during-outage")
        init2, n2 = call_through_kamailio(site, juliet, ua2)
        hang_up(juliet, ua2, init2)
        for n in {n1, n2}:
            assert wait_until(lambda n=n: "session store: write failed"
                              in site.gateways[n].log_text(), 10), \
                f"gateway {n} says its writes fail"
    finally:
        postgres.restart()

    for init, n in ((init1, n1), (init2, n2)):
        row = site.gateways[n].wait_row(
            lambda r, sid=init.sid: r["jingle_sid"] == sid and r["state"] == "ended", 15)
        assert (row["end_reason"], row["ended_by"], row["sip_status"]) \
            == ("success", "sip", 200), row
        assert_range(row, n)
        assert row["answered_at"] is not None, row
    assert site.query("SELECT count(*), count(DISTINCT jingle_sid) FROM sessions") == [(2, 2)]
    for n in {n1, n2}:
        assert wait_until(lambda n=n: "session store: writable again"
                          in site.gateways[n].log_text(), 10), \
            f"gateway {n} says its rows landed"


@pytest.mark.skipif(SQLITE, reason="instance numbers are claimed in the shared store")
def test_a_second_gateway_with_a_running_gateways_instance_number_refuses_to_start(
        site, tmp_path, xmpp_server, postgres):
    """Two gateways on one number would hand out the same ids and restore
    each other's calls: the second one (another component) is refused."""
    workdir = tmp_path / "gw-dup"
    workdir.mkdir()
    dup = Gateway(workdir, xmpp_server, component=SPARE, postgres=postgres,
                  pg_database=site.database, instance=1)
    dup.write_config()
    done = subprocess.run([str(BINARY), "--config", str(dup.config)], cwd=workdir,
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "RUST_LOG": "info"})
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "instance" in out and COMPONENTS[1] in out, out
    # Gateway 1 goes on, its number still its own.
    assert sip_options_status(site.gateways[1].sip_addr()) == 200
    assert site.gateways[1].exit_code() is None


def test_kamailio_probes_take_a_silent_destination_out_and_back_and_answer_keepalives(tmp_path):
    """The dispatcher as configured, without gateways: two SIP UAs answer
    OPTIONS 200; one goes silent and is out within ping_interval +
    fr_timer (no call needed), then answers again and is back."""
    a = SipUa(media="rtp", name="dest-a")
    port_b = free_port(udp_too=True)
    b = SipUa(media="rtp", name="dest-b", port=port_b)
    k = Kamailio(tmp_path, [a.addr, b.addr])
    try:
        k.start()
        assert k.options() == 200, "Kamailio answers its own keepalive"
        k.wait_state(a.addr, active=True, timeout=5)
        wait_until(lambda: b.messages("received", method="OPTIONS"), 5)
        assert b.messages("received", method="OPTIONS"), "the dispatcher probes with OPTIONS"
        b.close()
        silent = time.monotonic()
        k.wait_state(b.addr, active=False, timeout=4)
        took = time.monotonic() - silent
        assert took < 3.5, took
        assert k.is_active(a.addr)
        b = SipUa(media="rtp", name="dest-b-again", port=port_b)
        k.wait_state(b.addr, active=True, timeout=4)
    finally:
        k.stop()
        a.close()
        b.close()
