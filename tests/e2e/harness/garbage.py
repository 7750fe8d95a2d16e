"""Bytes that are not SIP, thrown at the gateway's UDP, TCP and WebSocket ports."""

import base64
import os
import socket

from .net import HOST

SIPISH = [
    os.urandom(300),
    b"\x00" * 16,
    b"INVITE\r\n\r\n",
    b"INVITE sip:juliet@example.com SIP/2.0\r\nVia: nonsense\r\nContent-Length: 99999\r\n\r\nv=0",
    b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
    b"BYE sip:x SIP/2.0\r\nCall-ID: \xff\xfe\r\n\r\n",
]


def udp(port: int):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in SIPISH + [b"A" * 60000]:
            try:
                s.sendto(payload, (HOST, port))
            except OSError:
                pass  # e.g. ICMP port unreachable from the previous datagram


def tcp(port: int):
    for payload in SIPISH + [b"REGISTER sip:x SIP/2.0\r\nContent-Length: 10\r\n"]:
        _send_and_close(port, payload)


def ws(port: int):
    _send_and_close(port, os.urandom(200))                      # not HTTP at all
    _send_and_close(port, _handshake(port, protocol=None))      # no `sip` subprotocol
    try:
        with socket.create_connection((HOST, port), timeout=3) as s:
            s.sendall(_handshake(port, "sip"))
            s.recv(4096)                                        # 101 (or a refusal)
            s.sendall(_frame(0x1, b"this is not SIP\r\n\r\n"))
            s.sendall(_frame(0x2, os.urandom(100)))
            s.sendall(_frame(0x1, SIPISH[3]))
            s.sendall(b"\x81\x05hello")                         # unmasked: a protocol error
    except OSError:
        pass


def _send_and_close(port: int, payload: bytes):
    try:
        with socket.create_connection((HOST, port), timeout=3) as s:
            s.sendall(payload)
            s.settimeout(0.3)
            try:
                s.recv(4096)
            except OSError:
                pass
    except OSError:
        pass


def _handshake(port: int, protocol: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET / HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 64 KiB)."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
