//! What a request must be before anything acts on it (RFC 3261 §8.2,
//! §18.3, RFC 4475): a request that fails here is answered with the status
//! due and starts no transaction and no call.

use crate::msg::{self, HeaderName, Message, Method, Request};

/// Why a request is refused, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
    /// Extra header lines for the answer (`Unsupported: …`).
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}

/// RFC 3261 §8.2 / RFC 4475 checks on a request that parsed. The only
/// option tag honoured in a `Require` is `timer` (RFC 4028), when session
/// timers are on: the gateway sends no reliable provisionals.
pub fn request(req: &Request, session_timers: bool) -> Option<Refusal> {
    let message = Message::Request(req.clone());
    if let Some((status, finding)) = msg::findings(&message).into_iter().next() {
        let reason = if status == 505 {
            "Version Not Supported".to_owned()
        } else {
            format!("Bad Request ({})", describe(&finding))
        };
        return Some(Refusal::new(status, reason));
    }
    let headers = &req.headers;
    match msg::call_id(headers) {
        Some(id) if msg::is_call_id(&id) => {}
        _ => {
            return Some(Refusal::new(
                400,
                "Bad Request (invalid Call-ID: RFC 3261 §25.1 word[@word])",
            ));
        }
    }
    if headers.iter().any(|h| has_bare_control(&h.value())) {
        return Some(Refusal::new(
            400,
            "Bad Request (control character in a header)",
        ));
    }
    if let Some(date) = msg::value(headers, &HeaderName::Date)
        && !is_rfc1123_date(&date)
    {
        return Some(Refusal::new(
            400,
            "Bad Request (malformed Date, RFC 3261 §20.17)",
        ));
    }
    for contact in headers.get_all(&HeaderName::Contact) {
        let raw = contact.value();
        let text = String::from_utf8_lossy(&raw);
        if text.trim() != "*" && msg::Address::parse_list(&raw, "Contact").is_err() {
            return Some(Refusal::new(400, "Bad Request (malformed Contact)"));
        }
        // RFC 3261 §20: a URI with `?` (headers), `,` or `;` must be in
        // angle brackets; in addr-spec form a `?` cannot be anything else.
        if !text.contains('<') && text.contains('?') {
            return Some(Refusal::new(
                400,
                "Bad Request (Contact URI with headers outside <>)",
            ));
        }
    }
    if req.method == Method::Ack {
        return None;
    }
    if msg::cseq(headers).is_none() {
        return Some(Refusal::new(400, "Bad Request (malformed CSeq)"));
    }
    if let Some(Ok(mf)) = headers.typed::<msg::MaxForwards>()
        && mf.0 == 0
        && req.method != Method::Options
    {
        return Some(Refusal::new(483, "Too Many Hops"));
    }
    if let msg::Scheme::Other(scheme) = req.uri.scheme() {
        let scheme = String::from_utf8_lossy(scheme).to_ascii_lowercase();
        return Some(Refusal::new(
            416,
            format!("Unsupported URI Scheme ({scheme})"),
        ));
    }
    if req.method != Method::Cancel {
        let unsupported: Vec<String> = msg::tokens(headers, &HeaderName::Require)
            .into_iter()
            .filter(|t| !(session_timers && t == "timer"))
            .collect();
        if !unsupported.is_empty() {
            let mut r = Refusal::new(420, "Bad Extension");
            r.headers.push(("Unsupported", unsupported.join(", ")));
            return Some(r);
        }
    }
    None
}

/// A control character (other than HTAB) that is not the second half of a
/// quoted-pair (`\` + any octet but CR/LF, RFC 3261 §25.1: RFC 4475
/// §3.1.1.2 quotes NUL, BEL and DEL in a display name that way).
fn has_bare_control(value: &[u8]) -> bool {
    let mut escaped = false;
    for &b in value {
        let control = (b < 0x20 && b != b'\t') || b == 0x7f;
        if control && !(escaped && b != b'\r' && b != b'\n') {
            return true;
        }
        escaped = !escaped && b == b'\\';
    }
    false
}

fn describe(finding: &str) -> String {
    // `MissingRequiredHeader("To")` → `missing To`
    let (kind, arg) = match finding.split_once('(') {
        Some((k, a)) => (k, a.trim_end_matches(')').trim_matches('"')),
        None => (finding, ""),
    };
    let what = match kind {
        "MissingRequiredHeader" => "missing",
        "MalformedRequiredHeader" => "malformed",
        "RepeatedSingleValueHeader" => "repeated",
        "CSeqMethodMismatch" => return "CSeq method differs from the request line".into(),
        "RequestUriHasHeaders" => return "Request-URI with headers".into(),
        other => return other.to_owned(),
    };
    format!("{what} {arg}")
}

/// RFC 3261 §20.17 / RFC 1123: `Sat, 13 Nov 2010 23:29:00 GMT`.
fn is_rfc1123_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [day, dom, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let hms: Vec<&str> = time.split(':').collect();
    day.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
        && digits(dom, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && hms.len() == 3
        && hms.iter().all(|p| digits(p, 2))
        && *zone == "GMT"
}

/// A `400 Bad Request` for a request that does not even parse, built from
/// the header lines an answer needs (Via, From, To, Call-ID, CSeq) when they
/// can be found (RFC 3261 §18.3 "SHOULD generate a 400"). `None` when the
/// bytes are not a request, are an ACK, or have no Via to answer along.
pub fn salvage_400(data: &[u8], why: &str) -> Option<Vec<u8>> {
    salvage(data, 400, why)
}

/// [`salvage_400`] with another status: 400, or 413 for a body over the
/// limit (RFC 3261 §21.4.11).
pub fn salvage(data: &[u8], status: u16, why: &str) -> Option<Vec<u8>> {
    let head_end = find(data, b"\r\n\r\n").unwrap_or(data.len());
    let head = std::str::from_utf8(data.get(..head_end)?).ok()?;
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    if first.starts_with("SIP/") || first.is_empty() {
        return None; // a response, or nothing: never answered
    }
    let method = first.split(' ').next().unwrap_or("");
    if method.eq_ignore_ascii_case("ACK") || !msg::is_token(method) {
        return None;
    }
    // Unfold continuation lines.
    let mut fields: Vec<String> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    let wanted = |name: &str| {
        let n = name.trim().to_ascii_lowercase();
        matches!(
            n.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        )
    };
    let mut out = String::new();
    let reason = why.replace(['\r', '\n'], " ");
    let phrase = match status {
        413 => "Request Entity Too Large",
        _ => "Bad Request",
    };
    out.push_str(&format!("SIP/2.0 {status} {phrase} ({reason})\r\n"));
    let mut has_via = false;
    for field in &fields {
        let Some((name, value)) = field.split_once(':') else {
            continue;
        };
        if !wanted(name) || value.chars().any(char::is_control) {
            continue;
        }
        has_via |= matches!(name.trim().to_ascii_lowercase().as_str(), "via" | "v");
        out.push_str(name.trim());
        out.push_str(": ");
        out.push_str(value.trim());
        out.push_str("\r\n");
    }
    if !has_via {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_20_17_dates() {
        assert!(is_rfc1123_date("Sat, 13 Nov 2010 23:29:00 GMT"));
        for bad in [
            "Fri, 01 Jan 2010 16:00:00 EST",
            "13 Nov 2010 23:29:00 GMT",
            "Sat, 13 Nov 2010 23:29 GMT",
            "",
        ] {
            assert!(!is_rfc1123_date(bad), "{bad}");
        }
    }

    #[test]
    fn rfc3261_18_3_unparsable_requests_get_400_from_their_own_header_lines() {
        let data = b"INVITE <sip:a@b> SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nX-Other: y\r\n\r\n";
        let out = String::from_utf8(salvage_400(data, "bad Request-URI").expect("answered"))
            .expect("utf-8");
        assert!(out.starts_with("SIP/2.0 400 Bad Request (bad Request-URI)\r\n"));
        assert!(out.contains("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
        assert!(out.contains("t: <sip:a@b>\r\n"));
        assert!(!out.contains("X-Other"));
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
        // Responses, ACKs and requests without a Via are never answered.
        assert!(salvage_400(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", "x").is_none());
        assert!(salvage_400(b"ACK sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "x").is_none());
        assert!(salvage_400(b"INVITE sip:a@b SIP/2.0\r\nTo: x\r\n\r\n", "x").is_none());
        assert!(salvage_400(&[0xff, 0xfe, 0x00], "x").is_none());
    }
}
