//! Answering a peer's digest challenge (RFC 3261 §22.2, RFC 8760): a 401
//! or 407 to our INVITE is answered once with the peer's credentials (the
//! strongest algorithm offered: SHA-256 before MD5), and the challenge is
//! kept per peer so that the next INVITE to it carries credentials at once,
//! the same nonce with the nonce count one up (RFC 7616 §3.4).
//!
//! The digest arithmetic is sipx-sip's (`msg::digest`), behind `msg`.

use crate::api::{CallKey, Credentials};
use crate::engine::{Invite, Sip};
use crate::msg::{self, HeaderName, Request, Response};

/// A challenge answered for a peer, for the next requests to it.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub challenge: msg::Challenge,
    /// The last nonce count used with its nonce.
    pub nc: u32,
}

/// How many times one INVITE is sent again for challenges (a second
/// challenge after an answered one is taken only when it says the nonce was
/// stale).
pub(crate) const MAX_AUTH_ROUNDS: u8 = 2;

impl Sip {
    /// The credentials for the INVITE of `call`: its peer's, or for one
    /// through the outbound proxy, those of the peer whose `uri` is the
    /// proxy.
    fn credentials_for(&self, peer: Option<&str>) -> Option<(String, Credentials)> {
        let found = match peer {
            Some(name) => self.cfg.peers.iter().find(|p| p.name == name),
            None => {
                let proxy = self.cfg.outbound_proxy.as_deref()?;
                self.cfg
                    .peers
                    .iter()
                    .find(|p| p.uri.as_deref().is_some_and(|u| same_uri(u, proxy)))
            }
        }?;
        Some((found.name.clone(), found.credentials.clone()?))
    }

    /// A 401/407 to our INVITE: sent again with credentials when we have
    /// them for the challenge's realm. False when it cannot be answered (no
    /// credentials, another realm, no Digest challenge we can read, answered
    /// already) — the call is then rejected with that status.
    pub(crate) fn answer_challenge(&mut self, call: CallKey, resp: &Response) -> bool {
        let status = resp.status.code();
        let Some(Invite::Uac(u)) = self.calls.get(&call).and_then(|c| c.invite.as_ref()) else {
            return false;
        };
        let Some((peer, creds)) = self.credentials_for(u.peer.as_deref()) else {
            return false;
        };
        let from_proxy = status == 407;
        let name = if from_proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let offered: Vec<msg::Challenge> = msg::values(&resp.headers, &name)
            .iter()
            .filter_map(|v| msg::Challenge::parse(v.as_bytes(), from_proxy))
            .filter(|c| creds.realm.as_deref().is_none_or(|r| r == c.realm))
            .collect();
        let Some(challenge) = msg::strongest_challenge(offered) else {
            return false;
        };
        if u.auth_rounds >= MAX_AUTH_ROUNDS || (u.auth_rounds > 0 && !challenge.stale) {
            // Answered already and refused: the credentials are wrong.
            self.auth_cache.remove(&peer);
            return false;
        }
        let rounds = u.auth_rounds + 1;
        let mut cached = Cached { challenge, nc: 0 };
        let ok = self.resend_invite(call, |sip, req| {
            sip.authorize(req, &creds, &mut cached);
            true
        });
        if ok {
            if let Some(Invite::Uac(u)) = self.calls.get_mut(&call).and_then(|c| c.invite.as_mut())
            {
                u.auth_rounds = rounds;
            }
            self.auth_cache.insert(peer, cached);
        }
        ok
    }

    /// Credentials at once for a new INVITE to a peer that challenged
    /// before: its last nonce, the count one up.
    pub(crate) fn preauthorize(&mut self, peer: Option<&str>, req: &mut Request) {
        let Some((name, creds)) = self.credentials_for(peer) else {
            return;
        };
        let Some(mut cached) = self.auth_cache.remove(&name) else {
            return;
        };
        self.authorize(req, &creds, &mut cached);
        self.auth_cache.insert(name, cached);
    }

    /// Puts the answer to `cached`'s challenge in `req` (replacing an older
    /// one), the nonce count one up.
    fn authorize(&mut self, req: &mut Request, creds: &Credentials, cached: &mut Cached) {
        cached.nc = cached.nc.wrapping_add(1).max(1);
        let cnonce = format!("{:016x}", self.rng.next_u64());
        let value = msg::digest_response(
            &cached.challenge,
            &creds.username,
            &creds.password,
            &req.method.to_string(),
            &req.uri.to_string(),
            cached.nc,
            &cnonce,
        );
        let name = if cached.challenge.from_proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let _ = msg::replace_header(&mut req.headers, name, value);
    }
}

/// Two SIP URIs name the same hop (scheme, host, port and transport, case
/// aside).
fn same_uri(a: &str, b: &str) -> bool {
    let hop = |u: &str| crate::engine::uri_hop(u).ok();
    matches!((hop(a), hop(b)), (Some(x), Some(y)) if x == y)
}
