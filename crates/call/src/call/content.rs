//! Streams added and removed by the XMPP user in an answered call: XEP-0166
//! content-add / content-remove ⇄ a re-INVITE that adds an m= section at the
//! end (RFC 3264 §8.1) or sets one to port 0 (§8.2), our SDP otherwise
//! unchanged, its BUNDLE group kept consistent (RFC 8843) and its `o=`
//! version one up. The SIP answer decides: content-accept with the mapped
//! answer, or content-reject (port 0, or a refused re-INVITE).

use super::{
    Call, Change, Ctx, IncomingChange, IncomingKind, IqPurpose, Phase, Session, local_part,
};
use crate::stanza::{AppError, IqHeader};
use crate::types::{Direction, EndedBy, Output, RequestId, SipCommand, TimerKey};
use stox_mapping::jingle::{Action, Content, Creator, Group, Jingle, Reason};
use stox_mapping::sdp::session::{
    declined_sections, next_version, section_mids, sections, with_sections_added,
    with_sections_declined,
};

/// How long the XMPP user has to accept or reject streams the SIP peer
/// added, before they are declined (well within the SIP peer's 32 s
/// INVITE transaction).
const CONTENT_ANSWER_MS: u64 = 15_000;

/// What a request from SIP is answered: status, reason phrase, SDP.
type Answer = (u16, Option<String>, Option<String>);
use stox_mapping::sdp::{self, SdpAuthor, SdpOrigin};
use stox_mapping::status::{ErrorCondition, ReasonCondition};

impl Call {
    /// The roles in SDP: the XMPP user's, then the SIP peer's.
    pub(super) fn sdp_roles(&self) -> (SdpAuthor, SdpAuthor) {
        match self.rec.direction {
            Direction::XmppToSip => (SdpAuthor::Initiator, SdpAuthor::Responder),
            Direction::SipToXmpp => (SdpAuthor::Responder, SdpAuthor::Initiator),
        }
    }

    /// Refuses a content action while an offer of ours is in flight.
    pub(super) fn busy(&self, ctx: &mut Ctx<'_>, req: &IqHeader, session: &Session) -> bool {
        if session.offering.is_none() && session.incoming.is_none() {
            return false;
        }
        ctx.error(
            req,
            ErrorCondition::Conflict,
            "an offer toward the SIP side is in progress; send it again once that is answered",
            Some(AppError::TieBreak),
        );
        true
    }

    /// content-add: the new streams are offered to SIP.
    pub(super) fn xmpp_content_add(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        if self.busy(ctx, req, &session) {
            return Phase::Active(session);
        }
        let local = self.rec.local_sdp.clone();
        let known = local.as_deref().map(section_mids).unwrap_or_default();
        let clash = jingle.contents.iter().find(|c| {
            session.contents.iter().any(|o| o.name == c.name)
                || known.iter().flatten().any(|m| *m == c.name)
        });
        let refusal = match (&local, jingle.contents.is_empty(), clash) {
            (None, _, _) => Some(
                "the call was resumed after a restart without its SDP; streams cannot be added"
                    .to_owned(),
            ),
            (_, true, _) => Some("content-add without any <content/>".to_owned()),
            (_, _, Some(c)) => Some(format!("content '{}' exists already", c.name)),
            _ => None,
        };
        if let Some(text) = refusal {
            ctx.error(req, ErrorCondition::BadRequest, &text, None);
            return Phase::Active(session);
        }
        let local = local.unwrap_or_default();
        let (author, _) = self.sdp_roles();
        let origin = SdpOrigin {
            username: local_part(&self.xmpp_peer),
            session_id: 0,
            session_version: 0,
        };
        let offer = sdp::jingle_to_sdp_offer(&jingle.contents, &jingle.groups, author, &origin)
            .map_err(|e| e.to_string())
            .and_then(|added| {
                let version = next_version(&local);
                with_sections_added(&local, &sections(&added).1, version).map_err(|e| e.to_string())
            });
        // XEP-0166 §7.2.1: acknowledged first; a content that cannot be
        // offered is then rejected.
        ctx.result(req);
        match offer {
            Ok(offer) => {
                self.offer_change(ctx, &mut session, Ok(offer), Change::Add(jingle.contents));
            }
            Err(why) => self.content_rejected(ctx, &jingle.contents, 0, &why),
        }
        Phase::Active(session)
    }

    /// The SIP peer answered our offer of added streams: each one it took
    /// gets content-accept with its answer, each one it declined (port 0)
    /// content-reject.
    pub(super) fn content_added(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        adding: Vec<Content>,
        answer: Option<String>,
    ) {
        let (_, sip_author) = self.sdp_roles();
        let mut offered = session.contents.clone();
        offered.extend(adding.iter().cloned());
        let mapped = answer
            .as_deref()
            .map(|a| sdp::sdp_answer_to_jingle(a, &offered, sip_author));
        let accepted: Vec<Content> = match mapped {
            Some(Ok(m)) => m
                .contents
                .into_iter()
                .filter(|c| adding.iter().any(|a| a.name == c.name))
                .collect(),
            _ => Vec::new(),
        };
        let (taken, declined): (Vec<Content>, Vec<Content>) = adding
            .into_iter()
            .partition(|a| accepted.iter().any(|c| c.name == a.name));
        if !accepted.is_empty() {
            let mut j = self.new_jingle(Action::ContentAccept);
            j.contents = accepted
                .into_iter()
                .map(|mut c| {
                    if let Some(o) = taken.iter().find(|o| o.name == c.name) {
                        c.creator = o.creator;
                    }
                    c
                })
                .collect();
            self.send_jingle(ctx, IqPurpose::Info, &j);
        }
        if !declined.is_empty() {
            self.content_rejected(
                ctx,
                &declined,
                200,
                "the SIP peer declined the stream (port 0)",
            );
        }
        session.contents.extend(taken);
    }

    /// content-reject for contents the SIP side did not take.
    pub(super) fn content_rejected(
        &mut self,
        ctx: &mut Ctx<'_>,
        contents: &[Content],
        status: u16,
        why: &str,
    ) {
        let mut j = self.new_jingle(Action::ContentReject);
        j.contents = contents
            .iter()
            .map(|c| {
                let mut bare = Content::new(c.name.clone());
                bare.creator = c.creator;
                bare
            })
            .collect();
        j.reason = Some(Reason {
            condition: ReasonCondition::FailedApplication,
            text: Some(why.to_owned()),
            sip_status: (status != 0).then_some(status),
            other: Vec::new(),
        });
        self.send_jingle(ctx, IqPurpose::Info, &j);
    }

    /// content-remove: the streams are set to port 0 toward SIP; removing
    /// the last one ends the session (XEP-0166 §7.2.6).
    pub(super) fn xmpp_content_remove(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        if self.busy(ctx, req, &session) {
            return Phase::Active(session);
        }
        let names: Vec<String> = jingle.contents.iter().map(|c| c.name.clone()).collect();
        let local = self.rec.local_sdp.clone().unwrap_or_default();
        let sections = self.section_names(&session, &local);
        let index_of = |name: &String| sections.iter().position(|n| n.as_ref() == Some(name));
        let indexes: Option<Vec<usize>> = names.iter().map(index_of).collect();
        let (Some(indexes), false) = (indexes, names.is_empty()) else {
            ctx.error(
                req,
                ErrorCondition::BadRequest,
                "content-remove names no content of this session",
                None,
            );
            return Phase::Active(session);
        };
        ctx.result(req);
        let live = stox_mapping::sdp::session::stream_directions(&local)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(i, d)| d.is_some() && !indexes.contains(i))
            .count();
        if live == 0 {
            ctx.sip(SipCommand::Bye {
                call: self.key,
                reason: None,
            });
            return self.end(ctx, ReasonCondition::Success, EndedBy::Xmpp, None);
        }
        let version = next_version(&local);
        let offer = with_sections_declined(&local, &indexes, version).map_err(|e| e.to_string());
        self.offer_change(ctx, &mut session, offer, Change::Remove(names));
        Phase::Active(session)
    }

    // ---- streams the SIP peer adds or removes --------------------------

    /// A re-INVITE from SIP that adds streams at the end: content-add to the
    /// XMPP user, the request answered when it decides (`None`), or at once
    /// when nothing of it can be mapped.
    pub(super) fn sip_adds(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        request: RequestId,
        offer: &str,
        added: Vec<usize>,
    ) -> Option<Answer> {
        let (_, sip_author) = self.sdp_roles();
        let mapped = match sdp::sdp_offer_to_jingle(offer, sip_author) {
            Ok(m) => m,
            Err(e) => return Some((488, Some(format!("Not Acceptable Here ({e})")), None)),
        };
        let mids = section_mids(offer);
        let positional = mapped.contents.len() == mids.len();
        let creator = match self.rec.direction {
            Direction::SipToXmpp => Creator::Initiator,
            Direction::XmppToSip => Creator::Responder,
        };
        let contents: Vec<Content> = added
            .iter()
            .filter_map(|&i| match mids.get(i).cloned().flatten() {
                Some(mid) => mapped.contents.iter().find(|c| c.name == mid).cloned(),
                None if positional => mapped.contents.get(i).cloned(),
                None => None,
            })
            .map(|mut c| {
                c.creator = creator;
                c
            })
            .collect();
        if contents.is_empty() {
            return Some(self.answer_added(ctx, session, offer, &added, &[], &[]));
        }
        let mut j = self.new_jingle(Action::ContentAdd);
        j.contents = contents.clone();
        self.send_jingle(ctx, IqPurpose::ContentAdd, &j);
        session.incoming = Some(IncomingChange {
            request,
            offer: offer.to_owned(),
            kind: IncomingKind::Add { added, contents },
        });
        ctx.out.push(Output::SetTimer {
            key: TimerKey::ContentAnswer { call: self.rec.id },
            at: ctx.now.plus_ms(CONTENT_ANSWER_MS),
        });
        None
    }

    /// Our answer to streams the SIP peer added: our SDP unchanged with the
    /// answer's new m= sections after it (port 0 for those not `accepted`),
    /// version + 1.
    fn answer_added(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        offer: &str,
        added: &[usize],
        accepted: &[Content],
        groups: &[Group],
    ) -> Answer {
        let local = self.rec.local_sdp.clone().unwrap_or_default();
        let (xmpp_author, _) = self.sdp_roles();
        let origin = SdpOrigin {
            username: local_part(&self.xmpp_peer),
            session_id: 0,
            session_version: 0,
        };
        let new = if accepted.is_empty() {
            Ok(declined_sections(offer, added))
        } else {
            sdp::jingle_to_sdp_answer(accepted, groups, xmpp_author, &origin, offer)
                .map_err(|e| e.to_string())
                .map(|full| {
                    let secs = sections(&full).1;
                    added.iter().filter_map(|&i| secs.get(i).cloned()).collect()
                })
        };
        let version = next_version(&local);
        let answer = new.and_then(|new: Vec<String>| {
            with_sections_added(&local, &new, version).map_err(|e| e.to_string())
        });
        match answer {
            Ok(answer) => {
                self.rec.local_sdp = Some(answer.clone());
                self.rec.remote_sdp = Some(offer.to_owned());
                session.contents.extend(accepted.iter().cloned());
                self.persist(ctx);
                (200, None, Some(answer))
            }
            Err(why) => (
                488,
                Some(format!(
                    "Not Acceptable Here (the new streams cannot be answered: {why})"
                )),
                None,
            ),
        }
    }

    /// The XMPP user's content-accept or content-reject for the streams the
    /// SIP peer added: the waiting re-INVITE is answered.
    pub(super) fn xmpp_content_answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        let Some(IncomingChange {
            request,
            offer,
            kind: IncomingKind::Add { added, contents },
        }) = session.incoming.take()
        else {
            let phase = Phase::Active(session);
            Self::out_of_order(ctx, req, jingle.action, &phase);
            return phase;
        };
        ctx.result(req);
        let accepted: Vec<Content> = match jingle.action {
            Action::ContentAccept => jingle
                .contents
                .into_iter()
                .filter(|c| contents.iter().any(|p| p.name == c.name))
                .collect(),
            _ => Vec::new(),
        };
        let (status, reason, sdp) =
            self.answer_added(ctx, &mut session, &offer, &added, &accepted, &jingle.groups);
        ctx.sip(SipCommand::Reply {
            call: self.key,
            request,
            status,
            reason,
            sdp,
        });
        Phase::Active(session)
    }

    /// The XMPP user did not answer its part of a SIP re-INVITE (no answer
    /// in time, or an error to our content-add): added streams are
    /// declined, an ICE restart refused.
    pub(super) fn change_unanswered(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        why: &str,
    ) -> Phase {
        let Some(IncomingChange {
            request,
            offer,
            kind,
        }) = session.incoming.take()
        else {
            return Phase::Active(session);
        };
        let (change, (status, reason, sdp)) = match kind {
            IncomingKind::Add { added, .. } => (
                "content-add from SIP",
                self.answer_added(ctx, &mut session, &offer, &added, &[], &[]),
            ),
            IncomingKind::IceRestart => (
                "ICE restart from SIP",
                (
                    488,
                    Some(format!("Not Acceptable Here (ICE restart: {why})")),
                    None,
                ),
            ),
        };
        ctx.sip(SipCommand::Reply {
            call: self.key,
            request,
            status,
            reason,
            sdp,
        });
        ctx.fault(
            self.rec.id,
            crate::types::Fault::ChangeRefused {
                change,
                status,
                reason: why.to_owned(),
            },
        );
        Phase::Active(session)
    }

    /// A re-INVITE from SIP that sets streams to port 0: content-remove to
    /// the XMPP user, and our SDP with those streams at port 0 as answer.
    pub(super) fn sip_removes(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        offer: &str,
        removed: &[usize],
    ) -> Answer {
        let local = self.rec.local_sdp.clone().unwrap_or_default();
        let mids = section_mids(&local);
        let gone: Vec<Content> = removed
            .iter()
            .filter_map(|&i| {
                let name = mids
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| session.contents.get(i).map(|c| c.name.clone()))?;
                let mut c = Content::new(name.clone());
                if let Some(known) = session.contents.iter().find(|k| k.name == name) {
                    c.creator = known.creator;
                }
                Some(c)
            })
            .collect();
        let version = next_version(&local);
        match with_sections_declined(&local, removed, version) {
            Ok(answer) => {
                if !gone.is_empty() {
                    let mut j = self.new_jingle(Action::ContentRemove);
                    j.contents = gone.clone();
                    self.send_jingle(ctx, IqPurpose::Info, &j);
                }
                session
                    .contents
                    .retain(|c| !gone.iter().any(|g| g.name == c.name));
                self.rec.local_sdp = Some(answer.clone());
                self.rec.remote_sdp = Some(offer.to_owned());
                self.persist(ctx);
                (200, None, Some(answer))
            }
            Err(e) => (488, Some(format!("Not Acceptable Here ({e})")), None),
        }
    }
}
