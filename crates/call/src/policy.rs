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
//!
//! A next hop the SIP layer found [`Down`] (its OPTIONS probes, an INVITE
//! that got no answer) is passed over: the call goes to the next peer that
//! takes it and that the caller may use; when every one is down (or the
//! outbound proxy is), the call is [`Refusal::Unavailable`] — a call no
//! route allows stays [`Refusal::Forbidden`], whatever is down.

use std::collections::BTreeMap;
use stox_mapping::address::SipUri;
use stox_sipcore::api::NextHop;

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

/// Next hops known to be down, with why (the SIP layer's
/// `Output::Health`, through `Input::PeerHealth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Down(BTreeMap<NextHop, String>);

impl Down {
    /// `hop` is down (`Some(why)`) or usable (`None`).
    pub fn set(&mut self, hop: NextHop, down: Option<String>) {
        match down {
            Some(why) => {
                self.0.insert(hop, why);
            }
            None => {
                self.0.remove(&hop);
            }
        }
    }

    /// Why `hop` is down, if it is.
    pub fn why(&self, hop: &NextHop) -> Option<&str> {
        self.0.get(hop).map(String::as_str)
    }
}

/// Why a call may not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No route allows it (`forbidden`).
    Forbidden(String),
    /// It may go out, but every next hop it could take is down
    /// (`service-unavailable`): each, in the order tried, with why.
    Unavailable(Vec<(NextHop, String)>),
}

/// The refusal in words (the IQ error's text, the row's `end_detail`).
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forbidden(why) => f.write_str(why),
            Refusal::Unavailable(hops) => {
                for (i, (hop, why)) in hops.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{hop} is down ({why})")?;
                }
                Ok(())
            }
        }
    }
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

impl Route {
    /// The next hop whose health decides whether the call can go.
    pub fn next_hop(&self) -> Option<NextHop> {
        match self {
            Route::Peer(name) => Some(NextHop::Peer(name.clone())),
            Route::Proxy => Some(NextHop::OutboundProxy),
            Route::Registrar => None,
        }
    }
}

impl Policy {
    /// Where a call from the bare JID `caller` to `target` goes, passing
    /// over the next hops that are `down`, or why it may not. The first
    /// peer that takes `target` decides whether the caller may call it at
    /// all; the peers after it that take it too are where the call goes
    /// while the ones before are down.
    pub fn route(&self, caller: &str, target: &SipUri, down: &Down) -> Result<Route, Refusal> {
        if !listed(&self.callers, caller) {
            return Err(Refusal::Forbidden(format!(
                "{caller} may not call out through this gateway"
            )));
        }
        if self
            .registrar_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&target.host))
        {
            return Ok(Route::Registrar);
        }
        let allows = |peer: &PeerRoute| peer.callers.is_empty() || listed(&peer.callers, caller);
        let mut takers = self.peers.iter().filter(|p| p.takes(target)).peekable();
        if let Some(first) = takers.peek() {
            if !allows(first) {
                return Err(Refusal::Forbidden(format!(
                    "{caller} may not call {} (peer {})",
                    target.host, first.name
                )));
            }
            let mut unavailable = Vec::new();
            for peer in takers.filter(|p| allows(p)) {
                let route = Route::Peer(peer.name.clone());
                match route
                    .next_hop()
                    .and_then(|hop| Some((down.why(&hop)?, hop)))
                {
                    Some((why, hop)) => unavailable.push((hop, why.to_owned())),
                    None => return Ok(route),
                }
            }
            return Err(Refusal::Unavailable(unavailable));
        }
        if self.outbound_proxy {
            return match down.why(&NextHop::OutboundProxy) {
                Some(why) => Err(Refusal::Unavailable(vec![(
                    NextHop::OutboundProxy,
                    why.to_owned(),
                )])),
                None => Ok(Route::Proxy),
            };
        }
        Err(Refusal::Forbidden(format!(
            "no route to {}: not a destination of any configured peer, and no outbound proxy",
            target.host
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up() -> Down {
        Down::default()
    }

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
            p.route("juliet@example.com", &pbx, &up()),
            Ok(Route::Peer("pbx".into()))
        );
        assert_eq!(
            p.route("guest@other.org", &pbx, &up()),
            Ok(Route::Peer("pbx".into()))
        );
        assert_eq!(
            p.route("GUEST@Other.org", &pbx, &up()),
            Ok(Route::Peer("pbx".into()))
        );
        assert!(p.route("mallory@other.org", &pbx, &up()).is_err());
        assert!(p.route("eve@evil.example", &pbx, &up()).is_err());
        assert!(p.route("example.com@evil.example", &pbx, &up()).is_err());
    }

    #[test]
    fn a_peer_takes_its_domains_and_prefixes_for_its_callers() {
        let p = policy();
        let de = uri("sip:+4930123@trunk.example");
        assert_eq!(
            p.route("juliet@example.com", &de, &up()),
            Ok(Route::Peer("trunk".into()))
        );
        let err = p
            .route("guest@other.org", &de, &up())
            .expect_err("not a trunk caller");
        assert!(err.to_string().contains("peer trunk"), "{err}");
        // Not a prefix the trunk takes, and no proxy.
        assert!(
            p.route("juliet@example.com", &uri("sip:+3312@trunk.example"), &up())
                .is_err()
        );
    }

    #[test]
    fn the_registrars_users_are_reachable_without_a_proxy() {
        let p = policy();
        let alice = uri("sip:alice@web.example");
        assert_eq!(
            p.route("juliet@example.com", &alice, &up()),
            Ok(Route::Registrar)
        );
        assert!(
            p.route("eve@evil.example", &alice, &up()).is_err(),
            "callers still apply"
        );
    }

    #[test]
    fn never_an_arbitrary_host_without_a_proxy() {
        let mut p = policy();
        let reflected = uri("sip:victim@203.0.113.9:9999");
        let err = p
            .route("juliet@example.com", &reflected, &up())
            .expect_err("refused");
        assert!(err.to_string().contains("no route to 203.0.113.9"), "{err}");
        p.outbound_proxy = true;
        assert_eq!(
            p.route("juliet@example.com", &reflected, &up()),
            Ok(Route::Proxy)
        );
        assert!(
            p.route("eve@evil.example", &reflected, &up()).is_err(),
            "callers still apply"
        );
    }

    fn down(hops: &[(NextHop, &str)]) -> Down {
        let mut d = Down::default();
        for (hop, why) in hops {
            d.set(hop.clone(), Some((*why).to_owned()));
        }
        d
    }

    fn peer(name: &str) -> NextHop {
        NextHop::Peer(name.into())
    }

    #[test]
    fn a_peer_that_is_down_is_passed_over_for_the_next_that_takes_the_call() {
        let mut p = policy();
        p.peers.insert(
            1,
            PeerRoute {
                name: "backup".into(),
                domains: vec!["trunk.example".into()],
                ..PeerRoute::default()
            },
        );
        let de = uri("sip:+4930123@trunk.example");
        let trunk_down = down(&[(peer("trunk"), "no answer to OPTIONS")]);
        assert_eq!(
            p.route("juliet@example.com", &de, &trunk_down),
            Ok(Route::Peer("backup".into()))
        );
        let both = down(&[(peer("trunk"), "503"), (peer("backup"), "timer F")]);
        let refused = p
            .route("juliet@example.com", &de, &both)
            .expect_err("nowhere to go");
        assert_eq!(
            refused,
            Refusal::Unavailable(vec![
                (peer("trunk"), "503".into()),
                (peer("backup"), "timer F".into())
            ])
        );
        assert_eq!(
            refused.to_string(),
            "SIP peer trunk is down (503); SIP peer backup is down (timer F)"
        );
        // Whatever is down, the first peer still decides who may call.
        let refused = p
            .route("guest@other.org", &de, &both)
            .expect_err("not a trunk caller");
        assert!(matches!(refused, Refusal::Forbidden(_)), "{refused:?}");
        // Up again.
        let mut d = both;
        d.set(peer("trunk"), None);
        assert_eq!(
            p.route("juliet@example.com", &de, &d),
            Ok(Route::Peer("trunk".into()))
        );
    }

    #[test]
    fn a_proxy_that_is_down_makes_its_calls_unavailable_not_forbidden() {
        let mut p = policy();
        p.outbound_proxy = true;
        let other = uri("sip:bob@elsewhere.example");
        let d = down(&[(NextHop::OutboundProxy, "connection refused")]);
        let refused = p.route("juliet@example.com", &other, &d).expect_err("down");
        assert_eq!(
            refused.to_string(),
            "the outbound proxy is down (connection refused)"
        );
        // A peer's destination does not fall back to the proxy, nor the
        // registrar's users depend on it.
        let pbx_down = down(&[(peer("pbx"), "timer F")]);
        assert!(matches!(
            p.route("juliet@example.com", &uri("sip:100@pbx.example"), &pbx_down),
            Err(Refusal::Unavailable(_))
        ));
        assert_eq!(
            p.route("juliet@example.com", &uri("sip:alice@web.example"), &d),
            Ok(Route::Registrar)
        );
        // No route at all stays forbidden.
        p.outbound_proxy = false;
        assert!(matches!(
            p.route("juliet@example.com", &other, &d),
            Err(Refusal::Forbidden(_))
        ));
    }
}
