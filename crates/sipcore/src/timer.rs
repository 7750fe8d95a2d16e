//! Session timers (RFC 4028): the header side. The SIP layer offers and
//! answers `Session-Expires` / `Min-SE`, refuses too short an interval with
//! 422, and tells the core what each 2xx negotiated
//! ([`SipEvent::SessionTimer`]); the core refreshes or ends the call.

use crate::api::{CallKey, Refresher, SessionTimer, SipEvent};
use crate::engine::Sip;
use crate::msg::{self, HeaderName, Request, Response};

/// RFC 4028 §4: nobody may ask for less than 90 s; the gateway's `min_se`
/// may be set lower only for tests.
pub const RFC_MIN_SE: u32 = 90;

/// `Session-Expires: delta-seconds[;refresher=uac|uas]` (compact `x`).
pub(crate) fn session_expires(headers: &msg::Headers) -> Option<(u32, Option<String>)> {
    let value = msg::value(headers, &HeaderName::SessionExpires)?;
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

/// `Min-SE: delta-seconds`.
pub(crate) fn min_se(headers: &msg::Headers) -> Option<u32> {
    msg::value(headers, &HeaderName::MinSe)?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn says_timer(headers: &msg::Headers) -> bool {
    msg::tokens(headers, &HeaderName::Supported)
        .iter()
        .chain(msg::tokens(headers, &HeaderName::Require).iter())
        .any(|t| t == "timer")
}

impl Sip {
    /// The option tags of our requests' `Supported`.
    pub(crate) fn supported_tags(&self) -> String {
        if self.timers_on() {
            "100rel, timer".to_owned()
        } else {
            "100rel".to_owned()
        }
    }

    /// Are session timers on (`session_expires` > 0)?
    pub(crate) fn timers_on(&self) -> bool {
        self.cfg.session_expires > 0
    }

    /// RFC 4028 §8.1 / §9: a request whose Session-Expires is below our
    /// Min-SE gets 422 with it. Returns the refusal to send.
    pub(crate) fn too_brief(&self, req: &Request) -> Option<Response> {
        if !self.timers_on() {
            return None;
        }
        let (secs, _) = session_expires(&req.headers)?;
        if secs >= self.cfg.min_se {
            return None;
        }
        let mut resp = self.answer(req, 422, "Session Interval Too Small", None);
        if let Ok(h) = msg::header(HeaderName::MinSe, self.cfg.min_se.to_string()) {
            resp.headers.push(h);
        }
        Some(resp)
    }

    /// The headers that ask for a session timer in a request of ours: in
    /// the INVITE our interval (the callee picks the refresher), in a
    /// refresh or re-offer the current interval with us as refresher.
    pub(crate) fn timer_request_headers(&self, call: Option<CallKey>, req: &mut Request) {
        if !self.timers_on() {
            return;
        }
        let current = call
            .and_then(|c| self.calls.get(&c))
            .and_then(|c| c.session_timer)
            .map(|t| t.interval);
        let se = match current {
            Some(secs) => format!("{secs};refresher=uac"),
            None => self.cfg.session_expires.to_string(),
        };
        for (name, value) in [
            (HeaderName::SessionExpires, se),
            (HeaderName::MinSe, self.cfg.min_se.to_string()),
        ] {
            if let Ok(h) = msg::header(name, value) {
                req.headers.push(h);
            }
        }
    }

    /// Our 2xx to an INVITE or UPDATE `req` (RFC 4028 §9): the interval it
    /// asked for (never above ours, never below its or our Min-SE) or ours;
    /// the refresher it named, else the UAC when it supports timers, else
    /// us. Adds the headers and tells the core.
    pub(crate) fn answer_timer(&mut self, call: CallKey, req: &Request, resp: &mut Response) {
        if !self.timers_on() {
            return;
        }
        let supports = says_timer(&req.headers);
        let asked = session_expires(&req.headers);
        let floor = min_se(&req.headers).unwrap_or(0).max(self.cfg.min_se);
        let interval = match &asked {
            Some((secs, _)) => (*secs).min(self.cfg.session_expires).max(floor),
            None => self.cfg.session_expires.max(floor),
        };
        let uac_refreshes = match asked.as_ref().and_then(|(_, r)| r.as_deref()) {
            Some("uas") => false,
            Some("uac") => supports,
            _ => supports,
        };
        let refresher = if uac_refreshes { "uac" } else { "uas" };
        let mut headers = vec![
            (
                HeaderName::SessionExpires,
                format!("{interval};refresher={refresher}"),
            ),
            (HeaderName::Supported, "timer".to_owned()),
        ];
        if uac_refreshes {
            headers.push((HeaderName::Require, "timer".to_owned()));
        }
        for (name, value) in headers {
            if let Ok(h) = msg::header(name, value) {
                resp.headers.push(h);
            }
        }
        self.set_timer(
            call,
            Some(SessionTimer {
                interval,
                refresher: if uac_refreshes {
                    Refresher::Peer
                } else {
                    Refresher::Us
                },
            }),
        );
    }

    /// A 2xx to our INVITE or UPDATE: the timer it sets (RFC 4028 §7.2: none
    /// without Session-Expires).
    pub(crate) fn answered_timer(&mut self, call: CallKey, resp: &Response) {
        if !self.timers_on() {
            return;
        }
        let timer = session_expires(&resp.headers).map(|(interval, refresher)| SessionTimer {
            interval,
            refresher: match refresher.as_deref() {
                Some("uas") => Refresher::Peer,
                _ => Refresher::Us,
            },
        });
        self.set_timer(call, timer);
    }

    fn set_timer(&mut self, call: CallKey, timer: Option<SessionTimer>) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.session_timer = timer;
        }
        self.event(SipEvent::SessionTimer { call, timer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(text: &str) -> msg::Headers {
        let req = format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n{text}Content-Length: 0\r\n\r\n"
        );
        match msg::parse_datagram(req.as_bytes(), &msg::Limits::default()) {
            Ok(msg::Message::Request(r)) => r.headers,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc4028_4_session_expires_and_min_se_are_read_with_their_parameters() {
        let h = headers("Session-Expires: 1800;refresher=UAC\r\nMin-SE: 90\r\n");
        assert_eq!(session_expires(&h), Some((1800, Some("uac".into()))));
        assert_eq!(min_se(&h), Some(90));
        let h = headers("x: 600\r\n");
        assert_eq!(session_expires(&h), Some((600, None)), "compact form");
        assert_eq!(session_expires(&headers("Session-Expires: soon\r\n")), None);
    }
}
