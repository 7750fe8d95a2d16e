//! SIP → XMPP: the SIP caller is represented by the gateway JID, which is the
//! Jingle initiator; the XMPP user is the responder.

use super::{Call, Ctx, IqPurpose, Phase, is_ringing, local_part};
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
            Phase::Initiating,
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
                call.end(
                    ctx,
                    condition,
                    EndedBy::Gateway,
                    Some(refusal.status),
                    Phase::Finished,
                );
                return call;
            }
        };
        call.set_remote_sdp(&sip_offer);
        call.sip_offer = Some(sip_offer);
        call.offered = mapped.contents;
        call.offered_groups = mapped.groups;
        if call.xmpp_peer.contains('/') {
            let mut j = call.new_jingle(Action::SessionInitiate);
            j.contents = call.offered.clone();
            j.groups = call.offered_groups.clone();
            call.send_jingle(ctx, IqPurpose::Initiate, &j);
        } else {
            // A bare JID: ring every device of the user with XEP-0353 and
            // send the session-initiate to the one that proceeds.
            call.phase = Phase::Proposing;
            call.propose(ctx);
        }
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
            Phase::Initiating,
        );
        ctx.sip(SipCommand::Respond {
            call: key,
            status: 503,
            reason: Some(phrase.to_owned()),
            sdp: None,
            retry_after: Some(ctx.cfg.retry_after_secs),
        });
        call.rec.end_detail = Some(phrase.to_owned());
        call.end(
            ctx,
            ReasonCondition::ConnectivityError,
            EndedBy::Gateway,
            Some(503),
            Phase::Finished,
        );
        call
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
    pub(super) fn callee_declined(&mut self, ctx: &mut Ctx<'_>, condition: ReasonCondition) {
        let status = sip_status_for_reason(condition);
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status,
            reason: None,
            sdp: None,
            retry_after: None,
        });
        self.end(ctx, condition, EndedBy::Xmpp, Some(status), Phase::Finished);
    }

    /// The first sign of ringing on the XMPP side: 180 to the SIP caller.
    pub(super) fn alert_sip_caller(&mut self, ctx: &mut Ctx<'_>) {
        if self.alerted {
            return;
        }
        self.alerted = true;
        ctx.sip(SipCommand::Respond {
            call: self.key,
            status: 180,
            reason: None,
            sdp: None,
            retry_after: None,
        });
        self.set_state(ctx, CallState::Ringing);
    }

    /// A Jingle action from the XMPP callee.
    pub(super) fn xmpp_callee_jingle(&mut self, ctx: &mut Ctx<'_>, req: &IqHeader, jingle: Jingle) {
        let before_answer = matches!(self.phase, Phase::Initiating | Phase::Offered);
        match jingle.action {
            Action::SessionInfo => {
                if Self::session_info_known(ctx, req, &jingle)
                    && is_ringing(&jingle)
                    && before_answer
                {
                    self.alert_sip_caller(ctx);
                }
            }
            Action::SessionAccept if before_answer => self.xmpp_accepted(ctx, req, &jingle),
            Action::SessionTerminate => {
                ctx.result(req);
                let condition =
                    jingle
                        .reason
                        .as_ref()
                        .map(|r| r.condition)
                        .unwrap_or(if before_answer {
                            ReasonCondition::Decline
                        } else {
                            ReasonCondition::Success
                        });
                if before_answer {
                    self.callee_declined(ctx, condition);
                } else if matches!(self.phase, Phase::AwaitingAck | Phase::Active) {
                    ctx.sip(SipCommand::Bye { call: self.key });
                    self.end(ctx, condition, EndedBy::Xmpp, None, Phase::Finished);
                }
            }
            Action::TransportInfo => {
                ctx.result(req);
                for content in jingle.contents {
                    self.trickle_out(ctx, content);
                }
            }
            Action::SessionInitiate | Action::SessionAccept => {
                Self::out_of_order(ctx, req, jingle.action, self.phase);
            }
            other => Self::not_implemented(ctx, req, other),
        }
    }

    fn xmpp_accepted(&mut self, ctx: &mut Ctx<'_>, req: &IqHeader, jingle: &Jingle) {
        let responder = jingle.responder.clone().unwrap_or_else(|| req.from.clone());
        let origin = SdpOrigin {
            username: local_part(&responder),
            session_id: ctx.now.0,
            session_version: 1,
        };
        let offer = self.sip_offer.clone().unwrap_or_default();
        let answer = if jingle.contents.is_empty() {
            Err("session-accept without any <content/>".to_owned())
        } else {
            sdp::jingle_to_sdp_answer(
                &jingle.contents,
                &jingle.groups,
                SdpAuthor::Responder,
                &origin,
                &offer,
            )
            .map_err(|e| e.to_string())
        };
        match answer {
            Ok(answer) => {
                // Answered: the offer is not needed again (held calls are
                // kept small); the answer is, for session refreshes.
                self.sip_offer = None;
                self.rec.local_sdp = Some(answer.clone());
                ctx.result(req);
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 200,
                    reason: None,
                    sdp: Some(answer),
                    retry_after: None,
                });
                self.phase = Phase::AwaitingAck;
                self.rec.sip_status = Some(200);
                self.set_state(ctx, CallState::Active);
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
                self.end(ctx, condition, EndedBy::Gateway, Some(488), Phase::Finished);
            }
        }
    }

    /// A SIP event from the caller's side.
    pub(super) fn sip_caller_event(&mut self, ctx: &mut Ctx<'_>, sip: SipEvent) {
        match sip {
            SipEvent::Cancelled { .. } => {
                if self.phase == Phase::Proposing {
                    self.retract(ctx, ReasonCondition::Cancel, "the SIP caller hung up");
                }
                if matches!(
                    self.phase,
                    Phase::Proposing | Phase::Initiating | Phase::Offered
                ) {
                    if self.phase != Phase::Proposing {
                        self.terminate_xmpp(ctx, ReasonCondition::Cancel, Some(487), None);
                    }
                    self.end(
                        ctx,
                        ReasonCondition::Cancel,
                        EndedBy::Sip,
                        Some(487),
                        Phase::Finished,
                    );
                }
            }
            SipEvent::Acked { .. } if self.phase == Phase::AwaitingAck => {
                self.phase = Phase::Active;
                // Written again now that the dialog is confirmed, so that the
                // gateway stores it (calls survive a restart from here on).
                self.persist(ctx);
                self.flush_trickle(ctx);
            }
            SipEvent::Bye { .. } if matches!(self.phase, Phase::AwaitingAck | Phase::Active) => {
                self.sip_hung_up(ctx);
            }
            SipEvent::Terminated { reason, .. } if self.phase != Phase::Finished => {
                let condition = if self.phase == Phase::AwaitingAck {
                    ReasonCondition::Timeout
                } else {
                    ReasonCondition::ConnectivityError
                };
                self.rec.end_detail = Some(reason.clone());
                self.terminate_xmpp(ctx, condition, None, Some(reason));
                self.end(ctx, condition, EndedBy::Gateway, None, Phase::Finished);
            }
            _ => {}
        }
    }

    pub(super) fn xmpp_callee_iq_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        purpose: IqPurpose,
        outcome: IqOutcome,
    ) {
        if purpose != IqPurpose::Initiate || self.phase != Phase::Initiating {
            return;
        }
        let (status, condition, by) = match outcome {
            IqOutcome::Result => {
                self.phase = Phase::Offered;
                return;
            }
            IqOutcome::Error(cond) => {
                let status = sip_status_for_error(cond, true);
                (status, reason_for_sip_status(status), EndedBy::Xmpp)
            }
            IqOutcome::Timeout => (408, ReasonCondition::Timeout, EndedBy::Gateway),
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
        self.end(ctx, condition, by, Some(status), Phase::Finished);
    }

    pub(super) fn ring_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if !matches!(
            self.phase,
            Phase::Proposing | Phase::Initiating | Phase::Offered
        ) {
            return;
        }
        let condition = ReasonCondition::Timeout;
        if self.phase == Phase::Proposing {
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
        self.end(ctx, condition, EndedBy::Gateway, Some(480), Phase::Finished);
    }
}
