#!/usr/bin/python3
"""The gateway benchmark through a real Prosody (`bench/run.sh --through-prosody`).

stox-bench plays the XMPP server itself; this run puts the real path in the
figure instead, at a modest rate:

    slixmpp c2s users ──▶ Prosody 0.12 ──(XEP-0114)──▶ stox-gateway ──UDP──▶ SIPp UAS
    (bench/sipp/uas.xml: 100, 180, 200, ACK, waits for BYE)

  xmpp-to-sip  user{i}@example.com/res (i = n mod --users) sends session-initiate
               (PCMU/PCMA/telephone-event, raw-udp, as in the e2e tests and
               stox-bench) to romeo{n}\\40example.net@sip.example.com; the IQ
               result, session-info <ringing/> and session-accept are timestamped
               (every IQ the gateway sends is answered with a result); after
               --hold-ms the user sends session-terminate → gateway BYE → 200.
  sip-to-xmpp  a SIPp UAC (bench/sipp/uac.xml, the request URI's user taken in
               turn from the --users users) calls sip:user{i}@example.com;gr=res;
               the user answers the session-initiate with the IQ result,
               session-info <ringing/> and session-accept at once; SIPp hangs up
               after --hold-ms and the gateway's session-terminate is answered.

Reuses tests/e2e/harness (Prosody, Gateway, Sipp, JingleClient, the Jingle
builders). Needs root (Prosody runs as the `prosody` user), Debian's
python3-slixmpp (run with /usr/bin/python3), prosody, sip-tester, sqlite3, and
an already built gateway (target/release/stox-gateway, or
STOX_BENCH_GATEWAY_BIN). Everything listens on 127.0.0.1; every process it
starts (Prosody, the gateway, SIPp) is stopped by pid/process group at the end.

Figures, in stox-bench's style: printed as `key  value` lines under
`== name ==` and, with --out, saved as key=value lines for
`stox-bench summary DIR`. Client-side latencies include Prosody's routing and
slixmpp's parsing on both legs, not only the gateway.
"""

import argparse
import asyncio
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from harness import gateway as gateway_mod  # noqa: E402
from harness import jingle  # noqa: E402
from harness import prosody as prosody_mod  # noqa: E402
from harness.gateway import Gateway  # noqa: E402
from harness.net import HOST, free_port, tail  # noqa: E402
from harness.prosody import COMPONENT, DOMAIN, PASSWORD, Prosody  # noqa: E402
from harness.sipp import Sipp  # noqa: E402
from harness.xmpp_client import JingleClient, XmppLoop  # noqa: E402

BENCH_SIPP = REPO / "bench" / "sipp"
NS_JINGLE = jingle.NS_JINGLE
DIRECTIONS = ("xmpp-to-sip", "sip-to-xmpp")


def now() -> float:
    return time.perf_counter()


# --- figures ------------------------------------------------------------------

def percentile(sorted_values: list, p: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list (as stox-bench)."""
    rank = -(-p * len(sorted_values) // 100)      # ceil
    rank = min(max(int(rank), 1), len(sorted_values))
    return sorted_values[rank - 1]


class Report:
    """The same shape as crates/bench/src/report.rs."""

    def __init__(self, name: str):
        self.name = name
        self.rows: list[tuple[str, str]] = []

    def add(self, key: str, value):
        self.rows.append((key, str(value)))

    def latency(self, key: str, seconds: list):
        if not seconds:
            self.add(f"{key}.n", 0)
            return
        v = sorted(seconds)
        self.add(f"{key}.p50_ms", f"{percentile(v, 50) * 1000:.3f}")
        self.add(f"{key}.p99_ms", f"{percentile(v, 99) * 1000:.3f}")
        self.add(f"{key}.max_ms", f"{v[-1] * 1000:.3f}")
        self.add(f"{key}.n", len(v))

    def print(self):
        print(f"== {self.name} ==")
        w = max((len(k) for k, _ in self.rows), default=0)
        for k, v in self.rows:
            print(f"  {k:<{w}}  {v}")
        sys.stdout.flush()

    def save(self, path: Path):
        text = f"run={self.name}\n" + "".join(f"{k}={v}\n" for k, v in self.rows)
        path.write_text(text)


class Failures(dict):
    def add(self, reason: str):
        self[reason] = self.get(reason, 0) + 1

    def total(self) -> int:
        return sum(self.values())

    def display(self) -> str:
        return " ".join(f"{k}={n}" for k, n in sorted(self.items()))


# --- /proc ----------------------------------------------------------------------

def cpu_ticks(pid: int) -> int:
    """utime + stime (fields 14 + 15 of /proc/PID/stat), all threads."""
    line = Path(f"/proc/{pid}/stat").read_text()
    fields = line[line.rindex(")") + 1:].split()
    return int(fields[14 - 3]) + int(fields[15 - 3])


def tree(pid: int) -> list[int]:
    """pid and its descendants (runuser → prosody)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_ticks(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            total += cpu_ticks(p)
        except (OSError, ValueError):
            pass
    return total


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()

    def kib(key):
        m = re.search(rf"^{key}:\s+(\d+)", text, re.M)
        return int(m.group(1)) if m else 0

    return kib("VmRSS"), kib("VmHWM")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def sessions(db: Path) -> tuple[str, str, str]:
    """(rows, ended with success, not ended) via `sqlite3 -readonly`."""
    sql = ("SELECT COUNT(*), COALESCE(SUM(state='ended' AND end_reason='success'),0), "
           "COALESCE(SUM(state<>'ended'),0) FROM sessions")
    done = subprocess.run(["sqlite3", "-readonly", str(db), sql],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return (f"error: {done.stderr.strip()}", "?", "?")
    f = (done.stdout.strip().split("|") + ["?", "?", "?"])[:3]
    return f[0], f[1], f[2]


def sipp_counts(stat: Path) -> tuple[int, int] | None:
    """(SuccessfulCall(C), FailedCall(C)) from the last row of SIPp's -trace_stat CSV."""
    try:
        lines = [line for line in stat.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    if len(lines) < 2:
        return None
    head, last = lines[0].split(";"), lines[-1].split(";")
    try:
        return (int(last[head.index("SuccessfulCall(C)")]),
                int(last[head.index("FailedCall(C)")]))
    except (ValueError, IndexError):
        return None


def sipp_rtt(sipp_dir: Path) -> list:
    """Response time 1 (INVITE → 200) samples from SIPp's *_rtt.csv, seconds."""
    out = []
    for f in sipp_dir.glob("*_rtt.csv"):
        for line in f.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            try:
                if len(parts) >= 3 and int(parts[2]) == 1:
                    out.append(float(parts[1]) / 1000.0)
            except ValueError:
                pass
    return out


# --- Prosody -------------------------------------------------------------------

class BenchProsody(Prosody):
    """harness Prosody, stopped by signalling the prosody process itself, so
    that runuser reaps it (signalling the whole group leaves a zombie behind
    until init collects it); the harness's group stop is the fallback."""

    def stop(self, timeout: float = 10.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in tree(self.proc.pid)[1:]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            super().stop()


# --- SIPp with the bench scenarios ----------------------------------------------

class BenchSipp(Sipp):
    """harness.sipp.Sipp running a bench/sipp scenario for many calls, with
    SIPp's statistics (stat.csv, *_rtt.csv) instead of a message trace."""

    def __init__(self, workdir: Path, template: str, *, calls: int, rate: float | None = None,
                 inject: Path | None = None, rewrite=(), **kw):
        self.template = BENCH_SIPP / template
        self.calls = calls
        self.rate = rate
        self.inject = inject
        self.rewrite = rewrite
        super().__init__(workdir, template, **kw)

    def _scenario_file(self) -> Path:
        text = self.template.read_text()
        for old, new in self.rewrite:
            if old not in text:
                raise RuntimeError(f"{self.template}: no {old!r} to rewrite")
            text = text.replace(old, new)
        text = re.sub(r"\{\{(\w+)\}\}", lambda m: str(self.params[m.group(1)]), text)
        path = self.dir / self.template.name
        path.write_text(text)
        return path

    def command(self) -> list[str]:
        cmd = ["sipp"] + ([self.remote] if self.remote else []) + [
            "-sf", str(self._scenario_file()), "-i", HOST, "-p", str(self.port),
            "-t", "t1" if self.transport == "tcp" else "u1",
            "-m", str(self.calls), "-l", "1000000", "-nostdin",
            "-timeout", f"{self.timeout}s", "-timeout_error",
            "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_err", "-error_file", str(self.files["errors"]),
            "-trace_rtt", "-rtt_freq", "20"]
        if self.rate is not None:
            cmd += ["-r", str(max(1, round(self.rate))), "-rp", "1000"]
        if self.inject is not None:
            cmd += ["-inf", str(self.inject)]
        return cmd

    def counts(self) -> tuple[int, int] | None:
        return sipp_counts(self.dir / "stat.csv")

    def finish(self, limit: float) -> int | None:
        """Wait for SIPp to exit by itself, up to `limit` s; then kill it."""
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(5)
            return None


# --- the XMPP users -------------------------------------------------------------

@dataclasses.dataclass
class Call:
    n: int
    sid: str
    peer: str = ""                 # the gateway's JID for this call
    # client-side perf_counter() timestamps
    sent: float | None = None      # our session-initiate written (xmpp-to-sip)
    result: float | None = None    # its IQ result read
    ringing: float | None = None
    accept: float | None = None
    initiate_in: float | None = None      # the gateway's session-initiate read (sip-to-xmpp)
    accept_sent: float | None = None
    accept_result: float | None = None
    terminate_in: float | None = None     # the gateway's session-terminate read
    terminate_reason: str | None = None
    done: bool = False
    failed: str | None = None
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class BenchClient(JingleClient):
    """harness JingleClient (auto-answers every Jingle IQ with a result) that
    also timestamps what the gateway sends and drives calls on the loop."""

    def __init__(self, *args, bench, **kw):
        super().__init__(*args, **kw)
        self.bench = bench
        self.answered_at: dict[str, float] = {}

    def _on_answer(self, iq):
        self.answered_at[iq["id"]] = now()
        super()._on_answer(iq)

    def _on_jingle(self, iq):
        t = now()
        super()._on_jingle(iq)           # IQ result first, as stox-bench's driver
        el = iq.xml
        if el.get("type") not in ("set", "get"):
            return
        j = el.find(f"{{{NS_JINGLE}}}jingle")
        if self.bench is not None:
            self.bench.on_jingle(self, t, el, j)
        self._state.received.clear()      # not used here; keep memory flat
        self._state.consumed.clear()

    async def iq(self, to: str, payload: str, timeout: float):
        """Send an IQ set; returns (sent at, answered at, stanza or None)."""
        iq_id = f"b{next(self._ids)}"
        raw = f"<iq type='set' id='{iq_id}' to={jingle.q(to)}>{payload}</iq>"
        fut = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = fut
        sent = now()
        self.xmpp.send_raw(raw)
        try:
            st = await asyncio.wait_for(fut, timeout)
            return sent, self.answered_at.pop(iq_id, now()), st
        except asyncio.TimeoutError:
            return sent, None, None
        finally:
            self._pending.pop(iq_id, None)
            self.answered_at.pop(iq_id, None)


def reason_of(j) -> str:
    r = j.find(f"{{{NS_JINGLE}}}reason") if j is not None else None
    if r is None:
        return "none"
    for child in r:
        name = child.tag.rpartition("}")[2]
        if name != "text":
            return name
    return "none"


class Run:
    """Per-direction call bookkeeping, living on the slixmpp loop."""

    def __init__(self, direction: str, args):
        self.direction = direction
        self.args = args
        self.calls: dict[str, Call] = {}
        self.failures = Failures()
        self.tasks: set = set()
        self.max_send_lag = 0.0
        self.live = 0
        self.max_live = 0
        self.timed_out = False
        self.main_task = None

    # incoming Jingle sets from the gateway
    def on_jingle(self, client: BenchClient, t: float, el, j):
        if j is None:
            return
        action, sid = j.get("action"), j.get("sid", "")
        call = self.calls.get(sid)
        if action == "session-initiate" and self.direction == "sip-to-xmpp" and call is None:
            call = Call(len(self.calls), sid, peer=el.get("from", ""), initiate_in=t)
            self.calls[sid] = call
            task = asyncio.ensure_future(self.answer(client, call))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        if call is None:
            return
        if action == "session-info" and j.find(f"{{{jingle.NS_RTP_INFO}}}ringing") is not None:
            call.ringing = call.ringing or t
        elif action == "session-accept":
            call.accept = call.accept or t
        elif action == "session-terminate":
            call.terminate_in = call.terminate_in or t
            call.terminate_reason = reason_of(j)
        call.changed.set()

    def fail(self, call: Call, reason: str):
        if call.done:
            return
        call.done = True
        call.failed = reason
        self.failures.add(reason)

    # --- xmpp-to-sip ---------------------------------------------------------

    async def place_all(self, clients: list[BenchClient], calls: int, rate: float):
        self.main_task = asyncio.current_task()
        start = now() + 0.1
        for n in range(calls):
            due = start + n / rate
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.max_send_lag = max(self.max_send_lag, now() - due)
            task = asyncio.ensure_future(self.place(clients[n % len(clients)], n))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def wait_for(self, call: Call, pred, timeout: float) -> bool:
        deadline = now() + timeout
        while not pred():
            left = deadline - now()
            if left <= 0:
                return False
            call.changed.clear()
            if pred():
                break
            try:
                await asyncio.wait_for(call.changed.wait(), left)
            except asyncio.TimeoutError:
                return pred()
        return True

    async def place(self, client: BenchClient, n: int):
        a = self.args
        sid = f"tp{n}"
        call = Call(n, sid, peer=rf"romeo{n}\40example.net@{COMPONENT}")
        self.calls[sid] = call
        sent, got, st = await client.iq(call.peer, jingle.session_initiate(sid, client.full_jid),
                                        a.setup_timeout)
        call.sent = sent
        if st is None:
            return self.fail(call, "no-iq-result:session-initiate")
        if st.type != "result":
            return self.fail(call, "iq-error:session-initiate")
        call.result = got
        ok = await self.wait_for(call, lambda: call.accept or call.terminate_in, a.setup_timeout)
        if call.terminate_in:
            return self.fail(call, f"terminated-by-gateway:{call.terminate_reason}")
        if not ok:
            return self.fail(call, "no-session-accept")
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        await self.wait_for(call, lambda: call.terminate_in, a.hold_ms / 1000)
        self.live -= 1
        if call.terminate_in:
            return self.fail(call, f"terminated-by-gateway:{call.terminate_reason}")
        _, _, st = await client.iq(call.peer, jingle.session_terminate(sid), a.setup_timeout)
        if st is None:
            return self.fail(call, "no-iq-result:session-terminate")
        if st.type != "result":
            return self.fail(call, "iq-error:session-terminate")
        call.done = True

    # --- sip-to-xmpp ---------------------------------------------------------

    async def answer(self, client: BenchClient, call: Call):
        a = self.args
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        try:
            ringing = client.iq(call.peer, jingle.ringing(call.sid), a.setup_timeout)
            accept = client.iq(call.peer, jingle.session_accept(call.sid, client.full_jid),
                               a.setup_timeout)
            (_, _, r_st), (a_sent, a_got, a_st) = await asyncio.gather(ringing, accept)
            call.accept_sent = a_sent
            if r_st is None or r_st.type != "result":
                return self.fail(call, "iq-error:session-info" if r_st else
                                 "no-iq-result:session-info")
            if a_st is None or a_st.type != "result":
                return self.fail(call, "iq-error:session-accept" if a_st else
                                 "no-iq-result:session-accept")
            call.accept_result = a_got
            await self.wait_for(call, lambda: call.terminate_in,
                                a.hold_ms / 1000 + a.setup_timeout + 30)
            if not call.terminate_in:
                return self.fail(call, "no-session-terminate")
            if call.terminate_reason != "success":
                return self.fail(call, f"terminated-by-gateway:{call.terminate_reason}")
            call.done = True
        finally:
            self.live -= 1

    def settled(self, expected: int) -> bool:
        return len(self.calls) >= expected and all(c.done for c in self.calls.values())

    async def settle(self, expected: int, sipp: BenchSipp, deadline: float):
        """Until every expected call finished, or SIPp exited and 5 s passed, or the deadline."""
        self.main_task = asyncio.current_task()
        sipp_gone = None
        while now() < deadline and not self.settled(expected):
            if sipp.proc.poll() is not None:
                sipp_gone = sipp_gone or now()
                if now() - sipp_gone > 5:
                    break
            await asyncio.sleep(0.05)

    async def cancel(self):
        """Stop the driving task and every call task still running."""
        tasks = list(self.tasks)
        if self.main_task is not None and self.main_task is not asyncio.current_task():
            tasks.append(self.main_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, expected: int):
        await self.cancel()
        self.fail_unfinished(expected)

    def fail_unfinished(self, expected: int):
        for c in self.calls.values():
            if not c.done:
                self.fail(c, "unfinished")
        for _ in range(expected - len(self.calls)):
            self.failures.add("not-received" if self.direction == "sip-to-xmpp" else "not-sent")


# --- one direction ---------------------------------------------------------------

def achieved(n: int, first: float | None, last: float | None) -> str:
    if first is None or last is None or last <= first or n < 2:
        return "-"
    return f"{(n - 1) / (last - first):.1f}"


def run_direction(direction: str, a, env: dict) -> Report:
    xloop, prosody, probe, clients = env["xloop"], env["prosody"], env["probe"], env["clients"]
    name = f"through-prosody-{direction}"
    wdir = Path(a.work_dir) / name
    if wdir.exists():
        shutil.rmtree(wdir)
    wdir.mkdir(parents=True)
    calls = max(1, round(a.rate * a.duration))
    run = Run(direction, a)
    env["run"] = run
    for c in clients:
        c.bench = run

    gw = Gateway(wdir, prosody, iq_timeout_ms=10_000)   # the gateway's default
    env["started"].append(gw)
    t0 = now()
    gw.start(probe, timeout=30)
    startup = now() - t0
    sipp = None
    try:
        if direction == "xmpp-to-sip":
            sipp = BenchSipp(wdir, "uas.xml", calls=calls, port=gw.uas_port,
                             timeout=int(a.duration + a.hold_ms / 1000 + 60),
                             ring_ms=a.ring_ms, wait_ms=a.hold_ms + 30_000, linger_ms=0)
            env["started"].append(sipp)
            sipp.start()
            time.sleep(0.5)
        else:
            inject = wdir / "users.csv"
            inject.write_text("SEQUENTIAL\n" + "".join(f"user{i};\n" for i in range(a.users)))
            sipp = BenchSipp(wdir, "uac.xml", calls=calls, rate=a.rate, inject=inject,
                             remote=gw.sip_addr(), port=free_port(udp_too=True),
                             timeout=int(a.duration + a.hold_ms / 1000 + 60),
                             rewrite=[("{{user}}[call_number]", "[field0]")],
                             domain=DOMAIN, hold_ms=a.hold_ms)
            env["started"].append(sipp)

        ticks0, prosody_ticks0, own0 = cpu_ticks(gw.proc.pid), tree_ticks(prosody.proc.pid), own_cpu()
        rss0 = rss_kib(gw.proc.pid)[0]
        w0 = now()
        deadline = w0 + a.duration + a.hold_ms / 1000 + a.setup_timeout + 30
        try:
            if direction == "xmpp-to-sip":
                xloop.run(asyncio.wait_for(run.place_all(clients, calls, a.rate),
                                           deadline - now()), deadline - now() + 5)
            else:
                sipp.start()
                xloop.run(run.settle(calls, sipp, deadline), deadline - now() + 5)
        except (asyncio.TimeoutError, TimeoutError):
            run.timed_out = True          # the calls not finished are counted below
        code = sipp.finish(15)
        window = now() - w0
        ticks = cpu_ticks(gw.proc.pid) - ticks0
        prosody_ticks = tree_ticks(prosody.proc.pid) - prosody_ticks0
        own = own_cpu() - own0
        rss, peak = rss_kib(gw.proc.pid)
    finally:
        if sipp is not None:
            sipp.kill()
        gw.stop(timeout=15)
    gw_exit = gw.exit_code()

    # On the loop: stop what is still waiting, count the calls not finished.
    xloop.run(run.close(calls), 10)
    us = 1e6 / a.clk_tck
    r = Report(name)
    r.add("direction", direction)
    r.add("path", "slixmpp c2s -> prosody -> component -> gateway -> sipp (udp)")
    r.add("transport", "udp")
    r.add("offered_cps", f"{a.rate:g}")
    r.add("duration_s", f"{a.duration:g}")
    r.add("hold_ms", a.hold_ms)
    r.add("ring_ms", a.ring_ms)
    r.add("xmpp_users", len(clients))
    r.add("prosody_nagle", a.prosody_nagle)
    r.add("prosody_log", a.prosody_log)
    r.add("calls_placed", calls)
    r.add("gateway_startup_ms", round(startup * 1000))
    r.add("gateway_cpu_ticks", ticks)
    r.add("gateway_cpu_percent", f"{100 * ticks * us / 1e6 / window:.1f}")
    r.add("cpu_us_per_call", f"{ticks * us / calls:.1f}")
    r.add("prosody_cpu_us_per_call", f"{prosody_ticks * us / calls:.1f}")
    r.add("driver_cpu_us_per_call", f"{own * 1e6 / calls:.1f}")
    r.add("baseline_rss_kib", rss0)
    r.add("end_rss_kib", rss)
    r.add("peak_rss_kib", peak)
    values = list(run.calls.values())
    if direction == "xmpp-to-sip":
        accepted = [c for c in values if c.accept]
        first = min((c.sent for c in values if c.sent), default=None)
        last = max((c.accept for c in accepted), default=None)
        r.add("achieved_cps", achieved(len(accepted), first, last))
        r.add("answered", len(accepted))
    else:
        first = min((c.initiate_in for c in values), default=None)
        last = max((c.initiate_in for c in values), default=None)
        r.add("achieved_cps", achieved(len(values), first, last))
        r.add("answered", sum(1 for c in values if c.accept_result))
    r.add("completed", sum(1 for c in values if c.done and not c.failed))
    prefix = "sipp_uas" if direction == "xmpp-to-sip" else "sipp_uac"
    r.add(f"{prefix}_exit", "killed" if code is None else code)
    counts = sipp.counts()
    sipp_failed = 0
    if counts is None:
        r.add(f"{prefix}_stats", "unreadable")
    else:
        r.add(f"{prefix}_successful", counts[0])
        r.add(f"{prefix}_failed", counts[1])
        sipp_failed = counts[1]
        if counts[1]:
            r.add(f"{prefix}_errors_tail", tail(sipp.files["errors"], 6).replace("\n", " | "))
    r.add("driver_failed", run.failures.total())
    r.add("failed_calls", max(run.failures.total(), sipp_failed))
    if run.failures:
        r.add("failures", run.failures.display())
    r.add("outcome", "deadline" if run.timed_out else "done")
    r.add("max_concurrent_calls", run.max_live)
    if direction == "xmpp-to-sip":
        r.add("max_send_lag_ms", f"{run.max_send_lag * 1000:.3f}")
        r.latency("initiate_to_iq_result", [c.result - c.sent for c in values if c.result])
        r.latency("initiate_to_ringing", [c.ringing - c.sent for c in values if c.ringing])
        r.latency("initiate_to_accept", [c.accept - c.sent for c in values if c.accept])
    else:
        r.latency("sipp_invite_to_200", sipp_rtt(sipp.dir))
        r.latency("initiate_in_to_accept_sent",
                  [c.accept_sent - c.initiate_in for c in values if c.accept_sent])
        r.latency("accept_to_iq_result",
                  [c.accept_result - c.accept_sent for c in values if c.accept_result])
    r.add("gateway_exit", gw_exit)
    rows, ok_rows, live = sessions(gw.db)
    r.add("sessions_rows", rows)
    r.add("sessions_ended_success", ok_rows)
    r.add("sessions_live", live)
    r.add("rows_equal_calls_placed", str(rows == str(calls)).lower())
    return r


# --- main ------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(
        description="Gateway benchmark through a real Prosody (slixmpp c2s users, SIPp).",
        epilog="--out FILE: key=value figures for `stox-bench summary`; with both directions "
               "'{direction}' in FILE is replaced (else -DIRECTION is added before .kv).")
    p.add_argument("--rate", type=float, default=20.0, help="calls per second (default 20)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of calls (default 20)")
    p.add_argument("--hold-ms", type=int, default=1000, help="time in the call (default 1000)")
    p.add_argument("--ring-ms", type=int, default=0, help="SIPp UAS 180 -> 200 (default 0)")
    p.add_argument("--users", type=int, default=20, help="slixmpp c2s users (default 20)")
    p.add_argument("--direction", choices=[*DIRECTIONS, "both"], default="xmpp-to-sip")
    p.add_argument("--setup-timeout", type=float, default=15.0,
                   help="seconds to wait for an IQ answer or a session-accept (default 15)")
    p.add_argument("--prosody-log", choices=["debug", "info", "warn"], default="info",
                   help="Prosody's log level (default info; the e2e tests use debug)")
    p.add_argument("--prosody-nagle", choices=["on", "off"], default="on",
                   help="Prosody's Nagle algorithm on its sockets (default on, Prosody's "
                        "default; off = network_settings.nagle = false)")
    p.add_argument("--work-dir", default=None, help="logs, configs, databases (default: a new /tmp dir)")
    p.add_argument("--out", default=None, help="write the figures as key=value lines")
    p.add_argument("--clk-tck", type=int, default=os.sysconf("SC_CLK_TCK"))
    p.add_argument("--gateway-bin", default=os.environ.get(
        "STOX_BENCH_GATEWAY_BIN", str(REPO / "target" / "release" / "stox-gateway")))
    a = p.parse_args()
    if a.rate <= 0 or a.duration <= 0 or a.users < 1:
        p.error("--rate, --duration and --users must be positive")
    return a


def out_path(a, direction: str, several: bool) -> Path | None:
    if not a.out:
        return None
    if "{direction}" in a.out:
        return Path(a.out.replace("{direction}", direction))
    if not several:
        return Path(a.out)
    base = Path(a.out)
    return base.with_name(f"{base.stem}-{direction}{base.suffix or '.kv'}")


class Stop(Exception):
    pass


def main() -> int:
    a = parse_args()
    binary = Path(a.gateway_bin)
    if not binary.is_absolute():
        binary = Path.cwd() / binary
    if not binary.exists():
        print(f"through_prosody: {binary} is missing (build it, or set STOX_BENCH_GATEWAY_BIN)",
              file=sys.stderr)
        return 2
    a.work_dir = a.work_dir or subprocess.run(
        ["mktemp", "-d", "/tmp/stox-bench-prosody-XXXXXX"], capture_output=True,
        text=True, check=True).stdout.strip()
    Path(a.work_dir).mkdir(parents=True, exist_ok=True)

    # The harness modules read these at call time.
    gateway_mod.BINARY = binary
    # The gateway's production log filter (its default when RUST_LOG is unset).
    os.environ["STOX_E2E_RUST_LOG"] = os.environ.get("RUST_LOG", "info,rsipstack=warn")
    users = [f"user{i}" for i in range(a.users)]
    prosody_mod.USERS = tuple(dict.fromkeys((*prosody_mod.USERS, *users)))
    # Prosody logs at info, as in production (the e2e tests log at debug).
    if a.prosody_log != "debug" and 'log = {{ debug = ' in prosody_mod.CONFIG:
        prosody_mod.CONFIG = prosody_mod.CONFIG.replace(
            'log = {{ debug = ', f'log = {{{{ {a.prosody_log} = ')
    # Prosody leaves Nagle on by default (server_epoll `nagle = true`): a stanza
    # written right after another waits for the peer's (delayed) ACK, up to ~40 ms.
    if a.prosody_nagle == "off":
        prosody_mod.CONFIG = "network_settings = {{ nagle = false }}\n" + prosody_mod.CONFIG

    def on_signal(signum, _frame):
        raise Stop(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    directions = list(DIRECTIONS) if a.direction == "both" else [a.direction]
    env = {"started": [], "clients": []}
    xloop = prosody = None
    reports = []
    code = 0
    try:
        prosody = BenchProsody().start()
        xloop = XmppLoop()
        env.update(xloop=xloop, prosody=prosody)
        probe = JingleClient(xloop, f"alice@{DOMAIN}/probe", PASSWORD, HOST,
                             prosody.c2s_port).connect()
        env["probe"] = probe
        for u in users:
            c = BenchClient(xloop, f"{u}@{DOMAIN}/res", PASSWORD, HOST, prosody.c2s_port,
                            bench=None)
            env["clients"].append(c.connect(timeout=20))
        print(f"through_prosody: Prosody c2s {prosody.c2s_port}, {len(users)} users online; "
              f"{a.rate:g} calls/s for {a.duration:g} s, hold {a.hold_ms} ms; "
              f"work dir {a.work_dir}", flush=True)
        for d in directions:
            r = run_direction(d, a, env)
            r.print()
            reports.append(r)
            path = out_path(a, d, len(directions) > 1)
            if path is not None:
                r.save(path)
    except Stop as e:
        print(f"through_prosody: stopped by {e}", file=sys.stderr)
        code = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in reversed(env["started"]):
            try:
                proc.kill() if isinstance(proc, Sipp) else proc.stop()
            except Exception as e:          # keep stopping the rest
                print(f"through_prosody: stopping {proc}: {e}", file=sys.stderr)
        if env.get("run") is not None:
            try:
                xloop.run(env["run"].cancel(), 5)
            except Exception:
                pass
        for c in env["clients"] + ([env["probe"]] if "probe" in env else []):
            c.disconnect(timeout=2)
        if xloop is not None:
            xloop.stop()
        if prosody is not None:
            prosody.stop()
            for f in ("prosody.log", "prosody.cfg.lua", "prosody.stdout"):
                try:
                    shutil.copy(prosody.dir / f, Path(a.work_dir) / f)
                except OSError:
                    pass
            prosody.cleanup()
    print(f"through_prosody: logs and configs in {a.work_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
