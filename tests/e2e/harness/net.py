"""Loopback helpers: free ports, waiting for a port, reading log tails, a
SIP OPTIONS keepalive."""

import random
import re
import socket
import time
import uuid
from pathlib import Path

HOST = "127.0.0.1"

# Ports free_port has handed out in this run.
_handed_out: set[int] = set()


def _free(kind: int, port: int = 0) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return s.getsockname()[1]


def free_port(udp_too: bool = False) -> int:
    """A loopback port that is free for TCP (and for UDP when asked).

    Taken below the kernel's ephemeral range (32768-60999 on Linux), so
    that a socket some process opens meanwhile (a client's TCP connection,
    a UDP socket bound to port 0) cannot be handed the same port between
    this probe and the real bind (seen: SIPp failing with EADDRINUSE on the
    port the gateway was configured with). Ports a test run hands out are
    not handed out again by it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        try:
            _free(socket.SOCK_STREAM, port)
            if udp_too:
                _free(socket.SOCK_DGRAM, port)
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def port_in_use(port: int, udp: bool = False) -> bool:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    try:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, port))
        return False
    except OSError:
        return True


def accepts(port: int) -> bool:
    """Something accepts TCP connections on the loopback `port`."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def sip_options(addr: str, timeout: float = 3.0) -> str:
    """The response to one OPTIONS outside a dialog sent over UDP to
    "host:port" (a keepalive as a dispatcher or a phone sends it): its
    whole text, "" when none came within `timeout`."""
    host, _, port = addr.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(timeout)
        me = s.getsockname()[1]
        tag = uuid.uuid4().hex[:10]
        s.sendto((f"OPTIONS sip:{addr} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {HOST}:{me};branch=z9hG4bK{tag};rport\r\n"
                  f"Max-Forwards: 70\r\nFrom: <sip:probe@{HOST}>;tag={tag}\r\n"
                  f"To: <sip:{addr}>\r\nCall-ID: {tag}@{HOST}\r\n"
                  f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
                 (host, int(port)))
        try:
            return s.recv(65535).decode(errors="replace")
        except OSError:
            return ""


def sip_options_status(addr: str, timeout: float = 2.0) -> int | None:
    """The status code of [sip_options]'s answer, None without one."""
    m = re.match(r"SIP/2\.0 (\d{3})", sip_options(addr, timeout))
    return int(m.group(1)) if m else None


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value; return it, or None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def tail(path: Path, lines: int = 200) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)
