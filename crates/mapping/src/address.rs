//! Addresses: JID ⇄ SIP URI (RFC 7247 §5, XEP-0106 JID escaping).
//!
//! Two kinds of mapping happen at the gateway:
//! * a **SIP user** appears in XMPP as an escaped local part on the gateway's
//!   component domain: `sip:romeo@example.net` ⇄ `romeo\40example.net@sip.example.com`
//!   (the older XEP-0100 form `romeo%example.net@sip.example.com` is accepted);
//! * an **XMPP user** on one of the served domains appears in SIP under its
//!   own address: `juliet@example.com/balcony` ⇄ `sip:juliet@example.com;gr=balcony`.
//!
//! Nothing here panics on input: every malformed address is an [`AddressError`].

use std::fmt;
use std::net::Ipv6Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("not a sip: or sips: URI: {0}")]
    NotSipUri(String),
    #[error("SIP URI has no user part: {0}")]
    MissingUser(String),
    #[error("invalid SIP URI {uri}: {detail}")]
    InvalidUri { uri: String, detail: String },
    #[error("gateway address has no SIP domain (expected user\\40domain or user%domain): {0}")]
    MissingSipDomain(String),
    #[error("invalid JID: {0}")]
    InvalidJid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
        }
    }
}

/// A parsed `sip:`/`sips:` URI. The user part is stored percent-decoded and
/// re-encoded on output. The host is stored lower-cased, an IPv6 reference
/// without its brackets (`::1`); [`fmt::Display`] puts them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters in order (`;gr=balcony` → `("gr", Some("balcony"))`).
    pub params: Vec<(String, Option<String>)>,
}

fn invalid(uri: &str, detail: impl Into<String>) -> AddressError {
    AddressError::InvalidUri {
        uri: uri.to_owned(),
        detail: detail.into(),
    }
}

impl SipUri {
    /// A `sip:` URI with the given (decoded) user and host, no port, no params.
    pub fn new(user: Option<String>, host: impl Into<String>) -> Self {
        SipUri {
            scheme: Scheme::Sip,
            user,
            host: host.into(),
            port: None,
            params: Vec::new(),
        }
    }

    /// Parses `sip:user@host:port;params` (a name-addr's `<…>` already removed).
    /// URI headers (`?…`) are ignored.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim();
        let (scheme, rest) = match s.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sip") => (Scheme::Sip, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sips") => (Scheme::Sips, rest),
            _ => return Err(AddressError::NotSipUri(s.to_owned())),
        };
        // Neither params nor headers may contain a raw '@' (RFC 3261 §25.1),
        // so the first '@' ends the userinfo.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((userinfo, hostpart)) => (Some(userinfo), hostpart),
            None => (None, rest),
        };
        let user = match userinfo {
            None => None,
            Some(userinfo) => {
                // `user:password` — the password is deprecated and dropped.
                let raw = userinfo.split(':').next().unwrap_or_default();
                if raw.is_empty() {
                    return Err(invalid(s, "empty user part"));
                }
                Some(percent_decode_utf8(raw).ok_or_else(|| invalid(s, "bad escape in user"))?)
            }
        };
        let hostpart = hostpart.split('?').next().unwrap_or_default();
        let mut segments = hostpart.split(';');
        let hostport = segments.next().unwrap_or_default();
        let (host, port) = parse_hostport(hostport).map_err(|d| invalid(s, d))?;
        let mut params = Vec::new();
        for segment in segments {
            if segment.is_empty() {
                continue;
            }
            let (name, value) = match segment.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (segment, None),
            };
            if name.is_empty() || !name.chars().all(is_param_char) {
                return Err(invalid(s, format!("bad parameter '{segment}'")));
            }
            if value
                .as_ref()
                .is_some_and(|v| !v.chars().all(is_param_char))
            {
                return Err(invalid(s, format!("bad parameter value '{segment}'")));
            }
            params.push((name.to_ascii_lowercase(), value));
        }
        Ok(SipUri {
            scheme,
            user,
            host,
            port,
            params,
        })
    }

    /// The value of URI parameter `name` (case-insensitive); `Some("")` for a
    /// flag parameter such as `;lr`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// `host` or `host:port`, IPv6 in brackets (no user, no params).
    pub fn hostport(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }
}

fn is_param_char(c: char) -> bool {
    // RFC 3261 paramchar: param-unreserved / unreserved / escaped.
    c.is_ascii_alphanumeric() || "-_.!~*'()[]/:&+$%".contains(c)
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
}

/// `host[:port]` with IPv6 references in brackets. Returns the host
/// lower-cased (IPv6 without brackets) and the port.
fn parse_hostport(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| "unterminated IPv6 reference".to_owned())?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("bad IPv6 address '{v6}'"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("junk after IPv6 reference '{p}'"))?,
            ),
        };
        (v6.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".to_owned());
    }
    if !hostport.starts_with('[') && !host.chars().all(is_host_char) {
        return Err(format!("bad host '{host}'"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?),
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes and checks the result is UTF-8. `None` for a malformed
/// `%` escape or invalid UTF-8.
fn percent_decode_utf8(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3261 `user`: unreserved / escaped / user-unreserved.
fn is_user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
}

/// Percent-encodes a (decoded) SIP user part as RFC 3261 requires.
pub fn encode_sip_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for &b in user.as_bytes() {
        if is_user_char(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if let Some(user) = &self.user {
            write!(f, "{}@", encode_sip_user(user))?;
        }
        f.write_str(&self.hostport())?;
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// The parts of a JID, unvalidated beyond what the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JidParts {
    pub node: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
}

impl JidParts {
    /// Splits `node@domain/resource`.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let bad = |why: &str| AddressError::InvalidJid(format!("{s:?}: {why}"));
        let (bare, resource) = match s.split_once('/') {
            Some((bare, resource)) => {
                if resource.is_empty() {
                    return Err(bad("empty resource"));
                }
                (bare, Some(resource.to_owned()))
            }
            None => (s, None),
        };
        let (node, domain) = match bare.split_once('@') {
            Some((node, domain)) => {
                if node.is_empty() {
                    return Err(bad("empty local part"));
                }
                if domain.contains('@') {
                    return Err(bad("more than one '@'"));
                }
                (Some(node.to_owned()), domain)
            }
            None => (None, bare),
        };
        if domain.is_empty() {
            return Err(bad("empty domain"));
        }
        if domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace in domain"));
        }
        if node
            .as_ref()
            .is_some_and(|n| n.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(bad("whitespace in local part"));
        }
        Ok(JidParts {
            node,
            domain: domain.to_owned(),
            resource,
        })
    }

    pub fn bare(&self) -> JidParts {
        JidParts {
            node: self.node.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }
}

impl fmt::Display for JidParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "{node}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

/// XEP-0106 table: character ⇄ two lower-case hex digits.
const ESCAPES: [(char, &str); 10] = [
    (' ', "20"),
    ('"', "22"),
    ('&', "26"),
    ('\'', "27"),
    ('/', "2f"),
    (':', "3a"),
    ('<', "3c"),
    ('>', "3e"),
    ('@', "40"),
    ('\\', "5c"),
];

/// The character a valid escape sequence `\xx` (hex digits `xx`) stands for.
fn escaped_char(hex: &str) -> Option<char> {
    ESCAPES
        .iter()
        .find(|(_, h)| h.eq_ignore_ascii_case(hex))
        .map(|(c, _)| *c)
}

/// `true` when `s` (the text right after a backslash) starts with a valid
/// escape sequence's two hex digits.
fn starts_with_escape(s: &str) -> bool {
    s.get(..2).is_some_and(|hex| escaped_char(hex).is_some())
}

/// XEP-0106 escaping of a JID local part. A backslash is escaped only when it
/// would otherwise start a valid escape sequence, so that
/// `unescape_node(&escape_node(x)) == x` for every `x`.
pub fn escape_node(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.char_indices() {
        let escape = match c {
            '\\' => raw
                .get(i + 1..)
                .is_some_and(starts_with_escape)
                .then_some("5c"),
            _ => ESCAPES
                .iter()
                .find(|(e, _)| *e == c && c != '\\')
                .map(|(_, h)| *h),
        };
        match escape {
            Some(hex) => {
                out.push('\\');
                out.push_str(hex);
            }
            None => out.push(c),
        }
    }
    out
}

/// XEP-0106 unescaping of a JID local part (only valid `\xx` sequences).
pub fn unescape_node(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(pos) = rest.find('\\') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        match after.get(..2).and_then(escaped_char) {
            Some(c) => {
                out.push(c);
                rest = after.get(2..).unwrap_or_default();
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A SIP user's address inside XMPP, on the gateway's component domain:
/// `sip:romeo@example.net` → `romeo\40example.net@sip.example.com`; `;gr=X` → `/X`.
/// A port is kept (`romeo\40example.net\3a5080`) so the mapping reverses.
pub fn sip_user_to_gateway_jid(uri: &SipUri, component: &str) -> Result<JidParts, AddressError> {
    let user = uri
        .user
        .as_deref()
        .ok_or_else(|| AddressError::MissingUser(uri.to_string()))?;
    if component.is_empty() {
        return Err(AddressError::InvalidJid(
            "empty component domain".to_owned(),
        ));
    }
    let node = escape_node(&format!("{user}@{}", uri.hostport()));
    Ok(JidParts {
        node: Some(node),
        domain: component.to_owned(),
        resource: gruu(uri),
    })
}

fn gruu(uri: &SipUri) -> Option<String> {
    uri.param("gr")
        .filter(|v| !v.is_empty())
        .map(|v| percent_decode_utf8(v).unwrap_or_else(|| v.to_owned()))
}

/// The reverse of [`sip_user_to_gateway_jid`]: the local part (as it arrives,
/// escaped) and resource of a JID on the component domain → SIP URI.
/// Accepts `romeo\40example.net` and the XEP-0100 form `romeo%example.net`.
pub fn gateway_jid_to_sip_user(node: &str, resource: Option<&str>) -> Result<SipUri, AddressError> {
    let unescaped = unescape_node(node);
    let (user, hostport) = unescaped
        .rsplit_once('@')
        .or_else(|| unescaped.rsplit_once('%'))
        .ok_or_else(|| AddressError::MissingSipDomain(node.to_owned()))?;
    if user.is_empty() {
        return Err(AddressError::MissingUser(node.to_owned()));
    }
    if hostport.is_empty() {
        return Err(AddressError::MissingSipDomain(node.to_owned()));
    }
    let (host, port) = parse_hostport(hostport).map_err(|detail| AddressError::InvalidUri {
        uri: node.to_owned(),
        detail,
    })?;
    let mut uri = SipUri::new(Some(user.to_owned()), host);
    uri.port = port;
    if let Some(resource) = resource.filter(|r| !r.is_empty()) {
        uri.params
            .push(("gr".to_owned(), Some(encode_param_value(resource))));
    }
    Ok(uri)
}

/// Percent-encodes a parameter value (e.g. a resource put in `;gr=`).
fn encode_param_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for &b in v.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 7247 §5.1: a SIP URI addressed to an XMPP user on a served domain →
/// that user's JID. User part percent-decoded then escaped for `& ' /`;
/// `;gr=X` → resource `X`.
///
/// The other characters RFC 7622 forbids in a local part (space `" : < > @`)
/// are XEP-0106-escaped as well, so the result is always a valid JID.
pub fn sip_to_xmpp_user(uri: &SipUri) -> Result<JidParts, AddressError> {
    let user = uri
        .user
        .as_deref()
        .ok_or_else(|| AddressError::MissingUser(uri.to_string()))?;
    if user.chars().any(char::is_control) {
        return Err(AddressError::InvalidJid(format!(
            "control character in {user:?}"
        )));
    }
    Ok(JidParts {
        node: Some(escape_node(user)),
        domain: uri.host.clone(),
        resource: gruu(uri),
    })
}

/// RFC 7247 §5.2: an XMPP user's JID → SIP URI (`\26 \27 \2f` unescaped, the
/// rest percent-encoded as SIP requires). The resource becomes `;gr=` only
/// when `with_resource` is set.
pub fn xmpp_user_to_sip(jid: &JidParts, with_resource: bool) -> SipUri {
    let mut uri = SipUri::new(
        jid.node.as_deref().map(unescape_node),
        jid.domain.to_ascii_lowercase(),
    );
    let resource = jid
        .resource
        .as_deref()
        .filter(|r| with_resource && !r.is_empty());
    if let Some(resource) = resource {
        uri.params
            .push(("gr".to_owned(), Some(encode_param_value(resource))));
    }
    uri
}

#[cfg(test)]
mod tests;
