"""A Conversations-style call (ICE-UDP + DTLS-SRTP + rtcp-mux + rtcp-fb +
rtp-hdrext + sources + BUNDLE) to a SIP peer that answers like a WebRTC
browser: every element survives the trip both ways (issue 3)."""

import xml.etree.ElementTree as ET

import pytest

from harness.calls import ROMEO_JID, assert_result, new_sid
from harness.jingle import NS_ICE, NS_JINGLE, NS_RTP, jingle

pytestmark = pytest.mark.gateway

NS_DTLS = "urn:xmpp:jingle:apps:dtls:0"
NS_FB = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"
NS_HDREXT = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"
NS_SSMA = "urn:xmpp:jingle:apps:rtp:ssma:0"
NS_GROUP = "urn:xmpp:jingle:apps:grouping:0"

FINGERPRINT = ("02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:"
               "3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2")

# What Conversations sends (libwebrtc underneath), in current namespaces.
OFFER_CONTENT = f"""
<content creator='initiator' name='0' senders='both'>
  <description xmlns='{NS_RTP}' media='audio'>
    <payload-type id='111' name='opus' clockrate='48000' channels='2'>
      <parameter name='minptime' value='10'/>
      <parameter name='useinbandfec' value='1'/>
      <rtcp-fb xmlns='{NS_FB}' type='transport-cc'/>
    </payload-type>
    <payload-type id='126' name='telephone-event' clockrate='8000'/>
    <rtp-hdrext xmlns='{NS_HDREXT}' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>
    <rtp-hdrext xmlns='{NS_HDREXT}' id='3' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>
    <source xmlns='{NS_SSMA}' ssrc='4242'>
      <parameter name='cname' value='juliet-cname'/>
    </source>
    <rtcp-mux/>
  </description>
  <transport xmlns='{NS_ICE}' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>
    <fingerprint xmlns='{NS_DTLS}' hash='sha-256' setup='actpass'>{FINGERPRINT}</fingerprint>
    <candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1'
               network='0' port='40000' priority='2122260223' protocol='udp' type='host'/>
  </transport>
</content>
<group xmlns='{NS_GROUP}' semantics='BUNDLE'><content name='0'/></group>
"""


def find(el: ET.Element, path: str) -> ET.Element:
    found = el.find(path)
    assert found is not None, f"{path} missing in {ET.tostring(el, encoding='unicode')}"
    return found


def test_conversations_offer_and_webrtc_answer_survive(gateway, juliet, sipp):
    uas = sipp.uas("uas_answer_webrtc", port=gateway.uas_port)
    sid = new_sid("webrtc")
    offer = jingle("session-initiate", sid, OFFER_CONTENT, initiator=juliet.full_jid)
    assert_result(juliet.send_iq(ROMEO_JID, offer), "session-initiate")

    # --- the Jingle answer: every element of the browser's SDP is there ---
    acc = juliet.expect("session-accept", 10, sid=sid)
    j = acc.xml.find(f"{{{NS_JINGLE}}}jingle")
    assert j is not None, acc.text()
    content = find(j, f"{{{NS_JINGLE}}}content")
    assert content.get("name") == "0"
    desc = find(content, f"{{{NS_RTP}}}description")
    pts = desc.findall(f"{{{NS_RTP}}}payload-type")
    assert [(p.get("id"), p.get("name")) for p in pts] == [("111", "opus"), ("126", "telephone-event")]
    opus = pts[0]
    params = {p.get("name"): p.get("value") for p in opus.findall(f"{{{NS_RTP}}}parameter")}
    assert params == {"minptime": "10", "useinbandfec": "1"}, acc.text()
    assert find(opus, f"{{{NS_FB}}}rtcp-fb").get("type") == "transport-cc"
    assert find(desc, f"{{{NS_RTP}}}rtcp-mux") is not None
    hdrext = find(desc, f"{{{NS_HDREXT}}}rtp-hdrext")
    assert (hdrext.get("id"), hdrext.get("uri")) == ("1", "urn:ietf:params:rtp-hdrext:ssrc-audio-level")
    source = find(desc, f"{{{NS_SSMA}}}source")
    assert source.get("ssrc") == "1001"
    cname = [p.get("value") for p in source.findall(f"{{{NS_SSMA}}}parameter") if p.get("name") == "cname"]
    assert cname == ["romeo-cname"], acc.text()
    transport = find(content, f"{{{NS_ICE}}}transport")
    assert (transport.get("ufrag"), transport.get("pwd")) == ("Ns7Q", "r4gVKd7bDhUMjWbd0JoiL9xA")
    cand = find(transport, f"{{{NS_ICE}}}candidate")
    assert (cand.get("ip"), cand.get("port"), cand.get("type"), cand.get("foundation")) == \
        ("127.0.0.1", "6000", "host", "1467250027")
    assert cand.get("generation") == "0"
    fp = find(transport, f"{{{NS_DTLS}}}fingerprint")
    assert (fp.get("hash"), fp.get("setup")) == ("sha-256", "active"), "DTLS roles are never rewritten"
    group = find(j, f"{{{NS_GROUP}}}group")
    assert group.get("semantics") == "BUNDLE"
    assert [c.get("name") for c in group.findall(f"{{{NS_GROUP}}}content")] == ["0"]

    # --- hang up, then check the SDP offer the SIP side received ---
    assert_result(juliet.send_iq(ROMEO_JID, jingle("session-terminate", sid,
                                                   "<reason><success/></reason>")))
    trace = uas.wait()
    trace.assert_ok()
    sdp = trace.one("received", method="INVITE").sdp
    for line in (
        "a=group:BUNDLE 0",
        "m=audio 40000 UDP/TLS/RTP/SAVPF 111 126",
        "c=IN IP4 127.0.0.1",
        "a=mid:0",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtcp-fb:111 transport-cc",
        "a=rtpmap:126 telephone-event/8000",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=ssrc:4242 cname:juliet-cname",
        "a=rtcp-mux",
        "a=ice-ufrag:8hhY",
        "a=ice-pwd:asd88fgpdd777uzjYhagZg",

        f"a=fingerprint:sha-256 {FINGERPRINT}",
        "a=setup:actpass",
        "a=sendrecv",
    ):
        assert line in sdp, f"{line!r} missing from the INVITE's SDP:\n" + "\n".join(sdp)
    # The candidate (Jingle's network index travels as the network-id extension).
    cands = [l for l in sdp if l.startswith("a=candidate:")]
    assert len(cands) == 1 and cands[0].startswith(
        "a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host generation 0"), cands
    assert trace.one("received", method="BYE")
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                     and r["end_reason"] == "success" and r["sip_status"] == 200)
