//! Requests we receive: the checks, the methods, new INVITEs (UAS),
//! CANCEL, ACK, BYE and every other in-dialog request, and the core's
//! answers to them.

use crate::api::{CallKey, RequestId, SipEvent};
use crate::check;
use crate::dialog::{Dialog, Role};
use crate::engine::{
    ALLOW, Call, Invite, Origin, Pending2xx, Purpose, Sip, TimerId, TxInfo, UasInvite, reliability,
    reply_dest,
};
use crate::msg::{self, HeaderName, Message, Method, Request, Response, TransactionKey};
use stox_mapping::ids::CallId;

/// Methods we know but do not take outside a dialog (405 with Allow).
const KNOWN_NOT_ALLOWED: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "MESSAGE",
    "REFER",
];

impl Sip {
    pub(crate) fn on_request(&mut self, req: Request, origin: Origin) {
        if !self.within_rate(&req, origin) {
            return;
        }
        if let Some(refusal) = check::request(&req, self.timers_on()) {
            self.peer_fault(origin.source, "request refused", &refusal.reason);
            if req.method != Method::Ack {
                self.refuse(
                    &req,
                    origin,
                    refusal.status,
                    &refusal.reason,
                    &refusal.headers,
                );
            }
            return;
        }
        let dispatch = self
            .tl
            .receive(Message::Request(req.clone()), reliability(origin.transport));
        match dispatch {
            msg::Dispatch::Created { key, outputs } => {
                let via = msg::top_via(&req.headers);
                self.txs.insert(
                    key.clone(),
                    TxInfo {
                        call: None,
                        purpose: Purpose::Server,
                        hop: crate::engine::Hop {
                            transport: origin.transport,
                            dest: reply_dest(origin, via.as_ref()),
                        },
                        answered: None,
                    },
                );
                // The transaction's own outputs (its 100 Trying timer, and
                // the request for the TU, which is `req`).
                self.run_tx(&key, outputs);
                self.new_request(key, req, origin);
            }
            msg::Dispatch::Matched { key, outputs } => self.run_tx(&key, outputs),
            msg::Dispatch::Unmatched(m) => {
                if let Message::Request(ack) = *m
                    && ack.method == Method::Ack
                {
                    self.on_ack(&ack);
                }
            }
        }
    }

    /// An untrusted source's request outside a dialog, counted against its
    /// rate (rate.rs): false when it was refused (503) or dropped.
    fn within_rate(&mut self, req: &Request, origin: Origin) -> bool {
        let ip = origin.source.ip();
        let out_of_dialog = msg::to_tag(&req.headers).is_none()
            && !matches!(req.method, Method::Ack | Method::Cancel);
        if !out_of_dialog || self.trusted(ip) {
            return true;
        }
        let now = self.now;
        let Some(rates) = self.rates.as_mut() else {
            return true;
        };
        match rates.check(ip, now) {
            crate::rate::Verdict::Take => true,
            crate::rate::Verdict::Refuse => {
                let secs = rates.retry_after(ip).as_secs().to_string();
                self.peer_fault(origin.source, "request rate exceeded", "503");
                let phrase = format!("Service Unavailable (too many requests from {ip})");
                self.refuse(req, origin, 503, &phrase, &[("Retry-After", secs)]);
                false
            }
            crate::rate::Verdict::Drop => {
                self.peer_fault(origin.source, "request rate exceeded", "dropped unanswered");
                false
            }
        }
    }

    /// Answers `req` with a final response outside any transaction.
    fn refuse(
        &mut self,
        req: &Request,
        origin: Origin,
        status: u16,
        reason: &str,
        headers: &[(&'static str, String)],
    ) {
        let mut resp = msg::response(req, status, reason, None)
            .unwrap_or_else(|_| msg::bare_response(req, status, reason));
        if msg::top_via(&req.headers).is_none() && req.headers.get(&HeaderName::Via).is_none() {
            return; // nowhere to answer
        }
        for (name, value) in headers {
            if let Ok(h) = msg::other_header(name, value.clone()) {
                resp.headers.push(h);
            }
        }
        self.reply_stateless(req, origin, resp);
    }

    /// A request that started a server transaction.
    fn new_request(&mut self, key: TransactionKey, req: Request, origin: Origin) {
        let in_dialog = msg::to_tag(&req.headers).is_some();
        let method = req.method.clone();
        // A registrar's REGISTER comes from anywhere: its credentials decide.
        if method == Method::Register && self.registrar.cfg.is_some() {
            self.on_register(&key, &req, origin);
            return;
        }
        if !in_dialog && method != Method::Cancel && !self.trusted(origin.source.ip()) {
            // A registered user's call is taken once its credentials check.
            let checked = match self.registrar.cfg.is_some() {
                true => self.authenticate_caller(&req),
                false => Err(None),
            };
            match checked {
                Ok(()) => {}
                Err(Some(answer)) => {
                    self.send_response(&key, *answer);
                    return;
                }
                Err(None) => {
                    let ip = origin.source.ip();
                    self.peer_fault(
                        origin.source,
                        "request from an untrusted source",
                        &method.to_string(),
                    );
                    let phrase = format!("Forbidden ({ip} is not a trusted peer)");
                    let resp = self.answer(&req, 403, &phrase, None);
                    self.send_response(&key, resp);
                    return;
                }
            }
        }
        match method {
            Method::Invite if !in_dialog => self.new_invite(key, req, origin),
            Method::Cancel => self.on_cancel(key, &req),
            Method::Options if !in_dialog => {
                let mut resp = match &self.unavailable {
                    Some((phrase, retry_after)) => {
                        let mut resp = self.answer(&req, 503, phrase, None);
                        if let Ok(h) = msg::other_header("Retry-After", retry_after.to_string()) {
                            resp.headers.push(h);
                        }
                        resp
                    }
                    None => self.answer(&req, 200, "OK", None),
                };
                for (name, value) in [("Accept", "application/sdp"), ("Allow", ALLOW)] {
                    if let Ok(h) = msg::other_header(name, value) {
                        resp.headers.push(h);
                    }
                }
                self.send_response(&key, resp);
            }
            _ if in_dialog => self.in_dialog(key, req, origin),
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                let resp = self.answer(&req, 481, "Call/Transaction Does Not Exist", None);
                self.send_response(&key, resp);
            }
            other => {
                let name = other.to_string();
                let (status, phrase) = if KNOWN_NOT_ALLOWED.contains(&name.as_str()) {
                    (405, "Method Not Allowed")
                } else {
                    (501, "Not Implemented")
                };
                let mut resp = self.answer(&req, status, phrase, None);
                if let Ok(h) = msg::other_header("Allow", ALLOW) {
                    resp.headers.push(h);
                }
                self.send_response(&key, resp);
            }
        }
    }

    /// A response to `req` (with `tag` as To tag when it has none).
    pub(crate) fn answer(
        &self,
        req: &Request,
        status: u16,
        phrase: &str,
        tag: Option<&str>,
    ) -> Response {
        let mut resp = msg::response(req, status, phrase, tag).unwrap_or_else(|_| {
            Response::new(
                msg::StatusCode::new(500).expect("500 is a valid status"),
                "Server Internal Error",
            )
        });
        if let Ok(h) = msg::header(HeaderName::Server, self.cfg.user_agent.clone()) {
            resp.headers.push(h);
        }
        resp
    }

    fn new_invite(&mut self, key: TransactionKey, req: Request, origin: Origin) {
        let call_id = msg::call_id(&req.headers).unwrap_or_default();
        if let Some(&live) = self.by_call_id.get(&call_id) {
            // RFC 3261 §8.2.2.2: the same request by another path (From
            // tag, Call-ID and CSeq of a transaction we already have), or a
            // Call-ID that is live in another call: either way 482.
            let merged = self.calls.get(&live).is_some_and(|c| match &c.invite {
                Some(Invite::Uas(u)) => {
                    msg::from_tag(&u.request.headers) == msg::from_tag(&req.headers)
                        && msg::cseq(&u.request.headers) == msg::cseq(&req.headers)
                }
                _ => false,
            });
            let phrase = if merged {
                "Loop Detected (merged request, RFC 3261 §8.2.2.2)"
            } else {
                "Loop Detected (Call-ID in use)"
            };
            let resp = self.answer(&req, 482, phrase, None);
            self.send_response(&key, resp);
            return;
        }
        if let Some(refusal) = self.too_brief(&req) {
            self.send_response(&key, refusal);
            return;
        }
        let call = self.keys.key();
        let local_tag = self.new_tag();
        let trying = self.answer(&req, 100, "Trying", None);
        self.send_response(&key, trying);
        if let Some(info) = self.txs.get_mut(&key) {
            info.call = Some(call);
        }
        let event = SipEvent::IncomingInvite {
            call,
            call_id: CallId::new(call_id.clone()),
            request_uri: req.uri.to_string(),
            from: msg::address_uri(&req.headers, &HeaderName::From).unwrap_or_default(),
            to: msg::address_uri(&req.headers, &HeaderName::To).unwrap_or_default(),
            sdp: msg::sdp(&Message::Request(req.clone())),
            transport: origin.transport,
            source: origin.source,
            supported: msg::tokens(&req.headers, &HeaderName::Supported),
        };
        let mut c = Call::new(call_id.clone());
        c.invite = Some(Invite::Uas(Box::new(UasInvite {
            tx: key,
            request: req,
            origin,
            local_tag,
            answered: false,
        })));
        self.by_call_id.insert(call_id, call);
        self.calls.insert(call, c);
        self.bind_flow(call, origin.conn);
        self.event(event);
    }

    /// RFC 3261 §9.2: a CANCEL for a pending INVITE gets 200 and the INVITE
    /// 487; for an answered one 200 and nothing else; for none 481.
    fn on_cancel(&mut self, key: TransactionKey, req: &Request) {
        let target = TransactionKey::for_cancelled_invite(req);
        let call = target
            .as_ref()
            .and_then(|t| self.txs.get(t))
            .and_then(|info| info.call);
        let Some(call) = call else {
            let resp = self.answer(req, 481, "Call/Transaction Does Not Exist", None);
            self.send_response(&key, resp);
            return;
        };
        let pending = self.calls.get(&call).and_then(|c| match &c.invite {
            Some(Invite::Uas(u)) if !u.answered => {
                Some((u.tx.clone(), u.request.clone(), u.local_tag.clone()))
            }
            _ => None,
        });
        let tag = pending.as_ref().map(|(_, _, t)| t.clone());
        let ok = self.answer(req, 200, "OK", tag.as_deref());
        self.send_response(&key, ok);
        if let Some((invite_tx, invite, tag)) = pending {
            let terminated = self.answer(&invite, 487, "Request Terminated", Some(&tag));
            self.send_response(&invite_tx, terminated);
            self.event(SipEvent::Cancelled { call });
            self.drop_call(call);
        }
    }

    /// An ACK for a 2xx of ours (the INVITE's or a re-INVITE's).
    pub(crate) fn on_ack(&mut self, ack: &Request) {
        let Some(call_id) = msg::call_id(&ack.headers) else {
            return;
        };
        let Some(&call) = self.by_call_id.get(&call_id) else {
            return;
        };
        let cseq = msg::cseq(&ack.headers).map(|c| c.sequence);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(p) = c.awaiting_ack.as_ref() else {
            return;
        };
        if Some(p.cseq) != cseq {
            return;
        }
        let (seq, initial) = (p.cseq, p.initial);
        c.awaiting_ack = None;
        self.timers.clear(&TimerId::Retransmit2xx(call, seq));
        self.timers.clear(&TimerId::AckWait(call, seq));
        if initial {
            self.event(SipEvent::Acked { call });
        }
    }

    /// A request with a To tag: it belongs to a dialog, or gets 481.
    fn in_dialog(&mut self, key: TransactionKey, req: Request, origin: Origin) {
        let call = self.dialog_of(&req);
        let Some(call) = call else {
            if req.method != Method::Ack {
                let resp = self.answer(&req, 481, "Call/Transaction Does Not Exist", None);
                self.send_response(&key, resp);
            }
            return;
        };
        if let Some(info) = self.txs.get_mut(&key) {
            info.call = Some(call);
        }
        let cseq = msg::cseq(&req.headers).map_or(0, |c| c.sequence);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(d) = c.dialog.as_mut()
            && !d.accept_remote_cseq(cseq)
        {
            // RFC 3261 §12.2.2: out of order.
            let resp = self.answer(&req, 500, "Server Internal Error (CSeq out of order)", None);
            self.send_response(&key, resp);
            return;
        }
        if req.method == Method::Bye {
            let resp = self.answer(&req, 200, "OK", None);
            self.send_response(&key, resp);
            match self.calls.get(&call).and_then(|c| c.invite.as_ref()) {
                // RFC 3261 §15.1.2: a BYE in the early dialog of the INVITE
                // we have not answered ends it as a CANCEL would: 487.
                Some(Invite::Uas(u)) if !u.answered => {
                    let (tx, invite, tag) = (u.tx.clone(), u.request.clone(), u.local_tag.clone());
                    let terminated = self.answer(&invite, 487, "Request Terminated", Some(&tag));
                    self.send_response(&tx, terminated);
                    self.event(SipEvent::Cancelled { call });
                    self.drop_call(call);
                }
                // §15: the callee must not send BYE in an early dialog. Our
                // INVITE is still pending: the core cancels it, and its
                // final response ends the call's SIP state.
                Some(Invite::Uac(_))
                    if self.calls.get(&call).is_some_and(|c| c.dialog.is_none()) =>
                {
                    self.event(SipEvent::Bye { call });
                }
                _ => {
                    self.event(SipEvent::Bye { call });
                    self.drop_call(call);
                }
            }
            return;
        }
        // RFC 4028 §9: a refresh asking for too short an interval.
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(refusal) = self.too_brief(&req)
        {
            self.send_response(&key, refusal);
            return;
        }
        // RFC 3261 §14.2 / RFC 3311 §5.2: an offer that crosses ours (glare)
        // gets 491; the core retries after the §14.1 wait.
        let offers = req.method == Method::Invite
            || (req.method == Method::Update && !req.body().is_empty());
        if offers && self.calls.get(&call).is_some_and(|c| c.offering.is_some()) {
            let resp = self.answer(&req, 491, "Request Pending", None);
            self.send_response(&key, resp);
            return;
        }
        if req.method == Method::Invite
            && self
                .calls
                .get(&call)
                .is_some_and(|c| c.requests.values().any(|(_, r)| r.method == Method::Invite))
        {
            // RFC 3261 §14.2: a re-INVITE while we have not answered the
            // previous one.
            let mut resp =
                self.answer(&req, 500, "Server Internal Error (re-INVITE pending)", None);
            let secs = self.rng.next_u64() % 10;
            if let Ok(h) = msg::header(HeaderName::RetryAfter, secs.to_string()) {
                resp.headers.push(h);
            }
            self.send_response(&key, resp);
            return;
        }
        // A target refresh (RFC 3261 §12.2.2): a new Contact is the new
        // remote target. The flow follows the connection it came on.
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(target) = msg::address_uri(&req.headers, &HeaderName::Contact)
            && let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut())
        {
            d.remote_target = target;
        }
        self.bind_flow(call, origin.conn);
        let request = self.next_request_id();
        let m = Message::Request(req.clone());
        let event = SipEvent::Request {
            call,
            request,
            method: req.method.to_string(),
            content_type: msg::content_type(&m),
            body: msg::body_text(&m),
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.requests.insert(request, (key, req));
        }
        self.event(event);
    }

    /// The call whose dialog `req` (from the peer) belongs to.
    fn dialog_of(&self, req: &Request) -> Option<CallKey> {
        let call_id = msg::call_id(&req.headers)?;
        let call = *self.by_call_id.get(&call_id)?;
        let c = self.calls.get(&call)?;
        let (to, from) = (msg::to_tag(&req.headers), msg::from_tag(&req.headers));
        if let Some(d) = &c.dialog {
            return (to.as_deref() == Some(d.local_tag.as_str())
                && from.as_deref() == Some(d.remote_tag.as_str()))
            .then_some(call);
        }
        // An early dialog: UAS after a provisional with our tag; UAC with
        // a fork's tag (requests from the callee in its early dialog).
        match &c.invite {
            Some(Invite::Uas(u)) => (to.as_deref() == Some(u.local_tag.as_str())).then_some(call),
            Some(Invite::Uac(u)) => (from
                .as_ref()
                .is_some_and(|f| u.early.iter().any(|(t, _)| t == f))
                && to == msg::from_tag(&u.request.headers))
            .then_some(call),
            None => None,
        }
    }

    // ---- the core's answers ---------------------------------------------

    /// `Respond`: answers the incoming INVITE of `call`.
    pub(crate) fn respond(
        &mut self,
        call: CallKey,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
        retry_after: Option<u32>,
    ) -> Result<(), String> {
        if self.recovered.contains_key(&call) {
            return self.respond_recovered(call, status, reason);
        }
        let c = self.calls.get(&call).ok_or("no such call")?;
        let Some(Invite::Uas(u)) = &c.invite else {
            return Err("not an incoming INVITE".into());
        };
        if u.answered {
            return Err("the INVITE is answered already".into());
        }
        if status == 100 {
            return Ok(()); // sent on arrival
        }
        if !(101..=699).contains(&status) {
            return Err(format!("invalid status {status}"));
        }
        let (tx, request, tag, origin) = (
            u.tx.clone(),
            u.request.clone(),
            u.local_tag.clone(),
            u.origin,
        );
        let phrase = reason.unwrap_or_else(|| default_phrase(status).to_owned());
        let mut resp = self.answer(&request, status, &phrase, Some(&tag));
        if let Some(secs) = retry_after
            && let Ok(h) = msg::header(HeaderName::RetryAfter, secs.to_string())
        {
            resp.headers.push(h);
        }
        if (101..300).contains(&status) {
            // Dialog-forming: Contact and Record-Route (RFC 3261 §12.1.1).
            let contact = self.contact(origin.transport);
            if let Ok(h) = msg::header(HeaderName::Contact, format!("<{contact}>")) {
                resp.headers.push(h);
            }
            for rr in request.headers.get_all(&HeaderName::RecordRoute) {
                resp.headers.push(rr.clone());
            }
            if let Ok(h) = msg::other_header("Allow", ALLOW) {
                resp.headers.push(h);
            }
        }
        set_sdp(&mut resp, sdp.as_deref())?;
        if status >= 200
            && let Some(Invite::Uas(u)) = self.calls.get_mut(&call).and_then(|c| c.invite.as_mut())
        {
            u.answered = true;
        }
        if (200..300).contains(&status) {
            self.answer_timer(call, &request, &mut resp);
            let dialog = uas_dialog(&request, &tag, self.contact(origin.transport));
            let cseq = dialog.remote_cseq.unwrap_or(0);
            if let Some(c) = self.calls.get_mut(&call) {
                c.dialog = Some(dialog);
            }
            self.await_ack(call, &tx, resp.clone(), cseq, true, origin.transport);
        }
        self.send_response(&tx, resp);
        if status >= 300 {
            // The transaction answers retransmissions and absorbs the ACK.
            self.drop_call(call);
        }
        Ok(())
    }

    /// Keeps a 2xx until its ACK: retransmitted over UDP (T1 doubling to
    /// T2, RFC 3261 §13.3.1.4), and the call ended after 64·T1 without one.
    fn await_ack(
        &mut self,
        call: CallKey,
        tx: &TransactionKey,
        response: Response,
        cseq: u32,
        initial: bool,
        transport: crate::api::Transport,
    ) {
        let t1 = self.cfg.timers.t1;
        if !transport.is_reliable() {
            self.timers
                .set(TimerId::Retransmit2xx(call, cseq), self.now + t1);
        }
        self.timers
            .set(TimerId::AckWait(call, cseq), self.now + t1 * 64);
        if let Some(c) = self.calls.get_mut(&call) {
            c.awaiting_ack = Some(Pending2xx {
                cseq,
                tx: tx.clone(),
                response,
                interval: t1,
                initial,
            });
        }
    }

    pub(crate) fn retransmit_2xx(&mut self, call: CallKey, cseq: u32) {
        let t2 = self.cfg.timers.t2;
        let Some(p) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.awaiting_ack.as_mut())
            .filter(|p| p.cseq == cseq)
        else {
            return;
        };
        p.interval = (p.interval * 2).min(t2);
        let (tx, resp, next) = (p.tx.clone(), p.response.clone(), p.interval);
        self.timers
            .set(TimerId::Retransmit2xx(call, cseq), self.now + next);
        self.send_response(&tx, resp);
    }

    /// No ACK for our 2xx within 64·T1 (RFC 3261 §13.3.1.4): the session
    /// is ended with BYE, and the core told.
    pub(crate) fn no_ack(&mut self, call: CallKey, cseq: u32) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.awaiting_ack.as_ref().is_none_or(|p| p.cseq != cseq) {
            return;
        }
        c.awaiting_ack = None;
        self.timers.clear(&TimerId::Retransmit2xx(call, cseq));
        let _ = self.bye(call, Some("SIP;cause=408;text=\"no ACK for the 2xx\""));
        self.event(SipEvent::Terminated {
            call,
            reason: "no ACK for our 2xx (RFC 3261 §13.3.1.4)".into(),
        });
        self.drop_call(call);
    }

    /// `Reply`: answers an in-dialog request the core was given.
    pub(crate) fn reply(
        &mut self,
        call: CallKey,
        request: RequestId,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
    ) -> Result<(), String> {
        let c = self.calls.get_mut(&call).ok_or("no such call")?;
        let (tx, original) = c
            .requests
            .remove(&request)
            .ok_or("no such request (answered already?)")?;
        let method = original.method.clone();
        let cseq = msg::cseq(&original.headers).map_or(0, |c| c.sequence);
        if !(200..=699).contains(&status) {
            return Err(format!("invalid status {status} for a reply"));
        }
        let transport = self
            .txs
            .get(&tx)
            .map_or(crate::api::Transport::Udp, |i| i.hop.transport);
        let phrase = reason.unwrap_or_else(|| default_phrase(status).to_owned());
        let mut resp = self.answer(&original, status, &phrase, None);
        // RFC 3261 §21.4.13: a 415 lists the bodies we take.
        if status == 415
            && let Ok(h) = msg::header(
                HeaderName::Accept,
                "application/sdp, application/trickle-ice-sdpfrag".to_owned(),
            )
        {
            resp.headers.push(h);
        }
        if method == Method::Invite && (200..300).contains(&status) {
            let contact = self.contact(transport);
            if let Ok(h) = msg::header(HeaderName::Contact, format!("<{contact}>")) {
                resp.headers.push(h);
            }
        }
        set_sdp(&mut resp, sdp.as_deref())?;
        if matches!(method, Method::Invite | Method::Update) && (200..300).contains(&status) {
            self.answer_timer(call, &original, &mut resp);
        }
        if method == Method::Invite && (200..300).contains(&status) {
            self.await_ack(call, &tx, resp.clone(), cseq, false, transport);
        }
        self.send_response(&tx, resp);
        Ok(())
    }
}

/// The dialog a 2xx of ours to `request` makes (RFC 3261 §12.1.1): the
/// route set is the Record-Route in order, the remote target the Contact.
pub(crate) fn uas_dialog(request: &Request, local_tag: &str, local_contact: String) -> Dialog {
    let from = msg::value(&request.headers, &HeaderName::From).unwrap_or_default();
    let to = msg::value(&request.headers, &HeaderName::To).unwrap_or_default();
    let to = if crate::dialog::tag_in(&to).is_some() {
        to
    } else {
        format!("{to};tag={local_tag}")
    };
    let route_set: Vec<String> = msg::values(&request.headers, &HeaderName::RecordRoute)
        .iter()
        .flat_map(|v| split_list(v))
        .collect();
    Dialog {
        role: Role::Uas,
        call_id: msg::call_id(&request.headers).unwrap_or_default(),
        local_tag: local_tag.to_owned(),
        remote_tag: msg::from_tag(&request.headers).unwrap_or_default(),
        from,
        to,
        local_cseq: 0,
        remote_cseq: msg::cseq(&request.headers).map(|c| c.sequence),
        local_contact,
        remote_target: msg::address_uri(&request.headers, &HeaderName::Contact)
            .unwrap_or_else(|| request.uri.to_string()),
        route_set,
    }
}

/// Splits a comma-joined address list (`<a>, <b>`), keeping each value.
pub(crate) fn split_list(value: &str) -> Vec<String> {
    match msg::Address::parse_list(value.as_bytes(), "Record-Route") {
        Ok(list) => {
            let mut out = Vec::new();
            let mut rest = value;
            for _ in 0..list.len() {
                // Cut at the comma after the next `>`.
                let end = rest.find('>').map_or(rest.len(), |i| i + 1);
                let tail = &rest[end..];
                let cut = tail.find(',').map_or(rest.len(), |i| end + i);
                out.push(rest[..cut].trim().to_owned());
                rest = rest.get(cut + 1..).unwrap_or("");
            }
            out.retain(|v| !v.is_empty());
            out
        }
        Err(_) => vec![value.to_owned()],
    }
}

/// Sets an SDP body (or none) and the matching Content-Type/Length.
pub(crate) fn set_sdp(resp: &mut Response, sdp: Option<&str>) -> Result<(), String> {
    let body = sdp.map(|s| bytes::Bytes::copy_from_slice(s.as_bytes()));
    msg::set_body(&mut resp.headers, sdp.map(|_| "application/sdp"))?;
    let len = body.as_ref().map_or(0, bytes::Bytes::len);
    msg::fix_content_length(&mut resp.headers, len)?;
    resp.set_body(body.unwrap_or_default());
    Ok(())
}

pub(crate) fn default_phrase(status: u16) -> &'static str {
    match status {
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        s if s < 200 => "Session Progress",
        s if s < 300 => "OK",
        s if s < 400 => "Redirection",
        s if s < 500 => "Client Error",
        s if s < 600 => "Server Error",
        _ => "Global Failure",
    }
}
