"""SIP over WebSocket (RFC 7118) through the gateway, with a browser-like
client: a connection's life follows protocol state. The gateway runs with
short timers (hello 1 s, idle 2 s, ping every 1 s) so the rule shows in
seconds: a call held for several idle periods keeps its connection (pinged,
never closed) and still gets its BYE; a connection without a call is closed
when idle; one that never speaks SIP is closed after the hello timer."""

import time
import uuid

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, assert_result
from harness.ws_sip import WsClosed, WsSip, header

pytestmark = pytest.mark.gateway

TIMERS = {"sip": {"hello_timeout_secs": 1, "idle_timeout_secs": 2, "keepalive_secs": 1}}
HOLD = 7.0    # > 3 idle periods

HOSTNAME = "df7jal23ls0d.invalid"   # RFC 7118 §5.2: a browser has no address to give
OFFER = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "m=audio 7078 RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\n"
         "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def request(method: str, ruri: str, cseq: int, call_id: str, to_tag: str = "",
            body: str = "") -> str:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/WSS {HOSTNAME};branch={branch}",
        "Max-Forwards: 70",
        "From: <sip:romeo@example.net>;tag=ws1",
        f"To: <sip:juliet@example.com;gr=balcony>{';tag=' + to_tag if to_tag else ''}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:romeo@{HOSTNAME};transport=ws>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def answer(req: str, status: str = "200 OK") -> str:
    names = ("Via", "From", "To", "Call-ID", "CSeq")
    lines = [f"SIP/2.0 {status}"] + [f"{n}: {header(req, n)}" for n in names]
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.timeout(90)
@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc7118_call_over_websocket_held_past_the_idle_timer_gets_its_bye(gateway, juliet):
    ws = WsSip(gateway.ws_port)
    call_id = f"{uuid.uuid4().hex}@{HOSTNAME}"
    ws.send(request("INVITE", "sip:juliet@example.com;gr=balcony", 1, call_id, body=OFFER))
    ws.expect("SIP/2.0 100")
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    ws.expect("SIP/2.0 180")
    ok = ws.expect("SIP/2.0 200")
    assert "m=audio 41000 RTP/AVP 8 101" in ok, ok
    to_tag = header(ok, "To").split("tag=")[1]
    contact = header(ok, "Contact").strip("<>")
    ws.send(request("ACK", contact, 1, call_id, to_tag))
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")

    # Held through several idle periods: pinged, never closed.
    ws.pump(HOLD)
    assert not ws.closed
    assert ws.pings >= 4, f"{ws.pings} WebSocket pings in {HOLD}s at a 1 s keep-alive"

    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(init.sid)))
    bye = ws.expect("BYE", 10)
    assert header(bye, "Call-ID") == call_id
    assert bye.split(" ")[1] == f"sip:romeo@{HOSTNAME};transport=ws", bye
    ws.send(answer(bye))
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert (row["end_reason"], row["ended_by"], row["sip_status"]) == ("success", "xmpp", 200)

    # The call over, the connection is idle like any other.
    assert 1.5 < ws.wait_closed(10) < 5, "closed one idle period after the call"
    ws.close()


@pytest.mark.timeout(60)
@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc7118_idle_and_silent_connections_are_closed(gateway, juliet):
    talker, silent = WsSip(gateway.ws_port), WsSip(gateway.ws_port)
    opened = time.monotonic()
    talker.send(request("OPTIONS", "sip:juliet@example.com", 1, f"{uuid.uuid4().hex}@x"))
    talker.expect("SIP/2.0 200")

    silent_after = silent.wait_closed(10)
    assert 0.5 < silent_after < 3, f"no SIP within the 1 s hello timer: closed after {silent_after:.1f}s"
    try:
        talker.pump(0.5)
    except WsClosed:
        pytest.fail("a connection that spoke SIP was closed by the hello timer")
    talker.wait_closed(10)
    lived = time.monotonic() - opened
    assert 1.5 < lived < 5, f"closed {lived:.1f}s after its last message (idle timer 2 s)"
    talker.close()
    silent.close()
    assert gateway.exit_code() is None


@pytest.mark.timeout(60)
@pytest.mark.gateway_config(extra=TIMERS)
def test_rfc7118_5_a_closed_websocket_ends_its_call(gateway, juliet):
    """A browser tab closed mid-call: the flow is gone and the browser has no
    other address, so the call ends at once (XMPP told, row ended)."""
    ws = WsSip(gateway.ws_port)
    call_id = f"{uuid.uuid4().hex}@{HOSTNAME}"
    ws.send(request("INVITE", "sip:juliet@example.com;gr=balcony", 1, call_id, body=OFFER))
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    ok = ws.expect("SIP/2.0 200")
    ws.send(request("ACK", header(ok, "Contact").strip("<>"), 1, call_id,
                    header(ok, "To").split("tag=")[1]))
    gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    ws.close()

    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "connectivity-error", term.text()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["ended_by"] == "gateway", row
    assert "WebSocket" in (row["end_detail"] or ""), row
