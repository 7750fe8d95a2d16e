//! Trickle ICE between XEP-0176 `transport-info` and SIP INFO with
//! `application/trickle-ice-sdpfrag` (RFC 8840). Toward a SIP peer that did
//! not say `Supported: trickle-ice`, trickled candidates are held for the
//! next offer/answer instead.

use super::{Call, Ctx, IqPurpose, Phase};
use crate::types::SipCommand;
use stox_mapping::jingle::{Action, Content, Transport};
use stox_mapping::sdp::trickle::{SDPFRAG, contents_to_sdpfrag, sdpfrag_to_contents};

impl Call {
    /// Notes the option tags of the SIP peer's INVITE or response.
    pub(crate) fn set_peer_supported(&mut self, tags: &[String]) {
        if tags.iter().any(|t| t.eq_ignore_ascii_case("trickle-ice")) {
            self.peer_trickle = true;
        }
    }

    /// Candidates from the XMPP side (a transport-info content) toward SIP.
    pub(super) fn trickle_out(&mut self, ctx: &mut Ctx<'_>, content: Content) {
        if !matches!(content.transport, Some(Transport::IceUdp(_))) {
            return;
        }
        self.held_trickle.push(content);
        self.flush_trickle(ctx);
    }

    /// Sends the held candidates by INFO once the dialog is confirmed and the
    /// peer does trickle ICE.
    pub(super) fn flush_trickle(&mut self, ctx: &mut Ctx<'_>) {
        if !self.peer_trickle || self.phase != Phase::Active || self.held_trickle.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held_trickle);
        if let Some(body) = contents_to_sdpfrag(&held, false) {
            ctx.sip(SipCommand::Info {
                call: self.key,
                content_type: SDPFRAG.to_owned(),
                body,
            });
        }
    }

    /// An INFO from the SIP peer: trickled candidates become a
    /// transport-info to the XMPP user. Other INFO bodies are not mapped.
    pub(super) fn trickle_in(&mut self, ctx: &mut Ctx<'_>, content_type: &str, body: &str) {
        let is_sdpfrag = content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(SDPFRAG));
        if !is_sdpfrag
            || matches!(
                self.phase,
                Phase::Finished | Phase::Proposing | Phase::Gathering
            )
        {
            return;
        }
        let Ok(contents) = sdpfrag_to_contents(body, &self.offered) else {
            return;
        };
        let has_candidates = contents.iter().any(
            |c| matches!(&c.transport, Some(Transport::IceUdp(t)) if !t.candidates.is_empty()),
        );
        if !has_candidates {
            return;
        }
        let mut j = self.new_jingle(Action::TransportInfo);
        j.contents = contents;
        self.send_jingle(ctx, IqPurpose::Info, &j);
    }
}
