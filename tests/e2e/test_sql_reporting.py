"""Reporting with SQL (docs/sql.md): a real gateway makes calls of every
outcome, in both directions, one of them anchored by rtpengine with RTP
sent to it, one left up; then every query of docs/sql.md runs with the
`sqlite3` command-line tool on the gateway's database, while it runs, and
its answer is checked against what the calls were. `stox-gateway sessions`
prints the same records.

The queries are read from docs/sql.md (its ```sql blocks, named by their
first line), so the documentation and this test cannot drift apart: a query
without a check here, or a check without its query there, fails."""

import datetime
import json
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import jingle
from harness.calls import (ROMEO_JID, assert_result, call_sip, call_xmpp, new_sid,
                           quick_call_to_sip, quick_call_to_xmpp)
from harness.gateway import BINARY, REPO, Gateway
from harness.net import HOST, free_port, tail
from harness.prosody import COMPONENT, DOMAIN, PASSWORD
from harness.rtpengine import Rtpengine
from harness.sipp import Sipp
from harness.xmpp_client import JingleClient

pytestmark = pytest.mark.gateway

DOC = REPO / "docs" / "sql.md"
# sip:phone@pbx.example: routed to the peer "pbx", whose media rtpengine anchors.
PHONE = f"phone\\40pbx.example@{COMPONENT}"
RTP_PACKETS = 50
SETUP_SECONDS = 150


# --- docs/sql.md and sqlite3 -------------------------------------------------

def doc_queries() -> dict[str, str]:
    """The ```sql blocks of docs/sql.md, by the name on their first line."""
    out = {}
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S):
        first = block.splitlines()[0]
        assert first.startswith("-- "), f"a query of docs/sql.md must start with `-- name`:\n{block}"
        name = first[3:].strip()
        assert name not in out, f"two queries of docs/sql.md are named {name!r}"
        out[name] = block
    return out


def sqlite3(db: Path, sql: str) -> list[dict]:
    """Runs `sql` with the sqlite3 command-line tool, as an operator would."""
    if shutil.which("sqlite3") is None:
        pytest.fail("the sqlite3 command-line tool is missing (tests/run.sh installs it)")
    done = subprocess.run(["sqlite3", "-bail", "-json", str(db)], input=sql,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, \
        f"sqlite3 exited {done.returncode}: {done.stderr}\n{sql}"
    return json.loads(done.stdout) if done.stdout.strip() else []


def iso(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def seconds(start: str, end: str) -> float:
    return (iso(end) - iso(start)).total_seconds()


def utc_today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


# --- the calls ----------------------------------------------------------------

class Sipps:
    """SIPp processes of the module (the `sipp` fixture is per test)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[Sipp] = []

    def uas(self, scenario: str, port: int | None = None, **params) -> Sipp:
        sipp = Sipp(self.workdir, scenario, port=port, **params).start()
        self.started.append(sipp)
        return sipp

    def uac(self, scenario: str, remote: str, **params) -> Sipp:
        sipp = Sipp(self.workdir, scenario, remote=remote, **params).start()
        self.started.append(sipp)
        return sipp

    def kill_all(self):
        for sipp in self.started:
            sipp.kill()


@dataclass
class World:
    gw: Gateway
    engine: Rtpengine
    juliet: JingleClient
    sipps: Sipps
    day: str = ""
    # The row of each call, by the name the checks use.
    calls: dict[str, dict] = field(default_factory=dict)
    live: tuple | None = None     # (sid, SIPp UAS) of the call left up

    def logs(self) -> list[tuple[str, Path]]:
        out = [("gateway log", self.gw.log), ("rtpengine log", self.engine.log)]
        for sipp in self.sipps.started:
            out += [(f"sipp {sipp.name} {name}", path) for name, path in sipp.files.items()]
        return out

    def ended(self, sid: str, **expected) -> dict:
        """The call's ended row, once it carries every expected value."""
        return self.gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                                and all(r[k] == v for k, v in expected.items()), timeout=10)

    def answered(self) -> list[dict]:
        return [r for r in self.calls.values() if r["answered_at"] and r["ended_at"]]

    def query(self, name: str) -> list[dict]:
        queries = doc_queries()
        assert name in queries, f"docs/sql.md has no query named {name!r}"
        return sqlite3(self.gw.db, queries[name])

    def same_day(self):
        """Checks about "today" hold only if the run did not cross midnight UTC."""
        if utc_today() != self.day:
            pytest.skip("the calls were made on another day (UTC) than the query runs")


def x2s_rejected(w: World, code: int, reason: str) -> dict:
    sid, uas = call_sip(w.gw, w.juliet, w.sipps, "uas_reject", code=code, reason=reason,
                        ring_ms=100)
    w.juliet.expect("session-terminate", 10, sid=sid)
    uas.wait().assert_ok()
    return w.ended(sid, sip_status=code)


def s2x_cancelled(w: World) -> dict:
    uac, init = call_xmpp(w.gw, w.juliet, w.sipps, "uac_cancel", hold_ms=300)
    assert_result(w.juliet.send_iq(init.frm, jingle.ringing(init.sid)), "ringing")
    w.juliet.expect("session-terminate", 10, sid=init.sid)
    uac.wait().assert_ok()
    return w.ended(init.sid, sip_status=487)


def s2x_declined(w: World) -> dict:
    uac, init = call_xmpp(w.gw, w.juliet, w.sipps, "uac_expect_error", code=603)
    assert_result(w.juliet.send_iq(init.frm, jingle.session_terminate(init.sid, "decline")),
                  "session-terminate")
    uac.wait().assert_ok()
    return w.ended(init.sid, sip_status=603)


def rtp(seq: int) -> bytes:
    """A PCMU packet of 20 ms of silence."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x5354_4F58) + b"\xff" * 160


def anchored(w: World, pbx_port: int) -> dict:
    """Juliet calls sip:phone@pbx.example through rtpengine and sends it
    RTP for a second from the address she offered; the SIPp phone sends
    nothing. Juliet hangs up."""
    media_port = free_port(udp_too=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as media:
        media.bind((HOST, media_port))
        uas = w.sipps.uas("uas_answer_wait_bye", port=pbx_port, ring_ms=100)
        sid = new_sid("sql-anchored")
        assert_result(w.juliet.send_iq(PHONE, jingle.session_initiate(
            sid, w.juliet.full_jid, port=media_port)), "session-initiate")
        accept = w.juliet.expect("session-accept", 15, sid=sid)
        relay = jingle.candidates(accept.xml)[0]
        for seq in range(RTP_PACKETS):
            media.sendto(rtp(seq), relay)
            time.sleep(0.02)
        time.sleep(0.3)
    assert_result(w.juliet.send_iq(PHONE, jingle.session_terminate(sid)), "session-terminate")
    uas.wait().assert_ok()
    # rtpengine's figures are written when its session is deleted.
    return w.gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                         and r["media_packets_from_sip"] is not None, timeout=10)


def left_up(w: World) -> dict:
    """An answered XMPP -> SIP call that stays up until the module ends."""
    uas = w.sipps.uas("uas_answer_wait_bye", port=w.gw.uas_port, ring_ms=100,
                      wait_ms=SETUP_SECONDS * 2000, timeout=SETUP_SECONDS * 2)
    sid = new_sid("sql-live")
    assert_result(w.juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, w.juliet.full_jid)),
                  "session-initiate")
    w.juliet.expect("session-accept", 10, sid=sid)
    w.live = (sid, uas)
    return w.gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active")


def make_calls(w: World, pbx_port: int):
    w.day = utc_today()
    w.calls["answered x2s"] = quick_call_to_sip(w.gw, w.juliet, w.sipps)
    w.calls["answered s2x"] = quick_call_to_xmpp(w.gw, w.juliet, w.sipps)
    w.calls["busy"] = x2s_rejected(w, 486, "Busy Here")
    w.calls["not found"] = x2s_rejected(w, 404, "Not Found")
    w.calls["server error"] = x2s_rejected(w, 503, "Service Unavailable")
    w.calls["timeout"] = x2s_rejected(w, 408, "Request Timeout")
    w.calls["cancelled"] = s2x_cancelled(w)
    w.calls["declined"] = s2x_declined(w)
    w.calls["anchored"] = anchored(w, pbx_port)
    w.calls["live"] = left_up(w)
    rows = w.gw.rows()
    assert len(rows) == len(w.calls), "one row per call:\n" + "\n".join(map(str, rows))


class SetupTimeout(Exception):
    pass


@contextmanager
def deadline(secs: int):
    def expired(signum, frame):
        raise SetupTimeout(f"making the calls took more than {secs}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def world(tmp_path_factory, prosody, probe, xloop):
    tmp = tmp_path_factory.mktemp("sql-reporting")
    engine = Rtpengine(tmp)
    pbx_port = free_port(udp_too=True)
    gw = Gateway(tmp, prosody, rtpengine=[engine.ng],
                 peers=[{"name": "pbx", "uri": f"sip:{HOST}:{pbx_port}",
                         "domains": ["pbx.example"], "media": "rtpengine"}])
    juliet = JingleClient(xloop, f"juliet@{DOMAIN}/balcony", PASSWORD, HOST,
                          prosody.c2s_port).connect()
    w = World(gw, engine, juliet, Sipps(tmp))
    try:
        with deadline(SETUP_SECONDS):
            engine.start()
            gw.start(probe)
            make_calls(w, pbx_port)
    except Exception as e:
        logs = "\n".join(f"--- {title} ---\n{tail(path, 60)}" for title, path in w.logs()[:2])
        w.sipps.kill_all()
        juliet.disconnect()
        gw.stop()
        engine.stop()
        raise AssertionError(f"making the calls failed: {e!r}\n{logs}") from e
    yield w
    if w.live is not None:
        sid, uas = w.live
        juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid))
        uas.wait(10)
    w.sipps.kill_all()
    juliet.disconnect()
    gw.stop()
    engine.stop()


@pytest.fixture(autouse=True)
def _logs(world, attach):
    for title, path in world.logs():
        attach(title, path)


# --- the checks, one per query of docs/sql.md ----------------------------------

def check_calls_today_by_outcome(w: World, rows: list[dict]):
    w.same_day()
    assert rows == [
        {"outcome": "answered", "calls": 3},
        # One each, by name.
        {"outcome": "busy", "calls": 1},
        {"outcome": "cancelled", "calls": 1},
        {"outcome": "failed", "calls": 1},
        {"outcome": "in-progress", "calls": 1},
        {"outcome": "no-answer", "calls": 1},
        {"outcome": "rejected", "calls": 1},
        {"outcome": "unavailable", "calls": 1},
    ], rows


def check_calls_per_day(w: World, rows: list[dict]):
    w.same_day()
    talk = sum(seconds(r["answered_at"], r["ended_at"]) for r in w.answered())
    [row] = rows
    assert (row["day"], row["calls"], row["answered"]) == (w.day, 10, 3), row
    assert abs(row["minutes"] - talk / 60) <= 0.006, (row, talk)


def check_answer_seizure_ratio_per_peer(w: World, rows: list[dict]):
    assert rows == [
        # answered, cancelled, declined
        {"direction": "sip-to-xmpp", "peer": "-", "attempts": 3, "answered": 1,
         "asr_percent": 33.3},
        # answered, 486, 404, 503, 408 (the call still up is not counted)
        {"direction": "xmpp-to-sip", "peer": "-", "attempts": 5, "answered": 1,
         "asr_percent": 20.0},
        {"direction": "xmpp-to-sip", "peer": "pbx", "attempts": 1, "answered": 1,
         "asr_percent": 100.0},
    ], rows


def check_average_duration_per_direction(w: World, rows: list[dict]):
    assert [r["direction"] for r in rows] == ["sip-to-xmpp", "xmpp-to-sip"], rows
    for row in rows:
        mine = [r for r in w.answered() if r["direction"] == row["direction"]]
        talk = [seconds(r["answered_at"], r["ended_at"]) for r in mine]
        setup = [seconds(r["created_at"], r["answered_at"]) for r in mine]
        assert row["answered_calls"] == len(mine) == {"sip-to-xmpp": 1, "xmpp-to-sip": 2}[
            row["direction"]], row
        assert abs(row["mean_duration_s"] - sum(talk) / len(talk)) <= 0.051, (row, talk)
        assert abs(row["longest_s"] - max(talk)) <= 0.051, (row, talk)
        assert abs(row["mean_setup_s"] - sum(setup) / len(setup)) <= 0.0051, (row, setup)
        assert 0 < row["mean_duration_s"] < 10, row
    # The anchored call was up for the second of RTP and more.
    assert rows[1]["longest_s"] >= RTP_PACKETS * 0.02, rows


def check_top_callers(w: World, rows: list[dict]):
    romeo = w.calls["answered s2x"]["sip_uri"]
    talk = {who: sum(seconds(r["answered_at"], r["ended_at"]) for r in w.answered()
                     if (r["direction"] == "xmpp-to-sip") == (who == f"juliet@{DOMAIN}"))
            for who in (f"juliet@{DOMAIN}", romeo)}
    assert [(r["who"], r["calls"], r["answered"]) for r in rows] == [
        # Her 7 calls (answered, 486, 404, 503, 408, anchored, up), her full
        # JID counted as her bare one; romeo's 3.
        (f"juliet@{DOMAIN}", 7, 2),
        (romeo, 3, 1),
    ], rows
    for row in rows:
        assert abs(row["minutes"] - talk[row["who"]] / 60) <= 0.006, (row, talk)


def check_failed_calls_with_reasons(w: World, rows: list[dict]):
    call = w.calls["server error"]
    assert rows == [{
        "id": call["id"], "started_at": call["created_at"], "direction": "xmpp-to-sip",
        "caller": w.juliet.full_jid, "callee": call["sip_uri"], "sip_status": 503,
        "end_reason": "general-error", "ended_by": "sip", "end_detail": None,
    }], rows


def check_unanswered_calls_by_cause(w: World, rows: list[dict]):
    assert sorted((r["outcome"], r["sip_status"], r["end_reason"], r["ended_by"], r["calls"])
                  for r in rows) == [
        ("busy", 486, "busy", "sip", 1),
        ("cancelled", 487, "cancel", "sip", 1),
        ("failed", 503, "general-error", "sip", 1),
        ("no-answer", 408, "timeout", "sip", 1),
        ("rejected", 603, "decline", "xmpp", 1),
        ("unavailable", 404, "gone", "sip", 1),
    ], rows


def check_media_of_anchored_calls(w: World, rows: list[dict]):
    call = w.calls["anchored"]
    [row] = rows
    assert (row["id"], row["sip_peer"], row["media_relay"]) == (call["id"], "pbx", w.engine.ng), row
    assert row["duration_s"] >= RTP_PACKETS * 0.02, row
    # What Juliet sent reached rtpengine; the SIPp phone sent nothing.
    assert RTP_PACKETS * 0.9 <= row["media_packets_from_xmpp"] <= RTP_PACKETS, row
    assert row["media_packets_from_sip"] == 0, row
    assert row["media_errors"] == call["media_errors"], row


def check_one_way_media(w: World, rows: list[dict]):
    call = w.calls["anchored"]
    assert [(r["id"], r["caller"], r["callee"], r["media_packets_from_sip"]) for r in rows] == [
        (call["id"], w.juliet.full_jid, call["sip_uri"], 0)], rows


def check_calls_in_progress(w: World, rows: list[dict]):
    call = w.calls["live"]
    [row] = rows
    assert (row["id"], row["direction"], row["xmpp_jid"], row["sip_uri"], row["state"]) == (
        call["id"], "xmpp-to-sip", w.juliet.full_jid, call["sip_uri"], "active"), row
    assert 0 <= row["talk_s"] <= row["age_s"] < SETUP_SECONDS + 60, row
    assert (row["hold"], row["sip_peer"], row["media_relay"]) == (None, None, None), row


def check_records_kept(w: World, rows: list[dict]):
    first = min(r["created_at"] for r in w.calls.values())
    assert rows == [{"oldest": first, "calls": 10, "in_progress": 1}], rows


CHECKS = {
    "calls today by outcome": check_calls_today_by_outcome,
    "calls per day": check_calls_per_day,
    "answer-seizure ratio per peer": check_answer_seizure_ratio_per_peer,
    "average duration per direction": check_average_duration_per_direction,
    "top callers": check_top_callers,
    "failed calls with reasons": check_failed_calls_with_reasons,
    "unanswered calls by cause": check_unanswered_calls_by_cause,
    "media of anchored calls": check_media_of_anchored_calls,
    "one-way media": check_one_way_media,
    "calls in progress": check_calls_in_progress,
    "records kept": check_records_kept,
}


def test_every_query_of_the_doc_is_checked(world):
    assert sorted(doc_queries()) == sorted(CHECKS), \
        "docs/sql.md's queries and this test's checks must match one to one"


@pytest.mark.parametrize("name", list(CHECKS))
def test_doc_query(world, name):
    CHECKS[name](world, world.query(name))


def test_each_call_has_its_outcome(world):
    """The view's outcome of each real call (docs/sql.md, Outcomes)."""
    rows = sqlite3(world.gw.db, "SELECT id, outcome, caller, callee, setup_s, duration_s "
                                "FROM call_records ORDER BY id")
    by_id = {r["id"]: r for r in rows}
    expected = {
        "answered x2s": "answered", "answered s2x": "answered", "busy": "busy",
        "not found": "unavailable", "server error": "failed", "timeout": "no-answer",
        "cancelled": "cancelled", "declined": "rejected", "anchored": "answered",
        "live": "in-progress",
    }
    for name, outcome in expected.items():
        call = world.calls[name]
        record = by_id[call["id"]]
        assert record["outcome"] == outcome, (name, record, call)
        if call["direction"] == "xmpp-to-sip":
            assert (record["caller"], record["callee"]) == (call["xmpp_jid"], call["sip_uri"])
        else:
            assert (record["caller"], record["callee"]) == (call["sip_uri"], call["xmpp_jid"])
        if call["answered_at"] and call["ended_at"]:
            assert abs(record["duration_s"]
                       - seconds(call["answered_at"], call["ended_at"])) < 0.0006, record
            assert abs(record["setup_s"]
                       - seconds(call["created_at"], call["answered_at"])) < 0.0006, record
        elif not call["answered_at"]:
            assert (record["setup_s"], record["duration_s"]) == (None, None), record


def gateway_cli(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "--config", str(world.gw.config), *args],
                          capture_output=True, text=True, timeout=30)


def test_the_sessions_command_prints_the_same_records(world):
    ok = gateway_cli(world, "check-config")
    assert (ok.returncode, ok.stdout.strip()) == (0, f"stox-gateway: config {world.gw.config} OK"), \
        ok.stderr

    view = {r["id"]: r for r in sqlite3(world.gw.db, "SELECT * FROM call_records")}
    done = gateway_cli(world, "sessions", "--json", "--limit", "0")
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in printed] == sorted(view, reverse=True), "newest first"
    for record in printed:
        assert record == view[record["id"]], (record, view[record["id"]])

    table = gateway_cli(world, "sessions", "--since", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 1 + len(view), table.stdout
    assert "OUTCOME" in lines[0] and "in-progress" in lines[1], table.stdout

    live = gateway_cli(world, "sessions", "--active", "--json")
    assert live.returncode == 0, live.stderr
    [row] = [json.loads(line) for line in live.stdout.splitlines()]
    assert (row["id"], row["state"]) == (world.calls["live"]["id"], "active"), row
