//! SDP → Jingle contents.

use super::raw::{Line, RawMedia, RawSdp, attribute, attributes, has_flag};
use super::*;
use super::{check, crypto, feedback, groups, hdrext, sources, transport};
use crate::jingle::{Bandwidth, Creator, Description, PayloadType, RtpDescription};
use crate::ns;
use crate::xml::element;
use bytesstr::BytesStr;
use minidom::Element;

pub(super) fn offer(sdp: &RawSdp, author: SdpAuthor) -> Result<MappedSdp, SdpError> {
    let names = content_names(sdp);
    let mut contents = Vec::new();
    let mut declined = Vec::new();
    let mut mids = Vec::new();
    for (index, (m, name)) in sdp.media.iter().zip(names).enumerate() {
        let content =
            name.and_then(|name| media_to_content(sdp, index, m, name, Creator::Initiator, author));
        match content {
            Some(c) => {
                push_mid(&mut mids, m, &c);
                contents.push(c);
            }
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
        groups: groups::read(&sdp.session, &mids),
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
    let mut mids = Vec::new();
    for (index, (m, offered)) in sdp.media.iter().zip(written).enumerate() {
        let content = (m.mline.port != 0 && is_mappable(m))
            .then(|| media_to_content(sdp, index, m, offered.name.clone(), offered.creator, author))
            .flatten();
        match content {
            Some(c) => {
                push_mid(&mut mids, m, &c);
                contents.push(c);
            }
            None => declined.push(index),
        }
    }
    if contents.is_empty() {
        return Err(SdpError::NothingMappable(
            "the answer rejects every m= line".to_owned(),
        ));
    }
    Ok(MappedSdp {
        groups: groups::read(&sdp.session, &mids),
        contents,
        origin_username: sdp.origin_username.clone(),
        declined,
    })
}

/// Remembers which content the m= section's `a=mid` became.
fn push_mid(mids: &mut Vec<(String, String)>, m: &RawMedia, c: &Content) {
    if let Some(mid) = attribute(&m.lines, "mid")
        .map(str::trim)
        .filter(|mid| check::is_token(mid))
    {
        mids.push((mid.to_owned(), c.name.clone()));
    }
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
pub(super) fn attributes_indexed(
    lines: &[Line],
) -> impl Iterator<Item = (usize, (&str, Option<&str>))> {
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

/// Attributes read by a feature module; an instance left unconsumed is
/// malformed (or for a format not on the m= line) and dropped on purpose:
/// carrying it verbatim would hand the other side SDP that strict parsers
/// reject.
const MODELLED: &[&str] = &[
    "candidate",
    "remote-candidates",
    "ptime",
    "maxptime",
    "rtpmap",
    "fmtp",
    "rtcp-fb",
    "extmap",
    "ssrc",
    "ssrc-group",
    "crypto",
];

/// Attributes used whole wherever they are (every instance is consumed).
const HANDLED: &[&str] = &[
    "rtcp-mux",
    "mid",
    "ice-ufrag",
    "ice-pwd",
    "fingerprint",
    "setup",
    "extmap-allow-mixed",
];

/// Session-level attributes mapped into every content (or into the groups)
/// rather than kept as `<sdp-attribute level='session'/>`.
const SESSION_MAPPED: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "fingerprint",
    "setup",
    "extmap",
    "extmap-allow-mixed",
    "group",
];

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
    feedback::read(lines, &mut rtp, &mut consumed);
    hdrext::read(lines, session, author, &mut rtp, &mut consumed);
    sources::read(lines, &mut rtp, &mut consumed);
    rtp.encryption = crypto::read(lines, &m.mline.proto, &mut consumed);
    let direction = direction(lines)
        .or_else(|| direction(session))
        .unwrap_or("sendrecv");
    let senders = senders_from_direction(direction, author).unwrap_or_default();
    let transport = transport::read(session, index, m, rtp.rtcp_mux, &mut consumed)?;

    for (i, (n, v)) in attributes_indexed(lines) {
        let direction = v.is_none() && DIRECTIONS.contains(&n);
        if consumed.contains(&i) || direction || HANDLED.contains(&n) || MODELLED.contains(&n) {
            continue;
        }
        if check::is_token(n) && v.is_none_or(|v| check::is_text(v) && check::ezk_accepts(n, v)) {
            rtp.other.push(sdp_attribute(n, v, false));
        }
    }
    for (n, v) in attributes(session) {
        let direction = v.is_none() && DIRECTIONS.contains(&n);
        if direction || SESSION_MAPPED.contains(&n) || MODELLED.contains(&n) {
            continue;
        }
        if check::is_token(n) && v.is_none_or(|v| check::is_text(v) && check::ezk_accepts(n, v)) {
            rtp.other.push(sdp_attribute(n, v, true));
        }
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
