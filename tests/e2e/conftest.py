"""Fixtures: a session-wide Prosody, a fresh gateway per test, slixmpp
clients, SIPp runners, per-test timeouts and logs attached to failures."""

import os
import signal

import pytest

from harness.gateway import BINARY, Gateway, GatewayError
from harness.net import HOST, tail
from harness.prosody import DOMAIN, PASSWORD, Prosody
from harness.sipp import Sipp
from harness.xmpp_client import JingleClient, XmppLoop

# tests/run.sh sets this: a missing binary is then a failure, not a skip.
REQUIRE_GATEWAY = os.environ.get("STOX_E2E_REQUIRE_GATEWAY") == "1"
TEST_TIMEOUT = int(os.environ.get("STOX_E2E_TEST_TIMEOUT", "60"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gateway: needs the built stox-gateway binary")
    config.addinivalue_line("markers", "gateway_config(**options): iq_timeout_ms, ring_timeout_secs")
    config.addinivalue_line("markers", "timeout(seconds): per-test limit (default 60)")


def pytest_collection_modifyitems(config, items):
    if BINARY.exists() or REQUIRE_GATEWAY:
        return
    skip = pytest.mark.skip(reason=f"{BINARY} not built (tests/run.sh builds it and requires it)")
    for item in items:
        if "gateway" in item.keywords:
            item.add_marker(skip)


# --- logs attached to failing tests -----------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for title, path in getattr(item, "_stox_logs", []):
            report.sections.append((title, tail(path, 150)))


@pytest.fixture
def attach(request):
    """attach(title, path): show the file's tail if this test fails."""
    logs = request.node.__dict__.setdefault("_stox_logs", [])
    return lambda title, path: logs.append((title, path))


# --- per-test timeout -------------------------------------------------------

class PerTestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _timeout(request):
    marker = request.node.get_closest_marker("timeout")
    seconds = marker.args[0] if marker else TEST_TIMEOUT

    def expired(signum, frame):
        raise PerTestTimeout(f"test exceeded its {seconds}s limit")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --- XMPP -------------------------------------------------------------------

@pytest.fixture(scope="session")
def prosody():
    server = Prosody().start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture(scope="session")
def xloop():
    loop = XmppLoop()
    yield loop
    loop.stop()


def _client(xloop, prosody, user, resource):
    return JingleClient(xloop, f"{user}@{DOMAIN}/{resource}", PASSWORD,
                        HOST, prosody.c2s_port).connect()


@pytest.fixture(scope="session")
def probe(xloop, prosody):
    """alice@example.com/probe: pings the component to see the gateway is up."""
    client = _client(xloop, prosody, "alice", "probe")
    yield client
    client.disconnect()


@pytest.fixture
def juliet(xloop, prosody, attach):
    attach("prosody log", prosody.log)
    client = _client(xloop, prosody, "juliet", "balcony")
    yield client
    client.disconnect()


@pytest.fixture
def juliet_phone(xloop, prosody):
    """A second device of juliet@example.com (resource "phone")."""
    client = _client(xloop, prosody, "juliet", "phone")
    yield client
    client.disconnect()


@pytest.fixture
def romeo(xloop, prosody):
    client = _client(xloop, prosody, "romeo", "orchard")
    yield client
    client.disconnect()


# --- the gateway ------------------------------------------------------------

_never_online = []   # readiness timeouts so far: after two, fail fast


@pytest.fixture
def gateway(request, tmp_path, prosody, probe, attach):
    if len(_never_online) >= 2:
        pytest.fail("the gateway never came online in two earlier tests; not waiting again:\n"
                    + _never_online[-1])
    marker = request.node.get_closest_marker("gateway_config")
    gw = Gateway(tmp_path, prosody, **(marker.kwargs if marker else {}))
    attach("gateway log", gw.log)
    try:
        gw.start(probe)
    except GatewayError as e:
        if "never came online" in str(e):
            _never_online.append(str(e))
        raise
    yield gw
    gw.stop()


# --- SIPp -------------------------------------------------------------------

class SippFactory:
    def __init__(self, workdir, attach):
        self.workdir = workdir
        self.attach = attach
        self.started = []

    def _track(self, sipp: Sipp) -> Sipp:
        self.started.append(sipp)
        for name, path in sipp.files.items():
            self.attach(f"sipp {sipp.name} {name}", path)
        return sipp

    def uas(self, scenario: str, port: int | None = None, **params) -> Sipp:
        """Start a UAS scenario listening on `port` (free if None)."""
        return self._track(Sipp(self.workdir, scenario, port=port, **params)).start()

    def uac(self, scenario: str, remote: str, **params) -> Sipp:
        """Start a UAC scenario calling `remote` (host:port)."""
        return self._track(Sipp(self.workdir, scenario, remote=remote, **params)).start()

    def kill_all(self):
        for sipp in self.started:
            sipp.kill()


@pytest.fixture
def sipp(tmp_path, attach):
    factory = SippFactory(tmp_path, attach)
    yield factory
    factory.kill_all()
