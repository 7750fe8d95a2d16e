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
pub fn format_fmtp(params: &[Parameter]) -> String {
    params
        .iter()
        .map(|p| {
            if p.name.is_empty() {
                p.value.clone()
            } else {
                format!("{}={}", p.name, p.value)
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The fmtp written for a `telephone-event` payload type that has no
/// parameters in Jingle (STOX: make the implicit event list explicit).
pub const TELEPHONE_EVENT_DEFAULT_FMTP: &str = "events=0-15";
