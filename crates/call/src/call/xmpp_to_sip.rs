//! XMPP → SIP: the XMPP user is the Jingle initiator, the gateway sends the
//! INVITE.

use super::{Call, Ctx, IqPurpose, Phase, local_part};
use crate::stanza::IqHeader;
use crate::types::{CallKey, CallState, Direction, EndedBy, IqOutcome, SipCommand, SipEvent};
use stox_mapping::address::{JidParts, gateway_jid_to_sip_user, xmpp_user_to_sip};
use stox_mapping::ids::CallId;
use stox_mapping::jingle::{Action, Content, Description, Jingle, Transport};
use stox_mapping::sdp::{self, SdpAuthor, SdpError, SdpOrigin};
use stox_mapping::status::{ErrorCondition, ReasonCondition, reason_for_sip_status};

impl Call {
    /// A session-initiate from an XMPP user to a SIP address on the
    /// component domain. Returns `None` when it was refused with an IQ error
    /// (nothing was started, nothing is stored).
    pub(crate) fn from_session_initiate(
        ctx: &mut Ctx<'_>,
        id: i64,
        call_id: CallId,
        key: CallKey,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Option<Call> {
        let callee = match JidParts::parse(&req.to)
            .map_err(|e| e.to_string())
            .and_then(|to| {
                let node = to.node.clone().ok_or_else(|| {
                    format!(
                        "{} is the gateway itself; call user\\40domain@{}",
                        req.to, to.domain
                    )
                })?;
                // The resource the gateway proceeds from (XEP-0353) is not a GRUU.
                let gruu = to
                    .resource
                    .as_deref()
                    .filter(|r| *r != crate::jmi::GATEWAY_RESOURCE);
                gateway_jid_to_sip_user(&node, gruu).map_err(|e| e.to_string())
            }) {
            Ok(uri) => uri,
            Err(text) => {
                ctx.error(req, ErrorCondition::ItemNotFound, &text, None);
                return None;
            }
        };
        let caller = match JidParts::parse(&req.from) {
            Ok(jid) => xmpp_user_to_sip(&jid.bare(), false),
            Err(e) => {
                ctx.error(req, ErrorCondition::JidMalformed, &e.to_string(), None);
                return None;
            }
        };
        if jingle.contents.is_empty() {
            ctx.error(
                req,
                ErrorCondition::BadRequest,
                "session-initiate without any <content/>",
                None,
            );
            return None;
        }

        let mut call = Call::new(
            ctx.now,
            id,
            Direction::XmppToSip,
            jingle.sid.clone(),
            call_id.clone(),
            key,
            req.from.clone(),
            req.to.clone(),
            callee.to_string(),
            Phase::Inviting,
        );
        call.caller_uri = caller.to_string();
        if awaits_candidates(&jingle.contents) {
            // The client will trickle its candidates (transport-info): gather
            // them for a short window so the INVITE carries them all.
            ctx.result(req);
            call.offered = jingle.contents;
            call.offered_groups = jingle.groups;
            call.phase = Phase::Gathering;
            call.persist(ctx);
            ctx.out.push(crate::types::Output::SetTimer {
                key: crate::types::TimerKey::CandidateWindow { call: id },
                at: ctx.now.plus_ms(ctx.cfg.candidate_window_ms),
            });
            return Some(call);
        }
        match call.offer_sdp(ctx, &jingle.contents, &jingle.groups) {
            Ok(offer) => {
                ctx.result(req);
                call.offered = jingle.contents;
                call.offered_groups = jingle.groups;
                call.rec.local_sdp = Some(offer.clone());
                ctx.sip(SipCommand::Invite {
                    call: key,
                    call_id,
                    request_uri: callee.to_string(),
                    from: caller.to_string(),
                    sdp: offer,
                    supported: Vec::new(),
                });
                call.persist(ctx);
                call.answer_timer(ctx);
            }
            Err(err) => {
                // XEP-0166 §6.3.2: acknowledge, then terminate with the reason.
                ctx.result(req);
                let has_rtp = jingle
                    .contents
                    .iter()
                    .any(|c| matches!(c.description, Some(Description::Rtp(_))));
                let reason = match (&err, has_rtp) {
                    (SdpError::NothingMappable(_), false) => {
                        ReasonCondition::UnsupportedApplications
                    }
                    (SdpError::NothingMappable(_), true) => ReasonCondition::UnsupportedTransports,
                    _ => ReasonCondition::FailedApplication,
                };
                call.terminate_xmpp(ctx, reason, None, Some(err.to_string()));
                call.end(ctx, reason, EndedBy::Gateway, None, Phase::Finished);
            }
        }
        Some(call)
    }

    fn offer_sdp(
        &self,
        ctx: &Ctx<'_>,
        contents: &[stox_mapping::jingle::Content],
        groups: &[stox_mapping::jingle::Group],
    ) -> Result<String, SdpError> {
        let origin = SdpOrigin {
            username: local_part(&self.xmpp_peer),
            session_id: ctx.now.0,
            session_version: 1,
        };
        sdp::jingle_to_sdp_offer(contents, groups, SdpAuthor::Initiator, &origin)
    }

    /// The candidate window closed: send the INVITE with what was gathered.
    pub(super) fn candidates_gathered(&mut self, ctx: &mut Ctx<'_>) {
        if self.phase != Phase::Gathering {
            return;
        }
        match self.offer_sdp(ctx, &self.offered, &self.offered_groups) {
            Ok(offer) => {
                self.phase = Phase::Inviting;
                // The XMPP side trickles: say so, so a trickle-capable SIP
                // peer takes later candidates by INFO (RFC 8840).
                self.rec.local_sdp = Some(offer.clone());
                ctx.sip(SipCommand::Invite {
                    call: self.key,
                    call_id: self.rec.sip_call_id.clone(),
                    request_uri: self.rec.sip_uri.clone(),
                    from: self.caller_uri.clone(),
                    sdp: offer,
                    supported: vec!["trickle-ice".to_owned()],
                });
                // Written again now that the INVITE is out, so that the
                // gateway stores it (a restart can then CANCEL it).
                self.persist(ctx);
                self.answer_timer(ctx);
            }
            Err(err) => {
                let reason = ReasonCondition::FailedTransport;
                self.terminate_xmpp(ctx, reason, None, Some(err.to_string()));
                self.end(ctx, reason, EndedBy::Gateway, None, Phase::Finished);
            }
        }
    }

    /// The INVITE is out: it has `ring_timeout` to be answered.
    fn answer_timer(&self, ctx: &mut Ctx<'_>) {
        ctx.out.push(crate::types::Output::SetTimer {
            key: crate::types::TimerKey::AnswerTimeout { call: self.rec.id },
            at: ctx.now.plus_ms(ctx.cfg.ring_timeout_ms),
        });
    }

    /// The SIP callee did not answer in time: CANCEL (RFC 3261 §9.1) and
    /// `<timeout/>` to the XMPP caller. The call stays until the INVITE's
    /// final response (487, or a 2xx that crossed the CANCEL: BYE).
    pub(super) fn answer_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if !matches!(self.phase, Phase::Inviting | Phase::Alerting) {
            return;
        }
        ctx.sip(SipCommand::Cancel { call: self.key });
        let condition = ReasonCondition::Timeout;
        self.terminate_xmpp(ctx, condition, None, Some("no answer".into()));
        self.end(ctx, condition, EndedBy::Gateway, None, Phase::Cancelling);
    }

    /// Trickled candidates (XEP-0176 transport-info) merged into the offer
    /// being gathered, or held once the INVITE is out.
    fn add_candidates(&mut self, ctx: &mut Ctx<'_>, jingle: &Jingle) {
        for content in &jingle.contents {
            let Some(Transport::IceUdp(new)) = &content.transport else {
                continue;
            };
            let target = if self.phase == Phase::Gathering {
                self.offered.iter_mut().find(|c| c.name == content.name)
            } else {
                None
            };
            match target.and_then(|c| match &mut c.transport {
                Some(Transport::IceUdp(t)) => Some(t),
                _ => None,
            }) {
                Some(t) => {
                    if new.ufrag.is_some() && new.ufrag != t.ufrag {
                        // An ICE restart: the new credentials win.
                        t.ufrag.clone_from(&new.ufrag);
                        t.pwd.clone_from(&new.pwd);
                        t.candidates.clear();
                    }
                    for cand in &new.candidates {
                        if !t
                            .candidates
                            .iter()
                            .any(|c| c.id == cand.id && !c.id.is_empty())
                        {
                            t.candidates.push(cand.clone());
                        }
                    }
                }
                None => {
                    let mut held = content.clone();
                    held.description = None;
                    self.trickle_out(ctx, held);
                }
            }
        }
    }

    /// A Jingle action from the XMPP caller.
    pub(super) fn xmpp_caller_jingle(&mut self, ctx: &mut Ctx<'_>, req: &IqHeader, jingle: Jingle) {
        match jingle.action {
            Action::SessionTerminate => {
                ctx.result(req);
                let reason = jingle.reason.as_ref().map(|r| r.condition);
                match self.phase {
                    Phase::Gathering => {
                        // Nothing was sent to SIP yet.
                        let reason = reason.unwrap_or(ReasonCondition::Cancel);
                        self.end(ctx, reason, EndedBy::Xmpp, None, Phase::Finished);
                    }
                    Phase::Inviting | Phase::Alerting => {
                        ctx.sip(SipCommand::Cancel { call: self.key });
                        let reason = reason.unwrap_or(ReasonCondition::Cancel);
                        self.end(ctx, reason, EndedBy::Xmpp, None, Phase::Cancelling);
                    }
                    Phase::Active => {
                        ctx.sip(SipCommand::Bye { call: self.key });
                        let reason = reason.unwrap_or(ReasonCondition::Success);
                        self.end(ctx, reason, EndedBy::Xmpp, None, Phase::Finished);
                    }
                    // Already ending: a repeated terminate is harmless.
                    _ => {}
                }
            }
            Action::SessionInfo => {
                Self::session_info_known(ctx, req, &jingle);
            }
            Action::TransportInfo => {
                ctx.result(req);
                self.add_candidates(ctx, &jingle);
            }
            Action::SessionInitiate | Action::SessionAccept => {
                Self::out_of_order(ctx, req, jingle.action, self.phase);
            }
            other => Self::not_implemented(ctx, req, other),
        }
    }

    /// A SIP event about our INVITE's dialog.
    pub(super) fn sip_callee_event(&mut self, ctx: &mut Ctx<'_>, sip: SipEvent) {
        match sip {
            // Forking: only the first provisional reaches XMPP. An early SDP
            // answer (183) is never forwarded before the final response: it
            // is kept, for a 2xx that carries none.
            SipEvent::Provisional {
                status,
                sdp,
                supported,
                ..
            } if status > 100 && matches!(self.phase, Phase::Inviting | Phase::Alerting) => {
                self.set_peer_supported(&supported);
                if sdp.is_some() {
                    self.early_sdp = sdp;
                }
                if self.phase == Phase::Alerting {
                    return;
                }
                self.phase = Phase::Alerting;
                let mut j = self.new_jingle(Action::SessionInfo);
                j.info.push(minidom::Element::bare(
                    "ringing",
                    stox_mapping::ns::JINGLE_RTP_INFO,
                ));
                self.send_jingle(ctx, IqPurpose::Info, &j);
                self.set_state(ctx, CallState::Ringing);
            }
            SipEvent::Answered { sdp, supported, .. } => match self.phase {
                Phase::Inviting | Phase::Alerting => {
                    self.set_peer_supported(&supported);
                    self.sip_answered(ctx, sdp);
                    self.flush_trickle(ctx);
                }
                Phase::Cancelling => {
                    // Our CANCEL lost the race against the 2xx: end it with BYE.
                    ctx.sip(SipCommand::Bye { call: self.key });
                    self.rec.sip_status = Some(200);
                    self.phase = Phase::Finished;
                    self.persist(ctx);
                }
                _ => {}
            },
            SipEvent::Rejected { status, reason, .. } => match self.phase {
                Phase::Inviting | Phase::Alerting => {
                    let condition = reason_for_sip_status(status);
                    self.terminate_xmpp(
                        ctx,
                        condition,
                        Some(status),
                        Some(format!("{status} {reason}")),
                    );
                    self.end(ctx, condition, EndedBy::Sip, Some(status), Phase::Finished);
                }
                Phase::Cancelling => {
                    self.rec.sip_status = Some(status);
                    self.phase = Phase::Finished;
                    self.persist(ctx);
                }
                _ => {}
            },
            SipEvent::Bye { .. } if self.phase == Phase::Active => self.sip_hung_up(ctx),
            SipEvent::Terminated { reason, .. } => {
                if matches!(
                    self.phase,
                    Phase::Inviting | Phase::Alerting | Phase::Active
                ) {
                    let condition = ReasonCondition::ConnectivityError;
                    self.rec.end_detail = Some(reason.clone());
                    self.terminate_xmpp(ctx, condition, None, Some(reason));
                    self.end(ctx, condition, EndedBy::Gateway, None, Phase::Finished);
                } else {
                    self.phase = Phase::Finished;
                }
            }
            _ => {}
        }
    }

    fn sip_answered(&mut self, ctx: &mut Ctx<'_>, sdp: Option<String>) {
        self.rec.sip_status = Some(200);
        // RFC 3262/3264: the answer may have come in a reliable provisional.
        let answer = sdp.or_else(|| self.early_sdp.take());
        if let Some(answer) = &answer {
            self.set_remote_sdp(answer);
        }
        let mapped = match answer {
            None => Err(
                "neither the 200 OK nor a provisional response carried an SDP answer".to_owned(),
            ),
            Some(answer) => sdp::sdp_answer_to_jingle(&answer, &self.offered, SdpAuthor::Responder)
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    if m.contents.is_empty() {
                        Err("the SDP answer rejected every stream".to_owned())
                    } else {
                        Ok(m)
                    }
                }),
        };
        match mapped {
            Ok(m) => {
                let mut j = self.new_jingle(Action::SessionAccept);
                j.responder = Some(self.gateway_jid.clone());
                j.contents = m.contents;
                j.groups = m.groups;
                self.send_jingle(ctx, IqPurpose::Accept, &j);
                self.phase = Phase::Active;
                self.set_state(ctx, CallState::Active);
            }
            Err(text) => {
                ctx.sip(SipCommand::Bye { call: self.key });
                let condition = ReasonCondition::IncompatibleParameters;
                self.terminate_xmpp(ctx, condition, Some(200), Some(text));
                self.end(ctx, condition, EndedBy::Gateway, Some(200), Phase::Finished);
            }
        }
    }

    pub(super) fn xmpp_caller_iq_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        purpose: IqPurpose,
        outcome: IqOutcome,
    ) {
        // Losing the caller after the answer: hang up the SIP side.
        if purpose == IqPurpose::Accept
            && outcome != IqOutcome::Result
            && self.phase == Phase::Active
        {
            ctx.sip(SipCommand::Bye { call: self.key });
            self.end(
                ctx,
                ReasonCondition::ConnectivityError,
                EndedBy::Gateway,
                None,
                Phase::Finished,
            );
        }
    }
}

/// Does any ICE-UDP content come without candidates (a trickling client)?
fn awaits_candidates(contents: &[Content]) -> bool {
    contents
        .iter()
        .any(|c| matches!(&c.transport, Some(Transport::IceUdp(t)) if t.candidates.is_empty()))
}
