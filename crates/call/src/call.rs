//! The per-call state machine, shared parts. A call is a [`Phase`]: one
//! enum per direction and phase, each holding only what that phase needs.
//! The two directions live in `xmpp_to_sip.rs` and `sip_to_xmpp.rs`.
//!
//! Every handler takes the phase out of the call, matches it together with
//! the input, and puts back the phase that follows. An input the phase does
//! not expect gets the wire answer that is due (an IQ error for a Jingle
//! request, a SIP reply for a request) or, when nothing is due on the wire
//! (a late response, an event for the other direction), becomes a
//! [`Fault`] output that the adapter logs and counts.

use crate::core::CoreConfig;
use crate::stanza::{self, AppError, IqHeader};
use crate::time::Millis;
use crate::types::{
    CallKey, CallState, Command, Direction, EndedBy, Fault, Hold, IqOutcome, Output, SessionRecord,
    SipCommand, SipEvent,
};
use minidom::Element;
use std::collections::HashMap;
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::jingle::{Action, Content, Group, Jingle, Reason};
use stox_mapping::status::{ErrorCondition, ReasonCondition};

mod content;
mod hold;
mod ice;
mod in_dialog;
mod jmi_flow;
mod liveness;
mod senders;
mod session_timer;
mod sip_to_xmpp;
mod trickle;
mod xmpp_to_sip;

/// What an IQ the gateway sent was for, so its answer can be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IqPurpose {
    /// session-initiate
    Initiate,
    /// session-accept
    Accept,
    /// session-info
    Info,
    /// session-terminate
    Terminate,
    /// XEP-0199 ping of the XMPP user (liveness.rs)
    Ping,
    /// content-add for streams the SIP peer added (content.rs)
    ContentAdd,
}

/// A timer of one call (the core routes the others itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallTimer {
    /// SIP → XMPP: the XMPP callee has not answered in time.
    Ring,
    /// XMPP → SIP: the SIP callee has not answered in time.
    Answer,
    /// XMPP → SIP: the trickled candidates are gathered; INVITE now.
    CandidateWindow,
    /// The wait after a 491 (RFC 3261 §14.1) is over: offer again.
    Reoffer,
    /// Half the session interval is over and we refresh (RFC 4028 §10).
    SessionRefresh(u32),
    /// The session interval is over without a refresh (RFC 4028 §10).
    SessionExpiry(u32),
    /// Time to ping the XMPP user (XEP-0199).
    PeerPing,
    /// The longest call duration is over.
    MaxDuration,
    /// The XMPP user did not answer a content-add in time.
    ContentAnswer,
}

/// A Jingle offer: its contents and XEP-0338 groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Offer {
    contents: Vec<Content>,
    groups: Vec<Group>,
}

/// Which SDP rtpengine failed to rewrite ([`Call::media_failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaFailure {
    /// The offer of our INVITE: it never left.
    Offer,
    /// Our answer to the SIP caller's INVITE: it gets 503 instead.
    Answer,
    /// An SDP of the confirmed (or answered) dialog: it ends with BYE.
    Dialog,
}

/// Where a call is. The operator-visible [`CallState`] is written with it.
#[derive(Debug)]
pub(crate) enum Phase {
    /// XMPP → SIP, before the answer.
    Out(Out),
    /// SIP → XMPP, before the answer.
    In(In),
    /// Answered and confirmed, either direction.
    Active(Session),
    /// Nothing left to wait for: the core drops the call.
    Finished,
}

/// XMPP → SIP, before the answer.
#[derive(Debug)]
pub(crate) enum Out {
    /// session-initiate acknowledged; trickled candidates are being gathered
    /// before the INVITE goes out.
    Gathering {
        offer: Offer,
        /// The From URI the INVITE will carry.
        caller_uri: String,
    },
    /// INVITE sent, no provisional response yet.
    Inviting(Inviting),
    /// A 180/183 arrived and `<ringing/>` went to the caller.
    Alerting(Inviting),
    /// The XMPP caller hung up (or nobody answered) before the answer;
    /// CANCEL sent, waiting for the INVITE's final response (a 2xx is then
    /// ended with BYE).
    Cancelling,
}

/// XMPP → SIP with the INVITE out.
#[derive(Debug)]
pub(crate) struct Inviting {
    /// The Jingle offer's contents, to map the SDP answer against.
    contents: Vec<Content>,
    /// The SDP of the last provisional response (early media), used when
    /// the 2xx carries none (RFC 3262 reliable provisional).
    early_sdp: Option<String>,
    /// Candidates the XMPP caller trickled after the INVITE went out.
    held: Vec<Content>,
}

/// SIP → XMPP, before the answer.
#[derive(Debug)]
pub(crate) enum In {
    /// XEP-0353 `<propose/>` sent to a bare JID; waiting for a device to
    /// proceed (or reject).
    Proposing {
        incoming: Incoming,
        /// The devices that reported `<ringing/>`.
        ringing: Vec<String>,
    },
    /// session-initiate sent, its IQ not answered yet.
    Initiating(Incoming),
    /// The XMPP callee acknowledged the session-initiate.
    Offered(Incoming),
    /// 200 OK sent, waiting for the ACK.
    AwaitingAck(Session),
}

/// SIP → XMPP, not answered yet.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// The SIP offer mapped to Jingle.
    offer: Offer,
    /// The SDP offer, for writing the answer against it.
    sip_offer: String,
    /// 180 already sent.
    alerted: bool,
    /// Candidates the XMPP callee trickled before the dialog is confirmed.
    held: Vec<Content>,
}

/// An answered call, either direction.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The offer's contents (content names for trickled candidates; empty
    /// for a call resumed after a restart).
    contents: Vec<Content>,
    /// Trickled candidates held for a SIP peer that does not do trickle
    /// ICE (for the next offer/answer).
    held: Vec<Content>,
    /// Our new offer toward SIP in flight (one at a time, RFC 3264 §4).
    offering: Option<Reoffer>,
    /// The hold state the XMPP user asked for while an offer was in flight
    /// or refused with 491: offered when the SIP side is ready.
    next_hold: Option<bool>,
    /// A session refresh of ours was refused with 491: sent again after
    /// the wait.
    retry_refresh: bool,
    /// Bumped by every negotiated session timer (RFC 4028), so that the
    /// timers of an older one are stale when they fire.
    timer_epoch: u32,
    /// The session timer in force (the SIP layer stores it with the
    /// dialog's snapshot).
    timer: Option<crate::types::SessionTimer>,
    /// The SIP peer's re-INVITE adding streams, waiting for the XMPP user's
    /// content-accept or content-reject.
    incoming: Option<IncomingChange>,
}

/// A re-INVITE from SIP unanswered while the XMPP user answers its part.
#[derive(Debug)]
pub(crate) struct IncomingChange {
    request: crate::types::RequestId,
    offer: String,
    kind: IncomingKind,
}

#[derive(Debug)]
pub(crate) enum IncomingKind {
    /// New streams (RFC 3264 §8.1), offered by content-add (content.rs).
    Add {
        /// The new m= sections' indexes in the offer.
        added: Vec<usize>,
        /// The contents sent in the content-add.
        contents: Vec<Content>,
    },
    /// An ICE restart (RFC 8839 §4.4.1.1.1), sent as transport-info with
    /// the new credentials; the XMPP user's own new ones answer it (ice.rs).
    IceRestart,
}

/// A re-INVITE (or refreshing UPDATE) of ours in flight.
#[derive(Debug)]
pub(crate) struct Reoffer {
    /// The SDP offered (our local SDP once answered); none in an UPDATE
    /// that only refreshes.
    sdp: Option<String>,
    change: Change,
}

/// What a re-offer of ours changes.
#[derive(Debug)]
pub(crate) enum Change {
    /// Puts the SIP side on hold for the XMPP user (`true`) or resumes.
    Hold(bool),
    /// A session refresh (RFC 4028): nothing changes.
    Refresh,
    /// The XMPP user's content-add: these contents, answered by
    /// content-accept or content-reject.
    Add(Vec<Content>),
    /// The XMPP user's content-remove: these content names.
    Remove(Vec<String>),
    /// The XMPP user restarted ICE: the SIP side's new credentials go back
    /// as transport-info.
    IceRestart,
    /// The XMPP user's content-modify: the session's contents with their
    /// new `senders`, kept once the SIP side answers.
    Senders(Vec<Content>),
}

impl Change {
    fn name(&self) -> &'static str {
        match self {
            Change::Hold(true) => "hold",
            Change::Hold(false) => "resume",
            Change::Refresh => "session refresh",
            Change::Add(_) => "content-add",
            Change::Remove(_) => "content-remove",
            Change::IceRestart => "ICE restart",
            Change::Senders(_) => "content-modify",
        }
    }
}

impl Phase {
    /// The phase's name, for error texts and faults.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Phase::Out(Out::Gathering { .. }) => "gathering",
            Phase::Out(Out::Inviting(_)) => "inviting",
            Phase::Out(Out::Alerting(_)) => "alerting",
            Phase::Out(Out::Cancelling) => "cancelling",
            Phase::In(In::Proposing { .. }) => "proposing",
            Phase::In(In::Initiating(_)) => "initiating",
            Phase::In(In::Offered(_)) => "offered",
            Phase::In(In::AwaitingAck(_)) => "awaiting-ack",
            Phase::Active(_) => "active",
            Phase::Finished => "finished",
        }
    }

    /// The contents trickled candidates are named against, where the phase
    /// takes trickled candidates from the SIP side.
    fn trickle_names(&self) -> Option<&[Content]> {
        match self {
            Phase::Out(Out::Inviting(i) | Out::Alerting(i)) => Some(&i.contents),
            Phase::In(In::Initiating(i) | In::Offered(i)) => Some(&i.offer.contents),
            Phase::In(In::AwaitingAck(s)) | Phase::Active(s) => Some(&s.contents),
            Phase::Out(Out::Gathering { .. } | Out::Cancelling)
            | Phase::In(In::Proposing { .. })
            | Phase::Finished => None,
        }
    }

    /// Where candidates trickled by the XMPP side wait, in phases that hold
    /// them.
    fn held_mut(&mut self) -> Option<&mut Vec<Content>> {
        match self {
            Phase::Out(Out::Inviting(i) | Out::Alerting(i)) => Some(&mut i.held),
            Phase::In(In::Initiating(i) | In::Offered(i)) => Some(&mut i.held),
            Phase::In(In::AwaitingAck(s)) | Phase::Active(s) => Some(&mut s.held),
            Phase::Out(Out::Gathering { .. } | Out::Cancelling)
            | Phase::In(In::Proposing { .. })
            | Phase::Finished => None,
        }
    }
}

/// Everything a call may use from the core while it handles one input.
pub(crate) struct Ctx<'a> {
    pub now: Millis,
    pub cfg: &'a CoreConfig,
    pub out: &'a mut Vec<Output>,
    pub iqs: &'a mut HashMap<String, (i64, IqPurpose)>,
    pub iq_seq: &'a mut u64,
}

impl Ctx<'_> {
    fn send(&mut self, el: Element) {
        self.out.push(Output::Xmpp(el));
    }

    fn sip(&mut self, cmd: SipCommand) {
        self.out.push(Output::Sip(cmd));
    }

    fn error(&mut self, req: &IqHeader, cond: ErrorCondition, text: &str, app: Option<AppError>) {
        self.send(stanza::iq_error(req, cond, text, app));
    }

    fn result(&mut self, req: &IqHeader) {
        self.send(stanza::iq_result(req));
    }

    fn fault(&mut self, call: i64, fault: Fault) {
        self.out.push(Output::Fault { call, fault });
    }

    /// Sends a Jingle IQ set and remembers what it was for.
    fn jingle(
        &mut self,
        call: i64,
        purpose: IqPurpose,
        from: &str,
        to: &str,
        jingle: &Jingle,
    ) -> String {
        *self.iq_seq += 1;
        let id = format!("stox-{}-{}", call, *self.iq_seq);
        self.iqs.insert(id.clone(), (call, purpose));
        self.send(stanza::iq_set(&id, from, to, jingle.to_element()));
        id
    }
}

/// How many trickled candidate contents a call holds for a SIP peer that
/// takes none yet; a transport-info beyond it gets `resource-constraint`.
pub(crate) const MAX_HELD_CANDIDATES: usize = 64;

pub(crate) struct Call {
    rec: SessionRecord,
    /// The call on the SIP side.
    key: CallKey,
    /// The XMPP user's full JID (the one end of the Jingle session).
    xmpp_peer: String,
    /// The JID the gateway speaks as (the SIP user on the component domain).
    gateway_jid: String,
    /// The SIP peer said `Supported: trickle-ice` (RFC 8840): candidates
    /// trickled by the XMPP side go to it in INFO.
    peer_trickle: bool,
    /// XEP-0353: the session was set up with JMI, so `<finish/>` goes to the
    /// XMPP user when it ends.
    jmi_finish: bool,
    /// Ids of the IQs this call sent (the core forgets them with the call).
    sent_iqs: Vec<String>,
    phase: Phase,
}

impl Call {
    pub fn id(&self) -> i64 {
        self.rec.id
    }
    pub fn sid(&self) -> &Sid {
        &self.rec.jingle_sid
    }
    pub fn call_id(&self) -> &CallId {
        &self.rec.sip_call_id
    }
    pub fn key(&self) -> CallKey {
        self.key
    }
    pub fn xmpp_peer(&self) -> &str {
        &self.xmpp_peer
    }
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        now: Millis,
        id: i64,
        direction: Direction,
        sid: Sid,
        call_id: CallId,
        key: CallKey,
        xmpp_peer: String,
        gateway_jid: String,
        sip_uri: String,
    ) -> Call {
        Call {
            rec: SessionRecord {
                id,
                jingle_sid: sid,
                sip_call_id: call_id,
                direction,
                xmpp_jid: xmpp_peer.clone(),
                sip_uri,
                gateway_jid: gateway_jid.clone(),
                state: CallState::Pending,
                created_at: now,
                answered_at: None,
                ended_at: None,
                end_reason: None,
                sip_status: None,
                ended_by: None,
                end_detail: None,
                local_sdp: None,
                remote_sdp: None,
                hold: Hold::default(),
                sip_peer: None,
                media_relay: None,
                updated_at: now,
            },
            key,
            xmpp_peer,
            gateway_jid,
            peer_trickle: false,
            jmi_finish: false,
            sent_iqs: Vec::new(),
            phase: Phase::Finished,
        }
    }

    /// Takes the phase out for a handler, which puts back the next one.
    fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Finished)
    }

    pub fn on_jingle(&mut self, ctx: &mut Ctx<'_>, req: &IqHeader, jingle: Jingle) {
        let phase = self.take_phase();
        self.phase = match phase {
            Phase::Out(out) => self.xmpp_caller_jingle(ctx, out, req, jingle),
            Phase::In(phase) => self.xmpp_callee_jingle(ctx, phase, req, jingle),
            Phase::Active(session) => self.active_jingle(ctx, session, req, jingle),
            // A finished call is dropped before anything else reaches it.
            Phase::Finished => {
                Self::out_of_order(ctx, req, jingle.action, &Phase::Finished);
                Phase::Finished
            }
        };
    }

    pub fn on_sip(&mut self, ctx: &mut Ctx<'_>, sip: SipEvent) {
        let phase = self.take_phase();
        self.phase = match sip {
            SipEvent::CommandFailed {
                command, reason, ..
            } => self.command_failed(ctx, phase, command, &reason),
            SipEvent::Request {
                request,
                method,
                content_type,
                body,
                ..
            } => self.sip_request(ctx, phase, request, &method, content_type, body),
            other => match phase {
                Phase::Out(out) => self.sip_callee_event(ctx, out, other),
                Phase::In(phase) => self.sip_caller_event(ctx, phase, other),
                Phase::Active(session) => self.active_sip_event(ctx, session, other),
                Phase::Finished => self.unexpected_sip(ctx, Phase::Finished, &other),
            },
        };
    }

    pub fn on_iq_response(&mut self, ctx: &mut Ctx<'_>, purpose: IqPurpose, outcome: IqOutcome) {
        let phase = self.take_phase();
        self.phase = match (outcome, phase) {
            // Acknowledged: nothing to do but for a session-initiate
            // (SIP → XMPP: the callee has it).
            (IqOutcome::Result, Phase::In(In::Initiating(incoming)))
                if purpose == IqPurpose::Initiate =>
            {
                Phase::In(In::Offered(incoming))
            }
            (IqOutcome::Result, phase) => phase,
            (failed, Phase::In(In::Initiating(_))) if purpose == IqPurpose::Initiate => {
                self.initiate_failed(ctx, failed)
            }
            // Losing the XMPP caller after the answer (its session-accept
            // bounced): hang up the SIP side.
            (_, Phase::Active(_))
                if purpose == IqPurpose::Accept && self.rec.direction == Direction::XmppToSip =>
            {
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: None,
                });
                self.end(
                    ctx,
                    ReasonCondition::ConnectivityError,
                    EndedBy::Gateway,
                    None,
                )
            }
            // The content-add for the SIP peer's new streams failed: they
            // are declined (and the call ends if the user is gone).
            (failed, Phase::Active(session))
                if purpose == IqPurpose::ContentAdd && session.incoming.is_some() =>
            {
                let why = format!("content-add answered {failed:?}");
                let phase = self.change_unanswered(ctx, session, &why);
                if liveness::says_gone(&failed) {
                    self.xmpp_peer_gone(ctx, phase, why)
                } else {
                    phase
                }
            }
            // The XMPP user is gone: the SIP side is ended.
            (failed, phase) if liveness::says_gone(&failed) && purpose != IqPurpose::Terminate => {
                let why = format!("{} answered {failed:?}", purpose.as_str());
                self.xmpp_peer_gone(ctx, phase, why)
            }
            // A ping answered with any other error reached the client.
            (IqOutcome::Error(_), phase) if purpose == IqPurpose::Ping => phase,
            // An info or terminate that bounced, or an answer that comes
            // after the call moved on: XEP-0166 asks nothing more of us.
            (failed, phase) => {
                ctx.fault(
                    self.rec.id,
                    Fault::IqFailed {
                        purpose: purpose.as_str(),
                        outcome: failed,
                        phase: phase.name(),
                    },
                );
                phase
            }
        };
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: CallTimer) {
        let phase = self.take_phase();
        self.phase = match (timer, phase) {
            (
                CallTimer::Ring,
                Phase::In(phase @ (In::Proposing { .. } | In::Initiating(_) | In::Offered(_))),
            ) => self.ring_timeout(ctx, &phase),
            (CallTimer::Answer, Phase::Out(Out::Inviting(_) | Out::Alerting(_))) => {
                self.answer_timeout(ctx)
            }
            (CallTimer::CandidateWindow, Phase::Out(Out::Gathering { offer, caller_uri })) => {
                self.candidates_gathered(ctx, offer, caller_uri)
            }
            (CallTimer::Reoffer, Phase::Active(session)) => self.retry_reoffer(ctx, session),
            (CallTimer::SessionRefresh(epoch), Phase::Active(session)) => {
                self.refresh_due(ctx, session, epoch)
            }
            (
                CallTimer::SessionExpiry(epoch),
                Phase::Active(session) | Phase::In(In::AwaitingAck(session)),
            ) if epoch == session.timer_epoch => self.session_expired(ctx),
            (CallTimer::PeerPing, phase @ (Phase::Active(_) | Phase::In(In::AwaitingAck(_)))) => {
                self.ping_peer(ctx);
                phase
            }
            (CallTimer::MaxDuration, Phase::Active(_) | Phase::In(In::AwaitingAck(_))) => {
                self.max_duration_reached(ctx)
            }
            (CallTimer::ContentAnswer, Phase::Active(session)) => {
                self.change_unanswered(ctx, session, "the XMPP user did not answer in time")
            }
            // Timers are never cancelled: one for a phase the call has left
            // is stale, which is how it is meant to end.
            (
                CallTimer::Ring
                | CallTimer::Answer
                | CallTimer::CandidateWindow
                | CallTimer::Reoffer
                | CallTimer::SessionRefresh(_)
                | CallTimer::SessionExpiry(_)
                | CallTimer::PeerPing
                | CallTimer::MaxDuration
                | CallTimer::ContentAnswer,
                phase @ (Phase::Out(_) | Phase::In(_) | Phase::Active(_) | Phase::Finished),
            ) => phase,
        };
    }

    /// A call answered before a restart, resumed from its row: it can be
    /// ended from either side (the SIP layer restored its dialog).
    pub fn restored(key: CallKey, rec: SessionRecord) -> Call {
        let mut call = Call::new(
            rec.created_at,
            rec.id,
            rec.direction,
            rec.jingle_sid.clone(),
            rec.sip_call_id.clone(),
            key,
            rec.xmpp_jid.clone(),
            rec.gateway_jid.clone(),
            rec.sip_uri.clone(),
        );
        call.rec = rec;
        call.phase = Phase::Active(Session::default());
        call
    }

    /// A call a previous run left unanswered (or answered, but whose SIP
    /// dialog could not be restored): it cannot go on, so both sides are
    /// told what the saved state allows — a CANCEL for our INVITE or a 500
    /// for the peer's (when its `sip_pending` INVITE was stored), and a
    /// session-terminate (or a JMI retract while only proposed) to the XMPP
    /// user — and the row says what was done.
    pub fn recover(ctx: &mut Ctx<'_>, key: CallKey, rec: SessionRecord, sip_pending: bool) -> Call {
        let state = rec.state;
        let mut call = Call::restored(key, rec);
        let condition = ReasonCondition::ConnectivityError;
        let text = format!(
            "the gateway restarted while the call was {}",
            state.as_str()
        );
        let mut told = Vec::new();
        let mut status = None;
        if sip_pending {
            match call.rec.direction {
                Direction::XmppToSip => {
                    ctx.sip(SipCommand::Cancel { call: call.key });
                    told.push("CANCEL to the SIP callee");
                }
                Direction::SipToXmpp => {
                    ctx.sip(SipCommand::Respond {
                        call: call.key,
                        status: 500,
                        reason: Some("Server Internal Error (gateway restarted)".into()),
                        sdp: None,
                        retry_after: None,
                    });
                    status = Some(500);
                    told.push("500 to the SIP caller");
                }
            }
        } else if state == CallState::Active {
            told.push("nothing to SIP (its dialog could not be restored)");
        } else {
            told.push("nothing to SIP (no INVITE was out)");
        }
        let proposing = call.rec.direction == Direction::SipToXmpp && !call.xmpp_peer.contains('/');
        if proposing {
            call.retract(ctx, condition, &text);
            told.push("JMI retract to the XMPP callee");
        } else if !call.xmpp_peer.is_empty() {
            call.terminate_xmpp(ctx, condition, None, Some(text.clone()));
            told.push("session-terminate to the XMPP user");
        }
        call.rec.end_detail = Some(format!("{text}: {}", told.join(", ")));
        call.phase = call.end(ctx, condition, EndedBy::Gateway, status);
        call
    }

    /// The rtpengine anchoring this call answered for the first time: the
    /// row names it (and a restart finds it there).
    pub fn set_media_relay(&mut self, ctx: &mut Ctx<'_>, relay: String) {
        if self.rec.media_relay.as_deref() != Some(relay.as_str()) && !self.is_finished() {
            self.rec.media_relay = Some(relay);
            self.persist(ctx);
        }
    }

    /// The rtpengine anchoring this call could not rewrite an SDP that the
    /// call needs (docs/media.md): the call cannot have media, so it ends
    /// with `failed-application` on the XMPP side and, on the SIP side,
    /// what `failure` says is due.
    pub fn media_failed(&mut self, ctx: &mut Ctx<'_>, failure: MediaFailure, reason: &str) {
        let phase = self.take_phase();
        if matches!(phase, Phase::Finished) {
            self.phase = phase;
            return;
        }
        let text = format!("media relay: {reason}");
        let status = match failure {
            MediaFailure::Offer => None,
            MediaFailure::Answer => {
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 503,
                    reason: Some("Service Unavailable (media relay)".into()),
                    sdp: None,
                    retry_after: Some(ctx.cfg.retry_after_secs),
                });
                Some(503)
            }
            MediaFailure::Dialog => {
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: Some("SIP;cause=503;text=\"media relay unavailable\"".into()),
                });
                None
            }
        };
        let condition = ReasonCondition::FailedApplication;
        match &phase {
            Phase::In(In::Proposing { .. }) => self.retract(ctx, condition, &text),
            // The XMPP caller's session-initiate was acknowledged and
            // nothing else reached it yet: it is told all the same.
            _ => self.terminate_xmpp(ctx, condition, None, Some(text.clone())),
        }
        self.rec.end_detail = Some(text);
        self.phase = self.end(ctx, condition, EndedBy::Gateway, status);
    }

    /// Has the call ended on our side (only the INVITE's final answer to
    /// a CANCEL is still awaited)?
    pub fn is_ending(&self) -> bool {
        matches!(self.phase, Phase::Out(Out::Cancelling) | Phase::Finished)
    }

    /// Did this call come in from SIP?
    pub fn is_from_sip(&self) -> bool {
        self.rec.direction == Direction::SipToXmpp
    }

    /// Is a SIP → XMPP call still ringing devices with XEP-0353?
    pub fn is_proposing(&self) -> bool {
        matches!(self.phase, Phase::In(In::Proposing { .. }))
    }

    /// The XMPP user's bare JID.
    pub fn xmpp_bare(&self) -> &str {
        crate::jmi::bare(&self.xmpp_peer)
    }

    /// XMPP → SIP: this session-initiate follows a JMI proposal.
    pub fn mark_jmi(&mut self) {
        self.jmi_finish = true;
    }

    // ---- shared helpers -------------------------------------------------

    fn persist(&mut self, ctx: &mut Ctx<'_>) {
        self.rec.updated_at = ctx.now;
        ctx.out.push(Output::Persist {
            record: self.rec.clone(),
            call: Some(self.key),
        });
    }

    fn set_state(&mut self, ctx: &mut Ctx<'_>, state: CallState) {
        self.rec.state = state;
        if state == CallState::Active && self.rec.answered_at.is_none() {
            self.rec.answered_at = Some(ctx.now);
        }
        self.persist(ctx);
    }

    /// Ends the call in the store; returns [`Phase::Finished`], the phase
    /// that normally follows (XMPP → SIP before the answer goes on to
    /// [`Out::Cancelling`] instead, until the INVITE's final response).
    fn end(
        &mut self,
        ctx: &mut Ctx<'_>,
        reason: ReasonCondition,
        by: EndedBy,
        sip_status: Option<u16>,
    ) -> Phase {
        if self.jmi_finish {
            self.jmi_finish = false;
            let msg = crate::jmi::message(
                crate::jmi::JmiKind::Finish,
                &self.rec.jingle_sid,
                &self.gateway_jid,
                &self.xmpp_peer,
                Some((reason, None)),
                &[],
            );
            ctx.send(msg);
        }
        self.rec.state = CallState::Ended;
        self.rec.ended_at = Some(ctx.now);
        self.rec.end_reason = Some(reason.as_str().to_owned());
        self.rec.ended_by = Some(by);
        if sip_status.is_some() {
            self.rec.sip_status = sip_status;
        }
        self.persist(ctx);
        Phase::Finished
    }

    /// The Jingle initiator: the XMPP caller, or the gateway JID.
    fn initiator(&self) -> &str {
        match self.rec.direction {
            Direction::XmppToSip => &self.xmpp_peer,
            Direction::SipToXmpp => &self.gateway_jid,
        }
    }

    fn new_jingle(&self, action: Action) -> Jingle {
        let mut j = Jingle::new(action, self.rec.jingle_sid.clone());
        j.initiator = Some(self.initiator().to_owned());
        j
    }

    fn send_jingle(&mut self, ctx: &mut Ctx<'_>, purpose: IqPurpose, jingle: &Jingle) {
        let id = ctx.jingle(
            self.rec.id,
            purpose,
            &self.gateway_jid,
            &self.xmpp_peer,
            jingle,
        );
        self.sent_iqs.push(id);
    }

    /// Ids of the IQs this call sent.
    pub fn sent_iqs(&self) -> &[String] {
        &self.sent_iqs
    }

    /// Sends session-terminate to the XMPP user.
    fn terminate_xmpp(
        &mut self,
        ctx: &mut Ctx<'_>,
        condition: ReasonCondition,
        sip_status: Option<u16>,
        text: Option<String>,
    ) {
        let mut j = self.new_jingle(Action::SessionTerminate);
        j.reason = Some(Reason {
            condition,
            text,
            sip_status,
            other: Vec::new(),
        });
        self.send_jingle(ctx, IqPurpose::Terminate, &j);
    }

    /// The SIP layer could not carry out `command` for this call. An INFO
    /// (trickled candidates) is not worth ending a call for, nor is a PRACK
    /// (RFC 3262 §3: the INVITE's own transaction ends the call if the peer
    /// really is gone — it answers 5xx or times out), nor a reply to an
    /// in-dialog request (the peer retransmits or gives up on its own); a
    /// BYE or CANCEL that fails leaves nothing more to do (the call is
    /// already ended on our side); an INVITE or a response that cannot be
    /// sent means the SIP side is unreachable: the XMPP side is told and
    /// the row ends.
    fn command_failed(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: Phase,
        command: Command,
        reason: &str,
    ) -> Phase {
        let fault = |phase: &Phase| Fault::CommandFailed {
            command,
            reason: reason.to_owned(),
            phase: phase.name(),
        };
        match (command, phase) {
            (Command::Info | Command::Prack | Command::Reply, phase) => {
                ctx.fault(self.rec.id, fault(&phase));
                phase
            }
            // Our re-offer could not go out: the session stays as it was.
            (Command::Reoffer, Phase::Active(mut session)) => {
                session.offering = None;
                session.next_hold = None;
                let phase = Phase::Active(session);
                ctx.fault(self.rec.id, fault(&phase));
                phase
            }
            (Command::Reoffer, phase) => {
                ctx.fault(self.rec.id, fault(&phase));
                phase
            }
            (Command::Bye | Command::Cancel, Phase::Out(Out::Cancelling)) => Phase::Finished,
            (Command::Bye | Command::Cancel, phase)
            | (Command::Invite | Command::Response, phase @ Phase::Finished) => {
                ctx.fault(self.rec.id, fault(&phase));
                phase
            }
            (Command::Invite | Command::Response, phase) => {
                let condition = ReasonCondition::ConnectivityError;
                let text = format!("SIP {command} failed: {reason}");
                match &phase {
                    Phase::In(In::Proposing { .. }) => self.retract(ctx, condition, &text),
                    // Nothing reached the XMPP caller's peer yet; its
                    // session-initiate was acknowledged, so it is told.
                    Phase::Out(Out::Gathering { .. }) => {}
                    _ => self.terminate_xmpp(ctx, condition, None, Some(text.clone())),
                }
                self.rec.end_detail = Some(text);
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
        }
    }

    /// A SIP event the phase has no use for: nothing is due on the wire
    /// (the SIP layer answered what needed answering), so it is a fault.
    fn unexpected_sip(&mut self, ctx: &mut Ctx<'_>, phase: Phase, event: &SipEvent) -> Phase {
        ctx.fault(
            self.rec.id,
            Fault::UnexpectedSip {
                event: event.name(),
                phase: phase.name(),
            },
        );
        phase
    }

    /// SIP events of an answered call, either direction.
    fn active_sip_event(&mut self, ctx: &mut Ctx<'_>, session: Session, sip: SipEvent) -> Phase {
        match sip {
            SipEvent::Bye { .. } => self.sip_hung_up(ctx),
            SipEvent::ReofferAnswered { sdp, .. } if session.offering.is_some() => {
                self.reoffer_answered(ctx, session, sdp)
            }
            SipEvent::ReofferRefused { status, reason, .. } if session.offering.is_some() => {
                self.reoffer_refused(ctx, session, status, reason)
            }
            SipEvent::SessionTimer { timer, .. } => {
                let mut session = session;
                self.session_timer(ctx, &mut session, timer);
                Phase::Active(session)
            }
            SipEvent::Terminated { reason, .. } => {
                let condition = ReasonCondition::ConnectivityError;
                self.rec.end_detail = Some(reason.clone());
                self.terminate_xmpp(ctx, condition, None, Some(reason));
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
            other @ (SipEvent::IncomingInvite { .. }
            | SipEvent::Provisional { .. }
            | SipEvent::Answered { .. }
            | SipEvent::Rejected { .. }
            | SipEvent::Acked { .. }
            | SipEvent::Cancelled { .. }
            | SipEvent::Request { .. }
            | SipEvent::ReofferAnswered { .. }
            | SipEvent::ReofferRefused { .. }
            | SipEvent::CommandFailed { .. }) => {
                self.unexpected_sip(ctx, Phase::Active(session), &other)
            }
        }
    }

    /// The SIP side sent BYE in an established call: `<success/>` to XMPP.
    fn sip_hung_up(&mut self, ctx: &mut Ctx<'_>) -> Phase {
        self.terminate_xmpp(ctx, ReasonCondition::Success, None, None);
        self.end(ctx, ReasonCondition::Success, EndedBy::Sip, None)
    }

    fn out_of_order(ctx: &mut Ctx<'_>, req: &IqHeader, action: Action, phase: &Phase) {
        ctx.error(
            req,
            ErrorCondition::UnexpectedRequest,
            &format!(
                "{} is not allowed now (call is {})",
                action.as_str(),
                phase.name()
            ),
            Some(AppError::OutOfOrder),
        );
    }

    fn not_implemented(ctx: &mut Ctx<'_>, req: &IqHeader, action: Action) {
        ctx.error(
            req,
            ErrorCondition::FeatureNotImplemented,
            &format!("{} is not supported by this gateway yet", action.as_str()),
            None,
        );
    }

    /// Answers a session-info: known XEP-0167 payloads (and the empty ping)
    /// are acknowledged; anything else gets `unsupported-info`.
    fn session_info_known(ctx: &mut Ctx<'_>, req: &IqHeader, jingle: &Jingle) -> bool {
        const KNOWN: &[&str] = &["active", "hold", "unhold", "mute", "unmute", "ringing"];
        let unknown = jingle
            .info
            .iter()
            .find(|el| el.ns() != stox_mapping::ns::JINGLE_RTP_INFO || !KNOWN.contains(&el.name()));
        if let Some(el) = unknown {
            ctx.error(
                req,
                ErrorCondition::FeatureNotImplemented,
                &format!("session-info <{}/> is not supported", el.name()),
                Some(AppError::UnsupportedInfo),
            );
            return false;
        }
        ctx.result(req);
        true
    }
}

impl IqPurpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IqPurpose::Initiate => "session-initiate",
            IqPurpose::Accept => "session-accept",
            IqPurpose::Info => "session-info",
            IqPurpose::Terminate => "session-terminate",
            IqPurpose::Ping => "ping",
            IqPurpose::ContentAdd => "content-add",
        }
    }
}

/// Does the session-info carry `<ringing/>`?
fn is_ringing(jingle: &Jingle) -> bool {
    jingle
        .info
        .iter()
        .any(|el| el.name() == "ringing" && el.ns() == stox_mapping::ns::JINGLE_RTP_INFO)
}

/// The node of a JID string, for the SDP `o=` username (`-` when none).
fn local_part(jid: &str) -> String {
    let bare = jid.split('/').next().unwrap_or("");
    match bare.split_once('@') {
        Some((node, _)) if !node.is_empty() => node
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>(),
        _ => "-".to_owned(),
    }
}
