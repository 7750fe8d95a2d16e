//! The configuration file (TOML). `config/gateway.toml` is the documented
//! example; a test parses it.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use stox_mapping::address::SipUri;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub xmpp: XmppSection,
    pub sip: SipSection,
    pub store: StoreSection,
    #[serde(default)]
    pub calls: CallsSection,
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
    /// How long to wait for the answer to an IQ the gateway sends.
    #[serde(default = "default_iq_timeout_ms")]
    pub iq_timeout_ms: u64,
    /// Silence after which the gateway pings its server.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// Every out-of-dialog request goes here when set.
    pub outbound_proxy: Option<String>,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file, created and migrated at start-up (relative paths are
    /// relative to the working directory).
    pub database: PathBuf,
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
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            ring_timeout_secs: default_ring_timeout_secs(),
            candidate_window_ms: default_candidate_window_ms(),
        }
    }
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
fn default_user_agent() -> String {
    format!("stox-gateway/{}", env!("CARGO_PKG_VERSION"))
}

impl Config {
    /// Reads and checks the file. The error is one line naming the problem.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
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
        let s = &self.sip;
        if s.udp.is_none() && s.tcp.is_none() && s.ws.is_none() {
            return Err("[sip] needs at least one listener (udp, tcp or ws)".into());
        }
        if let Some(proxy) = &s.outbound_proxy {
            SipUri::parse(proxy)
                .map_err(|e| format!("sip.outbound_proxy {proxy:?} is not a SIP URI: {e}"))?;
        }
        if self.store.database.as_os_str().is_empty() {
            return Err("store.database is empty".into());
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
        ];
        for (text, needle) in cases {
            let err = Config::parse(&text).expect_err("must be refused");
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(err.contains(needle), "{needle:?} in {err:?}");
        }
    }
}
