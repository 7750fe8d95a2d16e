//! Which next hops can take calls: the outbound proxy and every configured
//! peer with a `uri` are sent OPTIONS outside a dialog (RFC 3261 §11) every
//! [`Config::probe_interval`](crate::Config::probe_interval), one probe at a
//! time each, and real INVITEs teach the same.
//!
//! | What happened | The next hop is |
//! |---|---|
//! | no probe answered yet | usable (not known to be down) |
//! | a final response to OPTIONS other than 408 and 503 — 200, 404, 405, 481, a 401/407 challenge … (§11.2: any answer proves it alive) | up |
//! | OPTIONS answered 503 (§21.5.4) | down; not probed again before its `Retry-After` (at most [`MAX_RETRY_AFTER`]) |
//! | OPTIONS answered 408 | down |
//! | no answer to OPTIONS before timer F (64·T1, §17.1.2.2) | down |
//! | OPTIONS or an INVITE could not be sent (connection refused, no address, §18.4) | down |
//! | no answer at all to an INVITE before timer B (§17.1.1.2) | down |
//!
//! Each change is an [`Output::Health`]; the core refuses calls routed to
//! a hop that is down. Probes start every interval, one at a time: when one
//! lasts longer than the interval (a dead peer over UDP takes until timer
//! F) the next starts as it ends, so a peer that comes back is seen within
//! a retransmission interval (T2). A hop marked down by an INVITE is
//! probed at once, so a passing failure does not hold it down for long.
//! Without an interval nothing is probed and nothing is ever down.

use crate::api::{CallKey, NextHop};
use crate::dialog::strip_angles;
use crate::engine::{Invite, Output, Purpose, Sip, TimerId, uri_hop};
use crate::msg::{self, HeaderName, Method, Request, Response};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use stox_mapping::lograte::escaped;

/// The longest `Retry-After` of a 503 that is honoured, in seconds: a
/// longer one (a typing error in a peer's configuration) is taken as this.
pub const MAX_RETRY_AFTER: u64 = 3600;

/// The watched next hops and their probes in flight.
#[derive(Debug, Default)]
pub(crate) struct Health {
    watched: BTreeMap<NextHop, Watch>,
    /// Probes in flight: the key their transaction carries → the hop.
    probes: HashMap<CallKey, NextHop>,
}

#[derive(Debug)]
struct Watch {
    /// The Request-URI of its probes, and where they go: the peer's `uri`,
    /// or the outbound proxy's.
    uri: String,
    state: State,
    /// The probe in flight.
    probe: Option<CallKey>,
    /// When the last probe started: the next starts an interval later.
    last: Option<Instant>,
    /// No probe before this (a 503's Retry-After, RFC 3261 §21.5.4).
    not_before: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not probed yet: usable.
    Unknown,
    Up,
    Down(String),
}

impl Sip {
    /// `self` with its next hops watched (at start).
    pub(crate) fn watching_hops(mut self) -> Sip {
        self.watch_hops();
        self
    }

    /// Watches the next hops the configuration names: the outbound proxy
    /// and the peers with a `uri` and `probe`, while an interval is set. A
    /// hop kept with the same URI keeps its state; a new one is probed now;
    /// one no longer watched is forgotten (and reported usable, so that
    /// nothing is refused on its account).
    pub(crate) fn watch_hops(&mut self) {
        let mut wanted: BTreeMap<NextHop, String> = BTreeMap::new();
        if self.cfg.probe_interval.is_some() {
            if let Some(proxy) = &self.cfg.outbound_proxy {
                wanted.insert(NextHop::OutboundProxy, strip_angles(proxy));
            }
            for peer in self.cfg.peers.iter().filter(|p| p.probe) {
                if let Some(uri) = &peer.uri {
                    wanted.insert(NextHop::Peer(peer.name.clone()), strip_angles(uri));
                }
            }
        }
        let gone: Vec<NextHop> = self
            .health
            .watched
            .iter()
            .filter(|(hop, w)| wanted.get(*hop) != Some(&w.uri))
            .map(|(hop, _)| hop.clone())
            .collect();
        for hop in gone {
            self.timers.clear(&TimerId::Probe(hop.clone()));
            if let Some(w) = self.health.watched.remove(&hop) {
                if let Some(key) = w.probe {
                    // Its transaction runs to its end; the answer is ignored.
                    self.health.probes.remove(&key);
                }
                if matches!(w.state, State::Down(_)) {
                    self.out.push_back(Output::Health { hop, down: None });
                }
            }
        }
        for (hop, uri) in wanted {
            if !self.health.watched.contains_key(&hop) {
                self.health.watched.insert(
                    hop.clone(),
                    Watch {
                        uri,
                        state: State::Unknown,
                        probe: None,
                        last: None,
                        not_before: None,
                    },
                );
            }
            // A new interval applies from now on.
            self.schedule_probe(&hop);
        }
    }

    /// The next hops watched, and why each is down (`None`: usable).
    pub fn next_hops(&self) -> Vec<(NextHop, Option<String>)> {
        self.health
            .watched
            .iter()
            .map(|(hop, w)| {
                let down = match &w.state {
                    State::Down(why) => Some(why.clone()),
                    State::Unknown | State::Up => None,
                };
                (hop.clone(), down)
            })
            .collect()
    }

    /// Sets the probe timer of `hop`: an interval after its last probe
    /// started (now, if it never was), not before a Retry-After. Nothing
    /// while a probe is in flight: its end schedules the next.
    fn schedule_probe(&mut self, hop: &NextHop) {
        let (Some(interval), Some(w)) = (self.cfg.probe_interval, self.health.watched.get(hop))
        else {
            return;
        };
        if w.probe.is_some() {
            return;
        }
        let mut at = w
            .last
            .map_or(self.now, |last| last + interval)
            .max(self.now);
        if let Some(not_before) = w.not_before {
            at = at.max(not_before);
        }
        self.timers.set(TimerId::Probe(hop.clone()), at);
    }

    /// The probe timer of `hop` fired: OPTIONS to it (RFC 3261 §11.1), in a
    /// client transaction of its own that carries a fresh key.
    pub(crate) fn probe(&mut self, hop: &NextHop) {
        let Some(w) = self.health.watched.get(hop) else {
            return;
        };
        if w.probe.is_some() {
            return;
        }
        let uri = w.uri.clone();
        let key = self.keys.key();
        let sent = uri_hop(&uri).and_then(|next| {
            let req = self.options_request(&uri, next.transport)?;
            self.send_request(req, next, Some(key), Purpose::Probe)
                .ok_or_else(|| "the OPTIONS could not start a transaction".to_owned())
        });
        let now = self.now;
        if let Some(w) = self.health.watched.get_mut(hop) {
            w.last = Some(now);
            w.not_before = None;
        }
        match sent {
            Ok(_) => {
                if let Some(w) = self.health.watched.get_mut(hop) {
                    w.probe = Some(key);
                }
                self.health.probes.insert(key, hop.clone());
            }
            Err(e) => {
                self.set_health(hop, State::Down(format!("OPTIONS could not be sent: {e}")));
                self.schedule_probe(hop);
            }
        }
    }

    /// `OPTIONS <uri>` outside any dialog (RFC 3261 §11.1): a new Call-ID
    /// each time, `Accept: application/sdp`, no body.
    fn options_request(
        &mut self,
        uri: &str,
        transport: crate::api::Transport,
    ) -> Result<Request, String> {
        let mut req = Request::new(Method::Options, msg::parse_uri(uri)?);
        let contact = self.contact(transport);
        let host = contact.trim_start_matches("sip:");
        let host = host.split(';').next().unwrap_or(host).to_owned();
        let via = self.via(transport);
        let tag = self.new_tag();
        let call_id = format!("probe-{:016x}@{host}", self.rng.next_u64());
        for (name, value) in [
            (HeaderName::Via, via),
            (HeaderName::MaxForwards, "70".to_owned()),
            (
                HeaderName::From,
                format!("<sip:stox-gateway@{host}>;tag={tag}"),
            ),
            (HeaderName::To, format!("<{uri}>")),
            (HeaderName::CallId, call_id),
            (HeaderName::CSeq, "1 OPTIONS".to_owned()),
            (HeaderName::Contact, format!("<{contact}>")),
            (HeaderName::UserAgent, self.cfg.user_agent.clone()),
        ] {
            req.headers.push(msg::header(name, value)?);
        }
        req.headers
            .push(msg::other_header("Accept", "application/sdp")?);
        msg::fix_content_length(&mut req.headers, 0)?;
        Ok(req)
    }

    /// A response to a probe: a final one decides (RFC 3261 §11.2).
    pub(crate) fn probe_answered(&mut self, key: CallKey, resp: &Response) {
        let status = resp.status.code();
        if status < 200 {
            return;
        }
        let Some(hop) = self.end_probe(key) else {
            return;
        };
        // The peer's words go into IQ error texts and rows: escaped, cut.
        let phrase = escaped(&String::from_utf8_lossy(&resp.reason)).to_string();
        let state = match status {
            503 => {
                let retry_after = msg::value(&resp.headers, &HeaderName::RetryAfter)
                    .and_then(|v| retry_after_secs(&v));
                let mut why = format!("OPTIONS answered 503 {phrase}");
                if let Some(secs) = retry_after {
                    let secs = secs.min(MAX_RETRY_AFTER);
                    why.push_str(&format!(", Retry-After {secs} s"));
                    let not_before = self.now + Duration::from_secs(secs);
                    if let Some(w) = self.health.watched.get_mut(&hop) {
                        w.not_before = Some(not_before);
                    }
                }
                State::Down(why)
            }
            408 => State::Down(format!("OPTIONS answered 408 {phrase}")),
            _ => State::Up,
        };
        self.set_health(&hop, state);
        self.schedule_probe(&hop);
    }

    /// A probe's transaction failed: timer F, or its transport.
    pub(crate) fn probe_failed(&mut self, key: CallKey, timed_out: bool) {
        let Some(hop) = self.end_probe(key) else {
            return;
        };
        let why = if timed_out {
            format!(
                "no answer to OPTIONS within {} s (timer F)",
                self.cfg.timers.timeout().as_secs()
            )
        } else {
            "OPTIONS could not be sent".to_owned()
        };
        self.set_health(&hop, State::Down(why));
        self.schedule_probe(&hop);
    }

    /// An INVITE to `call`'s next hop got no answer at all before timer B.
    pub(crate) fn invite_timed_out(&mut self, call: CallKey) {
        if let Some(hop) = self.unanswered_invite_hop(call, true) {
            let why = format!(
                "no answer to an INVITE within {} s (timer B)",
                self.cfg.timers.timeout().as_secs()
            );
            self.hop_failed(&hop, why);
        }
    }

    /// The driver could not deliver a transmit of `call`: a probe's, or an
    /// unanswered INVITE's, marks its next hop down with the reason.
    pub(crate) fn health_send_failed(&mut self, call: CallKey, reason: &str) {
        if self.health.probes.contains_key(&call) {
            if let Some(hop) = self.end_probe(call) {
                self.set_health(
                    &hop,
                    State::Down(format!("OPTIONS could not be sent: {reason}")),
                );
                self.schedule_probe(&hop);
            }
            return;
        }
        if let Some(hop) = self.unanswered_invite_hop(call, false) {
            self.hop_failed(&hop, format!("an INVITE could not be sent: {reason}"));
        }
    }

    /// The next hop an INVITE of ours still unanswered went to, if watched
    /// (`silent`: only if nothing at all came back, not even a 1xx).
    fn unanswered_invite_hop(&self, call: CallKey, silent: bool) -> Option<NextHop> {
        let c = self.calls.get(&call)?;
        let Some(Invite::Uac(u)) = &c.invite else {
            return None;
        };
        let hop = u.next_hop.clone()?;
        let unanswered = c.dialog.is_none() && !(silent && u.provisional);
        (unanswered && self.health.watched.contains_key(&hop)).then_some(hop)
    }

    /// Real traffic failed at `hop`: down now, and probed at once (unless
    /// a probe is in flight) so that a passing failure passes quickly.
    fn hop_failed(&mut self, hop: &NextHop, why: String) {
        self.set_health(hop, State::Down(why));
        let due = self
            .health
            .watched
            .get(hop)
            .is_some_and(|w| w.probe.is_none() && w.not_before.is_none());
        if due {
            self.timers.set(TimerId::Probe(hop.clone()), self.now);
        }
    }

    /// The probe `key` is over: its hop, if it is still watched.
    fn end_probe(&mut self, key: CallKey) -> Option<NextHop> {
        let hop = self.health.probes.remove(&key)?;
        stox_mapping::tables::shrink(&mut self.health.probes);
        let w = self.health.watched.get_mut(&hop)?;
        (w.probe == Some(key)).then(|| {
            w.probe = None;
            hop
        })
    }

    /// Moves `hop` to `state`, telling the driver when it became usable or
    /// down, or when why it is down changed.
    fn set_health(&mut self, hop: &NextHop, state: State) {
        let Some(w) = self.health.watched.get_mut(hop) else {
            return;
        };
        let changed = match (&w.state, &state) {
            (State::Up, State::Up) => false,
            (State::Down(a), State::Down(b)) => a != b,
            _ => true,
        };
        w.state = state.clone();
        if changed {
            let down = match state {
                State::Down(why) => Some(why),
                State::Unknown | State::Up => None,
            };
            self.out.push_back(Output::Health {
                hop: hop.clone(),
                down,
            });
        }
    }
}

/// `Retry-After: 120 (maintenance);duration=60` → 120 (RFC 3261 §20.33).
fn retry_after_secs(value: &str) -> Option<u64> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_20_33_retry_after_takes_the_seconds_before_any_comment() {
        assert_eq!(retry_after_secs("120"), Some(120));
        assert_eq!(retry_after_secs(" 18000;duration=3600"), Some(18000));
        assert_eq!(retry_after_secs("120 (I'm in a meeting)"), Some(120));
        assert_eq!(retry_after_secs("soon"), None);
        assert_eq!(retry_after_secs(""), None);
    }
}
