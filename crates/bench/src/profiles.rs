//! The two call shapes, as [`Profile`]s.
//!
//! XMPP → SIP (the driver is the caller): session-initiate at a fixed rate;
//! the gateway's IQ result, session-info `<ringing/>` and session-accept are
//! timestamped (every IQ it sends is acknowledged); after the hold time the
//! driver sends session-terminate, and the gateway sends BYE to SIPp.
//!
//! SIP → XMPP (the driver is the callee): SIPp sends INVITEs; for each
//! session-initiate the driver answers with the IQ result, session-info
//! `<ringing/>` and session-accept at once; SIPp hangs up after its hold
//! time and the gateway's session-terminate is acknowledged.

use crate::driver::{Profile, answer_other};
use crate::jingle::{self, Iq, parse_iq};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Failures {
    pub by_reason: HashMap<String, u64>,
}

impl Failures {
    fn add(&mut self, reason: impl Into<String>) {
        *self.by_reason.entry(reason.into()).or_default() += 1;
    }
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }
    pub fn display(&self) -> String {
        let mut v: Vec<_> = self.by_reason.iter().collect();
        v.sort();
        v.iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, Default)]
struct OutCall {
    sent: Option<Instant>,
    result: Option<Instant>,
    ringing: Option<Instant>,
    accept: Option<Instant>,
    term_sent: bool,
    finished: bool,
}

/// XMPP → SIP calls from `user{n}@domain/res` to `romeo{n}\40example.net@component`.
pub struct XmppToSip {
    pub component: String,
    pub domain: String,
    /// Call numbers (ids, sids, JIDs) start here, so rounds do not collide.
    pub base: u64,
    start: Instant,
    interval: Duration,
    total: u64,
    /// `None`: hold until [`XmppToSip::release`].
    hold: Option<Duration>,
    calls: Vec<OutCall>,
    next: u64,
    hangups: VecDeque<(Instant, u64)>,
    release_interval: Duration,
    pub answered: u64,
    pub finished: u64,
    pub failures: Failures,
    pub first_sent: Option<Instant>,
    pub last_answer: Option<Instant>,
    /// Calls accepted and not yet terminated, and its maximum.
    pub live: u64,
    pub max_live: u64,
    /// How late the latest initiate went out against its schedule.
    pub max_send_lag: Duration,
}

impl XmppToSip {
    pub fn new(
        component: &str,
        domain: &str,
        start: Instant,
        rate: f64,
        total: u64,
        hold: Option<Duration>,
    ) -> XmppToSip {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        XmppToSip {
            component: component.to_owned(),
            domain: domain.to_owned(),
            base: 0,
            start,
            interval,
            total,
            hold,
            calls: vec![OutCall::default(); usize::try_from(total).unwrap_or(0)],
            next: 0,
            hangups: VecDeque::new(),
            release_interval: interval,
            answered: 0,
            finished: 0,
            failures: Failures::default(),
            first_sent: None,
            last_answer: None,
            live: 0,
            max_live: 0,
            max_send_lag: Duration::ZERO,
        }
    }

    pub fn done(&self) -> bool {
        self.next == self.total && self.finished + self.failures.total() >= self.total
    }

    /// Every call placed has been answered or failed.
    pub fn all_answered(&self) -> bool {
        self.next == self.total && self.answered + self.failures.total() >= self.total
    }

    /// Hangs up every held call, at the call rate from `now`.
    pub fn release(&mut self, now: Instant) {
        let mut at = now;
        for (n, c) in self.calls.iter().enumerate() {
            if c.accept.is_some() && !c.term_sent && !c.finished {
                self.hangups.push_back((at, n as u64));
                at += self.release_interval;
            }
        }
    }

    /// Calls not finished (for the end-of-run accounting).
    pub fn fail_unfinished(&mut self) {
        let mut n = 0;
        for c in &mut self.calls {
            if !c.finished && c.sent.is_some() {
                c.finished = true;
                n += 1;
            }
        }
        for _ in 0..n {
            self.failures.add("unfinished");
        }
        let unsent = self.total - self.next;
        for _ in 0..unsent {
            self.failures.add("not-sent");
        }
        self.next = self.total;
    }

    /// Per-call setup samples: initiate → IQ result, → ringing, → accept.
    pub fn samples(&self) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
        let mut r = (Vec::new(), Vec::new(), Vec::new());
        for c in &self.calls {
            let Some(s) = c.sent else { continue };
            if let Some(t) = c.result {
                r.0.push(t - s);
            }
            if let Some(t) = c.ringing {
                r.1.push(t - s);
            }
            if let Some(t) = c.accept {
                r.2.push(t - s);
            }
        }
        r
    }

    fn call_of(&self, sid: &str) -> Option<usize> {
        let n = sid
            .strip_prefix('b')?
            .parse::<u64>()
            .ok()?
            .checked_sub(self.base)?;
        let n = usize::try_from(n).ok()?;
        (n < self.calls.len()).then_some(n)
    }

    fn fail(&mut self, n: usize, reason: String) {
        let c = &mut self.calls[n];
        if c.finished {
            return;
        }
        c.finished = true;
        if c.accept.is_some() && !c.term_sent {
            self.live = self.live.saturating_sub(1);
        }
        self.failures.add(reason);
    }

    fn jids(&self, n: u64) -> (String, String) {
        (
            jingle::user_jid(n, &self.domain),
            jingle::gateway_jid(n, &self.component),
        )
    }

    fn on_result(&mut self, now: Instant, iq: &Iq) {
        let (kind, n) = iq.id.split_at(2.min(iq.id.len()));
        let Some(n) = n
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_sub(self.base))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n < self.calls.len())
        else {
            return;
        };
        let ok = iq.ty == "result";
        match (kind, ok) {
            ("si", true) => self.calls[n].result = Some(now),
            ("st", true) => {
                let c = &mut self.calls[n];
                if !c.finished {
                    c.finished = true;
                    self.finished += 1;
                }
            }
            ("si", false) => self.fail(n, "iq-error:session-initiate".into()),
            ("st", false) => self.fail(n, "iq-error:session-terminate".into()),
            _ => {}
        }
    }
}

impl Profile for XmppToSip {
    fn on_element(&mut self, now: Instant, el: &str, out: &mut String) {
        let Some(iq) = parse_iq(el) else { return };
        if iq.ty == "result" || iq.ty == "error" {
            self.on_result(now, &iq);
            return;
        }
        let Some(n) = iq.sid.as_deref().and_then(|s| self.call_of(s)) else {
            answer_other(el, out);
            return;
        };
        out.push_str(&jingle::result(&iq.id, &iq.to, &iq.from));
        match iq.action.as_deref() {
            Some("session-info") if iq.ringing => {
                self.calls[n].ringing.get_or_insert(now);
            }
            Some("session-accept") => {
                let c = &mut self.calls[n];
                if c.accept.is_none() {
                    c.accept = Some(now);
                    self.answered += 1;
                    self.last_answer = Some(now);
                    self.live += 1;
                    self.max_live = self.max_live.max(self.live);
                    if let Some(hold) = self.hold {
                        self.hangups.push_back((now + hold, n as u64));
                    }
                }
            }
            Some("session-terminate") => {
                let reason = iq.reason.unwrap_or_else(|| "none".into());
                self.fail(n, format!("terminated-by-gateway:{reason}"));
            }
            _ => {}
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let call =
            (self.next < self.total).then(|| self.start + self.interval.mul_f64(self.next as f64));
        let hang = self.hangups.front().map(|(t, _)| *t);
        match (call, hang) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_due(&mut self, now: Instant, out: &mut String) {
        while self.next < self.total {
            let due = self.start + self.interval.mul_f64(self.next as f64);
            if due > now {
                break;
            }
            self.max_send_lag = self.max_send_lag.max(now - due);
            let n = self.next;
            let g = self.base + n;
            let (from, to) = self.jids(g);
            out.push_str(&jingle::session_initiate(
                &format!("si{g}"),
                &format!("b{g}"),
                &from,
                &to,
            ));
            self.calls[n as usize].sent = Some(now);
            self.first_sent.get_or_insert(now);
            self.next += 1;
        }
        while let Some(&(due, n)) = self.hangups.front() {
            if due > now {
                break;
            }
            self.hangups.pop_front();
            let c = &mut self.calls[n as usize];
            if c.finished || c.term_sent {
                continue;
            }
            c.term_sent = true;
            self.live = self.live.saturating_sub(1);
            let g = self.base + n;
            let (from, to) = self.jids(g);
            out.push_str(&jingle::session_terminate(
                &format!("st{g}"),
                &format!("b{g}"),
                &from,
                &to,
            ));
        }
    }
}

#[derive(Debug, Clone)]
struct InCall {
    accept_sent: Instant,
    accept_result: Option<Instant>,
    finished: bool,
}

/// SIP → XMPP: the driver answers every session-initiate at once.
#[derive(Default)]
pub struct SipToXmpp {
    calls: Vec<InCall>,
    by_sid: HashMap<String, usize>,
    pub initiated: u64,
    pub finished: u64,
    pub failures: Failures,
    pub first_initiate: Option<Instant>,
    pub last_initiate: Option<Instant>,
    pub live: u64,
    pub max_live: u64,
    /// Driver turnaround (initiate read → answers queued), max.
    pub max_turnaround: Duration,
}

impl SipToXmpp {
    pub fn settled(&self, expected: u64) -> bool {
        self.finished + self.failures.total() >= expected
    }

    /// session-accept sent → its IQ result received.
    pub fn accept_samples(&self) -> Vec<Duration> {
        self.calls
            .iter()
            .filter_map(|c| c.accept_result.map(|t| t - c.accept_sent))
            .collect()
    }

    pub fn fail_unfinished(&mut self) {
        let n = self.calls.iter().filter(|c| !c.finished).count();
        for c in &mut self.calls {
            c.finished = true;
        }
        for _ in 0..n {
            self.failures.add("unfinished");
        }
    }
}

impl Profile for SipToXmpp {
    fn on_element(&mut self, now: Instant, el: &str, out: &mut String) {
        let Some(iq) = parse_iq(el) else { return };
        if iq.ty == "result" || iq.ty == "error" {
            let Some(i) = iq
                .id
                .strip_prefix('a')
                .and_then(|n| n.parse::<usize>().ok())
            else {
                if iq.ty == "error" {
                    self.failures.add("iq-error:session-info");
                }
                return;
            };
            if let Some(c) = self.calls.get_mut(i) {
                if iq.ty == "result" {
                    c.accept_result = Some(now);
                } else {
                    self.failures.add("iq-error:session-accept");
                }
            }
            return;
        }
        let Some(sid) = iq.sid.clone() else {
            answer_other(el, out);
            return;
        };
        out.push_str(&jingle::result(&iq.id, &iq.to, &iq.from));
        match iq.action.as_deref() {
            Some("session-initiate") => {
                let i = self.calls.len();
                out.push_str(&jingle::ringing(&format!("r{i}"), &sid, &iq.to, &iq.from));
                out.push_str(&jingle::session_accept(
                    &format!("a{i}"),
                    &sid,
                    &iq.to,
                    &iq.from,
                ));
                let done = Instant::now();
                self.max_turnaround = self.max_turnaround.max(done - now);
                self.calls.push(InCall {
                    accept_sent: now,
                    accept_result: None,
                    finished: false,
                });
                self.by_sid.insert(sid, i);
                self.initiated += 1;
                self.first_initiate.get_or_insert(now);
                self.last_initiate = Some(now);
                self.live += 1;
                self.max_live = self.max_live.max(self.live);
            }
            Some("session-terminate") => {
                let Some(&i) = self.by_sid.get(&sid) else {
                    return;
                };
                let c = &mut self.calls[i];
                if c.finished {
                    return;
                }
                c.finished = true;
                self.live = self.live.saturating_sub(1);
                match iq.reason.as_deref() {
                    Some("success") => self.finished += 1,
                    other => self
                        .failures
                        .add(format!("terminated-by-gateway:{}", other.unwrap_or("none"))),
                }
            }
            _ => {}
        }
    }

    fn next_due(&self) -> Option<Instant> {
        None
    }

    fn on_due(&mut self, _now: Instant, _out: &mut String) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw_iq(action: &str, sid: &str, id: &str, extra: &str) -> String {
        format!(
            "<iq type=\"set\" id=\"{id}\" from=\"romeo0\\40example.net@sip.example.com\" to=\"user0@example.com/res\">\
             <jingle xmlns=\"urn:xmpp:jingle:1\" action=\"{action}\" sid=\"{sid}\">{extra}</jingle></iq>"
        )
    }

    #[test]
    fn xmpp_to_sip_call_shape() {
        let t0 = Instant::now();
        let mut p = XmppToSip::new(
            "sip.example.com",
            "example.com",
            t0,
            1000.0,
            1,
            Some(Duration::from_millis(10)),
        );
        let mut out = String::new();
        assert_eq!(p.next_due(), Some(t0));
        p.on_due(t0, &mut out);
        assert!(out.contains("action='session-initiate'") && out.contains("id='si0'"));
        out.clear();
        let t1 = t0 + Duration::from_micros(300);
        p.on_element(t1, "<iq type='result' id='si0' from='x' to='y'/>", &mut out);
        p.on_element(
            t1,
            &gw_iq(
                "session-info",
                "b0",
                "g1",
                "<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>",
            ),
            &mut out,
        );
        let t2 = t0 + Duration::from_millis(1);
        p.on_element(t2, &gw_iq("session-accept", "b0", "g2", ""), &mut out);
        assert_eq!(out.matches("type='result'").count(), 2);
        assert_eq!((p.answered, p.live), (1, 1));
        out.clear();
        assert_eq!(p.next_due(), Some(t2 + Duration::from_millis(10)));
        p.on_due(t2 + Duration::from_millis(10), &mut out);
        assert!(out.contains("action='session-terminate'") && out.contains("id='st0'"));
        assert!(!p.done());
        p.on_element(t2, "<iq type='result' id='st0' from='x' to='y'/>", &mut out);
        assert!(p.done());
        assert_eq!(p.failures.total(), 0);
        let (res, ring, acc) = p.samples();
        assert_eq!(res, vec![Duration::from_micros(300)]);
        assert_eq!(ring, vec![Duration::from_micros(300)]);
        assert_eq!(acc, vec![Duration::from_millis(1)]);
    }

    #[test]
    fn gateway_hangup_is_a_failure_and_pings_are_answered() {
        let t0 = Instant::now();
        let mut p = XmppToSip::new("sip.example.com", "example.com", t0, 1000.0, 1, None);
        let mut out = String::new();
        p.on_due(t0, &mut out);
        out.clear();
        p.on_element(
            t0,
            &gw_iq("session-terminate", "b0", "g3", "<reason><busy/></reason>"),
            &mut out,
        );
        assert!(p.done());
        assert_eq!(p.failures.display(), "terminated-by-gateway:busy=1");
        out.clear();
        p.on_element(t0, "<iq type='get' id='k1' from='sip.example.com' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>", &mut out);
        assert_eq!(
            out,
            "<iq type='result' id='k1' from='example.com' to='sip.example.com'/>"
        );
    }

    #[test]
    fn held_calls_released_on_demand() {
        let t0 = Instant::now();
        let mut p = XmppToSip::new("sip.example.com", "example.com", t0, 1000.0, 2, None);
        let mut out = String::new();
        p.on_due(t0 + Duration::from_millis(5), &mut out);
        for sid in ["b0", "b1"] {
            p.on_element(t0, &gw_iq("session-accept", sid, "g", ""), &mut out);
        }
        assert!(p.all_answered() && p.next_due().is_none());
        out.clear();
        p.release(t0);
        p.on_due(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out.matches("session-terminate").count(), 2);
    }

    #[test]
    fn sip_to_xmpp_answers_at_once() {
        let mut p = SipToXmpp::default();
        let mut out = String::new();
        let t0 = Instant::now();
        p.on_element(t0, &gw_iq("session-initiate", "abc", "g1", ""), &mut out);
        assert!(out.starts_with("<iq type='result' id='g1'"));
        assert!(
            out.contains("<ringing")
                && out.contains("action='session-accept'")
                && out.contains("responder='user0@example.com/res'")
        );
        p.on_element(t0, "<iq type='result' id='a0' from='x' to='y'/>", &mut out);
        assert_eq!(p.accept_samples(), vec![Duration::ZERO]);
        p.on_element(
            t0,
            &gw_iq(
                "session-terminate",
                "abc",
                "g2",
                "<reason><success/></reason>",
            ),
            &mut out,
        );
        assert!(p.settled(1));
        assert_eq!(p.failures.total(), 0);
    }
}
