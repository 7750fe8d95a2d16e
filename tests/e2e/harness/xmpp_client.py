"""A scripted Jingle client on slixmpp with a synchronous API for tests.

slixmpp runs on one asyncio loop in a background thread (`XmppLoop`); each
`JingleClient` lives on that loop. Tests call plain methods that block with a
timeout. Outgoing IQs are sent as raw XML so a test controls every byte; IQ
results and errors for them are matched by id."""

import asyncio
import copy
import inspect
import itertools
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.matcher.base import MatcherBase

from . import jingle

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_JMI = "urn:xmpp:jingle-message:0"


@dataclass
class Jmi:
    """A Jingle Message Initiation message as received (XEP-0353)."""
    xml: ET.Element
    frm: str
    to: str
    kind: str          # propose, ringing, proceed, reject, retract, finish, accept
    id: str

    def reason(self) -> str | None:
        el = self.xml.find(f"{{{NS_JMI}}}{self.kind}/{{{jingle.NS_JINGLE}}}reason")
        if el is None:
            return None
        for child in el:
            name = child.tag.rpartition("}")[2]
            if name != "text" and child.tag.startswith(f"{{{jingle.NS_JINGLE}}}"):
                return name
        return None

    def text(self) -> str:
        return ET.tostring(self.xml, encoding="unicode")


class XmppLoop:
    """One asyncio loop in a daemon thread, shared by all clients."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       name="slixmpp", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call(self, fn, *args):
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self):
        async def cancel_rest():
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(cancel_rest(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


@dataclass
class Stanza:
    """An IQ as received: the parsed element plus the fields tests look at."""
    xml: ET.Element
    type: str
    id: str
    frm: str
    to: str
    action: str | None = None
    sid: str | None = None

    @property
    def jingle(self) -> ET.Element | None:
        return self.xml.find(f"{{{jingle.NS_JINGLE}}}jingle")

    def text(self) -> str:
        return ET.tostring(self.xml, encoding="unicode")


@dataclass
class Reply:
    """How the client answers an incoming Jingle IQ."""
    kind: str = "result"             # "result" | "error" | "none"
    condition: str = ""
    error_type: str = "cancel"
    extra: str = ""                  # raw XML added inside <error/>

    @staticmethod
    def error(condition: str, error_type: str = "cancel", extra: str = ""):
        return Reply("error", condition, error_type, extra)

    @staticmethod
    def none():
        return Reply("none")


class _IdMatcher(MatcherBase):
    """Matches results and errors for the IQ ids this client sent."""

    def match(self, xml) -> bool:
        return xml["type"] in ("result", "error") and xml["id"] in self._criteria


class _JmiMatcher(MatcherBase):
    """Matches message stanzas that carry a JMI (XEP-0353) element."""

    def match(self, xml) -> bool:
        el = xml.xml
        return el.tag == f"{{{NS_CLIENT}}}message" and any(
            child.tag.startswith(f"{{{NS_JMI}}}") for child in el)


@dataclass
class _State:
    received: list = field(default_factory=list)
    consumed: set = field(default_factory=set)
    cond: threading.Condition = field(default_factory=threading.Condition)


class JingleClient:
    _ids = itertools.count(1)

    def __init__(self, xloop: XmppLoop, jid: str, password: str, host: str, port: int):
        self.xloop = xloop
        self.jid = jid
        self.password = password
        self.address = (host, port)
        self.replies: dict[str, Reply] = {}   # by Jingle action; default result
        self.sent_replies: list[str] = []
        self._state = _State()
        self._jmi = _State()
        self._pending: dict[str, asyncio.Future] = {}
        self.xmpp = None
        # What the server did to our stream: stream error conditions, and
        # whether the connection dropped.
        self.stream_errors: list[str] = []
        self.dropped = threading.Event()

    # --- lifecycle -------------------------------------------------------

    def connect(self, timeout: float = 10.0):
        self.xloop.run(self._connect(), timeout)
        return self

    async def _connect(self):
        xmpp = slixmpp.ClientXMPP(self.jid, self.password, plugin_config={
            "feature_mechanisms": {"unencrypted_plain": True}})
        xmpp.loop = asyncio.get_running_loop()
        self.xmpp = xmpp
        started = asyncio.get_running_loop().create_future()

        def on_start(_):
            xmpp.send_presence()
            if not started.done():
                started.set_result(True)

        def on_fail(what):
            if not started.done():
                started.set_exception(ConnectionError(f"{self.jid}: {what}"))

        xmpp.add_event_handler("session_start", on_start)
        xmpp.add_event_handler("failed_auth", lambda _: on_fail("auth failed"))
        xmpp.add_event_handler("connection_failed", on_fail)
        xmpp.add_event_handler(
            "stream_error", lambda err: self.stream_errors.append(err["condition"]))
        xmpp.add_event_handler("disconnected", lambda _: self.dropped.set())
        xmpp.register_handler(Callback(
            "jingle-in", MatchXPath(f"{{{NS_CLIENT}}}iq/{{{jingle.NS_JINGLE}}}jingle"),
            self._on_jingle))
        xmpp.register_handler(Callback(
            "iq-answers", _IdMatcher(self._pending), self._on_answer))
        xmpp.register_handler(Callback(
            "jmi-in", _JmiMatcher(None), self._on_jmi))
        _connect_plain(xmpp, *self.address)
        await started

    def disconnect(self, timeout: float = 5.0):
        if self.xmpp is None:
            return
        xmpp, self.xmpp = self.xmpp, None

        async def bye():
            try:
                await asyncio.wait_for(xmpp.disconnect(wait=1.0), timeout)
            except asyncio.TimeoutError:
                xmpp.abort()

        try:
            self.xloop.run(bye(), timeout + 1)
        except Exception:
            pass

    @property
    def full_jid(self) -> str:
        return str(self.xmpp.boundjid.full) if self.xmpp else self.jid

    # --- incoming --------------------------------------------------------

    def _on_jingle(self, iq):
        el = copy.deepcopy(iq.xml)
        j = el.find(f"{{{jingle.NS_JINGLE}}}jingle")
        st = Stanza(el, el.get("type", ""), el.get("id", ""), el.get("from", ""),
                    el.get("to", ""), j.get("action"), j.get("sid"))
        if st.type in ("set", "get"):
            self._answer(st)
            with self._state.cond:
                self._state.received.append(st)
                self._state.cond.notify_all()
        # Results/errors carrying <jingle> are handled by _on_answer.

    def _answer(self, st: Stanza):
        how = self.replies.get(st.action or "", Reply())
        if how.kind == "none":
            return
        head = f"<iq type={quoteattr(how.kind)} id={quoteattr(st.id)} to={quoteattr(st.frm)}"
        if how.kind == "result":
            raw = head + "/>"
        else:
            raw = (f"{head}><error type={quoteattr(how.error_type)}>"
                   f"<{how.condition} xmlns='{NS_STANZAS}'/>{how.extra}</error></iq>")
        self.sent_replies.append(raw)
        self.xmpp.send_raw(raw)

    def _on_answer(self, iq):
        fut = self._pending.pop(iq["id"], None)
        if fut is not None and not fut.done():
            el = copy.deepcopy(iq.xml)
            fut.set_result(Stanza(el, el.get("type", ""), el.get("id", ""),
                                  el.get("from", ""), el.get("to", "")))

    def expect(self, action: str | None = None, timeout: float = 10.0, sid: str | None = None) -> Stanza:
        """The next not-yet-consumed incoming Jingle IQ with this action."""
        def find():
            for i, st in enumerate(self._state.received):
                if i in self._state.consumed:
                    continue
                if (action is None or st.action == action) and (sid is None or st.sid == sid):
                    self._state.consumed.add(i)
                    return st
            return None

        with self._state.cond:
            st = self._state.cond.wait_for(find, timeout)
        if st is None:
            seen = [(s.action, s.sid) for s in self._state.received]
            raise AssertionError(f"{self.jid}: no Jingle {action or 'IQ'} "
                                 f"within {timeout}s; received so far: {seen}")
        return st

    def expect_nothing(self, action: str, within: float):
        """Assert that no new Jingle IQ with this action arrives in time."""
        try:
            st = self.expect(action, within)
        except AssertionError:
            return
        raise AssertionError(f"{self.jid}: unexpected {action}: {st.text()}")

    def _on_jmi(self, msg):
        el = copy.deepcopy(msg.xml)
        for child in el:
            if child.tag.startswith(f"{{{NS_JMI}}}"):
                kind = child.tag.rpartition("}")[2]
                m = Jmi(el, el.get("from", ""), el.get("to", ""), kind, child.get("id", ""))
                with self._jmi.cond:
                    self._jmi.received.append(m)
                    self._jmi.cond.notify_all()
                return

    def expect_jmi(self, kind: str, timeout: float = 10.0, id: str | None = None) -> Jmi:
        """The next not-yet-consumed JMI message of this kind (propose, proceed …)."""
        def find():
            for i, m in enumerate(self._jmi.received):
                if i not in self._jmi.consumed and m.kind == kind and (id is None or m.id == id):
                    self._jmi.consumed.add(i)
                    return m
            return None

        with self._jmi.cond:
            m = self._jmi.cond.wait_for(find, timeout)
        if m is None:
            seen = [(x.kind, x.id, x.frm) for x in self._jmi.received]
            raise AssertionError(f"{self.jid}: no JMI <{kind}/> within {timeout}s; "
                                 f"received so far: {seen}")
        return m

    def expect_no_jmi(self, kind: str, within: float):
        try:
            m = self.expect_jmi(kind, within)
        except AssertionError:
            return
        raise AssertionError(f"{self.jid}: unexpected JMI <{kind}/>: {m.text()}")

    def send_jmi(self, to: str, kind: str, sid: str, inner: str = ""):
        """Send a type='chat' message carrying one JMI element (with a store hint)."""
        raw = (f"<message type='chat' to={quoteattr(to)}>"
               f"<{kind} xmlns='{NS_JMI}' id={quoteattr(sid)}>{inner}</{kind}>"
               f"<store xmlns='urn:xmpp:hints'/></message>")
        self.xloop.call(self.xmpp.send_raw, raw)

    def received(self) -> list[Stanza]:
        with self._state.cond:
            return list(self._state.received)

    # --- outgoing --------------------------------------------------------

    def send_iq(self, to: str, payload: str, type_: str = "set", timeout: float = 10.0) -> Stanza | None:
        """Send `<iq type to id>payload</iq>`; return the result or error
        stanza, or None if nothing came back within `timeout`."""
        iq_id = f"t{next(self._ids)}"
        raw = f"<iq type={quoteattr(type_)} id={quoteattr(iq_id)} to={quoteattr(to)}>{payload}</iq>"

        async def go():
            fut = asyncio.get_running_loop().create_future()
            self._pending[iq_id] = fut
            self.xmpp.send_raw(raw)
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                return None
            finally:
                self._pending.pop(iq_id, None)

        return self.xloop.run(go(), timeout + 2)

    def ping(self, to: str, timeout: float = 3.0) -> Stanza | None:
        return self.send_iq(to, "<ping xmlns='urn:xmpp:ping'/>", "get", timeout)


def _connect_plain(xmpp, host: str, port: int):
    """Plaintext connect on loopback for both slixmpp connect APIs."""
    params = inspect.signature(xmpp.connect).parameters
    if "address" in params:                       # slixmpp <= 1.8
        xmpp.connect((host, port), force_starttls=False, disable_starttls=True)
    else:                                          # slixmpp >= 1.9
        xmpp.enable_starttls = False
        xmpp.enable_direct_tls = False
        xmpp.enable_plaintext = True
        xmpp.connect(host, port)


def iq_error(st: Stanza) -> tuple[str, str, list[str]]:
    """(error type, defined condition, other condition names) of an IQ error."""
    err = st.xml.find(f"{{{NS_CLIENT}}}error")
    if err is None:
        raise AssertionError(f"not an IQ error: {st.text()}")
    cond, others = "", []
    for child in err:
        ns, _, name = child.tag[1:].partition("}")
        if ns == NS_STANZAS and name != "text":
            cond = name
        elif ns != NS_STANZAS:
            others.append(name)
    return err.get("type", ""), cond, others
