//! Hold and resume (RFC 3264 §8.4 ⇄ XEP-0167 §7), both ways.
//!
//! - The SIP peer offers streams it does not receive (`sendonly`,
//!   `inactive`, or the old `c=0.0.0.0`): the XMPP user gets session-info
//!   `<hold/>`; an offer that receives again: `<active/>`. The answer
//!   (in_dialog.rs) is our last SDP with the answering directions and the
//!   `o=` version one up.
//! - The XMPP user sends session-info `<hold/>`: the SIP peer gets a
//!   re-INVITE with our last SDP, no stream receiving; `<active/>` or
//!   `<unhold/>`: the same with each stream as its `senders` say, `sendrecv`
//!   unless a content-modify changed it (senders.rs; RFC 3264 §8.4: the
//!   offerer resumes with what it wants, whatever the other side does). One offer at a
//!   time: a wish that comes while one is in flight is offered after it.
//! - Glare: an offer of ours refused with 491 is offered again after the
//!   RFC 3261 §14.1 wait (2.1–4 s when we own the Call-ID, 0–2 s when the
//!   peer does); the peer's offer that crosses ours gets 491 from the SIP
//!   layer. A 481 or 408 means the dialog is gone (RFC 5057): the call
//!   ends. Any other refusal leaves the session as it was (a fault is
//!   logged).
//! - `<mute/>` / `<unmute/>` are acknowledged and not mapped: a muted
//!   XMPP user simply sends silence or nothing, and SIP has no signal for it
//!   (a direction change would tell the SIP peer to stop sending too).

use super::{Call, Change, Ctx, IqPurpose, Phase, Reoffer, Session};
use crate::types::{Direction, EndedBy, Fault, OfferMethod, Output, SipCommand, TimerKey};
use stox_mapping::jingle::{Action, Jingle};
use stox_mapping::sdp::session::{next_version, with_directions};
use stox_mapping::status::ReasonCondition;

/// What a session-info asks of the hold state: `Some(true)` hold,
/// `Some(false)` resume, `None` nothing.
pub(super) fn hold_wish(jingle: &Jingle) -> Option<bool> {
    jingle
        .info
        .iter()
        .filter(|el| el.ns() == stox_mapping::ns::JINGLE_RTP_INFO)
        .find_map(|el| match el.name() {
            "hold" => Some(true),
            "unhold" | "active" => Some(false),
            _ => None,
        })
}

impl Call {
    /// Tells the XMPP user about the SIP side's hold (`hold` or `active`).
    pub(super) fn send_session_info(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        let mut j = self.new_jingle(Action::SessionInfo);
        j.info.push(minidom::Element::bare(
            name,
            stox_mapping::ns::JINGLE_RTP_INFO,
        ));
        self.send_jingle(ctx, IqPurpose::Info, &j);
    }

    /// The XMPP user put the call on hold (`hold`) or resumed it.
    pub(super) fn xmpp_hold(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        hold: bool,
    ) -> Phase {
        if session.offering.is_some() {
            session.next_hold = Some(hold);
            return Phase::Active(session);
        }
        session.next_hold = None;
        if hold != self.rec.hold.xmpp {
            self.offer_hold(ctx, &mut session, hold);
        }
        Phase::Active(session)
    }

    /// Sends the re-INVITE that holds or resumes the SIP side.
    fn offer_hold(&mut self, ctx: &mut Ctx<'_>, session: &mut Session, hold: bool) {
        let change = if hold { "hold" } else { "resume" };
        let Some(local) = self.rec.local_sdp.as_deref() else {
            ctx.fault(
                self.rec.id,
                Fault::ChangeRefused {
                    change,
                    status: 0,
                    reason: "no SDP of ours to offer again (resumed after a restart)".into(),
                },
            );
            return;
        };
        // Resuming goes back to who sends on each stream (content-modify,
        // senders.rs), holding stops receiving on top of it.
        let sdp = self
            .base_directions(session, local)
            .map_err(|e| e.to_string())
            .and_then(|base| {
                let dirs: Vec<_> = base
                    .iter()
                    .map(|d| d.map(|d| if hold { d.without_receiving() } else { d }))
                    .collect();
                with_directions(local, &dirs, next_version(local)).map_err(|e| e.to_string())
            });
        let sdp = sdp.map_err(|e| format!("our last SDP cannot be offered again: {e}"));
        self.offer_change(ctx, session, sdp, Change::Hold(hold));
    }

    /// Offers our new SDP for `change` in a re-INVITE (one offer at a time:
    /// the caller checked none is in flight); an SDP that could not be
    /// built is a refusal in the log, and the session stays as it was.
    pub(super) fn offer_change(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        sdp: Result<String, String>,
        change: Change,
    ) {
        match sdp {
            Ok(sdp) => {
                ctx.sip(SipCommand::Reoffer {
                    call: self.key,
                    method: OfferMethod::Invite,
                    sdp: Some(sdp.clone()),
                });
                session.offering = Some(Reoffer {
                    sdp: Some(sdp),
                    change,
                });
            }
            Err(reason) => ctx.fault(
                self.rec.id,
                Fault::ChangeRefused {
                    change: change.name(),
                    status: 0,
                    reason,
                },
            ),
        }
    }

    /// The SIP peer took our offer: it is the session now.
    pub(super) fn reoffer_answered(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        answer: Option<String>,
    ) -> Phase {
        let Some(offer) = session.offering.take() else {
            return Phase::Active(session);
        };
        if offer.sdp.is_some() {
            self.rec.local_sdp = offer.sdp;
        }
        if answer.is_some() {
            self.rec.remote_sdp.clone_from(&answer);
        }
        match offer.change {
            Change::Hold(hold) => self.rec.hold.xmpp = hold,
            Change::Refresh => {}
            Change::Add(contents) => self.content_added(ctx, &mut session, contents, answer),
            Change::Remove(names) => session.contents.retain(|c| !names.contains(&c.name)),
            Change::IceRestart => self.ice_restarted(ctx, &session, answer.as_deref()),
            Change::Senders(contents) => session.contents = contents,
        }
        self.persist(ctx);
        if let Some(next) = session.next_hold.take()
            && next != self.rec.hold.xmpp
        {
            self.offer_hold(ctx, &mut session, next);
        }
        Phase::Active(session)
    }

    /// The SIP peer refused our offer.
    pub(super) fn reoffer_refused(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        status: u16,
        reason: String,
    ) -> Phase {
        let Some(offer) = session.offering.take() else {
            return Phase::Active(session);
        };
        match status {
            491 => {
                // Glare: the same wish again after the wait, unless a newer
                // one came meanwhile.
                match offer.change {
                    Change::Refresh => session.retry_refresh = true,
                    Change::Hold(hold) => {
                        session.next_hold = Some(session.next_hold.unwrap_or(hold));
                    }
                    // The XMPP user decides whether to add it again.
                    Change::Add(contents) => {
                        self.content_rejected(ctx, &contents, status, &reason);
                        return Phase::Active(session);
                    }
                    change @ (Change::Remove(_) | Change::IceRestart | Change::Senders(_)) => {
                        ctx.fault(
                            self.rec.id,
                            Fault::ChangeRefused {
                                change: change.name(),
                                status,
                                reason,
                            },
                        );
                        return Phase::Active(session);
                    }
                }
                let wait = self.glare_wait(ctx);
                ctx.out.push(Output::SetTimer {
                    key: TimerKey::ReofferRetry { call: self.rec.id },
                    at: ctx.now.plus_ms(wait),
                });
                Phase::Active(session)
            }
            481 | 408 => {
                // RFC 5057 §5.1: the dialog is gone.
                if status == 408 {
                    ctx.sip(SipCommand::Bye {
                        call: self.key,
                        reason: None,
                    });
                }
                let condition = ReasonCondition::ConnectivityError;
                let text = format!("the SIP peer answered a re-INVITE {status} {reason}");
                self.terminate_xmpp(ctx, condition, Some(status), Some(text.clone()));
                self.rec.end_detail = Some(text);
                self.end(ctx, condition, EndedBy::Gateway, None)
            }
            _ => {
                session.next_hold = None;
                let change = offer.change.name();
                if let Change::Add(contents) = &offer.change {
                    self.content_rejected(ctx, contents, status, &reason);
                }
                ctx.fault(
                    self.rec.id,
                    Fault::ChangeRefused {
                        change,
                        status,
                        reason,
                    },
                );
                Phase::Active(session)
            }
        }
    }

    /// The wait after a 491 is over.
    pub(super) fn retry_reoffer(&mut self, ctx: &mut Ctx<'_>, mut session: Session) -> Phase {
        if session.offering.is_some() {
            return Phase::Active(session);
        }
        match session.next_hold.take() {
            Some(hold) if hold != self.rec.hold.xmpp => self.offer_hold(ctx, &mut session, hold),
            _ if std::mem::take(&mut session.retry_refresh) => self.refresh(ctx, &mut session),
            _ => {}
        }
        Phase::Active(session)
    }

    /// RFC 3261 §14.1: 2.1–4 s when we own the Call-ID (we placed the call),
    /// 0–2 s when the peer does, in steps of 10 ms. Drawn from the Call-ID,
    /// the time and the instance salt (the core is pure, so no RNG).
    fn glare_wait(&self, ctx: &Ctx<'_>) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ ctx.cfg.token_salt ^ ctx.now.0;
        for b in self.rec.sip_call_id.as_str().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 29;
        match self.rec.direction {
            Direction::XmppToSip => 2_100 + (h % 191) * 10,
            Direction::SipToXmpp => (h % 201) * 10,
        }
    }
}
