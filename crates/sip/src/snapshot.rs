//! The text form of a confirmed dialog, for the store.
//!
//! rsipstack's `DialogSnapshot` has no serialisation of its own, so a
//! confirmed dialog is written as one `key: value` line per field after a
//! version line. Header-like fields (From, To, Contact, Route) are SIP
//! header values, URIs are in their SIP form; both go through rsipstack's
//! parsers on the way back. Example:
//!
//! ```text
//! stox-sip-dialog/1
//! role: uac
//! call-id: 7f3a@sip.example.com
//! local-tag: a1b2
//! remote-tag: c3d4
//! from: <sip:juliet@example.com>;tag=a1b2
//! to: <sip:romeo@example.net>;tag=c3d4
//! local-cseq: 3
//! remote-cseq: 0
//! local-contact: sip:192.0.2.1:5060;transport=tcp
//! remote-target: sip:romeo@198.51.100.7:5060;transport=tcp
//! remote-contact: <sip:romeo@198.51.100.7:5060;transport=tcp>
//! route: <sip:proxy.example.net;lr>
//! 100rel: yes
//! session-id-local: 0123456789abcdef0123456789abcdef
//! session-id-remote: fedcba9876543210fedcba9876543210
//! ```
//!
//! `role`, `call-id`, `local-tag`, `remote-tag`, `from`, `to`, `local-cseq`,
//! `remote-cseq`, `remote-target` and `100rel` appear exactly once;
//! `local-contact`, `remote-contact` and the two `session-id-*` lines at most
//! once (`session-id-remote` only with `session-id-local`); `route` once per
//! route-set entry, in order. Lines end in LF (a CR before it is tolerated);
//! a final LF is optional. Anything else — an unknown key or version, a
//! duplicate, a value that does not parse, tags that disagree with From/To,
//! a CSeq of 2^31 or more (RFC 3261 §8.1.1.5) — is a [`SnapshotError`].
//! Decoding never panics on any input.

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogSnapshot, DialogSnapshotState, SessionIdState};
use rsipstack::sip::headers::untyped::{Contact, Route};
use rsipstack::sip::typed::{From, To};
use rsipstack::sip::{Param, Scheme, Uri};
use rsipstack::transaction::key::TransactionRole;
use std::fmt::Write as _;

/// The first line of every snapshot of this format version.
pub(crate) const MAGIC: &str = "stox-sip-dialog";
pub(crate) const VERSION: u32 = 1;

/// RFC 3261 §8.1.1.5: a CSeq sequence number is below 2^31.
pub(crate) const CSEQ_LIMIT: u32 = 1 << 31;

/// Why a stored snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotError(pub String);

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(text: impl Into<String>) -> SnapshotError {
    SnapshotError(text.into())
}

/// The text of a *confirmed* dialog snapshot; `None` for any other state or
/// when a value would not fit on one line (it never comes from a parsed
/// message, but the text must stay one field per line).
pub(crate) fn encode(snap: &DialogSnapshot) -> Option<String> {
    if snap.state != DialogSnapshotState::Confirmed {
        return None;
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("role", role_name(snap.role).to_string()),
        ("call-id", snap.id.call_id.clone()),
        ("local-tag", snap.id.local_tag.clone()),
        ("remote-tag", snap.id.remote_tag.clone()),
        ("from", snap.from.to_string()),
        ("to", snap.to.to_string()),
        ("local-cseq", snap.local_cseq.to_string()),
        ("remote-cseq", snap.remote_cseq.to_string()),
    ];
    if let Some(contact) = &snap.local_contact {
        lines.push(("local-contact", contact.to_string()));
    }
    lines.push(("remote-target", snap.remote_uri.to_string()));
    if let Some(contact) = &snap.remote_contact {
        lines.push(("remote-contact", contact.value().to_string()));
    }
    for route in &snap.route_set {
        lines.push(("route", route.value().to_string()));
    }
    let rel = if snap.supports_100rel { "yes" } else { "no" };
    lines.push(("100rel", rel.to_string()));
    if let Some(sid) = &snap.session_id {
        lines.push(("session-id-local", sid.local.clone()));
        if let Some(remote) = &sid.remote {
            lines.push(("session-id-remote", remote.clone()));
        }
    }
    let mut out = format!("{MAGIC}/{VERSION}\n");
    for (key, value) in lines {
        if value.contains(['\r', '\n']) || value.trim() != value {
            return None;
        }
        let _ = writeln!(out, "{key}: {value}");
    }
    Some(out)
}

fn role_name(role: TransactionRole) -> &'static str {
    match role {
        TransactionRole::Client => "uac",
        TransactionRole::Server => "uas",
    }
}

/// The fields as read, before they are checked against each other.
#[derive(Default)]
struct Fields {
    role: Option<String>,
    call_id: Option<String>,
    local_tag: Option<String>,
    remote_tag: Option<String>,
    from: Option<String>,
    to: Option<String>,
    local_cseq: Option<String>,
    remote_cseq: Option<String>,
    local_contact: Option<String>,
    remote_target: Option<String>,
    remote_contact: Option<String>,
    routes: Vec<String>,
    rel100: Option<String>,
    sid_local: Option<String>,
    sid_remote: Option<String>,
}

/// Parses snapshot text back into a confirmed `DialogSnapshot`.
pub(crate) fn decode(text: &str) -> Result<DialogSnapshot, SnapshotError> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    check_version(first)?;

    let mut fields = Fields::default();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| err(format!("line {number} is not 'key: value'")))?;
        let value = value.trim();
        if value.contains(|c: char| c.is_control()) {
            return Err(err(format!("line {number} has control characters")));
        }
        let slot = match key {
            "role" => &mut fields.role,
            "call-id" => &mut fields.call_id,
            "local-tag" => &mut fields.local_tag,
            "remote-tag" => &mut fields.remote_tag,
            "from" => &mut fields.from,
            "to" => &mut fields.to,
            "local-cseq" => &mut fields.local_cseq,
            "remote-cseq" => &mut fields.remote_cseq,
            "local-contact" => &mut fields.local_contact,
            "remote-target" => &mut fields.remote_target,
            "remote-contact" => &mut fields.remote_contact,
            "100rel" => &mut fields.rel100,
            "session-id-local" => &mut fields.sid_local,
            "session-id-remote" => &mut fields.sid_remote,
            "route" => {
                fields.routes.push(value.to_string());
                continue;
            }
            other => return Err(err(format!("unknown field '{}'", printable(other)))),
        };
        if slot.is_some() {
            return Err(err(format!("field '{key}' appears twice")));
        }
        *slot = Some(value.to_string());
    }
    build(fields)
}

fn check_version(first: &str) -> Result<(), SnapshotError> {
    let Some(version) = first
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Err(err("not a stox-sip dialog snapshot (bad first line)"));
    };
    let canonical = version
        .parse::<u32>()
        .ok()
        .filter(|n| n.to_string() == version);
    match canonical {
        Some(VERSION) => Ok(()),
        Some(other) => Err(err(format!(
            "unknown snapshot version {other} (this build reads version {VERSION})"
        ))),
        None => Err(err(format!(
            "invalid snapshot version '{}'",
            printable(version)
        ))),
    }
}

/// At most 40 characters of untrusted text, for error messages.
fn printable(text: &str) -> String {
    text.chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn required(value: Option<String>, key: &str) -> Result<String, SnapshotError> {
    value.ok_or_else(|| err(format!("missing field '{key}'")))
}

fn non_empty(value: Option<String>, key: &str) -> Result<String, SnapshotError> {
    let value = required(value, key)?;
    if value.is_empty() {
        return Err(err(format!("field '{key}' is empty")));
    }
    if value.contains(char::is_whitespace) {
        return Err(err(format!("field '{key}' contains whitespace")));
    }
    Ok(value)
}

fn cseq(value: Option<String>, key: &str) -> Result<u32, SnapshotError> {
    let value = required(value, key)?;
    match value.parse::<u32>() {
        Ok(n) if n < CSEQ_LIMIT && !value.starts_with('+') => Ok(n),
        _ => Err(err(format!("field '{key}' is not a CSeq number"))),
    }
}

/// A `sip:`/`sips:` URI with a host.
fn uri(value: &str, key: &str) -> Result<Uri, SnapshotError> {
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:"))
        || value.contains(char::is_whitespace)
    {
        return Err(not_uri(key));
    }
    let mut uri = Uri::try_from(value).map_err(|_| not_uri(key))?;
    check_uri(&mut uri, key)?;
    Ok(uri)
}

fn not_uri(key: &str) -> SnapshotError {
    err(format!("field '{key}' is not a SIP URI"))
}

/// A parsed URI must be `sip:`/`sips:` with a host. rsipstack's parser
/// keeps `%XX` escapes in the user part as they are while its Display
/// escapes every `%` again: undo the escaping here so that the restored URI
/// displays exactly as the stored text.
fn check_uri(uri: &mut Uri, key: &str) -> Result<(), SnapshotError> {
    if !matches!(uri.scheme, Some(Scheme::Sip | Scheme::Sips))
        || uri.host_with_port.host.to_string().is_empty()
    {
        return Err(not_uri(key));
    }
    if let Some(auth) = uri.auth.as_mut() {
        auth.user = unescape(&auth.user).ok_or_else(|| not_uri(key))?;
        if let Some(password) = auth.password.as_mut() {
            *password = unescape(password).ok_or_else(|| not_uri(key))?;
        }
    }
    Ok(())
}

/// `%XX` → byte; `None` for a malformed escape or a result that is not UTF-8.
fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The tag parameter of a From/To, if any.
fn tag_of(params: &[Param]) -> Option<String> {
    params.iter().find_map(|p| match p {
        Param::Tag(tag) => Some(tag.value().to_string()),
        _ => None,
    })
}

/// A tag in From/To must be the dialog id's (it may be absent).
fn check_tag(params: &[Param], expected: &str, key: &str) -> Result<(), SnapshotError> {
    match tag_of(params) {
        Some(tag) if tag != expected => Err(err(format!(
            "the tag of '{key}' does not match the dialog id"
        ))),
        _ => Ok(()),
    }
}

/// From and To must be in the form this module writes them (name-addr,
/// rsipstack's Display), so that what is restored is what was stored.
fn canonical(shown: String, text: &str, key: &str) -> Result<(), SnapshotError> {
    if shown == text {
        Ok(())
    } else {
        Err(err(format!(
            "field '{key}' is not a SIP header value in canonical form"
        )))
    }
}

/// A Contact or Route value, kept as text: one name-addr with a SIP URI.
fn header_value(text: &str, key: &str) -> Result<(), SnapshotError> {
    let invalid = || err(format!("field '{key}' is not a SIP header value"));
    if !text.starts_with('<') && !text.starts_with('"') {
        return Err(invalid());
    }
    let mut uri = match key {
        "route" => rsipstack::sip::typed::Route::parse(text).map(|r| r.uri),
        _ => rsipstack::sip::typed::Contact::parse(text).map(|c| c.uri),
    }
    .map_err(|_| invalid())?;
    check_uri(&mut uri, key)
}

fn build(f: Fields) -> Result<DialogSnapshot, SnapshotError> {
    let role = match required(f.role, "role")?.as_str() {
        "uac" => TransactionRole::Client,
        "uas" => TransactionRole::Server,
        other => {
            return Err(err(format!(
                "field 'role' must be uac or uas, not '{}'",
                printable(other)
            )));
        }
    };
    let id = DialogId {
        call_id: non_empty(f.call_id, "call-id")?,
        local_tag: non_empty(f.local_tag, "local-tag")?,
        remote_tag: non_empty(f.remote_tag, "remote-tag")?,
    };

    let from_text = required(f.from, "from")?;
    let mut from = From::parse(&from_text).map_err(|_| err("field 'from' does not parse"))?;
    check_uri(&mut from.uri, "from")?;
    canonical(from.to_string(), &from_text, "from")?;
    let to_text = required(f.to, "to")?;
    let mut to = To::parse(&to_text).map_err(|_| err("field 'to' does not parse"))?;
    check_uri(&mut to.uri, "to")?;
    canonical(to.to_string(), &to_text, "to")?;
    // From is the dialog's initiator: ours as UAC, the peer's as UAS.
    let (from_tag, to_tag) = match role {
        TransactionRole::Client => (&id.local_tag, &id.remote_tag),
        TransactionRole::Server => (&id.remote_tag, &id.local_tag),
    };
    check_tag(&from.params, from_tag, "from")?;
    check_tag(&to.params, to_tag, "to")?;

    let local_cseq = cseq(f.local_cseq, "local-cseq")?;
    let remote_cseq = cseq(f.remote_cseq, "remote-cseq")?;
    let local_contact = match f.local_contact {
        Some(text) => Some(uri(&text, "local-contact")?),
        None => None,
    };
    let remote_uri = uri(
        &required(f.remote_target, "remote-target")?,
        "remote-target",
    )?;
    let remote_contact = match f.remote_contact {
        Some(text) => {
            header_value(&text, "remote-contact")?;
            Some(Contact::new(text))
        }
        None => None,
    };
    let mut route_set = Vec::with_capacity(f.routes.len());
    for text in f.routes {
        header_value(&text, "route")?;
        route_set.push(Route::new(text));
    }
    let supports_100rel = match required(f.rel100, "100rel")?.as_str() {
        "yes" => true,
        "no" => false,
        _ => return Err(err("field '100rel' must be yes or no")),
    };
    let session_id = match (f.sid_local, f.sid_remote) {
        (Some(local), remote) => Some(SessionIdState {
            local: uuid(local, "session-id-local")?,
            remote: remote.map(|r| uuid(r, "session-id-remote")).transpose()?,
        }),
        (None, Some(_)) => return Err(err("'session-id-remote' without 'session-id-local'")),
        (None, None) => None,
    };

    Ok(DialogSnapshot {
        state: DialogSnapshotState::Confirmed,
        role,
        id,
        from,
        to,
        local_cseq,
        remote_cseq,
        local_contact,
        remote_uri,
        remote_contact,
        route_set,
        supports_100rel,
        session_id,
    })
}

/// RFC 7989 §4.1: 32 hexadecimal digits.
fn uuid(value: String, key: &str) -> Result<String, SnapshotError> {
    if value.len() == 32 && value.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(value)
    } else {
        Err(err(format!("field '{key}' is not a Session-ID UUID")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UAC: &str = "stox-sip-dialog/1\n\
        role: uac\n\
        call-id: 7f3a@sip.example.com\n\
        local-tag: a1b2\n\
        remote-tag: c3d4\n\
        from: \"Juliet\" <sip:juliet%5C40x@example.com>;tag=a1b2\n\
        to: <sip:romeo@example.net>;tag=c3d4\n\
        local-cseq: 3\n\
        remote-cseq: 0\n\
        local-contact: sip:192.0.2.1:5060;transport=TCP\n\
        remote-target: sip:romeo@198.51.100.7:5070;transport=TCP\n\
        remote-contact: <sip:romeo@198.51.100.7:5070;transport=tcp>\n\
        route: <sip:p1.example.net;lr>\n\
        route: <sip:p2.example.net:5080;lr>\n\
        100rel: yes\n\
        session-id-local: 0123456789abcdef0123456789abcdef\n\
        session-id-remote: fedcba9876543210fedcba9876543210\n";

    const UAS: &str = "stox-sip-dialog/1\n\
        role: uas\n\
        call-id: abc\n\
        local-tag: ours\n\
        remote-tag: theirs\n\
        from: <sip:romeo@example.net>;tag=theirs\n\
        to: <sip:juliet@example.com>\n\
        local-cseq: 0\n\
        remote-cseq: 1\n\
        remote-target: sip:192.0.2.9\n\
        100rel: no\n";

    #[test]
    fn round_trips_both_roles() {
        for text in [UAC, UAS] {
            let snap = decode(text).expect("decodes");
            assert_eq!(encode(&snap).as_deref(), Some(text));
        }
        let uac = decode(UAC).expect("decodes");
        assert_eq!(uac.role, TransactionRole::Client);
        assert_eq!(uac.id.remote_tag, "c3d4");
        assert_eq!(uac.local_cseq, 3);
        assert_eq!(uac.route_set.len(), 2);
        assert_eq!(uac.route_set[1].value(), "<sip:p2.example.net:5080;lr>");
        assert_eq!(uac.from.display_name.as_deref(), Some("Juliet"));
        assert!(uac.supports_100rel);
        let sid = uac.session_id.expect("session id");
        assert_eq!(
            sid.remote.as_deref(),
            Some("fedcba9876543210fedcba9876543210")
        );
        let uas = decode(UAS).expect("decodes");
        assert_eq!(uas.role, TransactionRole::Server);
        assert!(uas.local_contact.is_none() && uas.remote_contact.is_none());
        assert!(uas.session_id.is_none());
    }

    #[test]
    fn crlf_and_missing_final_newline_are_accepted() {
        let crlf = UAS.replace('\n', "\r\n");
        assert!(decode(&crlf).is_ok());
        assert!(decode(UAS.trim_end_matches('\n')).is_ok());
    }

    #[test]
    fn refuses_bad_snapshots_with_a_reason() {
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "bad first line"),
            ("hello".into(), "bad first line"),
            (
                UAS.replace("dialog/1", "dialog/2"),
                "unknown snapshot version 2",
            ),
            (
                UAS.replace("dialog/1", "dialog/01"),
                "invalid snapshot version",
            ),
            (
                UAS.replace("dialog/1", "dialog/x"),
                "invalid snapshot version",
            ),
            (
                UAS.replace("role: uas", "role: proxy"),
                "must be uac or uas",
            ),
            (UAS.replace("role: uas\n", ""), "missing field 'role'"),
            (format!("{UAS}role: uas\n"), "appears twice"),
            (format!("{UAS}colour: red\n"), "unknown field 'colour'"),
            (format!("{UAS}\n"), "not 'key: value'"),
            (
                UAS.replace("call-id: abc", "call-id: "),
                "'call-id' is empty",
            ),
            (
                UAS.replace("local-tag: ours", "local-tag: a b"),
                "whitespace",
            ),
            (
                UAS.replace("remote-cseq: 1", "remote-cseq: -1"),
                "not a CSeq",
            ),
            (
                UAS.replace("remote-cseq: 1", "remote-cseq: 2147483648"),
                "not a CSeq",
            ),
            (UAS.replace("local-cseq: 0", "local-cseq: +5"), "not a CSeq"),
            (UAS.replace("sip:192.0.2.9", "http://x"), "not a SIP URI"),
            (UAS.replace("sip:192.0.2.9", "sip:"), "not a SIP URI"),
            (
                UAS.replace("sip:192.0.2.9", "sip:a%4@192.0.2.9"),
                "not a SIP URI",
            ),
            (
                UAS.replace("sip:192.0.2.9", "sip:a%ff@192.0.2.9"),
                "not a SIP URI",
            ),
            (UAS.replace("tag=theirs", "tag=other"), "does not match"),
            (UAS.replace("<sip:romeo@example.net>", "romeo"), "'from'"),
            (
                UAS.replace("<sip:romeo@example.net>", "<sip:romeo@example.net> "),
                "canonical",
            ),
            (
                UAS.replace("<sip:romeo@example.net>", "<tel:+123>"),
                "not a SIP URI",
            ),
            (UAS.replace("100rel: no", "100rel: maybe"), "yes or no"),
            (format!("{UAS}route: sip:p1;lr\n"), "not a SIP header"),
            (
                format!("{UAS}session-id-remote: {}\n", "a".repeat(32)),
                "without",
            ),
            (format!("{UAS}session-id-local: xyz\n"), "not a Session-ID"),
            (UAS.replace("call-id: abc", "call-id: a\u{7}b"), "control"),
        ];
        for (text, expected) in cases {
            match decode(&text) {
                Ok(_) => panic!("accepted {text:?}"),
                Err(e) => assert!(e.0.contains(expected), "{text:?}: {e} (wanted {expected})"),
            }
        }
    }

    #[test]
    fn never_panics_on_mangled_input() {
        // Deterministic mutations of a valid snapshot: every truncation,
        // every single-byte replacement by a few troublesome bytes, every
        // line dropped or duplicated.
        let base = UAC.as_bytes();
        let mut inputs: Vec<Vec<u8>> = (0..base.len()).map(|n| base[..n].to_vec()).collect();
        for i in 0..base.len() {
            for b in [b'<', b'>', b';', b':', b'"', b'\n', b'=', b'@', b' ', 0xff] {
                let mut m = base.to_vec();
                m[i] = b;
                inputs.push(m);
            }
        }
        let lines: Vec<&str> = UAC.lines().collect();
        for i in 0..lines.len() {
            let mut dropped = lines.clone();
            dropped.remove(i);
            inputs.push(dropped.join("\n").into_bytes());
            let mut doubled = lines.clone();
            doubled.insert(i, lines[i]);
            inputs.push(doubled.join("\n").into_bytes());
        }
        let mut accepted = 0;
        for input in inputs {
            let text = String::from_utf8_lossy(&input);
            if let Ok(snap) = decode(&text) {
                accepted += 1;
                // Whatever is accepted encodes again and reads back the same.
                let again = encode(&snap).expect("encodes");
                let snap2 = decode(&again).expect("re-decodes");
                assert_eq!(encode(&snap2).as_deref(), Some(again.as_str()));
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn only_confirmed_dialogs_encode() {
        let mut snap = decode(UAS).expect("decodes");
        snap.state = DialogSnapshotState::Early;
        assert!(encode(&snap).is_none());
        snap.state = DialogSnapshotState::Confirmed;
        snap.id.call_id = "a\r\nb".into();
        assert!(encode(&snap).is_none());
    }
}
