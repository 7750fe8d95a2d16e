"""Loopback helpers: free ports, waiting for a port, reading log tails."""

import random
import socket
import time
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
