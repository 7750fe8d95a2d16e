"""rtpengine-daemon for the media tests: started in userspace on loopback
(no kernel module, no config file), with a small NG client to ask it what
it holds (`list`, `query`)."""

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .net import HOST, free_port, tail


def _benc(v) -> bytes:
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(_benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(_benc(k) + _benc(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(type(v))


def _bdec(s: bytes, i: int = 0):
    c = s[i:i + 1]
    if c == b"i":
        j = s.index(b"e", i)
        return int(s[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while s[i:i + 1] != b"e":
            v, i = _bdec(s, i)
            items.append(v)
        i += 1
        if c == b"l":
            return items, i
        return {items[k]: items[k + 1] for k in range(0, len(items), 2)}, i
    j = s.index(b":", i)
    n = int(s[i:j])
    raw = s[j + 1:j + 1 + n]
    try:
        return raw.decode(), j + 1 + n
    except UnicodeDecodeError:
        return raw, j + 1 + n


class Rtpengine:
    def __init__(self, workdir: Path, port_min: int = 40000, port_max: int = 40999):
        binary = shutil.which("rtpengine")
        if binary is None:
            raise RuntimeError("rtpengine is not installed (tests/run.sh installs rtpengine-daemon)")
        self.ng_port = free_port(udp_too=True)
        self.log = Path(workdir) / "rtpengine.log"
        self.args = [binary, "--foreground", "--log-stderr", "--table=-1", "--no-fallback",
                     f"--interface={HOST}", f"--listen-ng={HOST}:{self.ng_port}",
                     f"--port-min={port_min}", f"--port-max={port_max}", "--log-level=6"]
        self.proc = None

    @property
    def ng(self) -> str:
        return f"{HOST}:{self.ng_port}"

    def start(self, timeout: float = 10.0) -> "Rtpengine":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited ({self.proc.returncode}):\n{tail(self.log)}")
            try:
                if self.command({"command": "ping"}, timeout=0.3).get("result") == "pong":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"rtpengine did not answer ping:\n{tail(self.log)}")

    def command(self, request: dict, timeout: float = 2.0) -> dict:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            cookie = str(random.randrange(1 << 30)).encode()
            s.sendto(cookie + b" " + _benc(request), (HOST, self.ng_port))
            data = s.recv(65535)
        return _bdec(data[data.index(b" ") + 1:])[0]

    def calls(self) -> list:
        """Call-IDs of the sessions rtpengine holds."""
        return self.command({"command": "list"}).get("calls", [])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
