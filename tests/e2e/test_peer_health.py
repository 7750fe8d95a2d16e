"""Honest availability toward XMPP callers (issue 16, docs/operations.md):
with `[sip] probe_secs` the gateway sends OPTIONS to its peers (RFC 3261
§11); an XMPP call routed to a peer that is down gets `service-unavailable`
at once instead of waiting 32 s for timer B, its row says why, /metrics
shows the peer down; once the peer answers again, calls go through. Real
Prosody, slixmpp and SIPp (a UAS that answers OPTIONS)."""

import re
import time

import pytest

from harness import jingle
from harness.calls import assert_iq_error, assert_result, new_sid
from harness.gateway import Gateway
from harness.net import HOST, free_port, sip_options, wait_until
from harness.sipp import Sipp

pytestmark = pytest.mark.gateway

PBX_JID = r"100\40pbx.example@sip.example.com"   # sip:100@pbx.example → peer pbx
UP = 'stox_sip_peer_up{peer="pbx"}'
REFUSED = 'stox_sip_peer_down_refusals_total{peer="pbx"}'


class ProbedUas(Sipp):
    """A SIPp UAS that answers the gateway's probes: each OPTIONS is a call
    of its own to SIPp, so it runs without `-m 1` until it is killed."""

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("-m")
        del cmd[at:at + 2]
        return cmd


@pytest.fixture
def probing(tmp_path, prosody, probe, attach):
    """probing(peer_uri) starts a gateway whose only route is the peer
    `pbx` (pbx.example) at `peer_uri`, probed every second, no outbound
    proxy; uas(port, transport) starts a ProbedUas there."""
    started = []

    def gateway(peer_uri: str) -> Gateway:
        gw = Gateway(tmp_path, prosody, outbound_proxy=False,
                     extra={"sip": {"probe_secs": 1}},
                     peers=[{"name": "pbx", "uri": peer_uri, "domains": ["pbx.example"],
                             # a dispatcher on this host probes the gateway
                             "sources": [f"{HOST}/32"]}])
        attach("gateway log", gw.log)
        started.append(gw)
        return gw.start(probe)

    def uas(port: int, transport: str) -> ProbedUas:
        u = ProbedUas(tmp_path, "uas_options_answer_send_bye", port=port, transport=transport,
                      ring_ms=100, hold_ms=300)
        for name, path in u.files.items():
            attach(f"sipp {u.name} {name}", path)
        started.append(u)
        return u.start()

    yield gateway, uas
    for thing in started:
        if isinstance(thing, Gateway):
            thing.stop()
        else:
            thing.kill()


def metric(gw: Gateway, name: str) -> float | None:
    return gw.metrics().get(name)


def wait_metric(gw: Gateway, name: str, value: float, timeout: float) -> None:
    if wait_until(lambda: metric(gw, name) == value, timeout, interval=0.2) is None:
        raise AssertionError(f"{name} is not {value} after {timeout}s: {metric(gw, name)}\n"
                             + gw.log_text()[-3000:])


def test_rfc3261_18_4_a_call_to_a_peer_that_refuses_connections_is_refused_at_once(
        probing, juliet):
    gateway, uas = probing
    port = free_port(udp_too=True)
    gw = gateway(f"sip:{HOST}:{port};transport=tcp")
    # The first probe's TCP connect is refused: down within moments.
    wait_metric(gw, UP, 0.0, 5)

    sid = new_sid("down")
    started = time.monotonic()
    answer = juliet.send_iq(PBX_JID, jingle.session_initiate(sid, juliet.full_jid))
    took = time.monotonic() - started
    assert_iq_error(answer, "service-unavailable")
    assert took < 2.0, f"refused after {took:.1f}s"
    text = answer.text()
    assert "SIP peer pbx is down (OPTIONS could not be sent: TCP connect to" in text, text
    assert "try again later" in text, text

    row = gw.wait_row(lambda r: r["jingle_sid"] == sid)
    assert row["state"] == "ended", row
    assert (row["end_reason"], row["ended_by"], row["sip_status"], row["sip_peer"]) == \
        ("connectivity-error", "gateway", None, "pbx"), row
    assert row["end_detail"].startswith("SIP peer pbx is down (OPTIONS could not be sent"), row
    m = gw.metrics()
    assert m[UP] == 0.0 and m[REFUSED] == 1.0, {k: v for k, v in m.items() if "peer" in k}
    assert m['stox_jingle_errors_sent_total{condition="service-unavailable"}'] >= 1.0
    log = gw.log_text()
    assert re.search(r"sip next hop down.*SIP peer pbx", log), log[-2000:]
    assert "refused: SIP peer pbx is down" in log

    # Still ready (calls from SIP to XMPP work), and it says what is wrong;
    # OPTIONS to the gateway (a dispatcher's probe) is still 200.
    status, body = gw.http_get("/ready")
    assert status == 200 and "every probed SIP next hop is down" in body, (status, body)
    assert sip_options(gw.sip_addr()).startswith("SIP/2.0 200"), "SIP -> XMPP still works"

    # The peer comes up: the next probe (within a second) finds it.
    u = uas(port, "tcp")
    wait_metric(gw, UP, 1.0, 5)
    assert gw.http_get("/ready") == (200, "ready\n")
    sid = new_sid("up")
    assert_result(juliet.send_iq(PBX_JID, jingle.session_initiate(sid, juliet.full_jid)))
    juliet.expect("session-accept", 10, sid=sid)
    term = juliet.expect("session-terminate", 10, sid=sid)
    assert jingle.reason(term.xml)[0] == "success"
    row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
    assert row["sip_peer"] == "pbx" and row["answered_at"], row
    u.kill()
    trace = u.wait(5)
    assert trace.find("received", method="OPTIONS"), trace.summary()
    assert trace.find("received", method="INVITE"), trace.summary()


@pytest.mark.timeout(100)
def test_rfc3261_17_1_2_2_a_silent_peer_is_down_after_timer_f_and_a_propose_to_it_is_rejected(
        probing, juliet):
    gateway, uas = probing
    port = free_port(udp_too=True)
    gw = gateway(f"sip:{HOST}:{port}")
    # Over UDP nothing says "refused": usable until the probe's timer F.
    assert metric(gw, UP) == 1.0
    wait_metric(gw, UP, 0.0, 40)

    # XEP-0353: a propose routed to it is rejected at once, with a row.
    sid = new_sid("jmi")
    started = time.monotonic()
    juliet.send_jmi(PBX_JID, "propose", sid, f"<description xmlns='{jingle.NS_RTP}' media='audio'/>")
    reject = juliet.expect_jmi("reject", 2, id=sid)
    assert time.monotonic() - started < 2.0
    assert reject.reason() == "connectivity-error", reject.text()
    assert "no answer to OPTIONS within 32 s (timer F)" in reject.text(), reject.text()
    juliet.expect_no_jmi("proceed", 0.5)
    row = gw.wait_row(lambda r: r["jingle_sid"] == sid)
    assert (row["state"], row["end_reason"], row["sip_peer"]) == \
        ("ended", "connectivity-error", "pbx"), row
    assert "timer F" in row["end_detail"], row

    # Back: the probe in flight's next retransmission (at most T2 = 4 s) finds it.
    uas(port, "udp")
    wait_metric(gw, UP, 1.0, 8)
    assert "sip next hop up" in gw.log_text()
