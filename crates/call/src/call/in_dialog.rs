//! In-dialog requests from the SIP side (RFC 3261 §12.2.2). Every one
//! reaches the core, which answers it. A re-INVITE or UPDATE that changes
//! nothing — a session refresh (RFC 4028): the same SDP, or none — is
//! answered 200 with the current SDP; one that holds or resumes (only the
//! stream directions change) is answered and mapped (hold.rs); other media
//! changes (video, ICE restart) are refused with a reason until they are
//! mapped.

use super::trickle::is_sdpfrag;
use super::{Call, Ctx, Phase};
use crate::types::{RequestId, SipCommand};
use stox_mapping::sdp::session::{
    MediaDirection, StreamChange, holds, ice_restart, next_version, same_media_for, stream_change,
    stream_directions, with_directions,
};

/// What a request is answered: status, reason phrase, SDP.
type Answer = (u16, Option<String>, Option<String>);

impl Call {
    pub(super) fn sip_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut phase: Phase,
        request: RequestId,
        method: &str,
        content_type: Option<String>,
        body: Option<String>,
    ) -> Phase {
        let (status, reason, sdp) = match method {
            "INFO" => match (content_type.as_deref(), body.as_deref()) {
                (Some(ct), Some(body)) if is_sdpfrag(ct) => {
                    match self.trickle_in(ctx, &phase, body) {
                        Ok(()) => (200, None, None),
                        Err((status, why)) => (status, Some(refusal_phrase(status, &why)), None),
                    }
                }
                // An INFO without a body (a keep-alive probe) changes nothing.
                (_, None) => (200, None, None),
                (_, Some(b)) if b.trim().is_empty() => (200, None, None),
                // RFC 6086 legacy INFO with another body (DTMF as
                // application/dtmf-relay or application/dtmf …): XMPP has no
                // counterpart, and a 200 would tell the sender the digits
                // arrived. 415, with the SIP layer's Accept header, tells it
                // they did not; DTMF goes as RFC 4733 telephone-event in the
                // media, which both sides negotiate.
                (ct, Some(_)) => (
                    415,
                    Some(format!(
                        "Unsupported Media Type ({} in INFO is not mapped; send DTMF as RFC 4733 telephone-event)",
                        ct.unwrap_or("a body without Content-Type")
                    )),
                    None,
                ),
            },
            "OPTIONS" => (200, None, None),
            "PRACK" => (
                481,
                Some("Call/Transaction Does Not Exist (no reliable provisional pending)".into()),
                None,
            ),
            "INVITE" | "UPDATE" => {
                let sdp = content_type
                    .as_deref()
                    .filter(|ct| is_sdp(ct))
                    .and(body.as_deref());
                match self.session_offer(ctx, &mut phase, request, method, sdp) {
                    Some(answer) => answer,
                    // Answered once the XMPP user decides (content.rs).
                    None => return phase,
                }
            }
            other => (
                501,
                Some(format!("Not Implemented ({other} in a dialog)")),
                None,
            ),
        };
        ctx.sip(SipCommand::Reply {
            call: self.key,
            request,
            status,
            reason,
            sdp,
        });
        phase
    }

    /// A new offer (or a request for one) from the SIP peer in a dialog.
    /// RFC 4028 / RFC 3264 §8: a refresh keeps the session as it is and is
    /// answered with the SDP we sent last, unchanged (same `o=` version); a
    /// hold or resume (only stream directions change) is answered with the
    /// answering directions and the version one up, and the XMPP user is
    /// told (hold.rs). Anything else is refused with a reason.
    fn session_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: &mut Phase,
        request: RequestId,
        method: &str,
        offer: Option<&str>,
    ) -> Option<Answer> {
        let refused = |why: &str| Some((488, Some(format!("Not Acceptable Here ({why})")), None));
        let Phase::Active(session) = phase else {
            return match (method, offer) {
                ("UPDATE", None) => Some((200, None, None)),
                _ => refused("session changes before the call is set up are not supported"),
            };
        };
        let Some(offer) = offer else {
            // An UPDATE without SDP refreshes the session; a re-INVITE
            // without SDP asks for our offer (the ACK carries the answer).
            return match (method, &self.rec.local_sdp) {
                ("UPDATE", _) => Some((200, None, None)),
                (_, Some(sdp)) => Some((200, None, Some(sdp.clone()))),
                (_, None) => refused("no SDP to offer: the call was resumed after a restart"),
            };
        };
        let (Some(local), Some(remote)) = (self.rec.local_sdp.clone(), &self.rec.remote_sdp) else {
            return refused("the call was resumed after a restart; its media cannot change");
        };
        if ice_restart(remote, offer) && method == "INVITE" {
            return self.sip_ice_restart(ctx, session, request, offer);
        }
        if !same_media_for(remote, offer, &local) {
            return match stream_change(remote, offer) {
                Some(StreamChange::Added(added)) if method == "INVITE" => {
                    self.sip_adds(ctx, session, request, offer, added)
                }
                Some(StreamChange::Removed(removed)) => {
                    Some(self.sip_removes(ctx, session, offer, &removed))
                }
                _ => refused(
                    "mid-call media changes other than hold, resume, ICE restart and adding or removing streams are not supported yet",
                ),
            };
        }
        let offered = match stream_directions(offer) {
            Ok(d) => d,
            Err(e) => return Some((400, Some(format!("Bad Request (SDP: {e})")), None)),
        };
        let ours = match stream_directions(&local) {
            Ok(d) if d.len() == offered.len() => d,
            _ => return refused("the offer does not match the session's streams"),
        };
        let xmpp_holds = self.rec.hold.xmpp;
        // Who sends on each stream for the XMPP user (content-modify).
        let base = self
            .base_directions(session, &local)
            .unwrap_or_else(|_| vec![Some(MediaDirection::SendRecv); offered.len()]);
        let answering: Vec<_> = offered
            .iter()
            .zip(&base)
            .map(|(d, b)| {
                d.map(|d| {
                    let d = d.answer().and(b.unwrap_or(MediaDirection::SendRecv));
                    match xmpp_holds {
                        true => d.without_receiving(),
                        false => d,
                    }
                })
            })
            .collect();
        let answer = if answering == ours {
            local
        } else {
            let version = next_version(&local);
            match with_directions(&local, &answering, version) {
                Ok(sdp) => sdp,
                Err(e) => return refused(&format!("our SDP cannot be answered again: {e}")),
            }
        };
        let sip_holds = holds(&offered);
        let before = match self.rec.hold.sip {
            true => vec![Some(MediaDirection::SendRecv); offered.len()],
            false => stream_directions(remote).unwrap_or_default(),
        };
        let changed = self.rec.local_sdp.as_deref() != Some(answer.as_str())
            || self.rec.remote_sdp.as_deref() != Some(offer)
            || sip_holds != self.rec.hold.sip;
        self.rec.local_sdp = Some(answer.clone());
        self.rec.remote_sdp = Some(offer.to_owned());
        if sip_holds != self.rec.hold.sip {
            self.rec.hold.sip = sip_holds;
            self.send_session_info(ctx, if sip_holds { "hold" } else { "active" });
        }
        if !sip_holds {
            self.sip_changes_senders(ctx, session, &before, &offered);
        }
        if changed {
            self.persist(ctx);
        }
        Some((200, None, Some(answer)))
    }

    /// Notes the SDP the SIP peer sent (offer or answer).
    pub(super) fn set_remote_sdp(&mut self, sdp: &str) {
        self.rec.remote_sdp = Some(sdp.to_owned());
    }
}

/// The reason phrase of a refusal: the standard phrase and why.
fn refusal_phrase(status: u16, why: &str) -> String {
    let phrase = match status {
        400 => "Bad Request",
        _ => "Not Acceptable Here",
    };
    format!("{phrase} ({why})")
}

fn is_sdp(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp"))
}
