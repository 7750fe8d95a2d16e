//! Trickle ICE between XEP-0176 `transport-info` and SIP INFO with
//! `application/trickle-ice-sdpfrag` (RFC 8840). Toward a SIP peer that did
//! not say `Supported: trickle-ice`, trickled candidates are held for the
//! next offer/answer instead, up to [`MAX_HELD_CANDIDATES`].

use super::{Call, Ctx, IqPurpose, MAX_HELD_CANDIDATES, Phase};
use crate::stanza::IqHeader;
use crate::types::SipCommand;
use stox_mapping::jingle::{Action, Content, Jingle, Transport};
use stox_mapping::sdp::trickle::{SDPFRAG, contents_to_sdpfrag, sdpfrag_to_contents};
use stox_mapping::status::ErrorCondition;

impl Call {
    /// Notes the option tags of the SIP peer's INVITE or response.
    pub(crate) fn set_peer_supported(&mut self, tags: &[String]) {
        if tags.iter().any(|t| t.eq_ignore_ascii_case("trickle-ice")) {
            self.peer_trickle = true;
        }
    }

    /// A transport-info from the XMPP user once the session is under way:
    /// its candidates go to the SIP peer by INFO when the dialog is
    /// confirmed and the peer does trickle ICE, and wait until then.
    pub(super) fn transport_info(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut phase: Phase,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        let active = matches!(phase, Phase::Active(_));
        let Some(held) = phase.held_mut() else {
            Self::out_of_order(ctx, req, jingle.action, &phase);
            return phase;
        };
        let ice: Vec<Content> = jingle
            .contents
            .into_iter()
            .filter(|c| matches!(c.transport, Some(Transport::IceUdp(_))))
            .map(|mut c| {
                // Only the candidates are sent on.
                c.description = None;
                c
            })
            .collect();
        if held.len() + ice.len() > MAX_HELD_CANDIDATES {
            ctx.error(
                req,
                ErrorCondition::ResourceConstraint,
                &format!(
                    "{MAX_HELD_CANDIDATES} trickled contents are already held for a SIP peer \
                     that takes none before the next offer/answer"
                ),
                None,
            );
            return phase;
        }
        ctx.result(req);
        held.extend(ice);
        if active {
            self.flush_trickle(ctx, held);
        }
        phase
    }

    /// Sends the held candidates by INFO, the dialog being confirmed, when
    /// the peer does trickle ICE.
    pub(super) fn flush_trickle(&mut self, ctx: &mut Ctx<'_>, held: &mut Vec<Content>) {
        if !self.peer_trickle || held.is_empty() {
            return;
        }
        let held = std::mem::take(held);
        if let Some(body) = contents_to_sdpfrag(&held, false) {
            ctx.sip(SipCommand::Info {
                call: self.key,
                content_type: SDPFRAG.to_owned(),
                body,
            });
        }
    }

    /// An INFO with an sdpfrag from the SIP peer: trickled candidates
    /// become a transport-info to the XMPP user. `Err` is the refusal (status
    /// and why) when they cannot.
    pub(super) fn trickle_in(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: &Phase,
        body: &str,
    ) -> Result<(), (u16, String)> {
        let Some(names) = phase.trickle_names() else {
            return Err((
                488,
                format!(
                    "no Jingle session to send the candidates to while {}",
                    phase.name()
                ),
            ));
        };
        let contents = sdpfrag_to_contents(body, names).map_err(|e| (400, e.to_string()))?;
        let has_candidates = contents.iter().any(
            |c| matches!(&c.transport, Some(Transport::IceUdp(t)) if !t.candidates.is_empty()),
        );
        if has_candidates {
            let mut j = self.new_jingle(Action::TransportInfo);
            j.contents = contents;
            self.send_jingle(ctx, IqPurpose::Info, &j);
        }
        Ok(())
    }
}

/// Is this the Content-Type of a trickle-ICE INFO (RFC 8840)?
pub(super) fn is_sdpfrag(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(SDPFRAG))
}
