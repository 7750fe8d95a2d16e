//! Jingle contents → SDP text (RFC 8866, CRLF line ends).
//!
//! Every value taken from Jingle is checked before it is written: a value
//! that would break the SDP line structure (spaces in a token, CR/LF) is left
//! out rather than written, so XML input can never inject SDP lines; and
//! every `a=` line must pass ezk-sdp-types' parser for that attribute
//! ([`check::is_writable_attribute`]).

use super::check::{self, is_sdp_token, is_text, is_token};
use super::raw::{MLine, RawMedia, RawSdp};
use super::*;
use super::{crypto, feedback, groups, hdrext, sources, transport};
use crate::jingle::{Description, Group, RtpDescription, Transport};
use crate::ns;
use minidom::Element;

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
    groups: &[Group],
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
    let mids: Vec<(String, String)> = written
        .iter()
        .filter(|c| is_token(&c.name))
        .map(|c| (c.name.clone(), c.name.clone()))
        .collect();
    let groups = groups::lines(groups, &mids);
    Ok(session(origin, &groups, &written, &sections))
}

pub(super) fn answer(
    contents: &[Content],
    groups: &[Group],
    author: SdpAuthor,
    origin: &SdpOrigin,
    offer: &RawSdp,
) -> Result<String, SdpError> {
    let names = content_names(offer);
    let mut accepted = Vec::new();
    let mut sections = Vec::new();
    let mut mids = Vec::new();
    for (m, name) in offer.media.iter().zip(names) {
        let mid = raw::attribute(&m.lines, "mid")
            .map(str::trim)
            .filter(|mid| is_token(mid));
        let content =
            name.and_then(|name| contents.iter().find(|c| c.name == name && is_writable(c)));
        match content {
            Some(c) => {
                sections.push(media_section(c, author, Some(&m.mline.proto), mid));
                if let Some(mid) = mid {
                    mids.push((c.name.clone(), mid.to_owned()));
                }
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
    let groups = groups::lines(groups, &mids);
    Ok(session(origin, &groups, &accepted, &sections))
}

/// A written media section and the address of its c= line.
struct Section {
    text: String,
    address: String,
}

fn session(
    origin: &SdpOrigin,
    groups: &[String],
    contents: &[&Content],
    sections: &[Section],
) -> String {
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
    for line in groups.iter().filter(|l| check::is_writable_attribute(l)) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    // Session-level attributes are copied into every content: written
    // once, as often as the content carrying them most often has them.
    let mut seen: Vec<String> = Vec::new();
    for c in contents {
        let Some(rtp) = c.rtp() else { continue };
        let lines = sdp_attributes(&rtp.other, true);
        for (i, line) in lines.iter().enumerate() {
            let wanted = lines[..=i].iter().filter(|l| *l == line).count();
            let have = seen.iter().filter(|l| *l == line).count();
            if have < wanted && check::is_writable_attribute(line) {
                out.push_str(line);
                out.push_str("\r\n");
                seen.push(line.clone());
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

/// The profile for an offer, from the lines actually written: RTCP
/// feedback adds `F`, a required SDES `<encryption/>` with `a=crypto` lines
/// gives `SAVP`, a DTLS fingerprint `UDP/TLS/RTP/SAVPF`.
fn profile(rtp: &RtpDescription, dtls: bool, lines: &[String]) -> &'static str {
    let feedback = lines.iter().any(|l| l.starts_with("a=rtcp-fb:"));
    let sdes = rtp.encryption.as_ref().is_some_and(|e| e.required)
        && lines.iter().any(|l| l.starts_with("a=crypto:"));
    match (dtls, sdes, feedback) {
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
    let fingerprints = transport::dtls_fingerprints(transport);
    let (ip, port) = transport::default_candidate(transport);
    let address = transport::connection(transport, &ip);
    let mut lines = bandwidth_lines(rtp);
    payload_type_lines(rtp, &mut lines);
    if let Some(ptime) = rtp.payload_types.iter().find_map(|p| p.ptime) {
        lines.push(format!("a=ptime:{ptime}"));
    }
    if let Some(maxptime) = rtp.payload_types.iter().find_map(|p| p.maxptime) {
        lines.push(format!("a=maxptime:{maxptime}"));
    }
    feedback::description_lines(rtp, &mut lines);
    if rtp.rtcp_mux {
        lines.push("a=rtcp-mux".to_owned());
    }
    lines.push(format!("a={}", direction_for_senders(c.senders, author)));
    if let Some(mid) = mid {
        lines.push(format!("a=mid:{mid}"));
    }
    transport::lines(transport, rtp.rtcp_mux, &fingerprints, &mut lines);
    hdrext::lines(rtp, author, &mut lines);
    crypto::lines(rtp.encryption.as_ref(), &mut lines);
    sources::lines(rtp, &mut lines);
    lines.extend(sdp_attributes(&rtp.other, false));
    lines.retain(|l| check::is_writable_attribute(l));

    let has_dtls = lines.iter().any(|l| l.starts_with("a=fingerprint:"));
    let proto = proto.unwrap_or_else(|| profile(rtp, has_dtls, &lines));
    let fmts: Vec<String> = rtp.payload_types.iter().map(|p| p.id.to_string()).collect();
    let mut text = format!(
        "m={} {port} {proto} {}\r\nc={address}\r\n",
        rtp.media,
        fmts.join(" ")
    );
    for line in lines {
        text.push_str(&line);
        text.push_str("\r\n");
    }
    Section { text, address }
}

/// `b=` lines: the modelled bandwidth, then further ones kept in `other`.
fn bandwidth_lines(rtp: &RtpDescription) -> Vec<String> {
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
    bandwidths
        .into_iter()
        .filter(|(kind, value)| {
            is_token(kind) && !kind.contains(':') && value.parse::<u32>().is_ok()
        })
        .map(|(kind, value)| format!("b={kind}:{value}"))
        .collect()
}

/// `a=rtpmap`, `a=fmtp` and `a=rtcp-fb:<id>` for every payload type.
fn payload_type_lines(rtp: &RtpDescription, lines: &mut Vec<String>) {
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
        let is_te = name.is_some_and(|n| n.eq_ignore_ascii_case("telephone-event"));
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
            // Some Jingle clients name the RFC 4733 event list `events`;
            // SDP carries it bare (`a=fmtp:101 0-15`).
            .map(|p| {
                if is_te && p.name == "events" {
                    crate::jingle::Parameter::new("", &p.value)
                } else {
                    p.clone()
                }
            })
            .collect();
        if !params.is_empty() {
            lines.push(format!("a=fmtp:{} {}", pt.id, format_fmtp(&params)));
        } else if is_te {
            lines.push(format!("a=fmtp:{} {TELEPHONE_EVENT_DEFAULT_FMTP}", pt.id));
        }
        feedback::payload_type_lines(pt, lines);
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
