"""RFC 4475 (SIP torture tests) sent to the running gateway over UDP and TCP:
the valid messages of §3.1.1 are handled, the invalid ones of §3.1.2 and the
application-layer errors of §3.3 are answered 400 (505 for SIP/7.0) or
dropped where the RFC says so, none of them rings the XMPP user they are
addressed to, and the gateway neither dies nor logs a panic.

The vectors are the files of crates/sipcore/testdata/rfc4475 (the same the
SIP layer's unit tests read). Their `user@example.com` is rewritten, in the
header part only, to juliet's SIP address, so that an invalid INVITE that got
through would ring a real XMPP user (as it did before the SIP layer issue).
Over UDP the gateway answers to the source IP and the Via port (5060 where
the Via names none, RFC 3261 §18.2.2), so each vector is sent from its own
127.0.0.x and the port its Via names (the INVITE answers the gateway retransmits, unacknowledged,
then reach nobody else's socket)."""

import re
import socket
import time
from pathlib import Path

import pytest

from harness import jingle
from harness.calls import assert_result, quick_call_to_xmpp
from harness.net import HOST

pytestmark = pytest.mark.gateway

VECTORS = Path(__file__).resolve().parents[2] / "crates/sipcore/testdata/rfc4475"
JULIET = b"juliet@example.com;gr=balcony"

# What the gateway answers: the final status, None for a response (stray,
# dropped). INVITEs get a 100 first; "ring" means the INVITE is valid and
# rings juliet, who declines (603).
VALID = {
    "wsinv": 481,      # an INVITE with a To tag outside any dialog (§12.2.2)
    "intmeth": 501,    # an unknown method
    "esc01": 404,      # the user part is "sips:user@example.com": no such JID
    "escnull": 405,    # REGISTER: not served
    "esc02": 501,      # RE%47IST%45R is not REGISTER
    "lwsdisp": 200,    # OPTIONS
    "longreq": "ring",
    "dblreq": 405,     # UDP: the trailing INVITE in the datagram is ignored
    "semiuri": 200,
    "transports": 200,
    "mpart01": 405,    # MESSAGE
    "unreason": None,
    "noreason": None,
}
INVALID = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "scalarlg": None,
    "quotbal": 400, "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400,
    "escruri": 400, "baddate": 400, "regbadct": 400, "badaspec": 400, "baddn": 400,
    "badvers": 505, "mismatch01": 400, "mismatch02": 400, "bigcode": None,
}
SEMANTIC = {"insuf": 400, "multi01": 400}


def vector(folder: str, name: str) -> bytes:
    data = (VECTORS / folder / f"{name}.sip").read_bytes()
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.replace(b"user@example.com", JULIET) + sep + body


def call_id(data: bytes) -> str | None:
    m = re.search(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", data, re.I | re.M)
    return m.group(1).decode("latin-1") if m else None


def via_port(data: bytes) -> int:
    """The port of the top Via's sent-by (5060 when it names none)."""
    m = re.search(rb"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*[\d.]+[ \t]*/[ \t]*\w+[ \t]+"
                  rb"[^;:\s]+(?::(\d+))?", data, re.I | re.M)
    return int(m.group(1)) if m and m.group(1) else 5060


def status_of(message: bytes) -> int | None:
    m = re.match(rb"SIP/2\.0 (\d{3}) ", message)
    return int(m.group(1)) if m else None


class Udp:
    def __init__(self, port: int, source: tuple[str, int]):
        self.dest = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(source)

    def send(self, data: bytes):
        self.sock.sendto(data, self.dest)

    def statuses(self, until_final: bool, wait: float) -> list[int]:
        """Statuses received within `wait` s (or until a final one)."""
        got, end = [], time.monotonic() + wait
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            got.append(status_of(data))
            if until_final and got[-1] and got[-1] >= 200:
                break
        return got

    def close(self):
        self.sock.close()


class Tcp:
    """One connection per vector; responses framed by Content-Length."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=3)
        self.buf = b""
        self.closed = False

    def send(self, data: bytes):
        self.sock.sendall(data)

    def statuses(self, until_final: bool, wait: float) -> list[int]:
        got, end = [], time.monotonic() + wait
        while time.monotonic() < end and not self.closed:
            while b"\r\n\r\n" in self.buf:
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                m = re.search(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head, re.I | re.M)
                size = int(m.group(1)) if m else 0
                if len(rest) < size:
                    break
                self.buf = rest[size:]
                got.append(status_of(head))
                if until_final and got[-1] and got[-1] >= 200:
                    return got
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = self.sock.recv(65535)
            except socket.timeout:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buf += chunk
        return got

    def close(self):
        self.sock.close()


def exchange(gateway, juliet, transport: str, data: bytes, want, source: str) -> list[int]:
    """Sends one vector; returns the statuses it got. A valid INVITE that
    rings juliet is declined by her."""
    conn = Udp(gateway.sip_port, (source, via_port(data))) if transport == "udp" else Tcp(gateway.sip_port)
    try:
        conn.send(data)
        if want == "ring":
            init = juliet.expect("session-initiate", 10)
            assert_result(juliet.send_iq(init.frm, jingle.session_terminate(init.sid, "decline")))
        return conn.statuses(until_final=want is not None, wait=5.0 if want else 0.5)
    finally:
        conn.close()


def check(gateway, juliet, transport: str, folder: str, name: str, want, source: str):
    data = vector(folder, name)
    got = exchange(gateway, juliet, transport, data, want, source)
    where = f"{folder}/{name} over {transport}: got {got}"
    if want is None:
        assert got == [], f"{where}: a response is dropped"
    elif want == "ring":
        assert got == [100, 603], where
    elif folder == "valid" and data.startswith(b"INVITE"):
        assert got in ([100, want], [want]), where
    elif transport == "tcp" and name == "clerr":
        # Content-Length 9999 on a stream: the gateway waits for the body
        # (and closes a connection that never completes a message).
        assert got == [], where
    else:
        assert got == [want], where
    assert gateway.exit_code() is None, f"{where}: the gateway died"
    if folder != "valid" and call_id(data):
        rows = [r for r in gateway.rows() if r["sip_call_id"] == call_id(data)]
        assert rows == [], f"{where}: an invalid request made a call: {rows}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
# Each vector comes from its own 127.0.0.x: a trusted lab network, so the
# answers are the parser's, not the trust check's 403.
@pytest.mark.gateway_config(peers=[{"name": "lab", "sources": ["127.0.0.0/24"]}],
                            extra={"sip": {"max_requests_per_source": 0}})
def test_rfc4475_vectors_through_the_running_gateway(gateway, juliet, sipp, transport):
    n = 0
    for folder, table in (("valid", VALID), ("invalid", INVALID), ("semantic", SEMANTIC)):
        for name, want in table.items():
            if transport == "tcp" and name == "dblreq":
                continue  # a datagram test: on a stream the trailing INVITE is a second message
            n += 1
            check(gateway, juliet, transport, folder, name, want, f"127.0.0.{100 + n}")

    # Only the valid longreq rang juliet; nothing else reached her.
    inits = [st for st in juliet.received() if st.action == "session-initiate"]
    assert len(inits) == 1, [st.text() for st in inits]
    log = gateway.log_text()
    assert "panicked" not in log, log[-3000:]
    row = quick_call_to_xmpp(gateway, juliet, sipp, transport)
    assert row["end_reason"] == "success", row
