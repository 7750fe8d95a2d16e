"""A minimal SIP user agent (RFC 3261 over UDP on 127.0.0.1) that owns a
media peer from harness.media whose RTP really flows.

`SipUa(media='webrtc'|'rtp')` is a UAS (`wait_invite` …: it answers every
INVITE with 100, 180, then 200 with its media peer's SDP answer, after
`ring_ms`, unless auto_answer=False: then `answer()` or `reject()`), a UAC
(`invite(...)`, `cancel()`, `bye()`), or both at once. One call at a time;
with media='webrtc' one call per SipUa (an aiortc connection is not reused).
UDP only; the 2xx ACK and BYE go to the first Record-Route, else to the
peer's Contact (its IPv4 address and port), else where the INVITE went.

A receiver thread handles every message; flows that wait (ringing, an
aiortc answer) run in their own daemon threads; tests call blocking
methods with timeouts. Every message sent and received, retransmissions
included, is kept in `log` (`log_text()` for a failure message)."""

import itertools
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from .media import MediaError, PlainRtpPeer, WebRtcPeer
from .net import HOST, free_port
from .sipp import _COMPACT, SipMessage

T1, T2 = 0.5, 4.0
TIMEOUT_64T1 = 64 * T1
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
AGENT = "stox-e2e-sip-ua"

_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


# --- messages -----------------------------------------------------------------

@dataclass
class SipMsg(SipMessage):
    """A SIP message as sent or received, with where from/to and when."""
    addr: tuple = ("", 0)
    at: float = 0.0
    raw: str = ""                   # the message as it went over the wire

    def headers_all(self, name: str) -> list[str]:
        """Every value of a header, comma-separated values split apart."""
        name = _COMPACT.get(name.lower(), name.lower())
        out = []
        for k, v in self.headers:
            if k == name:
                out += _split_commas(v) if name in ("via", "record-route", "route") else [v]
        return out

    @property
    def branch(self) -> str:
        vias = self.headers_all("via")
        return _param(vias[0], "branch") or "" if vias else ""

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq_num(self) -> int:
        try:
            return int((self.header("cseq") or "0").split()[0])
        except ValueError:
            return 0

    def tag(self, header: str) -> str | None:
        value = self.header(header)
        return _param(value, "tag") if value else None

    def line(self) -> str:
        return f"{self.at:8.3f} {self.direction:8} {self.addr[0]}:{self.addr[1]} {self.first_line}"


def parse_sip(data: bytes, direction: str, addr: tuple, at: float) -> SipMsg | None:
    text = data.decode("utf-8", errors="replace")
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].strip():
        return None
    msg = SipMsg(direction, "udp", lines[0].strip(), addr=addr, at=at, raw=text)
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:           # folded header line
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, f"{v} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            msg.headers.append((_COMPACT.get(key, key), value.strip()))
    length = msg.header("content-length")
    if length is not None and length.strip().isdigit():
        body = body.encode("utf-8")[: int(length)].decode("utf-8", errors="replace")
    msg.body = body
    return msg


def _split_commas(value: str) -> list[str]:
    """Split a header value on commas outside <> and quotes."""
    out, cur, depth, quoted = [], "", 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _param(value: str, name: str) -> str | None:
    """A ;name=value header parameter (after any <uri>); '' when valueless."""
    tail = value.rsplit(">", 1)[1] if ">" in value else value
    for part in tail.split(";")[1:]:
        k, eq, v = part.strip().partition("=")
        if k.strip().lower() == name:
            return v.strip() if eq else ""
    return None


def _uri(value: str) -> str:
    """The URI of a name-addr or addr-spec header value."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def _host_port(uri: str) -> tuple[str, int]:
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    hostport = rest.rsplit("@", 1)[-1]
    host, colon, port = hostport.partition(":")
    return host, int(port) if colon and port.isdigit() else 5060


def _new_tag() -> str:
    return uuid.uuid4().hex[:10]


def _new_branch() -> str:
    return f"z9hG4bK{uuid.uuid4().hex[:16]}"


def _build(first_line: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    raw = body.encode("utf-8")
    lines = [first_line] + [f"{k}: {v}" for k, v in headers] + [f"Content-Length: {len(raw)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + raw


# --- state --------------------------------------------------------------------

@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str            # our From (UAC) / To (UAS) value, without tag
    remote_uri: str
    remote_target: str        # the peer's Contact URI
    route_set: list[str]
    local_cseq: int
    peer: tuple[str, int]     # where the dialog's first request came from / went

    def next_hop(self) -> tuple[str, int]:
        uri = _uri(self.route_set[0]) if self.route_set else self.remote_target
        host, port = _host_port(uri)
        return (host, port) if _IPV4.match(host) else self.peer


@dataclass
class _ClientTx:
    method: str
    branch: str
    data: bytes
    dest: tuple[str, int]
    request: SipMsg | None = None
    local_tag: str = ""
    responses: list = field(default_factory=list)
    got: threading.Event = field(default_factory=threading.Event)
    final: threading.Event = field(default_factory=threading.Event)


@dataclass
class _ServerTx:
    request: SipMsg
    dest: tuple[str, int]
    last: bytes | None = None
    final_code: int = 0
    acked: threading.Event = field(default_factory=threading.Event)


class SipUaError(AssertionError):
    pass


class SipUa:
    _names = itertools.count(1)

    def __init__(self, media: str = "rtp", port: int | None = None, user: str | None = None,
                 ring_ms: int = 100, auto_answer: bool = True, name: str | None = None):
        if media not in ("webrtc", "rtp"):
            raise ValueError(f"media is 'webrtc' or 'rtp', not {media!r}")
        self.name = name or f"ua{next(self._names)}"
        self.user = user or self.name
        self.kind = media
        self.port = port or free_port(udp_too=True)
        self.ring_ms = ring_ms
        self.auto_answer = auto_answer
        self.media = WebRtcPeer(self.name) if media == "webrtc" else PlainRtpPeer(self.name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, self.port))
        self.sock.settimeout(0.2)
        self.t0 = time.monotonic()
        self.log: list[SipMsg] = []
        self.errors: list[str] = []
        self.local_sdp: str | None = None
        self.remote_sdp: str | None = None
        self.dialog: Dialog | None = None
        self.answered = threading.Event()      # 200 sent (UAS) or received (UAC)
        self.ended = threading.Event()         # BYE sent and answered, or received
        self.cancelled = threading.Event()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[SipMsg] = []      # new requests (no retransmissions)
        self._responses: list[SipMsg] = []     # new responses (no retransmissions)
        self._consumed: set[int] = set()       # ids of messages handed to a test
        self._client: dict[tuple[str, str], _ClientTx] = {}
        self._server: dict[tuple[str, str], _ServerTx] = {}
        self._awaiting_ack: dict[tuple[str, int], threading.Event] = {}
        self._acks_sent: dict[tuple[str, int, str], tuple[bytes, tuple]] = {}
        self._invite_tx: _ServerTx | None = None      # the INVITE we answer (UAS)
        self._uac_tx: _ClientTx | None = None         # the INVITE we sent (UAC)
        self._delayed_offer = False
        self._media_answered = False                  # UAC: an answer went into the media peer
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, name=f"sip-{self.name}", daemon=True)
        self._thread.start()

    # --- identity -----------------------------------------------------------

    @property
    def contact_uri(self) -> str:
        return f"sip:{self.user}@{HOST}:{self.port}"

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    # --- transport ----------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _send(self, data: bytes, dest: tuple[str, int]):
        msg = parse_sip(data, "sent", dest, self._now())
        with self._lock:
            if msg is not None:
                self.log.append(msg)
        try:
            self.sock.sendto(data, dest)
        except OSError as e:
            self.errors.append(f"send to {dest}: {e}")

    def _receive(self):
        while not self._closed.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data.strip():
                continue                                  # keep-alive CRLF
            msg = parse_sip(data, "received", addr, self._now())
            if msg is None:
                self.errors.append(f"unparsable datagram from {addr}: {data[:200]!r}")
                continue
            with self._lock:
                self.log.append(msg)
            try:
                if msg.status is None:
                    self._on_request(msg)
                else:
                    self._on_response(msg)
            except Exception as e:                        # keep receiving
                self.errors.append(f"handling {msg.first_line}: {e!r}")

    def _retransmit(self, data: bytes, dest: tuple[str, int], done: threading.Event,
                    cap: float = T2, first: float = T1):
        """Send again at T1, 2T1 … (capped) until `done` or 64*T1."""
        def loop():
            interval, deadline = first, time.monotonic() + TIMEOUT_64T1
            while not done.wait(interval) and not self._closed.is_set():
                if time.monotonic() >= deadline:
                    first_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
                    self.errors.append(f"gave up retransmitting {first_line}")
                    return
                self._send(data, dest)
                interval = min(interval * 2, cap)

        threading.Thread(target=loop, name=f"sip-rtx-{self.name}", daemon=True).start()

    # --- waiting --------------------------------------------------------------

    def _wait(self, pool: list, pred, timeout: float, what: str) -> SipMsg:
        def find():
            for m in pool:
                if id(m) not in self._consumed and pred(m):
                    self._consumed.add(id(m))
                    return m
            return None

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        if found is None:
            raise SipUaError(f"{self.name}: no {what} within {timeout}s\n{self.summary()}")
        return found

    def wait_request(self, method: str, timeout: float = 10.0, initial: bool | None = None) -> SipMsg:
        """The next request of this method not yet returned (initial: only
        out-of-dialog ones, False: only in-dialog ones)."""
        def pred(m):
            return m.method == method and (initial is None or initial == (m.tag("to") is None))
        return self._wait(self._requests, pred, timeout, method)

    def wait_invite(self, timeout: float = 10.0) -> SipMsg:
        """The next initial INVITE (answered on its own unless auto_answer=False)."""
        return self.wait_request("INVITE", timeout, initial=True)

    def wait_response(self, status: int | None = None, cseq: str | None = None,
                      timeout: float = 10.0) -> SipMsg:
        def pred(m):
            return (status is None or m.status == status) and (cseq is None or m.cseq_method == cseq)
        return self._wait(self._responses, pred, timeout, f"{status or ''} response to {cseq or 'any'}")

    def wait_answered(self, timeout: float = 10.0):
        if not self.answered.wait(timeout):
            raise SipUaError(f"{self.name}: call not answered within {timeout}s\n{self.summary()}")

    def wait_ended(self, timeout: float = 10.0):
        if not self.ended.wait(timeout):
            raise SipUaError(f"{self.name}: call not ended within {timeout}s\n{self.summary()}")

    def messages(self, direction: str | None = None, method: str | None = None,
                 status: int | None = None, cseq: str | None = None) -> list[SipMsg]:
        with self._lock:
            return [m for m in self.log if (direction is None or m.direction == direction)
                    and (method is None or m.method == method)
                    and (status is None or m.status == status)
                    and (cseq is None or m.cseq_method == cseq)]

    def summary(self) -> str:
        with self._lock:
            lines = [m.line() for m in self.log]
        if self.errors:
            lines += [f"error: {e}" for e in self.errors]
        return f"--- {self.name} SIP log ---\n" + "\n".join(lines)

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(f"--- {m.direction} {'to' if m.direction == 'sent' else 'from'} "
                             f"{m.addr[0]}:{m.addr[1]} at {m.at:.3f}s ---\n{m.raw.rstrip()}"
                             for m in self.log)

    # --- media ------------------------------------------------------------------

    def stats(self) -> tuple[int, int]:
        return self.media.stats()

    def wait_packets(self, min_each_way: int = 50, timeout: float = 10.0) -> tuple[int, int]:
        try:
            return self.media.wait_packets(min_each_way, timeout)
        except MediaError as e:
            raise SipUaError(f"{self.name}: {e}\n{self.summary()}") from None

    # --- responses we send (UAS side of transactions) ---------------------------------

    def _response_dest(self, req: SipMsg) -> tuple[str, int]:
        top = req.headers_all("via")[0]
        if _param(top, "rport") is not None:
            return req.addr
        sent_by = top.split(None, 1)[1].split(";", 1)[0].strip() if " " in top else ""
        _, colon, port = sent_by.rpartition(":") if sent_by.count(":") == 1 else ("", "", "")
        return req.addr[0], int(port) if colon and port.isdigit() else 5060

    def _vias_for_response(self, req: SipMsg) -> list[str]:
        vias = req.headers_all("via")
        top = vias[0]
        head, *params = top.split(";")
        sent_by_host = head.split()[-1].rsplit(":", 1)[0] if head.split() else ""
        out = []
        for p in params:
            if p.strip().lower() == "rport":
                p = f"rport={req.addr[1]}"
            out.append(p)
        if sent_by_host != req.addr[0] or _param(top, "rport") is not None:
            if _param(top, "received") is None:
                out.append(f"received={req.addr[0]}")
        return [";".join([head] + out)] + vias[1:]

    def _respond(self, req: SipMsg, tx: _ServerTx | None, code: int, reason: str,
                 to_tag: str | None = None, body: str = "", contact: bool = False,
                 extra: list[tuple[str, str]] | None = None) -> bytes:
        to = req.header("to") or ""
        if to_tag and _param(to, "tag") is None:
            to = f"{to};tag={to_tag}"
        headers = [("Via", v) for v in self._vias_for_response(req)]
        if code != 100:
            headers += [("Record-Route", v) for v in req.headers_all("record-route")]
        headers += [("From", req.header("from") or ""), ("To", to),
                    ("Call-ID", req.call_id), ("CSeq", req.header("cseq") or "")]
        if contact:
            headers.append(("Contact", f"<{self.contact_uri}>"))
        headers += [("Server", AGENT)] + list(extra or [])
        if body:
            headers.append(("Content-Type", "application/sdp"))
        data = _build(f"SIP/2.0 {code} {reason}", headers, body)
        dest = tx.dest if tx else self._response_dest(req)
        if tx is not None:
            tx.last = data
            if code >= 200:
                tx.final_code = code
        self._send(data, dest)
        return data

    def _record(self, msg: SipMsg, pool: list):
        with self._cond:
            pool.append(msg)
            self._cond.notify_all()

    # --- requests we receive ----------------------------------------------------------

    def _on_request(self, msg: SipMsg):
        method = msg.method
        if method == "ACK":
            self._on_ack(msg)
            return
        key = (msg.branch, method)
        with self._lock:
            tx = self._server.get(key)
            if tx is not None:                              # a retransmission
                if tx.last is not None:
                    self._send(tx.last, tx.dest)
                return
            tx = self._server[key] = _ServerTx(msg, self._response_dest(msg))
        handler = {"INVITE": self._on_invite, "BYE": self._on_bye, "CANCEL": self._on_cancel,
                   "OPTIONS": self._on_options, "UPDATE": self._on_update,
                   "INFO": self._on_info}.get(method)
        self._record(msg, self._requests)
        if handler is None:
            self._respond(msg, tx, 501, "Not Implemented", extra=[("Allow", ALLOW)])
        else:
            handler(msg, tx)

    def _in_dialog(self, msg: SipMsg) -> bool:
        d = self.dialog
        return d is not None and msg.call_id == d.call_id and msg.tag("to") == d.local_tag

    def _on_invite(self, msg: SipMsg, tx: _ServerTx):
        if msg.tag("to") is not None:
            if not self._in_dialog(msg):
                self._respond(msg, tx, 481, "Call/Transaction Does Not Exist")
                return
            threading.Thread(target=self._reinvite, args=(msg, tx), daemon=True).start()
            return
        with self._lock:
            busy = ((self._invite_tx is not None and self._invite_tx.final_code == 0)
                    or (self.answered.is_set() and not self.ended.is_set()))
            if not busy:
                self._invite_tx = tx
                self.answered.clear()
                self.ended.clear()
                self.cancelled.clear()
        if busy:
            self._respond(msg, tx, 486, "Busy Here")
            return
        self._respond(msg, tx, 100, "Trying")
        threading.Thread(target=self._uas_flow, args=(msg, tx), daemon=True).start()

    def _uas_flow(self, msg: SipMsg, tx: _ServerTx):
        tag = _new_tag()
        contact = msg.header("contact")
        with self._lock:
            self.dialog = Dialog(
                call_id=msg.call_id, local_tag=tag, remote_tag=msg.tag("from") or "",
                local_uri=re.sub(r";tag=[^;]*", "", msg.header("to") or ""),
                remote_uri=re.sub(r";tag=[^;]*", "", msg.header("from") or ""),
                remote_target=_uri(contact) if contact else _uri(msg.header("from") or ""),
                route_set=msg.headers_all("record-route"), local_cseq=random.randrange(1, 1000),
                peer=msg.addr)
        self._respond(msg, tx, 180, "Ringing", to_tag=tag, contact=True)
        started = time.monotonic()
        self.remote_sdp = msg.body if msg.body.strip() else None
        try:
            if self.remote_sdp:
                self.local_sdp = self.media.accept_offer(self.remote_sdp)
            else:
                self._delayed_offer = True
                self.local_sdp = self.media.create_offer()
        except Exception as e:
            self.errors.append(f"media refused the offer: {e!r}")
            self._final(msg, tx, 488, "Not Acceptable Here",
                        extra=[("Warning", f'399 {HOST} "{str(e)[:100]}"')])
            return
        if not self.auto_answer:
            return
        left = self.ring_ms / 1000 - (time.monotonic() - started)
        if left > 0 and self.cancelled.wait(left):
            return
        self.answer()

    def answer(self):
        """Send 200 OK with our SDP to the pending INVITE; retransmit it until ACK."""
        with self._lock:
            tx = self._invite_tx
            if tx is None or tx.final_code or self.cancelled.is_set():
                return
            req = tx.request
            data = self._respond(req, tx, 200, "OK", to_tag=self.dialog.local_tag,
                                 body=self.local_sdp or "", contact=True,
                                 extra=[("Allow", ALLOW)])
            acked = self._awaiting_ack.setdefault((req.call_id, req.cseq_num), threading.Event())
        self._retransmit(data, tx.dest, acked)
        self.answered.set()
        if not self._delayed_offer:
            self.media.start()

    def reject(self, code: int = 486, reason: str = "Busy Here"):
        """A final error to the pending INVITE (retransmitted until ACK)."""
        with self._lock:
            tx = self._invite_tx
            if tx is None or tx.final_code:
                return
            tag = self.dialog.local_tag if self.dialog else _new_tag()
        self._final(tx.request, tx, code, reason, to_tag=tag)

    def _final(self, req: SipMsg, tx: _ServerTx, code: int, reason: str,
               to_tag: str | None = None, extra=None):
        data = self._respond(req, tx, code, reason, to_tag=to_tag or _new_tag(), extra=extra)
        self._retransmit(data, tx.dest, tx.acked)
        self.media.stop()
        self.ended.set()

    def _reinvite(self, msg: SipMsg, tx: _ServerTx):
        """200 with our current SDP (o= unchanged when the SDP is)."""
        if msg.body.strip() and isinstance(self.media, PlainRtpPeer):
            self.remote_sdp = msg.body
            self.media.set_remote_sdp(msg.body)
            self.local_sdp = self.media.local_sdp("answer")
        elif msg.body.strip():
            self.remote_sdp = msg.body      # aiortc: no renegotiation, same answer
        with self._lock:
            data = self._respond(msg, tx, 200, "OK", to_tag=self.dialog.local_tag,
                                 body=self.local_sdp or "", contact=True, extra=[("Allow", ALLOW)])
            acked = self._awaiting_ack.setdefault((msg.call_id, msg.cseq_num), threading.Event())
        self._retransmit(data, tx.dest, acked)

    def _on_ack(self, msg: SipMsg):
        with self._lock:
            tx = self._server.get((msg.branch, "INVITE"))
            if tx is not None and tx.final_code >= 300:     # ACK to an error: hop by hop
                first = not tx.acked.is_set()
                tx.acked.set()
                if first:
                    self._record(msg, self._requests)
                return
            acked = self._awaiting_ack.get((msg.call_id, msg.cseq_num))
            first = acked is not None and not acked.is_set()
            if acked is not None:
                acked.set()
        if not first:
            return
        self._record(msg, self._requests)
        if self._delayed_offer and msg.body.strip():
            self._delayed_offer = False
            self.remote_sdp = msg.body
            self.media.accept_answer(msg.body)
            self.media.start()

    def _on_bye(self, msg: SipMsg, tx: _ServerTx):
        if not self._in_dialog(msg):
            self._respond(msg, tx, 481, "Call/Transaction Does Not Exist")
            return
        self._respond(msg, tx, 200, "OK")
        self.media.stop()
        self.ended.set()

    def _on_cancel(self, msg: SipMsg, tx: _ServerTx):
        with self._lock:
            inv = self._server.get((msg.branch, "INVITE"))
        if inv is None:
            self._respond(msg, tx, 481, "Call/Transaction Does Not Exist")
            return
        self._respond(msg, tx, 200, "OK")
        with self._lock:
            pending = inv.final_code == 0
            if pending:
                self.cancelled.set()
        if pending:
            tag = self.dialog.local_tag if self.dialog and self.dialog.call_id == msg.call_id else None
            self._final(inv.request, inv, 487, "Request Terminated", to_tag=tag)
            self.ended.set()

    def _on_options(self, msg: SipMsg, tx: _ServerTx):
        self._respond(msg, tx, 200, "OK", to_tag=None if msg.tag("to") else _new_tag(),
                      contact=True, extra=[("Allow", ALLOW), ("Accept", "application/sdp")])

    def _on_update(self, msg: SipMsg, tx: _ServerTx):
        if not self._in_dialog(msg):
            self._respond(msg, tx, 481, "Call/Transaction Does Not Exist")
            return
        body = ""
        if msg.body.strip():
            if isinstance(self.media, PlainRtpPeer):
                self.media.set_remote_sdp(msg.body)
                self.local_sdp = self.media.local_sdp("answer")
            body = self.local_sdp or ""
        self._respond(msg, tx, 200, "OK", body=body, contact=True)

    def _on_info(self, msg: SipMsg, tx: _ServerTx):
        self._respond(msg, tx, 200, "OK")

    # --- requests we send (UAC) ----------------------------------------------------

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport"

    def _start_client(self, method: str, data: bytes, branch: str, dest: tuple[str, int],
                      local_tag: str = "") -> _ClientTx:
        tx = _ClientTx(method, branch, data, dest, request=parse_sip(data, "sent", dest, 0),
                       local_tag=local_tag)
        with self._lock:
            self._client[(branch, method)] = tx
        self._send(data, dest)
        # INVITE: until any response (Timer A); others: until final (Timer E).
        self._retransmit(data, dest, tx.got if method == "INVITE" else tx.final,
                         cap=TIMEOUT_64T1 if method == "INVITE" else T2)
        return tx

    def invite(self, request_uri: str, target_host: str = HOST, target_port: int = 5060,
               from_user: str = "alice", to_uri: str | None = None,
               headers: list[tuple[str, str]] | None = None, wait: float | None = None) -> SipMsg | None:
        """Send an INVITE with our media peer's offer; with `wait`, block
        for the final response and return it, else return None at once
        (then wait_final / wait_answered / wait_response)."""
        from_uri = from_user if from_user.startswith(("sip:", "sips:")) else f"sip:{from_user}@{HOST}"
        to_value = f"<{to_uri or request_uri}>"
        from_value = f"<{from_uri}>"
        call_id = f"{uuid.uuid4().hex}@{HOST}"
        tag, branch = _new_tag(), _new_branch()
        with self._lock:
            self.dialog = None
            self.answered.clear()
            self.ended.clear()
            self.cancelled.clear()
            self._media_answered = False
        self.local_sdp = self.media.create_offer()
        cseq = 1
        hdrs = [("Via", self._via(branch)), ("Max-Forwards", "70"),
                ("From", f"{from_value};tag={tag}"), ("To", to_value), ("Call-ID", call_id),
                ("CSeq", f"{cseq} INVITE"), ("Contact", f"<{self.contact_uri}>"),
                ("Allow", ALLOW), ("User-Agent", AGENT)] + list(headers or [])
        hdrs.append(("Content-Type", "application/sdp"))
        data = _build(f"INVITE {request_uri} SIP/2.0", hdrs, self.local_sdp)
        self._uac_tx = self._start_client("INVITE", data, branch, (target_host, target_port),
                                          local_tag=tag)
        return self.wait_final(wait) if wait is not None else None

    def wait_final(self, timeout: float = 10.0) -> SipMsg:
        """The final response to our INVITE."""
        tx = self._uac_tx
        if tx is None:
            raise SipUaError(f"{self.name}: no INVITE sent")
        if not tx.final.wait(timeout):
            raise SipUaError(f"{self.name}: no final response to the INVITE within {timeout}s\n"
                             f"{self.summary()}")
        return next(r for r in reversed(tx.responses) if r.status >= 200)

    def cancel(self, timeout: float = 5.0) -> SipMsg | None:
        """CANCEL our pending INVITE; returns the CANCEL's final response."""
        tx = self._uac_tx
        if tx is None or tx.final.is_set():
            return None
        req = tx.request
        hdrs = [("Via", req.headers_all("via")[0]), ("Max-Forwards", "70"),
                ("From", req.header("from")), ("To", req.header("to")),
                ("Call-ID", req.call_id), ("CSeq", f"{req.cseq_num} CANCEL"),
                ("User-Agent", AGENT)]
        data = _build(f"CANCEL {req.uri} SIP/2.0", hdrs)
        ctx = self._start_client("CANCEL", data, tx.branch, tx.dest)
        if not ctx.final.wait(timeout):
            raise SipUaError(f"{self.name}: no answer to CANCEL within {timeout}s\n{self.summary()}")
        self.cancelled.set()
        return ctx.responses[-1]

    def bye(self, timeout: float = 5.0) -> SipMsg:
        """BYE in the dialog; returns its final response."""
        d = self.dialog
        if d is None:
            raise SipUaError(f"{self.name}: no dialog to BYE\n{self.summary()}")
        with self._lock:
            d.local_cseq += 1
            cseq = d.local_cseq
        branch = _new_branch()
        hdrs = [("Via", self._via(branch)), ("Max-Forwards", "70")]
        hdrs += [("Route", r) for r in d.route_set]
        hdrs += [("From", f"{d.local_uri};tag={d.local_tag}"),
                 ("To", f"{d.remote_uri};tag={d.remote_tag}"), ("Call-ID", d.call_id),
                 ("CSeq", f"{cseq} BYE"), ("User-Agent", AGENT)]
        data = _build(f"BYE {d.remote_target} SIP/2.0", hdrs)
        self.media.stop()
        tx = self._start_client("BYE", data, branch, d.next_hop())
        if not tx.final.wait(timeout):
            raise SipUaError(f"{self.name}: no answer to BYE within {timeout}s\n{self.summary()}")
        self.ended.set()
        return tx.responses[-1]

    # --- responses we receive -----------------------------------------------------

    def _on_response(self, msg: SipMsg):
        key = (msg.branch, msg.cseq_method)
        with self._lock:
            tx = self._client.get(key)
            fresh = tx is not None and not any(
                r.first_line == msg.first_line and r.tag("to") == msg.tag("to") for r in tx.responses)
            if tx is not None:
                tx.responses.append(msg)
                tx.got.set()
        if tx is None:
            self.errors.append(f"response with no transaction: {msg.first_line}")
            return
        if fresh:
            self._record(msg, self._responses)
        code = msg.status
        if tx.method != "INVITE":
            if code >= 200:
                tx.final.set()
            return
        if 100 < code < 200 and msg.body.strip():
            self._take_answer(msg.body)
        elif 200 <= code < 300:
            self._ack_2xx(tx, msg)
            if msg.body.strip():
                self._take_answer(msg.body)
            self.media.start()
            self.answered.set()
            tx.final.set()
        elif code >= 300:
            self._ack_error(tx, msg)
            self.media.stop()
            self.ended.set()
            tx.final.set()

    def _take_answer(self, sdp: str):
        with self._lock:
            if self._media_answered:
                if sdp != self.remote_sdp:
                    self.errors.append("a second, different SDP answer was ignored")
                return
            self._media_answered = True
            self.remote_sdp = sdp
        self.media.accept_answer(sdp)

    def _ack_2xx(self, tx: _ClientTx, resp: SipMsg):
        """ACK a 2xx: a new transaction to the remote target (again for each
        retransmission of the 2xx)."""
        key = (resp.call_id, resp.cseq_num, resp.tag("to") or "")
        with self._lock:
            sent = self._acks_sent.get(key)
            if sent is None:
                req = tx.request
                contact = resp.header("contact")
                self.dialog = Dialog(
                    call_id=resp.call_id, local_tag=tx.local_tag,
                    remote_tag=resp.tag("to") or "", local_uri=re.sub(r";tag=[^;]*", "", req.header("from")),
                    remote_uri=re.sub(r";tag=[^;]*", "", resp.header("to") or ""),
                    remote_target=_uri(contact) if contact else req.uri,
                    route_set=list(reversed(resp.headers_all("record-route"))),
                    local_cseq=req.cseq_num, peer=tx.dest)
                d = self.dialog
                hdrs = [("Via", self._via(_new_branch())), ("Max-Forwards", "70")]
                hdrs += [("Route", r) for r in d.route_set]
                hdrs += [("From", req.header("from")), ("To", resp.header("to")),
                         ("Call-ID", d.call_id), ("CSeq", f"{req.cseq_num} ACK"),
                         ("User-Agent", AGENT)]
                sent = self._acks_sent[key] = (_build(f"ACK {d.remote_target} SIP/2.0", hdrs),
                                               d.next_hop())
        self._send(*sent)

    def _ack_error(self, tx: _ClientTx, resp: SipMsg):
        """ACK a final error: same branch as the INVITE, to the same hop."""
        req = tx.request
        hdrs = [("Via", req.headers_all("via")[0]), ("Max-Forwards", "70"),
                ("From", req.header("from")), ("To", resp.header("to")),
                ("Call-ID", req.call_id), ("CSeq", f"{req.cseq_num} ACK"), ("User-Agent", AGENT)]
        self._send(_build(f"ACK {req.uri} SIP/2.0", hdrs), tx.dest)

    # --- the end ---------------------------------------------------------------

    def close(self):
        self._closed.set()
        self._thread.join(2)
        self.sock.close()
        self.media.close()
