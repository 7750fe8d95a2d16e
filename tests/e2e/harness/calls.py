"""Call flows shared by the gateway tests: start a call in either direction,
and a complete quick call that proves the gateway still works."""

import uuid

from . import jingle
from .xmpp_client import iq_error

GATEWAY_DOMAIN = "sip.example.com"
ROMEO_JID = r"romeo\40example.net@sip.example.com"   # sip:romeo@example.net on the gateway
ROMEO_SIP = "sip:romeo@example.net"
JULIET_SIP = "sip:juliet@example.com"


def new_sid(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_result(answer, what: str = "IQ"):
    assert answer is not None, f"{what}: no IQ answer from the gateway"
    assert answer.type == "result", f"{what}: expected an IQ result, got {answer.text()}"


def assert_iq_error(answer, condition: str, app: str | None = None):
    assert answer is not None, "no IQ answer from the gateway"
    assert answer.type == "error", f"expected an IQ error, got {answer.text()}"
    _, cond, others = iq_error(answer)
    assert cond == condition, f"expected {condition}, got {answer.text()}"
    if app:
        assert app in others, f"expected <{app}/> in {answer.text()}"


# --- XMPP -> SIP --------------------------------------------------------------

def call_sip(gateway, juliet, sipp, uas_scenario: str, sid: str | None = None, **params):
    """Start a SIPp UAS as the outbound proxy and send juliet's session-initiate
    to romeo; returns (sid, uas)."""
    uas = sipp.uas(uas_scenario, port=gateway.uas_port, **params)
    sid = sid or new_sid("x2s")
    answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid))
    assert_result(answer, "session-initiate")
    return sid, uas


def quick_call_to_sip(gateway, juliet, sipp) -> dict:
    """A full XMPP->SIP call (ringing, answer, BYE from SIP); returns its row."""
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_send_bye", ring_ms=100, hold_ms=300)
    juliet.expect("session-accept", 10, sid=sid)
    term = juliet.expect("session-terminate", 10, sid=sid)
    assert jingle.reason(term.xml)[0] == "success"
    uas.wait().assert_ok()
    return gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")


# --- SIP -> XMPP --------------------------------------------------------------

def call_xmpp(gateway, juliet, sipp, uac_scenario: str, transport: str = "udp", **params):
    """Start a SIPp UAC calling juliet/balcony through the gateway; returns
    (uac, the session-initiate juliet received)."""
    uac = sipp.uac(uac_scenario, remote=gateway.sip_addr(), transport=transport, **params)
    init = juliet.expect("session-initiate", 10)
    return uac, init


def accept(juliet, init, port: int = 41000, pts=(jingle.PCMA, jingle.EVENTS)):
    """Ring, then accept with juliet's own address and payload types."""
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)), "session-info ringing")
    answer = juliet.send_iq(init.frm, jingle.session_accept(init.sid, juliet.full_jid,
                                                           port=port, pts=pts))
    assert_result(answer, "session-accept")


def quick_call_to_xmpp(gateway, juliet, sipp, transport: str = "udp") -> dict:
    """A full SIP->XMPP call (ringing, accept, BYE from SIP); returns its row."""
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", transport, hold_ms=300)
    accept(juliet, init)
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success"
    uac.wait().assert_ok()
    return gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
