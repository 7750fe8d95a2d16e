"""Loopback helpers: free ports, waiting for a port, reading log tails."""

import socket
import time
from pathlib import Path

HOST = "127.0.0.1"


def _free(kind: int, port: int = 0) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return s.getsockname()[1]


def free_port(udp_too: bool = False) -> int:
    """A loopback port that is free for TCP (and for UDP when asked).

    There is a small race between closing the probe socket and the real
    process binding the port; on a test machine that is acceptable."""
    for _ in range(50):
        port = _free(socket.SOCK_STREAM)
        if not udp_too:
            return port
        try:
            return _free(socket.SOCK_DGRAM, port)
        except OSError:
            continue
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
