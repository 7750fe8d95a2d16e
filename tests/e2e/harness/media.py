"""Media peers whose RTP really flows, on loopback only.

* `WebRtcPeer`: aiortc (ICE + DTLS-SRTP + rtcp-mux, audio only, opus first)
  sending a tone, on its own asyncio loop in a daemon thread, with blocking
  methods for the synchronous tests. Its packet counts come from
  `getStats()`: packetsReceived counts SRTP packets that decrypted.
* `PlainRtpPeer`: RTP/AVP PCMU on a UDP socket, sending a 20 ms packet every
  20 ms from the socket it receives on (so a relay that latches on the first
  packet learns its address), counting the valid RTP it receives.
* `sdp_to_jingle` / `jingle_to_sdp`: SDP <-> XEP-0166/0167/0176/0320/0293/
  0294/0338/0339 for what these peers (and Conversations) put in an offer
  or answer.

Both peers share one shape, which is what `sip_ua.SipUa` uses:
`create_offer() -> sdp`, `accept_offer(sdp) -> answer sdp`,
`accept_answer(sdp)`, `start()`, `stop()`, `stats() -> (sent, received)`,
`wait_packets(min_each_way, timeout)`, `close()`.

Importing this module restricts aioice's host candidates to 127.0.0.1 (it
skips loopback by default) for the whole process."""

import asyncio
import fractions
import math
import random
import selectors
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import aioice.ice
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.sdp import candidate_from_sdp

from . import net
from .jingle import NS_ICE, NS_JINGLE, NS_RAW_UDP, NS_RTP, q
from .net import HOST

NS_DTLS = "urn:xmpp:jingle:apps:dtls:0"
NS_FB = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0"
NS_HDREXT = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"
NS_SSMA = "urn:xmpp:jingle:apps:rtp:ssma:0"
NS_GROUP = "urn:xmpp:jingle:apps:grouping:0"


# --- loopback-only ICE ----------------------------------------------------------

def _loopback_host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    """aioice's host addresses, here: 127.0.0.1 and nothing else."""
    return [HOST] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_host_addresses


# --- SDP parsing ----------------------------------------------------------------

# Static payload types an SDP may leave without a=rtpmap (RFC 3551).
STATIC_PTS = {0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1),
              8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1), 18: ("G729", 8000, 1)}


@dataclass
class SdpMedia:
    kind: str
    port: int
    proto: str
    fmts: list[str]
    conn: str | None = None                       # c= address (media level)
    attrs: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        for k, v in self.attrs:
            if k == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.attrs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.attrs)

    @property
    def direction(self) -> str:
        for k, _ in self.attrs:
            if k in ("sendrecv", "sendonly", "recvonly", "inactive"):
                return k
        return "sendrecv"

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """payload type -> (encoding name, clock rate, channels)."""
        out = {}
        for fmt in self.fmts:
            if fmt.isdigit() and int(fmt) in STATIC_PTS:
                out[int(fmt)] = STATIC_PTS[int(fmt)]
        for value in self.all("rtpmap"):
            pt, _, enc = value.partition(" ")
            parts = enc.strip().split("/")
            channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
            out[int(pt)] = (parts[0], int(parts[1]) if len(parts) > 1 else 8000, channels)
        return out


@dataclass
class Sdp:
    lines: list[tuple[str, str]]                   # session-level (type, value)
    media: list[SdpMedia]

    def attr(self, name: str) -> str | None:
        for t, v in self.lines:
            if t == "a":
                k, _, val = v.partition(":")
                if k == name:
                    return val
        return None

    @property
    def conn(self) -> str | None:
        for t, v in self.lines:
            if t == "c":
                return v.split()[-1]
        return None

    def origin(self) -> str | None:
        for t, v in self.lines:
            if t == "o":
                return v
        return None


def parse_sdp(text: str) -> Sdp:
    sdp = Sdp([], [])
    media = None
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        t, v = line[0], line[2:]
        if t == "m":
            kind, port, proto, *fmts = v.split()
            media = SdpMedia(kind, int(port.split("/")[0]), proto, fmts)
            sdp.media.append(media)
        elif media is None:
            sdp.lines.append((t, v))
        elif t == "c":
            media.conn = v.split()[-1]
        elif t == "a":
            k, _, val = v.partition(":")
            media.attrs.append((k, val))
    return sdp


def _media_attr(sdp: Sdp, m: SdpMedia, name: str) -> str | None:
    value = m.get(name)
    return value if value is not None else sdp.attr(name)


# --- SDP -> Jingle --------------------------------------------------------------

def _fmtp_parameters(value: str) -> list[tuple[str, str]]:
    out = []
    for item in value.split(";"):
        item = item.strip()
        if not item:
            continue
        name, eq, val = item.partition("=")
        out.append((name.strip(), val.strip()) if eq else ("", item))
    return out


def _senders(direction: str, author: str) -> str:
    """Jingle senders for an SDP direction written by `author`."""
    other = "responder" if author == "initiator" else "initiator"
    return {"sendrecv": "both", "sendonly": author, "recvonly": other,
            "inactive": "none"}[direction]


def _direction(senders: str, author: str) -> str:
    """The SDP direction, seen by `author`, of a Jingle senders value."""
    if senders == "both":
        return "sendrecv"
    if senders == "none":
        return "inactive"
    return "sendonly" if senders == author else "recvonly"


def sdp_candidate_to_jingle(value: str, cand_id: str | None = None) -> str:
    """`a=candidate:…` (or its value) as an XEP-0176 <candidate/> (with xmlns)."""
    value = value.strip()
    for prefix in ("a=", "candidate:"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    bits = value.split()
    foundation, component, protocol, priority, ip, port = bits[:6]
    ctype = bits[7] if len(bits) > 7 and bits[6] == "typ" else "host"
    ext = {bits[i]: bits[i + 1] for i in range(8, len(bits) - 1, 2)}
    attrs = {"component": component, "foundation": foundation,
             "generation": ext.get("generation", "0"),
             "id": cand_id or f"c{uuid.uuid4().hex[:10]}", "ip": ip,
             "network": ext.get("network-id", "0"), "port": port, "priority": priority,
             "protocol": protocol.lower(), "type": ctype}
    if "raddr" in ext:
        attrs["rel-addr"] = ext["raddr"]
    if "rport" in ext:
        attrs["rel-port"] = ext["rport"]
    if "tcptype" in ext:
        attrs["tcptype"] = ext["tcptype"]
    return f"<candidate xmlns='{NS_ICE}'" + "".join(
        f" {k}={q(v)}" for k, v in attrs.items()) + "/>"


def sdp_to_jingle(sdp: str, author: str = "initiator", creator: str = "initiator",
                  all_fingerprints: bool = False) -> str:
    """The children of a <jingle/> (contents, then the BUNDLE group) for an
    SDP offer or answer. `author` is who wrote the SDP (the initiator for an
    offer, the responder for an answer): it maps a=sendonly/recvonly onto
    senders. Only the first a=fingerprint goes out unless all_fingerprints
    (aiortc lists sha-256, sha-384 and sha-512)."""
    parsed = parse_sdp(sdp)
    out = []
    for index, m in enumerate(parsed.media):
        name = m.get("mid") or m.kind
        # --- description
        rtpmap = m.rtpmap()
        fmtp = {}
        for value in m.all("fmtp"):
            pt, _, params = value.partition(" ")
            fmtp[pt] = _fmtp_parameters(params)
        feedback: dict[str, list[list[str]]] = {}
        for value in m.all("rtcp-fb"):
            pt, _, rest = value.partition(" ")
            feedback.setdefault(pt, []).append(rest.split())

        def fb_xml(items):
            xml = ""
            for words in items:
                if not words:
                    continue
                if words[0] == "trr-int" and len(words) > 1:
                    xml += f"<rtcp-fb-trr-int xmlns='{NS_FB}' value={q(words[1])}/>"
                else:
                    sub = f" subtype={q(' '.join(words[1:]))}" if len(words) > 1 else ""
                    xml += f"<rtcp-fb xmlns='{NS_FB}' type={q(words[0])}{sub}/>"
            return xml

        pts = ""
        for fmt in m.fmts:
            if not fmt.isdigit():
                continue
            enc, rate, channels = rtpmap.get(int(fmt), ("", 0, 1))
            attrs = f" id={q(fmt)}"
            if enc:
                attrs += f" name={q(enc)} clockrate={q(rate)}"
            if channels != 1:
                attrs += f" channels={q(channels)}"
            inner = "".join(f"<parameter name={q(k)} value={q(v)}/>" for k, v in fmtp.get(fmt, []))
            inner += fb_xml(feedback.get(fmt, []))
            pts += f"<payload-type{attrs}>{inner}</payload-type>"
        desc = pts + fb_xml(feedback.get("*", []))
        for value in m.all("extmap"):
            ident, _, uri = value.partition(" ")
            uri = uri.split()[0] if uri.split() else ""
            ident, _, direction = ident.partition("/")
            senders = f" senders={q(_senders(direction, author))}" if direction else ""
            desc += f"<rtp-hdrext xmlns='{NS_HDREXT}' id={q(ident)} uri={q(uri)}{senders}/>"
        if m.has("extmap-allow-mixed") or parsed.attr("extmap-allow-mixed") is not None:
            desc += f"<extmap-allow-mixed xmlns='{NS_HDREXT}'/>"
        sources: dict[str, list[tuple[str, str | None]]] = {}
        for value in m.all("ssrc"):
            ssrc, _, rest = value.partition(" ")
            pname, colon, pvalue = rest.partition(":")
            sources.setdefault(ssrc, []).append((pname, pvalue if colon else None))
        for ssrc, params in sources.items():
            inner = "".join(f"<parameter name={q(k)}" + (f" value={q(v)}" if v is not None else "")
                            + "/>" for k, v in params)
            desc += f"<source xmlns='{NS_SSMA}' ssrc={q(ssrc)}>{inner}</source>"
        for value in m.all("ssrc-group"):
            semantics, *ssrcs = value.split()
            inner = "".join(f"<source ssrc={q(s)}/>" for s in ssrcs)
            desc += f"<ssrc-group xmlns='{NS_SSMA}' semantics={q(semantics)}>{inner}</ssrc-group>"
        if m.has("rtcp-mux"):
            desc += "<rtcp-mux/>"
        description = f"<description xmlns='{NS_RTP}' media={q(m.kind)}>{desc}</description>"

        # --- transport
        ufrag = _media_attr(parsed, m, "ice-ufrag")
        pwd = _media_attr(parsed, m, "ice-pwd")
        fingerprints = m.all("fingerprint") or [v for t, v in parsed.lines
                                                if t == "a" and v.startswith("fingerprint:")]
        fingerprints = [f.removeprefix("fingerprint:") for f in fingerprints]
        setup = _media_attr(parsed, m, "setup")
        tinner = ""
        for fp in fingerprints[: None if all_fingerprints else 1]:
            hash_, _, value = fp.partition(" ")
            setup_attr = f" setup={q(setup)}" if setup else ""
            tinner += (f"<fingerprint xmlns='{NS_DTLS}' hash={q(hash_)}{setup_attr}>"
                       f"{value.strip()}</fingerprint>")
        for n, cand in enumerate(m.all("candidate")):
            tinner += sdp_candidate_to_jingle(cand, f"{name}-c{n + 1}-{uuid.uuid4().hex[:6]}")
        if ufrag is not None:
            tattrs = f" ufrag={q(ufrag)}" + (f" pwd={q(pwd)}" if pwd is not None else "")
            transport = f"<transport xmlns='{NS_ICE}'{tattrs}>{tinner}</transport>"
        else:
            ip = m.conn or parsed.conn or HOST
            transport = (f"<transport xmlns='{NS_RAW_UDP}'><candidate id='c{index + 1}' "
                         f"component='1' generation='0' ip={q(ip)} port={q(m.port)}/></transport>")
        senders = _senders(m.direction, author)
        out.append(f"<content creator={q(creator)} name={q(name)} senders={q(senders)}>"
                   f"{description}{transport}</content>")
    for value in [v for t, v in parsed.lines if t == "a" and v.startswith("group:")]:
        semantics, *mids = value.removeprefix("group:").split()
        inner = "".join(f"<content name={q(mid)}/>" for mid in mids)
        out.append(f"<group xmlns='{NS_GROUP}' semantics={q(semantics)}>{inner}</group>")
    return "".join(out)


def jingle_element(children: str, action: str = "session-initiate", sid: str = "media") -> ET.Element:
    """Wrap sdp_to_jingle's output in a parsed <jingle/> element."""
    return ET.fromstring(f"<jingle xmlns='{NS_JINGLE}' action={q(action)} sid={q(sid)}>"
                         f"{children}</jingle>")


# --- Jingle -> SDP --------------------------------------------------------------

def _find_jingle(el: ET.Element) -> ET.Element:
    if el.tag == f"{{{NS_JINGLE}}}jingle":
        return el
    found = el.find(f".//{{{NS_JINGLE}}}jingle")
    if found is None:
        raise ValueError(f"no <jingle/> in {ET.tostring(el, encoding='unicode')}")
    return found


def jingle_candidate_to_sdp(cand: ET.Element) -> str:
    """An XEP-0176 <candidate/> as the value of an a=candidate line."""
    g = cand.get
    line = (f"{g('foundation', '1')} {g('component', '1')} {g('protocol', 'udp')} "
            f"{g('priority', '1')} {g('ip')} {g('port')} typ {g('type', 'host')}")
    if g("rel-addr"):
        line += f" raddr {g('rel-addr')} rport {g('rel-port', '0')}"
    if g("tcptype"):
        line += f" tcptype {g('tcptype')}"
    return line + f" generation {g('generation', '0')}"


def jingle_to_sdp(jingle_el: ET.Element, kind: str, end_of_candidates: bool = False,
                  session_id: int | None = None) -> str:
    """An SDP offer (kind='offer': written by the initiator) or answer for a
    <jingle/> (or an element holding one) with RTP contents over ICE-UDP
    (DTLS-SRTP when there is a fingerprint) or raw-udp."""
    if kind not in ("offer", "answer"):
        raise ValueError(f"kind is 'offer' or 'answer', not {kind!r}")
    j = _find_jingle(jingle_el)
    author = "initiator" if kind == "offer" else "responder"
    if session_id is None:
        session_id = random.randrange(1, 2**62)
    lines = ["v=0", f"o=- {session_id} 2 IN IP4 {HOST}", "s=-", "t=0 0"]
    for group in j.findall(f"{{{NS_GROUP}}}group"):
        mids = [c.get("name") for c in group.findall(f"{{{NS_GROUP}}}content")]
        lines.append(f"a=group:{group.get('semantics', 'BUNDLE')} {' '.join(mids)}")
    for content in j.findall(f"{{{NS_JINGLE}}}content"):
        desc = content.find(f"{{{NS_RTP}}}description")
        if desc is None:
            continue
        transport = content.find(f"{{{NS_ICE}}}transport")
        ice = transport is not None
        if not ice:
            transport = content.find(f"{{{NS_RAW_UDP}}}transport")
        tns = NS_ICE if ice else NS_RAW_UDP
        cands = [] if transport is None else transport.findall(f"{{{tns}}}candidate")
        first = next((c for c in cands if c.get("component", "1") == "1"), None)
        ip, port = (first.get("ip"), first.get("port")) if first is not None else ("0.0.0.0", "9")
        fingerprints = [] if transport is None else transport.findall(f"{{{NS_DTLS}}}fingerprint")
        pts = desc.findall(f"{{{NS_RTP}}}payload-type")
        has_fb = desc.find(f".//{{{NS_FB}}}rtcp-fb") is not None
        profile = "UDP/TLS/RTP/SAVPF" if fingerprints else ("RTP/AVPF" if has_fb else "RTP/AVP")
        lines.append(f"m={desc.get('media', 'audio')} {port} {profile} "
                     + " ".join(p.get("id") for p in pts))
        lines.append(f"c=IN {'IP6' if ':' in ip else 'IP4'} {ip}")
        lines.append(f"a=mid:{content.get('name')}")
        lines.append(f"a={_direction(content.get('senders', 'both'), author)}")
        if ice:
            if transport.get("ufrag") is not None:
                lines.append(f"a=ice-ufrag:{transport.get('ufrag')}")
            if transport.get("pwd") is not None:
                lines.append(f"a=ice-pwd:{transport.get('pwd')}")
        for fp in fingerprints:
            lines.append(f"a=fingerprint:{fp.get('hash')} {(fp.text or '').strip()}")
        if fingerprints:
            setup = fingerprints[0].get("setup") or ("actpass" if kind == "offer" else "active")
            lines.append(f"a=setup:{setup}")
        for ext in desc.findall(f"{{{NS_HDREXT}}}rtp-hdrext"):
            direction = ""
            if ext.get("senders") and ext.get("senders") != "both":
                direction = "/" + _direction(ext.get("senders"), author)
            lines.append(f"a=extmap:{ext.get('id')}{direction} {ext.get('uri')}")
        if desc.find(f"{{{NS_HDREXT}}}extmap-allow-mixed") is not None:
            lines.append("a=extmap-allow-mixed")
        if desc.find(f"{{{NS_RTP}}}rtcp-mux") is not None:
            lines.append("a=rtcp-mux")

        def fb_lines(parent, pt):
            for fb in parent.findall(f"{{{NS_FB}}}rtcp-fb"):
                sub = f" {fb.get('subtype')}" if fb.get("subtype") else ""
                lines.append(f"a=rtcp-fb:{pt} {fb.get('type')}{sub}")
            for trr in parent.findall(f"{{{NS_FB}}}rtcp-fb-trr-int"):
                lines.append(f"a=rtcp-fb:{pt} trr-int {trr.get('value')}")

        for p in pts:
            ident = p.get("id")
            name, rate = p.get("name"), p.get("clockrate")
            if not name and ident.isdigit() and int(ident) in STATIC_PTS:
                name, rate_i, _ = STATIC_PTS[int(ident)]
                rate = rate or str(rate_i)
            if name:
                channels = p.get("channels")
                suffix = f"/{channels}" if channels and channels != "1" else ""
                lines.append(f"a=rtpmap:{ident} {name}/{rate or 8000}{suffix}")
            params = [(x.get("name", ""), x.get("value", "")) for x in p.findall(f"{{{NS_RTP}}}parameter")]
            if params:
                lines.append(f"a=fmtp:{ident} " + ";".join(f"{k}={v}" if k else v for k, v in params))
            fb_lines(p, ident)
        fb_lines(desc, "*")
        ptime = next((p.get("ptime") for p in pts if p.get("ptime")), None)
        if ptime:
            lines.append(f"a=ptime:{ptime}")
        for src in desc.findall(f"{{{NS_SSMA}}}source"):
            for par in src.findall(f"{{{NS_SSMA}}}parameter"):
                value = par.get("value")
                lines.append(f"a=ssrc:{src.get('ssrc')} {par.get('name')}"
                             + (f":{value}" if value is not None else ""))
        for grp in desc.findall(f"{{{NS_SSMA}}}ssrc-group"):
            ssrcs = " ".join(s.get("ssrc") for s in grp.findall(f"{{{NS_SSMA}}}source"))
            lines.append(f"a=ssrc-group:{grp.get('semantics')} {ssrcs}")
        if ice:
            for cand in cands:
                lines.append(f"a=candidate:{jingle_candidate_to_sdp(cand)}")
            if end_of_candidates:
                lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


# --- WebRTC (aiortc) -------------------------------------------------------------

class ToneTrack(AudioStreamTrack):
    """A 400 Hz tone in 20 ms frames of 48 kHz mono s16, paced in real time."""

    RATE = 48000
    SAMPLES = 960                      # 20 ms
    HZ = 400                           # 48000 / 400 = 120: a frame is 8 whole periods

    def __init__(self):
        super().__init__()
        self._pcm = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * self.HZ * i / self.RATE)))
                             for i in range(self.SAMPLES))
        self._started: float | None = None
        self._pts = 0
        self.frames = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        else:
            self._pts += self.SAMPLES
            wait = self._started + self._pts / self.RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        plane = frame.planes[0]
        plane.update(self._pcm + bytes(plane.buffer_size - len(self._pcm)))
        frame.pts = self._pts
        frame.sample_rate = self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        self.frames += 1
        return frame


class MediaError(AssertionError):
    pass


class WebRtcPeer:
    """One aiortc RTCPeerConnection (audio, sendrecv, a tone) on its own loop."""

    def __init__(self, name: str = "webrtc"):
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"aiortc-{name}",
                                       daemon=True)
        self.thread.start()
        self.frames_received = 0           # decoded frames pulled from the remote track
        self.local_sdp: str | None = None
        self.remote_sdp: str | None = None
        self.states: list[str] = []        # connectionState changes, in order
        self._final_stats: tuple[int, int] | None = None
        self._closed = False
        self._connected = threading.Event()
        self._failed = threading.Event()
        self.track = None
        self.pc = self._run(self._create(), 10)

    def _run(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def _create(self):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("connectionstatechange")
        def on_state():
            self.states.append(pc.connectionState)
            if pc.connectionState == "connected":
                self._connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self._failed.set()

        @pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._drain(track))

        return pc

    async def _drain(self, track):
        """Pull the remote track so decoded frames don't pile up."""
        try:
            while True:
                await track.recv()
                self.frames_received += 1
        except (MediaStreamError, asyncio.CancelledError):
            pass

    def _add_track(self):
        if self.track is None:
            self.track = ToneTrack()
            self.pc.addTrack(self.track)

    # --- signalling (SDP with every candidate: gathering is done first) ------

    def create_offer(self, timeout: float = 10.0) -> str:
        async def go():
            self._add_track()
            await self.pc.setLocalDescription(await self.pc.createOffer())
            return self.pc.localDescription.sdp

        self.local_sdp = self._run(go(), timeout)
        return self.local_sdp

    def accept_answer(self, sdp: str, timeout: float = 10.0):
        self.remote_sdp = sdp
        self._run(self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer")), timeout)

    def accept_offer(self, sdp: str, timeout: float = 10.0) -> str:
        async def go():
            self._add_track()
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp

        self.remote_sdp = sdp
        self.local_sdp = self._run(go(), timeout)
        return self.local_sdp

    def add_remote_candidate(self, candidate: "str | ET.Element | None", mid: str = "0",
                             timeout: float = 5.0):
        """A trickled remote candidate: an a=candidate line (or its value), an
        XEP-0176 <candidate/>, or None for end-of-candidates."""
        if candidate is None:
            cand = None
        else:
            if isinstance(candidate, ET.Element):
                candidate = jingle_candidate_to_sdp(candidate)
            candidate = candidate.strip().removeprefix("a=").removeprefix("candidate:")
            cand = candidate_from_sdp(candidate)
            cand.sdpMid = mid
        self._run(self.pc.addIceCandidate(cand), timeout)

    def start(self):
        """Nothing to do: aiortc sends as soon as ICE and DTLS are up."""

    # --- state ---------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState

    def describe(self) -> str:
        return (f"{self.name}: connectionState={self.pc.connectionState} "
                f"iceConnectionState={self.pc.iceConnectionState} states={self.states}")

    def wait_connected(self, timeout: float = 10.0):
        """Until ICE is connected and DTLS is done (connectionState 'connected')."""
        deadline = time.monotonic() + timeout
        while not self._connected.is_set():
            if self._failed.is_set() or time.monotonic() >= deadline:
                raise MediaError(f"not connected within {timeout}s: {self.describe()}")
            self._connected.wait(0.05)

    def stats(self) -> tuple[int, int]:
        """(RTP packets sent, SRTP packets received and decrypted)."""
        if self._final_stats is not None:
            return self._final_stats
        report = self._run(self.pc.getStats(), 5)
        sent = sum(s.packetsSent for s in report.values() if s.type == "outbound-rtp")
        received = sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")
        return sent, received

    def wait_packets(self, min_each_way: int = 50, timeout: float = 10.0) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while True:
            sent, received = self.stats()
            if sent >= min_each_way and received >= min_each_way:
                return sent, received
            if time.monotonic() >= deadline:
                raise MediaError(f"{self.name}: wanted {min_each_way} packets each way within "
                                 f"{timeout}s, got sent={sent} received={received}; "
                                 f"{self.describe()}")
            time.sleep(0.1)

    def stop(self):
        """Stop the media (the counts stay readable)."""
        if self._final_stats is None and not self._closed:
            try:
                self._final_stats = self.stats()
            except Exception:
                self._final_stats = (0, 0)
            try:
                self._run(self.pc.close(), 10)
            except Exception:
                pass

    def close(self):
        if self._closed:
            return
        self.stop()
        self._closed = True

        async def cancel_rest():
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self._run(cancel_rest(), 5)
        except Exception:
            pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


# --- plain RTP/AVP ----------------------------------------------------------------

def _segment(value: int, first_end: int) -> int:
    """The G.711 segment (0-7, 8 when past the last) of a magnitude."""
    seg, end = 0, first_end
    while seg < 8 and value > end:
        seg, end = seg + 1, end * 2 + 1
    return seg


def _ulaw(sample: int) -> int:
    """G.711 mu-law byte of a 16-bit linear sample."""
    value, mask = sample >> 2, 0xFF             # 14-bit
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 33
    seg = _segment(value, 0x3F)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def _alaw(sample: int) -> int:
    """G.711 A-law byte of a 16-bit linear sample."""
    value, mask = sample >> 3, 0xD5             # 13-bit
    if value < 0:
        value, mask = -value - 1, 0x55
    seg = _segment(value, 0x1F)
    if seg >= 8:
        return 0x7F ^ mask
    low = (value >> 1) if seg < 2 else (value >> seg)
    return ((seg << 4) | (low & 0x0F)) ^ mask


def is_rtcp(packet: bytes) -> bool:
    """RTCP packet types 200-204 put 72-76 in the low 7 bits of byte 1."""
    return len(packet) >= 2 and 72 <= (packet[1] & 0x7F) <= 76


def is_rtp(packet: bytes) -> bool:
    if len(packet) < 12 or packet[0] >> 6 != 2 or is_rtcp(packet):
        return False
    return len(packet) >= 12 + 4 * (packet[0] & 0x0F)


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on an even port and the next one (RTP, RTCP)."""
    for _ in range(200):
        port = random.randrange(20000, 32000, 2)
        if port in net._handed_out or port + 1 in net._handed_out:
            continue
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        net._handed_out.update((port, port + 1))
        return rtp, rtcp
    raise RuntimeError("no free even/odd loopback UDP port pair")


class PlainRtpPeer:
    """RTP/AVP G.711 on 127.0.0.1: sends a tone every 20 ms once started and
    counts the RTP (and, apart, RTCP) it receives on its port and port+1."""

    EVENT_PT = 101

    def __init__(self, name: str = "rtp", host: str = HOST, payload_type: int = 0):
        self.name = name
        self.host = host
        self.payload_type = payload_type        # what we send: 0 PCMU or 8 PCMA
        self.rtp_sock, self.rtcp_sock = _bind_pair(host)
        self.port = self.rtp_sock.getsockname()[1]
        self.ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self.remote: tuple[str, int] | None = None
        self.remote_direction = "sendrecv"
        self.remote_pts: dict[int, tuple[str, int, int]] = {}
        self.event_pt: int | None = self.EVENT_PT
        self.sent = 0
        self.received = 0
        self.rtcp_received = 0
        self.other_received = 0              # neither RTP nor RTCP (STUN, DTLS …)
        self.received_from: set[tuple[str, int]] = set()
        self.remote_ssrcs: set[int] = set()
        self.received_pts: dict[int, int] = {}
        self._sdp_session = random.randrange(1, 2**31)
        self._sdp_version = 1
        self._sdp_last: str | None = None
        self.local_sdp_text: str | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sending = threading.Event()
        self._sender: threading.Thread | None = None
        self._receiver = threading.Thread(target=self._receive, name=f"rtp-rx-{name}", daemon=True)
        self._receiver.start()

    # --- SDP -------------------------------------------------------------------

    def _payload(self) -> bytes:
        encode = _alaw if self.payload_type == 8 else _ulaw
        return bytes(encode(int(8000 * math.sin(2 * math.pi * 400 * i / 8000))) for i in range(160))

    def local_sdp(self, kind: str = "offer") -> str:
        """Our SDP; an answer keeps to what the remote offer had. The o=
        version goes up only when the rest of the SDP changes."""
        pts = [self.payload_type]
        if kind == "answer" and self.remote_pts:
            # telephone-event only if offered, with the offer's number
            self.event_pt = next((pt for pt, (n, r, _) in self.remote_pts.items()
                                  if n.lower() == "telephone-event" and r == 8000), None)
        if self.event_pt is not None:
            pts.append(self.event_pt)
        enc = "PCMA" if self.payload_type == 8 else "PCMU"
        body = [f"m=audio {self.port} RTP/AVP {' '.join(map(str, pts))}",
                f"c=IN IP4 {self.host}",
                f"a=rtpmap:{self.payload_type} {enc}/8000"]
        if self.event_pt is not None:
            body += [f"a=rtpmap:{self.event_pt} telephone-event/8000",
                     f"a=fmtp:{self.event_pt} 0-16"]
        body += ["a=ptime:20", "a=sendrecv"]
        rest = "\r\n".join(body)
        if self._sdp_last is not None and rest != self._sdp_last:
            self._sdp_version += 1
        self._sdp_last = rest
        head = ["v=0", f"o=- {self._sdp_session} {self._sdp_version} IN IP4 {self.host}",
                "s=-", f"c=IN IP4 {self.host}", "t=0 0"]
        self.local_sdp_text = "\r\n".join(head) + "\r\n" + rest + "\r\n"
        return self.local_sdp_text

    def set_remote_sdp(self, sdp: str):
        """Learn where to send (c=/m=), what the peer takes and its direction."""
        parsed = parse_sdp(sdp)
        audio = next((m for m in parsed.media if m.kind == "audio"), None)
        if audio is None:
            raise MediaError(f"{self.name}: no m=audio in the remote SDP:\n{sdp}")
        ip = audio.conn or parsed.conn
        self.remote_pts = audio.rtpmap()
        offered = [int(f) for f in audio.fmts if f.isdigit()]
        if self.payload_type not in offered:
            for pt in offered:
                if pt in (0, 8):
                    self.payload_type = pt
                    break
        self.remote_direction = audio.direction
        with self._lock:
            self.remote = None if audio.port == 0 or not ip or ip == "0.0.0.0" else (ip, audio.port)

    # The shape WebRtcPeer has, for SipUa.
    def create_offer(self) -> str:
        return self.local_sdp("offer")

    def accept_offer(self, sdp: str) -> str:
        self.set_remote_sdp(sdp)
        return self.local_sdp("answer")

    def accept_answer(self, sdp: str):
        self.set_remote_sdp(sdp)

    # --- sending and receiving ---------------------------------------------------

    def start(self):
        """Send every 20 ms to the remote address (from now on)."""
        self._sending.set()
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_loop, name=f"rtp-tx-{self.name}",
                                            daemon=True)
            self._sender.start()

    def stop(self):
        """Stop sending (receiving and the counts go on)."""
        self._sending.clear()

    def _send_loop(self):
        payloads: dict[int, bytes] = {}
        marker = True
        next_at = time.monotonic()
        while not self._closed.is_set():
            next_at += 0.020
            with self._lock:
                remote = self.remote
            if self._sending.is_set() and remote and self.remote_direction in ("sendrecv", "recvonly"):
                pt = self.payload_type
                payload = payloads.get(pt) or payloads.setdefault(pt, self._payload())
                header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt,
                                     self._seq, self._ts, self.ssrc)
                try:
                    self.rtp_sock.sendto(header + payload, remote)
                    self.sent += 1
                    marker = False
                except OSError:
                    pass
                self._seq = (self._seq + 1) & 0xFFFF
                self._ts = (self._ts + 160) & 0xFFFFFFFF
            delay = next_at - time.monotonic()
            if delay > 0:
                self._closed.wait(delay)
            else:
                next_at = time.monotonic()

    def _receive(self):
        sel = selectors.DefaultSelector()
        sel.register(self.rtp_sock, selectors.EVENT_READ, "rtp")
        sel.register(self.rtcp_sock, selectors.EVENT_READ, "rtcp")
        try:
            while not self._closed.is_set():
                for key, _ in sel.select(0.2):
                    try:
                        data, addr = key.fileobj.recvfrom(4096)
                    except OSError:
                        continue
                    if is_rtcp(data) and data[0] >> 6 == 2:
                        self.rtcp_received += 1
                    elif key.data == "rtp" and is_rtp(data):
                        self.received += 1
                        self.received_from.add(addr)
                        self.remote_ssrcs.add(struct.unpack("!I", data[8:12])[0])
                        pt = data[1] & 0x7F
                        self.received_pts[pt] = self.received_pts.get(pt, 0) + 1
                    else:
                        self.other_received += 1
        finally:
            sel.close()

    # --- counts ------------------------------------------------------------------

    def stats(self) -> tuple[int, int]:
        """(RTP packets sent, valid RTP packets received)."""
        return self.sent, self.received

    def describe(self) -> str:
        return (f"{self.name}: port={self.port} remote={self.remote} sent={self.sent} "
                f"received={self.received} rtcp={self.rtcp_received} other={self.other_received} "
                f"from={sorted(self.received_from)} pts={self.received_pts}")

    def wait_packets(self, min_each_way: int = 50, timeout: float = 10.0) -> tuple[int, int]:
        if not net.wait_until(lambda: self.sent >= min_each_way and self.received >= min_each_way,
                              timeout):
            raise MediaError(f"wanted {min_each_way} packets each way within {timeout}s; "
                             f"{self.describe()}")
        return self.stats()

    def close(self):
        self._closed.set()
        self._sending.clear()
        for t in (self._sender, self._receiver):
            if t is not None:
                t.join(2)
        self.rtp_sock.close()
        self.rtcp_sock.close()
