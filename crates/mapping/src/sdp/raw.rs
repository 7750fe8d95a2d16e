//! A tolerant line model of an SDP body.
//!
//! ezk-sdp-types parses typed attributes, but a whole `SessionDescription`
//! fails on one m= line it cannot express (`m=image … t38`, `TCP/WSS/BFCP *`
//! formats, payload numbers above 255) and it normalises some attributes
//! while reading (ice-options keeps only the first option). A gateway must
//! keep such m= lines to decline them in order, so the body is first split
//! into lines here, and single values are handed to ezk's parsers
//! ([`ezk_sdp_types::Origin`], [`ezk_sdp_types::Connection`],
//! [`ezk_sdp_types::RtpMap`], [`ezk_sdp_types::IceCandidate`]) afterwards.

use super::SdpError;
use bytesstr::BytesStr;
use ezk_sdp_types::{Connection, Origin, TaggedAddress};

/// One `x=value` line (`kind` is the letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub kind: char,
    pub value: String,
}

/// The tokens of an `m=` line, kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MLine {
    pub media: String,
    pub port: u16,
    pub port_count: Option<String>,
    pub proto: String,
    pub fmts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawMedia {
    pub mline: MLine,
    /// Every line after the m= line up to the next one.
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSdp {
    pub origin_username: String,
    /// Session-level lines after v=, o=, s= (c=, b=, t=, a= …).
    pub session: Vec<Line>,
    pub media: Vec<RawMedia>,
}

/// `a=name:value` / `a=name` split, for `a=` lines only.
pub(crate) fn attributes(lines: &[Line]) -> impl Iterator<Item = (&str, Option<&str>)> {
    lines
        .iter()
        .filter(|l| l.kind == 'a')
        .map(|l| match l.value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (l.value.as_str(), None),
        })
}

/// The value of the first `a=name:value` in `lines`.
pub(crate) fn attribute<'a>(lines: &'a [Line], name: &str) -> Option<&'a str> {
    attributes(lines)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v)
}

pub(crate) fn has_flag(lines: &[Line], name: &str) -> bool {
    attributes(lines).any(|(n, v)| n == name && v.is_none())
}

/// The first line of `kind` (`'c'`, `'b'` …).
pub(crate) fn first(lines: &[Line], kind: char) -> Option<&str> {
    lines
        .iter()
        .find(|l| l.kind == kind)
        .map(|l| l.value.as_str())
}

/// A `c=` value → connection address text (`203.0.113.1`, `::1`, or a host
/// name). `None` for anything else, e.g. `999.1.1.1` or trailing junk.
pub(crate) fn connection_address(value: &str) -> Option<String> {
    let src = BytesStr::from(value.trim().to_owned());
    let (rest, c) = Connection::parse(src.as_ref(), &src).ok()?;
    if !rest.is_empty() {
        return None;
    }
    match c.address {
        TaggedAddress::IP4(a) => Some(a.to_string()),
        TaggedAddress::IP6(a) => Some(a.to_string()),
        TaggedAddress::IP4FQDN(n) | TaggedAddress::IP6FQDN(n) => {
            is_host_name(&n).then(|| n.to_string())
        }
    }
}

/// RFC 1123 host name with at least one non-numeric label.
pub(crate) fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    }) && labels
        .iter()
        .any(|l| l.bytes().any(|b| !b.is_ascii_digit()))
}

impl RawSdp {
    pub(crate) fn parse(sdp: &str) -> Result<Self, SdpError> {
        if sdp.len() > MAX_SDP_BYTES {
            return Err(too_many("bytes of SDP", MAX_SDP_BYTES));
        }
        let mut lines = sdp
            .split('\n')
            .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
            .filter(|l| !l.is_empty());
        if lines.next() != Some("v=0") {
            return Err(SdpError::Parse("first line is not v=0".to_owned()));
        }
        let mut origin_username = None;
        let mut has_name = false;
        let mut session = Vec::new();
        let mut media: Vec<RawMedia> = Vec::new();
        for (n, text) in lines.enumerate() {
            if n >= MAX_SDP_LINES {
                return Err(too_many("SDP lines", MAX_SDP_LINES));
            }
            let mut chars = text.chars();
            let (kind, value) = match (chars.next(), chars.next()) {
                (Some(kind), Some('=')) if kind.is_ascii_lowercase() => (kind, chars.as_str()),
                _ => {
                    return Err(SdpError::Parse(format!(
                        "not a type=value line: {:?}",
                        truncate(text)
                    )));
                }
            };
            match kind {
                'v' => return Err(SdpError::Parse("second v= line".to_owned())),
                'o' if media.is_empty() && origin_username.is_none() => {
                    origin_username = Some(parse_origin(value)?);
                }
                's' if media.is_empty() => has_name = true,
                'm' if media.len() == MAX_MEDIA => {
                    return Err(too_many("m= lines", MAX_MEDIA));
                }
                'm' => media.push(RawMedia {
                    mline: parse_mline(value)?,
                    lines: Vec::new(),
                }),
                _ => {
                    let line = Line {
                        kind,
                        value: value.to_owned(),
                    };
                    match media.last_mut() {
                        Some(m) => m.lines.push(line),
                        None => session.push(line),
                    }
                }
            }
        }
        let origin_username =
            origin_username.ok_or_else(|| SdpError::Parse("no o= line".to_owned()))?;
        if !has_name {
            return Err(SdpError::Parse("no s= line".to_owned()));
        }
        Ok(RawSdp {
            origin_username,
            session,
            media,
        })
    }
}

/// Limits on an SDP body from a peer (docs/security.md): past them the
/// body is refused before any mapping work (a 10,000-format offer took
/// seconds to map, attribute look-ups being per format).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
pub const MAX_SDP_LINES: usize = 2048;
pub const MAX_MEDIA: usize = 16;
pub const MAX_FORMATS: usize = 128;

fn too_many(what: &'static str, limit: usize) -> SdpError {
    SdpError::TooMany { what, limit }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn parse_origin(value: &str) -> Result<String, SdpError> {
    let src = BytesStr::from(value.to_owned());
    let bad = || SdpError::Parse(format!("bad o= line: {:?}", truncate(value)));
    let (_, origin): (_, Origin) = Origin::parse(src.as_ref(), &src).map_err(|_| bad())?;
    if origin.username.is_empty() {
        return Err(bad());
    }
    Ok(origin.username.to_string())
}

fn parse_mline(value: &str) -> Result<MLine, SdpError> {
    let bad = |why: &str| SdpError::Parse(format!("bad m= line ({why}): {:?}", truncate(value)));
    let mut tokens = value.split_ascii_whitespace();
    let media = tokens.next().ok_or_else(|| bad("no media"))?.to_owned();
    let port_text = tokens.next().ok_or_else(|| bad("no port"))?;
    let (port, port_count) = match port_text.split_once('/') {
        Some((p, n)) => (p, Some(n.to_owned())),
        None => (port_text, None),
    };
    let port = port.parse::<u16>().map_err(|_| bad("port"))?;
    let proto = tokens.next().ok_or_else(|| bad("no proto"))?.to_owned();
    let fmts: Vec<String> = tokens.take(MAX_FORMATS + 1).map(str::to_owned).collect();
    if fmts.len() > MAX_FORMATS {
        return Err(too_many("formats on one m= line", MAX_FORMATS));
    }
    Ok(MLine {
        media,
        port,
        port_count,
        proto,
        fmts,
    })
}
