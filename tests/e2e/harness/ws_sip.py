"""A small SIP-over-WebSocket user agent (RFC 7118), as a browser's SIP
client is one: it connects to the gateway, offers the `sip` subprotocol,
sends one SIP message per text frame, answers the server's pings, and
records what it receives. Synchronous, for tests."""

import base64
import os
import re
import socket
import time

from .net import HOST


class WsClosed(Exception):
    pass


class WsSip:
    def __init__(self, port: int, timeout: float = 5.0, tls=None):
        """`tls`: an ssl.SSLContext for wss (the server name is 127.0.0.1)."""
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=HOST)
        self.buf = b""
        self.pings = 0
        self.closed = False
        self.received: list[str] = []     # SIP messages, in order
        self._pending: list[str] = []     # received, not yet taken
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n")
                          .encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WsClosed("closed during the handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        assert b" 101 " in status, head.decode("latin-1")
        assert re.search(rb"(?im)^sec-websocket-protocol:\s*sip\s*$", head), head.decode("latin-1")

    # --- frames ------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes):
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x80 | opcode])
        if size < 126:
            head += bytes([0x80 | size])
        elif size < 65536:
            head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, message: str):
        self._send_frame(0x1, message.encode())

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError from None
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                raise WsClosed("connection closed by the gateway")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, deadline: float):
        b0, b1 = self._read(2, deadline)
        opcode, size = b0 & 0x0F, b1 & 0x7F
        if size == 126:
            size = int.from_bytes(self._read(2, deadline), "big")
        elif size == 127:
            size = int.from_bytes(self._read(8, deadline), "big")
        assert not b1 & 0x80, "a server's frames are not masked (RFC 6455 §5.1)"
        return opcode, self._read(size, deadline)

    def pump(self, seconds: float):
        """Reads for `seconds`: pings answered, SIP messages kept.
        Raises WsClosed when the gateway closes the connection."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                opcode, payload = self._frame(deadline)
            except TimeoutError:
                return
            if opcode == 0x9:
                self.pings += 1
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                self.closed = True
                raise WsClosed("close frame from the gateway")
            elif opcode in (0x1, 0x2):
                text = payload.decode("utf-8", "replace")
                self.received.append(text)
                self._pending.append(text)

    def expect(self, first_line: str, timeout: float = 10.0) -> str:
        """The next received message whose first line starts with `first_line`
        (a method, or "SIP/2.0 200") and, for responses, any earlier ones are
        skipped only if provisional."""
        deadline = time.monotonic() + timeout
        while True:
            for i, text in enumerate(self._pending):
                if text.startswith(first_line):
                    del self._pending[: i + 1]
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {first_line!r} within {timeout}s; received: "
                                     f"{[t.split(chr(13))[0] for t in self.received]}")
            self.pump(min(left, 0.2))

    def wait_closed(self, timeout: float) -> float:
        """Seconds until the gateway closes the connection (AssertionError if
        it stays open)."""
        start = time.monotonic()
        try:
            self.pump(timeout)
        except WsClosed:
            return time.monotonic() - start
        raise AssertionError(f"the connection is still open after {timeout}s")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def header(message: str, name: str) -> str | None:
    head = message.split("\r\n\r\n")[0]
    for line in head.split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name.lower():
            return v.strip()
    return None
