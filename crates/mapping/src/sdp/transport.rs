//! Transports: XEP-0176 ICE-UDP ⇄ `a=ice-ufrag`/`a=ice-pwd`/`a=candidate`/
//! `a=remote-candidates`, XEP-0177 raw UDP ⇄ `c=` + m= port (+ `a=rtcp`),
//! XEP-0320 DTLS ⇄ `a=fingerprint` + `a=setup`.
//!
//! ICE credentials, fingerprint and setup may come at session level; they
//! apply to every m= line without its own and are always written back at
//! media level. With ICE, `a=rtcp` is not a candidate: it stays an
//! `<sdp-attribute/>`.

use super::check::{is_fingerprint_value, is_ice_chars, is_sdp_token, is_token};
use super::raw::{Line, RawMedia, attribute, attributes, connection_address, first};
use super::read::attributes_indexed;
use crate::jingle::{
    Fingerprint, IceCandidate, IceUdpTransport, RawUdpCandidate, RawUdpTransport, RemoteCandidate,
    Transport,
};
use crate::ns;
use crate::xml::element;
use bytesstr::BytesStr;
use minidom::Element;
use std::net::IpAddr;

/// The transport of m= section `index`; `None` without ICE and without a
/// usable connection address.
pub(super) fn read(
    session: &[Line],
    index: usize,
    m: &RawMedia,
    rtcp_mux: bool,
    consumed: &mut Vec<usize>,
) -> Option<Transport> {
    let lines = &m.lines;
    let fingerprints = fingerprints(lines, session);
    // Credentials outside RFC 8839 are malformed: dropped, so that what
    // we read is what we can write.
    let ufrag = attribute(lines, "ice-ufrag")
        .or_else(|| attribute(session, "ice-ufrag"))
        .map(str::trim)
        .filter(|u| is_ice_ufrag(u));
    let Some(ufrag) = ufrag else {
        return raw_udp(session, index, m, rtcp_mux, fingerprints, consumed);
    };
    let mut t = IceUdpTransport {
        ufrag: Some(ufrag.to_owned()),
        pwd: attribute(lines, "ice-pwd")
            .or_else(|| attribute(session, "ice-pwd"))
            .map(str::trim)
            .filter(|p| is_ice_pwd(p))
            .map(str::to_owned),
        fingerprints,
        ..IceUdpTransport::default()
    };
    for (i, (n, v)) in attributes_indexed(lines) {
        match n {
            "candidate" => {
                let id = format!("m{index}c{}", t.candidates.len());
                if let Some(c) = v.and_then(|v| ice_candidate(v, id)) {
                    t.candidates.push(c);
                    consumed.push(i);
                }
            }
            "remote-candidates" if t.remote_candidates.is_empty() => {
                if let Some(r) = v.and_then(remote_candidates) {
                    t.remote_candidates = r;
                    consumed.push(i);
                }
            }
            _ => {}
        }
    }
    Some(Transport::IceUdp(t))
}

fn raw_udp(
    session: &[Line],
    index: usize,
    m: &RawMedia,
    rtcp_mux: bool,
    fingerprints: Vec<Fingerprint>,
    consumed: &mut Vec<usize>,
) -> Option<Transport> {
    let lines = &m.lines;
    let ip = first(lines, 'c')
        .or_else(|| first(session, 'c'))
        .and_then(connection_address)?;
    let port = m.mline.port;
    let mut t = RawUdpTransport::default();
    t.candidates.push(RawUdpCandidate {
        component: 1,
        generation: 0,
        id: format!("m{index}c0"),
        ip: ip.clone(),
        port,
    });
    if !rtcp_mux {
        let rtcp = attributes_indexed(lines).find_map(|(i, (n, v))| {
            let v = v?.trim();
            if n != "rtcp" {
                return None;
            }
            let (p, rest) = v.split_once(' ').unwrap_or((v, ""));
            let addr = connection_address(rest.trim()).unwrap_or_else(|| ip.clone());
            Some((i, p.parse::<u16>().ok()?, addr))
        });
        let rtcp = match rtcp {
            Some((i, rtcp_port, addr)) => {
                consumed.push(i);
                Some((rtcp_port, addr))
            }
            None => port.checked_add(1).map(|p| (p, ip.clone())),
        };
        if let Some((rtcp_port, rtcp_ip)) = rtcp {
            t.candidates.push(RawUdpCandidate {
                component: 2,
                generation: 0,
                id: format!("m{index}c1"),
                ip: rtcp_ip,
                port: rtcp_port,
            });
        }
    }
    t.other.extend(fingerprints.iter().map(dtls_element));
    Some(Transport::RawUdp(t))
}

/// One `a=candidate:` value (RFC 8839 §5.1) as a XEP-0176 candidate.
pub(super) fn ice_candidate(value: &str, id: String) -> Option<IceCandidate> {
    let src = BytesStr::from(value.trim().to_owned());
    let (_, c) = ezk_sdp_types::IceCandidate::parse(src.as_ref(), &src).ok()?;
    let ip = c.address.to_string();
    if ip.is_empty() {
        return None;
    }
    let mut candidate = IceCandidate {
        component: u8::try_from(c.component).ok()?,
        foundation: c.foundation.to_string(),
        generation: 0,
        id,
        ip,
        port: c.port,
        priority: u32::try_from(c.priority).ok()?,
        protocol: c.transport.to_ascii_lowercase(),
        kind: c.typ.to_string(),
        rel_addr: c.rel_addr.map(|a| a.to_string()).filter(|a| !a.is_empty()),
        rel_port: c.rel_port,
        tcptype: None,
        network: None,
    };
    for (key, value) in &c.unknown {
        match key.as_str() {
            "generation" => candidate.generation = value.parse().unwrap_or(0),
            "tcptype" => candidate.tcptype = Some(value.to_string()),
            "network-id" => candidate.network = Some(value.to_string()),
            _ => {}
        }
    }
    Some(candidate)
}

/// RFC 8839 `a=remote-candidates:<component> <address> <port> …`.
fn remote_candidates(value: &str) -> Option<Vec<RemoteCandidate>> {
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    if tokens.is_empty() || !tokens.len().is_multiple_of(3) {
        return None;
    }
    tokens
        .chunks(3)
        .map(|c| match c {
            [component, ip, port] if is_token(ip) => Some(RemoteCandidate {
                component: component.parse().ok()?,
                ip: (*ip).to_owned(),
                port: port.parse().ok()?,
            }),
            _ => None,
        })
        .collect()
}

const SETUP_ROLES: [&str; 4] = ["actpass", "active", "passive", "holdconn"];

/// `a=setup` with one of the RFC 4145 roles.
fn setup(lines: &[Line]) -> Option<&str> {
    attribute(lines, "setup")
        .map(str::trim)
        .filter(|s| SETUP_ROLES.contains(s))
}

/// Valid `a=fingerprint` lines (RFC 8122) with the setup role; malformed
/// ones are dropped, as they could not be written back.
fn fingerprints(media: &[Line], session: &[Line]) -> Vec<Fingerprint> {
    let from = |lines: &[Line]| -> Vec<Fingerprint> {
        let setup = setup(lines).map(str::to_owned);
        attributes(lines)
            .filter(|(n, _)| *n == "fingerprint")
            .filter_map(|(_, v)| {
                let (hash, value) = v?.trim().split_once([' ', '\t'])?;
                let value = value.trim();
                if !is_sdp_token(hash) || !is_fingerprint_value(value) {
                    return None;
                }
                Some(Fingerprint {
                    hash: hash.to_ascii_lowercase(),
                    setup: setup.clone(),
                    value: value.trim().to_owned(),
                })
            })
            .collect()
    };
    let mut list = from(media);
    if list.is_empty() {
        list = from(session);
    }
    // a=setup may sit at the other level than the fingerprint.
    let setup = setup(media).or_else(|| setup(session));
    for f in &mut list {
        if f.setup.is_none() {
            f.setup = setup.map(str::to_owned);
        }
    }
    list
}

fn dtls_element(f: &Fingerprint) -> Element {
    let mut el = element("fingerprint", ns::JINGLE_DTLS, &[("hash", f.hash.as_str())]);
    if let Some(setup) = &f.setup {
        crate::xml::set_attr(&mut el, "setup", setup.as_str());
    }
    el.append_text(f.value.clone());
    el
}

// ---------------------------------------------------------------- writing

/// `IN IP4 a.b.c.d` / `IN IP6 …` for a Jingle address; anything that is not
/// an IP address (an mDNS name) becomes `IN IP4 0.0.0.0`.
pub(super) fn tagged_address(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => format!("IN IP4 {a}"),
        Ok(IpAddr::V6(a)) => format!("IN IP6 {a}"),
        Err(_) => "IN IP4 0.0.0.0".to_owned(),
    }
}

/// The c= value for a transport's default address: raw UDP may carry a
/// host name taken from a `c=` line, written back as it came; with ICE a
/// name (an mDNS candidate) is useless to a peer without ICE.
pub(super) fn connection(transport: Option<&Transport>, ip: &str) -> String {
    let raw = matches!(transport, Some(Transport::RawUdp(_)));
    if raw && ip.parse::<IpAddr>().is_err() && super::raw::is_host_name(ip) {
        return format!("IN IP4 {ip}");
    }
    tagged_address(ip)
}

/// The m= port and c= address. ICE: the component-1 UDP candidate most
/// likely to work for a peer without ICE (relay, then srflx, then prflx, then
/// host; the first of each kind); raw UDP: the component-1 candidate; none:
/// `0.0.0.0` port 9.
pub(super) fn default_candidate(transport: Option<&Transport>) -> (String, u16) {
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

/// The DTLS fingerprints of a transport (raw UDP keeps them in `other`).
pub(super) fn dtls_fingerprints(transport: Option<&Transport>) -> Vec<Fingerprint> {
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

/// The transport's lines (ICE or raw-UDP RTCP), then the DTLS ones.
pub(super) fn lines(
    transport: Option<&Transport>,
    rtcp_mux: bool,
    fingerprints: &[Fingerprint],
    out: &mut Vec<String>,
) {
    match transport {
        Some(Transport::IceUdp(t)) => ice_lines(t, out),
        Some(Transport::RawUdp(t)) => {
            let rtp_port = t.candidates.iter().find(|c| c.component == 1);
            let rtcp = t.candidates.iter().find(|c| c.component == 2);
            if let (Some(rtcp), false) = (rtcp, rtcp_mux) {
                let next = rtp_port.and_then(|c| c.port.checked_add(1));
                let same_ip = rtp_port.is_some_and(|c| c.ip == rtcp.ip);
                if !same_ip && rtcp.ip.parse::<IpAddr>().is_ok() {
                    out.push(format!("a=rtcp:{} {}", rtcp.port, tagged_address(&rtcp.ip)));
                } else if next != Some(rtcp.port) {
                    out.push(format!("a=rtcp:{}", rtcp.port));
                }
            }
        }
        _ => {}
    }
    fingerprint_lines(fingerprints, out);
}

/// RFC 8839: ice-ufrag = 4*256ice-char.
pub(super) fn is_ice_ufrag(u: &str) -> bool {
    is_ice_chars(u) && (4..=256).contains(&u.len())
}

/// RFC 8839: ice-pwd = 22*256ice-char.
pub(super) fn is_ice_pwd(p: &str) -> bool {
    is_ice_chars(p) && (22..=256).contains(&p.len())
}

/// The `a=candidate:` line for a XEP-0176 candidate; `None` when a value
/// would not make a valid line (RFC 8839: foundation = 1*32 ice-char, the
/// rest single tokens).
pub(super) fn candidate_line(c: &IceCandidate) -> Option<String> {
    let tokens = [&c.protocol, &c.ip, &c.kind];
    let foundation_ok = is_ice_chars(&c.foundation) && c.foundation.len() <= 32;
    if !foundation_ok || !tokens.iter().all(|t| is_token(t)) {
        return None;
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
    Some(line)
}

fn ice_lines(t: &IceUdpTransport, lines: &mut Vec<String>) {
    if let Some(ufrag) = t.ufrag.as_deref().filter(|u| is_ice_ufrag(u)) {
        lines.push(format!("a=ice-ufrag:{ufrag}"));
    }
    if let Some(pwd) = t.pwd.as_deref().filter(|p| is_ice_pwd(p)) {
        lines.push(format!("a=ice-pwd:{pwd}"));
    }
    lines.extend(t.candidates.iter().filter_map(candidate_line));
    let remote: Vec<String> = t
        .remote_candidates
        .iter()
        .filter(|r| is_token(&r.ip))
        .map(|r| format!("{} {} {}", r.component, r.ip, r.port))
        .collect();
    if !remote.is_empty() && remote.len() == t.remote_candidates.len() {
        lines.push(format!("a=remote-candidates:{}", remote.join(" ")));
    }
}

fn fingerprint_lines(fingerprints: &[Fingerprint], lines: &mut Vec<String>) {
    let mut setup = None;
    for f in fingerprints {
        if is_sdp_token(&f.hash) && is_fingerprint_value(&f.value) {
            lines.push(format!("a=fingerprint:{} {}", f.hash, f.value));
            setup = setup.or(f.setup.as_deref().filter(|s| SETUP_ROLES.contains(s)));
        }
    }
    if let Some(setup) = setup {
        lines.push(format!("a=setup:{setup}"));
    }
}
