//! XEP-0339 sources ⇄ `a=ssrc`, `a=ssrc-group` (RFC 5576) and `a=msid` (RFC 8830).
//!
//! `a=ssrc:<n> name[:value]` lines are grouped per SSRC in order of first
//! appearance, their attributes kept in line order. A media-level
//! `a=msid:<stream> <track>` becomes an `msid` parameter of every source
//! (XEP-0339 §3.1) when there are sources and no source says otherwise;
//! written back, a media-level `a=msid` is added when every source carries
//! the same `msid` parameter. Without sources (or with several `a=msid`
//! lines) `a=msid` stays an `<sdp-attribute/>`.

use super::check::{is_sdp_token, is_text, is_token};
use super::raw::Line;
use super::read::attributes_indexed;
use crate::jingle::{Parameter, RtpDescription, Source, SsrcGroup};
use crate::ns;

const MSID: &str = "msid";

fn ssrc_line(value: &str) -> Option<(u32, Parameter)> {
    let (ssrc, attribute) = value.split_once([' ', '\t'])?;
    let ssrc = ssrc.parse::<u32>().ok()?;
    let attribute = attribute.trim_start();
    let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
    // Only what can be written back as it was.
    let ok = is_token(name) && is_text(value);
    ok.then(|| (ssrc, Parameter::new(name, value)))
}

fn group_line(value: &str) -> Option<SsrcGroup> {
    let mut tokens = value.split_ascii_whitespace();
    let semantics = tokens.next().filter(|s| is_sdp_token(s))?.to_owned();
    let sources = tokens
        .map(|t| t.parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some(SsrcGroup {
        semantics,
        sources,
        other: Vec::new(),
    })
}

/// Reads `a=ssrc`, `a=ssrc-group` and (when it belongs to the sources) `a=msid`.
pub(super) fn read(lines: &[Line], rtp: &mut RtpDescription, consumed: &mut Vec<usize>) {
    let mut msid = Vec::new();
    for (i, (name, value)) in attributes_indexed(lines) {
        let value = value.unwrap_or_default();
        match name {
            "ssrc" => {
                let Some((ssrc, parameter)) = ssrc_line(value) else {
                    continue;
                };
                match rtp.sources.iter_mut().find(|s| s.ssrc == ssrc) {
                    Some(s) => s.parameters.push(parameter),
                    None => rtp.sources.push(Source {
                        ssrc,
                        parameters: vec![parameter],
                        other: Vec::new(),
                    }),
                }
                consumed.push(i);
            }
            "ssrc-group" => {
                if let Some(g) = group_line(value) {
                    rtp.ssrc_groups.push(g);
                    consumed.push(i);
                }
            }
            MSID => msid.push((i, value)),
            _ => {}
        }
    }
    let [(i, value)] = msid[..] else { return };
    if !is_text(value) {
        return;
    }
    let agrees = |s: &Source| {
        s.parameters
            .iter()
            .filter(|p| p.name == MSID)
            .all(|p| p.value == value)
    };
    if rtp.sources.is_empty() || !rtp.sources.iter().all(agrees) {
        return;
    }
    for s in &mut rtp.sources {
        if !s.parameters.iter().any(|p| p.name == MSID) {
            s.parameters.push(Parameter::new(MSID, value));
        }
    }
    consumed.push(i);
}

/// The msid every source carries, if they all carry exactly the same one.
fn common_msid(rtp: &RtpDescription) -> Option<&str> {
    let first = rtp
        .sources
        .first()?
        .parameters
        .iter()
        .find(|p| p.name == MSID)?;
    let same = rtp.sources.iter().all(|s| {
        let mut msids = s.parameters.iter().filter(|p| p.name == MSID).peekable();
        msids.peek().is_some() && msids.all(|p| p.value == first.value)
    });
    same.then_some(first.value.as_str())
}

/// `a=msid`, `a=ssrc-group` and `a=ssrc` lines of a description.
pub(super) fn lines(rtp: &RtpDescription, out: &mut Vec<String>) {
    let kept_msid = rtp
        .other
        .iter()
        .any(|e| e.is("sdp-attribute", ns::STOX_SDP) && e.attr("name") == Some(MSID));
    if let (Some(msid), false) = (common_msid(rtp), kept_msid) {
        out.push(format!("a=msid:{msid}"));
    }
    for g in &rtp.ssrc_groups {
        if !is_sdp_token(&g.semantics) {
            continue;
        }
        let mut line = format!("a=ssrc-group:{}", g.semantics);
        for ssrc in &g.sources {
            line.push_str(&format!(" {ssrc}"));
        }
        out.push(line);
    }
    for s in &rtp.sources {
        for p in &s.parameters {
            if !is_token(&p.name) || p.name.contains(':') || !is_text(&p.value) {
                continue;
            }
            if p.value.is_empty() {
                out.push(format!("a=ssrc:{} {}", s.ssrc, p.name));
            } else {
                out.push(format!("a=ssrc:{} {}:{}", s.ssrc, p.name, p.value));
            }
        }
    }
}
