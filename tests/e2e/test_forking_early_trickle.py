"""Issue 4 on the SIP side: a forked INVITE, early media, reliable
provisionals, and trickled ICE candidates (batched into the INVITE, then SIP
INFO application/trickle-ice-sdpfrag both ways)."""

import time

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, assert_result, call_sip, new_sid

pytestmark = pytest.mark.gateway

NS_ICE = jingle.NS_ICE
UFRAG, PWD = "8hhY", "asd88fgpdd777uzjYhagZg"


def ice_content(candidates: str = "", name: str = "audio") -> str:
    return jingle.content(
        jingle.rtp_description((jingle.PCMA, jingle.EVENTS)),
        f"<transport xmlns='{NS_ICE}' ufrag='{UFRAG}' pwd='{PWD}'>{candidates}</transport>",
        name=name)


def candidate(cid: str, port: int, typ: str = "host", ip: str = "127.0.0.1") -> str:
    return (f"<candidate component='1' foundation='{cid}' generation='0' id='{cid}' ip='{ip}' "
            f"port='{port}' priority='2122260223' protocol='udp' type='{typ}'/>")


def transport_info(sid: str, candidates: str) -> str:
    return jingle.jingle("transport-info", sid, ice_content(candidates))


def ice_candidates(st) -> list[tuple[str, str, str]]:
    return [(c.get("ip"), c.get("port"), c.get("type"))
            for c in st.xml.iter(f"{{{NS_ICE}}}candidate")]


def test_forked_invite_two_180s_two_200s(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_fork_two_200", ring_ms=300)
    ringing = juliet.expect("session-info", 10, sid=sid)
    assert jingle.has_ringing(ringing.xml)
    acc = juliet.expect("session-accept", 10, sid=sid)
    assert jingle.candidates(acc.xml)[0] == ("127.0.0.1", 6000), "fork A's answer (the first 2xx)"
    juliet.expect_nothing("session-info", within=0.5)      # fork B's 180 is not forwarded
    juliet.expect_nothing("session-accept", within=0.1)    # nor its 200
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)))
    trace = uas.wait()
    trace.assert_ok()   # both 200s ACKed, fork B ended with BYE, then fork A's BYE
    assert len(trace.find("received", method="ACK")) == 2
    assert len(trace.find("received", method="BYE")) == 2
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                     and r["sip_status"] == 200 and r["end_reason"] == "success")


def test_183_with_early_sdp_is_held_until_the_200(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_early_media", ring_ms=800)
    ringing = juliet.expect("session-info", 10, sid=sid)
    assert jingle.has_ringing(ringing.xml), "183 → <ringing/>"
    started = time.monotonic()
    juliet.expect_nothing("session-accept", within=0.4)     # the early answer is not forwarded
    acc = juliet.expect("session-accept", 10, sid=sid)
    assert time.monotonic() - started >= 0.3
    assert jingle.candidates(acc.xml)[0] == ("127.0.0.1", 6000)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)))
    uas.wait().assert_ok()


def test_reliable_183_answer_is_used_for_a_200_without_sdp(gateway, juliet, sipp):
    sid, uas = call_sip(gateway, juliet, sipp, "uas_reliable_183_no_sdp_200", ring_ms=300)
    acc = juliet.expect("session-accept", 10, sid=sid)
    assert [p[0] for p in jingle.payload_types(acc.xml)] == [8, 101], acc.text()
    assert jingle.candidates(acc.xml)[0] == ("127.0.0.1", 6000)
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)))
    trace = uas.wait()
    trace.assert_ok()
    assert trace.one("received", method="PRACK")
    assert "100rel" in (trace.one("received", method="INVITE").header("supported") or "")


def test_trickled_candidates_batched_into_the_invite_then_info_both_ways(gateway, juliet, sipp):
    uas = sipp.uas("uas_trickle_info", port=gateway.uas_port, ring_ms=200)
    sid = new_sid("trickle")
    assert_result(juliet.send_iq(ROMEO_JID, jingle.jingle(
        "session-initiate", sid, ice_content(), initiator=juliet.full_jid)))
    for cid, port in (("c1", 40000), ("c2", 40002)):
        assert_result(juliet.send_iq(ROMEO_JID, transport_info(sid, candidate(cid, port))))

    acc = juliet.expect("session-accept", 10, sid=sid)
    assert ("127.0.0.1", "6000", "host") in ice_candidates(acc)
    # A candidate trickled after the answer goes to the SIP peer by INFO …
    assert_result(juliet.send_iq(ROMEO_JID, transport_info(
        sid, candidate("c3", 40004, "srflx", "192.0.2.30"))))
    # … and the peer's INFO comes back as transport-info.
    ti = juliet.expect("transport-info", 10, sid=sid)
    assert ("192.0.2.10", "6000", "srflx") in ice_candidates(ti), ti.text()
    assert_result(juliet.send_iq(ROMEO_JID, jingle.session_terminate(sid)))

    trace = uas.wait()
    trace.assert_ok()
    invite = trace.one("received", method="INVITE")
    cands = [l for l in invite.sdp if l.startswith("a=candidate:")]
    assert len(cands) == 2 and any(" 40000 " in c for c in cands) and any(" 40002 " in c for c in cands), \
        "both trickled candidates are in the INVITE:\n" + "\n".join(invite.sdp)
    assert "trickle-ice" in (invite.header("supported") or "")
    info = trace.one("received", method="INFO")
    assert info.header("content-type").startswith("application/trickle-ice-sdpfrag")
    assert any("192.0.2.30 40004 typ srflx" in l for l in info.sdp), str(info)


def test_sip_caller_trickles_by_info(gateway, juliet, sipp):
    uac = sipp.uac("uac_info_sdpfrag", remote=gateway.sip_addr(), hold_ms=500)
    init = juliet.expect("session-initiate", 10)
    assert ("127.0.0.1", "7078", "host") in ice_candidates(init), init.text()
    assert_result(juliet.send_iq(init.frm, jingle.ringing(init.sid)))
    answer = jingle.jingle("session-accept", init.sid, ice_content(candidate("a1", 41000), name="0"),
                           responder=juliet.full_jid)
    assert_result(juliet.send_iq(init.frm, answer))
    ti = juliet.expect("transport-info", 10, sid=init.sid)
    assert ("192.0.2.20", "7078", "srflx") in ice_candidates(ti), ti.text()
    juliet.expect("session-terminate", 10, sid=init.sid)
    uac.wait().assert_ok()
