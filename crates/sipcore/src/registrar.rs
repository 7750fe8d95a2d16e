//! A registrar for the SIP users of configured domains (RFC 3261 §10), with
//! digest authentication against stored HA1s (RFC 3261 §22, RFC 8760) and
//! RFC 5626 flows, so that a browser on a WebSocket can be called.
//!
//! - REGISTER for `sip:user@domain` (a registrar domain) is challenged (401,
//!   SHA-256 and MD5, `qop=auth`). Credentials for an unknown user, for
//!   another user than the To AOR, or with a wrong response get 403; a
//!   nonce past its life gets 401 with `stale=true`. Nonces are stateless
//!   (a time and a MAC); nonce counts are checked against replay.
//! - Each Contact becomes a binding with its expiry (the Contact's
//!   `expires`, else `Expires`, else 3600; at most `max_expires`; below
//!   `min_expires` → 423 with Min-Expires); `*` with Expires 0 removes them
//!   all. With `+sip.instance` and `reg-id` (RFC 5626) the binding is keyed
//!   by them and remembers its flow: the connection it came on, or the UDP
//!   source; the 200 then has `Require: outbound`.
//! - An INVITE to a registered user goes to the contact of its freshest
//!   binding, over the binding's flow while it is open; no binding → the
//!   core hears 480. A flow's connection that closes removes its bindings
//!   (the UA registers again over a new one, RFC 5626 §4.4).
//! - An INVITE from a registrar user whose source is not trusted is
//!   challenged with 407 and taken once its credentials check.
//! - Every change of a binding is an [`Output::Binding`] for the store;
//!   [`Sip::restore_binding`] takes them back after a restart (without a
//!   flow: a WebSocket client is unreachable until it registers again).
//!
//! [`Output::Binding`]: crate::Output::Binding

use crate::api::Transport;
use crate::engine::ConnId;
use crate::engine::{Dest, Hop, Origin, Sip, TimerId};
use crate::msg::{self, HeaderName, Method, Request, Response};
use md5::Digest as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The registrar's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// SIP domains whose users register here (each is its own realm).
    pub domains: Vec<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Keys the nonces' MAC (random per process).
    pub nonce_secret: u64,
    /// The digest algorithms challenged with, in the order offered (`MD5`,
    /// `SHA-256`). RFC 8760 clients take the first they support; JsSIP
    /// keeps only the last challenge it parses and knows only MD5.
    pub algorithms: Vec<String>,
}

/// What is stored for a user: the HA1 of `user:realm:password` per
/// algorithm, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeys {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKeys { … }")
    }
}

impl UserKeys {
    /// The HA1s of `user` in `realm` with `password`.
    pub fn derive(user: &str, realm: &str, password: &str) -> UserKeys {
        let text = format!("{user}:{realm}:{password}");
        UserKeys {
            ha1_md5: hex(&md5::Md5::digest(text.as_bytes())),
            ha1_sha256: hex(&sha2::Sha256::digest(text.as_bytes())),
        }
    }
}

/// A binding as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// `+sip.instance` and `reg-id` (RFC 5626), else the contact URI.
    pub key: String,
    pub contact: String,
    /// Seconds left.
    pub expires_in: u32,
    pub transport: Transport,
    pub source: SocketAddr,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub contact: String,
    pub expires: Instant,
    pub updated: Instant,
    pub transport: Transport,
    pub source: SocketAddr,
    /// RFC 5626: where requests to it go while the flow lasts.
    pub flow: Option<Dest>,
}

#[derive(Debug, Default)]
pub(crate) struct Registrar {
    pub cfg: Option<RegistrarConfig>,
    pub users: HashMap<String, UserKeys>,
    /// AOR → key → binding.
    pub bindings: HashMap<String, HashMap<String, Binding>>,
    /// Nonce → the highest nonce count seen (replay check), bounded.
    pub counts: HashMap<String, u32>,
}

/// How long a nonce is good for.
const NONCE_LIFE: Duration = Duration::from_secs(300);
/// Nonce counts remembered at most.
const MAX_COUNTS: usize = 10_000;
/// Bindings per AOR at most (a client that registers new instances in a
/// loop cannot grow the table).
pub const MAX_BINDINGS_PER_AOR: usize = 16;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sip:user@host[:port];params` → `user@host`, lower-cased host.
pub(crate) fn aor_of(uri: &str) -> Option<String> {
    let parsed = msg::parse_uri(uri).ok()?;
    let user = parsed.user()?;
    let host = parsed.host()?.to_string().to_ascii_lowercase();
    Some(format!("{}@{host}", String::from_utf8_lossy(user)))
}

/// The `name=value` parameters of a Digest credentials value.
fn digest_params(value: &str) -> Option<HashMap<String, String>> {
    let rest = value.trim();
    let rest = rest
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .map(|_| &rest[6..])?;
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.trim().is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.insert(name.trim().to_ascii_lowercase(), val.trim().to_owned());
    }
    Some(out)
}

fn eq_ct(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why credentials were not taken.
enum Denied {
    /// None given, or a nonce we did not issue: challenge.
    Challenge { stale: bool },
    /// Wrong: 403 with why.
    Forbidden(String),
}

impl Sip {
    pub(crate) fn registrar_domain(&self, host: &str) -> bool {
        self.registrar
            .cfg
            .as_ref()
            .is_some_and(|c| c.domains.iter().any(|d| d.eq_ignore_ascii_case(host)))
    }

    /// Sets (or with `None` removes) a user's keys, `aor` = `user@domain`.
    pub fn set_user(&mut self, aor: &str, keys: Option<UserKeys>) {
        let aor = aor.to_ascii_lowercase();
        match keys {
            Some(k) => {
                self.registrar.users.insert(aor, k);
            }
            None => {
                self.registrar.users.remove(&aor);
            }
        }
    }

    /// Replaces all users' keys (the store's table, re-read).
    pub fn set_users(&mut self, users: HashMap<String, UserKeys>) {
        self.registrar.users = users
            .into_iter()
            .map(|(a, k)| (a.to_ascii_lowercase(), k))
            .collect();
    }

    fn nonce_mac(&self, t: u64) -> String {
        let secret = self.registrar.cfg.as_ref().map_or(0, |c| c.nonce_secret);
        let mut h = sha2::Sha256::new();
        h.update(secret.to_be_bytes());
        h.update(t.to_be_bytes());
        hex(&h.finalize()[..12])
    }

    fn new_nonce(&self) -> String {
        let t = self.now.saturating_duration_since(self.epoch).as_millis() as u64;
        format!("{t:x}.{}", self.nonce_mac(t))
    }

    /// Is `nonce` ours, and is it fresh?
    fn nonce_state(&self, nonce: &str) -> Option<bool> {
        let (t, mac) = nonce.split_once('.')?;
        let t = u64::from_str_radix(t, 16).ok()?;
        if !eq_ct(mac, &self.nonce_mac(t)) {
            return None;
        }
        let age = self.now.saturating_duration_since(self.epoch).as_millis() as u64;
        Some(age.saturating_sub(t) <= NONCE_LIFE.as_millis() as u64)
    }

    /// The challenges for `realm`, one per configured algorithm, in order
    /// (RFC 8760 §2.3).
    fn challenges(&self, realm: &str, stale: bool) -> Vec<String> {
        let nonce = self.new_nonce();
        let stale = if stale { ", stale=true" } else { "" };
        let algorithms = self
            .registrar
            .cfg
            .as_ref()
            .map(|c| c.algorithms.clone())
            .unwrap_or_default();
        algorithms
            .iter()
            .map(|alg| {
                format!(
                    r#"Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm={alg}{stale}"#
                )
            })
            .collect()
    }

    /// Checks the credentials in `req` (header `name`) for `aor` in `realm`.
    fn check_credentials(
        &mut self,
        req: &Request,
        name: &HeaderName,
        aor: &str,
        realm: &str,
    ) -> Result<(), Denied> {
        let offered: Vec<HashMap<String, String>> = msg::values(&req.headers, name)
            .iter()
            .filter_map(|v| digest_params(v))
            .filter(|p| {
                p.get("realm")
                    .is_some_and(|r| r.eq_ignore_ascii_case(realm))
            })
            .collect();
        let Some(p) = offered.into_iter().next() else {
            return Err(Denied::Challenge { stale: false });
        };
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let user = get("username");
        let claimed = if user.contains('@') {
            user.to_ascii_lowercase()
        } else {
            format!("{}@{}", user, realm.to_ascii_lowercase())
        };
        let Some(keys) = self.registrar.users.get(&claimed).cloned() else {
            return Err(Denied::Forbidden(format!("no user {claimed}")));
        };
        if !claimed.eq_ignore_ascii_case(aor) {
            return Err(Denied::Forbidden(format!(
                "{claimed} may not act for {aor}"
            )));
        }
        let nonce = get("nonce");
        match self.nonce_state(nonce) {
            None => return Err(Denied::Challenge { stale: false }),
            Some(false) => return Err(Denied::Challenge { stale: true }),
            Some(true) => {}
        }
        let algorithm = match get("algorithm") {
            "" => "MD5".to_owned(),
            a => a.to_ascii_uppercase(),
        };
        let offered = self.registrar.cfg.as_ref().is_some_and(|c| {
            c.algorithms
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&algorithm))
        });
        let (ha1, sha) = match algorithm.as_str() {
            "MD5" if offered => (keys.ha1_md5, false),
            "SHA-256" if offered => (keys.ha1_sha256, true),
            other => return Err(Denied::Forbidden(format!("algorithm {other} not offered"))),
        };
        let hash = |s: String| {
            if sha {
                hex(&sha2::Sha256::digest(s.as_bytes()))
            } else {
                hex(&md5::Md5::digest(s.as_bytes()))
            }
        };
        let ha2 = hash(format!("{}:{}", req.method, get("uri")));
        let expected = match get("qop") {
            "auth" => {
                let nc = u32::from_str_radix(get("nc"), 16).unwrap_or(0);
                let last = self.registrar.counts.get(nonce).copied().unwrap_or(0);
                if nc <= last {
                    return Err(Denied::Forbidden("nonce count replayed".into()));
                }
                if self.registrar.counts.len() >= MAX_COUNTS {
                    self.registrar.counts.clear();
                }
                self.registrar.counts.insert(nonce.to_owned(), nc);
                hash(format!(
                    "{ha1}:{nonce}:{}:{}:auth:{ha2}",
                    get("nc"),
                    get("cnonce")
                ))
            }
            "" => hash(format!("{ha1}:{nonce}:{ha2}")),
            other => return Err(Denied::Forbidden(format!("qop {other} not offered"))),
        };
        if eq_ct(&expected, get("response")) {
            Ok(())
        } else {
            Err(Denied::Forbidden("wrong credentials".into()))
        }
    }

    /// The answer to a request whose credentials were denied.
    fn denied(&mut self, req: &Request, realm: &str, why: Denied, proxy: bool) -> Response {
        match why {
            Denied::Challenge { stale } => {
                let (status, phrase, header) = if proxy {
                    (407, "Proxy Authentication Required", "Proxy-Authenticate")
                } else {
                    (401, "Unauthorized", "WWW-Authenticate")
                };
                let mut resp = self.answer(req, status, phrase, None);
                for c in self.challenges(realm, stale) {
                    if let Ok(h) = msg::other_header(header, c) {
                        resp.headers.push(h);
                    }
                }
                resp
            }
            Denied::Forbidden(why) => self.answer(req, 403, &format!("Forbidden ({why})"), None),
        }
    }

    /// REGISTER (RFC 3261 §10.3), answered here.
    pub(crate) fn on_register(
        &mut self,
        key: &crate::msg::TransactionKey,
        req: &Request,
        origin: Origin,
    ) {
        let to = msg::address_uri(&req.headers, &HeaderName::To).unwrap_or_default();
        let Some(aor) = aor_of(&to) else {
            let resp = self.answer(req, 400, "Bad Request (To is not sip:user@domain)", None);
            self.send_response(key, resp);
            return;
        };
        let realm = aor
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        if !self.registrar_domain(&realm) {
            let resp = self.answer(
                req,
                403,
                &format!("Forbidden ({realm} is not registered here)"),
                None,
            );
            self.send_response(key, resp);
            return;
        }
        if let Err(why) = self.check_credentials(req, &HeaderName::Authorization, &aor, &realm) {
            if let Denied::Forbidden(w) = &why {
                self.peer_fault(origin.source, "REGISTER refused", w);
            }
            let resp = self.denied(req, &realm, why, false);
            self.send_response(key, resp);
            return;
        }
        let resp = match self.update_bindings(req, &aor, origin) {
            Ok(outbound) => {
                let mut resp = self.answer(req, 200, "OK", None);
                let now = self.now;
                let list = self
                    .registrar
                    .bindings
                    .get(&aor)
                    .cloned()
                    .unwrap_or_default();
                let mut ordered: Vec<&Binding> = list.values().collect();
                ordered.sort_by_key(|b| b.updated);
                for b in ordered {
                    let left = b.expires.saturating_duration_since(now).as_secs();
                    if let Ok(h) = msg::header(
                        HeaderName::Contact,
                        format!("<{}>;expires={left}", b.contact),
                    ) {
                        resp.headers.push(h);
                    }
                }
                if outbound {
                    for (n, v) in [("Require", "outbound"), ("Supported", "outbound")] {
                        if let Ok(h) = msg::other_header(n, v) {
                            resp.headers.push(h);
                        }
                    }
                }
                resp
            }
            Err((status, phrase, extra)) => {
                let mut resp = self.answer(req, status, &phrase, None);
                if let Some((n, v)) = extra
                    && let Ok(h) = msg::other_header(n, v)
                {
                    resp.headers.push(h);
                }
                resp
            }
        };
        self.send_response(key, resp);
    }

    /// The Contacts of an authorized REGISTER. Ok(RFC 5626 used).
    #[allow(clippy::type_complexity)]
    fn update_bindings(
        &mut self,
        req: &Request,
        aor: &str,
        origin: Origin,
    ) -> Result<bool, (u16, String, Option<(&'static str, String)>)> {
        let cfg =
            self.registrar
                .cfg
                .clone()
                .ok_or((500, "Server Internal Error".to_owned(), None))?;
        let header_expires = msg::value(&req.headers, &HeaderName::Expires)
            .and_then(|v| v.trim().parse::<u32>().ok());
        let values = msg::values(&req.headers, &HeaderName::Contact);
        if values.is_empty() {
            return Ok(false); // a query: the current bindings
        }
        if values.iter().any(|v| v.trim() == "*") {
            if values.len() != 1 || header_expires != Some(0) {
                return Err((
                    400,
                    "Bad Request (* needs Expires: 0 and no other Contact)".into(),
                    None,
                ));
            }
            for key in self
                .registrar
                .bindings
                .get(aor)
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                self.remove_binding(aor, &key);
            }
            return Ok(false);
        }
        let mut outbound = false;
        for value in values {
            let Ok(list) = msg::Address::parse_list(value.as_bytes(), "Contact") else {
                return Err((400, "Bad Request (malformed Contact)".into(), None));
            };
            for address in list {
                let contact = address.uri.to_string();
                let param = |n: &str| {
                    address
                        .param(n)
                        .map(|v| String::from_utf8_lossy(v).trim_matches('"').to_owned())
                };
                let expires = param("expires")
                    .and_then(|v| v.parse::<u32>().ok())
                    .or(header_expires)
                    .unwrap_or(3600)
                    .min(cfg.max_expires);
                if expires != 0 && expires < cfg.min_expires {
                    return Err((
                        423,
                        "Interval Too Brief".into(),
                        Some(("Min-Expires", cfg.min_expires.to_string())),
                    ));
                }
                let instance = param("+sip.instance");
                let reg_id = param("reg-id");
                let key = match (&instance, &reg_id) {
                    (Some(i), Some(r)) => {
                        outbound = true;
                        format!("{i};reg-id={r}")
                    }
                    _ => contact.clone(),
                };
                if expires == 0 {
                    self.remove_binding(aor, &key);
                    continue;
                }
                let flow = match origin.conn {
                    Some(conn) => Some(Dest::Conn(conn)),
                    None if outbound
                        || origin.transport == Transport::Udp && instance.is_some() =>
                    {
                        Some(Dest::Addr(origin.source))
                    }
                    None => None,
                };
                let full = self
                    .registrar
                    .bindings
                    .get(aor)
                    .is_some_and(|m| m.len() >= MAX_BINDINGS_PER_AOR && !m.contains_key(&key));
                if full {
                    return Err((
                        403,
                        format!("Forbidden (at most {MAX_BINDINGS_PER_AOR} bindings per user)"),
                        None,
                    ));
                }
                let binding = Binding {
                    contact,
                    expires: self.now + Duration::from_secs(u64::from(expires)),
                    updated: self.now,
                    transport: origin.transport,
                    source: origin.source,
                    flow,
                };
                self.put_binding(aor, key, binding);
            }
        }
        Ok(outbound)
    }

    fn put_binding(&mut self, aor: &str, key: String, binding: Binding) {
        self.timers.set(
            TimerId::BindingExpiry(aor.to_owned(), key.clone()),
            binding.expires,
        );
        let record = self.record_of(&key, &binding);
        self.registrar
            .bindings
            .entry(aor.to_owned())
            .or_default()
            .insert(key, binding);
        self.out.push_back(crate::engine::Output::Binding {
            aor: aor.to_owned(),
            key: record.key.clone(),
            binding: Some(record),
        });
    }

    pub(crate) fn remove_binding(&mut self, aor: &str, key: &str) {
        let removed = self
            .registrar
            .bindings
            .get_mut(aor)
            .and_then(|m| m.remove(key))
            .is_some();
        if self
            .registrar
            .bindings
            .get(aor)
            .is_some_and(HashMap::is_empty)
        {
            self.registrar.bindings.remove(aor);
        }
        self.timers
            .clear(&TimerId::BindingExpiry(aor.to_owned(), key.to_owned()));
        if removed {
            self.out.push_back(crate::engine::Output::Binding {
                aor: aor.to_owned(),
                key: key.to_owned(),
                binding: None,
            });
        }
    }

    fn record_of(&self, key: &str, b: &Binding) -> BindingRecord {
        BindingRecord {
            key: key.to_owned(),
            contact: b.contact.clone(),
            expires_in: b.expires.saturating_duration_since(self.now).as_secs() as u32,
            transport: b.transport,
            source: b.source,
        }
    }

    /// A binding from the store after a restart (no flow: its connection
    /// died with the old process).
    pub fn restore_binding(&mut self, aor: &str, record: BindingRecord) -> Result<(), String> {
        msg::parse_uri(&record.contact)?;
        if record.expires_in == 0 {
            return Err("expired".into());
        }
        let aor = aor.to_ascii_lowercase();
        let expires = self.now + Duration::from_secs(u64::from(record.expires_in));
        self.timers.set(
            TimerId::BindingExpiry(aor.clone(), record.key.clone()),
            expires,
        );
        self.registrar.bindings.entry(aor).or_default().insert(
            record.key,
            Binding {
                contact: record.contact,
                expires,
                updated: self.now,
                transport: record.transport,
                source: record.source,
                flow: None,
            },
        );
        Ok(())
    }

    /// A flow's connection closed: its bindings go (RFC 5626 §4.4: the UA
    /// registers again over a new flow).
    pub(crate) fn flow_closed(&mut self, conn: ConnId) {
        let gone: Vec<(String, String)> = self
            .registrar
            .bindings
            .iter()
            .flat_map(|(aor, m)| {
                m.iter()
                    .filter(|(_, b)| b.flow == Some(Dest::Conn(conn)))
                    .map(|(k, _)| (aor.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (aor, key) in gone {
            self.remove_binding(&aor, &key);
        }
    }

    /// Where an INVITE to `request_uri` goes when it names a registered
    /// user: (the contact as Request-URI, the hop). `Err` with the reason of
    /// the 480 when it names a registrar user with no binding; `Ok(None)`
    /// when it is not a registrar domain.
    pub(crate) fn registered_target(
        &self,
        request_uri: &str,
    ) -> Result<Option<(String, Hop)>, String> {
        // Every INVITE of ours passes here: no registrar, no parsing.
        if self.registrar.cfg.is_none() {
            return Ok(None);
        }
        let Some(aor) = aor_of(request_uri) else {
            return Ok(None);
        };
        let host = aor.rsplit_once('@').map_or("", |(_, h)| h);
        if !self.registrar_domain(host) {
            return Ok(None);
        }
        let freshest = self
            .registrar
            .bindings
            .get(&aor)
            .and_then(|m| m.values().max_by_key(|b| b.updated))
            .ok_or_else(|| format!("Temporarily Unavailable ({aor} is not registered)"))?;
        let hop = match &freshest.flow {
            Some(Dest::Conn(conn)) if self.conns.contains_key(conn) => Hop {
                transport: freshest.transport,
                dest: Dest::Conn(*conn),
            },
            Some(Dest::Addr(addr)) => Hop {
                transport: Transport::Udp,
                dest: Dest::Addr(*addr),
            },
            _ if freshest.transport.is_websocket() => {
                return Err(format!(
                    "Temporarily Unavailable ({aor} registered over a WebSocket that is gone)"
                ));
            }
            _ => crate::engine::uri_hop(&freshest.contact)?,
        };
        Ok(Some((freshest.contact.clone(), hop)))
    }

    /// An INVITE from an untrusted source: taken (`Ok`) when its From is a
    /// registrar user whose credentials check (407 challenge first);
    /// `Err(Some(answer))` for a registrar user not (yet) authenticated,
    /// `Err(None)` for anyone else (the caller answers 403).
    pub(crate) fn authenticate_caller(
        &mut self,
        req: &Request,
    ) -> Result<(), Option<Box<Response>>> {
        let from = msg::address_uri(&req.headers, &HeaderName::From).unwrap_or_default();
        let aor = aor_of(&from).unwrap_or_default();
        let realm = aor
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        if !self.registrar_domain(&realm) || req.method != Method::Invite {
            return Err(None);
        }
        self.check_credentials(req, &HeaderName::ProxyAuthorization, &aor, &realm)
            .map_err(|why| Some(Box::new(self.denied(req, &realm, why, true))))
    }

    /// The bindings of `aor` now (for tests and operators).
    pub fn bindings(&self, aor: &str) -> Vec<BindingRecord> {
        let mut out: Vec<BindingRecord> = self
            .registrar
            .bindings
            .get(&aor.to_ascii_lowercase())
            .map(|m| m.iter().map(|(k, b)| self.record_of(k, b)).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7616_digest_parameters_with_quotes_and_commas() {
        let p = digest_params(
            r#"Digest username="alice", realm="example.net", nonce="1a.ff", uri="sip:example.net", qop=auth, nc=00000001, cnonce="x,y", response="ab", algorithm=SHA-256"#,
        )
        .expect("parses");
        assert_eq!(p["username"], "alice");
        assert_eq!(p["cnonce"], "x,y");
        assert_eq!(p["nc"], "00000001");
        assert_eq!(p["algorithm"], "SHA-256");
        assert!(digest_params("Basic YWxpY2U6c2VjcmV0").is_none());
    }

    #[test]
    fn rfc2617_3_5_ha1_is_derived_per_algorithm() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        let k = UserKeys::derive("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(k.ha1_md5, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(k.ha1_sha256.len(), 64);
    }
}
