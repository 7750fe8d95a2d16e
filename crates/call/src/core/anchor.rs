//! Media anchoring: every SDP of an anchored call passes through rtpengine
//! (docs/media.md, `media.rs`).
//!
//! The calls themselves never see rtpengine. Between them and the SIP
//! layer, each anchored call has a queue:
//!
//! * an SDP the call sends (INVITE, 2xx, re-offer, answer to a re-offer)
//!   becomes an NG `offer` or `answer` ([`Output::Media`]); the command
//!   leaves with rtpengine's SDP when its answer comes ([`Input::Media`]);
//! * an SDP the SIP peer sends (INVITE, 18x/2xx, re-offer, answer) goes to
//!   rtpengine first; the call gets the event with rtpengine's SDP;
//! * while a request is out, the call's later SIP commands and events wait
//!   in order behind it;
//! * when the call's row ends, a `delete` follows whatever is queued; its
//!   figures go into the row ([`Output::MediaStats`]).
//!
//! rtpengine failing is an input like any other: a call that cannot get
//! its SDP rewritten ends with the answer due on each side
//! ([`crate::call::Call::media_failed`]); a re-offer the SIP peer made is
//! refused with 503 and the session stays as it was (RFC 3264 §8).

use super::Core;
use crate::call::MediaFailure;
use crate::media::{self, Leg, MediaMode, MediaStats, SipMedia, Step};
use crate::time::Millis;
use crate::types::{
    CallKey, CallState, Fault, MediaReply, MediaRequest, Output, SessionRecord, SipCommand,
    SipEvent,
};
use std::collections::{HashMap, VecDeque};

/// The anchored calls.
#[derive(Default)]
pub(crate) struct Anchors {
    calls: HashMap<CallKey, Anchor>,
    /// Requests out: ticket → call.
    tickets: HashMap<u64, CallKey>,
    next_ticket: u64,
}

struct Anchor {
    /// The call's row (learnt from its first write).
    id: Option<i64>,
    /// rtpengine's name for the call: the SIP Call-ID.
    call_id: String,
    sip: SipMedia,
    /// The rtpengine that answered first; every later request goes there.
    relay: Option<String>,
    /// The request out, and what waits for its answer.
    waiting: Option<(u64, Held)>,
    /// What comes after it, in order.
    queue: VecDeque<Held>,
    /// The row has ended: a `delete` is queued or out.
    ending: bool,
}

enum Held {
    /// A SIP event for the call (its SDP, if any, not rewritten yet).
    In(SipEvent),
    /// A SIP command of the call (its SDP, if any, not rewritten yet).
    Out(SipCommand),
    Delete,
}

impl Anchors {
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Calls with an rtpengine session or a request out.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}

/// The rtpengine step an SDP the call sends needs. (A SIP caller's INVITE
/// always offers: one without SDP is refused with 488.)
fn command_step(cmd: &SipCommand) -> Option<Step> {
    match cmd {
        SipCommand::Invite { .. } => Some(Step::Offer {
            from: Leg::Xmpp,
            again: false,
        }),
        SipCommand::Respond { sdp: Some(_), .. } | SipCommand::Reply { sdp: Some(_), .. } => {
            Some(Step::Answer { offerer: Leg::Sip })
        }
        SipCommand::Reoffer { sdp: Some(_), .. } => Some(Step::Offer {
            from: Leg::Xmpp,
            again: true,
        }),
        _ => None,
    }
}

/// The rtpengine step an SDP the SIP peer sent needs.
fn event_step(ev: &SipEvent) -> Option<Step> {
    match ev {
        SipEvent::IncomingInvite { sdp: Some(_), .. } => Some(Step::Offer {
            from: Leg::Sip,
            again: false,
        }),
        SipEvent::Provisional { sdp: Some(_), .. }
        | SipEvent::Answered { sdp: Some(_), .. }
        | SipEvent::ReofferAnswered { sdp: Some(_), .. } => {
            Some(Step::Answer { offerer: Leg::Xmpp })
        }
        SipEvent::Request {
            method,
            content_type,
            body: Some(_),
            ..
        } if (method == "INVITE" || method == "UPDATE")
            && content_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp")) =>
        {
            Some(Step::Offer {
                from: Leg::Sip,
                again: true,
            })
        }
        _ => None,
    }
}

fn command_sdp(cmd: &mut SipCommand) -> Option<&mut String> {
    match cmd {
        SipCommand::Invite { sdp, .. } => Some(sdp),
        SipCommand::Respond { sdp, .. }
        | SipCommand::Reply { sdp, .. }
        | SipCommand::Reoffer { sdp, .. } => sdp.as_mut(),
        _ => None,
    }
}

fn event_sdp(ev: &mut SipEvent) -> Option<&mut Option<String>> {
    match ev {
        SipEvent::IncomingInvite { sdp, .. }
        | SipEvent::Provisional { sdp, .. }
        | SipEvent::Answered { sdp, .. }
        | SipEvent::ReofferAnswered { sdp, .. } => Some(sdp),
        SipEvent::Request { body, .. } => Some(body),
        _ => None,
    }
}

impl Core {
    /// Does this gateway anchor any call (or still hold an anchored one)?
    pub(super) fn anchoring(&self) -> bool {
        self.media_on || !self.anchors.is_empty()
    }

    /// Anchored calls in memory (for tests and metrics).
    pub fn anchored_calls(&self) -> usize {
        self.anchors.len()
    }

    /// Re-creates the anchor of a call resumed or recovered after a
    /// restart (its row names its rtpengine).
    pub(super) fn restore_anchor(&mut self, key: CallKey, rec: &SessionRecord) {
        let Some(relay) = rec.media_relay.clone() else {
            return;
        };
        let sip = match self.cfg.media.for_peer(rec.sip_peer.as_deref()) {
            MediaMode::Rtpengine(sip) => sip,
            MediaMode::Passthrough => SipMedia::default(),
        };
        self.anchors.calls.insert(
            key,
            Anchor {
                id: Some(rec.id),
                call_id: rec.sip_call_id.as_str().to_owned(),
                sip,
                relay: Some(relay),
                waiting: None,
                queue: VecDeque::new(),
                ending: false,
            },
        );
    }

    /// Carries the outputs of one step of the calls (`raw`) into `out`,
    /// through the anchors of anchored calls.
    pub(super) fn route_outputs(&mut self, now: Millis, raw: Vec<Output>, out: &mut Vec<Output>) {
        if !self.anchoring() {
            out.extend(raw);
            return;
        }
        let mut ended = Vec::new();
        for o in raw {
            match o {
                Output::Sip(cmd) => self.anchor_command(cmd, out),
                Output::Persist {
                    record,
                    call: Some(key),
                } => {
                    if let Some(a) = self.anchors.calls.get_mut(&key) {
                        a.id.get_or_insert(record.id);
                        if record.state == CallState::Ended && !a.ending {
                            a.ending = true;
                            ended.push(key);
                        }
                    }
                    out.push(Output::Persist {
                        record,
                        call: Some(key),
                    });
                }
                other => out.push(other),
            }
        }
        for key in ended {
            if let Some(a) = self.anchors.calls.get_mut(&key) {
                a.queue.push_back(Held::Delete);
            }
            self.drain(now, key, out);
        }
    }

    /// A SIP command of a call: anchored calls' go through their queue.
    fn anchor_command(&mut self, cmd: SipCommand, out: &mut Vec<Output>) {
        let key = cmd.call();
        if let SipCommand::Invite { call_id, peer, .. } = &cmd
            && let MediaMode::Rtpengine(sip) = self.cfg.media.for_peer(peer.as_deref())
            && !self.anchors.calls.contains_key(&key)
        {
            self.anchors
                .calls
                .insert(key, Anchor::new(call_id.as_str(), sip));
        }
        let Some(a) = self.anchors.calls.get_mut(&key) else {
            out.push(Output::Sip(cmd));
            return;
        };
        if a.waiting.is_some() || !a.queue.is_empty() {
            a.queue.push_back(Held::Out(cmd));
            return;
        }
        self.send_command(key, cmd, out);
    }

    /// Sends `cmd` now, or its SDP to rtpengine first.
    fn send_command(&mut self, key: CallKey, mut cmd: SipCommand, out: &mut Vec<Output>) {
        let Some(a) = self.anchors.calls.get(&key) else {
            out.push(Output::Sip(cmd));
            return;
        };
        let Some(step) = command_step(&cmd) else {
            out.push(Output::Sip(cmd));
            return;
        };
        let Some(sdp) = command_sdp(&mut cmd) else {
            out.push(Output::Sip(cmd));
            return;
        };
        let request = media::request(&a.call_id, step, sdp, a.sip);
        self.start(key, request, Held::Out(cmd), out);
    }

    /// A SIP event: `Some` when it goes to its call now; anchored calls'
    /// wait for rtpengine or for what is queued before them.
    pub(super) fn anchor_event(&mut self, ev: SipEvent, out: &mut Vec<Output>) -> Option<SipEvent> {
        if !self.anchoring() {
            return Some(ev);
        }
        let key = ev.call();
        if let SipEvent::IncomingInvite {
            call_id, source, ..
        } = &ev
            && !self.anchors.calls.contains_key(&key)
            && self.unavailable().is_none()
            && let MediaMode::Rtpengine(sip) = self.cfg.media.for_source(source.ip())
        {
            self.anchors
                .calls
                .insert(key, Anchor::new(call_id.as_str(), sip));
        }
        let Some(a) = self.anchors.calls.get_mut(&key) else {
            return Some(ev);
        };
        if a.waiting.is_some() || !a.queue.is_empty() {
            a.queue.push_back(Held::In(ev));
            return None;
        }
        self.receive_event(key, ev, out)
    }

    /// Sends the SDP of `ev` to rtpengine, or gives the event back.
    fn receive_event(
        &mut self,
        key: CallKey,
        mut ev: SipEvent,
        out: &mut Vec<Output>,
    ) -> Option<SipEvent> {
        let (Some(step), Some(a)) = (event_step(&ev), self.anchors.calls.get(&key)) else {
            return Some(ev);
        };
        let Some(Some(sdp)) = event_sdp(&mut ev) else {
            return Some(ev);
        };
        let request = media::request(&a.call_id, step, sdp, a.sip);
        self.start(key, request, Held::In(ev), out);
        None
    }

    fn start(
        &mut self,
        key: CallKey,
        request: stox_rtpengine::Request,
        held: Held,
        out: &mut Vec<Output>,
    ) {
        let Some(a) = self.anchors.calls.get_mut(&key) else {
            return;
        };
        self.anchors.next_ticket += 1;
        let ticket = self.anchors.next_ticket;
        self.anchors.tickets.insert(ticket, key);
        out.push(Output::Media(MediaRequest {
            ticket,
            relay: a.relay.clone(),
            request,
        }));
        a.waiting = Some((ticket, held));
    }

    /// Hands `ev` to its call, and the call's outputs on.
    fn dispatch(&mut self, now: Millis, ev: SipEvent, out: &mut Vec<Output>) {
        let mut raw = Vec::new();
        self.on_sip(now, ev, &mut raw);
        self.route_outputs(now, raw, out);
    }

    /// Lets what is queued behind a call's finished request go on.
    fn drain(&mut self, now: Millis, key: CallKey, out: &mut Vec<Output>) {
        loop {
            let Some(a) = self.anchors.calls.get_mut(&key) else {
                return;
            };
            if a.waiting.is_some() {
                return;
            }
            let Some(item) = a.queue.pop_front() else {
                return;
            };
            match item {
                Held::Out(cmd) => self.send_command(key, cmd, out),
                Held::In(ev) => {
                    if let Some(ev) = self.receive_event(key, ev, out) {
                        self.dispatch(now, ev, out);
                    }
                }
                Held::Delete => match a.relay.clone() {
                    Some(_) => {
                        let request = media::delete(&a.call_id);
                        self.start(key, request, Held::Delete, out);
                    }
                    // rtpengine never answered: it has no session.
                    None => {
                        for ev in self.drop_anchor(key) {
                            self.dispatch(now, ev, out);
                        }
                        return;
                    }
                },
            }
        }
    }

    /// Forgets the anchor of `key`. What it still had queued belongs to a
    /// call that has ended: its SIP events are returned for the caller to
    /// dispatch (the core answers what is due), its commands were for
    /// rtpengine's session and go.
    #[must_use]
    fn drop_anchor(&mut self, key: CallKey) -> Vec<SipEvent> {
        let mut events = Vec::new();
        if let Some(a) = self.anchors.calls.remove(&key) {
            if let Some((ticket, _)) = a.waiting {
                self.anchors.tickets.remove(&ticket);
            }
            for held in a.queue {
                if let Held::In(ev) = held {
                    events.push(ev);
                }
            }
        }
        stox_mapping::tables::shrink(&mut self.anchors.calls);
        stox_mapping::tables::shrink(&mut self.anchors.tickets);
        events
    }

    /// rtpengine's answer (or failure) for `ticket`.
    pub(super) fn on_media(
        &mut self,
        now: Millis,
        ticket: u64,
        result: Result<MediaReply, String>,
        out: &mut Vec<Output>,
    ) {
        let Some(key) = self.anchors.tickets.remove(&ticket) else {
            return;
        };
        let Some(a) = self.anchors.calls.get_mut(&key) else {
            return;
        };
        let Some((_, held)) = a.waiting.take() else {
            return;
        };
        match result {
            Ok(reply) => self.media_answered(now, key, held, reply, out),
            Err(reason) => self.media_failed(now, key, held, &reason, out),
        }
        self.drain(now, key, out);
    }

    fn media_answered(
        &mut self,
        now: Millis,
        key: CallKey,
        held: Held,
        reply: MediaReply,
        out: &mut Vec<Output>,
    ) {
        let Some(a) = self.anchors.calls.get_mut(&key) else {
            return;
        };
        // The first answer names the call's rtpengine; the row says so once
        // the call exists (a SIP caller's is created by the event below).
        let first = a.relay.is_none();
        a.relay.get_or_insert_with(|| reply.relay.clone());
        let sdp = reply.reply.sdp.clone();
        match held {
            Held::Out(mut cmd) => {
                if let (Some(slot), Some(sdp)) = (command_sdp(&mut cmd), sdp) {
                    *slot = sdp;
                }
                out.push(Output::Sip(cmd));
            }
            Held::In(mut ev) => {
                if let (Some(slot), Some(sdp)) = (event_sdp(&mut ev), sdp) {
                    *slot = Some(sdp);
                }
                self.dispatch(now, ev, out);
            }
            Held::Delete => {
                let id = self.anchors.calls.get(&key).and_then(|a| a.id);
                if let Some(id) = id {
                    out.push(Output::MediaStats {
                        id,
                        stats: MediaStats::of(&reply.reply),
                    });
                }
                for ev in self.drop_anchor(key) {
                    self.dispatch(now, ev, out);
                }
                return;
            }
        }
        if first {
            self.with_call(now, key, out, |call, ctx| {
                call.set_media_relay(ctx, reply.relay.clone());
            });
        }
    }

    fn media_failed(
        &mut self,
        now: Millis,
        key: CallKey,
        held: Held,
        reason: &str,
        out: &mut Vec<Output>,
    ) {
        match held {
            Held::Delete => {
                if let Some(id) = self.anchors.calls.get(&key).and_then(|a| a.id) {
                    out.push(media_fault(id, "delete", reason));
                }
                for ev in self.drop_anchor(key) {
                    self.dispatch(now, ev, out);
                }
            }
            Held::Out(cmd) => match cmd {
                SipCommand::Invite { .. } => {
                    self.end_call(now, key, MediaFailure::Offer, reason, out);
                }
                SipCommand::Respond { .. } => {
                    self.end_call(now, key, MediaFailure::Answer, reason, out);
                }
                SipCommand::Reply { call, request, .. } => {
                    out.push(Output::Sip(SipCommand::Reply {
                        call,
                        request,
                        status: 500,
                        reason: Some("Server Internal Error (media relay)".into()),
                        sdp: None,
                    }));
                    self.end_call(now, key, MediaFailure::Dialog, reason, out);
                }
                SipCommand::Reoffer { call, .. } => {
                    // Nothing left: the session stays as it was.
                    self.dispatch(
                        now,
                        SipEvent::ReofferRefused {
                            call,
                            status: 503,
                            reason: format!("media relay: {reason}"),
                        },
                        out,
                    );
                }
                other => out.push(Output::Sip(other)),
            },
            Held::In(ev) => match ev {
                SipEvent::IncomingInvite { .. } => {
                    let later = self.drop_anchor(key);
                    let mut raw = Vec::new();
                    self.refuse_invite(
                        now,
                        ev,
                        "Service Unavailable (media relay unreachable)",
                        &mut raw,
                    );
                    // The refused call's row (it is already reaped).
                    let id = raw.iter().find_map(|o| match o {
                        Output::Persist { record, .. } => Some(record.id),
                        _ => None,
                    });
                    if let Some(id) = id {
                        raw.push(media_fault(id, "offer", reason));
                    }
                    self.route_outputs(now, raw, out);
                    for ev in later {
                        self.dispatch(now, ev, out);
                    }
                }
                // Early media is lost; the call goes on.
                SipEvent::Provisional {
                    call,
                    status,
                    reliable,
                    supported,
                    ..
                } => self.dispatch(
                    now,
                    SipEvent::Provisional {
                        call,
                        status,
                        sdp: None,
                        reliable,
                        supported,
                    },
                    out,
                ),
                SipEvent::Answered { .. } | SipEvent::ReofferAnswered { .. } => {
                    self.end_call(now, key, MediaFailure::Dialog, reason, out);
                }
                // The peer's re-offer is refused; the session stays as it
                // was (RFC 3264 §8).
                SipEvent::Request { call, request, .. } => {
                    out.push(Output::Sip(SipCommand::Reply {
                        call,
                        request,
                        status: 503,
                        reason: Some("Service Unavailable (media relay)".into()),
                        sdp: None,
                    }));
                    if let Some(&id) = self.by_key.get(&key) {
                        out.push(media_fault(id, "offer", reason));
                    }
                }
                other => self.dispatch(now, other, out),
            },
        }
    }

    /// Ends the call of `key` because rtpengine failed; what it had queued
    /// for the SIP side is dropped (it was for the media that failed).
    fn end_call(
        &mut self,
        now: Millis,
        key: CallKey,
        failure: MediaFailure,
        reason: &str,
        out: &mut Vec<Output>,
    ) {
        if let Some(a) = self.anchors.calls.get_mut(&key) {
            a.queue.retain(|h| !matches!(h, Held::Out(_)));
        }
        self.with_call(now, key, out, |call, ctx| {
            call.media_failed(ctx, failure, reason);
        });
    }

    /// Runs `f` on the call of `key` and routes what it outputs.
    fn with_call(
        &mut self,
        now: Millis,
        key: CallKey,
        out: &mut Vec<Output>,
        f: impl FnOnce(&mut crate::call::Call, &mut crate::call::Ctx<'_>),
    ) {
        let Some(&id) = self.by_key.get(&key) else {
            return;
        };
        let mut raw = Vec::new();
        if let Some(call) = self.calls.get_mut(&id) {
            let mut ctx = Self::ctx(&self.cfg, &mut self.iqs, &mut self.iq_seq, now, &mut raw);
            f(call, &mut ctx);
        }
        self.reap(id);
        self.route_outputs(now, raw, out);
    }
}

/// rtpengine failed `command` for row `id` where a log line is all that is
/// left to do.
fn media_fault(id: i64, command: &str, reason: &str) -> Output {
    Output::Fault {
        call: id,
        fault: Fault::MediaRelay {
            command: command.to_owned(),
            reason: reason.to_owned(),
        },
    }
}

impl Anchor {
    fn new(call_id: &str, sip: SipMedia) -> Anchor {
        Anchor {
            id: None,
            call_id: call_id.to_owned(),
            sip,
            relay: None,
            waiting: None,
            queue: VecDeque::new(),
            ending: false,
        }
    }
}
