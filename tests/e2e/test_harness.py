"""Checks of the harness itself against the real peers, with no gateway:
Prosody, slixmpp clients, SIPp scenarios against each other, readiness."""

import socket
import time
from pathlib import Path

import pytest

from harness import gateway as gateway_mod
from harness import jingle
from harness.gateway import Gateway, GatewayError, wait_component
from harness.net import HOST
from harness.calls import ROMEO_JID
from harness.prosody import COMPONENT, Prosody
from harness.xmpp_client import Reply, iq_error


def test_prosody_starts_and_stops_cleanly():
    server = Prosody().start()
    try:
        assert server.running()
        ports = (server.c2s_port, server.component_port)
        for port in ports:
            socket.create_connection((HOST, port), timeout=1).close()
    finally:
        server.stop()
        server.cleanup()
    assert not server.running()
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=1).close()


def test_clients_exchange_jingle_iqs(juliet, romeo):
    sid = "harness-1"
    offer = jingle.session_initiate(sid, juliet.full_jid)
    answer = juliet.send_iq(romeo.full_jid, offer)
    assert answer is not None and answer.type == "result"
    got = romeo.expect("session-initiate", timeout=5)
    assert (got.sid, got.frm) == (sid, juliet.full_jid)
    assert jingle.payload_types(got.xml) == list(jingle.AUDIO_OFFER)
    assert jingle.candidates(got.xml) == [("127.0.0.1", 40000)]
    assert jingle.transports(got.xml) == [jingle.NS_RAW_UDP]

    # An answer with a Jingle error condition.
    romeo.replies["session-terminate"] = Reply.error(
        "item-not-found", extra=f"<unknown-session xmlns='{jingle.NS_ERRORS}'/>")
    error = juliet.send_iq(romeo.full_jid, jingle.session_terminate(sid, "busy", "nope"))
    assert error.type == "error"
    assert iq_error(error) == ("cancel", "item-not-found", ["unknown-session"])
    term = romeo.expect("session-terminate", timeout=5)
    assert jingle.reason(term.xml) == ("busy", None, "nope")

    # No answer at all: the sender sees None after its timeout.
    romeo.replies["session-info"] = Reply.none()
    started = time.monotonic()
    assert juliet.send_iq(romeo.full_jid, jingle.ringing(sid), timeout=1) is None
    assert time.monotonic() - started >= 1
    assert jingle.has_ringing(romeo.expect("session-info", timeout=5).xml)
    romeo.expect_nothing("session-info", within=0.3)


def test_readiness_poll_times_out_without_component(probe):
    started = time.monotonic()
    with pytest.raises(GatewayError, match="never came online") as failure:
        wait_component(probe, timeout=2)
    assert 2 <= time.monotonic() - started < 6
    assert "Last answer" in str(failure.value)


class FakeComponent:
    """A few lines of XEP-0114 component (slixmpp) standing in for the gateway:
    it answers pings and Jingle IQs, and rings back on every Jingle IQ."""

    def __init__(self, xloop, prosody):
        self.xloop, self.prosody = xloop, prosody

    async def _start(self):
        import asyncio
        from slixmpp import ComponentXMPP
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher.base import MatcherBase

        class AnyRequest(MatcherBase):
            def match(self, xml):
                return xml.name == "iq" and xml["type"] in ("get", "set")

        xmpp = ComponentXMPP(COMPONENT, self.prosody.secret, HOST, self.prosody.component_port)
        xmpp.loop = asyncio.get_running_loop()
        online = xmpp.loop.create_future()
        xmpp.add_event_handler("session_start", lambda _: online.set_result(True))
        xmpp.register_handler(Callback("any", AnyRequest(None), self._on_iq))
        self.xmpp = xmpp
        xmpp.connect()
        await asyncio.wait_for(online, 10)

    def _on_iq(self, iq):
        me, peer = iq.xml.get("to"), iq.xml.get("from")
        self.xmpp.send_raw(f"<iq type='result' id='{iq['id']}' from='{me}' to='{peer}'/>")
        j = iq.xml.find(f"{{{jingle.NS_JINGLE}}}jingle")
        if j is not None:
            self.xmpp.send_raw(f"<iq type='set' id='ring1' from='{me}' to='{peer}'>"
                               f"{jingle.ringing(j.get('sid'))}</iq>")

    def __enter__(self):
        self.xloop.run(self._start(), 15)
        return self

    def __exit__(self, *exc):
        async def stop():
            await self.xmpp.disconnect(wait=1.0)
        self.xloop.run(stop(), 5)


def test_readiness_and_escaped_jids_through_a_real_component(xloop, prosody, probe, juliet):
    with FakeComponent(xloop, prosody):
        assert wait_component(probe, timeout=5) < 5
        sid = "harness-2"
        answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate(sid, juliet.full_jid))
        assert answer.type == "result" and answer.frm == ROMEO_JID, answer.text()
        info = juliet.expect("session-info", timeout=5, sid=sid)
        assert info.frm == ROMEO_JID and jingle.has_ringing(info.xml)
    with pytest.raises(GatewayError):
        wait_component(probe, timeout=1)


def test_gateway_fixture_reports_missing_binary(tmp_path, prosody, monkeypatch):
    monkeypatch.setattr(gateway_mod, "BINARY", tmp_path / "nope")
    with pytest.raises(GatewayError, match="cargo build -p stox-gateway"):
        Gateway(tmp_path, prosody)


def test_gateway_fixture_reports_early_exit(tmp_path, prosody, probe, monkeypatch):
    monkeypatch.setattr(gateway_mod, "BINARY", Path("/bin/true"))
    gw = Gateway(tmp_path, prosody)
    with pytest.raises(GatewayError, match="exited with code 0 before it was ready"):
        gw.start(probe, timeout=5)
    assert 'component = "sip.example.com"' in gw.config.read_text()


# --- SIPp scenarios against each other ----------------------------------------

QUICK = dict(ring_ms=200, hold_ms=300)


def run_pair(sipp, uas, uac, transport="udp", **params):
    server = sipp.uas(uas, transport=transport, **QUICK, **params)
    client = sipp.uac(uac, remote=f"{HOST}:{server.port}", transport=transport,
                      **QUICK, **params)
    caller, callee = client.wait(), server.wait()
    caller.assert_ok()
    callee.assert_ok()
    return caller, callee


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("uas,uac,bye_from", [
    ("uas_answer_wait_bye", "uac_call_bye", "uac"),
    ("uas_answer_send_bye", "uac_call_wait_bye", "uas"),
])
def test_sipp_answered_call(sipp, transport, uas, uac, bye_from):
    caller, callee = run_pair(sipp, uas, uac, transport)
    ok = caller.one("received", status=200, cseq="INVITE")
    assert "m=audio 6000 RTP/AVP 8 101" in ok.sdp
    invite = callee.one("received", method="INVITE")
    assert "m=audio 7078 RTP/AVP 0 8 101" in invite.sdp
    assert invite.uri == "sip:juliet@example.com;gr=balcony"
    hangup = caller if bye_from == "uac" else callee
    assert hangup.one("sent", method="BYE")
    assert hangup.one("received", status=200, cseq="BYE")


def test_sipp_cancel_reuses_invite_branch(sipp):
    caller, callee = run_pair(sipp, "uas_ring_expect_cancel", "uac_cancel")
    branch = lambda m: m.header("via").split("branch=")[1]
    invite = caller.one("sent", method="INVITE")
    assert branch(caller.one("sent", method="CANCEL")) == branch(invite)
    assert branch(caller.one("sent", method="ACK")) == branch(invite)
    assert caller.one("received", status=487).header("cseq") == "1 INVITE"
    assert callee.one("received", method="ACK")


@pytest.mark.parametrize("code", [486, 603, 404])
def test_sipp_final_error(sipp, code):
    caller, _ = run_pair(sipp, "uas_reject", "uac_expect_error", code=code, reason="Nope")
    assert caller.one("received", status=code)
    assert "tag=" in caller.one("sent", method="ACK").header("to")


def test_sipp_unmappable_offer(sipp):
    caller, callee = run_pair(sipp, "uas_reject", "uac_bad_sdp", code=488,
                              reason="Not Acceptable Here")
    assert "m=application 50000 TCP/WS/BFCP *" in callee.one("received", method="INVITE").sdp
    assert caller.one("received", status=488)


def test_sipp_reports_a_failed_scenario(sipp):
    """A UAC expecting 486 gets 603: SIPp must exit non-zero."""
    server = sipp.uas("uas_reject", code=603, reason="Decline", **QUICK)
    client = sipp.uac("uac_expect_error", remote=f"{HOST}:{server.port}", code=486,
                      timeout=5, **QUICK)
    assert client.wait().returncode != 0
    server.kill()
