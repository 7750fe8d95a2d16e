"""A throw-away Prosody 0.12 on loopback, run as the `prosody` user.

Only the process group this module starts is ever signalled."""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .net import HOST, accepts, free_port, tail, wait_until

DOMAIN = "example.com"
COMPONENT = "sip.example.com"
USERS = ("juliet", "romeo", "alice")
PASSWORD = "pass-for-tests"

CONFIG = """\
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ debug = "{dir}/prosody.log" }}
interfaces = {{ "{host}" }}
c2s_ports = {{ {c2s} }}
component_interfaces = {{ "{host}" }}
component_ports = {{ {component} }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false

VirtualHost "{domain}"
{components}"""

COMPONENT_BLOCK = """
Component "{name}"
    component_secret = "{secret}"
"""


class ProsodyError(RuntimeError):
    pass


class Prosody:
    def __init__(self, components: tuple[str, ...] = (COMPONENT,)):
        """`components`: the XEP-0114 component names it accepts (one
        connection each; all with the same secret)."""
        self.components = tuple(components)
        self.dir = Path(tempfile.mkdtemp(prefix="stox-prosody-"))
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.secret = secrets.token_hex(8)
        self.config = self.dir / "prosody.cfg.lua"
        self.log = self.dir / "prosody.log"
        self.proc = None

    def _write_config(self):
        if os.geteuid() != 0:
            raise ProsodyError("the e2e tests run Prosody as the `prosody` user with runuser: "
                               "run them as root (CI does)")
        try:
            user = pwd.getpwnam("prosody")
        except KeyError:
            raise ProsodyError("no `prosody` user: install Prosody (tests/run.sh does)") from None
        (self.dir / "data").mkdir()
        self.config.write_text(CONFIG.format(
            dir=self.dir, host=HOST, c2s=self.c2s_port,
            component=self.component_port, domain=DOMAIN,
            components="".join(COMPONENT_BLOCK.format(name=name, secret=self.secret)
                               for name in self.components)))
        for path in (self.dir, self.dir / "data", self.config):
            os.chown(path, user.pw_uid, user.pw_gid)

    def _as_prosody(self, *args):
        return ["runuser", "-u", "prosody", "--", *args]

    def _register(self, user: str):
        cmd = self._as_prosody("prosodyctl", "--config", str(self.config),
                               "register", user, DOMAIN, PASSWORD)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise ProsodyError(f"prosodyctl register {user} failed "
                               f"({done.returncode}): {done.stdout}{done.stderr}")

    def start(self, timeout: float = 15.0, fresh: bool = True):
        """Start Prosody; `fresh=False` starts it again on the same
        config, data and ports (after `stop()`)."""
        if fresh:
            self._write_config()
            for user in USERS:
                self._register(user)
        cmd = self._as_prosody("prosody", "-F", "--config", str(self.config))
        out = open(self.dir / "prosody.stdout", "wb")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        if not wait_until(self._ready, timeout, 0.1):
            code = self.proc.poll()
            self.stop()
            raise ProsodyError(
                f"Prosody did not open c2s {self.c2s_port} and component "
                f"{self.component_port} within {timeout}s (exit code {code}).\n"
                f"--- prosody stdout ---\n{tail(self.dir / 'prosody.stdout')}\n"
                f"--- prosody log ---\n{tail(self.log)}")
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            return True  # exited: stop waiting, start() reports it
        return all(accepts(p) for p in (self.c2s_port, self.component_port))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0):
        if self.proc is None:
            return
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(timeout)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)



def _signal_group(proc: subprocess.Popen, sig: int):
    """Signal the session this harness started (runuser and its child)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
