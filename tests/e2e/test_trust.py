"""Who gets in (issue 14): only trusted SIP sources reach XMPP users, only
allowed XMPP users reach SIP, never an arbitrary host, and a trunk's digest
challenge (RFC 3261 §22, RFC 8760) is answered. Real Prosody, slixmpp and
SIPp; other sources are other loopback addresses (127.0.0.2, 127.0.0.3)."""

import hashlib
import re
import socket

import pytest

from harness import jingle
from harness.calls import ROMEO_JID, accept, assert_iq_error, assert_result, call_xmpp, new_sid

pytestmark = pytest.mark.gateway


def test_rfc3261_8_2_an_invite_from_an_untrusted_source_gets_403(gateway, juliet, sipp):
    uac = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), local_ip="127.0.0.2", code=403)
    trace = uac.wait()
    trace.assert_ok()
    refused = trace.one("received", status=403)
    assert "127.0.0.2 is not a trusted peer" in refused.first_line, refused
    juliet.expect_nothing("session-initiate", 1.0)
    assert gateway.rows() == []
    assert "untrusted source" in gateway.log_text() and "127.0.0.2" in gateway.log_text()


@pytest.mark.gateway_config(peers=[{"name": "pbx", "sources": ["127.0.0.3/32"]}])
def test_a_peers_source_is_trusted(gateway, juliet, sipp):
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", local_ip="127.0.0.3",
                          hold_ms=300)
    accept(juliet, init)
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success"
    uac.wait().assert_ok()


class Listener:
    """A UDP socket that counts what arrives (nothing should)."""

    def __init__(self, ip: str, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(1.0)

    def heard(self) -> bytes | None:
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            return None


@pytest.mark.gateway_config(extra={"xmpp": {"callers": ["juliet@example.com"]}})
def test_a_jingle_call_from_outside_the_policy_is_forbidden(gateway, romeo, juliet):
    proxy = Listener("127.0.0.1", gateway.uas_port)
    sid = new_sid("pol")
    answer = romeo.send_iq(ROMEO_JID, jingle.session_initiate(sid, romeo.full_jid))
    assert_iq_error(answer, "forbidden")
    assert "romeo@example.com may not call out" in answer.text()
    assert proxy.heard() is None, "nothing reached SIP"
    assert gateway.rows() == []
    assert "refused" in gateway.log_text()


@pytest.mark.gateway_config(outbound_proxy=False)
def test_without_a_proxy_a_caller_chosen_host_is_never_sent_to(gateway, juliet):
    victim = Listener("127.0.0.9")
    target = f"victim\\40127.0.0.9\\3a{victim.port}@sip.example.com"
    answer = juliet.send_iq(target, jingle.session_initiate(new_sid("refl"), juliet.full_jid))
    assert_iq_error(answer, "forbidden")
    assert "no route to 127.0.0.9" in answer.text()
    assert victim.heard() is None, "the gateway reflected a call to a host the caller chose"


def digest_ok(header: str, password: str, method: str = "INVITE") -> bool:
    """Checks a Digest credentials value as a server does (RFC 7616 §3.4.1)."""
    p = dict((k, v.strip('"')) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header))
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[p.get("algorithm", "MD5")]
    H = lambda s: h(s.encode()).hexdigest()
    ha1 = H(f"{p['username']}:{p['realm']}:{password}")
    ha2 = H(f"{method}:{p['uri']}")
    want = H(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    return p["response"] == want and p.get("opaque") == "0p4que"


@pytest.mark.parametrize("status,algorithm", [(407, "MD5"), (401, "SHA-256")])
def test_rfc8760_a_trunk_that_challenges_gets_the_authenticated_invite(
        request, tmp_path, prosody, probe, attach, juliet, sipp, status, algorithm):
    from harness.gateway import Gateway
    gw = Gateway(tmp_path, prosody)
    gw.peers = [{"name": "trunk", "uri": f"sip:127.0.0.1:{gw.uas_port}",
                 "domains": ["trunk.example"], "username": "gw", "password": "s3cret",
                 "from_user": "+4930999", "asserted_identity": True}]
    attach("gateway log", gw.log)
    gw.start(probe)
    try:
        header = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        answer_header = "Proxy-Authorization" if status == 407 else "Authorization"
        uas = sipp.uas("uas_challenge_answer", port=gw.uas_port, auth_status=status,
                       auth_header=header, auth_answer=answer_header, algorithm=algorithm,
                       nonce=f"n-{algorithm}")
        sid = new_sid("auth")
        target = "+4930123\\40trunk.example@sip.example.com"
        assert_result(juliet.send_iq(target, jingle.session_initiate(sid, juliet.full_jid)))
        juliet.expect("session-accept", 10, sid=sid)
        assert_result(juliet.send_iq(target, jingle.session_terminate(sid)), "terminate")
        trace = uas.wait()
        trace.assert_ok()
        first, second = trace.find("received", method="INVITE")
        assert first.header(answer_header.lower()) is None
        creds = second.header(answer_header.lower())
        assert f"algorithm={algorithm}" in creds, creds
        assert digest_ok(creds, "s3cret"), creds
        assert (first.header("cseq"), second.header("cseq")) == ("1 INVITE", "2 INVITE")
        # RFC 3325 identity policy: the trunk's account in From, juliet asserted.
        assert second.header("from").startswith("<sip:+4930999@example.com>"), second
        assert second.header("p-asserted-identity") == "<sip:juliet@example.com>", second
        row = gw.wait_row(lambda r: r["jingle_sid"] == sid and r["state"] == "ended")
        assert row["sip_peer"] == "trunk" and row["answered_at"], row
    finally:
        gw.stop()


def options(n: int, ip: str, port: int, mine: int) -> bytes:
    return (f"OPTIONS sip:{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{mine};branch=z9hG4bKfl{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.2>;tag=f{n}\r\nTo: <sip:{ip}>\r\n"
            f"Call-ID: flood{n}@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.gateway_config(extra={"sip": {"max_requests_per_source": 10}})
def test_a_flood_from_one_source_is_throttled_while_a_trusted_call_goes_through(
        gateway, juliet, sipp):
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.0.2", 0))
    host, port = gateway.sip_addr().split(":")
    for n in range(300):
        flood.sendto(options(n, host, int(port), flood.getsockname()[1]), (host, int(port)))
    # A trusted caller during the flood.
    uac, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", hold_ms=300)
    accept(juliet, init)
    term = juliet.expect("session-terminate", 10, sid=init.sid)
    assert jingle.reason(term.xml)[0] == "success"
    uac.wait().assert_ok()

    flood.settimeout(0.5)
    answers = []
    try:
        while True:
            answers.append(flood.recv(65535).decode(errors="replace"))
    except TimeoutError:
        pass
    statuses = [a.split(" ", 2)[1] for a in answers]
    assert 0 < statuses.count("503") <= 25, statuses
    assert statuses.count("403") <= 25, statuses
    assert len(answers) < 100, f"{len(answers)} answers to 300 requests: not throttled"
    retry = next(a for a in answers if " 503 " in a.split("\r\n")[0])
    assert re.search(r"\r\nRetry-After: \d+\r\n", retry), retry
    # Logged, rate-limited per source (the first lines, then counts).
    assert "source=127.0.0.2" in gateway.log_text()


@pytest.mark.gateway_config(extra={"calls": {"max_calls": 1}})
def test_rfc3261_21_5_4_past_max_calls_an_invite_gets_503(gateway, juliet, sipp):
    first, init = call_xmpp(gateway, juliet, sipp, "uac_call_bye", hold_ms=1500)
    accept(juliet, init)
    second = sipp.uac("uac_expect_error", remote=gateway.sip_addr(), code=503)
    trace = second.wait()
    trace.assert_ok()
    busy = trace.one("received", status=503)
    assert busy.header("retry-after"), busy
    assert "limit of calls" in busy.first_line, busy
    juliet.expect("session-terminate", 10, sid=init.sid)
    first.wait().assert_ok()
