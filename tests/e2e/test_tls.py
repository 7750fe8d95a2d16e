"""SIP over TLS (RFC 3261 §26.2) and secure WebSocket (RFC 7118 wss) with a
test CA: baresip calls an XMPP user over TLS; an XMPP user calls baresip
over TLS (a peer `uri` with `transport=tls`, baresip's certificate checked
against `tls_ca_file`); a browser-like client calls over wss."""

import ssl
import uuid

import pytest

from harness import jingle
from harness.baresip import Baresip
from harness.calls import accept, assert_result, new_sid
from harness.gateway import Gateway
from harness.pki import make
from harness.ws_sip import WsSip, header
from test_websocket import HOSTNAME, OFFER, request

pytestmark = pytest.mark.gateway


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_gateway(tmp_path, prosody, probe, attach, pki):
    made = []

    def start(**options) -> Gateway:
        gw = Gateway(tmp_path, prosody, pki=pki, **options)
        attach("gateway log", gw.log)
        gw.start(probe)
        made.append(gw)
        return gw
    yield start
    for gw in made:
        gw.stop()


@pytest.fixture
def phones(tmp_path, attach):
    made = []
    yield made
    for bs in made:
        bs.stop()


def test_rfc3261_26_2_baresip_calls_an_xmpp_user_over_tls(tls_gateway, juliet, phones, pki,
                                                          tmp_path, attach):
    gw = tls_gateway()
    bs = Baresip(tmp_path, "sip:romeo@example.net", f"127.0.0.1:{gw.tls_port}", "tls",
                 pki=pki).start()
    phones.append(bs)
    attach("baresip log", bs.log)
    bs.command("dial", "sip:juliet@example.com;gr=balcony")
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    bs.expect_event("CALL_ESTABLISHED")
    bs.command("hangup")
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success"
    assert "transport=tls" in gw.log_text(), "the INVITE came over TLS"
    row = gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended")
    assert row["ended_by"] == "sip", row


def test_rfc3261_26_2_an_xmpp_user_calls_baresip_over_tls(tls_gateway, juliet, phones, pki,
                                                          tmp_path, attach):
    bs = Baresip(tmp_path, "sip:romeo@example.net", "127.0.0.1:9", "udp", auto_answer=True,
                 pki=pki)
    bs.start()
    phones.append(bs)
    attach("baresip log", bs.log)
    gw = tls_gateway(peers=[{"name": "tlsphone", "domains": ["tls.example"],
                             "uri": f"sip:127.0.0.1:{bs.sip_port + 1};transport=tls"}])
    sid = new_sid("tls")
    target = "romeo\\40tls.example@sip.example.com"
    assert_result(juliet.send_iq(target, jingle.session_initiate(sid, juliet.full_jid)))
    juliet.expect("session-accept", 15, sid=sid)
    bs.expect_event("CALL_ESTABLISHED")
    assert_result(juliet.send_iq(target, jingle.session_terminate(sid)), "terminate")
    bs.expect_event("CALL_CLOSED")
    row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["sip_peer"] == "tlsphone" and row["answered_at"], row
    assert "transport=tls" in (row["sip_dialog"] or ""), row["sip_dialog"]


def test_rfc7118_a_browser_like_client_calls_over_wss(tls_gateway, juliet, pki):
    gw = tls_gateway()
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ws = WsSip(gw.wss_port, tls=ctx)
    call_id = f"{uuid.uuid4().hex}@{HOSTNAME}"
    ws.send(request("INVITE", "sip:juliet@example.com;gr=balcony", 1, call_id, body=OFFER))
    init = juliet.expect("session-initiate", 10)
    accept(juliet, init)
    ok = ws.expect("SIP/2.0 200")
    assert ";transport=wss" in header(ok, "Contact"), ok
    to_tag = header(ok, "To").split("tag=")[1]
    ws.send(request("ACK", header(ok, "Contact").strip("<>"), 1, call_id, to_tag))
    gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")
    bye = request("BYE", header(ok, "Contact").strip("<>"), 2, call_id, to_tag)
    ws.send(bye)
    ws.expect("SIP/2.0 200")
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success"
