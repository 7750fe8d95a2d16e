"""The basic calls against ejabberd 23.01 instead of Prosody (issue 16): the
gateway as an XEP-0114 component of ejabberd (`ejabberd_service`), slixmpp
users on its c2s, SIPp on the SIP side.

The checks are the Prosody tests' own (test_xmpp_to_sip.py,
test_sip_to_xmpp.py, test_jmi.py, test_liveness.py), run here with the
fixtures of this module: `juliet`, `juliet_phone` and `gateway` are
overridden to use a session-wide ejabberd (harness/ejabberd.py), so
running this file alone starts no Prosody. Then what differs with ejabberd:
service discovery through it, the component reconnecting after a restart
of the gateway (SIGTERM and kill -9), two gateway processes connected under
the same component name at once (ejabberd accepts both and shares the
stanzas between them at random), ejabberd's own answer while the component
is away, ejabberd itself restarted mid-call, and contrib/ejabberd-component.yml
included into a config as its comments say."""

import socket
import time
from pathlib import Path

import pytest

import test_jmi as jmi
import test_liveness as liveness
import test_sip_to_xmpp as s2x
import test_xmpp_to_sip as x2s
from harness import jingle
from harness.calls import (ROMEO_JID, accept, assert_result, call_xmpp, quick_call_to_sip,
                           quick_call_to_xmpp)
from harness.ejabberd import COMPONENT, DOMAIN, PASSWORD, Ejabberd, alive
from harness.gateway import Gateway, GatewayError, wait_component
from harness.net import HOST, wait_until
from harness.xmpp_client import JingleClient, iq_error

NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
CONTRIB_SNIPPET = Path(__file__).resolve().parents[2] / "contrib" / "ejabberd-component.yml"


# --- fixtures: the same as conftest.py's, on ejabberd ---------------------------

@pytest.fixture(scope="session")
def ejabberd():
    server = Ejabberd().start()
    yield server
    server.stop()
    server.cleanup()


def _client(xloop, server, user, resource):
    return JingleClient(xloop, f"{user}@{DOMAIN}/{resource}", PASSWORD,
                        HOST, server.c2s_port).connect()


@pytest.fixture(scope="session")
def ej_probe(xloop, ejabberd):
    """alice@example.com/probe on ejabberd: pings the component."""
    client = _client(xloop, ejabberd, "alice", "probe")
    yield client
    client.disconnect()


@pytest.fixture
def juliet(xloop, ejabberd, attach):
    attach("ejabberd log", ejabberd.log)
    client = _client(xloop, ejabberd, "juliet", "balcony")
    yield client
    client.disconnect()


@pytest.fixture
def juliet_phone(xloop, ejabberd):
    client = _client(xloop, ejabberd, "juliet", "phone")
    yield client
    client.disconnect()


@pytest.fixture
def gateway(request, tmp_path, ejabberd, ej_probe, attach):
    marker = request.node.get_closest_marker("gateway_config")
    gw = Gateway(tmp_path, ejabberd, **(marker.kwargs if marker else {}))
    attach("gateway log", gw.log)
    gw.start(ej_probe)
    yield gw
    gw.stop()


# --- the harness ----------------------------------------------------------------

def test_ejabberd_starts_and_stops_cleanly_with_its_users(xloop):
    server = Ejabberd()
    try:
        server.start()
        assert server.running() and server.started_in < 30, server.started_in
        for port in (server.c2s_port, server.component_port):
            socket.create_connection((HOST, port), timeout=1).close()
        users = server.ctl("registered_users", DOMAIN).stdout.split()
        assert sorted(users) == ["alice", "juliet", "romeo"]
        _client(xloop, server, "romeo", "check").disconnect()
        procs = server.processes()
        assert len(procs) >= 2, procs      # ejabberdctl and the VM at least
    finally:
        server.stop()
        server.cleanup()
    assert not server.running()
    for port in (server.c2s_port, server.component_port, server.dist_port):
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
    left = [pid for pid, started in procs if alive((pid, started))]
    assert not left, f"processes of ejabberd left behind: {left}"


# --- XMPP -> SIP (test_xmpp_to_sip.py) ------------------------------------------

@pytest.mark.gateway
def test_xmpp_calls_sip_answered_and_hung_up_by_sip(gateway, juliet, sipp):
    x2s.test_answered_call_hung_up_by_sip(gateway, juliet, sipp)


@pytest.mark.gateway
def test_xmpp_calls_sip_answered_and_hung_up_by_xmpp(gateway, juliet, sipp):
    x2s.test_answered_call_hung_up_by_xmpp(gateway, juliet, sipp)


@pytest.mark.gateway
def test_xmpp_calls_sip_and_cancels(gateway, juliet, sipp):
    x2s.test_cancel_before_answer(gateway, juliet, sipp)


@pytest.mark.gateway
@pytest.mark.parametrize("code,reason,condition", [
    (486, "Busy Here", "busy"), (603, "Decline", "decline"), (404, "Not Found", "gone")])
def test_xmpp_calls_sip_and_is_rejected(gateway, juliet, sipp, code, reason, condition):
    x2s.test_final_error_maps_to_reason(gateway, juliet, sipp, code, reason, condition)


# --- SIP -> XMPP (test_sip_to_xmpp.py) ------------------------------------------

@pytest.mark.gateway
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sip_calls_xmpp_answered_and_hung_up_by_sip(gateway, juliet, sipp, transport):
    s2x.test_answered_call_hung_up_by_sip(gateway, juliet, sipp, transport)


@pytest.mark.gateway
def test_sip_calls_xmpp_answered_and_hung_up_by_xmpp(gateway, juliet, sipp):
    s2x.test_answered_call_hung_up_by_xmpp(gateway, juliet, sipp)


@pytest.mark.gateway
def test_sip_calls_xmpp_and_cancels(gateway, juliet, sipp):
    s2x.test_cancel_before_answer(gateway, juliet, sipp)


@pytest.mark.gateway
@pytest.mark.parametrize("reason,code", [("busy", 486), ("decline", 603)])
def test_sip_calls_xmpp_and_is_rejected(gateway, juliet, sipp, reason, code):
    s2x.test_callee_rejects(gateway, juliet, sipp, reason, code)


@pytest.mark.gateway
def test_sip_calls_xmpp_and_the_client_answers_an_iq_error(gateway, juliet, sipp):
    s2x.test_iq_error_on_initiate_maps_to_status(gateway, juliet, sipp, "item-not-found", 404)


@pytest.mark.gateway
def test_sip_calls_an_xmpp_resource_that_is_offline(gateway, juliet, sipp):
    """ejabberd answers an IQ to an unavailable full JID itself with
    service-unavailable (RFC 6121 §8.5.3.1): 405 to the SIP caller, as
    for a client's own service-unavailable."""
    uac = sipp.uac("uac_expect_error", remote=gateway.sip_addr(),
                   ruri="sip:juliet@example.com;gr=nowhere", code=405)
    trace = uac.wait()
    trace.assert_ok()
    assert trace.one("received", status=405)
    row = gateway.wait_row(lambda r: r["sip_status"] == 405 and r["state"] == "ended")
    assert row["xmpp_jid"] == "juliet@example.com/nowhere", row
    juliet.expect_nothing("session-initiate", within=0.3)


# --- a bare JID: XEP-0353 through ejabberd's message routing (test_jmi.py) --------

@pytest.mark.gateway
def test_sip_calls_a_bare_jid_two_devices_ring_the_phone_answers(gateway, juliet,
                                                                 juliet_phone, sipp):
    jmi.test_two_devices_ring_the_phone_answers(gateway, juliet, juliet_phone, sipp)


@pytest.mark.gateway
def test_sip_calls_a_bare_jid_and_is_rejected_busy(gateway, juliet, sipp):
    jmi.test_reject(gateway, juliet, sipp, "busy", 486)


@pytest.mark.gateway
def test_xmpp_proposes_to_sip_then_calls(gateway, juliet, sipp):
    jmi.test_propose_proceed_then_the_call(gateway, juliet, sipp)


# --- liveness: ejabberd's answer to a ping of a vanished client (test_liveness.py)

@pytest.mark.gateway
@pytest.mark.gateway_config(extra={"calls": {"peer_ping_secs": 1}})
def test_an_xmpp_user_who_vanishes_is_hung_up_on(gateway, juliet_phone, sipp):
    liveness.test_xep0199_an_xmpp_user_who_vanishes_is_hung_up_on(gateway, juliet_phone, sipp)


# --- what ejabberd does its own way -----------------------------------------------

@pytest.mark.gateway
@pytest.mark.parametrize("target", [COMPONENT, ROMEO_JID])
def test_disco_info_of_the_component_through_ejabberd(gateway, juliet, target):
    jmi.test_disco_info(gateway, juliet, target)


@pytest.mark.gateway
def test_ejabberd_lists_the_component_in_its_disco_items(gateway, juliet):
    """ejabberd's mod_disco lists the routes under its host (the connected
    component) among the server's items; Prosody 0.12 lists a component only
    when configured to (disco_items)."""
    answer = juliet.send_iq(DOMAIN, f"<query xmlns='{NS_DISCO_ITEMS}'/>", "get")
    assert_result(answer, "disco#items of the server")
    items = {i.get("jid") for i in answer.xml.iter(f"{{{NS_DISCO_ITEMS}}}item")}
    assert COMPONENT in items, answer.text()


@pytest.mark.gateway
def test_the_gateway_restarted_reconnects_and_calls_work(gateway, juliet, sipp, ej_probe):
    quick_call_to_sip(gateway, juliet, sipp)
    gateway.stop()                       # SIGTERM: a clean close of the stream
    with pytest.raises(GatewayError):
        wait_component(ej_probe, timeout=1)
    gateway.start(ej_probe)
    quick_call_to_xmpp(gateway, juliet, sipp)

    gateway.proc.kill()                  # kill -9: the TCP connection just drops
    gateway.proc.wait(5)
    gateway.start(ej_probe)
    assert gateway.ready_after < 5, "ejabberd let the component back in at once"
    quick_call_to_sip(gateway, juliet, sipp)
    quick_call_to_xmpp(gateway, juliet, sipp)


@pytest.mark.gateway
def test_two_gateways_under_one_component_name_share_its_stanzas_at_random(
        gateway, juliet, sipp, ej_probe, ejabberd, tmp_path, attach):
    """Prosody refuses a second connection for a connected component (stream
    error <conflict/>); ejabberd 23.01 accepts it and hands each stanza for
    the component to one of the connections at random (ejabberd_router's
    balancing without `domain_balancing`). A second process started by
    mistake is not refused, and the IQs of one Jingle session then reach both
    processes: each answers item-not-found for the calls it does not have.
    This test documents the behaviour: never run two gateways under one
    component name (contrib/README.md)."""
    second = Gateway(tmp_path / "second", ejabberd)
    second.dir.mkdir()
    attach("second gateway log", second.log)
    def accepted():
        return ejabberd.log.read_text().count("Accepted external component")

    before = accepted()
    # The readiness ping is answered by the first gateway already: wait for
    # the second one's own handshake.
    second.start(ej_probe)
    try:
        assert wait_until(lambda: "xmpp component online" in second.log_text(), 10)
        assert wait_until(lambda: accepted() > before, 5), "ejabberd accepted the second one"
        assert gateway.exit_code() is None and second.exit_code() is None
        for n in range(30):
            answer = juliet.send_iq(ROMEO_JID, jingle.session_terminate(f"nowhere-{n}"))
            assert answer is not None and answer.type == "error", answer and answer.text()

        def refused(gw):
            return sum("no Jingle session 'nowhere-" in line
                       for line in gw.log_text().splitlines())
        # Both got some (the chance that 30 random picks all land on one
        # connection is 2^-29).
        assert wait_until(lambda: refused(gateway) and refused(second), 5), \
            (refused(gateway), refused(second))
    finally:
        second.stop()
    # With the second one gone, every stanza goes to the first again.
    quick_call_to_sip(gateway, juliet, sipp)
    quick_call_to_xmpp(gateway, juliet, sipp)


@pytest.mark.gateway
@pytest.mark.timeout(120)
def test_ejabberd_restarted_mid_call_the_bye_reaches_the_user_afterwards(tmp_path, xloop,
                                                                         sipp, attach):
    """The same as test_hardening.py's Prosody restart, with a private
    ejabberd (the session's one stays up)."""
    server = Ejabberd().start()
    attach("private ejabberd log", server.log)
    probe = _client(xloop, server, "alice", "probe")
    gw = Gateway(tmp_path, server)
    attach("gateway log", gw.log)
    clients = [probe]
    try:
        gw.start(probe)
        juliet = _client(xloop, server, "juliet", "balcony")
        clients.append(juliet)
        uac, init = call_xmpp(gw, juliet, sipp, "uac_call_bye", hold_ms=6000)
        accept(juliet, init)
        gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "active")

        server.stop()
        uac.wait().assert_ok()
        row = gw.wait_row(lambda r: r["jingle_sid"] == init.sid and r["state"] == "ended",
                          timeout=10)
        assert (row["end_reason"], row["ended_by"]) == ("success", "sip")
        res = sipp.uac("uac_expect_error", remote=gw.sip_addr(), code=503).wait()
        res.assert_ok()
        assert res.one("received", status=503).header("retry-after")

        server.start(fresh=False)        # same ports, same Mnesia (the users)
        juliet = _client(xloop, server, "juliet", "balcony")
        clients.append(juliet)
        term = juliet.expect("session-terminate", 20, sid=init.sid)
        assert jingle.reason(term.xml)[0] == "success"
        probe = _client(xloop, server, "alice", "probe")   # the old stream died with ejabberd
        clients.append(probe)
        wait_component(probe, timeout=15)
        assert "xmpp component online" in gw.log_text().split("xmpp component offline")[-1]
        row = quick_call_to_sip(gw, juliet, sipp)
        assert (row["end_reason"], row["sip_status"]) == ("success", 200)
    finally:
        for c in clients:
            c.disconnect()
        gw.stop()
        server.stop()
        server.cleanup()


@pytest.mark.gateway
def test_an_iq_to_the_component_while_it_is_away(gateway, juliet, ej_probe):
    """With no component connected, ejabberd has no route for its domain and
    hands the stanza to s2s: with s2s off (this config's `s2s_access: none`)
    it answers at once with <forbidden/> "Access denied by service policy";
    with s2s on it looks the component's domain up in DNS as a remote server
    (remote-server-not-found, or a real s2s attempt where the name resolves).
    Prosody answers for a configured Component itself."""
    gateway.stop()
    answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate("away-1", juliet.full_jid),
                            timeout=5)
    assert answer is not None and answer.type == "error", answer and answer.text()
    assert iq_error(answer)[1] == "forbidden", answer.text()
    gateway.start(ej_probe)
    answer = juliet.send_iq(COMPONENT, "<ping xmlns='urn:xmpp:ping'/>", "get")
    assert_result(answer, "ping after the restart")


@pytest.mark.gateway
def test_contrib_ejabberd_component_yml_included_as_documented(tmp_path, xloop, sipp, attach):
    """contrib/ejabberd-component.yml, included with include_config_file into
    a config that has its own `listen` (c2s), `acl` and `access_rules`: its
    listener takes the gateway, and its s2s rule answers an IQ for the
    component while the gateway is away with <forbidden/> at once."""
    server = Ejabberd(component_snippet=CONTRIB_SNIPPET).start()
    attach("private ejabberd log", server.log)
    clients = []
    gw = Gateway(tmp_path, server)
    attach("gateway log", gw.log)
    try:
        probe = _client(xloop, server, "alice", "probe")
        juliet = _client(xloop, server, "juliet", "balcony")
        clients += [probe, juliet]
        started = time.monotonic()
        answer = juliet.send_iq(ROMEO_JID, jingle.session_initiate("away-2", juliet.full_jid),
                                timeout=5)
        assert answer is not None and iq_error(answer)[1] == "forbidden", answer and answer.text()
        assert time.monotonic() - started < 2
        gw.start(probe)
        row = quick_call_to_sip(gw, juliet, sipp)
        assert (row["end_reason"], row["sip_status"]) == ("success", 200)
    finally:
        for c in clients:
            c.disconnect()
        gw.stop()
        server.stop()
        server.cleanup()
