"""A throw-away ejabberd 23.01 (Debian's `ejabberd`) on loopback, run as the
`ejabberd` user: the second XMPP server of the e2e tests, with the interface
of harness/prosody.py (c2s_port, component_port, secret, log, start, stop,
cleanup; users juliet/romeo/alice on example.com, component sip.example.com).

Everything of the instance lives in one temporary directory: its config
(`conf/ejabberd.yml`, `conf/ejabberdctl.cfg`), its Mnesia database
(`spool/`), its logs (`logs/`). `ejabberdctl foreground` runs it under a node
name of its own; Erlang distribution (which `ejabberdctl register` and
`ejabberdctl stop` use) listens on a free loopback port of its own with a
random cookie, and no epmd is started (ERL_DIST_PORT): nothing is shared
with a system ejabberd or another instance.

Only processes this module starts are ever signalled: the `ejabberdctl`
process group, and the Erlang VM's port helpers (erl_child_setup, eimp, which
put themselves in sessions of their own) found as its descendants."""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .net import HOST, accepts, free_port, tail, wait_until

DOMAIN = "example.com"
COMPONENT = "sip.example.com"
USERS = ("juliet", "romeo", "alice")
PASSWORD = "pass-for-tests"
EJABBERDCTL = "ejabberdctl"

# ejabberd 23.01 options (https://docs.ejabberd.im/admin/configuration/).
# c2s without TLS (no certificate at all), so slixmpp authenticates with SCRAM
# or PLAIN in the clear on loopback; the XEP-0114 listener with the
# component's secret. No shapers: the c2s and component listeners have none
# unless one is named. Only the modules the tests need (roster, disco, ping).
# `acl` and `access_rules` as in Debian's default config, so that an included
# component snippet with its own (contrib/ejabberd-component.yml) is merged
# with them as on a real server.
CONFIG = """\
hosts:
  - "{domain}"
loglevel: info
log_rotate_count: 0
certfiles: []
acme:
  auto: false
auth_method: internal
listen:
  -
    port: {c2s}
    ip: "{host}"
    module: ejabberd_c2s
    starttls: false
    starttls_required: false
{component_listener}acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
{tail}"""

COMPONENT_LISTENER = """\
  -
    port: {component}
    ip: "{host}"
    module: ejabberd_service
    hosts:
      "{component_domain}":
        password: "{secret}"
"""

# No s2s at all: a stanza for a domain ejabberd has no route to (the
# component's while the gateway is away) is answered <forbidden/> at once,
# never looked up in DNS.
NO_S2S = "s2s_access: none\n"

# Read by ejabberdctl (a shell fragment). ERL_DIST_PORT: the node listens for
# distribution on this port and expects its peers there, without epmd.
CTL_CONFIG = """\
ERLANG_NODE={node}
ERL_DIST_PORT={dist}
ERL_OPTIONS="-kernel inet_dist_use_interface {{{ip}}}"
EJABBERD_BYPASS_WARNINGS=true
"""

# Erlang's resolver configuration (ejabberdctl sets ERL_INETRC to this file).
INETRC = "{lookup, [file, native]}.\n"


class EjabberdError(RuntimeError):
    pass


class Ejabberd:
    def __init__(self, component_snippet: Path | None = None):
        """`component_snippet`: an ejabberd.yml fragment with the component
        listener, as contrib/ejabberd-component.yml (port 5347, password
        "change-me", sip.example.com), included with include_config_file
        instead of this module's own listener, on this instance's port and
        secret."""
        self.component_snippet = component_snippet
        self.dir = Path(tempfile.mkdtemp(prefix="stox-ejabberd-"))
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.dist_port = free_port()
        self.secret = secrets.token_hex(8)
        self.node = f"stox-{secrets.token_hex(4)}@{HOST}"
        self.cookie = secrets.token_hex(16)
        self.config_dir = self.dir / "conf"
        self.spool = self.dir / "spool"
        self.logs = self.dir / "logs"
        self.config = self.config_dir / "ejabberd.yml"
        self.log = self.logs / "ejabberd.log"
        self.stdout = self.dir / "ejabberd.stdout"
        self.proc = None
        self._user = None
        # The VM's port helpers, as (pid, start time): a pid alone may be reused.
        self._helpers: set[tuple[int, str]] = set()

    # --- config and commands ---------------------------------------------

    def _account(self):
        if os.geteuid() != 0:
            raise EjabberdError("the e2e tests run ejabberd as the `ejabberd` user: "
                                "run them as root (CI does)")
        if shutil.which(EJABBERDCTL) is None:
            raise EjabberdError("no ejabberdctl: install ejabberd (tests/run.sh does)")
        try:
            return pwd.getpwnam("ejabberd")
        except KeyError:
            raise EjabberdError("no `ejabberd` user: install ejabberd (tests/run.sh does)") from None

    def _write_config(self):
        user = self._user
        for path in (self.config_dir, self.spool, self.logs):
            path.mkdir()
        if self.component_snippet is None:
            listener = COMPONENT_LISTENER.format(
                component=self.component_port, host=HOST, component_domain=COMPONENT,
                secret=self.secret)
            tail = NO_S2S
        else:
            text = Path(self.component_snippet).read_text()
            for placeholder in ("port: 5347", '"change-me"', f'"{COMPONENT}"'):
                if placeholder not in text:
                    raise EjabberdError(f"{self.component_snippet} has no {placeholder}")
            included = self.config_dir / "component.yml"
            included.write_text(text.replace("port: 5347", f"port: {self.component_port}")
                                .replace('"change-me"', f'"{self.secret}"'))
            listener, tail = "", f"include_config_file:\n  - {included}\n"
        self.config.write_text(CONFIG.format(
            domain=DOMAIN, host=HOST, c2s=self.c2s_port, component_listener=listener,
            tail=tail))
        ip = HOST.replace(".", ",")
        (self.config_dir / "ejabberdctl.cfg").write_text(CTL_CONFIG.format(
            node=self.node, dist=self.dist_port, ip=ip))
        (self.config_dir / "inetrc").write_text(INETRC)
        # The VM and ejabberdctl's client VMs run with HOME here, and read
        # the cookie from $HOME/.erlang.cookie (not on a command line).
        cookie = self.dir / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        for path in (self.dir, *self.dir.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o700)

    def _ctl_cmd(self, *args: str) -> list[str]:
        return [EJABBERDCTL, "--config-dir", str(self.config_dir), "--spool", str(self.spool),
                "--logs", str(self.logs), *args]

    def _as_ejabberd(self) -> dict:
        """Popen arguments that run a command as the `ejabberd` user (without
        su: ejabberdctl, run as that user, runs the VM itself), with HOME in
        the instance's directory so nothing lands in /var/lib/ejabberd."""
        user = self._user
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "HOME": str(self.dir), "LANG": "C.UTF-8", "USER": "ejabberd",
               "LOGNAME": "ejabberd"}
        return dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[], env=env,
                    cwd=self.dir, stdin=subprocess.DEVNULL)

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Runs `ejabberdctl ARGS` against this instance (once started)."""
        self._user = self._user or self._account()
        return subprocess.run(self._ctl_cmd(*args), capture_output=True, text=True,
                              timeout=timeout, **self._as_ejabberd())

    def _register(self, user: str):
        done = self.ctl("register", user, DOMAIN, PASSWORD)
        if done.returncode != 0:
            raise EjabberdError(f"ejabberdctl register {user} failed "
                                f"({done.returncode}): {done.stdout}{done.stderr}")

    # --- life cycle ------------------------------------------------------

    def start(self, timeout: float = 20.0, fresh: bool = True):
        """Start ejabberd and, when `fresh`, register the users; `fresh=False`
        starts it again on the same config, Mnesia database and ports (after
        `stop()`)."""
        self._user = self._account()
        if fresh:
            self._write_config()
        started = time.monotonic()
        with open(self.stdout, "ab") as out:
            self.proc = subprocess.Popen(self._ctl_cmd("foreground"), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         **self._as_ejabberd())
        if not wait_until(self._ready, timeout, 0.1) or not self.running():
            code = self.proc.poll()
            self.stop()
            raise EjabberdError(
                f"ejabberd did not open c2s {self.c2s_port} and component "
                f"{self.component_port} within {timeout}s (exit code {code}).\n"
                f"--- ejabberd stdout ---\n{tail(self.stdout)}\n"
                f"--- ejabberd log ---\n{tail(self.log)}")
        self._helpers |= set(_descendants(self.proc.pid))
        if fresh:
            try:
                for user in USERS:
                    self._register(user)
            except (EjabberdError, subprocess.TimeoutExpired):
                self.stop()
                raise
        self.started_in = time.monotonic() - started
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            return True  # exited: stop waiting, start() reports it
        return all(accepts(p) for p in (self.c2s_port, self.component_port))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[tuple[int, str]]:
        """(pid, start time) of every process of this instance now: the
        ejabberdctl process and all its descendants (the VM, its port
        helpers). `alive()` tells whether one still runs."""
        if not self.running():
            return []
        return [(self.proc.pid, _stat(self.proc.pid)[19]), *_descendants(self.proc.pid)]

    def stop(self, timeout: float = 10.0):
        """`ejabberdctl stop` (a clean Mnesia shutdown), then SIGTERM and
        SIGKILL to the process group if it is still there; then the VM's port
        helpers, which live in sessions of their own, must be gone too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._helpers |= set(_descendants(self.proc.pid))
            try:
                self.ctl("stop", timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc, signal.SIGKILL)
                    self.proc.wait(timeout)
        # erl_child_setup and eimp leave when the VM is gone; give them a
        # moment, then make sure.
        if not wait_until(lambda: not any(map(alive, self._helpers)), 3.0, 0.05):
            for helper in self._helpers:
                if alive(helper):
                    _kill(helper[0], signal.SIGKILL)
        self._helpers.clear()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)



def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from its third field (state) on, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _children() -> dict[int, list[tuple[int, str]]]:
    """ppid -> [(pid, start time)] for every process."""
    tree: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            tree.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    return tree


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every descendant of `pid`."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def alive(helper: tuple[int, str]) -> bool:
    """The same process still runs (a zombie, reaped by its parent soon,
    counts as gone; another process with a reused pid is not it)."""
    pid, started = helper
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and fields[19] == started


def _kill(pid: int, sig: int):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(proc: subprocess.Popen, sig: int):
    """Signal the session this harness started (ejabberdctl and the VM)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
