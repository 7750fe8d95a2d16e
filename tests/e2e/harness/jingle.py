"""Jingle XML builders (strings a test sends) and parsers (what it asserts)."""

import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

NS_JINGLE = "urn:xmpp:jingle:1"
NS_RTP = "urn:xmpp:jingle:apps:rtp:1"
NS_RTP_INFO = "urn:xmpp:jingle:apps:rtp:info:1"
NS_RAW_UDP = "urn:xmpp:jingle:transports:raw-udp:1"
NS_ICE = "urn:xmpp:jingle:transports:ice-udp:1"
NS_ERRORS = "urn:xmpp:jingle:errors:1"
NS_SIP_STATUS = "urn:xmpp:stox:sip-status:0"
NS_FILE_TRANSFER = "urn:xmpp:jingle:apps:file-transfer:5"

# (id, name, clockrate)
PCMU = (0, "PCMU", 8000)
PCMA = (8, "PCMA", 8000)
EVENTS = (101, "telephone-event", 8000)
AUDIO_OFFER = (PCMU, PCMA, EVENTS)


def q(value) -> str:
    return quoteattr(str(value))


def rtp_description(pts=AUDIO_OFFER, media: str = "audio") -> str:
    items = "".join(f"<payload-type id={q(i)} name={q(n)} clockrate={q(c)}/>"
                    for i, n, c in pts)
    return f"<description xmlns='{NS_RTP}' media={q(media)}>{items}</description>"


def raw_udp(ip: str, port: int) -> str:
    return (f"<transport xmlns='{NS_RAW_UDP}'><candidate id='c1' component='1' "
            f"generation='0' ip={q(ip)} port={q(port)}/></transport>")


def content(description: str, transport: str, name: str = "audio",
            creator: str = "initiator") -> str:
    return (f"<content creator={q(creator)} name={q(name)} senders='both'>"
            f"{description}{transport}</content>")


def jingle(action: str, sid: str | None, inner: str = "", **attrs) -> str:
    attrs = {"action": action, **({"sid": sid} if sid is not None else {}), **attrs}
    attr_text = "".join(f" {k}={q(v)}" for k, v in attrs.items())
    return f"<jingle xmlns='{NS_JINGLE}'{attr_text}>{inner}</jingle>"


def session_initiate(sid: str, initiator: str, ip: str = "127.0.0.1", port: int = 40000,
                     pts=AUDIO_OFFER, contents: str | None = None) -> str:
    body = contents if contents is not None else content(rtp_description(pts), raw_udp(ip, port))
    return jingle("session-initiate", sid, body, initiator=initiator)


def session_accept(sid: str, responder: str, ip: str = "127.0.0.1", port: int = 41000,
                   pts=(PCMA, EVENTS)) -> str:
    return jingle("session-accept", sid, content(rtp_description(pts), raw_udp(ip, port)),
                  responder=responder)


def ringing(sid: str) -> str:
    return jingle("session-info", sid, f"<ringing xmlns='{NS_RTP_INFO}'/>")


def session_info(sid: str, name: str) -> str:
    """A XEP-0167 informational session-info (hold, active, unhold, mute …)."""
    return jingle("session-info", sid, f"<{name} xmlns='{NS_RTP_INFO}'/>")


def session_terminate(sid: str, reason: str = "success", text: str | None = None) -> str:
    extra = f"<text>{text}</text>" if text else ""
    return jingle("session-terminate", sid, f"<reason><{reason}/>{extra}</reason>")


# --- parsers ---------------------------------------------------------------

def _j(el: ET.Element) -> ET.Element:
    j = el if el.tag == f"{{{NS_JINGLE}}}jingle" else el.find(f"{{{NS_JINGLE}}}jingle")
    if j is None:
        raise AssertionError(f"no <jingle/> in {ET.tostring(el, encoding='unicode')}")
    return j


def payload_types(el: ET.Element, content_name: str | None = None) -> list[tuple[int, str, int]]:
    out = []
    for c in _j(el).findall(f"{{{NS_JINGLE}}}content"):
        if content_name and c.get("name") != content_name:
            continue
        for pt in c.findall(f"{{{NS_RTP}}}description/{{{NS_RTP}}}payload-type"):
            out.append((int(pt.get("id")), pt.get("name", ""), int(pt.get("clockrate", "0") or 0)))
    return out


def candidates(el: ET.Element) -> list[tuple[str, int]]:
    """(ip, port) of every raw-udp or ICE-UDP candidate."""
    out = []
    for c in _j(el).findall(f"{{{NS_JINGLE}}}content"):
        for ns in (NS_RAW_UDP, NS_ICE):
            for cand in c.findall(f"{{{ns}}}transport/{{{ns}}}candidate"):
                out.append((cand.get("ip"), int(cand.get("port"))))
    return out


def transports(el: ET.Element) -> list[str]:
    out = []
    for c in _j(el).findall(f"{{{NS_JINGLE}}}content"):
        for t in c:
            ns = t.tag[1:].partition("}")[0]
            if t.tag.endswith("}transport"):
                out.append(ns)
    return out


def reason(el: ET.Element) -> tuple[str | None, int | None, str | None]:
    """(reason condition, sip-status code or None, text or None)."""
    r = _j(el).find(f"{{{NS_JINGLE}}}reason")
    if r is None:
        return None, None, None
    cond, code, text = None, None, None
    for child in r:
        ns, _, name = child.tag[1:].partition("}")
        if ns == NS_JINGLE and name == "text":
            text = child.text
        elif ns == NS_JINGLE:
            cond = name
        elif ns == NS_SIP_STATUS and name == "sip-status":
            code = int(child.get("code"))
        for sub in child:
            if sub.tag == f"{{{NS_SIP_STATUS}}}sip-status":
                code = int(sub.get("code"))
    return cond, code, text


def info_names(el: ET.Element) -> list[str]:
    """The XEP-0167 payloads of a session-info (`hold`, `active` …)."""
    return [c.tag.split("}")[1] for c in _j(el) if c.tag.startswith(f"{{{NS_RTP_INFO}}}")]


def has_ringing(el: ET.Element) -> bool:
    return _j(el).find(f"{{{NS_RTP_INFO}}}ringing") is not None
