//! SDP → Jingle contents.

use super::raw::{
    Line, RawMedia, RawSdp, attribute, attributes, connection_address, first, has_flag,
};
use super::*;
use crate::jingle::{
    Bandwidth, Creator, Description, Fingerprint, IceCandidate, IceUdpTransport, PayloadType,
    RawUdpCandidate, RawUdpTransport, RtpDescription, Transport,
};
use crate::ns;
use crate::xml::element;
use bytesstr::BytesStr;
use minidom::Element;

pub(super) fn offer(sdp: &RawSdp, author: SdpAuthor) -> Result<MappedSdp, SdpError> {
    let names = content_names(sdp);
    let mut contents = Vec::new();
    let mut declined = Vec::new();
    for (index, (m, name)) in sdp.media.iter().zip(names).enumerate() {
        let content =
            name.and_then(|name| media_to_content(sdp, index, m, name, Creator::Initiator, author));
        match content {
            Some(c) => contents.push(c),
            None => declined.push(index),
        }
    }
    if contents.is_empty() {
        return Err(SdpError::NothingMappable(format!(
            "none of the {} m= line(s) is audio or video over RTP with an address",
            sdp.media.len()
        )));
    }
    Ok(MappedSdp {
        contents,
        origin_username: sdp.origin_username.clone(),
        declined,
    })
}

pub(super) fn answer(
    sdp: &RawSdp,
    offered: &[Content],
    author: SdpAuthor,
) -> Result<MappedSdp, SdpError> {
    let written: Vec<&Content> = offered
        .iter()
        .filter(|c| super::write::is_writable(c))
        .collect();
    if sdp.media.len() != written.len() {
        return Err(SdpError::AnswerMismatch(format!(
            "{} m= line(s) in the answer for {} offered",
            sdp.media.len(),
            written.len()
        )));
    }
    let mut contents = Vec::new();
    let mut declined = Vec::new();
    for (index, (m, offered)) in sdp.media.iter().zip(written).enumerate() {
        let content = (m.mline.port != 0 && is_mappable(m))
            .then(|| media_to_content(sdp, index, m, offered.name.clone(), offered.creator, author))
            .flatten();
        match content {
            Some(c) => contents.push(c),
            None => declined.push(index),
        }
    }
    if contents.is_empty() {
        return Err(SdpError::NothingMappable(
            "the answer rejects every m= line".to_owned(),
        ));
    }
    Ok(MappedSdp {
        contents,
        origin_username: sdp.origin_username.clone(),
        declined,
    })
}

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

fn direction(lines: &[Line]) -> Option<&str> {
    attributes(lines)
        .find(|(n, v)| v.is_none() && DIRECTIONS.contains(n))
        .map(|(n, _)| n)
}

/// `<sdp-attribute xmlns='urn:xmpp:stox:sdp:0' name value [level='session']/>`.
pub(crate) fn sdp_attribute(name: &str, value: Option<&str>, session: bool) -> Element {
    let mut el = element("sdp-attribute", ns::STOX_SDP, &[("name", name)]);
    if let Some(v) = value {
        crate::xml::set_attr(&mut el, "value", v);
    }
    if session {
        crate::xml::set_attr(&mut el, "level", "session");
    }
    el
}

fn rtpmap(value: &str) -> Option<ezk_sdp_types::RtpMap> {
    let src = BytesStr::from(value.trim().to_owned());
    ezk_sdp_types::RtpMap::parse(src.as_ref(), &src)
        .ok()
        .map(|(_, r)| r)
}

/// `a=fmtp:<id> <params>` → (id, params).
fn fmtp(value: &str) -> Option<(u8, &str)> {
    let value = value.trim_start();
    let (id, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    Some((id.parse().ok()?, params.trim()))
}

fn payload_types(ids: &[u8], lines: &[Line], consumed: &mut Vec<usize>) -> Vec<PayloadType> {
    let ptime = attribute(lines, "ptime").and_then(|v| v.trim().parse::<u32>().ok());
    let maxptime = attribute(lines, "maxptime").and_then(|v| v.trim().parse::<u32>().ok());
    let mut pts: Vec<PayloadType> = ids
        .iter()
        .map(|&id| {
            let mut pt = PayloadType {
                id,
                ptime,
                maxptime,
                ..PayloadType::default()
            };
            if let Some((name, clockrate, channels)) = static_payload_type(id) {
                pt.name = Some(name.to_owned());
                pt.clockrate = Some(clockrate);
                pt.channels = channels;
            }
            pt
        })
        .collect();
    for (i, (name, value)) in attributes_indexed(lines) {
        let Some(value) = value else { continue };
        match name {
            "rtpmap" => {
                if let Some(r) = rtpmap(value) {
                    let mut used = false;
                    for pt in pts.iter_mut().filter(|pt| pt.id == r.payload) {
                        pt.name = Some(r.encoding.to_string());
                        pt.clockrate = Some(r.clock_rate);
                        pt.channels = r.params.as_ref().and_then(|p| p.trim().parse().ok());
                        used = true;
                    }
                    if used {
                        consumed.push(i);
                    }
                }
            }
            "fmtp" => {
                if let Some((id, params)) = fmtp(value) {
                    let mut used = false;
                    for pt in pts.iter_mut().filter(|pt| pt.id == id) {
                        pt.parameters = parse_fmtp(params);
                        used = true;
                    }
                    if used {
                        consumed.push(i);
                    }
                }
            }
            "ptime" if ptime.is_some() => consumed.push(i),
            "maxptime" if maxptime.is_some() => consumed.push(i),
            _ => {}
        }
    }
    // STOX writes the implicit telephone-event list explicitly; reading it
    // back as "no parameters" keeps SDP → Jingle → SDP stable.
    for pt in &mut pts {
        let is_te = pt
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("telephone-event"));
        if is_te && pt.parameters == parse_fmtp(TELEPHONE_EVENT_DEFAULT_FMTP) {
            pt.parameters.clear();
        }
    }
    pts
}

/// `a=` lines with their index in `lines`.
fn attributes_indexed(lines: &[Line]) -> impl Iterator<Item = (usize, (&str, Option<&str>))> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == 'a')
        .map(|(i, l)| {
            let split = match l.value.split_once(':') {
                Some((n, v)) => (n, Some(v)),
                None => (l.value.as_str(), None),
            };
            (i, split)
        })
}

fn bandwidths(lines: &[Line]) -> Vec<Bandwidth> {
    lines
        .iter()
        .filter(|l| l.kind == 'b')
        .filter_map(|l| {
            let (kind, value) = l.value.split_once(':')?;
            Some(Bandwidth {
                kind: kind.trim().to_owned(),
                value: value.trim().parse().ok()?,
            })
        })
        .filter(|b| !b.kind.is_empty())
        .collect()
}

fn ice_candidate(value: &str, id: String) -> Option<IceCandidate> {
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

fn fingerprints(media: &[Line], session: &[Line]) -> Vec<Fingerprint> {
    let from = |lines: &[Line]| -> Vec<Fingerprint> {
        let setup = attribute(lines, "setup").map(|s| s.trim().to_owned());
        attributes(lines)
            .filter(|(n, _)| *n == "fingerprint")
            .filter_map(|(_, v)| {
                let (hash, value) = v?.trim().split_once([' ', '\t'])?;
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
    let setup = attribute(media, "setup").or_else(|| attribute(session, "setup"));
    for f in &mut list {
        if f.setup.is_none() {
            f.setup = setup.map(|s| s.trim().to_owned());
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

/// One mappable m= section → a content; `None` when it lacks what a
/// transport needs (no connection address without ICE).
fn media_to_content(
    sdp: &RawSdp,
    index: usize,
    m: &RawMedia,
    name: String,
    creator: Creator,
    author: SdpAuthor,
) -> Option<Content> {
    let ids = rtp_fmts(&m.mline)?;
    let lines = &m.lines;
    let session = &sdp.session;
    let mut consumed = Vec::new();
    let mut rtp = RtpDescription {
        media: m.mline.media.clone(),
        payload_types: payload_types(&ids, lines, &mut consumed),
        rtcp_mux: has_flag(lines, "rtcp-mux"),
        ..RtpDescription::default()
    };
    let mut bw = bandwidths(lines).into_iter();
    rtp.bandwidth = bw.next();
    for extra in bw {
        let mut el = element(
            "bandwidth",
            ns::JINGLE_RTP,
            &[("type", extra.kind.as_str())],
        );
        el.append_text(extra.value.to_string());
        rtp.other.push(el);
    }
    let direction = direction(lines)
        .or_else(|| direction(session))
        .unwrap_or("sendrecv");
    let senders = senders_from_direction(direction, author).unwrap_or_default();

    let mut handled = vec![
        "rtcp-mux",
        "mid",
        "ice-ufrag",
        "ice-pwd",
        "fingerprint",
        "setup",
    ];
    handled.extend(DIRECTIONS);
    let fingerprints = fingerprints(lines, session);
    let ufrag = attribute(lines, "ice-ufrag").or_else(|| attribute(session, "ice-ufrag"));
    let transport = if let Some(ufrag) = ufrag {
        let mut t = IceUdpTransport {
            ufrag: Some(ufrag.trim().to_owned()),
            pwd: attribute(lines, "ice-pwd")
                .or_else(|| attribute(session, "ice-pwd"))
                .map(|p| p.trim().to_owned()),
            fingerprints,
            ..IceUdpTransport::default()
        };
        for (i, (n, v)) in attributes_indexed(lines) {
            if n != "candidate" {
                continue;
            }
            let id = format!("m{index}c{}", t.candidates.len());
            if let Some(c) = v.and_then(|v| ice_candidate(v, id)) {
                t.candidates.push(c);
                consumed.push(i);
            }
        }
        Transport::IceUdp(t)
    } else {
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
        if !rtp.rtcp_mux {
            let rtcp = attribute(lines, "rtcp").and_then(|v| {
                let v = v.trim();
                let (p, rest) = v.split_once(' ').unwrap_or((v, ""));
                let addr = connection_address(rest.trim()).unwrap_or_else(|| ip.clone());
                Some((p.parse::<u16>().ok()?, addr))
            });
            if rtcp.is_some() {
                handled.push("rtcp");
            }
            let rtcp = rtcp.or_else(|| Some((port.checked_add(1)?, ip.clone())));
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
        Transport::RawUdp(t)
    };

    // Attributes we model but could not use (a candidate that does not
    // parse, an rtpmap/fmtp for a format not on the m= line, a non-numeric
    // ptime …) are dropped on purpose: carrying them verbatim would hand the
    // other side SDP that strict parsers reject.
    const MODELLED: &[&str] = &["candidate", "ptime", "maxptime", "rtpmap", "fmtp", "rtcp"];
    for (i, (n, v)) in attributes_indexed(lines) {
        if consumed.contains(&i) || handled.contains(&n) || MODELLED.contains(&n) {
            continue;
        }
        rtp.other.push(sdp_attribute(n, v, false));
    }
    for (n, v) in attributes(session) {
        let known = ["ice-ufrag", "ice-pwd", "fingerprint", "setup"];
        if known.contains(&n) || MODELLED.contains(&n) || (v.is_none() && DIRECTIONS.contains(&n)) {
            continue;
        }
        rtp.other.push(sdp_attribute(n, v, true));
    }

    Some(Content {
        creator,
        name,
        senders,
        disposition: None,
        description: Some(Description::Rtp(rtp)),
        transport: Some(transport),
        other: Vec::new(),
    })
}
