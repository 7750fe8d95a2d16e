//! The XMPP side's liveness (issue 13): an XMPP user who vanishes mid-call
//! must not leave the SIP side talking to nobody. The gateway learns it
//! from an IQ of its own answered `service-unavailable`,
//! `recipient-unavailable`, `item-not-found`, `remote-server-not-found`,
//! `remote-server-timeout` or `gone`, or not answered at all — a Jingle IQ
//! or the XEP-0199 ping it sends every `peer_ping` — and from unavailable
//! presence of the user's full JID where the component sees it. The SIP
//! side then gets BYE with a `Reason` (or 480, or CANCEL, before the
//! answer) and the row says why. A call also ends after `max_duration`.

use super::{Call, Ctx, In, IqPurpose, Out, Phase};
use crate::stanza;
use crate::types::{EndedBy, IqOutcome, Output, SipCommand, TimerKey};
use stox_mapping::status::{ErrorCondition, ReasonCondition};

/// Does this answer (or its absence) say the XMPP user is gone?
pub(super) fn says_gone(outcome: &IqOutcome) -> bool {
    matches!(
        outcome,
        IqOutcome::Timeout
            | IqOutcome::Error(
                ErrorCondition::ServiceUnavailable
                    | ErrorCondition::RecipientUnavailable
                    | ErrorCondition::ItemNotFound
                    | ErrorCondition::RemoteServerNotFound
                    | ErrorCondition::RemoteServerTimeout
                    | ErrorCondition::Gone
            )
    )
}

impl Call {
    /// The call is answered: the liveness ping and the longest duration
    /// start counting.
    pub(super) fn answered_timers(&self, ctx: &mut Ctx<'_>) {
        let call = self.rec.id;
        if ctx.cfg.peer_ping_ms > 0 {
            ctx.out.push(Output::SetTimer {
                key: TimerKey::PeerPing { call },
                at: ctx.now.plus_ms(ctx.cfg.peer_ping_ms),
            });
        }
        if ctx.cfg.max_duration_ms > 0 {
            ctx.out.push(Output::SetTimer {
                key: TimerKey::MaxDuration { call },
                at: ctx.now.plus_ms(ctx.cfg.max_duration_ms),
            });
        }
    }

    /// XEP-0199: is the XMPP user still there? Asked again every interval.
    pub(super) fn ping_peer(&mut self, ctx: &mut Ctx<'_>) {
        *ctx.iq_seq += 1;
        let id = format!("stox-{}-{}", self.rec.id, *ctx.iq_seq);
        ctx.iqs.insert(id.clone(), (self.rec.id, IqPurpose::Ping));
        ctx.send(stanza::iq_get(
            &id,
            &self.gateway_jid,
            &self.xmpp_peer,
            minidom::Element::bare("ping", stanza::NS_PING),
        ));
        self.sent_iqs.push(id);
        ctx.out.push(Output::SetTimer {
            key: TimerKey::PeerPing { call: self.rec.id },
            at: ctx.now.plus_ms(ctx.cfg.peer_ping_ms),
        });
    }

    /// The XMPP user is gone (`why` says how we know): the SIP side is
    /// ended with what is due in its phase. Nothing goes to XMPP: nobody is
    /// there to read it.
    pub(super) fn xmpp_peer_gone(&mut self, ctx: &mut Ctx<'_>, phase: Phase, why: String) -> Phase {
        let condition = ReasonCondition::ConnectivityError;
        self.rec.end_detail = Some(format!("the XMPP user {} is gone: {why}", self.xmpp_peer));
        match phase {
            Phase::Active(_) | Phase::In(In::AwaitingAck(_)) => {
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: Some("SIP;cause=480;text=\"the XMPP user is gone\"".to_owned()),
                });
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
            Phase::In(In::Initiating(_) | In::Offered(_)) => {
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 480,
                    reason: Some("Temporarily Unavailable (the XMPP user is gone)".into()),
                    sdp: None,
                    retry_after: None,
                });
                self.end(ctx, condition, EndedBy::Gateway, Some(480))
            }
            Phase::Out(Out::Inviting(_) | Out::Alerting(_)) => {
                ctx.sip(SipCommand::Cancel { call: self.key });
                self.end(ctx, condition, EndedBy::Gateway, None);
                Phase::Out(Out::Cancelling)
            }
            Phase::Out(Out::Gathering { .. }) => self.end(ctx, condition, EndedBy::Gateway, None),
            // Already ending, or ringing devices of a bare JID (a full JID's
            // presence says nothing of the others).
            phase @ (Phase::Out(Out::Cancelling)
            | Phase::In(In::Proposing { .. })
            | Phase::Finished) => {
                self.rec.end_detail = None;
                phase
            }
        }
    }

    /// Unavailable presence from the XMPP user's full JID.
    pub(crate) fn on_peer_unavailable(&mut self, ctx: &mut Ctx<'_>) {
        let phase = self.take_phase();
        self.phase = self.xmpp_peer_gone(ctx, phase, "unavailable presence".to_owned());
    }

    /// The gateway is stopping and its drain time is over: both sides are
    /// ended with what is due in the call's phase (BYE and session-terminate
    /// for an answered call; CANCEL, or 503 to the SIP caller, before the
    /// answer; a JMI retract to devices still ringing), and the row says
    /// why.
    pub(crate) fn shut_down(&mut self, ctx: &mut Ctx<'_>) {
        let text = "the gateway is shutting down";
        let condition = ReasonCondition::Gone;
        let phase = self.take_phase();
        let proposing = matches!(phase, Phase::In(In::Proposing { .. }));
        let mut status = None;
        let mut next = Phase::Finished;
        match phase {
            Phase::Active(_) | Phase::In(In::AwaitingAck(_)) => {
                ctx.sip(SipCommand::Bye {
                    call: self.key,
                    reason: Some(format!("SIP;cause=503;text=\"{text}\"")),
                });
            }
            Phase::In(In::Proposing { .. } | In::Initiating(_) | In::Offered(_)) => {
                ctx.sip(SipCommand::Respond {
                    call: self.key,
                    status: 503,
                    reason: Some("Service Unavailable (the gateway is shutting down)".into()),
                    sdp: None,
                    retry_after: Some(ctx.cfg.retry_after_secs),
                });
                status = Some(503);
            }
            Phase::Out(Out::Inviting(_) | Out::Alerting(_)) => {
                ctx.sip(SipCommand::Cancel { call: self.key });
                next = Phase::Out(Out::Cancelling);
            }
            Phase::Out(Out::Gathering { .. }) => {}
            // Already ending.
            phase @ (Phase::Out(Out::Cancelling) | Phase::Finished) => {
                self.phase = phase;
                return;
            }
        }
        if proposing {
            self.retract(ctx, condition, text);
        } else {
            self.terminate_xmpp(ctx, condition, None, Some(text.to_owned()));
        }
        self.rec.end_detail = Some(text.to_owned());
        self.end(ctx, condition, EndedBy::Gateway, status);
        self.phase = next;
    }

    /// The longest call duration is over.
    pub(super) fn max_duration_reached(&mut self, ctx: &mut Ctx<'_>) -> Phase {
        let text = "the call reached the gateway's maximum duration";
        ctx.sip(SipCommand::Bye {
            call: self.key,
            reason: Some(format!("SIP;cause=200;text=\"{text}\"")),
        });
        let condition = ReasonCondition::Expired;
        self.terminate_xmpp(ctx, condition, None, Some(text.to_owned()));
        self.rec.end_detail = Some(text.to_owned());
        self.end(ctx, condition, EndedBy::Gateway, None)
    }
}
