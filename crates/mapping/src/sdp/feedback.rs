//! XEP-0293 RTCP feedback ⇄ `a=rtcp-fb` (RFC 4585).
//!
//! `a=rtcp-fb:<id> …` belongs to the payload type `<id>`, `a=rtcp-fb:* …` to
//! the whole description; `trr-int N` becomes `<rtcp-fb-trr-int value='N'/>`.
//! After the type, the first token is the `subtype`; further tokens are
//! parameters (`a=b` → name/value, a bare token → name with an empty value).

use super::check::{is_sdp_token, is_token};
use super::raw::Line;
use super::read::attributes_indexed;
use crate::jingle::{Parameter, PayloadType, RtcpFb, RtpDescription};

/// Parameters from SDP tokens (XEP-0293/0294 convention).
pub(super) fn token_parameters<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<Parameter> {
    tokens
        .map(|t| match t.split_once('=') {
            Some((name, value)) => Parameter::new(name, value),
            None => Parameter::new(t, ""),
        })
        .filter(|p| {
            !p.name.is_empty() && is_token(&p.name) && (p.value.is_empty() || is_token(&p.value))
        })
        .collect()
}

/// Parameters back to SDP tokens; `None` when one cannot be written.
pub(super) fn parameter_tokens(parameters: &[Parameter]) -> Option<Vec<String>> {
    parameters
        .iter()
        .map(|p| {
            let name_ok = is_token(&p.name) && !p.name.contains('=');
            match (name_ok, p.value.is_empty()) {
                (false, _) => None,
                (true, true) => Some(p.name.clone()),
                (true, false) => is_token(&p.value).then(|| format!("{}={}", p.name, p.value)),
            }
        })
        .collect()
}

/// Reads every well-formed `a=rtcp-fb` line into `rtp` / its payload types
/// (indices of the lines used go to `consumed`; malformed ones, or lines for
/// a format not on the m= line, are left for the caller to drop).
pub(super) fn read(lines: &[Line], rtp: &mut RtpDescription, consumed: &mut Vec<usize>) {
    for (i, (name, value)) in attributes_indexed(lines) {
        if name != "rtcp-fb" {
            continue;
        }
        let mut tokens = value.unwrap_or_default().split_ascii_whitespace();
        let (Some(target), Some(kind)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        // Only what can be written back (tokens, a valid feedback id).
        if !is_sdp_token(kind)
            || !value
                .unwrap_or_default()
                .split_ascii_whitespace()
                .all(is_token)
        {
            continue;
        }
        let (feedback, trr_int) = if target == "*" {
            (&mut rtp.rtcp_fb, &mut rtp.rtcp_fb_trr_int)
        } else {
            let Some(pt) = target
                .parse::<u8>()
                .ok()
                .and_then(|id| rtp.payload_types.iter_mut().find(|p| p.id == id))
            else {
                continue;
            };
            (&mut pt.rtcp_fb, &mut pt.rtcp_fb_trr_int)
        };
        if kind == "trr-int" {
            let value = tokens.next().and_then(|v| v.parse::<u32>().ok());
            match (value, tokens.next(), &trr_int) {
                (Some(v), None, None) => *trr_int = Some(v),
                _ => continue,
            }
        } else {
            feedback.push(RtcpFb {
                kind: kind.to_owned(),
                subtype: tokens.next().map(str::to_owned),
                parameters: token_parameters(tokens),
                other: Vec::new(),
            });
        }
        consumed.push(i);
    }
}

/// `a=rtcp-fb` lines for one target (`*` or a payload type id).
fn lines_for(target: &str, feedback: &[RtcpFb], trr_int: Option<u32>, out: &mut Vec<String>) {
    for f in feedback {
        let subtype_ok = f.subtype.as_deref().is_none_or(is_token);
        let Some(params) = parameter_tokens(&f.parameters) else {
            continue;
        };
        // A parameter needs a subtype before it, or it would read back as one.
        if !is_sdp_token(&f.kind) || f.kind == "trr-int" || !subtype_ok {
            continue;
        }
        if f.subtype.is_none() && !params.is_empty() {
            continue;
        }
        let mut line = format!("a=rtcp-fb:{target} {}", f.kind);
        for t in f.subtype.iter().chain(params.iter()) {
            line.push(' ');
            line.push_str(t);
        }
        out.push(line);
    }
    if let Some(v) = trr_int {
        out.push(format!("a=rtcp-fb:{target} trr-int {v}"));
    }
}

/// The lines for one payload type.
pub(super) fn payload_type_lines(pt: &PayloadType, out: &mut Vec<String>) {
    lines_for(&pt.id.to_string(), &pt.rtcp_fb, pt.rtcp_fb_trr_int, out);
}

/// The `a=rtcp-fb:*` lines of a description.
pub(super) fn description_lines(rtp: &RtpDescription, out: &mut Vec<String>) {
    lines_for("*", &rtp.rtcp_fb, rtp.rtcp_fb_trr_int, out);
}
