"""A private PostgreSQL 15 cluster for the tests (Debian's `postgresql`):
initdb in a fresh temporary directory, one `postgres` process in the
foreground on 127.0.0.1 and a free port, its unix socket inside that
directory, trust authentication, fsync off. Root cannot run initdb or
postgres, so as root (CI) both run as the `postgres` system user.

Only the cluster this module starts is ever stopped (`pg_ctl stop -m fast`
on its own data directory, then its own process group). Queries go
through `psql` (postgresql-client): `query()` returns tuples, `dicts()`
dicts, with SQL NULL as None and numbers as numbers (rows travel as JSON)."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .net import HOST, free_port, tail

VERSION = os.environ.get("STOX_E2E_PG_VERSION", "15")
BIN = Path(os.environ.get("STOX_E2E_PG_BIN", f"/usr/lib/postgresql/{VERSION}/bin"))
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


class Postgres:
    """`Postgres().start()`; `.url` is postgres://stox@127.0.0.1:PORT/stox."""

    def __init__(self, user: str = "stox", database: str = "stox"):
        for tool in ("initdb", "postgres", "pg_ctl"):
            if not (BIN / tool).exists():
                raise PostgresError(f"{BIN / tool} is missing: install Debian's `postgresql` "
                                    f"(PostgreSQL {VERSION})")
        if shutil.which("psql") is None:
            raise PostgresError("psql is missing: install `postgresql-client`")
        self.user = user
        self.database = database
        self.port = free_port()
        # Not pytest's tmp_path: its parents are root's and mode 0700, and the
        # server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="stox-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "run"
        self.log = self.dir / "postgres.log"
        self.proc = None
        self._owner = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresError("running as root and there is no `postgres` user: "
                                    "install Debian's `postgresql`") from None

    # --- addresses ---------------------------------------------------------

    def url_for(self, database: str) -> str:
        return f"postgres://{self.user}@{HOST}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    # --- life cycle --------------------------------------------------------

    def _as_owner(self, *args: str) -> list[str]:
        if self._owner is None:
            return list(args)
        return ["runuser", "-u", SUPERUSER, "--", *args]

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_owner(*args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, timeout: float = 20.0) -> "Postgres":
        started = time.monotonic()
        self.socket_dir.mkdir()
        if self._owner is not None:
            for path in (self.dir, self.socket_dir):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        done = self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                         "--no-instructions")
        if done.returncode != 0:
            raise PostgresError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        # Only loopback, trust for local and loopback connections (initdb
        # --auth=trust writes exactly that), and nothing durable.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"""
listen_addresses = '{HOST}'
port = {self.port}
unix_socket_directories = '{self.socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
logging_collector = off
log_min_messages = warning
log_connections = off
""")
        self._launch(started, timeout)
        self.execute(f'CREATE ROLE "{self.user}" LOGIN', database="postgres", user=SUPERUSER)
        self.create_database(self.database)
        self.started_in = time.monotonic() - started
        return self

    def restart(self, timeout: float = 20.0) -> "Postgres":
        """Starts the stopped cluster again on the same data, port and
        socket (a database server coming back after an outage)."""
        assert not self.running(), "PostgreSQL is running"
        self._launch(time.monotonic(), timeout)
        return self

    def _launch(self, started: float, timeout: float):
        """Runs the server on the initialised data directory until it takes
        connections."""
        log = open(self.log, "ab")
        if self._owner is not None:
            os.chown(self.log, self._owner.pw_uid, self._owner.pw_gid)
        self.proc = subprocess.Popen(self._as_owner(str(BIN / "postgres"), "-D", str(self.data)),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = started + timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise PostgresError(f"postgres exited with code {self.proc.returncode} at start"
                                    f"\n--- {self.log} ---\n{tail(self.log, 40)}")
            ready = self._psql("postgres", "SELECT 1", user=SUPERUSER, timeout=5)
            if ready.returncode == 0:
                break
            last = ready.stderr.strip()
            if time.monotonic() >= deadline:
                self.stop()
                raise PostgresError(f"PostgreSQL on {HOST}:{self.port} did not accept "
                                    f"connections within {timeout}s (last: {last})"
                                    f"\n--- {self.log} ---\n{tail(self.log, 40)}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0):
        """Stop this cluster only: pg_ctl stop -m fast on its data directory,
        then signals to the process group this harness started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._run(str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                      "-w", "-t", str(int(timeout)), timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                self.proc.wait(timeout if sig == signal.SIGTERM else 5)
                return
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    return

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- SQL ---------------------------------------------------------------

    def _psql(self, database: str, sql: str, user: str | None = None,
              timeout: float = 15) -> subprocess.CompletedProcess:
        cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", HOST,
               "-p", str(self.port), "-U", user or self.user, "-d", database, "-c", sql]
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
        env.pop("PGPASSWORD", None)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)

    def execute(self, sql: str, database: str | None = None, user: str | None = None):
        """Run statements (DDL, DML); raises PostgresError on failure."""
        done = self._psql(database or self.database, sql, user=user)
        if done.returncode != 0:
            raise PostgresError(f"psql failed ({done.returncode}) on {sql!r}: "
                                f"{done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the test role; returns its URL."""
        self.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"', database="postgres",
                     user=SUPERUSER)
        return self.url_for(name)

    def _json_rows(self, sql: str, database: str | None) -> list[list[tuple[str, object]]]:
        wrapped = (f"SELECT coalesce(json_agg(row_to_json(q)), '[]'::json) "
                   f"FROM ({sql.strip().rstrip(';')}) AS q")
        out = self.execute(wrapped, database=database)
        # object_pairs_hook keeps column order and repeated names.
        return json.loads(out, object_pairs_hook=list)

    def query(self, sql: str, database: str | None = None) -> list[tuple]:
        """Rows of one SELECT as tuples (NULL -> None, numbers as numbers)."""
        return [tuple(v for _, v in row) for row in self._json_rows(sql, database)]

    def dicts(self, sql: str, database: str | None = None) -> list[dict]:
        """Rows of one SELECT as {column: value}."""
        return [dict(row) for row in self._json_rows(sql, database)]

    def table_exists(self, table: str, database: str | None = None) -> bool:
        return bool(self.query(f"SELECT 1 FROM information_schema.tables "
                               f"WHERE table_name = '{table}'", database))
