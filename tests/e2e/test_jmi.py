"""XEP-0353 Jingle Message Initiation through the gateway, with two devices
of the same user where it matters (issue 4)."""

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, ROMEO_SIP, accept, assert_result, new_sid

pytestmark = pytest.mark.gateway

BARE = "sip:juliet@example.com"          # no ;gr= → the gateway rings with <propose/>
GW_DEVICE = ROMEO_JID + "/stox-gateway"   # the resource the gateway proceeds from


def ended(gateway, sid, **expected) -> dict:
    return gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended"
                            and all(r[k] == v for k, v in expected.items()))


# --- SIP -> XMPP ----------------------------------------------------------------

def test_two_devices_ring_the_phone_answers(gateway, juliet, juliet_phone, sipp):
    uac = sipp.uac("uac_call_bye", remote=gateway.sip_addr(), ruri=BARE, hold_ms=500)
    p1 = juliet.expect_jmi("propose", 10)
    p2 = juliet_phone.expect_jmi("propose", 10, id=p1.id)
    assert p1.frm == ROMEO_JID and p1.to == "juliet@example.com", p1.text()
    media = [d.get("media") for d in p1.xml.iter(f"{{{jingle.NS_RTP}}}description")]
    assert media == ["audio"], p1.text()
    sid = p2.id

    juliet.send_jmi(ROMEO_JID, "ringing", sid)
    juliet_phone.send_jmi(ROMEO_JID, "ringing", sid)
    gateway.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ringing")
    juliet_phone.send_jmi(ROMEO_JID, "proceed", sid)

    retract = juliet.expect_jmi("retract", 10, id=sid)
    assert retract.reason() == "cancel", "the other device is told the call was answered elsewhere"
    juliet.expect_nothing("session-initiate", within=0.3)
    init = juliet_phone.expect("session-initiate", 10, sid=sid)
    assert init.frm == ROMEO_JID
    accept(juliet_phone, init)
    term = juliet_phone.expect("session-terminate", 10, sid=sid)
    assert jingle.reason(term.xml)[0] == "success"
    finish = juliet_phone.expect_jmi("finish", 10, id=sid)
    assert finish.reason() == "success"

    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=180)
    assert trace.one("received", status=200)
    row = ended(gateway, sid, end_reason="success", sip_status=200, ended_by="sip")
    assert row["xmpp_jid"] == "juliet@example.com/phone", row


@pytest.mark.parametrize("reason,code", [("busy", 486), ("decline", 603)])
def test_reject(gateway, juliet, sipp, reason, code):
    uac = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), ruri=BARE, code=code)
    p = juliet.expect_jmi("propose", 10)
    juliet.send_jmi(ROMEO_JID, "reject", p.id,
                    f"<reason xmlns='{jingle.NS_JINGLE}'><{reason}/></reason>")
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=code)
    ended(gateway, p.id, end_reason=reason, sip_status=code, ended_by="xmpp")


@pytest.mark.gateway_config(ring_timeout_secs=2)
def test_no_answer_is_480_and_the_proposal_is_retracted(gateway, juliet, sipp):
    uac = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), ruri=BARE, code=480)
    p = juliet.expect_jmi("propose", 10)
    retract = juliet.expect_jmi("retract", 10, id=p.id)
    assert retract.reason() == "timeout"
    uac.wait().assert_ok()
    ended(gateway, p.id, end_reason="timeout", sip_status=480, ended_by="gateway")


def test_sip_cancel_retracts_the_proposal(gateway, juliet, sipp):
    uac = sipp.uac("uac_cancel", remote=gateway.sip_addr(), ruri=BARE)
    p = juliet.expect_jmi("propose", 10)
    juliet.send_jmi(ROMEO_JID, "ringing", p.id)     # the UAC cancels after the 180
    retract = juliet.expect_jmi("retract", 10, id=p.id)
    assert retract.reason() == "cancel"
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=487)
    ended(gateway, p.id, end_reason="cancel", sip_status=487, ended_by="sip")


# --- XMPP -> SIP ----------------------------------------------------------------

def propose(juliet, sid):
    juliet.send_jmi(ROMEO_JID, "propose", sid, f"<description xmlns='{jingle.NS_RTP}' media='audio'/>")
    proceed = juliet.expect_jmi("proceed", 10, id=sid)
    assert proceed.frm == GW_DEVICE, proceed.text()
    return proceed


def test_propose_proceed_then_the_call(gateway, juliet, sipp):
    uas = sipp.uas("uas_answer_wait_bye", port=gateway.uas_port, ring_ms=200)
    sid = new_sid("jmi")
    proceed = propose(juliet, sid)
    assert_result(juliet.send_iq(proceed.frm, jingle.session_initiate(sid, juliet.full_jid)))
    juliet.expect("session-accept", 10, sid=sid)
    assert_result(juliet.send_iq(proceed.frm, jingle.session_terminate(sid)))
    finish = juliet.expect_jmi("finish", 10, id=sid)
    assert finish.reason() == "success"
    trace = uas.wait()
    trace.assert_ok()
    invite = trace.one("received", method="INVITE")
    assert invite.uri == ROMEO_SIP, "the gateway's own resource is not a GRUU"
    ended(gateway, sid, end_reason="success", sip_status=200, ended_by="xmpp")


def test_retract_before_session_initiate_reaches_no_sip(gateway, juliet, sipp):
    uas = sipp.uas("uas_answer_wait_bye", port=gateway.uas_port, timeout=3)
    sid = new_sid("jmi")
    propose(juliet, sid)
    juliet.send_jmi(ROMEO_JID, "retract", sid, f"<reason xmlns='{jingle.NS_JINGLE}'><cancel/></reason>")
    row = ended(gateway, sid, end_reason="cancel", ended_by="xmpp")
    assert row["sip_status"] is None and row["direction"] == "xmpp-to-sip", row
    trace = uas.wait()
    assert not trace.find("received", method="INVITE"), "nothing reached SIP"


# --- service discovery ------------------------------------------------------------

@pytest.mark.parametrize("target", ["sip.example.com", ROMEO_JID])
def test_disco_info(gateway, juliet, target):
    answer = juliet.send_iq(target, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get")
    assert answer is not None and answer.type == "result", answer and answer.text()
    ns = "http://jabber.org/protocol/disco#info"
    ident = answer.xml.find(f"{{{ns}}}query/{{{ns}}}identity")
    assert (ident.get("category"), ident.get("type")) == ("gateway", "sip")
    features = {f.get("var") for f in answer.xml.iter(f"{{{ns}}}feature")}
    for needed in ("urn:xmpp:jingle:1", "urn:xmpp:jingle:apps:rtp:1", "urn:xmpp:jingle:apps:rtp:audio",
                   "urn:xmpp:jingle:apps:rtp:video", "urn:xmpp:jingle:transports:ice-udp:1",
                   "urn:xmpp:jingle:transports:raw-udp:1", "urn:xmpp:jingle:apps:dtls:0",
                   "urn:xmpp:jingle:apps:rtp:rtcp-fb:0", "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0",
                   "urn:xmpp:jingle:apps:grouping:0", "urn:xmpp:jingle:apps:rtp:ssma:0",
                   "urn:xmpp:jingle-message:0", "urn:ietf:rfc:3264", "urn:xmpp:ping"):
        assert needed in features, f"{needed} missing: {sorted(features)}"
    assert answer.frm == target
