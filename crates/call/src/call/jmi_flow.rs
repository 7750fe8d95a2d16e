//! SIP → XMPP calls to a bare JID: XEP-0353 (0.8.0) rings every device of the
//! user; the session-initiate goes to the device that proceeds.

use super::{Call, Ctx, In, Offer, Phase};
use crate::jmi::{self, Jmi, JmiKind};
use crate::types::Fault;
use stox_mapping::jingle::Description;
use stox_mapping::status::ReasonCondition;

impl Call {
    /// Sends `<propose/>` (one `<description/>` per offered medium) to the
    /// user's bare JID.
    pub(super) fn propose(&mut self, ctx: &mut Ctx<'_>, offer: &Offer) {
        let media: Vec<String> = offer
            .contents
            .iter()
            .filter_map(|c| match &c.description {
                Some(Description::Rtp(rtp)) => Some(rtp.media.clone()),
                _ => None,
            })
            .collect();
        let msg = jmi::message(
            JmiKind::Propose,
            &self.rec.jingle_sid,
            &self.gateway_jid,
            &self.xmpp_peer,
            None,
            &media,
        );
        ctx.send(msg);
    }

    /// Withdraws the proposal from every device (CANCEL from SIP, no answer).
    pub(super) fn retract(&mut self, ctx: &mut Ctx<'_>, reason: ReasonCondition, text: &str) {
        let to = jmi::bare(&self.xmpp_peer).to_owned();
        self.send_jmi(ctx, JmiKind::Retract, &to, reason, text);
    }

    fn send_jmi(
        &self,
        ctx: &mut Ctx<'_>,
        kind: JmiKind,
        to: &str,
        reason: ReasonCondition,
        text: &str,
    ) {
        let msg = jmi::message(
            kind,
            &self.rec.jingle_sid,
            &self.gateway_jid,
            to,
            Some((reason, Some(text))),
            &[],
        );
        ctx.send(msg);
    }

    /// A JMI message from one of the callee's devices about our proposal.
    pub(crate) fn on_jmi(&mut self, ctx: &mut Ctx<'_>, msg: &Jmi) {
        let phase = self.take_phase();
        self.phase = match (msg.kind, phase) {
            (
                JmiKind::Ringing,
                Phase::In(In::Proposing {
                    mut incoming,
                    mut ringing,
                }),
            ) => {
                if !ringing.contains(&msg.from) {
                    ringing.push(msg.from.clone());
                }
                self.alert_sip_caller(ctx, &mut incoming);
                Phase::In(In::Proposing { incoming, ringing })
            }
            (JmiKind::Proceed, Phase::In(In::Proposing { incoming, ringing }))
                if msg.from.contains('/') =>
            {
                // This device takes the call; the others stop ringing.
                for device in ringing.iter().filter(|d| **d != msg.from) {
                    self.send_jmi(
                        ctx,
                        JmiKind::Retract,
                        device,
                        ReasonCondition::Cancel,
                        "answered on another device",
                    );
                }
                self.xmpp_peer = msg.from.clone();
                self.rec.xmpp_jid = msg.from.clone();
                self.jmi_finish = true;
                self.initiate(ctx, &incoming.offer);
                self.persist(ctx);
                Phase::In(In::Initiating(incoming))
            }
            (JmiKind::Reject, Phase::In(In::Proposing { .. })) => {
                self.rec.xmpp_jid = msg.from.clone();
                self.callee_declined(ctx, msg.reason.unwrap_or(ReasonCondition::Decline))
            }
            // A `<proceed/>` from a bare JID (no device to start a session
            // with), a device's message after another one took the call,
            // or a kind only the caller sends: XEP-0353 has no error to
            // answer a message with.
            (kind, phase) => {
                ctx.fault(
                    self.rec.id,
                    Fault::UnexpectedJmi {
                        kind: kind.as_str(),
                        from: msg.from.clone(),
                        phase: phase.name(),
                    },
                );
                phase
            }
        };
    }
}
