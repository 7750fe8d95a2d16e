"""JsSIP 3.10 in Debian's headless Chromium (tests/e2e/browser/phone.mjs,
playwright-core), as a browser SIP user: fake microphone, loopback ICE,
driven by JSON lines; its events are read back the same way."""

import json
import subprocess
import threading
import time
from pathlib import Path

BROWSER = Path(__file__).resolve().parent.parent / "browser"


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, log: Path, ws: str, uri: str, password: str, spki: str | None = None):
        opts = {"ws": ws, "uri": uri, "password": password}
        if spki:
            opts["spki"] = spki
        self.log = log
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(["node", str(BROWSER / "phone.mjs"), json.dumps(opts)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log.open("wb"), text=True, cwd=BROWSER)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()

    def expect(self, event: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self.events):
                    if ev.get("event") == event:
                        return self.events.pop(i)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"no {event} from the browser (got {self.events}); "
                                       f"stderr: {self.log.read_text(errors='replace')[-2000:]}")
                self._cond.wait(min(left, 0.5))

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
