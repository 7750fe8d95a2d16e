"""The registrar (issue 14): SIP users of `web.example` register with digest
authentication against users added with `stox-gateway user add` (HA1s in
SQLite); an XMPP user calls a browser-like client down the WebSocket it
registered on (RFC 5626); wrong credentials get 403; the client's own calls
are challenged (407); bindings survive a restart. No outbound proxy: every
source is untrusted, only registered users get in."""

import socket
import sqlite3
import time
import uuid

import pytest

from harness import jingle
from harness.calls import accept, assert_result, new_sid
from harness.digest import answer
from harness.ws_sip import WsSip, header
from test_websocket import HOSTNAME, OFFER

pytestmark = pytest.mark.gateway

REG = {"outbound_proxy": False, "registrar": {"domains": ["web.example"], "min_expires_secs": 60}}
ALICE_JID = "alice\\40web.example@sip.example.com"
INSTANCE = "<urn:uuid:00000000-0000-1000-8000-00a95a0e1280>"
ANSWER = ("v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
          "m=audio 7090 RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\n"
          "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def register(cseq: int, call_id: str, contact: str, user: str = "alice", auth: str | None = None,
             via: str = f"SIP/2.0/WS {HOSTNAME}") -> str:
    lines = [f"REGISTER sip:web.example SIP/2.0",
             f"Via: {via};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
             "Max-Forwards: 70", f"From: <sip:{user}@web.example>;tag=reg{cseq}",
             f"To: <sip:{user}@web.example>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
             f"Contact: {contact}", "Expires: 600", "Supported: path, outbound"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return "\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n"


def challenge(msg: str, name: str = "WWW-Authenticate") -> str:
    return next(l.split(":", 1)[1].strip() for l in msg.split("\r\n")
                if l.lower().startswith(name.lower() + ":") and "SHA-256" in l)


def ws_register(gateway, user="alice", password="s3cret", deadline=8.0) -> tuple[WsSip, str]:
    """Registers over WebSocket (retrying while the user is not read yet);
    returns the client and the final answer."""
    ws = WsSip(gateway.ws_port)
    contact = f'<sip:{user}@{HOSTNAME};transport=ws>;+sip.instance="{INSTANCE}";reg-id=1'
    call_id = f"{uuid.uuid4().hex}@{HOSTNAME}"
    end = time.monotonic() + deadline
    cseq = 1
    while True:
        ws.send(register(cseq, call_id, contact, user))
        c = ws.expect("SIP/2.0 401")
        ws.send(register(cseq + 1, call_id, contact, user,
                         answer(challenge(c), user, password, "REGISTER", "sip:web.example")))
        final = ws.expect("SIP/2.0 ")
        cseq += 2
        if " 403 " in final.split("\r\n")[0] and "no user" in final and time.monotonic() < end:
            time.sleep(0.5)   # `user add` is read within 2 s
            continue
        return ws, final


@pytest.mark.gateway_config(**REG)
def test_rfc5626_an_xmpp_user_calls_a_registered_websocket_client(gateway, juliet):
    added = gateway.user("add", "alice@web.example", password="s3cret")
    assert added.returncode == 0, added.stderr
    ws, ok = ws_register(gateway)
    assert ok.startswith("SIP/2.0 200"), ok
    assert header(ok, "Require") == "outbound", ok
    assert "expires=600" in header(ok, "Contact"), ok

    sid = new_sid("reg")
    assert_result(juliet.send_iq(ALICE_JID, jingle.session_initiate(sid, juliet.full_jid)))
    invite = ws.expect("INVITE", 10)
    assert invite.startswith(f"INVITE sip:alice@{HOSTNAME};transport=ws SIP/2.0"), invite
    names = ("Via", "From", "To", "Call-ID", "CSeq")
    ok = "\r\n".join([f"SIP/2.0 200 OK"] + [f"{n}: {header(invite, n)}" for n in names]).replace(
        f"To: {header(invite, 'To')}", f"To: {header(invite, 'To')};tag=alice1")
    ok += (f"\r\nContact: <sip:alice@{HOSTNAME};transport=ws>\r\nContent-Type: application/sdp\r\n"
           f"Content-Length: {len(ANSWER)}\r\n\r\n{ANSWER}")
    ws.send(ok)
    ws.expect("ACK", 10)
    acc = juliet.expect("session-accept", 10, sid=sid)
    assert ("127.0.0.1", 7090) in jingle.candidates(acc.xml), acc.text()
    assert_result(juliet.send_iq(ALICE_JID, jingle.session_terminate(sid)))
    bye = ws.expect("BYE", 10)
    ws.send("\r\n".join(["SIP/2.0 200 OK"] + [f"{n}: {header(bye, n)}" for n in names])
            + "\r\nContent-Length: 0\r\n\r\n")
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["answered_at"] and row["ended_by"] == "xmpp", row


@pytest.mark.gateway_config(**REG)
def test_rfc3261_22_wrong_or_unknown_credentials_get_403_and_no_binding_480(gateway, juliet):
    assert gateway.user("add", "alice@web.example", password="s3cret").returncode == 0
    time.sleep(2.5)
    ws, final = ws_register(gateway, password="wrong", deadline=0)
    assert final.startswith("SIP/2.0 403") and "wrong credentials" in final, final
    ws, final = ws_register(gateway, user="mallory", deadline=0)
    assert final.startswith("SIP/2.0 403") and "no user mallory@web.example" in final, final
    # Nobody registered: the XMPP caller hears the 480.
    sid = new_sid("reg")
    assert_result(juliet.send_iq(ALICE_JID, jingle.session_initiate(sid, juliet.full_jid)))
    term = juliet.expect("session-terminate", 10, sid=sid)
    reason = jingle.reason(term.xml)
    assert reason[1] == 480, term.text()
    listed = gateway.user("list")
    assert listed.stdout.split() == ["alice@web.example"], listed
    assert "s3cret" not in (gateway.dir / "gw.db").read_bytes().decode("latin-1")


@pytest.mark.gateway_config(**REG)
def test_a_registered_clients_call_is_challenged_407_then_rings_the_xmpp_user(gateway, juliet):
    assert gateway.user("add", "alice@web.example", password="s3cret").returncode == 0
    ws, ok = ws_register(gateway)
    assert ok.startswith("SIP/2.0 200"), ok
    call_id = f"{uuid.uuid4().hex}@{HOSTNAME}"

    def invite(cseq: int, auth: str | None = None) -> str:
        lines = ["INVITE sip:juliet@example.com;gr=balcony SIP/2.0",
                 f"Via: SIP/2.0/WS {HOSTNAME};branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                 "Max-Forwards: 70", "From: <sip:alice@web.example>;tag=a1",
                 "To: <sip:juliet@example.com;gr=balcony>", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} INVITE", f"Contact: <sip:alice@{HOSTNAME};transport=ws>",
                 "Content-Type: application/sdp"]
        if auth:
            lines.append(f"Proxy-Authorization: {auth}")
        return "\r\n".join(lines + [f"Content-Length: {len(OFFER)}"]) + "\r\n\r\n" + OFFER

    ws.send(invite(1))
    c407 = ws.expect("SIP/2.0 407")
    juliet.expect_nothing("session-initiate", 0.5)
    ws.send(f"ACK sip:juliet@example.com;gr=balcony SIP/2.0\r\nVia: {header(c407, 'Via')}\r\n"
            f"Max-Forwards: 70\r\nFrom: {header(c407, 'From')}\r\nTo: {header(c407, 'To')}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    creds = answer(challenge(c407, "Proxy-Authenticate"), "alice", "s3cret", "INVITE",
                   "sip:juliet@example.com;gr=balcony")
    ws.send(invite(2, creds))
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    ws.expect("SIP/2.0 200", 10)
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    assert row["sip_uri"] == "sip:alice@web.example", row


@pytest.mark.gateway_config(**REG)
def test_bindings_survive_a_gateway_restart(gateway, juliet, probe):
    assert gateway.user("add", "bob@web.example", password="pw").returncode == 0
    time.sleep(2.5)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.settimeout(5)
    port = phone.getsockname()[1]
    gw = ("127.0.0.1", gateway.sip_port)
    contact = f"<sip:bob@127.0.0.1:{port}>"
    via = f"SIP/2.0/UDP 127.0.0.1:{port}"
    phone.sendto(register(1, "b@x", contact, "bob", via=via).encode(), gw)
    c = phone.recv(65535).decode()
    assert c.startswith("SIP/2.0 401"), c
    auth = answer(challenge(c), "bob", "pw", "REGISTER", "sip:web.example")
    phone.sendto(register(2, "b@x", contact, "bob", auth, via=via).encode(), gw)
    ok = phone.recv(65535).decode()
    assert ok.startswith("SIP/2.0 200"), ok
    # The binding is written just after the 200 (docs/security.md): wait
    # for it before pulling the plug.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(gateway.db) as db:
            if db.execute("SELECT COUNT(*) FROM sip_bindings").fetchone()[0] == 1:
                break
        time.sleep(0.05)
    gateway.proc.kill()
    gateway.proc.wait(5)
    gateway.start(probe)
    assert "bindings=1" in gateway.log_text()
    sid = new_sid("reg")
    assert_result(juliet.send_iq("bob\\40web.example@sip.example.com",
                                 jingle.session_initiate(sid, juliet.full_jid)))
    invite = phone.recv(65535).decode()
    assert invite.startswith(f"INVITE sip:bob@127.0.0.1:{port} SIP/2.0"), invite
