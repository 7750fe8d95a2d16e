"""Start the built `stox-gateway` binary with a fresh config and database."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from .net import HOST, free_port, tail
from .prosody import COMPONENT, DOMAIN

REPO = Path(__file__).resolve().parents[3]
# STOX_GATEWAY_BIN points the tests at another build (e.g. target/release/...).
BINARY = Path(os.environ.get("STOX_GATEWAY_BIN", REPO / "target" / "debug" / "stox-gateway"))
READY_LINE = "xmpp component online"


class GatewayError(RuntimeError):
    pass


def wait_component(probe, timeout: float = 15.0, alive=lambda: None,
                   component: str = COMPONENT) -> float:
    """Ping the component through Prosody until it answers with a result.

    `alive()` returns None while the gateway runs, or a message if it died.
    Returns the seconds it took; raises GatewayError on timeout."""
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        dead = alive()
        if dead:
            raise GatewayError(dead)
        answer = probe.ping(component, timeout=min(2.0, timeout))
        if answer is not None and answer.type == "result":
            return time.monotonic() - start
        last = answer.text() if answer is not None else "no answer within 2s"
        time.sleep(0.2)
    raise GatewayError(f"no XEP-0199 ping result from {component} within {timeout}s: "
                       f"the component never came online. Last answer: {last}")


class Gateway:
    def __init__(self, workdir: Path, prosody, **options):
        if not BINARY.exists():
            raise GatewayError(f"{BINARY} is missing: run `cargo build -p stox-gateway` first")
        self.dir = Path(workdir)
        self.prosody = prosody
        self.sip_port = free_port(udp_too=True)       # UDP and TCP share it
        self.ws_port = free_port()
        self.uas_port = free_port(udp_too=True)       # outbound proxy = the SIPp UAS
        self.db = Path(options.get("db", self.dir / "gw.db"))
        # The XMPP component name ([xmpp] component); several gateways on
        # one XMPP server need one each (decision 0010).
        self.component = options.get("component", COMPONENT)
        # A harness.postgres.Postgres: the store is that PostgreSQL
        # ([store] url) instead of the SQLite file `db`; `pg_database`
        # names the database in it (default: its own `stox`).
        self.postgres = options.get("postgres")
        self.pg_database = options.get("pg_database")
        # [store] instance: ids are instance << 40 | n, and a restart
        # restores only this instance's rows (decision 0010).
        self.instance = options.get("instance")
        self.runs = 0
        self.config = self.dir / "gateway.toml"
        self.log = self.dir / "gateway.log"
        self.iq_timeout_ms = options.get("iq_timeout_ms", 3000)
        self.ring_timeout_secs = options.get("ring_timeout_secs", 60)
        # {"section": {"key": value}}: more keys for the config's tables.
        self.extra = options.get("extra", {})
        # Without one, calls go only to the `peers` (docs/security.md).
        self.outbound_proxy = options.get("outbound_proxy", True)
        # [[sip.peers]] tables: dicts of their keys.
        self.peers = options.get("peers", [])
        # A harness.pki.Pki: TLS and WSS listeners with its certificate.
        self.pki = options.get("pki")
        self.tls_port = free_port()
        self.wss_port = free_port()
        # {"domains": [...]}: a [registrar] section.
        self.registrar = options.get("registrar")
        # NG addresses ("ip:port"): an [rtpengine] section.
        self.rtpengine = options.get("rtpengine")
        # /metrics, /health, /ready ([http]).
        self.http_port = free_port()
        # SIGTERM drains this long (the tests' stop() must not wait 30 s).
        self.drain_secs = options.get("drain_secs", 1)
        self.proc = None

    @staticmethod
    def _toml(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, list):
            return "[" + ", ".join(Gateway._toml(v) for v in value) + "]"
        return str(value)

    def _extra(self, section: str) -> str:
        return "\n".join(f"{key} = {self._toml(value)}"
                         for key, value in self.extra.get(section, {}).items())

    def _tls(self) -> str:
        if self.pki is None:
            return ""
        return (f'tls = "{HOST}:{self.tls_port}"\nwss = "{HOST}:{self.wss_port}"\n'
                f'tls_certificate = "{self.pki.cert}"\ntls_key = "{self.pki.key}"\n'
                f'tls_ca_file = "{self.pki.ca}"')

    def _registrar(self) -> str:
        if not self.registrar:
            return ""
        return "[registrar]\n" + "\n".join(f"{k} = {self._toml(v)}" for k, v in self.registrar.items())

    def user(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
        """Runs `stox-gateway --config … user ARGS` (the password on stdin)."""
        self.write_config()
        return subprocess.run([str(BINARY), "--config", str(self.config), "user", *args],
                              input=(password + "\n") if password is not None else "",
                              capture_output=True, text=True, cwd=self.dir, timeout=30)

    def _rtpengine(self) -> str:
        if not self.rtpengine:
            return ""
        return f"[rtpengine]\nng = {self._toml(list(self.rtpengine))}\n"

    def _store(self) -> str:
        lines = []
        if self.postgres is not None:
            lines.append(f'url = "{self.store_url}"')
        else:
            lines.append(f'database = "{self.db}"')
        if self.instance is not None:
            lines.append(f"instance = {self.instance}")
        return "\n".join(lines)

    @property
    def store_url(self) -> str | None:
        if self.postgres is None:
            return None
        return self.postgres.url_for(self.pg_database or self.postgres.database)

    def _peers(self) -> str:
        return "\n".join("[[sip.peers]]\n" + "\n".join(f"{k} = {self._toml(v)}" for k, v in p.items())
                         + "\n" for p in self.peers)

    def write_config(self):
        self.config.write_text(f"""\
[xmpp]
server = "{HOST}:{self.prosody.component_port}"
component = "{self.component}"
secret = "{self.prosody.secret}"
domains = ["{DOMAIN}"]
iq_timeout_ms = {self.iq_timeout_ms}
{self._extra("xmpp")}

[xmpp.limits]
{self._extra("xmpp.limits")}

[sip]
udp = "{HOST}:{self.sip_port}"
tcp = "{HOST}:{self.sip_port}"
ws = "{HOST}:{self.ws_port}"
{f'outbound_proxy = "sip:{HOST}:{self.uas_port}"' if self.outbound_proxy else ""}
{self._tls()}
{self._extra("sip")}

[store]
{self._store()}
{self._extra("store")}

[calls]
ring_timeout_secs = {self.ring_timeout_secs}
{"" if "drain_secs" in self.extra.get("calls", {}) else f"drain_secs = {self.drain_secs}"}
{self._extra("calls")}

[http]
listen = "{HOST}:{self.http_port}"

{self._registrar()}

{self._rtpengine()}

{self._peers()}
""")

    def start(self, probe, timeout: float = 15.0):
        self.write_config()
        if self.runs and self.log.exists():
            # A restart keeps the previous run's log as gateway.<n>.log.
            self.log.rename(self.log.with_name(f"{self.log.stem}.{self.runs}{self.log.suffix}"))
        self.runs += 1
        env = {**os.environ, "RUST_LOG": os.environ.get("STOX_E2E_RUST_LOG", "info,stox=debug"), "RUST_BACKTRACE": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(BINARY), "--config", str(self.config)],
                                         cwd=self.dir, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            self.ready_after = wait_component(probe, timeout, self._dead, self.component)
        except GatewayError as e:
            self.stop()
            raise GatewayError(f"{e}\n--- gateway log ({self.log}) ---\n{tail(self.log)}") from None
        return self

    def _dead(self):
        code = self.proc.poll()
        if code is None:
            return None
        return f"stox-gateway exited with code {code} before it was ready"

    def exit_code(self):
        return self.proc.poll()

    def stop(self, timeout: float = 5.0):
        """SIGTERM (a drain of `drain_secs`), then a second SIGTERM (stop
        now), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    # --- the operations endpoint (docs/operations.md) --------------------

    def http_get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:
        """GET http://[http].listen/path: (status, body)."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}{path}",
                                        timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name{labels}': value} (Prometheus text format)."""
        status, body = self.http_get("/metrics")
        assert status == 200, (status, body)
        values = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def log_text(self, all_runs: bool = False) -> str:
        """This run's log; with all_runs, the logs of earlier runs (before
        restarts) first."""
        paths = [self.log.with_name(f"{self.log.stem}.{n}{self.log.suffix}")
                 for n in range(1, self.runs)] if all_runs else []
        return "".join(p.read_text(errors="replace") for p in paths + [self.log] if p.exists())

    # --- the sessions table ---------------------------------------------

    def rows(self) -> list[dict]:
        """Every row of the sessions table of this gateway's store (with a
        shared PostgreSQL store, other instances' rows too)."""
        if self.postgres is not None:
            db = self.pg_database or self.postgres.database
            if not self.postgres.table_exists("sessions", db):
                return []   # not created or migrated yet
            return self.postgres.dicts("SELECT * FROM sessions ORDER BY id", db)
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=2) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute("SELECT * FROM sessions ORDER BY id")]
        except sqlite3.OperationalError:
            return []   # not created or migrated yet

    def wait_row(self, predicate, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for row in self.rows():
                if predicate(row):
                    return row
            if time.monotonic() >= deadline:
                raise AssertionError(f"no sessions row matched within {timeout}s; rows:\n"
                                     + "\n".join(map(str, self.rows())))
            time.sleep(0.05)

    def sip_addr(self) -> str:
        return f"{HOST}:{self.sip_port}"
