"""RFC 3263 through a real name server (dnsmasq on loopback, started by the
test): a peer named `sip:trunk.example` (no port) is found by its
`_sip._udp` SRV record and the target's A record; a name with a port by A
only; and with a NAPTR record preferring SIP+D2T, the call goes over TCP to
the `_sip._tcp` SRV target."""

import subprocess

import pytest

from harness import jingle
from harness.calls import assert_result, new_sid
from harness.gateway import Gateway
from harness.net import free_port

pytestmark = pytest.mark.gateway


@pytest.fixture
def dns(tmp_path):
    started = []

    def start(*records: str) -> int:
        port = free_port(udp_too=True)
        proc = subprocess.Popen(
            ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-daemon", f"--port={port}",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
             "--user=root", "--pid-file=", f"--log-facility={tmp_path / 'dnsmasq.log'}",
             *records],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        started.append(proc)
        return port
    yield start
    for p in started:
        p.terminate()
        p.wait(5)


@pytest.mark.parametrize("named", ["srv", "a-record", "naptr"])
def test_rfc3263_4_2_a_peer_named_by_domain_is_found_in_dns(
        tmp_path, prosody, probe, attach, juliet, sipp, dns, named):
    gw = Gateway(tmp_path, prosody)
    if named == "srv":
        port = dns(f"--srv-host=_sip._udp.trunk.example,uas.trunk.example,{gw.uas_port},0,5",
                   "--host-record=uas.trunk.example,127.0.0.1")
        uri = "sip:trunk.example"
    elif named == "naptr":
        port = dns("--naptr-record=trunk.example,10,50,s,SIP+D2T,,_sip._tcp.trunk.example",
                   "--naptr-record=trunk.example,20,50,s,SIP+D2U,,_sip._udp.trunk.example",
                   f"--srv-host=_sip._tcp.trunk.example,uas.trunk.example,{gw.uas_port},0,5",
                   "--host-record=uas.trunk.example,127.0.0.1")
        uri = "sip:trunk.example"
    else:
        port = dns("--host-record=pbx.trunk.example,127.0.0.1")
        uri = f"sip:pbx.trunk.example:{gw.uas_port}"
    gw.extra = {"sip": {"dns_servers": [f"127.0.0.1:{port}"]}}
    gw.peers = [{"name": "trunk", "uri": uri, "domains": ["trunk.example"]}]
    attach("gateway log", gw.log)
    gw.start(probe)
    try:
        transport = "tcp" if named == "naptr" else "udp"
        uas = sipp.uas("uas_answer_send_bye", port=gw.uas_port, ring_ms=100, hold_ms=300,
                       transport=transport)
        sid = new_sid("dns")
        target = "+4930123\\40trunk.example@sip.example.com"
        assert_result(juliet.send_iq(target, jingle.session_initiate(sid, juliet.full_jid)))
        juliet.expect("session-accept", 10, sid=sid)
        juliet.expect("session-terminate", 10, sid=sid)
        uas.wait().assert_ok()
        if named == "naptr":
            assert "NAPTR: transport chosen" in gw.log_text() and "transport=tcp" in gw.log_text()
    finally:
        gw.stop()
