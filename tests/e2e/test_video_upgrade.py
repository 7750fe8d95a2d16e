"""Audio → video upgrade and back, started by the XMPP user (XEP-0166 §7.2
content-add / content-remove ⇄ RFC 3264 §8.1 / §8.2 re-INVITEs), against a
SIPp UAS and a slixmpp client on Prosody: the SIP side gets a re-INVITE with
the audio m= line unchanged and a video m= line after it, answers both, and
the client gets content-accept with the SIP side's video payload; removing
the content sends the video m= line with port 0."""

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, assert_result, call_sip, call_xmpp

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
