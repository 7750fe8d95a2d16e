"""baresip (Debian's baresip-core, v1.0) as a real SIP phone, driven over its
ctrl_tcp module: JSON commands in netstrings, and the call events it pushes
on the same connection (CALL_ESTABLISHED, CALL_CLOSED, …).

Audio: a 440 Hz sine as the microphone, a WAV file as the speaker; only the
loopback interface, so every address in its SDP is 127.0.0.1."""

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

from .net import HOST, free_port, tail


class BaresipError(AssertionError):
    pass


class Baresip:
    def __init__(self, workdir: Path, aor: str, proxy: str, transport: str = "udp",
                 port: int | None = None, auto_answer: bool = False, pki=None):
        """A phone for `aor` (e.g. sip:romeo@example.net) that sends every
        request through `proxy` (host:port) over `transport`, listening on
        `port` (UDP and TCP; free if None) and answering calls itself when
        `auto_answer`."""
        self.dir = Path(workdir) / "baresip"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aor, self.proxy, self.transport = aor, proxy, transport
        self.sip_port = port or free_port(udp_too=True)
        self.fixed_port = port is not None
        # With a harness.pki.Pki, baresip also listens for TLS on
        # sip_port + 1 with its certificate, and trusts its CA.
        self.pki = pki
        self.auto_answer = auto_answer
        self.ctrl_port = self.sip_port
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):   # free_port may hand out a port twice
            self.ctrl_port = free_port()
        self.log = self.dir / "baresip.log"
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.events: list[dict] = []
        self.responses: list[dict] = []
        self._cond = threading.Condition()
        self._token = 0

    def _write_config(self):
        rtp = free_port(udp_too=True)
        while rtp <= max(self.sip_port, self.ctrl_port) and rtp + 20 >= min(self.sip_port, self.ctrl_port):
            rtp = free_port(udp_too=True)
        (self.dir / "config").write_text(f"""\
poll_method\t\tepoll
sip_listen\t\t{HOST}:{self.sip_port}
net_interface\t\t{HOST}
rtp_ports\t\t{rtp}-{rtp + 20}
call_local_timeout\t120
audio_player\t\taufile,{self.dir / "heard.wav"}
audio_source\t\tausine,440
ausrc_srate\t\t48000
auplay_srate\t\t48000
ausrc_channels\t\t2
auplay_channels\t\t2
audio_alert\t\taufile,{self.dir / "alert.wav"}
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\tausine.so
module\t\t\taufile.so
module_app\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t{HOST}:{self.ctrl_port}
""" + (f"sip_certificate\t\t{self.pki.combined}\nsip_cafile\t\t{self.pki.ca}\n"
         if self.pki else ""))
        (self.dir / "accounts").write_text(
            f'<{self.aor}>;regint=0;audio_codecs=PCMA/8000,PCMU/8000;'
            f'answermode={"auto" if self.auto_answer else "manual"};'
            f'outbound="sip:{self.proxy};transport={self.transport}"\n')
        (self.dir / "contacts").write_text("")

    def start(self, timeout: float = 10.0, attempts: int = 3) -> "Baresip":
        """Starts baresip; when one of its free ports was taken meanwhile,
        again on others (the SIP port too unless it was given)."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except BaresipError as e:
                if "could not bind" not in str(e) or attempt == attempts - 1:
                    raise
                if not self.fixed_port:
                    self.sip_port = free_port(udp_too=True)
                self.ctrl_port = self.sip_port
                while self.ctrl_port in (self.sip_port, self.sip_port + 1):
                    self.ctrl_port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> "Baresip":
        self._write_config()
        self.proc = subprocess.Popen(["baresip", "-s", "-f", str(self.dir)], stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # Ready, and no module failed to bind (the control port must be
        # baresip's, not another process's that took it first).
        while b"baresip is ready." not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise BaresipError(f"baresip did not start:\n{tail(self.log)}")
            time.sleep(0.05)
        if b"Address already in use" in self.log.read_bytes():
            self.proc.kill()
            self.proc.wait()
            raise BaresipError(f"baresip could not bind its ports:\n{tail(self.log)}")
        self.sock = socket.create_connection((HOST, self.ctrl_port), timeout=2)
        self.sock.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                size, _, rest = buf.partition(b":")
                n = int(size)
                if len(rest) < n + 1:
                    break
                msg = json.loads(rest[:n])
                buf = rest[n + 1:]
                with self._cond:
                    (self.responses if msg.get("response") else self.events).append(msg)
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a command; its output, or BaresipError when it failed."""
        self._token += 1
        token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self._cond:
            if not self._cond.wait_for(
                    lambda: any(r.get("token") == token for r in self.responses), timeout):
                raise BaresipError(f"no answer to {command} {params}:\n{tail(self.log)}")
            answer = next(r for r in self.responses if r.get("token") == token)
        if not answer.get("ok"):
            raise BaresipError(f"{command} {params}: {answer.get('data')}\n{tail(self.log)}")
        return answer.get("data", "")

    def expect_event(self, kind: str, timeout: float = 10.0) -> dict:
        """The first event of type `kind` (CALL_ESTABLISHED, CALL_CLOSED …)."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: any(e.get("type") == kind for e in self.events), timeout):
                seen = [e.get("type") for e in self.events]
                raise BaresipError(f"no {kind} event within {timeout} s (saw {seen}):\n"
                                   f"{tail(self.log)}")
            return next(e for e in self.events if e.get("type") == kind)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.command("quit", timeout=2)
        except (BaresipError, OSError):
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.sock:
            self.sock.close()
