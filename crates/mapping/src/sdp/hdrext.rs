//! XEP-0294 header extensions ⇄ `a=extmap` / `a=extmap-allow-mixed` (RFC 8285).
//!
//! The direction after the id is role-aware like the content's (`sendonly`
//! written by the initiator is `senders='initiator'`); no direction is
//! `both`. Session-level `a=extmap` lines apply to every m= line that does not
//! map the same id itself, so they are copied into every content and written
//! back at media level; so is a session-level `a=extmap-allow-mixed`.

use super::check::is_token;
use super::feedback::{parameter_tokens, token_parameters};
use super::raw::{Line, has_flag};
use super::read::attributes_indexed;
use super::{SdpAuthor, direction_for_senders, senders_from_direction};
use crate::jingle::{RtpDescription, RtpHdrext, Senders};

/// RFC 8285: ids 1–14 (one-byte) and 1–255 (two-byte headers) are what SDP
/// can carry; XEP-0294's 4096–4351 (from RFC 5285) are not written.
const IDS: std::ops::RangeInclusive<u16> = 1..=255;

fn parse(value: &str, author: SdpAuthor) -> Option<RtpHdrext> {
    if !value.split_ascii_whitespace().all(is_token) {
        return None;
    }
    let mut tokens = value.split_ascii_whitespace();
    let head = tokens.next()?;
    let (id, direction) = match head.split_once('/') {
        Some((id, direction)) => (id, direction),
        None => (head, "sendrecv"),
    };
    let id = id.parse::<u16>().ok().filter(|id| IDS.contains(id))?;
    Some(RtpHdrext {
        id,
        senders: senders_from_direction(direction, author)?,
        uri: tokens.next()?.to_owned(),
        parameters: token_parameters(tokens),
        other: Vec::new(),
    })
}

/// Reads the media-level `a=extmap`/`a=extmap-allow-mixed` lines, then the
/// session-level ones.
pub(super) fn read(
    lines: &[Line],
    session: &[Line],
    author: SdpAuthor,
    rtp: &mut RtpDescription,
    consumed: &mut Vec<usize>,
) {
    for (i, (name, value)) in attributes_indexed(lines) {
        if name != "extmap" {
            continue;
        }
        let parsed = value.and_then(|v| parse(v, author));
        if let Some(h) = parsed.filter(|h| !rtp.hdrexts.iter().any(|x| x.id == h.id)) {
            rtp.hdrexts.push(h);
            consumed.push(i);
        }
    }
    for (_, (name, value)) in attributes_indexed(session) {
        if name != "extmap" {
            continue;
        }
        let parsed = value.and_then(|v| parse(v, author));
        if let Some(h) = parsed.filter(|h| !rtp.hdrexts.iter().any(|x| x.id == h.id)) {
            rtp.hdrexts.push(h);
        }
    }
    rtp.extmap_allow_mixed =
        has_flag(lines, "extmap-allow-mixed") || has_flag(session, "extmap-allow-mixed");
}

/// The `a=extmap` and `a=extmap-allow-mixed` lines of a description.
pub(super) fn lines(rtp: &RtpDescription, author: SdpAuthor, out: &mut Vec<String>) {
    for h in &rtp.hdrexts {
        let Some(params) = parameter_tokens(&h.parameters) else {
            continue;
        };
        if !IDS.contains(&h.id) || !is_token(&h.uri) {
            continue;
        }
        let mut line = match h.senders {
            Senders::Both => format!("a=extmap:{} {}", h.id, h.uri),
            s => format!(
                "a=extmap:{}/{} {}",
                h.id,
                direction_for_senders(s, author),
                h.uri
            ),
        };
        for p in params {
            line.push(' ');
            line.push_str(&p);
        }
        out.push(line);
    }
    if rtp.extmap_allow_mixed {
        out.push("a=extmap-allow-mixed".to_owned());
    }
}
