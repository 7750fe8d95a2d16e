"""Checks of the media harness itself, with no gateway: aiortc peers and
plain RTP peers, directly and inside SipUa calls, with RTP really flowing
on 127.0.0.1. They need aiortc (tests/e2e/requirements.txt): run them with
tests/.venv/bin/python; elsewhere they are skipped."""

import os
import socket
import time

import pytest

if os.environ.get("STOX_E2E_REQUIRE_MEDIA"):
    import aiortc  # noqa: F401  (tests/run.sh installs it: no silent skip there)
else:
    pytest.importorskip("aiortc", reason="aiortc not installed: see tests/e2e/requirements.txt")

from harness import jingle                                          # noqa: E402
from harness.media import (NS_DTLS, NS_GROUP, PlainRtpPeer, WebRtcPeer,    # noqa: E402
                           is_rtcp, is_rtp, jingle_element, jingle_to_sdp, parse_sdp,
                           sdp_to_jingle)
from harness.net import HOST                                       # noqa: E402
from harness.sip_ua import SipUa                                   # noqa: E402

PACKETS = 50


@pytest.fixture
def closing():
    """closing(x) -> x, closed at the end of the test (in reverse order)."""
    things = []
    yield lambda thing: things.append(thing) or thing
    for thing in reversed(things):
        thing.close()


def host_candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.mark.timeout(20)
def test_webrtc_peers_direct(closing):
    a, b = closing(WebRtcPeer("a")), closing(WebRtcPeer("b"))
    offer = a.create_offer()
    cands = host_candidates(offer)
    assert cands and all(f" {HOST} " in c for c in cands), offer
    a.accept_answer(b.accept_offer(offer))
    a.wait_connected(10)
    b.wait_connected(10)
    sent_a, recv_a = a.wait_packets(PACKETS, 8)
    sent_b, recv_b = b.wait_packets(PACKETS, 8)
    assert min(sent_a, recv_a, sent_b, recv_b) >= PACKETS
    assert b.frames_received > 0 and a.frames_received > 0
    a.close()
    # The counts stay readable after close.
    assert a.stats()[0] >= sent_a


@pytest.mark.timeout(20)
def test_webrtc_peers_through_jingle(closing):
    a, b = closing(WebRtcPeer("a")), closing(WebRtcPeer("b"))
    offer_children = sdp_to_jingle(a.create_offer())
    init = jingle_element(offer_children, "session-initiate", "s1")
    content = init.find(f"{{{jingle.NS_JINGLE}}}content")
    assert (content.get("creator"), content.get("name"), content.get("senders")) == \
        ("initiator", "0", "both")
    names = [p.get("name") for p in init.iter(f"{{{jingle.NS_RTP}}}payload-type")]
    assert names[0] == "opus" and {"PCMU", "PCMA"} <= set(names), names
    assert init.find(f".//{{{jingle.NS_RTP}}}rtcp-mux") is not None
    fp = init.find(f".//{{{NS_DTLS}}}fingerprint")
    assert (fp.get("hash"), fp.get("setup")) == ("sha-256", "actpass")
    cand = init.find(f".//{{{jingle.NS_ICE}}}candidate")
    assert (cand.get("ip"), cand.get("protocol"), cand.get("type"), cand.get("generation"),
            cand.get("network"), cand.get("component")) == (HOST, "udp", "host", "0", "0", "1")
    group = init.find(f"{{{NS_GROUP}}}group")
    assert group.get("semantics") == "BUNDLE"

    offer = jingle_to_sdp(init, "offer")
    m = parse_sdp(offer).media[0]
    assert (m.port, m.conn, m.proto) == (int(cand.get("port")), HOST, "UDP/TLS/RTP/SAVPF")
    answer_children = sdp_to_jingle(b.accept_offer(offer), author="responder")
    accept = jingle_element(answer_children, "session-accept", "s1")
    assert accept.find(f".//{{{NS_DTLS}}}fingerprint").get("setup") == "active"
    a.accept_answer(jingle_to_sdp(accept, "answer"))
    a.wait_connected(10)
    b.wait_connected(10)
    assert min(*a.wait_packets(PACKETS, 8), *b.wait_packets(PACKETS, 8)) >= PACKETS


@pytest.mark.timeout(20)
def test_webrtc_trickled_candidates(closing):
    """Candidates that come later (Jingle transport-info) reach aiortc."""
    a, b = closing(WebRtcPeer("a")), closing(WebRtcPeer("b"))
    init = jingle_element(sdp_to_jingle(a.create_offer()))
    transport = init.find(f".//{{{jingle.NS_ICE}}}transport")
    trickled = transport.findall(f"{{{jingle.NS_ICE}}}candidate")
    for cand in trickled:
        transport.remove(cand)
    offer = jingle_to_sdp(init, "offer")
    assert "a=candidate:" not in offer and "m=audio 9 UDP/TLS/RTP/SAVPF" in offer
    a.accept_answer(b.accept_offer(offer))
    for cand in trickled:
        b.add_remote_candidate(cand, mid="0")
    b.add_remote_candidate(None)
    a.wait_connected(10)
    b.wait_connected(10)
    assert min(*a.wait_packets(PACKETS, 8), *b.wait_packets(PACKETS, 8)) >= PACKETS


def test_jingle_conversion_of_a_conversations_offer():
    """What Conversations sends turns into an SDP with the same parameters."""
    from test_webrtc_media import OFFER_CONTENT
    sdp = jingle_to_sdp(jingle_element(OFFER_CONTENT), "offer")
    for line in ("a=group:BUNDLE 0", "m=audio 40000 UDP/TLS/RTP/SAVPF 111 126",
                 "c=IN IP4 127.0.0.1", "a=mid:0", "a=rtpmap:111 opus/48000/2",
                 "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtcp-fb:111 transport-cc",
                 "a=rtpmap:126 telephone-event/8000",
                 "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                 "a=ssrc:4242 cname:juliet-cname", "a=rtcp-mux", "a=ice-ufrag:8hhY",
                 "a=ice-pwd:asd88fgpdd777uzjYhagZg", "a=setup:actpass", "a=sendrecv",
                 "a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0"):
        assert line in sdp.splitlines(), f"{line!r} missing:\n{sdp}"
    # … and back: the same elements.
    back = jingle_element(sdp_to_jingle(sdp))
    opus = back.find(f".//{{{jingle.NS_RTP}}}payload-type")
    params = {p.get("name"): p.get("value") for p in opus.findall(f"{{{jingle.NS_RTP}}}parameter")}
    assert params == {"minptime": "10", "useinbandfec": "1"}
    assert opus.get("channels") == "2"
    assert jingle.candidates(back) == [("127.0.0.1", 40000)]


def test_rtp_packet_classification():
    assert is_rtp(bytes([0x80, 0x00]) + bytes(170))
    assert is_rtp(bytes([0x80, 0x80 | 101]) + bytes(14))
    for pt in range(200, 205):                          # SR, RR, SDES, BYE, APP
        rtcp = bytes([0x81, pt, 0, 1]) + bytes(4)
        assert is_rtcp(rtcp) and not is_rtp(rtcp)
    assert not is_rtp(bytes([0x00, 0x01]) + bytes(18))   # a STUN header


@pytest.mark.timeout(20)
def test_plain_rtp_peers_direct(closing):
    a, b = closing(PlainRtpPeer("a")), closing(PlainRtpPeer("b"))
    offer = a.local_sdp("offer")
    assert f"m=audio {a.port} RTP/AVP 0 101" in offer
    answer = b.accept_offer(offer)
    a.accept_answer(answer)
    a.start()
    b.start()
    assert min(*a.wait_packets(PACKETS, 5), *b.wait_packets(PACKETS, 5)) >= PACKETS
    assert b.received_from == {(HOST, a.port)} and a.received_from == {(HOST, b.port)}
    assert a.received_pts.keys() == {0}
    # The same SDP again: same o= version; a changed one: the next version.
    assert a.local_sdp("offer") == offer
    a.payload_type = 8
    origin = parse_sdp(a.local_sdp("offer")).origin().split()
    assert origin[2] == "2", origin


@pytest.mark.timeout(20)
def test_sip_rtp_call(closing):
    uas = closing(SipUa("rtp", name="uas", ring_ms=100))
    uac = closing(SipUa("rtp", name="uac"))
    final = uac.invite(f"sip:uas@{uas.addr}", HOST, uas.port, from_user="uac", wait=5)
    assert final.status == 200, uac.summary()
    invite = uas.wait_invite(1)
    assert f"m=audio {uac.media.port} RTP/AVP 0 101" in invite.body
    assert uas.wait_request("ACK", 2)
    statuses = [m.status for m in uac.messages("received", cseq="INVITE")]
    assert statuses[:3] == [100, 180, 200], uac.summary()
    ok = uac.wait_response(200, "INVITE", 1)
    assert ok.tag("to") and ok.header("contact") == f"<{uas.contact_uri}>"
    assert ok.header("via").startswith(f"SIP/2.0/UDP {HOST}:{uac.port};branch=")
    assert f"rport={uac.port}" in ok.header("via")

    assert min(*uac.wait_packets(PACKETS, 5), *uas.wait_packets(PACKETS, 5)) >= PACKETS
    assert uac.bye().status == 200
    uas.wait_ended(2)
    assert uas.wait_request("BYE", 1)
    # The media stops with the call.
    sent = uac.stats()[0], uas.stats()[0]
    time.sleep(0.3)
    assert (uac.stats()[0], uas.stats()[0]) == sent
    assert not uac.errors and not uas.errors, uac.summary() + uas.summary()


@pytest.mark.timeout(20)
def test_sip_rtp_uas_answers_reinvite_options_and_unknown(closing):
    uas = closing(SipUa("rtp", name="uas", ring_ms=0))
    uac = closing(SipUa("rtp", name="uac"))
    assert uac.invite(f"sip:uas@{uas.addr}", HOST, uas.port, wait=5).status == 200
    first = uac.wait_response(200, "INVITE", 1)
    assert uas.wait_request("ACK", 2).cseq_num == 1
    # Hand-made in-dialog requests: re-INVITE, OPTIONS, and one it does not know.
    d = uac.dialog
    sock = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind((HOST, 0))
    sock.settimeout(3)
    me = sock.getsockname()[1]

    def request(method, cseq, body="", answered=True):
        head = (f"{method} {d.remote_target} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{me};branch=z9hG4bK{method}{cseq}\r\n"
                f"From: {d.local_uri};tag={d.local_tag}\r\nTo: {d.remote_uri};tag={d.remote_tag}\r\n"
                f"Call-ID: {d.call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}")
        sock.sendto(head.encode(), (HOST, uas.port))
        return sock.recv(65535).decode() if answered else None

    reply = request("INVITE", 2, uac.local_sdp)
    assert reply.startswith("SIP/2.0 200"), reply
    assert reply.split("\r\n\r\n", 1)[1] == first.body, "unchanged SDP, unchanged o= version"
    request("ACK", 2, answered=False)
    assert uas.wait_request("INVITE", 2, initial=False)
    assert uas.wait_request("ACK", 2).cseq_num == 2
    assert request("OPTIONS", 3).startswith("SIP/2.0 200")
    assert request("SUBSCRIBE", 4).startswith("SIP/2.0 501")
    assert uac.bye().status == 200


@pytest.mark.timeout(25)
def test_sip_webrtc_call(closing):
    uas = closing(SipUa("webrtc", name="uas", ring_ms=100))
    uac = closing(SipUa("webrtc", name="uac"))
    final = uac.invite(f"sip:uas@{uas.addr}", HOST, uas.port, wait=10)
    assert final.status == 200, uac.summary()
    assert "UDP/TLS/RTP/SAVPF" in uas.wait_invite(1).body
    assert "a=setup:active" in final.body
    uac.media.wait_connected(10)
    uas.media.wait_connected(10)
    assert min(*uac.wait_packets(PACKETS, 8), *uas.wait_packets(PACKETS, 8)) >= PACKETS
    assert uac.bye().status == 200
    uas.wait_ended(2)


@pytest.mark.timeout(20)
def test_sip_uas_reject_and_cancel(closing):
    uas = closing(SipUa("rtp", name="uas", auto_answer=False))
    uac = closing(SipUa("rtp", name="uac"))
    uac.invite(f"sip:uas@{uas.addr}", HOST, uas.port)
    uas.wait_invite(2)
    uac.wait_response(180, "INVITE", 2)
    uas.reject(603, "Decline")
    assert uac.wait_final(3).status == 603
    assert uas.wait_request("ACK", 2).cseq_method == "ACK"
    assert uac.messages("sent", method="ACK")

    uac2 = closing(SipUa("rtp", name="uac2"))
    uac2.invite(f"sip:uas@{uas.addr}", HOST, uas.port)
    uas.wait_invite(2)
    uac2.wait_response(180, "INVITE", 2)
    assert uac2.cancel().status == 200
    assert uac2.wait_final(3).status == 487
    assert uas.cancelled.is_set()


def raw_socket(closing, timeout=3.0) -> socket.socket:
    sock = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.bind((HOST, 0))
    sock.settimeout(timeout)
    return sock


def first_lines(sock, within: float) -> list[str]:
    """First lines of what arrives on a raw socket within `within` seconds."""
    out, deadline = [], time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(65535).decode().split("\r\n", 1)[0])
        except socket.timeout:
            break
    return out


@pytest.mark.timeout(20)
def test_sip_uas_retransmits_200_until_ack(closing):
    uas = closing(SipUa("rtp", name="uas", ring_ms=0))
    sock = raw_socket(closing)
    me = sock.getsockname()[1]
    offer = closing(PlainRtpPeer("raw")).local_sdp("offer")
    head = (f"SIP/2.0/UDP {HOST}:{me};branch=z9hG4bKraw1\r\nFrom: <sip:raw@{HOST}>;tag=r1\r\n"
            f"Call-ID: raw-1\r\nMax-Forwards: 70\r\n")
    sock.sendto((f"INVITE sip:uas@{uas.addr} SIP/2.0\r\nVia: {head}To: <sip:uas@{uas.addr}>\r\n"
                 f"CSeq: 1 INVITE\r\nContact: <sip:raw@{HOST}:{me}>\r\n"
                 f"Content-Type: application/sdp\r\nContent-Length: {len(offer)}\r\n\r\n{offer}"
                 ).encode(), (HOST, uas.port))
    got = first_lines(sock, 1.8)                # 200 at 0, 0.5 and 1.5 s
    assert got[:2] == ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing"], got
    assert got[2:] == ["SIP/2.0 200 OK"] * 3, got
    to_tag = uas.dialog.local_tag
    sock.sendto((f"ACK sip:uas@{uas.addr} SIP/2.0\r\nVia: {head.replace('raw1', 'raw2')}"
                 f"To: <sip:uas@{uas.addr}>;tag={to_tag}\r\nCSeq: 1 ACK\r\n"
                 f"Content-Length: 0\r\n\r\n").encode(), (HOST, uas.port))
    assert uas.wait_request("ACK", 2)
    assert first_lines(sock, 1.2) == [], "the 200 goes on after the ACK"


@pytest.mark.timeout(20)
def test_sip_uac_retransmits_invite_and_acks_each_200(closing):
    uac = closing(SipUa("rtp", name="uac"))
    sock = raw_socket(closing)
    me = sock.getsockname()[1]
    uac.invite(f"sip:raw@{HOST}:{me}", HOST, me)
    first, addr = sock.recvfrom(65535)
    again = sock.recv(65535)                     # Timer A: the same INVITE after T1
    assert again == first
    invite = first.decode()
    head, _, _ = invite.partition("\r\n\r\n")
    copied = "".join(line + "\r\n" for line in head.split("\r\n")[1:]
                     if line.split(":")[0] in ("Via", "From", "Call-ID", "CSeq"))
    to = next(line for line in head.split("\r\n") if line.startswith("To:"))
    answer = closing(PlainRtpPeer("raw")).local_sdp("answer")
    ok = (f"SIP/2.0 200 OK\r\n{copied}{to};tag=t1\r\nContact: <sip:raw@{HOST}:{me}>\r\n"
          f"Content-Type: application/sdp\r\nContent-Length: {len(answer)}\r\n\r\n{answer}")
    for _ in range(2):                           # the 200 and a retransmission of it
        sock.sendto(ok.encode(), addr)
        ack = sock.recv(65535).decode()
        assert ack.startswith(f"ACK sip:raw@{HOST}:{me} SIP/2.0"), ack
        assert "CSeq: 1 ACK" in ack and ";tag=t1" in ack
    uac.wait_answered(1)
    assert len(uac.messages("sent", method="ACK")) == 2
    assert len(uac.messages("received", status=200)) == 2
