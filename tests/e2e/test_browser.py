"""JsSIP in a real headless Chromium (issue 14): registers with digest auth,
calls an XMPP user (slixmpp answers like Conversations, ICE + DTLS), hangs
up; then an XMPP user calls the registered browser and it answers; the same
over wss with the test CA's certificate. Chromium and the npm packages are
installed by tests/run.sh."""

import base64
import hashlib
import subprocess
import time

import pytest

from harness import jingle
from harness.browser import Browser
from harness.calls import assert_result, new_sid
from harness.gateway import Gateway
from harness.pki import make
from test_webrtc_media import FINGERPRINT, OFFER_CONTENT

pytestmark = [pytest.mark.gateway, pytest.mark.timeout(120)]

REG = {"outbound_proxy": False, "registrar": {"domains": ["web.example"]}}
ALICE_JID = "alice\\40web.example@sip.example.com"


def webrtc_accept(init) -> str:
    """Juliet's session-accept for the browser's offer: its content names,
    opus, ICE and DTLS (setup active) like a WebRTC client."""
    contents = init.xml.findall(f".//{{{jingle.NS_JINGLE}}}content")
    body = ""
    for c in contents:
        body += f"""
<content creator='initiator' name='{c.get("name")}' senders='both'>
  <description xmlns='{jingle.NS_RTP}' media='audio'>
    <payload-type id='111' name='opus' clockrate='48000' channels='2'/>
    <rtcp-mux/>
  </description>
  <transport xmlns='{jingle.NS_ICE}' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>
    <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>{FINGERPRINT}</fingerprint>
    <candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1' network='0'
               port='41000' priority='2122260223' protocol='udp' type='host'/>
  </transport>
</content>"""
    names = "".join(f"<content name='{c.get('name')}'/>" for c in contents)
    return body + f"<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>{names}</group>"


@pytest.fixture
def browsers(tmp_path):
    made = []

    def make_one(ws: str, spki: str | None = None) -> Browser:
        b = Browser(tmp_path / f"browser{len(made)}.log", ws, "sip:alice@web.example", "s3cret",
                    spki)
        made.append(b)
        return b
    yield make_one
    for b in made:
        b.stop()


def calls_both_ways(gateway, juliet, browser):
    browser.expect("ready", 60)
    browser.expect("registered", 20)

    # The browser calls juliet.
    browser.send(cmd="call", target="sip:juliet@example.com;gr=balcony")
    init = juliet.expect("session-initiate", 20)
    answer = jingle.jingle("session-accept", init.sid, webrtc_accept(init),
                           responder=juliet.full_jid)
    assert_result(juliet.send_iq(init.frm, answer), "session-accept")
    browser.expect("confirmed", 20)
    browser.send(cmd="hangup")
    term = juliet.expect("session-terminate", 20, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success", term.text()
    row = gateway.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["sip_uri"] == "sip:alice@web.example" and row["answered_at"], row

    # Juliet calls the browser, Conversations-style.
    sid = new_sid("web")
    offer = jingle.jingle("session-initiate", sid, OFFER_CONTENT, initiator=juliet.full_jid)
    assert_result(juliet.send_iq(ALICE_JID, offer), "session-initiate")
    browser.expect("incoming", 20)
    browser.send(cmd="answer")
    acc = juliet.expect("session-accept", 20, sid=sid)
    fp = acc.xml.find(".//{urn:xmpp:jingle:apps:dtls:0}fingerprint")
    assert fp is not None and fp.get("setup") in ("active", "passive"), acc.text()
    browser.expect("confirmed", 20)
    assert_result(juliet.send_iq(ALICE_JID, jingle.session_terminate(sid)), "terminate")
    browser.expect("ended", 20)


@pytest.mark.gateway_config(**REG)
def test_jssip_in_chromium_registers_and_calls_both_ways_over_ws(gateway, juliet, browsers):
    assert gateway.user("add", "alice@web.example", password="s3cret").returncode == 0
    time.sleep(2.5)   # read by the running gateway within 2 s
    calls_both_ways(gateway, juliet, browsers(f"ws://127.0.0.1:{gateway.ws_port}"))


def spki_hash(cert) -> str:
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert)],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_jssip_in_chromium_over_wss_with_the_test_ca(tmp_path, prosody, probe, attach, juliet,
                                                     browsers):
    pki = make(tmp_path / "pki")
    gw = Gateway(tmp_path, prosody, pki=pki, **REG)
    attach("gateway log", gw.log)
    assert gw.user("add", "alice@web.example", password="s3cret").returncode == 0
    gw.start(probe)
    try:
        calls_both_ways(gw, juliet, browsers(f"wss://127.0.0.1:{gw.wss_port}", spki_hash(pki.cert)))
    finally:
        gw.stop()
