//! XEP-0339 sources ⇄ `a=ssrc`, `a=ssrc-group` (RFC 5576) and `a=msid` (RFC 8830).
//!
//! `a=ssrc:<n> name[:value]` lines are grouped per SSRC in order of first
//! appearance, their attributes kept in line order.
//!
//! msid (RFC 8830) comes in two forms: media-level `a=msid:<stream> <track>`
//! (Firefox, current Chrome) and `a=ssrc:<n> msid:…` (older Chrome, which
//! also sends the first). Jingle clients read it from the source (XEP-0339
//! `msid` parameter), so a single `a=msid` is folded into every source that
//! has none; the line is then also kept as an `<sdp-attribute/>`, which tells
//! the writer to use the media-level form only. When the sources already
//! carry it (both forms present) the line is consumed, and the writer emits
//! both forms again whenever every source has the same `msid`. Without
//! sources, with several `a=msid` lines, or with sources that disagree,
//! `a=msid` just stays an `<sdp-attribute/>`.

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
    let mut folded = false;
    for s in &mut rtp.sources {
        if !s.parameters.iter().any(|p| p.name == MSID) {
            s.parameters.push(Parameter::new(MSID, value));
            folded = true;
        }
    }
    if !folded {
        consumed.push(i);
    }
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
    let kept: Vec<&str> = rtp
        .other
        .iter()
        .filter(|e| e.is("sdp-attribute", ns::STOX_SDP) && e.attr("name") == Some(MSID))
        .filter(|e| e.attr("level").is_none())
        .filter_map(|e| e.attr("value"))
        .collect();
    // One kept a=msid line: the media-level form was used, and it says it.
    let media_form = match kept[..] {
        [value] => Some(value),
        _ => None,
    };
    if let (Some(msid), true) = (common_msid(rtp), kept.is_empty()) {
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
        // What folding appends (the only msid, last, never the only
        // parameter) is left to the media-level line.
        let folded = match (s.parameters.split_last(), media_form) {
            (Some((last, rest)), Some(value)) => {
                last.name == MSID
                    && last.value == value
                    && !rest.is_empty()
                    && !rest.iter().any(|p| p.name == MSID)
            }
            _ => false,
        };
        let count = s.parameters.len() - usize::from(folded);
        for p in s.parameters.iter().take(count) {
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
