//! XMPP → SIP: the XMPP user is the Jingle initiator, the gateway sends the
//! INVITE.

use super::{Call, Ctx, Inviting, IqPurpose, Offer, Out, Phase, Session, local_part};
use crate::policy::{Down, Refusal, Route};
use crate::stanza::IqHeader;
use crate::types::{CallKey, CallState, Direction, EndedBy, Fault, NextHop, SipCommand, SipEvent};
use stox_mapping::address::{JidParts, gateway_jid_to_sip_user, xmpp_user_to_sip};
use stox_mapping::ids::CallId;
use stox_mapping::jingle::{Action, Content, Description, Jingle, Transport};
use stox_mapping::sdp::{self, SdpAuthor, SdpError, SdpOrigin};
use stox_mapping::status::{ErrorCondition, ReasonCondition, reason_for_sip_status};

impl Call {
    /// A session-initiate from an XMPP user to a SIP address on the
    /// component domain. Returns `None` when it was refused with an IQ error
    /// (nothing was started, nothing is stored); a call refused because
    /// every next hop it could take is `down` is returned ended (its row
    /// says why).
    pub(crate) fn from_session_initiate(
        ctx: &mut Ctx<'_>,
        id: i64,
        call_id: CallId,
        key: CallKey,
        req: &IqHeader,
        jingle: Jingle,
        down: &Down,
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
        let (caller, caller_bare) = match JidParts::parse(&req.from) {
            Ok(jid) => (xmpp_user_to_sip(&jid.bare(), false), jid.bare().to_string()),
            Err(e) => {
                ctx.error(req, ErrorCondition::JidMalformed, &e.to_string(), None);
                return None;
            }
        };
        let (peer, unavailable) = match ctx
            .cfg
            .policy
            .as_ref()
            .map(|p| p.route(&caller_bare, &callee, down))
        {
            None | Some(Ok(Route::Proxy | Route::Registrar)) => (None, None),
            Some(Ok(Route::Peer(name))) => (Some(name), None),
            Some(Err(Refusal::Unavailable(hops))) => {
                // The row names the peer the call would have gone to.
                let first = hops.first().and_then(|(hop, _)| match hop {
                    NextHop::Peer(name) => Some(name.clone()),
                    NextHop::OutboundProxy => None,
                });
                (first, Some(hops))
            }
            Some(Err(Refusal::Forbidden(why))) => {
                ctx.error(req, ErrorCondition::Forbidden, &why, None);
                ctx.fault(
                    0,
                    Fault::Forbidden {
                        caller: caller_bare,
                        target: callee.to_string(),
                        why,
                    },
                );
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
            call_id,
            key,
            req.from.clone(),
            req.to.clone(),
            callee.to_string(),
        );
        call.rec.sip_peer = peer;
        if let Some(hops) = unavailable {
            call.refuse_unavailable(ctx, req, &caller_bare, hops);
            return Some(call);
        }
        ctx.result(req);
        let offer = Offer {
            contents: jingle.contents,
            groups: jingle.groups,
        };
        let caller_uri = caller.to_string();
        call.phase = if awaits_candidates(&offer.contents) {
            // The client will trickle its candidates (transport-info): gather
            // them for a short window so the INVITE carries them all.
            call.persist(ctx);
            ctx.out.push(crate::types::Output::SetTimer {
                key: crate::types::TimerKey::CandidateWindow { call: id },
                at: ctx.now.plus_ms(ctx.cfg.candidate_window_ms),
            });
            Phase::Out(Out::Gathering { offer, caller_uri })
        } else {
            call.send_invite(ctx, offer, caller_uri, Vec::new())
        };
        Some(call)
    }

    /// Every next hop the call could take is down: `service-unavailable`
    /// at once, as while draining, and the row ends (`connectivity-error`,
    /// by the gateway, no SIP status: nothing went to SIP) with why in
    /// `end_detail`.
    fn refuse_unavailable(
        &mut self,
        ctx: &mut Ctx<'_>,
        req: &IqHeader,
        caller: &str,
        hops: Vec<(NextHop, String)>,
    ) {
        let names = hops.iter().map(|(hop, _)| hop.clone()).collect();
        let why = Refusal::Unavailable(hops).to_string();
        ctx.error(
            req,
            ErrorCondition::ServiceUnavailable,
            &format!("{why}; try again later"),
            None,
        );
        ctx.fault(
            self.rec.id,
            Fault::PeerDown {
                caller: caller.to_owned(),
                target: self.rec.sip_uri.clone(),
                hops: names,
                why: why.clone(),
            },
        );
        self.rec.end_detail = Some(why);
        self.phase = self.end(
            ctx,
            ReasonCondition::ConnectivityError,
            EndedBy::Gateway,
            None,
        );
    }

    /// Maps the Jingle offer and sends the INVITE; a offer that cannot be
    /// mapped ends the call (XEP-0166 §6.3.2: the session-initiate was
    /// acknowledged, so the reason goes in a session-terminate).
    fn send_invite(
        &mut self,
        ctx: &mut Ctx<'_>,
        offer: Offer,
        from: String,
        supported: Vec<String>,
    ) -> Phase {
        let origin = SdpOrigin {
            username: local_part(&self.xmpp_peer),
            session_id: ctx.now.0,
            session_version: 1,
        };
        match sdp::jingle_to_sdp_offer(
            &offer.contents,
            &offer.groups,
            SdpAuthor::Initiator,
            &origin,
        ) {
            Ok(sdp) => {
                self.rec.local_sdp = Some(sdp.clone());
                ctx.sip(SipCommand::Invite {
                    call: self.key,
                    call_id: self.rec.sip_call_id.clone(),
                    request_uri: self.rec.sip_uri.clone(),
                    from,
                    sdp,
                    supported,
                    peer: self.rec.sip_peer.clone(),
                });
                // Written now that the INVITE is out, so that the gateway
                // stores it (a restart can then CANCEL it).
                self.persist(ctx);
                ctx.out.push(crate::types::Output::SetTimer {
                    key: crate::types::TimerKey::AnswerTimeout { call: self.rec.id },
                    at: ctx.now.plus_ms(ctx.cfg.ring_timeout_ms),
                });
                Phase::Out(Out::Inviting(Inviting {
                    contents: offer.contents,
                    early_sdp: None,
                    held: Vec::new(),
                }))
            }
            Err(err) => {
                let has_rtp = offer
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
                self.terminate_xmpp(ctx, reason, None, Some(err.to_string()));
                self.end(ctx, reason, EndedBy::Gateway, None)
            }
        }
    }

    /// The candidate window closed: send the INVITE with what was gathered.
    /// The XMPP side trickles: the INVITE says so, so a trickle-capable SIP
    /// peer takes later candidates by INFO (RFC 8840).
    pub(super) fn candidates_gathered(
        &mut self,
        ctx: &mut Ctx<'_>,
        offer: Offer,
        caller_uri: String,
    ) -> Phase {
        self.send_invite(ctx, offer, caller_uri, vec!["trickle-ice".to_owned()])
    }

    /// The SIP callee did not answer in time: CANCEL (RFC 3261 §9.1) and
    /// `<timeout/>` to the XMPP caller. The call stays until the INVITE's
    /// final response (487, or a 2xx that crossed the CANCEL: BYE).
    pub(super) fn answer_timeout(&mut self, ctx: &mut Ctx<'_>) -> Phase {
        ctx.sip(SipCommand::Cancel { call: self.key });
        let condition = ReasonCondition::Timeout;
        self.terminate_xmpp(ctx, condition, None, Some("no answer".into()));
        self.end(ctx, condition, EndedBy::Gateway, None);
        Phase::Out(Out::Cancelling)
    }

    /// A Jingle action from the XMPP caller before the answer.
    pub(super) fn xmpp_caller_jingle(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: Out,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        match jingle.action {
            Action::SessionTerminate => {
                ctx.result(req);
                let reason = jingle
                    .reason
                    .as_ref()
                    .map_or(ReasonCondition::Cancel, |r| r.condition);
                match phase {
                    // Nothing was sent to SIP yet.
                    Out::Gathering { .. } => self.end(ctx, reason, EndedBy::Xmpp, None),
                    Out::Inviting(_) | Out::Alerting(_) => {
                        ctx.sip(SipCommand::Cancel { call: self.key });
                        self.end(ctx, reason, EndedBy::Xmpp, None);
                        Phase::Out(Out::Cancelling)
                    }
                    // Already ending: a repeated terminate is acknowledged
                    // and changes nothing.
                    Out::Cancelling => Phase::Out(Out::Cancelling),
                }
            }
            Action::SessionInfo => {
                Self::session_info_known(ctx, req, &jingle);
                Phase::Out(phase)
            }
            Action::TransportInfo => match phase {
                Out::Gathering {
                    mut offer,
                    caller_uri,
                } => {
                    match jingle
                        .contents
                        .iter()
                        .find(|c| !offer.contents.iter().any(|o| o.name == c.name))
                    {
                        Some(unknown) => ctx.error(
                            req,
                            ErrorCondition::BadRequest,
                            &format!(
                                "transport-info for content '{}', which the session does not have",
                                unknown.name
                            ),
                            None,
                        ),
                        None => {
                            ctx.result(req);
                            merge_candidates(&mut offer.contents, &jingle.contents);
                        }
                    }
                    Phase::Out(Out::Gathering { offer, caller_uri })
                }
                Out::Cancelling => {
                    Self::out_of_order(ctx, req, jingle.action, &Phase::Out(Out::Cancelling));
                    Phase::Out(Out::Cancelling)
                }
                phase @ (Out::Inviting(_) | Out::Alerting(_)) => {
                    self.transport_info(ctx, Phase::Out(phase), req, jingle)
                }
            },
            Action::SessionInitiate | Action::SessionAccept => {
                let phase = Phase::Out(phase);
                Self::out_of_order(ctx, req, jingle.action, &phase);
                phase
            }
            other => {
                Self::not_implemented(ctx, req, other);
                Phase::Out(phase)
            }
        }
    }

    /// A SIP event about our INVITE, before the answer.
    pub(super) fn sip_callee_event(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: Out,
        sip: SipEvent,
    ) -> Phase {
        match (sip, phase) {
            // Forking: only the first provisional reaches XMPP. An early SDP
            // answer (183) is never forwarded before the final response: it
            // is kept, for a 2xx that carries none.
            (
                SipEvent::Provisional {
                    status,
                    sdp,
                    supported,
                    ..
                },
                Out::Inviting(mut inviting),
            ) if status > 100 => {
                self.set_peer_supported(&supported);
                if sdp.is_some() {
                    inviting.early_sdp = sdp;
                }
                let mut j = self.new_jingle(Action::SessionInfo);
                j.info.push(minidom::Element::bare(
                    "ringing",
                    stox_mapping::ns::JINGLE_RTP_INFO,
                ));
                self.send_jingle(ctx, IqPurpose::Info, &j);
                self.set_state(ctx, CallState::Ringing);
                Phase::Out(Out::Alerting(inviting))
            }
            (
                SipEvent::Provisional {
                    status,
                    sdp,
                    supported,
                    ..
                },
                Out::Alerting(mut inviting),
            ) if status > 100 => {
                self.set_peer_supported(&supported);
                if sdp.is_some() {
                    inviting.early_sdp = sdp;
                }
                Phase::Out(Out::Alerting(inviting))
            }
            // A provisional that crossed our CANCEL.
            (SipEvent::Provisional { .. }, Out::Cancelling) => Phase::Out(Out::Cancelling),
            (
                SipEvent::Answered { sdp, supported, .. },
                Out::Inviting(inviting) | Out::Alerting(inviting),
            ) => {
                self.set_peer_supported(&supported);
                self.sip_answered(ctx, inviting, sdp)
            }
            (SipEvent::Answered { .. }, Out::Cancelling) => {
                // Our CANCEL lost the race against the 2xx: end it with BYE.
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: None,
                });
                self.rec.sip_status = Some(200);
                self.persist(ctx);
                Phase::Finished
            }
            (SipEvent::Rejected { status, reason, .. }, Out::Inviting(_) | Out::Alerting(_)) => {
                let condition = reason_for_sip_status(status);
                self.terminate_xmpp(
                    ctx,
                    condition,
                    Some(status),
                    Some(format!("{status} {reason}")),
                );
                self.end(ctx, condition, EndedBy::Sip, Some(status))
            }
            (SipEvent::Rejected { status, .. }, Out::Cancelling) => {
                self.rec.sip_status = Some(status);
                self.persist(ctx);
                Phase::Finished
            }
            // RFC 3261 §15: the callee must not send BYE in an early dialog.
            // One that does is ending its side: the INVITE is cancelled and
            // the XMPP caller told.
            (SipEvent::Bye { .. }, Out::Inviting(_) | Out::Alerting(_)) => {
                ctx.sip(SipCommand::Cancel { call: self.key });
                let condition = ReasonCondition::Gone;
                self.terminate_xmpp(
                    ctx,
                    condition,
                    None,
                    Some("the SIP callee sent BYE before answering".into()),
                );
                self.end(ctx, condition, EndedBy::Sip, None);
                Phase::Out(Out::Cancelling)
            }
            (SipEvent::Terminated { reason, .. }, Out::Inviting(_) | Out::Alerting(_)) => {
                let condition = ReasonCondition::ConnectivityError;
                self.rec.end_detail = Some(reason.clone());
                self.terminate_xmpp(ctx, condition, None, Some(reason));
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
            (SipEvent::Terminated { .. }, Out::Cancelling) => Phase::Finished,
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
                | SipEvent::Terminated { .. }
                | SipEvent::CommandFailed { .. }),
                phase,
            ) => self.unexpected_sip(ctx, Phase::Out(phase), &other),
        }
    }

    fn sip_answered(
        &mut self,
        ctx: &mut Ctx<'_>,
        inviting: Inviting,
        sdp: Option<String>,
    ) -> Phase {
        self.rec.sip_status = Some(200);
        // RFC 3262/3264: the answer may have come in a reliable provisional.
        let answer = sdp.or(inviting.early_sdp);
        if let Some(answer) = &answer {
            self.set_remote_sdp(answer);
        }
        let mapped = match answer {
            None => Err(
                "neither the 200 OK nor a provisional response carried an SDP answer".to_owned(),
            ),
            Some(answer) => {
                sdp::sdp_answer_to_jingle(&answer, &inviting.contents, SdpAuthor::Responder)
                    .map_err(|e| e.to_string())
                    .and_then(|m| {
                        if m.contents.is_empty() {
                            Err("the SDP answer rejected every stream".to_owned())
                        } else {
                            Ok(m)
                        }
                    })
            }
        };
        match mapped {
            Ok(m) => {
                let mut j = self.new_jingle(Action::SessionAccept);
                j.responder = Some(self.gateway_jid.clone());
                j.contents = m.contents;
                j.groups = m.groups;
                self.send_jingle(ctx, IqPurpose::Accept, &j);
                self.set_state(ctx, CallState::Active);
                self.answered_timers(ctx);
                let mut session = Session {
                    contents: inviting.contents,
                    held: inviting.held,
                    ..Session::default()
                };
                self.flush_trickle(ctx, &mut session.held);
                Phase::Active(session)
            }
            Err(text) => {
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: None,
                });
                let condition = ReasonCondition::IncompatibleParameters;
                self.terminate_xmpp(ctx, condition, Some(200), Some(text));
                self.end(ctx, condition, EndedBy::Gateway, Some(200))
            }
        }
    }
}

/// Trickled candidates (XEP-0176 transport-info) merged into the offer being
/// gathered.
fn merge_candidates(offer: &mut [Content], trickled: &[Content]) {
    for content in trickled {
        let Some(Transport::IceUdp(new)) = &content.transport else {
            continue;
        };
        let Some(Transport::IceUdp(t)) = offer
            .iter_mut()
            .find(|c| c.name == content.name)
            .and_then(|c| c.transport.as_mut())
        else {
            continue;
        };
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
}

/// Does any ICE-UDP content come without candidates (a trickling client)?
fn awaits_candidates(contents: &[Content]) -> bool {
    contents
        .iter()
        .any(|c| matches!(&c.transport, Some(Transport::IceUdp(t)) if t.candidates.is_empty()))
}
