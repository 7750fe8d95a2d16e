"""Media that really flows (issue 15, docs/media.md): an aiortc WebRTC peer
behind a slixmpp Jingle client calls through the gateway, and is called,

* anchored: a plain RTP/AVP phone (a SIP UA sending and counting PCMU) on a
  peer with media = "rtpengine", through rtpengine-daemon in userspace;
* pass-through: a WebRTC SIP peer (a second aiortc peer behind a SIP UA).

Packets are counted at both ends (aiortc counts SRTP it decrypted), the
rows carry rtpengine's figures, and rtpengine holds no session afterwards."""

import os
import re
import xml.etree.ElementTree as ET

import pytest

if os.environ.get("STOX_E2E_REQUIRE_MEDIA"):
    import aiortc  # noqa: F401  (tests/run.sh installs it: no silent skip there)
else:
    pytest.importorskip("aiortc", reason="aiortc not installed: see tests/e2e/requirements.txt")

from harness.baresip import Baresip                                 # noqa: E402
from harness.calls import assert_result, new_sid                   # noqa: E402
from harness.gateway import Gateway                                # noqa: E402
from harness.jingle import jingle                       # noqa: E402
from harness.media import WebRtcPeer, jingle_to_sdp, sdp_to_jingle  # noqa: E402
from harness.net import HOST, free_port, wait_until                 # noqa: E402
from harness.prosody import COMPONENT, DOMAIN                       # noqa: E402
from harness.rtpengine import Rtpengine                             # noqa: E402
from harness.sip_ua import SipUa                                    # noqa: E402

PACKETS = 50
PHONE = f"phone\\40pbx.example@{COMPONENT}"   # sip:phone@pbx.example


@pytest.fixture
def rtpengine(tmp_path, attach):
    engine = Rtpengine(tmp_path)
    attach("rtpengine log", engine.log)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def closing():
    things = []
    yield lambda thing: things.append(thing) or thing
    for thing in reversed(things):
        try:
            thing.close()
        except Exception:   # noqa: BLE001 - closing what is left, best effort
            pass


@pytest.fixture
def media_gateway(tmp_path, prosody, probe, attach):
    """media_gateway(ua_port, media, rtpengine=None): a gateway whose one peer
    "pbx" (sources 127.0.0.1, domain pbx.example) is the SIP UA on
    `ua_port`, with that media mode."""
    started = []

    def start(ua_port: int, media: str, rtpengine: str | list | None = None) -> Gateway:
        relays = [rtpengine] if isinstance(rtpengine, str) else rtpengine
        gw = Gateway(tmp_path, prosody, outbound_proxy=False, rtpengine=relays,
                     peers=[{"name": "pbx", "sources": [HOST], "uri": f"sip:{HOST}:{ua_port}",
                             "domains": ["pbx.example"], "media": media}])
        attach("gateway log", gw.log)
        gw.start(probe)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def jingle_of(stanza) -> ET.Element:
    j = stanza.jingle
    assert j is not None, stanza.text()
    return j


def xmpp_calls_sip(juliet, peer: WebRtcPeer, sid: str):
    """Juliet's aiortc offer as a session-initiate to sip:phone@pbx.example;
    the session-accept's answer goes back into aiortc."""
    offer = sdp_to_jingle(peer.create_offer())
    answer = juliet.send_iq(PHONE, jingle("session-initiate", sid, offer,
                                          initiator=juliet.full_jid))
    assert_result(answer, "session-initiate")
    accept = juliet.expect("session-accept", timeout=15, sid=sid)
    peer.accept_answer(jingle_to_sdp(jingle_of(accept), "answer"))


def sip_calls_xmpp(juliet, ua: SipUa, gw: Gateway, peer: WebRtcPeer) -> str:
    """The UA calls Juliet's resource; her aiortc peer answers the
    session-initiate's offer with a session-accept. Returns the sid."""
    ua.invite(f"sip:juliet@{DOMAIN};gr=balcony", HOST, gw.sip_port, from_user="phone")
    initiate = juliet.expect("session-initiate", timeout=15)
    answer_sdp = peer.accept_offer(jingle_to_sdp(jingle_of(initiate), "offer"))
    contents = sdp_to_jingle(answer_sdp, author="responder")
    result = juliet.send_iq(initiate.frm, jingle("session-accept", initiate.sid, contents,
                                                 responder=juliet.full_jid))
    assert_result(result, "session-accept")
    ua.wait_answered(timeout=15)
    return initiate.sid


def media_row(gw: Gateway, timeout: float = 10.0) -> dict:
    return gw.wait_row(lambda r: r["state"] == "ended" and r["media_packets_from_sip"] is not None,
                       timeout=timeout)


def assert_anchored_figures(row: dict, engine: Rtpengine):
    assert row["media_relay"] == engine.ng, row
    assert row["media_packets_from_xmpp"] >= PACKETS, row
    assert row["media_packets_from_sip"] >= PACKETS, row
    assert wait_until(lambda: not engine.calls(), 5), \
        f"rtpengine still holds {engine.calls()} after the call"


# --- anchored: aiortc (ICE + DTLS-SRTP) <-> rtpengine <-> plain RTP/AVP ------

@pytest.mark.timeout(60)
def test_xmpp_calls_a_plain_rtp_phone_through_rtpengine(juliet, rtpengine, media_gateway, closing):
    phone = closing(SipUa(media="rtp", port=free_port(udp_too=True), name="phone"))
    gw = media_gateway(phone.port, "rtpengine", rtpengine.ng)
    peer = closing(WebRtcPeer("juliet"))
    sid = new_sid("anchored-out")
    xmpp_calls_sip(juliet, peer, sid)

    invite = phone.wait_invite()
    assert "RTP/AVP" in invite.body and "a=ice-ufrag" not in invite.body \
        and "a=fingerprint" not in invite.body, f"plain RTP for the phone:\n{invite.body}"
    peer.wait_connected(timeout=15)
    sent, received = peer.wait_packets(PACKETS, timeout=15)
    phone_sent, phone_received = phone.wait_packets(PACKETS, timeout=15)
    assert received >= PACKETS and phone_received >= PACKETS, (sent, received, phone_sent,
                                                               phone_received)

    # Hold and resume from Jingle (XEP-0167 §7) go through rtpengine: the
    # phone's re-INVITEs offer rtpengine's address and port, as before.
    relay_port = invite.body.split("m=audio ")[1].split()[0]
    for what, direction in (("hold", "a=sendonly"), ("active", "a=sendrecv")):
        assert_result(juliet.send_iq(PHONE, jingle(
            "session-info", sid, f"<{what} xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>")),
            f"session-info {what}")
        reinvite = wait_until(lambda d=direction: next(
            (m for m in phone.messages(direction="received", method="INVITE")[1:]
             if d in m.body), None), 10)
        assert reinvite, f"no re-INVITE with {direction}:\n{phone.summary()}\n" + "\n".join(
            m.body for m in phone.messages(direction="received", method="INVITE"))
        assert f"m=audio {relay_port} RTP/AVP" in reinvite.body, reinvite.body
    before = peer.stats()[1]
    assert wait_until(lambda: peer.stats()[1] >= before + PACKETS, 10), \
        f"media stopped after the resume: {peer.describe()}"

    assert_result(juliet.send_iq(PHONE, jingle("session-terminate", sid,
                                               "<reason><success/></reason>")),
                  "session-terminate")
    phone.wait_ended(timeout=10)
    assert_anchored_figures(media_row(gw), rtpengine)


@pytest.mark.timeout(60)
def test_a_plain_rtp_phone_calls_xmpp_through_rtpengine(juliet, rtpengine, media_gateway, closing):
    phone = closing(SipUa(media="rtp", port=free_port(udp_too=True), name="phone"))
    gw = media_gateway(phone.port, "rtpengine", rtpengine.ng)
    peer = closing(WebRtcPeer("juliet"))
    sip_calls_xmpp(juliet, phone, gw, peer)

    peer.wait_connected(timeout=15)
    sent, received = peer.wait_packets(PACKETS, timeout=15)
    phone_sent, phone_received = phone.wait_packets(PACKETS, timeout=15)
    assert received >= PACKETS and phone_received >= PACKETS, (sent, received, phone_sent,
                                                               phone_received)
    phone.bye()
    juliet.expect("session-terminate", timeout=10)
    assert_anchored_figures(media_row(gw), rtpengine)


@pytest.mark.timeout(60)
def test_rtpengine_unreachable_refuses_the_call_cleanly(juliet, media_gateway, closing):
    phone = closing(SipUa(media="rtp", port=free_port(udp_too=True), name="phone"))
    nobody = f"{HOST}:{free_port(udp_too=True)}"   # no rtpengine listens there
    gw = media_gateway(phone.port, "rtpengine", nobody)

    # SIP -> XMPP: 503 with Retry-After, and Juliet never rings.
    phone.invite(f"sip:juliet@{DOMAIN};gr=balcony", HOST, gw.sip_port, from_user="phone")
    final = phone.wait_final(timeout=15)
    assert final.status == 503 and final.header("retry-after"), phone.summary()
    juliet.expect_nothing("session-initiate", within=0.5)

    # XMPP -> SIP: session-terminate with failed-application, no INVITE.
    sid = new_sid("no-relay")
    peer = closing(WebRtcPeer("juliet"))
    offer = sdp_to_jingle(peer.create_offer())
    assert_result(juliet.send_iq(PHONE, jingle("session-initiate", sid, offer,
                                               initiator=juliet.full_jid)), "session-initiate")
    terminate = juliet.expect("session-terminate", timeout=15, sid=sid)
    assert "failed-application" in terminate.text(), terminate.text()
    assert not phone.messages(direction="received", method="INVITE"), phone.summary()
    row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert "media relay" in (row["end_detail"] or ""), row
    assert "rtpengine" in gw.log_text()


@pytest.mark.timeout(60)
def test_an_rtpengine_that_does_not_answer_is_skipped_for_the_next(juliet, rtpengine,
                                                                   media_gateway, closing):
    phone = closing(SipUa(media="rtp", port=free_port(udp_too=True), name="phone"))
    nobody = f"{HOST}:{free_port(udp_too=True)}"
    gw = media_gateway(phone.port, "rtpengine", [nobody, rtpengine.ng])
    peer = closing(WebRtcPeer("juliet"))
    sid = new_sid("failover")
    xmpp_calls_sip(juliet, peer, sid)   # after three unanswered sends to the first
    phone.wait_invite()
    peer.wait_connected(timeout=15)
    peer.wait_packets(PACKETS, timeout=15)
    row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "active")
    assert row["media_relay"] == rtpengine.ng, row
    assert "rtpengine not answering; trying the next" in gw.log_text()


# --- anchored with a real phone: baresip (PCMU/PCMA, a 440 Hz sine) ---------

def receiving_seconds(bs: Baresip) -> int:
    """Whole seconds of the call in which baresip received PCMU at its full
    rate: its status line `[h:mm:ss] audio=TX/RX (bit/s)` says RX >= 60 kbit/s
    (PCMU is 64 kbit/s of payload: 50 packets of 20 ms a second)."""
    text = bs.log.read_text(errors="replace")
    seconds = set(re.findall(r"\[(\d+:\d\d:\d\d)\] audio=\d+/(\d+) \(bit/s\)", text))
    return len({t for t, rx in seconds if int(rx) >= 60000})


@pytest.fixture
def baresip_phone(tmp_path, attach):
    made = []

    def make(proxy: str, port: int, auto_answer: bool) -> Baresip:
        bs = Baresip(tmp_path, "sip:phone@pbx.example", proxy, port=port,
                     auto_answer=auto_answer).start()
        attach("baresip log", bs.log)
        made.append(bs)
        return bs

    yield make
    for bs in made:
        bs.stop()


def assert_baresip_media(peer: WebRtcPeer, bs: Baresip):
    peer.wait_connected(timeout=15)
    sent, received = peer.wait_packets(PACKETS, timeout=15)
    # Three seconds at the full rate: well over 50 packets received.
    assert wait_until(lambda: receiving_seconds(bs) >= 3, 15), \
        f"baresip received at full rate for {receiving_seconds(bs)} s " \
        f"(aiortc sent {sent}, received {received})"


@pytest.mark.timeout(60)
def test_xmpp_calls_baresip_through_rtpengine(juliet, rtpengine, media_gateway, baresip_phone,
                                              closing):
    port = free_port(udp_too=True)
    gw = media_gateway(port, "rtpengine", rtpengine.ng)
    bs = baresip_phone(gw.sip_addr(), port, auto_answer=True)
    peer = closing(WebRtcPeer("juliet"))
    sid = new_sid("baresip-out")
    xmpp_calls_sip(juliet, peer, sid)
    bs.expect_event("CALL_ESTABLISHED")
    assert_baresip_media(peer, bs)
    bs.command("hangup")
    juliet.expect("session-terminate", timeout=10, sid=sid)
    assert_anchored_figures(media_row(gw), rtpengine)


@pytest.mark.timeout(60)
def test_baresip_calls_xmpp_through_rtpengine(juliet, rtpengine, media_gateway, baresip_phone,
                                              closing):
    port = free_port(udp_too=True)
    gw = media_gateway(port, "rtpengine", rtpengine.ng)
    bs = baresip_phone(gw.sip_addr(), port, auto_answer=False)
    peer = closing(WebRtcPeer("juliet"))
    bs.command("dial", f"sip:juliet@{DOMAIN};gr=balcony")
    initiate = juliet.expect("session-initiate", timeout=15)
    answer_sdp = peer.accept_offer(jingle_to_sdp(jingle_of(initiate), "offer"))
    assert_result(juliet.send_iq(initiate.frm, jingle(
        "session-accept", initiate.sid, sdp_to_jingle(answer_sdp, author="responder"),
        responder=juliet.full_jid)), "session-accept")
    bs.expect_event("CALL_ESTABLISHED")
    assert_baresip_media(peer, bs)

    # The phone holds and resumes (RFC 3264 §8.4): its re-INVITEs go through
    # rtpengine and reach Juliet as <hold/> and <active/>; media flows again.
    for command, info in (("hold", "hold"), ("resume", "active")):
        bs.command(command)
        st = juliet.expect("session-info", timeout=10, sid=initiate.sid)
        assert st.jingle.find(f"{{urn:xmpp:jingle:apps:rtp:info:1}}{info}") is not None, \
            st.text()
    before = peer.stats()[1]
    assert wait_until(lambda: peer.stats()[1] >= before + PACKETS, 10), \
        f"media stopped after the resume: {peer.describe()}"

    bs.command("hangup")
    juliet.expect("session-terminate", timeout=10, sid=initiate.sid)
    assert_anchored_figures(media_row(gw), rtpengine)


# --- pass-through: aiortc <-> aiortc, ICE and DTLS end to end ----------------

@pytest.mark.timeout(60)
def test_xmpp_calls_a_webrtc_sip_peer_passthrough(juliet, media_gateway, closing):
    ua = closing(SipUa(media="webrtc", port=free_port(udp_too=True), name="webrtc-ua"))
    gw = media_gateway(ua.port, "passthrough")
    peer = closing(WebRtcPeer("juliet"))
    sid = new_sid("pass-out")
    xmpp_calls_sip(juliet, peer, sid)
    invite = ua.wait_invite()
    assert "a=ice-ufrag" in invite.body and "a=fingerprint" in invite.body, invite.body
    peer.wait_connected(timeout=15)
    sent, received = peer.wait_packets(PACKETS, timeout=15)
    ua_sent, ua_received = ua.wait_packets(PACKETS, timeout=15)
    assert received >= PACKETS and ua_received >= PACKETS, (sent, received, ua_sent, ua_received)
    row = gw.rows()[-1]
    assert row["media_relay"] is None, row


@pytest.mark.timeout(60)
def test_a_webrtc_sip_peer_calls_xmpp_passthrough(juliet, media_gateway, closing):
    ua = closing(SipUa(media="webrtc", port=free_port(udp_too=True), name="webrtc-ua"))
    gw = media_gateway(ua.port, "passthrough")
    peer = closing(WebRtcPeer("juliet"))
    sip_calls_xmpp(juliet, ua, gw, peer)
    peer.wait_connected(timeout=15)
    sent, received = peer.wait_packets(PACKETS, timeout=15)
    ua_sent, ua_received = ua.wait_packets(PACKETS, timeout=15)
    assert received >= PACKETS and ua_received >= PACKETS, (sent, received, ua_sent, ua_received)
    ua.bye()
    juliet.expect("session-terminate", timeout=10)
