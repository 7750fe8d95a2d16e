//! SIP → XMPP: the SIP caller is represented by the gateway JID, which is the
//! Jingle initiator; the XMPP user is the responder.

use super::{Call, Ctx, In, Incoming, IqPurpose, Offer, Phase, Session, is_ringing, local_part};
use crate::stanza::IqHeader;
use crate::types::{
    CallKey, CallState, Direction, EndedBy, IqOutcome, SipCommand, SipEvent, TimerKey,
};
use stox_mapping::address::{SipUri, sip_to_xmpp_user, sip_user_to_gateway_jid};
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::jingle::{Action, Jingle};
use stox_mapping::sdp::{self, SdpAuthor, SdpOrigin};
use stox_mapping::status::{
    ErrorCondition, ReasonCondition, reason_for_sip_status, sip_status_for_error,
    sip_status_for_reason,
};

/// Why an INVITE is refused before anything reaches XMPP.
struct Refusal {
    status: u16,
    reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

impl Call {
    /// A new INVITE from SIP. Always returns a call: refused INVITEs are
    /// answered and stored as ended calls, so every attempt is a row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_invite(
        ctx: &mut Ctx<'_>,
        id: i64,
        sid: Sid,
        call_id: CallId,
        key: CallKey,
        request_uri: &str,
        from: &str,
        sdp: Option<String>,
    ) -> Call {
        let caller = SipUri::parse(from).ok();
        let gateway_jid = caller
            .as_ref()
            .and_then(|uri| sip_user_to_gateway_jid(uri, &ctx.cfg.component).ok())
            .map(|jid| jid.to_string());
        let callee = SipUri::parse(request_uri).ok();
        let xmpp_peer = callee
            .as_ref()
            .and_then(|uri| sip_to_xmpp_user(uri).ok())
            .map(|jid| jid.to_string());
        let mut call = Call::new(
            ctx.now,
            id,
            Direction::SipToXmpp,
            sid,
            call_id,
            key,
            xmpp_peer.clone().unwrap_or_default(),
            gateway_jid.clone().unwrap_or_default(),
            caller
                .as_ref()
                .map_or_else(|| from.to_owned(), |uri| uri.to_string()),
        );

        let checked =
            Self::check_invite(ctx, callee.as_ref(), gateway_jid.as_deref(), sdp.as_deref());
        let (sip_offer, mapped) = match checked {
            Ok(ok) => ok,
            Err(refusal) => {
                ctx.sip(SipCommand::Respond {
                    call: key,
                    status: refusal.status,
                    reason: Some(refusal.reason),
                    sdp: None,
                    retry_after: None,
                });
                let condition = reason_for_sip_status(refusal.status);
                call.phase = call.end(ctx, condition, EndedBy::Gateway, Some(refusal.status));
                return call;
            }
        };
        call.set_remote_sdp(&sip_offer);
        let incoming = Incoming {
            offer: Offer {
                contents: mapped.contents,
                groups: mapped.groups,
            },
            sip_offer,
            alerted: false,
            held: Vec::new(),
        };
        call.phase = if call.xmpp_peer.contains('/') {
            call.initiate(ctx, &incoming.offer);
            Phase::In(In::Initiating(incoming))
        } else {
            // A bare JID: ring every device of the user with XEP-0353 and
            // send the session-initiate to the one that proceeds.
            call.propose(ctx, &incoming.offer);
            Phase::In(In::Proposing {
                incoming,
                ringing: Vec::new(),
            })
        };
        call.persist(ctx);
        ctx.out.push(crate::types::Output::SetTimer {
            key: TimerKey::RingTimeout { call: id },
            at: ctx.now.plus_ms(ctx.cfg.ring_timeout_ms),
        });
        call
    }

    /// A new INVITE while the gateway cannot take calls: 503 with
    /// Retry-After (RFC 3261 §21.5.4), and a row that says so.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn refused_invite(
        ctx: &mut Ctx<'_>,
        id: i64,
        sid: Sid,
        call_id: CallId,
        key: CallKey,
        request_uri: &str,
        from: &str,
        phrase: &str,
    ) -> Call {
        let xmpp_peer = SipUri::parse(request_uri)
            .ok()
            .and_then(|uri| sip_to_xmpp_user(&uri).ok())
            .map(|jid| jid.to_string())
            .unwrap_or_default();
        let caller = SipUri::parse(from).ok();
        let gateway_jid = caller
            .as_ref()
            .and_then(|uri| sip_user_to_gateway_jid(uri, &ctx.cfg.component).ok())
            .map(|jid| jid.to_string())
            .unwrap_or_default();
        let mut call = Call::new(
            ctx.now,
            id,
            Direction::SipToXmpp,
            sid,
            call_id,
            key,
            xmpp_peer,
            gateway_jid,
            caller.map_or_else(|| from.to_owned(), |uri| uri.to_string()),
        );
        ctx.sip(SipCommand::Respond {
            call: key,
            status: 503,
            reason: Some(phrase.to_owned()),
            sdp: None,
            retry_after: Some(ctx.cfg.retry_after_secs),
        });
        call.rec.end_detail = Some(phrase.to_owned());
        call.phase = call.end(
            ctx,
            ReasonCondition::ConnectivityError,
            EndedBy::Gateway,
            Some(503),
        );
        call
    }

    /// Sends the session-initiate with the SIP offer mapped to Jingle.
    pub(super) fn initiate(&mut self, ctx: &mut Ctx<'_>, offer: &Offer) {
        let mut j = self.new_jingle(Action::SessionInitiate);
        j.contents = offer.contents.clone();
        j.groups = offer.groups.clone();
        self.send_jingle(ctx, IqPurpose::Initiate, &j);
    }

    fn check_invite(
        ctx: &Ctx<'_>,
        callee: Option<&SipUri>,
        gateway_jid: Option<&str>,
        sdp: Option<&str>,
    ) -> Result<(String, sdp::MappedSdp), Refusal> {
        let callee = callee.ok_or_else(|| refuse(400, "Bad Request-URI"))?;
        let served = ctx
            .cfg
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&callee.host));
        if !served {
            return Err(refuse(
                404,
                format!("Not Found (domain {} is not served)", callee.host),
            ));
        }
        let user = sip_to_xmpp_user(callee).map_err(|e| refuse(404, format!("Not Found ({e})")))?;
        if user.node.is_none() {
            return Err(refuse(404, "Not Found (no user part)"));
        }
        if gateway_jid.is_none() {
            return Err(refuse(400, "Bad From (not a sip: URI with a user part)"));
        }
        let offer =
            sdp.ok_or_else(|| refuse(488, "Not Acceptable Here (INVITE without SDP offer)"))?;
        let mapped = sdp::sdp_offer_to_jingle(offer, SdpAuthor::Initiator)
            .map_err(|e| refuse(488, format!("Not Acceptable Here ({e})")))?;
        if mapped.contents.is_empty() {
            return Err(refuse(
                488,
                "Not Acceptable Here (no stream can be mapped to Jingle)",
            ));
        }
        Ok((offer.to_owned(), mapped))
    }

    /// The XMPP callee ended the call before answering (session-terminate or
    /// JMI `<reject/>`): the final response its reason maps to.
    pub(super) fn callee_declined(
        &mut self,
        ctx: &mut Ctx<'_>,
        condition: ReasonCondition,
    ) -> Phase {
        let status = sip_status_for_reason(condition);
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status,
            reason: None,
            sdp: None,
            retry_after: None,
        });
        self.end(ctx, condition, EndedBy::Xmpp, Some(status))
    }

    /// The first sign of ringing on the XMPP side: 180 to the SIP caller.
    pub(super) fn alert_sip_caller(&mut self, ctx: &mut Ctx<'_>, incoming: &mut Incoming) {
        if incoming.alerted {
            return;
        }
        incoming.alerted = true;
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status: 180,
            reason: None,
            sdp: None,
            retry_after: None,
        });
        self.set_state(ctx, CallState::Ringing);
    }

    /// A Jingle action from the XMPP callee before the ACK.
    pub(super) fn xmpp_callee_jingle(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: In,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        match (jingle.action, phase) {
            (Action::SessionInfo, In::Initiating(mut incoming)) => {
                if Self::session_info_known(ctx, req, &jingle) && is_ringing(&jingle) {
                    self.alert_sip_caller(ctx, &mut incoming);
                }
                Phase::In(In::Initiating(incoming))
            }
            (Action::SessionInfo, In::Offered(mut incoming)) => {
                if Self::session_info_known(ctx, req, &jingle) && is_ringing(&jingle) {
                    self.alert_sip_caller(ctx, &mut incoming);
                }
                Phase::In(In::Offered(incoming))
            }
            (Action::SessionInfo, phase) => {
                Self::session_info_known(ctx, req, &jingle);
                Phase::In(phase)
            }
            (Action::SessionAccept, In::Initiating(incoming) | In::Offered(incoming)) => {
                self.xmpp_accepted(ctx, incoming, req, &jingle)
            }
            (Action::SessionTerminate, In::Initiating(_) | In::Offered(_)) => {
                ctx.result(req);
                let condition = jingle
                    .reason
                    .as_ref()
                    .map_or(ReasonCondition::Decline, |r| r.condition);
                self.callee_declined(ctx, condition)
            }
            (Action::SessionTerminate, In::AwaitingAck(_)) => {
                ctx.result(req);
                let condition = jingle
                    .reason
                    .as_ref()
                    .map_or(ReasonCondition::Success, |r| r.condition);
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: None,
                });
                self.end(ctx, condition, EndedBy::Xmpp, None)
            }
            (Action::TransportInfo, phase) => {
                self.transport_info(ctx, Phase::In(phase), req, jingle)
            }
            (
                action @ (Action::SessionInitiate
                | Action::SessionAccept
                | Action::SessionTerminate),
                phase,
            ) => {
                let phase = Phase::In(phase);
                Self::out_of_order(ctx, req, action, &phase);
                phase
            }
            (other, phase) => {
                Self::not_implemented(ctx, req, other);
                Phase::In(phase)
            }
        }
    }

    /// A Jingle action from the XMPP user in an answered call (either
    /// direction).
    pub(super) fn active_jingle(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        match jingle.action {
            Action::SessionTerminate => {
                ctx.result(req);
                let condition = jingle
                    .reason
                    .as_ref()
                    .map_or(ReasonCondition::Success, |r| r.condition);
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: None,
                });
                self.end(ctx, condition, EndedBy::Xmpp, None)
            }
            Action::SessionInfo => {
                match Self::session_info_known(ctx, req, &jingle)
                    .then(|| super::hold::hold_wish(&jingle))
                    .flatten()
                {
                    Some(hold) => self.xmpp_hold(ctx, session, hold),
                    None => Phase::Active(session),
                }
            }
            Action::TransportInfo if self.is_ice_restart(&jingle) => {
                self.xmpp_ice_restart(ctx, session, req, jingle)
            }
            Action::TransportInfo => self.transport_info(ctx, Phase::Active(session), req, jingle),
            Action::ContentAdd => self.xmpp_content_add(ctx, session, req, jingle),
            Action::ContentAccept | Action::ContentReject if session.incoming.is_some() => {
                self.xmpp_content_answer(ctx, session, req, jingle)
            }
            Action::ContentRemove => self.xmpp_content_remove(ctx, session, req, jingle),
            Action::ContentModify => self.xmpp_content_modify(ctx, session, req, jingle),
            Action::SessionInitiate
            | Action::SessionAccept
            | Action::ContentAccept
            | Action::ContentReject => {
                let phase = Phase::Active(session);
                Self::out_of_order(ctx, req, jingle.action, &phase);
                phase
            }
            other => {
                Self::not_implemented(ctx, req, other);
                Phase::Active(session)
            }
        }
    }

    fn xmpp_accepted(
        &mut self,
        ctx: &mut Ctx<'_>,
        incoming: Incoming,
        req: &IqHeader,
        jingle: &Jingle,
    ) -> Phase {
        let responder = jingle.responder.clone().unwrap_or_else(|| req.from.clone());
        let origin = SdpOrigin {
            username: local_part(&responder),
            session_id: ctx.now.0,
            session_version: 1,
        };
        let answer = if jingle.contents.is_empty() {
            Err("session-accept without any <content/>".to_owned())
        } else {
            sdp::jingle_to_sdp_answer(
                &jingle.contents,
                &jingle.groups,
                SdpAuthor::Responder,
                &origin,
                &incoming.sip_offer,
            )
            .map_err(|e| e.to_string())
        };
        match answer {
            Ok(answer) => {
                // Answered: the SIP offer is not needed again (held calls
                // are kept small); the answer is, for session refreshes.
                self.rec.local_sdp = Some(answer.clone());
                ctx.result(req);
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 200,
                    reason: None,
                    sdp: Some(answer),
                    retry_after: None,
                });
                self.rec.sip_status = Some(200);
                self.set_state(ctx, CallState::Active);
                self.answered_timers(ctx);
                Phase::In(In::AwaitingAck(Session {
                    contents: incoming.offer.contents,
                    held: incoming.held,
                    ..Session::default()
                }))
            }
            Err(text) => {
                ctx.error(req, ErrorCondition::NotAcceptable, &text, None);
                let condition = ReasonCondition::IncompatibleParameters;
                self.terminate_xmpp(ctx, condition, Some(488), Some(text));
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 488,
                    reason: Some("Not Acceptable Here (session-accept cannot be mapped)".into()),
                    sdp: None,
                    retry_after: None,
                });
                self.end(ctx, condition, EndedBy::Gateway, Some(488))
            }
        }
    }

    /// A SIP event from the caller's side before the ACK.
    pub(super) fn sip_caller_event(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: In,
        sip: SipEvent,
    ) -> Phase {
        match (sip, phase) {
            // A CANCEL, or a BYE in the early dialog (RFC 3261 §15.1.2): the
            // SIP layer answered the INVITE 487.
            (SipEvent::Cancelled { .. }, In::Proposing { .. }) => {
                self.retract(ctx, ReasonCondition::Cancel, "the SIP caller hung up");
                self.end(ctx, ReasonCondition::Cancel, EndedBy::Sip, Some(487))
            }
            (SipEvent::Cancelled { .. }, In::Initiating(_) | In::Offered(_)) => {
                self.terminate_xmpp(ctx, ReasonCondition::Cancel, Some(487), None);
                self.end(ctx, ReasonCondition::Cancel, EndedBy::Sip, Some(487))
            }
            (SipEvent::Acked { .. }, In::AwaitingAck(mut session)) => {
                // Written again now that the dialog is confirmed, so that the
                // gateway stores it (calls survive a restart from here on).
                self.persist(ctx);
                self.flush_trickle(ctx, &mut session.held);
                Phase::Active(session)
            }
            (SipEvent::Bye { .. }, In::AwaitingAck(_)) => self.sip_hung_up(ctx),
            (SipEvent::SessionTimer { timer, .. }, In::AwaitingAck(mut session)) => {
                self.session_timer(ctx, &mut session, timer);
                Phase::In(In::AwaitingAck(session))
            }
            (SipEvent::Terminated { reason, .. }, phase) => {
                // No ACK for our 2xx (RFC 3261 §13.3.1.4) is a timeout; the
                // rest is the SIP side gone.
                let condition = match phase {
                    In::AwaitingAck(_) => ReasonCondition::Timeout,
                    _ => ReasonCondition::ConnectivityError,
                };
                self.rec.end_detail = Some(reason.clone());
                match phase {
                    In::Proposing { .. } => self.retract(ctx, condition, &reason),
                    _ => self.terminate_xmpp(ctx, condition, None, Some(reason)),
                }
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
            (
                other @ (SipEvent::IncomingInvite { .. }
                | SipEvent::Provisional { .. }
                | SipEvent::Answered { .. }
                | SipEvent::Rejected { .. }
                | SipEvent::Acked { .. }
                | SipEvent::Cancelled { .. }
                | SipEvent::Bye { .. }
                | SipEvent::Request { .. }
                | SipEvent::ReofferAnswered { .. }
                | SipEvent::ReofferRefused { .. }
                | SipEvent::SessionTimer { .. }
                | SipEvent::CommandFailed { .. }),
                phase,
            ) => self.unexpected_sip(ctx, Phase::In(phase), &other),
        }
    }

    /// The session-initiate was refused or not delivered: the SIP caller
    /// gets the final response that matches.
    pub(super) fn initiate_failed(&mut self, ctx: &mut Ctx<'_>, outcome: IqOutcome) -> Phase {
        let (status, condition, by) = match outcome {
            IqOutcome::Error(cond) => {
                let status = sip_status_for_error(cond, true);
                (status, reason_for_sip_status(status), EndedBy::Xmpp)
            }
            IqOutcome::Timeout | IqOutcome::Result => {
                (408, ReasonCondition::Timeout, EndedBy::Gateway)
            }
            // The component went offline before the session-initiate could
            // be delivered: the gateway cannot take the call now.
            IqOutcome::Undelivered => (503, ReasonCondition::ConnectivityError, EndedBy::Gateway),
        };
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status,
            reason: (status == 503)
                .then(|| "Service Unavailable (XMPP server not connected)".to_owned()),
            sdp: None,
            retry_after: (status == 503).then_some(ctx.cfg.retry_after_secs),
        });
        self.end(ctx, condition, by, Some(status))
    }

    /// Nobody answered in time: 480 to the SIP caller, and the XMPP side
    /// stops ringing.
    pub(super) fn ring_timeout(&mut self, ctx: &mut Ctx<'_>, phase: &In) -> Phase {
        let condition = ReasonCondition::Timeout;
        if let In::Proposing { .. } = phase {
            self.retract(ctx, condition, "no answer");
        } else {
            self.terminate_xmpp(ctx, condition, Some(480), Some("no answer".into()));
        }
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status: 480,
            reason: Some("Temporarily Unavailable (no answer)".into()),
            sdp: None,
            retry_after: None,
        });
        self.end(ctx, condition, EndedBy::Gateway, Some(480))
    }
}
