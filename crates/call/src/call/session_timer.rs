//! Session timers (RFC 4028 §10): the SIP layer negotiates the interval and
//! the refresher with each 2xx ([`SipEvent::SessionTimer`]); here the core
//! refreshes when it is the refresher (a re-INVITE with our SDP unchanged,
//! same `o=` version — or an UPDATE without SDP when it has none) every half
//! interval, and ends the call when the session expires: BYE with a
//! `Reason` header to SIP and session-terminate `<expired/>` to XMPP.
//!
//! [`SipEvent::SessionTimer`]: crate::types::SipEvent::SessionTimer

use super::{Call, Change, Ctx, Phase, Reoffer, Session};
use crate::types::{EndedBy, OfferMethod, Output, Refresher, SessionTimer, SipCommand, TimerKey};
use stox_mapping::status::ReasonCondition;

impl Call {
    /// A timer was negotiated (or none): the timers of the old one go stale.
    pub(super) fn session_timer(
        &mut self,
        ctx: &mut Ctx<'_>,
        session: &mut Session,
        timer: Option<SessionTimer>,
    ) {
        session.timer_epoch = session.timer_epoch.wrapping_add(1);
        // The first one is in the snapshot already (it came with the 2xx
        // whose row stored the dialog, or with a restored dialog); a change
        // later rewrites the row, so a restart keeps the timer in force.
        let changed = session.timer.is_some() && session.timer != timer;
        session.timer = timer;
        if changed {
            self.persist(ctx);
        }
        let Some(timer) = timer else {
            return;
        };
        let (call, epoch) = (self.rec.id, session.timer_epoch);
        let interval_ms = u64::from(timer.interval) * 1000;
        let mut set = |key, after_ms| {
            ctx.out.push(Output::SetTimer {
                key,
                at: ctx.now.plus_ms(after_ms),
            });
        };
        match timer.refresher {
            Refresher::Us => {
                set(TimerKey::SessionRefresh { call, epoch }, interval_ms / 2);
                // If no refresh of ours gets through, the session ends when
                // the peer would end it.
                set(TimerKey::SessionExpiry { call, epoch }, interval_ms);
            }
            Refresher::Peer => {
                // §10: BYE at the interval minus a third of it, at most 32 s.
                let margin = u64::from((timer.interval / 3).min(32)) * 1000;
                set(
                    TimerKey::SessionExpiry { call, epoch },
                    interval_ms.saturating_sub(margin),
                );
            }
        }
    }

    /// Half the interval is over and we are the refresher.
    pub(super) fn refresh_due(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut session: Session,
        epoch: u32,
    ) -> Phase {
        if epoch == session.timer_epoch && session.offering.is_none() {
            self.refresh(ctx, &mut session);
        }
        // An offer in flight refreshes the session when it is answered.
        Phase::Active(session)
    }

    /// Sends the refresh.
    pub(super) fn refresh(&mut self, ctx: &mut Ctx<'_>, session: &mut Session) {
        let sdp = self.rec.local_sdp.clone();
        let method = if sdp.is_some() {
            OfferMethod::Invite
        } else {
            OfferMethod::Update
        };
        ctx.sip(SipCommand::Reoffer {
            call: self.key,
            method,
            sdp: sdp.clone(),
        });
        session.offering = Some(Reoffer {
            sdp,
            change: Change::Refresh,
        });
    }

    /// No refresh in time: the session is over on both sides.
    pub(super) fn session_expired(&mut self, ctx: &mut Ctx<'_>) -> Phase {
        let text = "the SIP session was not refreshed in time (RFC 4028)";
        ctx.sip(SipCommand::Bye {
            call: self.key,
            reason: Some(format!("SIP;cause=408;text=\"{text}\"")),
        });
        let condition = ReasonCondition::Expired;
        self.terminate_xmpp(ctx, condition, None, Some(text.to_owned()));
        self.rec.end_detail = Some(text.to_owned());
        self.end(ctx, condition, EndedBy::Gateway, None)
    }
}
