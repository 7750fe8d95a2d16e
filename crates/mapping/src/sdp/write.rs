//! Jingle contents → SDP text (RFC 8866, CRLF line ends).
//!
//! Every value taken from Jingle is checked before it is written: a value
//! that would break the SDP line structure (spaces in a token, CR/LF) is left
//! out rather than written, so XML input can never inject SDP lines.

use super::raw::{MLine, RawMedia, RawSdp};
use super::*;
use crate::jingle::{Description, Fingerprint, IceUdpTransport, RtpDescription, Transport};
use crate::ns;
use minidom::Element;
use std::net::IpAddr;

/// Printable ASCII without spaces: safe as one SDP token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Safe as the rest of an SDP line (no control characters such as CR/LF).
fn is_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Contents [`offer`] turns into m= lines: an RTP description with a media
/// type and payload types, over ICE-UDP, raw UDP or no transport yet.
pub(super) fn is_writable(c: &Content) -> bool {
    let rtp_ok = c
        .rtp()
        .is_some_and(|r| is_token(&r.media) && !r.payload_types.is_empty());
    let transport_ok = matches!(
        c.transport,
        None | Some(Transport::IceUdp(_)) | Some(Transport::RawUdp(_))
    );
    rtp_ok && transport_ok
}

pub(super) fn offer(
    contents: &[Content],
    author: SdpAuthor,
    origin: &SdpOrigin,
) -> Result<String, SdpError> {
    let written: Vec<&Content> = contents.iter().filter(|c| is_writable(c)).collect();
    if written.is_empty() {
        return Err(SdpError::NothingMappable(
            "no RTP content over ICE-UDP or raw UDP".to_owned(),
        ));
    }
    let sections = written
        .iter()
        .map(|c| {
            media_section(
                c,
                author,
                None,
                is_token(&c.name).then_some(c.name.as_str()),
            )
        })
        .collect::<Vec<_>>();
    Ok(session(origin, &written, &sections))
}

pub(super) fn answer(
    contents: &[Content],
    author: SdpAuthor,
    origin: &SdpOrigin,
    offer: &RawSdp,
) -> Result<String, SdpError> {
    let names = content_names(offer);
    let mut accepted = Vec::new();
    let mut sections = Vec::new();
    for (m, name) in offer.media.iter().zip(names) {
        let mid = raw::attribute(&m.lines, "mid")
            .map(str::trim)
            .filter(|mid| is_token(mid));
        let content =
            name.and_then(|name| contents.iter().find(|c| c.name == name && is_writable(c)));
        match content {
            Some(c) => {
                sections.push(media_section(c, author, Some(&m.mline.proto), mid));
                accepted.push(c);
            }
            None => sections.push(declined_section(m, mid)),
        }
    }
    if accepted.is_empty() {
        return Err(SdpError::NothingMappable(
            "no offered m= line is accepted".to_owned(),
        ));
    }
    Ok(session(origin, &accepted, &sections))
}

/// A written media section and the address of its c= line.
struct Section {
    text: String,
    address: String,
}

fn session(origin: &SdpOrigin, contents: &[&Content], sections: &[Section]) -> String {
    let username = if is_token(&origin.username) {
        origin.username.as_str()
    } else {
        "-"
    };
    let address = sections
        .iter()
        .map(|s| s.address.as_str())
        .find(|a| *a != "IN IP4 0.0.0.0")
        .unwrap_or("IN IP4 0.0.0.0");
    let mut out = format!(
        "v=0\r\no={username} {} {} {address}\r\ns=-\r\nt=0 0\r\n",
        origin.session_id, origin.session_version
    );
    // Session-level attributes carried in the contents, once each.
    let mut seen: Vec<String> = Vec::new();
    for c in contents {
        let Some(rtp) = c.rtp() else { continue };
        for line in sdp_attributes(&rtp.other, true) {
            if !seen.contains(&line) {
                out.push_str(&line);
                out.push_str("\r\n");
                seen.push(line);
            }
        }
    }
    for s in sections {
        out.push_str(&s.text);
    }
    out
}

/// `a=` lines for the `<sdp-attribute/>` elements at the given level.
fn sdp_attributes(other: &[Element], session_level: bool) -> Vec<String> {
    other
        .iter()
        .filter(|e| e.is("sdp-attribute", ns::STOX_SDP))
        .filter(|e| (e.attr("level") == Some("session")) == session_level)
        .filter_map(|e| {
            let name = e.attr("name")?;
            if !is_token(name) || name.contains(':') {
                return None;
            }
            match e.attr("value") {
                Some(v) if is_text(v) => Some(format!("a={name}:{v}")),
                Some(_) => None,
                None => Some(format!("a={name}")),
            }
        })
        .collect()
}

/// `IN IP4 a.b.c.d` / `IN IP6 …` for a Jingle address; anything that is not
/// an IP address (an mDNS name) becomes `IN IP4 0.0.0.0`.
fn tagged_address(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => format!("IN IP4 {a}"),
        Ok(IpAddr::V6(a)) => format!("IN IP6 {a}"),
        Err(_) => "IN IP4 0.0.0.0".to_owned(),
    }
}

/// The m= port and c= address. ICE: the component-1 UDP candidate most
/// likely to work for a peer without ICE (relay, then srflx, then prflx, then
/// host; the first of each kind); raw UDP: the component-1 candidate; none:
/// `0.0.0.0` port 9.
fn default_candidate(transport: Option<&Transport>) -> (String, u16) {
    let found = match transport {
        Some(Transport::IceUdp(t)) => ["relay", "srflx", "prflx", "host"]
            .iter()
            .find_map(|kind| {
                t.candidates.iter().find(|c| {
                    c.component == 1 && c.kind == *kind && c.protocol.eq_ignore_ascii_case("udp")
                })
            })
            .or_else(|| t.candidates.iter().find(|c| c.component == 1))
            .map(|c| (c.ip.clone(), c.port)),
        Some(Transport::RawUdp(t)) => t
            .candidates
            .iter()
            .find(|c| c.component == 1)
            .map(|c| (c.ip.clone(), c.port)),
        _ => None,
    };
    found.unwrap_or_else(|| ("0.0.0.0".to_owned(), 9))
}

fn has_element(elements: &[Element], name: &str, namespace: &str) -> bool {
    elements.iter().any(|e| e.is(name, namespace))
}

fn has_sdp_attribute(elements: &[Element], name: &str) -> bool {
    elements
        .iter()
        .any(|e| e.is("sdp-attribute", ns::STOX_SDP) && e.attr("name") == Some(name))
}

fn dtls_fingerprints(transport: Option<&Transport>) -> Vec<Fingerprint> {
    match transport {
        Some(Transport::IceUdp(t)) => t.fingerprints.clone(),
        Some(Transport::RawUdp(t)) => t
            .other
            .iter()
            .filter(|e| e.is("fingerprint", ns::JINGLE_DTLS))
            .filter_map(|e| {
                Some(Fingerprint {
                    hash: e.attr("hash")?.to_owned(),
                    setup: e.attr("setup").map(str::to_owned),
                    value: e.text().trim().to_owned(),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The profile for an offer, from what the content actually uses.
fn profile(rtp: &RtpDescription, fingerprints: &[Fingerprint]) -> &'static str {
    let feedback = has_element(&rtp.other, "rtcp-fb", ns::JINGLE_RTCP_FB)
        || rtp
            .payload_types
            .iter()
            .any(|pt| has_element(&pt.other, "rtcp-fb", ns::JINGLE_RTCP_FB))
        || has_sdp_attribute(&rtp.other, "rtcp-fb");
    let sdes = has_element(&rtp.other, "encryption", ns::JINGLE_RTP)
        || has_sdp_attribute(&rtp.other, "crypto");
    match (!fingerprints.is_empty(), sdes, feedback) {
        (true, _, _) => "UDP/TLS/RTP/SAVPF",
        (false, true, true) => "RTP/SAVPF",
        (false, true, false) => "RTP/SAVP",
        (false, false, true) => "RTP/AVPF",
        (false, false, false) => "RTP/AVP",
    }
}

fn media_section(
    c: &Content,
    author: SdpAuthor,
    proto: Option<&str>,
    mid: Option<&str>,
) -> Section {
    let empty = RtpDescription::default();
    let rtp = match &c.description {
        Some(Description::Rtp(rtp)) => rtp,
        _ => &empty,
    };
    let transport = c.transport.as_ref();
    let fingerprints = dtls_fingerprints(transport);
    let (ip, port) = default_candidate(transport);
    let address = tagged_address(&ip);
    let proto = proto.unwrap_or_else(|| profile(rtp, &fingerprints));
    let fmts: Vec<String> = rtp.payload_types.iter().map(|p| p.id.to_string()).collect();
    let mut lines = vec![
        format!("m={} {port} {proto} {}", rtp.media, fmts.join(" ")),
        format!("c={address}"),
    ];
    let mut bandwidths: Vec<(String, String)> = Vec::new();
    if let Some(b) = &rtp.bandwidth {
        bandwidths.push((b.kind.clone(), b.value.to_string()));
    }
    for e in rtp
        .other
        .iter()
        .filter(|e| e.is("bandwidth", ns::JINGLE_RTP))
    {
        if let (Some(kind), text) = (e.attr("type"), e.text()) {
            bandwidths.push((kind.to_owned(), text.trim().to_owned()));
        }
    }
    for (kind, value) in bandwidths {
        if is_token(&kind) && !kind.contains(':') && value.parse::<u32>().is_ok() {
            lines.push(format!("b={kind}:{value}"));
        }
    }
    for pt in &rtp.payload_types {
        let name = pt
            .name
            .as_deref()
            .filter(|n| is_token(n) && !n.contains('/'));
        let known = static_payload_type(pt.id);
        let rtpmap = match (name, pt.clockrate) {
            (Some(name), Some(rate)) => Some((name, rate, pt.channels)),
            (Some(name), None) => known
                .filter(|(n, _, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, rate, ch)| (name, rate, pt.channels.or(ch))),
            (None, _) => known,
        };
        if let Some((name, rate, channels)) = rtpmap {
            match channels {
                Some(ch) => lines.push(format!("a=rtpmap:{} {name}/{rate}/{ch}", pt.id)),
                None => lines.push(format!("a=rtpmap:{} {name}/{rate}", pt.id)),
            }
        }
        let params: Vec<_> = pt
            .parameters
            .iter()
            .filter(|p| {
                (p.name.is_empty() || is_token(&p.name))
                    && !p.name.contains(['=', ';'])
                    && is_text(&p.value)
                    && !p.value.contains(';')
                    && !(p.name.is_empty() && p.value.trim().is_empty())
            })
            .cloned()
            .collect();
        let is_te = name.is_some_and(|n| n.eq_ignore_ascii_case("telephone-event"));
        // Some Jingle clients name the RFC 4733 event list `events`; SDP
        // carries it bare (`a=fmtp:101 0-15`).
        let params: Vec<_> = params
            .into_iter()
            .map(|p| {
                if is_te && p.name == "events" {
                    stox_param("", &p.value)
                } else {
                    p
                }
            })
            .collect();
        if !params.is_empty() {
            lines.push(format!("a=fmtp:{} {}", pt.id, format_fmtp(&params)));
        } else if is_te {
            lines.push(format!("a=fmtp:{} {TELEPHONE_EVENT_DEFAULT_FMTP}", pt.id));
        }
    }
    if let Some(ptime) = rtp.payload_types.iter().find_map(|p| p.ptime) {
        lines.push(format!("a=ptime:{ptime}"));
    }
    if let Some(maxptime) = rtp.payload_types.iter().find_map(|p| p.maxptime) {
        lines.push(format!("a=maxptime:{maxptime}"));
    }
    if rtp.rtcp_mux {
        lines.push("a=rtcp-mux".to_owned());
    }
    lines.push(format!("a={}", direction_for_senders(c.senders, author)));
    if let Some(mid) = mid {
        lines.push(format!("a=mid:{mid}"));
    }
    match transport {
        Some(Transport::IceUdp(t)) => ice_lines(t, &mut lines),
        Some(Transport::RawUdp(t)) => {
            let rtp_port = t.candidates.iter().find(|c| c.component == 1);
            let rtcp = t.candidates.iter().find(|c| c.component == 2);
            if let (Some(rtcp), false) = (rtcp, rtp.rtcp_mux) {
                let next = rtp_port.and_then(|c| c.port.checked_add(1));
                let same_ip = rtp_port.is_some_and(|c| c.ip == rtcp.ip);
                if !same_ip && rtcp.ip.parse::<IpAddr>().is_ok() {
                    lines.push(format!("a=rtcp:{} {}", rtcp.port, tagged_address(&rtcp.ip)));
                } else if next != Some(rtcp.port) {
                    lines.push(format!("a=rtcp:{}", rtcp.port));
                }
            }
        }
        _ => {}
    }
    fingerprint_lines(&fingerprints, &mut lines);
    lines.extend(sdp_attributes(&rtp.other, false));
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push_str("\r\n");
    }
    Section { text, address }
}

/// RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/" (what ufrag and pwd consist of).
fn is_ice_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn ice_lines(t: &IceUdpTransport, lines: &mut Vec<String>) {
    // RFC 8839: ice-ufrag = 4*256ice-char, ice-pwd = 22*256ice-char.
    if let Some(ufrag) = t
        .ufrag
        .as_deref()
        .filter(|u| is_ice_chars(u) && (4..=256).contains(&u.len()))
    {
        lines.push(format!("a=ice-ufrag:{ufrag}"));
    }
    if let Some(pwd) = t
        .pwd
        .as_deref()
        .filter(|p| is_ice_chars(p) && (22..=256).contains(&p.len()))
    {
        lines.push(format!("a=ice-pwd:{pwd}"));
    }
    for c in &t.candidates {
        // RFC 8839: foundation = 1*32 ice-char; the rest single tokens.
        let tokens = [&c.protocol, &c.ip, &c.kind];
        let foundation_ok = is_ice_chars(&c.foundation) && c.foundation.len() <= 32;
        if !foundation_ok || !tokens.iter().all(|t| is_token(t)) {
            continue;
        }
        let mut line = format!(
            "a=candidate:{} {} {} {} {} {} typ {}",
            c.foundation, c.component, c.protocol, c.priority, c.ip, c.port, c.kind
        );
        if let Some(addr) = c.rel_addr.as_deref().filter(|a| is_token(a)) {
            line.push_str(&format!(" raddr {addr}"));
        }
        if let Some(port) = c.rel_port {
            line.push_str(&format!(" rport {port}"));
        }
        if let Some(tcptype) = c.tcptype.as_deref().filter(|t| is_token(t)) {
            line.push_str(&format!(" tcptype {tcptype}"));
        }
        line.push_str(&format!(" generation {}", c.generation));
        if let Some(network) = c.network.as_deref().filter(|n| is_token(n)) {
            line.push_str(&format!(" network-id {network}"));
        }
        lines.push(line);
    }
}

fn fingerprint_lines(fingerprints: &[Fingerprint], lines: &mut Vec<String>) {
    let mut setup = None;
    for f in fingerprints {
        if is_sdp_token(&f.hash) && is_fingerprint_value(&f.value) {
            lines.push(format!("a=fingerprint:{} {}", f.hash, f.value));
            setup = setup.or(f
                .setup
                .as_deref()
                .filter(|s| ["actpass", "active", "passive", "holdconn"].contains(s)));
        }
    }
    if let Some(setup) = setup {
        lines.push(format!("a=setup:{setup}"));
    }
}

/// RFC 3264 §6: a rejected stream keeps its media type, proto and formats,
/// with port 0.
fn declined_section(m: &RawMedia, mid: Option<&str>) -> Section {
    let MLine {
        media, proto, fmts, ..
    } = &m.mline;
    let fmts: Vec<&str> = fmts
        .iter()
        .map(String::as_str)
        .filter(|f| is_token(f))
        .collect();
    let fmts = if fmts.is_empty() {
        "0".to_owned()
    } else {
        fmts.join(" ")
    };
    // The offer's own values, unless they are not valid SDP (RFC 8866:
    // media = token, proto = token *("/" token)); a garbled line is still
    // answered, in its place, with a neutral one.
    let media = if is_sdp_token(media) {
        media.as_str()
    } else {
        "application"
    };
    let proto_ok = !proto.is_empty() && proto.split('/').all(is_sdp_token);
    let proto = if proto_ok { proto.as_str() } else { "RTP/AVP" };
    let mut text = format!("m={media} 0 {proto} {fmts}\r\nc=IN IP4 0.0.0.0\r\n");
    if let Some(mid) = mid {
        text.push_str(&format!("a=mid:{mid}\r\n"));
    }
    Section {
        text,
        address: "IN IP4 0.0.0.0".to_owned(),
    }
}

/// RFC 8122 fingerprint: `2UHEX *(":" 2UHEX)` (lower case accepted too).
fn is_fingerprint_value(s: &str) -> bool {
    !s.is_empty()
        && s.split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// RFC 8866 `token`.
fn is_sdp_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

fn stox_param(name: &str, value: &str) -> crate::jingle::Parameter {
    crate::jingle::Parameter::new(name, value)
}
