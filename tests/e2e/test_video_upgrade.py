"""Audio → video upgrade and back, started by the XMPP user (XEP-0166 §7.2
content-add / content-remove ⇄ RFC 3264 §8.1 / §8.2 re-INVITEs), against a
SIPp UAS and a slixmpp client on Prosody: the SIP side gets a re-INVITE with
the audio m= line unchanged and a video m= line after it, answers both, and
the client gets content-accept with the SIP side's video payload; removing
the content sends the video m= line with port 0."""

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, assert_result, call_sip, call_xmpp, new_sid
from test_webrtc_media import FINGERPRINT, OFFER_CONTENT

pytestmark = pytest.mark.gateway

VP8 = (96, "VP8", 90000)


def video(name: str = "video", port: int = 40002) -> str:
    return jingle.content(jingle.rtp_description((VP8,), media="video"),
                          jingle.raw_udp("127.0.0.1", port), name=name)


def test_xep0166_7_2_an_xmpp_user_adds_video_then_removes_it(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_answer_video_upgrade", wait_ms=10000)
    juliet.expect("session-accept", 10, sid=sid)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.jingle("content-add", sid, video())),
                  "content-add")
    accept = juliet.expect("content-accept", 10, sid=sid)
    assert jingle.payload_types(accept.xml, "video") == [VP8], accept.text()
    assert ("127.0.0.1", 6002) in jingle.candidates(accept.xml), accept.text()
    removal = jingle.jingle("content-remove", sid,
                            "<content creator='initiator' name='video'/>")
    assert_result(juliet.send_iq(ROMEO_JID, removal), "content-remove")
    gateway.wait_row(lambda r: r["jingle_sid"] == sid
                     and "m=video 0 " in (r["local_sdp"] or "")
                     and "m=video 0 " in (r["remote_sdp"] or ""), timeout=10)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")

    trace = uas.wait()
    trace.assert_ok()
    invites = trace.find("received", method="INVITE")
    assert len(invites) == 3, trace.summary()
    first, upgrade, removal = (i.sdp for i in invites)
    audio = [l for l in first if not l.startswith("o=")]
    assert all(l in upgrade for l in audio), "the audio stream is unchanged"
    assert upgrade.index(next(l for l in upgrade if l.startswith("m=video"))) > \
        upgrade.index(next(l for l in upgrade if l.startswith("m=audio")))
    version = lambda sdp: int(next(l for l in sdp if l.startswith("o=")).split()[2])
    assert version(upgrade) == version(first) + 1 and version(removal) == version(upgrade) + 1
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["ended_by"] == "xmpp", row


def test_rfc3264_8_1_a_sip_peer_adds_video_then_removes_it(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_add_remove_video")
    accept(juliet, init)
    add = juliet.expect("content-add", 10, sid=init.sid)
    assert jingle.payload_types(add.xml) == [VP8], add.text()
    assert ("127.0.0.1", 7080) in jingle.candidates(add.xml), add.text()
    name = add.xml.find(f".//{{{jingle.NS_JINGLE}}}content").get("name")
    answer = juliet.send_iq(init.frm, jingle.jingle("content-accept", init.sid,
                                                    video(name=name, port=42002)))
    assert_result(answer, "content-accept")
    remove = juliet.expect("content-remove", 10, sid=init.sid)
    assert remove.xml.find(f".//{{{jingle.NS_JINGLE}}}content").get("name") == name
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    trace = uac.wait()
    trace.assert_ok()
    upgrade = [ok for ok in trace.find("received", status=200, cseq="INVITE")
               if ok.header("cseq") == "2 INVITE"][0]
    assert any(l.startswith("m=video 42002 RTP/AVP 96") for l in upgrade.sdp), upgrade


# Conversations' audio → video upgrade on a DTLS-SRTP + ICE + BUNDLE call:
# the new content shares the session's ICE credentials and fingerprint and
# joins the BUNDLE group.
CONVERSATIONS_VIDEO = f"""
<content creator='initiator' name='1' senders='both'>
  <description xmlns='{jingle.NS_RTP}' media='video'>
    <payload-type id='96' name='VP8' clockrate='90000'>
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>
    </payload-type>
    <rtcp-mux/>
  </description>
  <transport xmlns='{jingle.NS_ICE}' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>
    <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>{FINGERPRINT}</fingerprint>
  </transport>
</content>
<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>
  <content name='0'/><content name='1'/>
</group>
"""


def test_xep0166_7_2_conversations_upgrades_a_bundled_dtls_call_to_video(gateway, juliet, sipp):
    uas = sipp.uas("uas_answer_webrtc_video_upgrade", port=gateway.uas_port)
    sid = new_sid("vid")
    offer = jingle.jingle("session-initiate", sid, OFFER_CONTENT, initiator=juliet.full_jid)
    assert_result(juliet.send_iq(ROMEO_JID, offer), "session-initiate")
    juliet.expect("session-accept", 10, sid=sid)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.jingle("content-add", sid, CONVERSATIONS_VIDEO)),
                  "content-add")
    accepted = juliet.expect("content-accept", 10, sid=sid)
    content = accepted.xml.find(f".//{{{jingle.NS_JINGLE}}}content")
    assert content is not None and content.get("name") == "1", accepted.text()
    assert jingle.payload_types(accepted.xml) == [VP8], accepted.text()
    transport = content.find(f"{{{jingle.NS_ICE}}}transport")
    assert transport is not None and transport.get("ufrag") == "Ns7Q", accepted.text()
    fp = transport.find("{urn:xmpp:jingle:apps:dtls:0}fingerprint")
    assert fp is not None and fp.get("setup") == "active", accepted.text()
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")

    trace = uas.wait()
    trace.assert_ok()
    first, upgrade = (i.sdp for i in trace.find("received", method="INVITE"))
    audio_of = lambda sdp: sdp[sdp.index(next(l for l in sdp if l.startswith("m=audio"))):
                               sdp.index(next(l for l in sdp if l.startswith("m=video")))
                               if any(l.startswith("m=video") for l in sdp) else len(sdp)]
    assert audio_of(first) == audio_of(upgrade), "the audio stream is unchanged"
    video = upgrade[upgrade.index(next(l for l in upgrade if l.startswith("m=video"))):]
    for line in ("a=mid:1", "a=ice-ufrag:8hhY", "a=ice-pwd:asd88fgpdd777uzjYhagZg",
                 "a=setup:actpass", "a=rtcp-mux", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack"):
        assert line in video, f"{line} missing in the video section:\n" + "\n".join(video)
    assert any(l.startswith("a=fingerprint:sha-256 ") for l in video), video
    assert "a=group:BUNDLE 0 1" in upgrade
    version = lambda sdp: int(next(l for l in sdp if l.startswith("o=")).split()[2])
    assert version(upgrade) == version(first) + 1
