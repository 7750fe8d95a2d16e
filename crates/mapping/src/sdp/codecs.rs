//! Payload-type facts: the RFC 3551 static table and fmtp tokenising.

use crate::jingle::Parameter;

/// RFC 3551 §6 static payload types: (encoding name, clock rate, channels).
pub fn static_payload_type(id: u8) -> Option<(&'static str, u32, Option<u8>)> {
    Some(match id {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        25 => ("CelB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("nv", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

/// STOX: split an fmtp parameter string on `;` or `,` (optional spaces);
/// `name=value` → parameter, a bare value → parameter with `name=''`.
pub fn parse_fmtp(params: &str) -> Vec<Parameter> {
    params
        .split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((name, value)) => Parameter::new(name.trim(), value.trim()),
            None => Parameter::new("", t),
        })
        .collect()
}

/// STOX: join parameters with `;` (a nameless one as its bare value).
/// Consecutive nameless values are joined with `,` instead, so that a list
/// such as RFC 4733's `0-11,13-15` (tokenised into two nameless parameters)
/// is written back as it was.
pub fn format_fmtp(params: &[Parameter]) -> String {
    let mut out = String::new();
    let mut previous_nameless = false;
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            out.push(if previous_nameless && p.name.is_empty() {
                ','
            } else {
                ';'
            });
        }
        if p.name.is_empty() {
            out.push_str(&p.value);
        } else {
            out.push_str(&p.name);
            out.push('=');
            out.push_str(&p.value);
        }
        previous_nameless = p.name.is_empty();
    }
    out
}

/// The fmtp written for a `telephone-event` payload type that has no
/// parameters in Jingle: the implicit event list made explicit, in RFC 4733
/// syntax (`a=fmtp:101 0-15`). Reading exactly this list back gives "no
/// parameters", so SDP → Jingle → SDP is stable.
pub const TELEPHONE_EVENT_DEFAULT_FMTP: &str = "0-15";
