//! ICE restarts (RFC 8839 §4.4.1.1.1 ⇄ XEP-0176 §2.4), both ways.
//!
//! - The SIP peer re-INVITEs with new `ice-ufrag`/`ice-pwd` (candidates,
//!   default addresses and ports may change with them; nothing else): the
//!   XMPP user gets transport-info with the new credentials and candidates,
//!   and the re-INVITE waits (15 s at most) for the user's own transport-info
//!   with new credentials, which becomes our answer (our SDP with the new
//!   credentials and candidates, version + 1).
//! - The XMPP user sends transport-info with new credentials: the SIP peer
//!   gets a re-INVITE with them (our SDP, version + 1), and its answer's new
//!   credentials and candidates go back as transport-info.

use super::{Call, Change, Ctx, IncomingChange, IncomingKind, IqPurpose, Phase, Session};
use crate::stanza::{AppError, IqHeader};
use crate::types::{Fault, Output, RequestId, SipCommand, TimerKey};
use stox_mapping::jingle::{Action, Content, Creator, IceCandidate, Jingle, Transport};
use stox_mapping::sdp;
use stox_mapping::sdp::session::{ice_ufrag, next_version, section_mids, with_ice};
use stox_mapping::status::ErrorCondition;

/// The new credentials of a transport-info, if any: (ufrag, pwd).
pub(super) fn credentials(jingle: &Jingle) -> Option<(String, String)> {
    jingle.contents.iter().find_map(|c| match &c.transport {
        Some(Transport::IceUdp(t)) => Some((t.ufrag.clone()?, t.pwd.clone()?)),
        _ => None,
    })
}

impl Call {
    /// Does this transport-info restart ICE (credentials other than those
    /// of the XMPP user in our SDP)?
    pub(super) fn is_ice_restart(&self, jingle: &Jingle) -> bool {
        let ours = self.rec.local_sdp.as_deref().and_then(ice_ufrag);
        matches!((credentials(jingle), ours), (Some((u, _)), Some(o)) if u != o)
    }

    /// The candidates of `contents` per m= section of our SDP (by mid, or
    /// by position among the session's contents).
    fn candidates_per_section(
        &self,
        session: &Session,
        contents: &[Content],
    ) -> Vec<Vec<IceCandidate>> {
        let local = self.rec.local_sdp.as_deref().unwrap_or_default();
        let names = self.section_names(session, local);
        let count = names.len();
        names
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let content = match &name {
                    Some(n) => contents.iter().find(|c| &c.name == n),
                    None => None,
                }
                .or_else(|| (contents.len() == count).then(|| &contents[i]));
                match content.and_then(|c| c.transport.as_ref()) {
                    Some(Transport::IceUdp(t)) => t.candidates.clone(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }

    /// Our SDP with the XMPP user's new credentials and candidates.
    fn restarted_sdp(&self, session: &Session, jingle: &Jingle) -> Result<String, String> {
        let local = self.rec.local_sdp.clone().unwrap_or_default();
        let (ufrag, pwd) = credentials(jingle).ok_or("no ICE credentials")?;
        let candidates = self.candidates_per_section(session, &jingle.contents);
        let version = next_version(&local);
        with_ice(&local, &ufrag, &pwd, &candidates, version).map_err(|e| e.to_string())
    }

    /// transport-info with the new transports of `sdp` (the SIP side's),
    /// named like the session's contents. False when `sdp_text` has no
    /// transport to send.
    fn send_transports(&mut self, ctx: &mut Ctx<'_>, session: &Session, sdp_text: &str) -> bool {
        let (_, sip_author) = self.sdp_roles();
        let Ok(mapped) = sdp::sdp_offer_to_jingle(sdp_text, sip_author) else {
            return false;
        };
        let mids = section_mids(sdp_text);
        let contents: Vec<Content> = mapped
            .contents
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let name = if mids.get(i).cloned().flatten().is_some() {
                    c.name.clone()
                } else {
                    session
                        .contents
                        .get(i)
                        .map_or_else(|| c.name.clone(), |s| s.name.clone())
                };
                let transport = c.transport?;
                let mut out = Content::new(name.clone());
                out.creator = session
                    .contents
                    .iter()
                    .find(|s| s.name == name)
                    .map_or(Creator::Initiator, |s| s.creator);
                out.transport = Some(transport);
                Some(out)
            })
            .collect();
        if contents.is_empty() {
            return false;
        }
        let mut j = self.new_jingle(Action::TransportInfo);
        j.contents = contents;
        self.send_jingle(ctx, IqPurpose::Info, &j);
        true
    }

    /// The SIP peer restarts ICE: its credentials to XMPP; the request
    /// waits for the XMPP user's.
    pub(super) fn sip_ice_restart(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        request: RequestId,
        offer: &str,
    ) -> Option<(u16, Option<String>, Option<String>)> {
        if !self.send_transports(ctx, session, offer) {
            return Some((
                488,
                Some("ICE restart without a usable transport".into()),
                None,
            ));
        }
        session.incoming = Some(IncomingChange {
            request,
            offer: offer.to_owned(),
            kind: IncomingKind::IceRestart,
        });
        ctx.out.push(Output::SetTimer {
            key: TimerKey::ContentAnswer { call: self.rec.id },
            at: ctx.now.plus_ms(15_000),
        });
        None
    }

    /// A transport-info with new credentials from the XMPP user in an
    /// answered call: the answer to the SIP peer's restart, or a restart
    /// of its own.
    pub(super) fn xmpp_ice_restart(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        let answering = matches!(
            &session.incoming,
            Some(IncomingChange {
                kind: IncomingKind::IceRestart,
                ..
            })
        );
        if !answering && (session.offering.is_some() || session.incoming.is_some()) {
            ctx.error(
                req,
                ErrorCondition::Conflict,
                "an offer is in progress with the SIP side; restart ICE once it is answered",
                Some(AppError::TieBreak),
            );
            return Phase::Active(session);
        }
        let sdp = match self.restarted_sdp(&session, &jingle) {
            Ok(sdp) => sdp,
            Err(why) => {
                ctx.error(
                    req,
                    ErrorCondition::BadRequest,
                    &format!("ICE restart: {why}"),
                    None,
                );
                return Phase::Active(session);
            }
        };
        ctx.result(req);
        if answering && let Some(pending) = session.incoming.take() {
            self.rec.local_sdp = Some(sdp.clone());
            self.rec.remote_sdp = Some(pending.offer);
            self.persist(ctx);
            ctx.sip(SipCommand::Reply {
                call: self.key,
                request: pending.request,
                status: 200,
                reason: None,
                sdp: Some(sdp),
            });
        } else {
            self.offer_change(ctx, &mut session, Ok(sdp), Change::IceRestart);
        }
        Phase::Active(session)
    }

    /// The SIP peer answered our ICE restart: its new credentials to XMPP.
    pub(super) fn ice_restarted(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &Session,
        answer: Option<&str>,
    ) {
        // An answer without a usable transport leaves the XMPP user on the
        // old one; ICE on its side then fails and ends the call as media loss.
        if let Some(answer) = answer
            && !self.send_transports(ctx, session, answer)
        {
            ctx.out.push(Output::Fault {
                call: self.rec.id,
                fault: Fault::UnexpectedSip {
                    event: "ICE restart answer without a usable transport",
                    phase: "restarting ICE",
                },
            });
        }
    }
}
