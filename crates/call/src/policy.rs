//! Who may call out through the gateway, and where each call goes.
//!
//! An XMPP user's call (session-initiate or XEP-0353 propose) is allowed
//! when its caller is in `callers` (a domain: any JID of it; a bare JID:
//! that user). Its destination (`sip:user@host` from the gateway JID) goes
//! to the first configured peer that takes it — `host` is one of the peer's
//! `domains` (or it has none), and `user` starts with one of its
//! `prefixes` (or it has none); a peer with neither takes nothing — if the
//! caller may use that peer. Else, with an outbound proxy, to the proxy; else
//! the call is refused: the gateway never sends an INVITE to a host a
//! caller chose (it would make the gateway a reflector).

use stox_mapping::address::SipUri;

/// The outbound call policy ([`crate::CoreConfig::policy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Domains and bare JIDs allowed to call out at all.
    pub callers: Vec<String>,
    /// An outbound proxy takes every call no peer takes.
    pub outbound_proxy: bool,
    /// Peers that take calls, in order.
    pub peers: Vec<PeerRoute>,
    /// The registrar's domains: their registered users are reachable.
    pub registrar_domains: Vec<String>,
}

/// A peer as the policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRoute {
    pub name: String,
    /// SIP domains whose calls go to this peer.
    pub domains: Vec<String>,
    /// Destination user parts it takes (E.164 prefixes such as `+49`).
    pub prefixes: Vec<String>,
    /// Who may call through it (domains and bare JIDs); empty: every
    /// allowed caller.
    pub callers: Vec<String>,
}

/// Where an allowed call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To this configured peer.
    Peer(String),
    /// To the outbound proxy.
    Proxy,
    /// To a registered user of the gateway's registrar.
    Registrar,
}

/// Is the bare JID `caller` one of `list` (a domain, or the JID itself)?
fn listed(list: &[String], caller: &str) -> bool {
    let caller = caller.to_ascii_lowercase();
    let domain = caller.rsplit_once('@').map_or(caller.as_str(), |(_, d)| d);
    list.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        entry == caller || (!entry.contains('@') && entry == domain)
    })
}

impl PeerRoute {
    /// Does this peer take calls to `target`?
    fn takes(&self, target: &SipUri) -> bool {
        if self.domains.is_empty() && self.prefixes.is_empty() {
            return false;
        }
        let host = target.host.to_ascii_lowercase();
        let domain_ok =
            self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(&host));
        let user = target.user.as_deref().unwrap_or("");
        let prefix_ok =
            self.prefixes.is_empty() || self.prefixes.iter().any(|p| user.starts_with(p.as_str()));
        domain_ok && prefix_ok
    }
}

impl Policy {
    /// Where a call from the bare JID `caller` to `target` goes, or why it
    /// may not.
    pub fn route(&self, caller: &str, target: &SipUri) -> Result<Route, String> {
        if !listed(&self.callers, caller) {
            return Err(format!("{caller} may not call out through this gateway"));
        }
        if self
            .registrar_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&target.host))
        {
            return Ok(Route::Registrar);
        }
        if let Some(peer) = self.peers.iter().find(|p| p.takes(target)) {
            if !peer.callers.is_empty() && !listed(&peer.callers, caller) {
                return Err(format!(
                    "{caller} may not call {} (peer {})",
                    target.host, peer.name
                ));
            }
            return Ok(Route::Peer(peer.name.clone()));
        }
        if self.outbound_proxy {
            return Ok(Route::Proxy);
        }
        Err(format!(
            "no route to {}: not a destination of any configured peer, and no outbound proxy",
            target.host
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> SipUri {
        SipUri::parse(text).expect("uri")
    }

    fn policy() -> Policy {
        Policy {
            callers: vec!["example.com".into(), "guest@other.org".into()],
            outbound_proxy: false,
            registrar_domains: vec!["web.example".into()],
            peers: vec![
                PeerRoute {
                    name: "trunk".into(),
                    domains: vec!["trunk.example".into()],
                    prefixes: vec!["+49".into()],
                    callers: vec!["example.com".into()],
                },
                PeerRoute {
                    name: "pbx".into(),
                    domains: vec!["pbx.example".into()],
                    ..PeerRoute::default()
                },
                PeerRoute {
                    name: "inbound-only".into(),
                    ..PeerRoute::default()
                },
            ],
        }
    }

    #[test]
    fn only_listed_callers_call_out() {
        let p = policy();
        let pbx = uri("sip:100@pbx.example");
        assert_eq!(
            p.route("juliet@example.com", &pbx),
            Ok(Route::Peer("pbx".into()))
        );
        assert_eq!(
            p.route("guest@other.org", &pbx),
            Ok(Route::Peer("pbx".into()))
        );
        assert_eq!(
            p.route("GUEST@Other.org", &pbx),
            Ok(Route::Peer("pbx".into()))
        );
        assert!(p.route("mallory@other.org", &pbx).is_err());
        assert!(p.route("eve@evil.example", &pbx).is_err());
        assert!(p.route("example.com@evil.example", &pbx).is_err());
    }

    #[test]
    fn a_peer_takes_its_domains_and_prefixes_for_its_callers() {
        let p = policy();
        let de = uri("sip:+4930123@trunk.example");
        assert_eq!(
            p.route("juliet@example.com", &de),
            Ok(Route::Peer("trunk".into()))
        );
        let err = p
            .route("guest@other.org", &de)
            .expect_err("not a trunk caller");
        assert!(err.contains("peer trunk"), "{err}");
        // Not a prefix the trunk takes, and no proxy.
        assert!(
            p.route("juliet@example.com", &uri("sip:+3312@trunk.example"))
                .is_err()
        );
    }

    #[test]
    fn the_registrars_users_are_reachable_without_a_proxy() {
        let p = policy();
        let alice = uri("sip:alice@web.example");
        assert_eq!(p.route("juliet@example.com", &alice), Ok(Route::Registrar));
        assert!(
            p.route("eve@evil.example", &alice).is_err(),
            "callers still apply"
        );
    }

    #[test]
    fn never_an_arbitrary_host_without_a_proxy() {
        let mut p = policy();
        let reflected = uri("sip:victim@203.0.113.9:9999");
        let err = p
            .route("juliet@example.com", &reflected)
            .expect_err("refused");
        assert!(err.contains("no route to 203.0.113.9"), "{err}");
        p.outbound_proxy = true;
        assert_eq!(p.route("juliet@example.com", &reflected), Ok(Route::Proxy));
        assert!(
            p.route("eve@evil.example", &reflected).is_err(),
            "callers still apply"
        );
    }
}
