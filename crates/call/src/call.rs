//! The per-call state machine, shared parts. The two directions live in
//! `xmpp_to_sip.rs` and `sip_to_xmpp.rs`.

use crate::core::CoreConfig;
use crate::stanza::{self, AppError, IqHeader};
use crate::time::Millis;
use crate::types::{
    CallKey, CallState, Direction, EndedBy, IqOutcome, Output, SessionRecord, SipCommand, SipEvent,
    TimerKey,
};
use minidom::Element;
use std::collections::HashMap;
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::jingle::{Action, Content, Jingle, Reason};
use stox_mapping::status::{ErrorCondition, ReasonCondition};

mod in_dialog;
mod jmi_flow;
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
}

/// Where a call is. The operator-visible [`CallState`] is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    // XMPP → SIP
    /// session-initiate acknowledged; trickled candidates are being gathered
    /// before the INVITE goes out.
    Gathering,
    /// INVITE sent, no provisional response yet.
    Inviting,
    /// A 180/183 arrived and `<ringing/>` went to the caller.
    Alerting,
    /// The XMPP caller hung up before the answer; CANCEL sent, waiting for
    /// the INVITE's final response (a 2xx is then ended with BYE).
    Cancelling,
    // SIP → XMPP
    /// XEP-0353 `<propose/>` sent to a bare JID; waiting for a device to
    /// proceed (or reject).
    Proposing,
    /// session-initiate sent, its IQ not answered yet.
    Initiating,
    /// The XMPP callee acknowledged the session-initiate.
    Offered,
    /// 200 OK sent, waiting for the ACK.
    AwaitingAck,
    // Both
    Active,
    /// Nothing left to wait for: the core drops the call.
    Finished,
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

pub(crate) struct Call {
    rec: SessionRecord,
    phase: Phase,
    /// The XMPP user's full JID (the one end of the Jingle session).
    xmpp_peer: String,
    /// The JID the gateway speaks as (the SIP user on the component domain).
    gateway_jid: String,
    /// Jingle roles: the XMPP→SIP caller, or the gateway JID.
    initiator: String,
    /// The contents of the session-initiate (or of the SIP offer, mapped).
    offered: Vec<Content>,
    /// XEP-0338 groups of the offer (SDP `a=group` ⇄ Jingle `<group/>`).
    offered_groups: Vec<stox_mapping::jingle::Group>,
    /// XMPP → SIP: the From URI of the INVITE (kept while gathering).
    caller_uri: String,
    /// The SIP peer said `Supported: trickle-ice` (RFC 8840): candidates
    /// trickled by the XMPP side go to it in INFO.
    peer_trickle: bool,
    /// Trickled candidates (transport-info contents) waiting for the dialog
    /// to be confirmed, or for the next offer/answer when the SIP peer does
    /// not do trickle ICE.
    held_trickle: Vec<stox_mapping::jingle::Content>,
    /// XMPP → SIP: the SDP of the last provisional response (early media),
    /// used when the 2xx carries none (RFC 3262 reliable provisional).
    early_sdp: Option<String>,
    /// SIP → XMPP: the SDP offer, for writing the answer against it.
    sip_offer: Option<String>,
    /// SIP → XMPP: 180 already sent.
    alerted: bool,
    /// XEP-0353: the session was set up with JMI, so `<finish/>` goes to the
    /// XMPP user when it ends.
    jmi_finish: bool,
    /// SIP → XMPP with JMI: the devices that reported `<ringing/>`.
    ringing_devices: Vec<String>,
    /// Ids of the IQs this call sent (the core forgets them with the call).
    sent_iqs: Vec<String>,
    /// The call on the SIP side.
    key: CallKey,
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
        self.phase == Phase::Finished
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
        phase: Phase,
    ) -> Call {
        let initiator = match direction {
            Direction::XmppToSip => xmpp_peer.clone(),
            Direction::SipToXmpp => gateway_jid.clone(),
        };
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
                remote_sdp_digest: None,
                updated_at: now,
            },
            phase,
            xmpp_peer,
            gateway_jid,
            initiator,
            offered: Vec::new(),
            offered_groups: Vec::new(),
            caller_uri: String::new(),
            peer_trickle: false,
            held_trickle: Vec::new(),
            early_sdp: None,
            sip_offer: None,
            alerted: false,
            jmi_finish: false,
            ringing_devices: Vec::new(),
            sent_iqs: Vec::new(),
            key,
        }
    }

    pub fn on_jingle(&mut self, ctx: &mut Ctx<'_>, req: &IqHeader, jingle: Jingle) {
        match self.rec.direction {
            Direction::XmppToSip => self.xmpp_caller_jingle(ctx, req, jingle),
            Direction::SipToXmpp => self.xmpp_callee_jingle(ctx, req, jingle),
        }
    }

    pub fn on_sip(&mut self, ctx: &mut Ctx<'_>, sip: SipEvent) {
        let sip = match sip {
            SipEvent::CommandFailed {
                command, reason, ..
            } => {
                self.command_failed(ctx, command, &reason);
                return;
            }
            SipEvent::Request {
                request,
                method,
                content_type,
                body,
                ..
            } => {
                self.sip_request(ctx, request, &method, content_type, body);
                return;
            }
            other => other,
        };
        match self.rec.direction {
            Direction::XmppToSip => self.sip_callee_event(ctx, sip),
            Direction::SipToXmpp => self.sip_caller_event(ctx, sip),
        }
    }

    pub fn on_iq_response(&mut self, ctx: &mut Ctx<'_>, purpose: IqPurpose, outcome: IqOutcome) {
        match self.rec.direction {
            Direction::XmppToSip => self.xmpp_caller_iq_response(ctx, purpose, outcome),
            Direction::SipToXmpp => self.xmpp_callee_iq_response(ctx, purpose, outcome),
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_>, key: TimerKey) {
        match key {
            TimerKey::RingTimeout { .. } => self.ring_timeout(ctx),
            TimerKey::AnswerTimeout { .. } => self.answer_timeout(ctx),
            TimerKey::CandidateWindow { .. } => self.candidates_gathered(ctx),
            TimerKey::ProposalTimeout { .. } => {}
        }
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
            Phase::Active,
        );
        call.rec = rec;
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
        call.end(ctx, condition, EndedBy::Gateway, status, Phase::Finished);
        call
    }

    /// Did this call come in from SIP?
    pub fn is_from_sip(&self) -> bool {
        self.rec.direction == Direction::SipToXmpp
    }

    /// Is a SIP → XMPP call still ringing devices with XEP-0353?
    pub fn is_proposing(&self) -> bool {
        self.phase == Phase::Proposing
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

    /// Ends the call in the store. `phase` is normally `Finished`;
    /// `Cancelling` keeps the call until the INVITE's final response.
    fn end(
        &mut self,
        ctx: &mut Ctx<'_>,
        reason: ReasonCondition,
        by: EndedBy,
        sip_status: Option<u16>,
        phase: Phase,
    ) {
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
        self.phase = phase;
        self.persist(ctx);
    }

    fn new_jingle(&self, action: Action) -> Jingle {
        let mut j = Jingle::new(action, self.rec.jingle_sid.clone());
        j.initiator = Some(self.initiator.clone());
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

    /// The SIP adapter could not carry out `command` for this call. An INFO
    /// (trickled candidates) is not worth ending a call for, nor is a PRACK
    /// (RFC 3262 §3: the INVITE's own transaction ends the call if the peer
    /// really is gone — it answers 5xx or times out); a BYE or CANCEL
    /// that fails leaves nothing more to do (the call is already ended on
    /// our side); an INVITE or a response that cannot be sent means the SIP
    /// side is unreachable: the XMPP side is told and the row ends.
    fn command_failed(&mut self, ctx: &mut Ctx<'_>, command: &str, reason: &str) {
        match command {
            "INFO" | "PRACK" => {}
            "BYE" | "CANCEL" => {
                if self.phase == Phase::Cancelling {
                    self.phase = Phase::Finished;
                }
            }
            _ if self.phase == Phase::Finished => {}
            _ => {
                let condition = ReasonCondition::ConnectivityError;
                let text = format!("SIP {command} failed: {reason}");
                if self.phase == Phase::Proposing {
                    self.retract(ctx, condition, &text);
                } else if self.phase != Phase::Gathering {
                    self.terminate_xmpp(ctx, condition, None, Some(text));
                }
                let phase = self.phase;
                self.rec.end_detail = Some(format!("SIP {command} failed: {reason}"));
                self.end(ctx, condition, EndedBy::Gateway, None, Phase::Finished);
                if phase == Phase::Cancelling {
                    self.phase = Phase::Finished;
                }
            }
        }
    }

    /// The SIP side sent BYE in an established call: `<success/>` to XMPP.
    fn sip_hung_up(&mut self, ctx: &mut Ctx<'_>) {
        self.terminate_xmpp(ctx, ReasonCondition::Success, None, None);
        self.end(
            ctx,
            ReasonCondition::Success,
            EndedBy::Sip,
            None,
            Phase::Finished,
        );
    }

    fn out_of_order(ctx: &mut Ctx<'_>, req: &IqHeader, action: Action, phase: Phase) {
        ctx.error(
            req,
            ErrorCondition::UnexpectedRequest,
            &format!(
                "{} is not allowed now (call is {:?})",
                action.as_str(),
                phase
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
