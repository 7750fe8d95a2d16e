//! Addresses: JID ⇄ SIP URI (RFC 7247 §5, XEP-0106 JID escaping).
//!
//! Two kinds of mapping happen at the gateway:
//! * a **SIP user** appears in XMPP as an escaped local part on the gateway's
//!   component domain: `sip:romeo@example.net` ⇄ `romeo\40example.net@sip.example.com`
//!   (the older XEP-0100 form `romeo%example.net@sip.example.com` is accepted);
//! * an **XMPP user** on one of the served domains appears in SIP under its
//!   own address: `juliet@example.com/balcony` ⇄ `sip:juliet@example.com;gr=balcony`.
//!
//! INTERFACE SKELETON — implementation in progress.

use std::fmt;

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

/// A parsed `sip:`/`sips:` URI. The user part is stored percent-decoded and
/// re-encoded on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters in order (`;gr=balcony` → `("gr", Some("balcony"))`).
    pub params: Vec<(String, Option<String>)>,
}

impl SipUri {
    /// Parses `sip:user@host:port;params` (a name-addr's `<…>` already removed).
    /// URI headers (`?…`) are ignored.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let _ = s;
        todo!()
    }
    pub fn param(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
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
        let _ = s;
        todo!()
    }
    pub fn bare(&self) -> JidParts {
        todo!()
    }
}

impl fmt::Display for JidParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        todo!()
    }
}

/// XEP-0106 escaping of a JID local part.
pub fn escape_node(raw: &str) -> String {
    let _ = raw;
    todo!()
}

/// XEP-0106 unescaping of a JID local part (only valid `\xx` sequences).
pub fn unescape_node(escaped: &str) -> String {
    let _ = escaped;
    todo!()
}

/// A SIP user's address inside XMPP, on the gateway's component domain:
/// `sip:romeo@example.net` → `romeo\40example.net@sip.example.com`; `;gr=X` → `/X`.
pub fn sip_user_to_gateway_jid(uri: &SipUri, component: &str) -> Result<JidParts, AddressError> {
    let _ = (uri, component);
    todo!()
}

/// The reverse of [`sip_user_to_gateway_jid`]: the local part (as it arrives,
/// escaped) and resource of a JID on the component domain → SIP URI.
/// Accepts `romeo\40example.net` and the XEP-0100 form `romeo%example.net`.
pub fn gateway_jid_to_sip_user(
    node: &str,
    resource: Option<&str>,
) -> Result<SipUri, AddressError> {
    let _ = (node, resource);
    todo!()
}

/// RFC 7247 §5.1: a SIP URI addressed to an XMPP user on a served domain →
/// that user's JID. User part percent-decoded then escaped for `& ' /`;
/// `;gr=X` → resource `X`.
pub fn sip_to_xmpp_user(uri: &SipUri) -> Result<JidParts, AddressError> {
    let _ = uri;
    todo!()
}

/// RFC 7247 §5.2: an XMPP user's JID → SIP URI (`\26 \27 \2f` unescaped, the
/// rest percent-encoded as SIP requires). The resource becomes `;gr=` only
/// when `with_resource` is set.
pub fn xmpp_user_to_sip(jid: &JidParts, with_resource: bool) -> SipUri {
    let _ = (jid, with_resource);
    todo!()
}
