//! Who sends on each stream: Jingle `senders` (XEP-0166 §7.2.4
//! content-modify) ⇄ per-stream SDP directions (RFC 3264 §6.1, §8.4).
//!
//! - The XMPP user's content-modify: a re-INVITE with our SDP, the named
//!   streams' directions from their new `senders` (role-aware, as in the
//!   offer/answer mapping; while the user holds, not receiving), the
//!   version one up. The session's contents keep the new `senders` once the SIP peer
//!   answers; a hold's resume goes back to them rather than to `sendrecv`.
//! - The SIP peer's offer that changes directions without holding every
//!   stream (e.g. one stream `recvonly`): content-modify to the XMPP user
//!   with the `senders` the offer gives each changed stream; a full hold
//!   stays session-info `<hold/>` (hold.rs), as XMPP clients expect.

use super::{Call, Change, Ctx, IqPurpose, Phase, Session};
use crate::stanza::IqHeader;
use crate::types::Direction;
use stox_mapping::jingle::{Action, Content, Jingle, Senders};
use stox_mapping::sdp::session::{
    MediaDirection, next_version, section_mids, stream_directions, with_directions,
};
use stox_mapping::sdp::{SdpAuthor, direction_for_senders, senders_from_direction};
use stox_mapping::status::ErrorCondition;

impl Call {
    /// Who writes the SDP the gateway sends (the XMPP user's role).
    fn our_author(&self) -> SdpAuthor {
        match self.rec.direction {
            Direction::XmppToSip => SdpAuthor::Initiator,
            Direction::SipToXmpp => SdpAuthor::Responder,
        }
    }

    /// The content name of each m= section of our SDP (its mid, else the
    /// session's content at that position).
    pub(super) fn section_names(&self, session: &Session, local: &str) -> Vec<Option<String>> {
        section_mids(local)
            .into_iter()
            .enumerate()
            .map(|(i, mid)| mid.or_else(|| session.contents.get(i).map(|c| c.name.clone())))
            .collect()
    }

    /// The directions our SDP has when nobody holds: each live stream as
    /// its content's `senders` say (sendrecv when unknown).
    pub(super) fn base_directions(
        &self,
        session: &Session,
        local: &str,
    ) -> Result<Vec<Option<MediaDirection>>, String> {
        let dirs = stream_directions(local).map_err(|e| e.to_string())?;
        let names = self.section_names(session, local);
        let author = self.our_author();
        Ok(dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.map(|_| {
                    let senders = names
                        .get(i)
                        .cloned()
                        .flatten()
                        .and_then(|n| session.contents.iter().find(|c| c.name == n))
                        .map_or(Senders::Both, |c| c.senders);
                    MediaDirection::parse(direction_for_senders(senders, author))
                        .unwrap_or(MediaDirection::SendRecv)
                })
            })
            .collect())
    }

    /// content-modify from the XMPP user: new `senders` for some contents.
    pub(super) fn xmpp_content_modify(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        req: &IqHeader,
        jingle: Jingle,
    ) -> Phase {
        if self.busy(ctx, req, &session) {
            return Phase::Active(session);
        }
        let Some(local) = self.rec.local_sdp.clone() else {
            ctx.error(
                req,
                ErrorCondition::UnexpectedRequest,
                "the call was resumed after a restart; its media cannot change",
                None,
            );
            return Phase::Active(session);
        };
        let names = self.section_names(&session, &local);
        let mut wanted: Vec<(usize, Senders)> = Vec::new();
        for c in &jingle.contents {
            match names
                .iter()
                .position(|n| n.as_deref() == Some(c.name.as_str()))
            {
                Some(i) => wanted.push((i, c.senders)),
                None => {
                    ctx.error(
                        req,
                        ErrorCondition::BadRequest,
                        &format!(
                            "content-modify names no content '{}' of this session",
                            c.name
                        ),
                        None,
                    );
                    return Phase::Active(session);
                }
            }
        }
        if wanted.is_empty() {
            ctx.error(
                req,
                ErrorCondition::BadRequest,
                "content-modify without a content",
                None,
            );
            return Phase::Active(session);
        }
        let mut next = session.contents.clone();
        for (i, senders) in &wanted {
            let Some(name) = names[*i].as_deref() else {
                continue;
            };
            match next.iter_mut().find(|c| c.name == name) {
                Some(c) => c.senders = *senders,
                None => {
                    let mut c = Content::new(name.to_owned());
                    c.senders = *senders;
                    next.push(c);
                }
            }
        }
        let current = stream_directions(&local).unwrap_or_default();
        let planned = Session {
            contents: next.clone(),
            ..Session::default()
        };
        let wanted_dirs = match self.base_directions(&planned, &local) {
            Ok(base) => base
                .into_iter()
                .map(|d| {
                    d.map(|d| match self.rec.hold.xmpp {
                        true => d.without_receiving(),
                        false => d,
                    })
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                ctx.error(
                    req,
                    ErrorCondition::BadRequest,
                    &format!("our SDP: {e}"),
                    None,
                );
                return Phase::Active(session);
            }
        };
        ctx.result(req);
        if wanted_dirs == current {
            session.contents = next;
            return Phase::Active(session);
        }
        let version = next_version(&local);
        let sdp = with_directions(&local, &wanted_dirs, version).map_err(|e| e.to_string());
        self.offer_change(ctx, &mut session, sdp, Change::Senders(next));
        Phase::Active(session)
    }

    /// The SIP peer's offer changed the directions of some streams (from
    /// `before`, its last SDP's, or sendrecv after a hold) without holding
    /// them all: content-modify with their new `senders`.
    pub(super) fn sip_changes_senders(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        before: &[Option<MediaDirection>],
        offered: &[Option<MediaDirection>],
    ) {
        let local = self.rec.local_sdp.clone().unwrap_or_default();
        let names = self.section_names(session, &local);
        let sip_author = match self.our_author() {
            SdpAuthor::Initiator => SdpAuthor::Responder,
            SdpAuthor::Responder => SdpAuthor::Initiator,
        };
        let mut changed = Vec::new();
        for (i, d) in offered.iter().enumerate() {
            let (Some(d), Some(Some(name))) = (d, names.get(i)) else {
                continue;
            };
            if before.get(i).copied().flatten() == Some(*d) {
                continue;
            }
            let Some(senders) = senders_from_direction(d.as_str(), sip_author) else {
                continue;
            };
            let content = match session.contents.iter_mut().find(|c| &c.name == name) {
                Some(c) => c,
                None => {
                    session.contents.push(Content::new(name.clone()));
                    session.contents.last_mut().expect("just pushed")
                }
            };
            content.senders = senders;
            let mut c = Content::new(name.clone());
            c.creator = content.creator;
            c.senders = senders;
            changed.push(c);
        }
        if changed.is_empty() {
            return;
        }
        let mut j = self.new_jingle(Action::ContentModify);
        j.contents = changed;
        self.send_jingle(ctx, IqPurpose::Info, &j);
    }
}
