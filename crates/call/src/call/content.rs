//! Streams added and removed by the XMPP user in an answered call: XEP-0166
//! content-add / content-remove ⇄ a re-INVITE that adds an m= section at the
//! end (RFC 3264 §8.1) or sets one to port 0 (§8.2), our SDP otherwise
//! unchanged, its BUNDLE group kept consistent (RFC 8843) and its `o=`
//! version one up. The SIP answer decides: content-accept with the mapped
//! answer, or content-reject (port 0, or a refused re-INVITE).

use super::{Call, Change, Ctx, IqPurpose, Phase, Reoffer, Session, local_part};
use crate::stanza::{AppError, IqHeader};
use crate::types::{Direction, EndedBy, OfferMethod, SipCommand};
use stox_mapping::jingle::{Action, Content, Jingle, Reason};
use stox_mapping::sdp::session::{
    origin_version, section_mids, sections, with_sections_added, with_sections_declined,
};
use stox_mapping::sdp::{self, SdpAuthor, SdpOrigin};
use stox_mapping::status::{ErrorCondition, ReasonCondition};

impl Call {
    /// The roles in SDP: the XMPP user's, then the SIP peer's.
    fn sdp_roles(&self) -> (SdpAuthor, SdpAuthor) {
        match self.rec.direction {
            Direction::XmppToSip => (SdpAuthor::Initiator, SdpAuthor::Responder),
            Direction::SipToXmpp => (SdpAuthor::Responder, SdpAuthor::Initiator),
        }
    }

    /// Refuses a content action while an offer of ours is in flight.
    fn busy(&self, ctx: &mut Ctx<'_>, req: &IqHeader, session: &Session) -> bool {
        if session.offering.is_none() {
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
                let version = origin_version(&local).unwrap_or(0) + 1;
                with_sections_added(&local, &sections(&added).1, version).map_err(|e| e.to_string())
            });
        // XEP-0166 §7.2.1: acknowledged first; a content that cannot be
        // offered is then rejected.
        ctx.result(req);
        match offer {
            Ok(offer) => {
                ctx.sip(SipCommand::Reoffer {
                    call: self.key,
                    method: OfferMethod::Invite,
                    sdp: Some(offer.clone()),
                });
                session.offering = Some(Reoffer {
                    sdp: Some(offer),
                    change: Change::Add(jingle.contents),
                });
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
        let mids = section_mids(&local);
        let index_of = |name: &String| {
            mids.iter()
                .position(|m| m.as_ref() == Some(name))
                .or_else(|| session.contents.iter().position(|c| &c.name == name))
        };
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
        let version = origin_version(&local).unwrap_or(0) + 1;
        match with_sections_declined(&local, &indexes, version) {
            Ok(offer) => {
                ctx.sip(SipCommand::Reoffer {
                    call: self.key,
                    method: OfferMethod::Invite,
                    sdp: Some(offer.clone()),
                });
                session.offering = Some(Reoffer {
                    sdp: Some(offer),
                    change: Change::Remove(names),
                });
            }
            Err(e) => ctx.fault(
                self.rec.id,
                crate::types::Fault::ChangeRefused {
                    change: "content-remove",
                    status: 0,
                    reason: e.to_string(),
                },
            ),
        }
        Phase::Active(session)
    }
}
