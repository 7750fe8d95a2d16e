//! In-dialog requests from the SIP side (RFC 3261 §12.2.2). Every one
//! reaches the core, which answers it. Until mid-call changes are mapped
//! (hold, video, ICE restart: the mid-call issue), a re-INVITE or UPDATE
//! that changes nothing — a session refresh (RFC 4028): the same SDP, or
//! none — is answered 200 with the current SDP, and anything else with a
//! refusal that says why.

use super::trickle::is_sdpfrag;
use super::{Call, Ctx, Phase};
use crate::types::{RequestId, SipCommand};

/// What a request is answered: status, reason phrase, SDP.
type Answer = (u16, Option<String>, Option<String>);

impl Call {
    pub(super) fn sip_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        phase: Phase,
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
                // RFC 6086 §2, legacy INFO (no Info-Package): accepted and
                // not mapped; XMPP has no counterpart for its bodies.
                _ => (200, None, None),
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
                self.session_refresh(&phase, method, sdp)
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

    /// RFC 4028 / RFC 3264 §8: a refresh keeps the session as it is; the
    /// answer is the SDP we sent last, unchanged (same `o=` version).
    fn session_refresh(&self, phase: &Phase, method: &str, offer: Option<&str>) -> Answer {
        let refused = |why: &str| (488, Some(format!("Not Acceptable Here ({why})")), None);
        if !matches!(phase, Phase::Active(_)) {
            return match (method, offer) {
                ("UPDATE", None) => (200, None, None),
                _ => refused("session changes before the call is set up are not supported"),
            };
        }
        match (method, offer) {
            ("UPDATE", None) => (200, None, None),
            (_, None) => match &self.rec.local_sdp {
                Some(sdp) => (200, None, Some(sdp.clone())),
                None => refused("no SDP to offer: the call was resumed after a restart"),
            },
            (_, Some(offer)) => {
                let unchanged = self.rec.remote_sdp_digest == Some(sdp_digest(offer));
                match (&self.rec.local_sdp, unchanged) {
                    (Some(sdp), true) => (200, None, Some(sdp.clone())),
                    (None, _) => {
                        refused("the call was resumed after a restart; its media cannot change")
                    }
                    (_, false) => refused("mid-call media changes are not supported yet"),
                }
            }
        }
    }

    /// Notes the SDP the SIP peer sent (offer or answer).
    pub(super) fn set_remote_sdp(&mut self, sdp: &str) {
        self.rec.remote_sdp_digest = Some(sdp_digest(sdp));
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

/// FNV-1a over the SDP's lines without the `o=` line (its version may be
/// bumped by a peer that changes nothing else) and without line-ending
/// differences.
pub(crate) fn sdp_digest(sdp: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in sdp
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("o="))
    {
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3264_8_a_refresh_may_bump_the_origin_version_and_change_nothing_else() {
        let a = "v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n";
        let b = "v=0\no=x 1 2 IN IP4 1.2.3.4\ns=-\nm=audio 4000 RTP/AVP 0\n";
        let c = "v=0\r\no=x 1 2 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4002 RTP/AVP 0\r\n";
        assert_eq!(sdp_digest(a), sdp_digest(b));
        assert_ne!(sdp_digest(a), sdp_digest(c));
    }
}
