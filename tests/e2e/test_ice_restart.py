"""ICE restarts after the answer, both ways (RFC 8839 §4.4.1.1.1 ⇄ XEP-0176
§2.4): new ice-ufrag/ice-pwd in a re-INVITE ⇄ transport-info with new
credentials, against SIPp and a slixmpp client on Prosody."""

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, assert_result, new_sid
from test_webrtc_media import OFFER_CONTENT

pytestmark = pytest.mark.gateway

NS_ICE = jingle.NS_ICE


def restart_content(ufrag: str, pwd: str, port: int, name: str) -> str:
    return (f"<content creator='initiator' name='{name}'>"
            f"<transport xmlns='{NS_ICE}' ufrag='{ufrag}' pwd='{pwd}'>"
            f"<candidate component='1' foundation='1' generation='0' id='r1' ip='127.0.0.1' "
            f"network='0' port='{port}' priority='2122260223' protocol='udp' type='host'/>"
            f"</transport></content>")


def transport(st) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    t = st.xml.find(f".//{{{NS_ICE}}}transport")
    assert t is not None, st.text()
    return t.get("ufrag"), t.get("pwd"), jingle.candidates(st.xml)


def test_xep0176_2_4_an_xmpp_user_restarts_ice(gateway, juliet, sipp):
    uas = sipp.uas("uas_answer_webrtc_ice_restart", port=gateway.uas_port, xmpp_ufrag="Jr3s")
    sid = new_sid("ice")
    offer = jingle.jingle("session-initiate", sid, OFFER_CONTENT, initiator=juliet.full_jid)
    assert_result(juliet.send_iq(ROMEO_JID, offer), "session-initiate")
    juliet.expect("session-accept", 10, sid=sid)

    restart = jingle.jingle("transport-info", sid,
                            restart_content("Jr3s", "cmVzdGFydGp1bGlldHJlc3Rh", 40010, "0"))
    assert_result(juliet.send_iq(ROMEO_JID, restart), "transport-info restart")
    answer = juliet.expect("transport-info", 10, sid=sid)
    ufrag, pwd, cands = transport(answer)
    assert (ufrag, pwd) == ("Rs7b", "cmVzdGFydGVkYW5zd2VyZWQx"), answer.text()
    assert ("127.0.0.1", 6010) in cands, answer.text()
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)), "terminate")

    trace = uas.wait()
    trace.assert_ok()
    first, reinvite = (i.sdp for i in trace.find("received", method="INVITE"))
    assert "a=ice-pwd:cmVzdGFydGp1bGlldHJlc3Rh" in reinvite
    assert any(l.startswith("a=candidate:") and " 40010 typ host" in l for l in reinvite), reinvite
    assert not any(" 40000 typ host" in l for l in reinvite), "old candidates are gone"
    codecs = lambda sdp: [l for l in sdp if l.startswith(("a=rtpmap:", "a=fingerprint:", "a=mid:"))]
    assert codecs(first) == codecs(reinvite), "only the transport changed"
    version = lambda sdp: int(next(l for l in sdp if l.startswith("o=")).split()[2])
    assert version(reinvite) == version(first) + 1
    row = gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert "a=ice-ufrag:Rs7b" in (row["remote_sdp"] or ""), row


def test_rfc8839_4_4_1_1_1_a_sip_peer_restarts_ice(gateway, juliet, sipp):
    uac = sipp.uac("uac_ice_call_restart_bye", remote=gateway.sip_addr(), hold_ms=300,
                   restart_port=7088, xmpp_ufrag="Jr3s")
    init = juliet.expect("session-initiate", 10)
    name = init.xml.find(f".//{{{jingle.NS_JINGLE}}}content").get("name")
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)))
    accept = jingle.content(
        jingle.rtp_description((jingle.PCMA, jingle.EVENTS)),
        f"<transport xmlns='{NS_ICE}' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>"
        f"<candidate component='1' foundation='1' generation='0' id='a1' ip='127.0.0.1' "
        f"network='0' port='41000' priority='2122260223' protocol='udp' type='host'/></transport>",
        name=name)
    assert_result(juliet.send_iq(init.frm, jingle.jingle("session-accept", init.sid, accept,
                                                         responder=juliet.full_jid)))

    restart = juliet.expect("transport-info", 10, sid=init.sid)
    ufrag, pwd, cands = transport(restart)
    assert (ufrag, pwd) == ("Rs7a", "cmVzdGFydGVkcmVzdGFydGVkcmVz"), restart.text()
    assert ("127.0.0.1", 7088) in cands, restart.text()
    mine = jingle.jingle("transport-info", init.sid,
                         restart_content("Jr3s", "cmVzdGFydGp1bGlldHJlc3Rh", 41010, name))
    assert_result(juliet.send_iq(init.frm, mine), "transport-info answer")
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()

    trace = uac.wait()
    trace.assert_ok()
    ok = [m for m in trace.find("received", status=200, cseq="INVITE")
          if m.header("cseq") == "2 INVITE"][0]
    assert "a=ice-pwd:cmVzdGFydGp1bGlldHJlc3Rh" in ok.sdp, ok
    assert any(" 41010 typ host" in l for l in ok.sdp), ok
