"""Run SIPp scenarios from tests/e2e/sipp and read back their message traces."""

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .net import HOST, free_port, port_in_use, tail, wait_until

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"

# Values for the {{placeholders}} in the scenario files.
DEFAULTS = {
    "ruri": "sip:juliet@example.com;gr=balcony",
    "from_uri": "sip:romeo@example.net",
    "to_uri": None,            # defaults to ruri
    "media_port": 7078,        # the UAC's offered RTP port
    "answer_port": 6000,       # the UAS's answered RTP port
    "answer_port_video": 6002, # … and video port (upgrade scenarios)
    "media_port_video": 7080,  # the UAC's offered video port (upgrade scenarios)
    "xmpp_video_port": 42002,  # the video port the XMPP client answers with
    "ring_ms": 1000,           # UAS: 180 -> final response
    "hold_ms": 1500,           # time in a call (or ringing) before hanging up
    "wait_ms": 10000,          # how long to wait for a peer's BYE/CANCEL
    "refresh_after_ms": 200,   # UAS refresh scenario: ACK -> its re-INVITE
    "session_expires": 4,      # RFC 4028 scenarios: Session-Expires asked for / answered
    "min_se": 2,               # … and Min-SE
    "refresh_ms": 2000,        # … and how often the SIPp UAC refreshes
    "code": 486,
    "reason": "Busy Here",
}


@dataclass
class SipMessage:
    direction: str               # "sent" | "received"
    transport: str
    first_line: str
    headers: list = field(default_factory=list)   # [(lower-case name, value)]
    body: str = ""

    @property
    def method(self) -> str | None:
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ")[0]

    @property
    def status(self) -> int | None:
        if self.first_line.startswith("SIP/2.0"):
            return int(self.first_line.split(" ")[1])
        return None

    @property
    def uri(self) -> str:
        return self.first_line.split(" ")[1]

    def header(self, name: str) -> str | None:
        name = _COMPACT.get(name.lower(), name.lower())
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def cseq_method(self) -> str:
        return (self.header("cseq") or " ").split()[-1]

    @property
    def sdp(self) -> list[str]:
        return [line for line in self.body.splitlines() if line]

    def __str__(self):
        hdrs = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"[{self.direction}] {self.first_line}\n{hdrs}\n\n{self.body}"


_COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
            "c": "content-type", "f": "from", "s": "subject", "k": "supported",
            "t": "to", "v": "via"}
_BLOCK = re.compile(r"^(\w+) message (sent|received)", re.M)


def parse_trace(text: str) -> list[SipMessage]:
    out = []
    for block in re.split(r"^-{20,}.*$", text, flags=re.M):
        m = _BLOCK.search(block)
        if not m:
            continue
        raw = block[block.index("\n", m.end()) + 1:].lstrip("\r\n")
        head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        msg = SipMessage(m.group(2), m.group(1), lines[0].strip(), body=body.strip("\n"))
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                msg.headers.append((_COMPACT.get(key, key), value.strip()))
        out.append(msg)
    return out


@dataclass
class SippResult:
    returncode: int
    messages: list
    trace: str
    errors: str
    screen: str

    def find(self, direction: str, method: str | None = None, status: int | None = None,
             cseq: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == direction
                and (method is None or m.method == method)
                and (status is None or m.status == status)
                and (cseq is None or m.cseq_method == cseq)]

    def one(self, direction: str, **kw) -> SipMessage:
        found = self.find(direction, **kw)
        assert found, f"no {direction} SIP message {kw}; trace:\n{self.summary()}"
        return found[0]

    def summary(self) -> str:
        return "\n".join(f"  {m.direction:8} {m.first_line}" for m in self.messages)

    def assert_ok(self):
        assert self.returncode == 0, (
            f"SIPp exited {self.returncode}\n{self.summary()}\n--- errors ---\n{self.errors}"
            f"\n--- screen ---\n{self.screen[-3000:]}")


class Sipp:
    """One SIPp process: a UAS (listens on `port`) or a UAC (calls `remote`)."""

    def __init__(self, workdir: Path, scenario: str, *, remote: str | None = None,
                 transport: str = "udp", port: int | None = None, timeout: int = 30,
                 **params):
        self.name = scenario.removesuffix(".xml")
        self.dir = Path(workdir) / f"sipp-{self.name}-{os.getpid()}-{id(self)}"
        self.dir.mkdir(parents=True)
        self.port = port or free_port(udp_too=True)
        self.remote = remote
        # Another loopback address makes another source (127.0.0.2 …).
        self.local_ip = params.pop("local_ip", HOST)
        self.transport = transport
        self.timeout = timeout
        values = {**DEFAULTS, **params}
        values["to_uri"] = values["to_uri"] or values["ruri"]
        self.params = values
        self.proc = None
        self.result = None

    @property
    def files(self) -> dict[str, Path]:
        return {k: self.dir / f"{k}.log" for k in ("messages", "errors", "screen")}

    def _scenario_file(self) -> Path:
        text = (SCENARIOS / f"{self.name}.xml").read_text()
        text = re.sub(r"\{\{(\w+)\}\}", lambda m: str(self.params[m.group(1)]), text)
        path = self.dir / f"{self.name}.xml"
        path.write_text(text)
        return path

    def command(self) -> list[str]:
        f = self.files
        cmd = ["sipp"] + ([self.remote] if self.remote else []) + [
            "-sf", str(self._scenario_file()), "-i", self.local_ip, "-p", str(self.port),
            "-t", "t1" if self.transport == "tcp" else "u1",
            "-m", "1", "-nostdin", "-timeout", f"{self.timeout}s", "-timeout_error",
            "-trace_msg", "-message_file", str(f["messages"]),
            "-trace_err", "-error_file", str(f["errors"])]
        return cmd

    def start(self, attempts: int = 4):
        for attempt in range(attempts):
            with open(self.files["screen"], "wb") as screen:
                self.proc = subprocess.Popen(self.command(), cwd=self.dir, stdout=screen,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            if self.remote is not None:
                return self
            # A UAS: wait until it listens.
            udp = self.transport == "udp"
            if not wait_until(lambda: self.proc.poll() is not None
                              or port_in_use(self.port, udp=udp), 5):
                raise RuntimeError(f"SIPp {self.name} did not bind port {self.port}")
            if self.proc.poll() is None:
                return self
            screen_text = tail(self.files["screen"])
            # The port the gateway was configured with is briefly held by a
            # process that is going away (a SIPp of the test before): again.
            if "errno = 98" in screen_text and attempt + 1 < attempts:
                time.sleep(0.5)
                continue
            raise RuntimeError(f"SIPp {self.name} exited at once:\n{screen_text}")
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        if self.result is not None:
            return self.result
        try:
            code = self.proc.wait(timeout or self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait(5)
        f = self.files
        trace = f["messages"].read_text(errors="replace") if f["messages"].exists() else ""
        self.result = SippResult(code, parse_trace(trace), trace,
                                 tail(f["errors"]) if f["errors"].exists() else "",
                                 tail(f["screen"]))
        return self.result

    def run(self) -> SippResult:
        return self.start().wait()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
