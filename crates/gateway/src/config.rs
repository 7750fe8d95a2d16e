//! The configuration file (TOML). `config/gateway.toml` is the documented
//! example; a test parses it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use stox_mapping::address::SipUri;
use stox_mapping::jingle::JingleLimits;
use stox_store::{Instance, Location, StoreOptions};
use stox_xmpp::limits::StanzaLimits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub xmpp: XmppSection,
    pub sip: SipSection,
    pub store: StoreSection,
    #[serde(default)]
    pub calls: CallsSection,
    /// The registrar for SIP users of its domains (browsers over ws/wss,
    /// softphones); absent: REGISTER gets 405.
    pub registrar: Option<RegistrarSection>,
    /// The rtpengines that anchor the media of peers with
    /// `media = "rtpengine"` (docs/media.md).
    pub rtpengine: Option<RtpengineSection>,
    /// The operations endpoint: /metrics, /health, /ready.
    pub http: Option<HttpSection>,
    /// The file it was read from (SIGHUP reads it again).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[http]` (docs/operations.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// `ip:port` serving /metrics (Prometheus text), /health and /ready.
    pub listen: SocketAddr,
}

/// `[rtpengine]` (docs/media.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpengineSection {
    /// NG control addresses (`ip:port`, UDP), tried in order: a call uses
    /// the first that answers, and keeps it.
    pub ng: Vec<SocketAddr>,
}

/// `media = …` of `[sip]` and of a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSetting {
    /// The SDP goes through as mapped.
    #[default]
    Passthrough,
    /// rtpengine anchors the media.
    Rtpengine,
}

/// `media_transport = …`: what an anchored SIP side is offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MediaTransport {
    #[default]
    #[serde(rename = "RTP/AVP")]
    RtpAvp,
    /// SRTP keyed by SDES (RFC 4568).
    #[serde(rename = "RTP/SAVP")]
    RtpSavp,
}

fn media_mode(setting: MediaSetting, transport: MediaTransport) -> stox_call::media::MediaMode {
    use stox_call::media::{MediaMode, SipMedia};
    match (setting, transport) {
        (MediaSetting::Passthrough, _) => MediaMode::Passthrough,
        (MediaSetting::Rtpengine, MediaTransport::RtpAvp) => MediaMode::Rtpengine(SipMedia::Rtp),
        (MediaSetting::Rtpengine, MediaTransport::RtpSavp) => MediaMode::Rtpengine(SipMedia::Sdes),
    }
}

/// `[registrar]` (docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSection {
    /// SIP domains whose users register here (each its own digest realm).
    pub domains: Vec<String>,
    /// The shortest registration taken (423 below it).
    #[serde(default = "default_min_expires_secs")]
    pub min_expires_secs: u32,
    /// The longest registration granted (a longer one is shortened).
    #[serde(default = "default_max_expires_secs")]
    pub max_expires_secs: u32,
    /// Digest algorithms challenged with, in the order offered.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

/// SHA-256 first (RFC 8760 clients take the first they support), MD5
/// last: JsSIP keeps only the last `WWW-Authenticate` it parses and knows
/// only MD5 (seen with JsSIP 3.10 in Chromium).
fn default_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}

fn default_min_expires_secs() -> u32 {
    60
}
fn default_max_expires_secs() -> u32 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmppSection {
    /// `host:port` of the XMPP server's component (XEP-0114) listener.
    pub server: String,
    /// The component's domain, e.g. `sip.example.com`.
    pub component: String,
    pub secret: String,
    /// XMPP domains reachable from SIP as `sip:user@<domain>`.
    pub domains: Vec<String>,
    /// Who may call out to SIP: domains (any JID of them) and bare JIDs.
    /// Default: `domains`.
    pub callers: Option<Vec<String>>,
    /// How long to wait for the answer to an IQ the gateway sends.
    #[serde(default = "default_iq_timeout_ms")]
    pub iq_timeout_ms: u64,
    /// Silence after which the gateway pings its server.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// Stanzas kept while the component is disconnected, sent once it is
    /// back (session-terminate to a user whose call ended meanwhile …).
    #[serde(default = "default_offline_queue")]
    pub offline_queue: usize,
    /// How long a kept stanza may wait for the connection.
    #[serde(default = "default_offline_ttl_secs")]
    pub offline_ttl_secs: u64,
    /// Limits on what the XMPP server may send (docs/security.md).
    #[serde(default)]
    pub limits: XmppLimits,
}

/// `[xmpp.limits]`: checked while a stanza is read, before any tree is
/// built, and on the children of a `<jingle/>`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppLimits {
    pub max_stanza_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    pub max_name_bytes: usize,
    pub max_attribute_bytes: usize,
    pub max_text_bytes: usize,
    pub max_contents: usize,
    pub max_payload_types: usize,
    pub max_candidates: usize,
    pub max_sources: usize,
    pub max_children: usize,
}

impl Default for XmppLimits {
    fn default() -> Self {
        let s = StanzaLimits::default();
        let j = JingleLimits::default();
        XmppLimits {
            max_stanza_bytes: s.max_stanza_bytes,
            max_depth: s.max_depth,
            max_elements: s.max_elements,
            max_attributes: s.max_attributes,
            max_name_bytes: s.max_name_bytes,
            max_attribute_bytes: s.max_attribute_bytes,
            max_text_bytes: s.max_text_bytes,
            max_contents: j.max_contents,
            max_payload_types: j.max_payload_types,
            max_candidates: j.max_candidates,
            max_sources: j.max_sources,
            max_children: j.max_children,
        }
    }
}

impl XmppLimits {
    pub fn stanza(&self) -> StanzaLimits {
        StanzaLimits {
            max_stanza_bytes: self.max_stanza_bytes,
            max_depth: self.max_depth,
            max_elements: self.max_elements,
            max_attributes: self.max_attributes,
            max_name_bytes: self.max_name_bytes,
            max_attribute_bytes: self.max_attribute_bytes,
            max_text_bytes: self.max_text_bytes,
        }
    }

    pub fn jingle(&self) -> JingleLimits {
        JingleLimits {
            max_contents: self.max_contents,
            max_payload_types: self.max_payload_types,
            max_candidates: self.max_candidates,
            max_sources: self.max_sources,
            max_children: self.max_children,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// SIP over TLS listener (port 5061 by convention).
    pub tls: Option<SocketAddr>,
    /// Secure WebSocket listener (`wss://`, what browsers on https pages
    /// need).
    pub wss: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) and key for `tls` and `wss`.
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates trusted for TLS connections the gateway opens,
    /// besides the Mozilla roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Name servers for RFC 3263 lookups (`ip:port`); default: the
    /// system's (/etc/resolv.conf).
    #[serde(default)]
    pub dns_servers: Vec<SocketAddr>,
    /// Every out-of-dialog request goes here when set.
    pub outbound_proxy: Option<String>,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Path MTU assumed for UDP: requests larger than this minus 200 bytes
    /// are "too large for UDP" (RFC 3261 §18.1.1).
    #[serde(default = "default_udp_mtu")]
    pub udp_mtu: usize,
    /// Send such requests over TCP (the next hop takes TCP).
    #[serde(default)]
    pub large_requests_over_tcp: bool,
    /// The address put in Via and Contact instead of the bound one (needed
    /// when listening on 0.0.0.0 or behind NAT).
    pub public_address: Option<std::net::IpAddr>,
    /// TCP and WebSocket connections open at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// … from one source IP address.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Messages waiting to be written on one connection.
    #[serde(default = "default_max_queued_writes")]
    pub max_queued_writes: usize,
    /// WebSocket pings, and CRLF keep-alives on TCP connections the gateway
    /// opened, this often.
    #[serde(default = "default_keepalive_secs_sip")]
    pub keepalive_secs: u64,
    /// A connection that carried no valid SIP message this long after it
    /// opened is closed.
    #[serde(default = "default_hello_timeout_secs")]
    pub hello_timeout_secs: u64,
    /// A connection no call uses is closed after this long idle (one that
    /// carries a call's dialog stays open).
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// RFC 4028 session timers: the Session-Expires asked for and accepted
    /// at most; 0 turns them off.
    #[serde(default = "default_session_expires_secs")]
    pub session_expires_secs: u32,
    /// The shortest Session-Expires accepted (422 below it). RFC 4028 says
    /// at least 90; lower values are for tests.
    #[serde(default = "default_min_se_secs")]
    pub min_se_secs: u32,
    /// Requests outside a dialog per second an untrusted source may send
    /// (a burst of twice as many); over it 503 with Retry-After, far over
    /// it no answer. 0: no limit. Trusted sources are not limited.
    #[serde(default = "default_max_requests_per_source")]
    pub max_requests_per_source: u32,
    /// Named SIP peers (trunks, proxies, PBXs): who may send us requests,
    /// where calls to their domains go, their credentials.
    #[serde(default)]
    pub peers: Vec<PeerSection>,
    /// How media is handled for every peer that does not say (and for the
    /// outbound proxy, registered users and other sources).
    #[serde(default)]
    pub media: MediaSetting,
    /// What an anchored SIP side is offered: "RTP/AVP" or "RTP/SAVP".
    #[serde(default)]
    pub media_transport: MediaTransport,
    /// OPTIONS to the outbound proxy and to every peer with a `uri` this
    /// often (seconds); a next hop that stops answering is down and calls
    /// routed to it are refused at once. 0: no probes, nothing is ever
    /// down (docs/operations.md).
    #[serde(default)]
    pub probe_secs: u64,
}

/// `[[sip.peers]]` (docs/configuration.md, docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    pub name: String,
    /// IP addresses and networks (CIDR) it sends from; the port is ignored.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Where calls routed to it go (`sip:host[:port][;transport=…]`);
    /// without it, to the Request-URI's host.
    pub uri: Option<String>,
    /// SIP domains routed to it.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Destination user parts routed to it (E.164 prefixes such as `+49`);
    /// with `domains`, both must match.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Who may call through it (domains and bare JIDs); default: everyone
    /// allowed to call out.
    #[serde(default)]
    pub callers: Vec<String>,
    /// Answer its 401/407 challenges with these.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Only challenges of this realm are answered, when set.
    pub realm: Option<String>,
    /// The From user part shown to it instead of the caller's (an account
    /// or DID the trunk expects).
    pub from_user: Option<String>,
    /// The From host shown to it instead of the caller's XMPP domain.
    pub from_domain: Option<String>,
    /// Add P-Asserted-Identity with the caller (RFC 3325; for a trunk in
    /// the same trust domain).
    #[serde(default)]
    pub asserted_identity: bool,
    /// Overrides `[sip] media` for this peer.
    pub media: Option<MediaSetting>,
    /// Overrides `[sip] media_transport` for this peer.
    pub media_transport: Option<MediaTransport>,
    /// Probed with OPTIONS when `[sip] probe_secs` is set (false: never
    /// marked down, for a peer that does not answer OPTIONS).
    #[serde(default = "default_probe")]
    pub probe: bool,
}

fn default_probe() -> bool {
    true
}

impl PeerSection {
    /// `sources` parsed (an address alone is a /32 or /128 network).
    pub fn source_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.sources
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "sip.peers {:?}: source {s:?} is not an IP address or network",
                            self.name
                        )
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file, created and migrated at start-up (relative paths are
    /// relative to the working directory). Either this or `url`.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// A PostgreSQL database shared by several gateways
    /// (`postgres://user[:password]@host[:port]/db`), migrated at start-up.
    /// Either this or `database`.
    #[serde(default)]
    pub url: Option<String>,
    /// This gateway's instance number on a shared store (0 to 8,388,607):
    /// its calls' ids are `instance << 40 | n` and it restores only those
    /// after a restart (docs/decisions/0010-scale-out.md). Every gateway on
    /// one store needs its own.
    #[serde(default)]
    pub instance: u32,
    /// Rows waiting to be written (the store failing or slow) above which
    /// new calls are refused with 503 / resource-constraint.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
    /// How long a write waits for another process's lock before the batch
    /// is retried later.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Rows of calls that ended more than this many days ago are deleted,
    /// once at start and then daily (docs/sql.md); unset: kept for ever.
    pub retention_days: Option<u32>,
}

impl StoreSection {
    /// Where the store is (`url` or `database`; loading the config makes
    /// sure there is exactly one).
    pub fn location(&self) -> Location {
        match (&self.url, &self.database) {
            (Some(url), _) => Location::Postgres(url.clone()),
            (None, Some(path)) => Location::Sqlite(path.clone()),
            (None, None) => Location::Sqlite(PathBuf::new()),
        }
    }

    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout_ms),
            instance: Instance::new(self.instance).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    /// How long a SIP → XMPP call may ring before the gateway gives up (480).
    #[serde(default = "default_ring_timeout_secs")]
    pub ring_timeout_secs: u64,
    /// How long an XMPP → SIP call whose client trickles its ICE candidates
    /// gathers them before sending the INVITE.
    #[serde(default = "default_candidate_window_ms")]
    pub candidate_window_ms: u64,
    /// The Retry-After of a 503 sent while the gateway cannot take calls.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u32,
    /// How often the XMPP user of an answered call is pinged (XEP-0199);
    /// one who does not answer (or is unavailable) is hung up on. 0 = never.
    #[serde(default = "default_peer_ping_secs")]
    pub peer_ping_secs: u64,
    /// The most calls at once; past it new calls get 503 / resource-constraint.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// The longest an answered call may last; 0 = no limit.
    #[serde(default)]
    pub max_duration_secs: u64,
    /// On SIGTERM: how long live calls may go on (new ones refused) before
    /// what is left is ended on both sides.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            ring_timeout_secs: default_ring_timeout_secs(),
            candidate_window_ms: default_candidate_window_ms(),
            retry_after_secs: default_retry_after_secs(),
            peer_ping_secs: default_peer_ping_secs(),
            max_duration_secs: 0,
            max_calls: default_max_calls(),
            drain_secs: default_drain_secs(),
        }
    }
}

fn default_drain_secs() -> u64 {
    30
}

fn default_iq_timeout_ms() -> u64 {
    10_000
}
fn default_keepalive_secs() -> u64 {
    60
}
fn default_ring_timeout_secs() -> u64 {
    60
}
fn default_candidate_window_ms() -> u64 {
    300
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_source() -> usize {
    64
}
fn default_max_queued_writes() -> usize {
    256
}
fn default_keepalive_secs_sip() -> u64 {
    30
}
fn default_hello_timeout_secs() -> u64 {
    5
}
fn default_idle_timeout_secs() -> u64 {
    120
}
fn default_session_expires_secs() -> u32 {
    1800
}
fn default_min_se_secs() -> u32 {
    90
}
fn default_max_requests_per_source() -> u32 {
    20
}
fn default_max_calls() -> usize {
    10_000
}
fn default_peer_ping_secs() -> u64 {
    30
}
fn default_udp_mtu() -> usize {
    1500
}
fn default_offline_queue() -> usize {
    10_000
}
fn default_offline_ttl_secs() -> u64 {
    120
}
fn default_max_backlog() -> usize {
    10_000
}
fn default_busy_timeout_ms() -> u64 {
    1000
}
fn default_retry_after_secs() -> u32 {
    10
}
fn default_user_agent() -> String {
    format!("stox-gateway/{}", env!("CARGO_PKG_VERSION"))
}

impl Config {
    /// Reads and checks the file. The error is one line naming the problem.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let mut cfg =
            Config::parse(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))?;
        cfg.source = Some(path.to_owned());
        Ok(cfg)
    }

    /// What differs between `self` and `new` that a reload (SIGHUP) cannot
    /// apply: listeners, the XMPP connection, the store, the registrar's
    /// domains, `[http]`, `[rtpengine]`. Empty: everything applies.
    pub fn needs_restart(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let (a, b) = (&self.sip, &new.sip);
        if (a.udp, a.tcp, a.ws, a.tls, a.wss) != (b.udp, b.tcp, b.ws, b.tls, b.wss) {
            keys.push("sip listeners");
        }
        if a.outbound_proxy != b.outbound_proxy {
            keys.push("sip.outbound_proxy");
        }
        if (&a.tls_certificate, &a.tls_key, &a.tls_ca_file)
            != (&b.tls_certificate, &b.tls_key, &b.tls_ca_file)
        {
            keys.push("sip TLS files");
        }
        if (&self.xmpp.server, &self.xmpp.component, &self.xmpp.secret)
            != (&new.xmpp.server, &new.xmpp.component, &new.xmpp.secret)
        {
            keys.push("xmpp.server/component/secret");
        }
        if (&self.store.database, &self.store.url, self.store.instance)
            != (&new.store.database, &new.store.url, new.store.instance)
        {
            keys.push("store.database/url/instance");
        }
        if self.registrar.as_ref().map(|r| &r.domains) != new.registrar.as_ref().map(|r| &r.domains)
        {
            keys.push("registrar");
        }
        if self.http.as_ref().map(|h| h.listen) != new.http.as_ref().map(|h| h.listen) {
            keys.push("http.listen");
        }
        if self.rtpengine.as_ref().map(|r| &r.ng) != new.rtpengine.as_ref().map(|r| &r.ng) {
            keys.push("rtpengine.ng");
        }
        keys
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        let x = &self.xmpp;
        if x.component.trim().is_empty() || x.component.contains(['@', '/']) {
            return Err(format!(
                "xmpp.component must be a domain, got {:?}",
                x.component
            ));
        }
        if x.secret.is_empty() {
            return Err("xmpp.secret is empty".into());
        }
        if x.server.parse::<SocketAddr>().is_err() && !x.server.contains(':') {
            return Err(format!("xmpp.server must be host:port, got {:?}", x.server));
        }
        if x.domains.is_empty() || x.domains.iter().any(|d| d.trim().is_empty()) {
            return Err("xmpp.domains must list at least one XMPP domain".into());
        }
        if x.iq_timeout_ms == 0 || x.keepalive_secs == 0 {
            return Err("xmpp.iq_timeout_ms and xmpp.keepalive_secs must be positive".into());
        }
        if x.offline_queue == 0 || x.offline_ttl_secs == 0 {
            return Err("xmpp.offline_queue and xmpp.offline_ttl_secs must be positive".into());
        }
        x.limits.stanza().check()?;
        let j = x.limits.jingle();
        for (key, value) in [
            ("max_contents", j.max_contents),
            ("max_payload_types", j.max_payload_types),
            ("max_candidates", j.max_candidates),
            ("max_sources", j.max_sources),
            ("max_children", j.max_children),
        ] {
            if value == 0 {
                return Err(format!("xmpp.limits.{key} must be at least 1"));
            }
        }
        let s = &self.sip;
        if s.udp.is_none()
            && s.tcp.is_none()
            && s.ws.is_none()
            && s.tls.is_none()
            && s.wss.is_none()
        {
            return Err("[sip] needs at least one listener (udp, tcp, ws, tls or wss)".into());
        }
        if (s.tls.is_some() || s.wss.is_some())
            && (s.tls_certificate.is_none() || s.tls_key.is_none())
        {
            return Err("sip.tls and sip.wss need sip.tls_certificate and sip.tls_key".into());
        }
        if s.tls_certificate.is_some() != s.tls_key.is_some() {
            return Err("sip.tls_certificate and sip.tls_key go together".into());
        }
        if !(576..=65_535).contains(&s.udp_mtu) {
            return Err(format!(
                "sip.udp_mtu must be 576..=65535, got {}",
                s.udp_mtu
            ));
        }
        for (key, value) in [
            ("max_connections", s.max_connections as u64),
            (
                "max_connections_per_source",
                s.max_connections_per_source as u64,
            ),
            ("max_queued_writes", s.max_queued_writes as u64),
            ("keepalive_secs", s.keepalive_secs),
            ("hello_timeout_secs", s.hello_timeout_secs),
            ("idle_timeout_secs", s.idle_timeout_secs),
            ("min_se_secs", u64::from(s.min_se_secs)),
        ] {
            if value == 0 {
                return Err(format!("sip.{key} must be at least 1"));
            }
        }
        if s.session_expires_secs != 0 && s.session_expires_secs < s.min_se_secs {
            return Err(format!(
                "sip.session_expires_secs ({}) is below sip.min_se_secs ({}); use 0 to turn session timers off",
                s.session_expires_secs, s.min_se_secs
            ));
        }
        let unspecified = [s.udp, s.tcp, s.ws, s.tls, s.wss]
            .into_iter()
            .flatten()
            .any(|a| a.ip().is_unspecified());
        if unspecified && s.public_address.is_none() {
            return Err(
                "sip.public_address is required when a listener is on 0.0.0.0 or [::] (it goes in Via and Contact)"
                    .into(),
            );
        }
        if s.large_requests_over_tcp && s.tcp.is_none() {
            return Err("sip.large_requests_over_tcp needs a tcp listener (sip.tcp)".into());
        }
        if let Some(proxy) = &s.outbound_proxy {
            SipUri::parse(proxy)
                .map_err(|e| format!("sip.outbound_proxy {proxy:?} is not a SIP URI: {e}"))?;
        }
        let mut names = std::collections::HashSet::new();
        for peer in &s.peers {
            let name = &peer.name;
            if name.trim().is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!("sip.peers: name {name:?} must be a word"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("sip.peers: {name:?} twice"));
            }
            peer.source_nets()?;
            if let Some(uri) = &peer.uri {
                SipUri::parse(uri).map_err(|e| {
                    format!("sip.peers {name:?}: uri {uri:?} is not a SIP URI: {e}")
                })?;
            }
            for (key, value) in [
                ("from_user", &peer.from_user),
                ("from_domain", &peer.from_domain),
            ] {
                if let Some(v) = value
                    && (v.trim().is_empty() || v.contains(['@', '<', '>', ' ', ';']))
                {
                    return Err(format!(
                        "sip.peers {name:?}: {key} {v:?} is not a SIP user or host"
                    ));
                }
            }
            if peer.username.is_some() != peer.password.is_some() {
                return Err(format!(
                    "sip.peers {name:?}: username and password go together"
                ));
            }
        }
        if self.store.retention_days == Some(0) {
            return Err(
                "store.retention_days must be at least 1 (leave it out to keep rows)".into(),
            );
        }
        let anchored = s.media == MediaSetting::Rtpengine
            || s.peers
                .iter()
                .any(|p| p.media == Some(MediaSetting::Rtpengine));
        match &self.rtpengine {
            Some(r) if r.ng.is_empty() => {
                return Err("rtpengine.ng must list at least one NG address".into());
            }
            None if anchored => {
                return Err("media = \"rtpengine\" needs [rtpengine] ng = [\"ip:port\", …]".into());
            }
            _ => {}
        }
        if let Some(r) = &self.registrar {
            if r.domains.is_empty()
                || r.domains
                    .iter()
                    .any(|d| d.trim().is_empty() || d.contains(['@', ':', '/']))
            {
                return Err("registrar.domains must list SIP domains".into());
            }
            if r.algorithms.is_empty()
                || r.algorithms
                    .iter()
                    .any(|a| !matches!(a.as_str(), "MD5" | "SHA-256"))
            {
                return Err(
                    "registrar.algorithms: MD5 and/or SHA-256, in the order offered".into(),
                );
            }
            if r.min_expires_secs == 0 || r.min_expires_secs > r.max_expires_secs {
                return Err("registrar.min_expires_secs must be 1..=max_expires_secs".into());
            }
        }
        if let Some(callers) = &x.callers
            && callers.iter().any(|c| c.trim().is_empty())
        {
            return Err("xmpp.callers has an empty entry".into());
        }
        match (&self.store.database, &self.store.url) {
            (Some(_), Some(_)) => {
                return Err(
                    "store: set database (an SQLite file) or url (PostgreSQL), not both".into(),
                );
            }
            (None, None) => {
                return Err("store: set database (an SQLite file) or url (PostgreSQL)".into());
            }
            (Some(path), None) if path.as_os_str().is_empty() => {
                return Err("store.database is empty".into());
            }
            (None, Some(url)) if !matches!(Location::parse(url), Location::Postgres(_)) => {
                return Err(format!(
                    "store.url must be a postgres:// or postgresql:// URL, not {:?} \
                     (an SQLite file is store.database)",
                    Location::parse(url).to_string()
                ));
            }
            _ => {}
        }
        if Instance::new(self.store.instance).is_none() {
            return Err(format!(
                "store.instance must be at most {}, not {}",
                Instance::MAX,
                self.store.instance
            ));
        }
        if self.store.max_backlog == 0 {
            return Err("store.max_backlog must be at least 1".into());
        }
        if self.calls.ring_timeout_secs == 0 {
            return Err("calls.ring_timeout_secs must be positive".into());
        }
        if self.calls.candidate_window_ms > 10_000 {
            return Err("calls.candidate_window_ms must be at most 10000".into());
        }
        Ok(())
    }
}

impl Config {
    /// The outbound call policy the core applies (policy.rs in stox-call).
    pub fn policy(&self) -> stox_call::policy::Policy {
        stox_call::policy::Policy {
            callers: self
                .xmpp
                .callers
                .clone()
                .unwrap_or_else(|| self.xmpp.domains.clone()),
            outbound_proxy: self.sip.outbound_proxy.is_some(),
            registrar_domains: self
                .registrar
                .as_ref()
                .map(|r| r.domains.clone())
                .unwrap_or_default(),
            peers: self
                .sip
                .peers
                .iter()
                .map(|p| stox_call::policy::PeerRoute {
                    name: p.name.clone(),
                    domains: p.domains.clone(),
                    prefixes: p.prefixes.clone(),
                    callers: p.callers.clone(),
                })
                .collect(),
        }
    }

    /// Which calls rtpengine anchors, for the core.
    pub fn media_policy(&self) -> Result<stox_call::media::MediaPolicy, String> {
        let s = &self.sip;
        let mut peers = Vec::new();
        for p in &s.peers {
            peers.push(stox_call::media::PeerMedia {
                name: p.name.clone(),
                sources: p.source_nets()?,
                mode: media_mode(
                    p.media.unwrap_or(s.media),
                    p.media_transport.unwrap_or(s.media_transport),
                ),
            });
        }
        Ok(stox_call::media::MediaPolicy {
            default: media_mode(s.media, s.media_transport),
            peers,
        })
    }

    /// The sources whose requests the SIP layer takes: every peer's, and
    /// the outbound proxy's address (resolved now when it is a name).
    pub fn trusted_sources(&self) -> Result<Vec<ipnet::IpNet>, String> {
        let mut nets = Vec::new();
        for peer in &self.sip.peers {
            nets.extend(peer.source_nets()?);
        }
        if let Some(proxy) = &self.sip.outbound_proxy {
            let uri = SipUri::parse(proxy).map_err(|e| e.to_string())?;
            let host = uri.host.trim_start_matches('[').trim_end_matches(']');
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) => nets.push(ip.into()),
                Err(_) => {
                    use std::net::ToSocketAddrs;
                    let addrs =
                        (host, uri.port.unwrap_or(5060))
                            .to_socket_addrs()
                            .map_err(|e| {
                                format!("sip.outbound_proxy {host:?} does not resolve: {e}")
                            })?;
                    nets.extend(addrs.map(|a| ipnet::IpNet::from(a.ip())));
                }
            }
        }
        Ok(nets)
    }

    /// How often next hops are probed (`[sip] probe_secs`; `None`: never).
    pub fn probe_interval(&self) -> Option<std::time::Duration> {
        (self.sip.probe_secs > 0).then(|| std::time::Duration::from_secs(self.sip.probe_secs))
    }

    /// The peers as the SIP layer needs them.
    pub fn sip_peers(&self) -> Vec<stox_sipcore::api::Peer> {
        self.sip
            .peers
            .iter()
            .map(|p| stox_sipcore::api::Peer {
                name: p.name.clone(),
                uri: p.uri.clone(),
                credentials: match (&p.username, &p.password) {
                    (Some(username), Some(password)) => Some(stox_sipcore::api::Credentials {
                        username: username.clone(),
                        password: password.clone(),
                        realm: p.realm.clone(),
                    }),
                    _ => None,
                },
                identity: stox_sipcore::api::Identity {
                    from_user: p.from_user.clone(),
                    from_domain: p.from_domain.clone(),
                    asserted_identity: p.asserted_identity,
                },
                probe: p.probe,
            })
            .collect()
    }
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c.is_whitespace()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../../config/gateway.toml");
        let cfg = Config::parse(text).expect("config/gateway.toml is valid");
        assert_eq!(cfg.xmpp.component, "sip.example.com");
        assert_eq!(cfg.xmpp.domains, vec!["example.com".to_owned()]);
        assert!(cfg.sip.udp.is_some() && cfg.sip.tcp.is_some() && cfg.sip.ws.is_some());
        assert_eq!(cfg.calls.ring_timeout_secs, 60);
    }

    #[test]
    fn errors_name_the_problem_on_one_line() {
        let base = include_str!("../../../config/gateway.toml");
        let cases = [
            (base.replace("secret = \"s3cret\"", ""), "secret"),
            (
                base.replace("domains = [\"example.com\"]", "domains = []"),
                "xmpp.domains",
            ),
            (base.replace("udp = ", "udpx = "), "udpx"),
            (base.replace("\"127.0.0.1:8080\"", "\"nope\""), "ws"),
            (
                base.replace("sip:127.0.0.1:5070", "http://x"),
                "outbound_proxy",
            ),
            ("[xmpp".to_owned(), ""),
            (
                base.replace("[sip]", "[xmpp.limits]\nmax_attribute_bytes = 9000\n[sip]"),
                "xmpp.limits.max_attribute_bytes",
            ),
            (
                base.replace("[sip]", "[xmpp.limits]\nmax_depth = 0\n[sip]"),
                "xmpp.limits.max_depth",
            ),
            (
                base.replace("[sip]", "[xmpp.limits]\nmax_dept = 3\n[sip]"),
                "max_dept",
            ),
            (
                base.replace("[calls]", "[calls]\nretry_after_secs = -1"),
                "retry_after_secs",
            ),
            (
                base.replace("[calls]", "url = \"postgres://db/stox\"\n[calls]"),
                "not both",
            ),
            (
                base.replace(
                    "database = \"stox-gateway.db\"",
                    "url = \"mysql://db/stox\"",
                ),
                "store.url must be a postgres://",
            ),
            (
                base.replace("database = \"stox-gateway.db\"", "instance = 1"),
                "set database (an SQLite file) or url",
            ),
            (
                base.replace("[calls]", "instance = 8388608\n[calls]"),
                "store.instance must be at most 8388607",
            ),
        ];
        for (text, needle) in cases {
            let err = Config::parse(&text).expect_err("must be refused");
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(err.contains(needle), "{needle:?} in {err:?}");
        }
    }

    /// docs/decisions/0010-scale-out.md: a shared PostgreSQL store and an
    /// instance number; the password never reaches a log line.
    #[test]
    fn a_shared_store_is_a_postgres_url_and_an_instance() {
        let base = include_str!("../../../config/gateway.toml");
        let cfg = Config::parse(&base.replace(
            "database = \"stox-gateway.db\"",
            "url = \"postgres://stox:pw@127.0.0.1:5432/stox\"\ninstance = 7",
        ))
        .expect("valid");
        let location = cfg.store.location();
        assert_eq!(location.backend(), "postgres");
        assert_eq!(
            location.to_string(),
            "postgres://stox:***@127.0.0.1:5432/stox"
        );
        assert_eq!(cfg.store.options().instance.get(), 7);
        let sqlite = Config::parse(base).expect("valid");
        assert_eq!(sqlite.store.location().backend(), "sqlite");
        assert_eq!(sqlite.store.options().instance.get(), 0);
        assert_eq!(
            sqlite.needs_restart(&cfg),
            vec!["store.database/url/instance"]
        );
    }

    const PEER: &str = "\n[[sip.peers]]\nname = \"trunk1\"\nsources = [\"192.0.2.10\", \"198.51.100.0/24\", \"2001:db8::/32\"]\n\
                        uri = \"sip:192.0.2.10:5060\"\ndomains = [\"trunk.example\"]\nusername = \"gw\"\npassword = \"pw\"\n";

    #[test]
    fn media_modes_per_peer_need_an_rtpengine() {
        use stox_call::media::{MediaMode, SipMedia};
        let base = include_str!("../../../config/gateway.toml");
        let anchored =
            format!("{base}{PEER}media = \"rtpengine\"\nmedia_transport = \"RTP/SAVP\"\n");
        let err = Config::parse(&anchored).expect_err("no [rtpengine]");
        assert!(err.contains("[rtpengine]"), "{err}");
        let cfg = Config::parse(&format!(
            "{anchored}\n[rtpengine]\nng = [\"127.0.0.1:2223\"]\n"
        ))
        .expect("valid");
        let policy = cfg.media_policy().expect("policy");
        assert_eq!(policy.default, MediaMode::Passthrough);
        assert_eq!(
            policy.for_peer(Some("trunk1")),
            MediaMode::Rtpengine(SipMedia::Sdes)
        );
        assert_eq!(
            policy.for_source("198.51.100.7".parse().expect("ip")),
            MediaMode::Rtpengine(SipMedia::Sdes)
        );
        let empty = format!("{base}\n[rtpengine]\nng = []\n");
        assert!(Config::parse(&empty).is_err(), "an empty ng list");
        let bad = base.replace("outbound_proxy = ", "media = \"relay\"\noutbound_proxy = ");
        assert!(Config::parse(&bad).is_err(), "an unknown media mode");
    }

    #[test]
    fn peers_make_the_trust_list_and_the_policy() {
        let base = include_str!("../../../config/gateway.toml");
        let cfg = Config::parse(&format!("{base}{PEER}")).expect("valid");
        let nets: Vec<String> = cfg
            .trusted_sources()
            .expect("resolves")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            [
                "192.0.2.10/32",
                "198.51.100.0/24",
                "2001:db8::/32",
                "127.0.0.1/32"
            ],
            "the peer's sources and the outbound proxy"
        );
        let policy = cfg.policy();
        assert_eq!(policy.callers, ["example.com"], "default: xmpp.domains");
        assert!(policy.outbound_proxy);
        assert_eq!(policy.peers[0].domains, ["trunk.example"]);
        let peers = cfg.sip_peers();
        let creds = peers[0].credentials.as_ref().expect("credentials");
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("gw", "pw")
        );
        assert!(
            !format!("{creds:?}").contains("pw"),
            "the password is never logged"
        );

        let no_proxy = base.replace("outbound_proxy = ", "# outbound_proxy = ");
        let cfg = Config::parse(&no_proxy).expect("valid");
        assert!(
            cfg.trusted_sources().expect("ok").is_empty(),
            "nobody by default"
        );
        assert!(!cfg.policy().outbound_proxy);
    }

    /// docs/operations.md: OPTIONS probes are off unless `probe_secs` is
    /// set, and then cover every peer with a `uri` but those that opt out.
    #[test]
    fn probes_are_off_by_default_and_each_peer_may_opt_out() {
        let example = include_str!("../../../config/gateway.toml");
        // The example config turns probes on; without the key they are off.
        let probe_line = example
            .lines()
            .find(|l| l.starts_with("probe_secs = "))
            .expect("the example sets probe_secs");
        let base = example.replace(probe_line, "");
        assert_eq!(
            Config::parse(example).expect("valid").probe_interval(),
            Some(std::time::Duration::from_secs(30))
        );
        let cfg = Config::parse(&format!("{base}{PEER}")).expect("valid");
        assert_eq!(cfg.probe_interval(), None);
        assert!(cfg.sip_peers()[0].probe, "on by default once probing is");
        let on = base.replace("[sip]\n", "[sip]\nprobe_secs = 5\n");
        let cfg = Config::parse(&format!("{on}{PEER}probe = false\n")).expect("valid");
        assert_eq!(
            cfg.probe_interval(),
            Some(std::time::Duration::from_secs(5))
        );
        assert!(!cfg.sip_peers()[0].probe);
    }

    #[test]
    fn bad_peers_are_refused_with_their_name() {
        let base = include_str!("../../../config/gateway.toml");
        for (bad, needle) in [
            (
                PEER.replace("192.0.2.10\", \"198", "192.0.2.999\", \"198"),
                "192.0.2.999",
            ),
            (PEER.replace("sip:192.0.2.10:5060", "mailto:x"), "uri"),
            (
                PEER.replace("password = \"pw\"\n", ""),
                "username and password",
            ),
            (format!("{PEER}{PEER}"), "twice"),
            (
                PEER.replace("name = \"trunk1\"", "name = \"two words\""),
                "must be a word",
            ),
            (PEER.replace("domains", "domain"), "domain"),
        ] {
            let err = Config::parse(&format!("{base}{bad}")).expect_err("refused");
            assert!(err.contains(needle), "{needle:?} in {err:?}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
