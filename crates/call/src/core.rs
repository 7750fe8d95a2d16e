//! Routing: which call an input belongs to, and what to answer when it
//! belongs to none.

mod anchor;
mod messages;

use crate::call::{Call, CallTimer, Ctx, IqPurpose};
use crate::stanza::{self, AppError, IqHeader};
use crate::time::Millis;
use crate::types::{
    CallKey, Input, IqOutcome, Output, RejectedStanza, SessionRecord, SipEvent, TimerKey,
};
use minidom::Element;
use std::collections::HashMap;
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::jingle::{Action, Jingle, JingleError, JingleLimits};
use stox_mapping::ns;
use stox_mapping::status::ErrorCondition;
use stox_sipcore::KeyGen;

/// What the core needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The component's domain, e.g. `sip.example.com`.
    pub component: String,
    /// XMPP domains served to SIP callers (`sip:user@<domain>`).
    pub domains: Vec<String>,
    /// How long a SIP → XMPP call may stay unanswered, in milliseconds.
    pub ring_timeout_ms: u64,
    /// How long an XMPP → SIP call whose client trickles its ICE candidates
    /// gathers them before the INVITE goes out, in milliseconds.
    pub candidate_window_ms: u64,
    /// Mixed into generated Call-IDs and sids so that they differ between
    /// gateway instances (the gateway passes a random value).
    pub token_salt: u64,
    /// The `Retry-After` of a 503 sent while the gateway cannot take calls
    /// (component offline, store backlog over its limit), in seconds.
    pub retry_after_secs: u32,
    /// How often the XMPP user of an answered call is pinged (XEP-0199),
    /// in milliseconds; 0 = never.
    pub peer_ping_ms: u64,
    /// The longest an answered call may last, in milliseconds; 0 = no limit.
    pub max_duration_ms: u64,
    /// How many children of each kind a received `<jingle/>` may have.
    pub jingle_limits: JingleLimits,
    /// The most calls at once (both directions, ringing or answered); a
    /// new one past it gets 503 with Retry-After (SIP) or
    /// `resource-constraint` (Jingle). 0: no limit.
    pub max_calls: usize,
    /// Who may call out and where calls go; `None`: everyone, everywhere
    /// (the Request-URI or the SIP layer's outbound proxy decides). The
    /// gateway always sets one.
    pub policy: Option<crate::policy::Policy>,
    /// Which calls rtpengine anchors (docs/media.md); default: none.
    pub media: crate::media::MediaPolicy,
}

/// The gateway core: every call in memory, and the indexes that route
/// stanzas and SIP events to them.
pub struct Core {
    cfg: CoreConfig,
    calls: HashMap<i64, Call>,
    /// (sid, XMPP user's full JID) → call.
    by_jingle: HashMap<(Sid, String), i64>,
    /// Call-IDs of live calls (a new XMPP → SIP call never reuses one).
    by_call_id: HashMap<CallId, i64>,
    /// The SIP side's key of each live call → call.
    by_key: HashMap<CallKey, i64>,
    /// Keys of the calls the core places.
    keys: KeyGen,
    /// Our outstanding IQs: id → (call, what it was).
    iqs: HashMap<String, (i64, IqPurpose)>,
    /// Sids of live SIP → XMPP calls (loop detection).
    sip_sids: HashMap<Sid, i64>,
    /// SIP → XMPP calls ringing a bare JID with XEP-0353: (sid, bare JID) → call.
    by_proposal: HashMap<(Sid, String), i64>,
    /// XMPP → SIP: JMI proposals the gateway proceeded to, waiting for their
    /// session-initiate: (sid, caller's full JID) → proposal.
    proposals: HashMap<(Sid, String), messages::Proposal>,
    proposal_keys: HashMap<u64, (Sid, String)>,
    next_proposal: u64,
    next_id: i64,
    iq_seq: u64,
    /// The component connection is up. The core starts offline.
    xmpp_online: bool,
    /// The store's queue of unwritten rows is over its limit.
    store_backlogged: bool,
    /// Anchored calls' queues (anchor.rs).
    anchors: anchor::Anchors,
    /// Some peer's media goes through rtpengine.
    media_on: bool,
    /// The gateway is stopping: no new calls.
    draining: bool,
    /// SIP next hops known to be down: calls routed to them go elsewhere
    /// or are refused (policy.rs).
    down: crate::policy::Down,
}

impl Core {
    /// `first_id` is the next free `sessions.id` (one past the largest stored).
    pub fn new(cfg: CoreConfig, first_id: i64) -> Self {
        let first_key_seed = |cfg: &CoreConfig| cfg.token_salt ^ 0x6b65_7973_0000_0000;
        Core {
            keys: KeyGen::new(first_key_seed(&cfg)),
            media_on: cfg.media.anchors_any(),
            draining: false,
            down: crate::policy::Down::default(),
            anchors: anchor::Anchors::default(),
            cfg,
            calls: HashMap::new(),
            by_jingle: HashMap::new(),
            by_call_id: HashMap::new(),
            by_key: HashMap::new(),
            iqs: HashMap::new(),
            by_proposal: HashMap::new(),
            sip_sids: HashMap::new(),
            proposals: HashMap::new(),
            proposal_keys: HashMap::new(),
            next_proposal: 0,
            next_id: first_id.max(1),
            iq_seq: 0,
            xmpp_online: false,
            store_backlogged: false,
        }
    }

    /// Resumes calls that were answered before a restart (their SIP dialogs
    /// restored by the SIP layer). Rows that are not `active` are ignored.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = (CallKey, SessionRecord)>,
    ) -> usize {
        let mut n = 0;
        for (key, rec) in records {
            if rec.state != crate::types::CallState::Active {
                continue;
            }
            self.next_id = self.next_id.max(rec.id + 1);
            self.restore_anchor(key, &rec);
            self.insert(Call::restored(key, rec));
            n += 1;
        }
        n
    }

    /// Ends the calls a previous run left live that cannot be resumed (see
    /// `Call::recover`): `sip_pending` says whether the call's unanswered
    /// INVITE was stored (and restored in the SIP layer). Returns what the
    /// adapters must send and store.
    pub fn recover(
        &mut self,
        now: Millis,
        rows: impl IntoIterator<Item = (CallKey, SessionRecord, bool)>,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        for (key, rec, sip_pending) in rows {
            self.next_id = self.next_id.max(rec.id + 1);
            // A call anchored by rtpengine has its session deleted there.
            self.restore_anchor(key, &rec);
            let mut raw = Vec::new();
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, &mut raw);
            let call = Call::recover(&mut ctx, key, rec, sip_pending);
            let id = call.id();
            self.calls.insert(id, call);
            self.reap(id);
            self.route_outputs(now, raw, &mut out);
        }
        out
    }

    /// Replaces the call policy and the media modes (a reload): new calls
    /// follow them; calls in progress keep their route and their media.
    pub fn reload_policy(
        &mut self,
        policy: Option<crate::policy::Policy>,
        media: crate::media::MediaPolicy,
    ) {
        self.cfg.policy = policy;
        self.media_on = media.anchors_any();
        self.cfg.media = media;
    }

    /// The drain time is over: every live call is ended on both sides
    /// (`Call::shut_down`). Returns what the adapters must send and store.
    pub fn shut_down(&mut self, now: Millis) -> Vec<Output> {
        self.draining = true;
        let mut ids: Vec<i64> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::new();
        for id in ids {
            let mut raw = Vec::new();
            if let Some(call) = self.calls.get_mut(&id) {
                let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, &mut raw);
                call.shut_down(&mut ctx);
            }
            self.reap(id);
            self.route_outputs(now, raw, &mut out);
        }
        out
    }

    /// Calls not ended yet (what a drain waits for): live calls, not those
    /// only waiting for the last answer of a CANCEL.
    pub fn active_calls(&self) -> usize {
        self.calls.values().filter(|c| !c.is_ending()).count()
    }

    /// Number of calls held in memory (live calls and calls winding down).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Handles one input at time `now`; returns what the adapters must do,
    /// in order.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Output> {
        // What the calls output goes through the media anchors (anchor.rs)
        // into `out`.
        let mut raw = Vec::new();
        let mut out = Vec::new();
        match input {
            Input::Stanza(el) => self.on_stanza(now, el, &mut raw),
            Input::IqResponse { id, outcome } => self.on_iq_response(now, id, outcome, &mut raw),
            Input::Sip(sip) => {
                if let Some(sip) = self.anchor_event(sip, &mut out) {
                    self.on_sip(now, sip, &mut raw);
                }
            }
            Input::Timer(key) => self.on_timer(now, key, &mut raw),
            Input::StanzaRejected(r) => Self::on_rejected(&r, &mut raw),
            Input::XmppLink { online } => self.xmpp_online = online,
            Input::StoreBacklog { over_limit } => self.store_backlogged = over_limit,
            Input::Draining { on } => self.draining = on,
            Input::PeerHealth { hop, down } => self.down.set(hop, down),
            Input::Media { ticket, result } => self.on_media(now, ticket, result, &mut out),
        }
        if out.is_empty() && !self.anchoring() {
            // Nothing anchored: the calls' outputs are the answer as they are.
            return raw;
        }
        self.route_outputs(now, raw, &mut out);
        out
    }

    /// Why new calls are refused right now, if they are: the status and
    /// reason phrase of the 503 (RFC 3261 §21.5.4; with Retry-After).
    fn unavailable(&self) -> Option<&'static str> {
        if self.draining {
            Some("Service Unavailable (the gateway is shutting down)")
        } else if !self.xmpp_online {
            Some("Service Unavailable (XMPP server not connected)")
        } else if self.store_backlogged {
            Some("Service Unavailable (session store backlog)")
        } else if self.at_call_limit() {
            Some("Service Unavailable (the gateway is at its limit of calls)")
        } else {
            None
        }
    }

    /// Are `max_calls` calls live?
    fn at_call_limit(&self) -> bool {
        self.cfg.max_calls > 0 && self.calls.len() >= self.cfg.max_calls
    }

    /// A stanza the XMPP adapter dropped unread: an IQ request gets
    /// `policy-violation` (RFC 6120 §8.3.3.12); anything else needs no
    /// answer.
    fn on_rejected(r: &RejectedStanza, out: &mut Vec<Output>) {
        if r.name != "iq" || !matches!(r.kind.as_deref(), Some("get" | "set")) {
            return;
        }
        let (Some(id), Some(from), Some(to)) = (&r.id, &r.from, &r.to) else {
            return;
        };
        let header = IqHeader {
            id: id.clone(),
            from: from.clone(),
            to: to.clone(),
        };
        out.push(Output::Xmpp(stanza::iq_error(
            &header,
            ErrorCondition::PolicyViolation,
            &format!("stanza dropped unread: {}", r.reason),
            None,
        )));
    }

    fn ctx<'a>(
        cfg: &'a CoreConfig,
        iqs: &'a mut HashMap<String, (i64, IqPurpose)>,
        iq_seq: &'a mut u64,
        now: Millis,
        out: &'a mut Vec<Output>,
    ) -> Ctx<'a> {
        Ctx {
            now,
            cfg,
            out,
            iqs,
            iq_seq,
        }
    }

    fn on_stanza(&mut self, now: Millis, el: Element, out: &mut Vec<Output>) {
        if el.name() == "message" {
            self.on_message(now, &el, out);
            return;
        }
        if el.name() == "presence" {
            self.on_presence(now, &el, out);
            return;
        }
        if el.name() != "iq" {
            return;
        }
        let kind = el.attr("type").unwrap_or("");
        if kind != "set" && kind != "get" {
            // A result/error nobody waits for (late, after its timeout).
            return;
        }
        let Some(header) = IqHeader::of(&el) else {
            return;
        };
        let Some(payload) = stanza::payload(&el) else {
            out.push(Output::Xmpp(stanza::iq_error(
                &header,
                ErrorCondition::BadRequest,
                "IQ without payload",
                None,
            )));
            return;
        };
        match (kind, payload.name(), payload.ns().as_str()) {
            ("set", "jingle", ns::JINGLE) => self.on_jingle(now, &header, payload, out),
            ("get", "ping", stanza::NS_PING) => {
                out.push(Output::Xmpp(stanza::iq_result(&header)));
            }
            ("get", "query", stanza::NS_DISCO_INFO) => {
                let reply = stanza::disco_info(payload.attr("node"));
                out.push(Output::Xmpp(stanza::iq_result_with(&header, reply)));
            }
            _ => out.push(Output::Xmpp(stanza::iq_error(
                &header,
                ErrorCondition::ServiceUnavailable,
                "",
                None,
            ))),
        }
    }

    fn on_jingle(
        &mut self,
        now: Millis,
        header: &IqHeader,
        payload: &Element,
        out: &mut Vec<Output>,
    ) {
        let jingle = match Jingle::parse_limited(payload, &self.cfg.jingle_limits) {
            Ok(j) => j,
            Err(err) => {
                let condition = match err {
                    JingleError::TooMany { .. } => ErrorCondition::PolicyViolation,
                    _ => ErrorCondition::BadRequest,
                };
                out.push(Output::Xmpp(stanza::iq_error(
                    header,
                    condition,
                    &err.to_string(),
                    None,
                )));
                return;
            }
        };
        let key = (jingle.sid.clone(), header.from.clone());
        if let Some(&id) = self.by_jingle.get(&key) {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
            call.on_jingle(&mut ctx, header, jingle);
            self.reap(id);
            return;
        }
        if jingle.action != Action::SessionInitiate {
            out.push(Output::Xmpp(stanza::iq_error(
                header,
                ErrorCondition::ItemNotFound,
                &format!("no Jingle session '{}' with {}", jingle.sid, header.from),
                Some(AppError::UnknownSession),
            )));
            return;
        }
        if self.draining {
            out.push(Output::Xmpp(stanza::iq_error(
                header,
                ErrorCondition::ServiceUnavailable,
                "the gateway is shutting down; try again later",
                None,
            )));
            return;
        }
        if self.store_backlogged || self.at_call_limit() {
            let why = if self.store_backlogged {
                "session store backlog"
            } else {
                "at its limit of calls"
            };
            out.push(Output::Xmpp(stanza::iq_error(
                header,
                ErrorCondition::ResourceConstraint,
                &format!("the gateway cannot take new calls now ({why}); try again later"),
                None,
            )));
            return;
        }
        if let Some(text) = self.loop_check(&header.from, &jingle.sid) {
            out.push(Output::Xmpp(stanza::iq_error(
                header,
                ErrorCondition::Conflict,
                &text,
                None,
            )));
            return;
        }
        let id = self.allocate_id();
        let call_id = self.call_id_for(&jingle.sid);
        let key = self.keys.key();
        let proposed = self.take_proposal(&jingle.sid, &header.from);
        let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
        if let Some(mut call) =
            Call::from_session_initiate(&mut ctx, id, call_id, key, header, jingle, &self.down)
        {
            if proposed {
                call.mark_jmi();
            }
            self.insert(call);
            self.reap(id);
        }
    }

    fn on_sip(&mut self, now: Millis, sip: SipEvent, out: &mut Vec<Output>) {
        let unavailable = self.unavailable();
        self.incoming_or_event(now, sip, unavailable, out);
    }

    /// Refuses a new INVITE with 503 `phrase` (a row records it).
    fn refuse_invite(&mut self, now: Millis, sip: SipEvent, phrase: &str, out: &mut Vec<Output>) {
        self.incoming_or_event(now, sip, Some(phrase), out);
    }

    /// A SIP event: a new INVITE starts a call (or is refused with 503
    /// `unavailable`), anything else goes to its call.
    fn incoming_or_event(
        &mut self,
        now: Millis,
        sip: SipEvent,
        unavailable: Option<&str>,
        out: &mut Vec<Output>,
    ) {
        if let SipEvent::IncomingInvite {
            call: key,
            call_id,
            request_uri,
            from,
            sdp,
            supported,
            ..
        } = sip
        {
            // The SIP layer refuses an INVITE whose Call-ID is live (482).
            let id = self.allocate_id();
            let sid = self.sid_for(&call_id);
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
            let call = match unavailable {
                Some(phrase) => Call::refused_invite(
                    &mut ctx,
                    id,
                    sid,
                    call_id,
                    key,
                    &request_uri,
                    &from,
                    phrase,
                ),
                None => {
                    Call::from_invite(&mut ctx, id, sid, call_id, key, &request_uri, &from, sdp)
                }
            };
            let mut call = call;
            call.set_peer_supported(&supported);
            self.insert(call);
            self.reap(id);
            return;
        }
        let Some(&id) = self.by_key.get(&sip.call()) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
            call.on_sip(&mut ctx, sip);
        }
        self.reap(id);
    }

    fn on_iq_response(
        &mut self,
        now: Millis,
        id: String,
        outcome: IqOutcome,
        out: &mut Vec<Output>,
    ) {
        let Some((call_key, purpose)) = self.iqs.remove(&id) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&call_key) {
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
            call.on_iq_response(&mut ctx, purpose, outcome);
        }
        self.reap(call_key);
    }

    fn on_timer(&mut self, now: Millis, key: TimerKey, out: &mut Vec<Output>) {
        let (id, timer) = match key {
            TimerKey::RingTimeout { call } => (call, CallTimer::Ring),
            TimerKey::CandidateWindow { call } => (call, CallTimer::CandidateWindow),
            TimerKey::AnswerTimeout { call } => (call, CallTimer::Answer),
            TimerKey::ReofferRetry { call } => (call, CallTimer::Reoffer),
            TimerKey::SessionRefresh { call, epoch } => (call, CallTimer::SessionRefresh(epoch)),
            TimerKey::SessionExpiry { call, epoch } => (call, CallTimer::SessionExpiry(epoch)),
            TimerKey::PeerPing { call } => (call, CallTimer::PeerPing),
            TimerKey::MaxDuration { call } => (call, CallTimer::MaxDuration),
            TimerKey::ContentAnswer { call } => (call, CallTimer::ContentAnswer),
            TimerKey::ProposalTimeout { proposal } => {
                self.proposal_timeout(now, proposal, out);
                return;
            }
        };
        if let Some(call) = self.calls.get_mut(&id) {
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
            call.on_timer(&mut ctx, timer);
        }
        self.reap(id);
    }

    /// Unavailable presence from a full JID with calls: its calls end on
    /// the SIP side (liveness.rs). Other presence is not used.
    fn on_presence(&mut self, now: Millis, el: &Element, out: &mut Vec<Output>) {
        let Some(from) = el.attr("from").filter(|f| f.contains('/')) else {
            return;
        };
        if el.attr("type") != Some("unavailable") {
            return;
        }
        let ids: Vec<i64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.xmpp_peer() == from)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(call) = self.calls.get_mut(&id) {
                let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, out);
                call.on_peer_unavailable(&mut ctx);
            }
            self.reap(id);
        }
    }

    /// STOX loop detection (XMPP has no Max-Forwards): a session-initiate
    /// from one of the gateway's own JIDs, or with the sid of a SIP → XMPP
    /// call that is still live, is a session re-entering the gateway.
    fn loop_check(&self, from: &str, sid: &Sid) -> Option<String> {
        let domain = from
            .split('/')
            .next()
            .unwrap_or("")
            .rsplit('@')
            .next()
            .unwrap_or("");
        if domain.eq_ignore_ascii_case(&self.cfg.component) {
            return Some(format!(
                "loop detected: {from} is the gateway's own address"
            ));
        }
        self.sip_sids
            .contains_key(sid)
            .then(|| format!("loop detected: session {sid} already passes through the gateway"))
    }

    fn allocate_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn insert(&mut self, call: Call) {
        let id = call.id();
        if !call.is_finished() {
            self.by_jingle
                .insert((call.sid().clone(), call.xmpp_peer().to_owned()), id);
            self.by_call_id.insert(call.call_id().clone(), id);
            self.by_key.insert(call.key(), id);
            if call.is_from_sip() {
                self.sip_sids.insert(call.sid().clone(), id);
            }
            if call.is_proposing() {
                self.by_proposal
                    .insert((call.sid().clone(), call.xmpp_bare().to_owned()), id);
            }
        }
        self.calls.insert(id, call);
    }

    /// Drops a call that has nothing left to wait for, with its indexes.
    fn reap(&mut self, id: i64) {
        let finished = self.calls.get(&id).is_none_or(Call::is_finished);
        if !finished {
            return;
        }
        if let Some(call) = self.calls.remove(&id) {
            let key = (call.sid().clone(), call.xmpp_peer().to_owned());
            if self.by_jingle.get(&key) == Some(&id) {
                self.by_jingle.remove(&key);
            }
            if self.by_call_id.get(call.call_id()) == Some(&id) {
                self.by_call_id.remove(call.call_id());
            }
            if self.by_key.get(&call.key()) == Some(&id) {
                self.by_key.remove(&call.key());
            }
            if self.sip_sids.get(call.sid()) == Some(&id) {
                self.sip_sids.remove(call.sid());
            }
            let proposal = (call.sid().clone(), call.xmpp_bare().to_owned());
            if self.by_proposal.get(&proposal) == Some(&id) {
                self.by_proposal.remove(&proposal);
            }
            for iq in call.sent_iqs() {
                self.iqs.remove(iq);
            }
            stox_mapping::tables::shrink(&mut self.calls);
            stox_mapping::tables::shrink(&mut self.by_jingle);
            stox_mapping::tables::shrink(&mut self.by_call_id);
            stox_mapping::tables::shrink(&mut self.by_key);
            stox_mapping::tables::shrink(&mut self.sip_sids);
            stox_mapping::tables::shrink(&mut self.by_proposal);
            stox_mapping::tables::shrink(&mut self.iqs);
        }
    }

    /// STOX: the Jingle sid is the local part of the Call-ID, when it can be.
    fn call_id_for(&self, sid: &Sid) -> CallId {
        let candidate = CallId::new(format!("{}@{}", sid, self.cfg.component));
        if is_call_id_word(sid.as_str()) && !self.by_call_id.contains_key(&candidate) {
            candidate
        } else {
            CallId::new(format!(
                "{}@{}",
                random_token(self.cfg.token_salt, self.next_id),
                self.cfg.component
            ))
        }
    }

    /// STOX: the sid is the Call-ID's local part (it is only unique per XMPP
    /// peer, which the routing key includes).
    fn sid_for(&self, call_id: &CallId) -> Sid {
        let local = call_id.as_str().split('@').next().unwrap_or("");
        if !local.is_empty() && local.len() <= 256 && is_sid_safe(local) {
            Sid::new(local)
        } else {
            Sid::new(random_token(self.cfg.token_salt, self.next_id))
        }
    }
}

/// RFC 3261 `word` characters (what a Call-ID may consist of).
fn is_call_id_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b))
}

/// Characters we accept in a sid derived from a Call-ID (anything that is
/// plain to write in an XML attribute and a log line).
fn is_sid_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+!*()".contains(&b))
}

/// A token unique per (salt, call number), mixed so that it does not look
/// sequential. The call number makes it unique within one database; the salt
/// across gateway instances.
fn random_token(salt: u64, id: i64) -> String {
    // SplitMix64: deterministic (the core is pure) yet well spread.
    let mut z = salt ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("stox{z:016x}{id:x}")
}
