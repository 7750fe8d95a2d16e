//! SIP → XMPP calls to a bare JID: XEP-0353 (0.8.0) rings every device of the
//! user; the session-initiate goes to the device that proceeds.

use super::{Call, Ctx, IqPurpose, Phase};
use crate::jmi::{self, Jmi, JmiKind};
use stox_mapping::jingle::{Action, Description};
use stox_mapping::status::ReasonCondition;

impl Call {
    /// Sends `<propose/>` (one `<description/>` per offered medium) to the
    /// user's bare JID.
    pub(super) fn propose(&mut self, ctx: &mut Ctx<'_>) {
        let media: Vec<String> = self
            .offered
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
        if self.phase != Phase::Proposing {
            return;
        }
        match msg.kind {
            JmiKind::Ringing => {
                if !self.ringing_devices.contains(&msg.from) {
                    self.ringing_devices.push(msg.from.clone());
                }
                self.alert_sip_caller(ctx);
            }
            JmiKind::Proceed if msg.from.contains('/') => {
                // This device takes the call; the others stop ringing.
                let others: Vec<String> = self
                    .ringing_devices
                    .iter()
                    .filter(|d| **d != msg.from)
                    .cloned()
                    .collect();
                for device in others {
                    self.send_jmi(
                        ctx,
                        JmiKind::Retract,
                        &device,
                        ReasonCondition::Cancel,
                        "answered on another device",
                    );
                }
                self.xmpp_peer = msg.from.clone();
                self.rec.xmpp_jid = msg.from.clone();
                self.jmi_finish = true;
                self.phase = Phase::Initiating;
                let mut j = self.new_jingle(Action::SessionInitiate);
                j.contents = self.offered.clone();
                j.groups = self.offered_groups.clone();
                self.send_jingle(ctx, IqPurpose::Initiate, &j);
                self.persist(ctx);
            }
            JmiKind::Reject => {
                self.rec.xmpp_jid = msg.from.clone();
                self.callee_declined(ctx, msg.reason.unwrap_or(ReasonCondition::Decline));
            }
            _ => {}
        }
    }
}
