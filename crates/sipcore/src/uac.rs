//! Requests we send: the INVITE (UAC) and what comes back to it — forks,
//! reliable provisionals, the ACK for 2xx — and CANCEL, BYE and INFO.

use crate::api::{CallKey, Command, NextHop, OfferMethod, SipCommand, SipEvent, Transport};
use crate::dialog::{Dialog, Role, strip_angles};
use crate::engine::{Call, Hop, Invite, Offering, Purpose, Sip, TxInfo, UacInvite};
use crate::msg::{self, HeaderName, Message, Method, Request, Response, TransactionKey};
use crate::uas::split_list;
use bytes::Bytes;

/// The largest UDP payload over IPv4 (65,535 − 8 − 20).
pub const UDP_MAX: usize = 65_507;

impl Sip {
    pub(crate) fn on_command(&mut self, cmd: SipCommand) {
        let call = cmd.call();
        let name = cmd.kind();
        let result = match cmd {
            invite @ SipCommand::Invite { .. } => self.invite(invite),
            SipCommand::Respond {
                call,
                status,
                reason,
                sdp,
                retry_after,
            } => self.respond(call, status, reason, sdp, retry_after),
            SipCommand::Reply {
                call,
                request,
                status,
                reason,
                sdp,
            } => self.reply(call, request, status, reason, sdp),
            SipCommand::Cancel { call } => self.cancel(call),
            SipCommand::Bye { call, reason } => self.bye(call, reason.as_deref()),
            SipCommand::Info {
                call,
                content_type,
                body,
            } => self.info(call, &content_type, body),
            SipCommand::Reoffer { call, method, sdp } => self.reoffer(call, method, sdp),
        };
        if let Err(reason) = result {
            self.event(SipEvent::CommandFailed {
                call,
                command: name,
                reason,
            });
        }
    }

    /// Sends our INVITE (RFC 3261 §8.1.1).
    fn invite(&mut self, cmd: SipCommand) -> Result<(), String> {
        let SipCommand::Invite {
            call,
            call_id,
            request_uri,
            from,
            sdp,
            supported,
            peer,
        } = cmd
        else {
            return Err("not an INVITE".into());
        };
        let (call_id, request_uri) = (call_id.as_str(), request_uri.as_str());
        // The caller as a peer is to see it (RFC 3325 identity policy).
        let identity = peer
            .as_ref()
            .and_then(|name| self.cfg.peers.iter().find(|p| &p.name == name))
            .map(|p| p.identity.clone())
            .unwrap_or_default();
        let asserted = identity.asserted_identity.then(|| format!("<{from}>"));
        let from = shown_from(&from, &identity)?;
        let from = from.as_str();
        if self.calls.contains_key(&call) || self.by_call_id.contains_key(call_id) {
            return Err(format!("call {call_id} already exists"));
        }
        if !msg::is_call_id(call_id) {
            return Err(format!("invalid Call-ID {call_id:?}"));
        }
        let mut uri = msg::parse_uri(request_uri)?;
        msg::parse_uri(from)?;
        // A user of our registrar: its binding's contact, over its flow
        // (registrar.rs); not registered: the call is over (480).
        let registered = match peer {
            Some(_) => None,
            None => match self.registered_target(request_uri) {
                Ok(found) => found,
                Err(reason) => {
                    self.event(SipEvent::Rejected {
                        call,
                        status: 480,
                        reason,
                    });
                    return Ok(());
                }
            },
        };
        let next_hop = match (&registered, &peer, &self.proxy) {
            (Some(_), _, _) | (None, None, None) => None,
            (None, Some(name), _) => Some(NextHop::Peer(name.clone())),
            (None, None, Some(_)) => Some(NextHop::OutboundProxy),
        };
        let (mut hop, route) = match (registered, &peer, &self.proxy) {
            (Some((contact, hop)), _, _) => {
                uri = msg::parse_uri(&contact)?;
                (hop, None)
            }
            (None, Some(name), _) => {
                let p = self
                    .cfg
                    .peers
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| format!("no peer named {name:?}"))?;
                (
                    crate::engine::uri_hop(p.uri.as_deref().unwrap_or(request_uri))?,
                    None,
                )
            }
            (None, None, Some((hop, route))) => (hop.clone(), Some(route.clone())),
            (None, None, None) => (crate::engine::uri_hop(request_uri)?, None),
        };
        let mut tags: Vec<String> = self
            .supported_tags()
            .split(", ")
            .map(str::to_owned)
            .collect();
        for tag in supported {
            let tag = tag.trim().to_ascii_lowercase();
            if msg::is_token(&tag) && !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let local_tag = self.new_tag();
        let build = |sip: &mut Sip, transport: Transport| -> Result<Request, String> {
            let mut req = Request::new(Method::Invite, uri.clone());
            let contact = sip.contact(transport);
            let via = sip.via(transport);
            let mut headers: Vec<(HeaderName, String)> = vec![
                (HeaderName::Via, via),
                (HeaderName::MaxForwards, "70".into()),
                (HeaderName::From, format!("<{from}>;tag={local_tag}")),
                (HeaderName::To, format!("<{request_uri}>")),
                (HeaderName::CallId, call_id.to_owned()),
                (HeaderName::CSeq, "1 INVITE".into()),
                (HeaderName::Contact, format!("<{contact}>")),
            ];
            if let Some(route) = &route {
                headers.push((HeaderName::Route, route.clone()));
            }
            headers.push((HeaderName::Supported, tags.join(", ")));
            headers.push((HeaderName::Allow, crate::engine::ALLOW.into()));
            headers.push((HeaderName::UserAgent, sip.cfg.user_agent.clone()));
            headers.push((HeaderName::ContentType, "application/sdp".into()));
            for (name, value) in headers {
                req.headers.push(msg::header(name, value)?);
            }
            if tags.iter().any(|t| t == "trickle-ice") {
                req.headers
                    .push(msg::other_header("Recv-Info", "trickle-ice")?);
            }
            if let Some(pai) = &asserted {
                req.headers
                    .push(msg::other_header("P-Asserted-Identity", pai.clone())?);
            }
            sip.timer_request_headers(None, &mut req);
            msg::fix_content_length(&mut req.headers, sdp.len())?;
            req.set_body(Bytes::copy_from_slice(sdp.as_bytes()));
            Ok(req)
        };
        let mut req = build(self, hop.transport)?;
        // RFC 3261 §18.1.1: within 200 bytes of the MTU → TCP, when the
        // next hop takes it; a request no datagram can carry fails now.
        if hop.transport == Transport::Udp {
            let size = msg::to_bytes(&Message::Request(req.clone())).len();
            if size + 200 > self.cfg.udp_mtu {
                let pinned_udp = self.cfg.outbound_proxy.as_deref().map_or_else(
                    || crate::dialog::uri_transport(request_uri) == Some(Transport::Udp),
                    |p| crate::dialog::uri_transport(&strip_angles(p)) == Some(Transport::Udp),
                );
                let has_tcp = self.cfg.local.iter().any(|(t, _)| *t == Transport::Tcp);
                if self.cfg.large_requests_over_tcp && has_tcp && !pinned_udp {
                    hop.transport = Transport::Tcp;
                    req = build(self, Transport::Tcp)?;
                } else if size > UDP_MAX {
                    return Err(format!(
                        "request of {size} bytes is too large for UDP (at most {UDP_MAX}) and TCP is not configured for {}",
                        route.as_deref().unwrap_or(request_uri)
                    ));
                }
            }
        }
        self.preauthorize(peer.as_deref(), &mut req);
        let mut c = Call::new(call_id.to_owned());
        c.invite = Some(Invite::Uac(Box::new(UacInvite {
            request: req.clone(),
            hop: hop.clone(),
            provisional: false,
            cancel_deferred: false,
            cancelled: false,
            early: Vec::new(),
            ack: None,
            retried_422: false,
            auth_rounds: 0,
            peer,
            next_hop,
        })));
        self.by_call_id.insert(call_id.to_owned(), call);
        self.calls.insert(call, c);
        if self
            .send_request(req, hop, Some(call), Purpose::Invite)
            .is_none()
        {
            self.drop_call(call);
            return Err("the INVITE could not start a transaction".into());
        }
        Ok(())
    }

    /// A response from the wire: to a transaction, or a stray one (a 2xx
    /// retransmitted after our INVITE transaction is gone gets its ACK
    /// again).
    pub(crate) fn on_response(&mut self, resp: Response) {
        if !msg::findings(&Message::Response(resp.clone())).is_empty() {
            return;
        }
        match self
            .tl
            .receive(Message::Response(resp), msg::Reliability::Reliable)
        {
            msg::Dispatch::Matched { key, outputs } => self.run_tx(&key, outputs),
            msg::Dispatch::Unmatched(m) => {
                if let Message::Response(resp) = *m {
                    self.stray_response(&resp);
                }
            }
            msg::Dispatch::Created { .. } => {}
        }
    }

    fn stray_response(&mut self, resp: &Response) {
        if !resp.status.is_success()
            || msg::cseq(&resp.headers).map(|c| c.method) != Some(Method::Invite)
        {
            return;
        }
        let Some(call) =
            msg::call_id(&resp.headers).and_then(|id| self.by_call_id.get(&id).copied())
        else {
            return;
        };
        let to_tag = msg::to_tag(&resp.headers);
        let ack = self.calls.get(&call).and_then(|c| match &c.invite {
            Some(Invite::Uac(u)) => u
                .ack
                .as_ref()
                .filter(|(tag, _)| Some(tag) == to_tag.as_ref())
                .map(|(_, data)| (data.clone(), c.dialog.clone())),
            _ => None,
        });
        if let Some((data, Some(dialog))) = ack
            && let Ok(hop) = self.dialog_hop(call, &dialog)
        {
            self.push_transmit(hop.transport, hop.dest, data, Some(call));
        }
    }

    /// A response to one of our client transactions.
    pub(crate) fn on_tx_response(&mut self, key: &TransactionKey, info: &TxInfo, resp: Response) {
        let Some(call) = info.call else { return };
        match info.purpose {
            Purpose::Invite => self.invite_response(key, call, resp),
            Purpose::Other(Command::Info) if resp.status.code() >= 300 => {
                self.event(SipEvent::CommandFailed {
                    call,
                    command: Command::Info,
                    reason: format!("{} {}", resp.status, String::from_utf8_lossy(&resp.reason)),
                });
            }
            // Answers to BYE and CANCEL need nothing more (the call ended on
            // our side already), nor do those to a PRACK or an accepted INFO
            // (the INVITE's own transaction decides the call, RFC 3262 §3).
            Purpose::Reoffer => self.reoffer_response(call, resp),
            Purpose::Probe => self.probe_answered(call, &resp),
            Purpose::Other(
                Command::Info
                | Command::Bye
                | Command::Cancel
                | Command::Prack
                | Command::Invite
                | Command::Response
                | Command::Reply
                | Command::Reoffer,
            )
            | Purpose::Server => {}
        }
    }

    /// `Reoffer`: a re-INVITE or UPDATE with SDP in the confirmed dialog
    /// (RFC 3264 §8, RFC 3311), one at a time.
    fn reoffer(
        &mut self,
        call: CallKey,
        method: OfferMethod,
        sdp: Option<String>,
    ) -> Result<(), String> {
        let c = self.calls.get_mut(&call).ok_or("no such call")?;
        if c.offering.is_some() {
            return Err("an offer of ours is pending (RFC 3264 §4: one at a time)".into());
        }
        let mut dialog = c.dialog.clone().ok_or("the call has no confirmed dialog")?;
        let method = match (method, &sdp) {
            (OfferMethod::Invite, Some(_)) => Method::Invite,
            (OfferMethod::Update, _) => Method::Update,
            (OfferMethod::Invite, None) => {
                return Err("a re-INVITE of ours carries an offer".into());
            }
        };
        let mut req = self.in_dialog_request(&mut dialog, method)?;
        req.headers
            .push(msg::header(HeaderName::Supported, self.supported_tags())?);
        self.timer_request_headers(Some(call), &mut req);
        if let Some(sdp) = sdp {
            req.headers.push(msg::header(
                HeaderName::ContentType,
                "application/sdp".to_owned(),
            )?);
            msg::fix_content_length(&mut req.headers, sdp.len())?;
            req.set_body(Bytes::from(sdp));
        }
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
            d.local_cseq = dialog.local_cseq;
        }
        let hop = self.dialog_hop(call, &dialog)?;
        self.send_request(req.clone(), hop, Some(call), Purpose::Reoffer)
            .ok_or("the re-offer could not start a transaction")?;
        if let Some(c) = self.calls.get_mut(&call) {
            c.offering = Some(Offering { request: req });
        }
        Ok(())
    }

    /// A response to our re-INVITE or UPDATE.
    fn reoffer_response(&mut self, call: CallKey, resp: Response) {
        let status = resp.status.code();
        if status < 200 {
            return;
        }
        let cseq = msg::cseq(&resp.headers).map_or(0, |c| c.sequence);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let offering = match c.offering.take() {
            Some(o) if msg::cseq(&o.request.headers).map(|c| c.sequence) == Some(cseq) => o,
            other => {
                c.offering = other;
                // A retransmitted 2xx of a re-INVITE answered before: its
                // ACK again (RFC 3261 §13.2.2.4).
                if let (true, Some((acked, data)), Some(dialog)) = (
                    resp.status.is_success(),
                    c.reoffer_ack.clone(),
                    c.dialog.clone(),
                ) && acked == cseq
                    && let Ok(hop) = self.dialog_hop(call, &dialog)
                {
                    self.push_transmit(hop.transport, hop.dest, data, Some(call));
                }
                return;
            }
        };
        if !resp.status.is_success() {
            // A re-INVITE's non-2xx is ACKed by its transaction.
            self.event(SipEvent::ReofferRefused {
                call,
                status,
                reason: String::from_utf8_lossy(&resp.reason).into_owned(),
            });
            return;
        }
        // RFC 3261 §12.2.1.2: a 2xx to a target refresh updates the remote
        // target.
        if let Some(target) = msg::address_uri(&resp.headers, &HeaderName::Contact)
            && let Some(d) = c.dialog.as_mut()
        {
            d.remote_target = target;
        }
        if offering.request.method == Method::Invite
            && let Some(dialog) = c.dialog.clone()
        {
            match self.ack_for(&dialog, &offering.request) {
                Ok(ack) => {
                    let data = msg::to_bytes(&Message::Request(ack));
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.reoffer_ack = Some((cseq, data.clone()));
                    }
                    if let Ok(hop) = self.dialog_hop(call, &dialog) {
                        self.push_transmit(hop.transport, hop.dest, data, Some(call));
                    }
                }
                Err(e) => {
                    tracing::warn!(%call, error = %e, "cannot build the ACK for a re-INVITE's 2xx")
                }
            }
        }
        let m = Message::Response(resp.clone());
        self.event(SipEvent::ReofferAnswered {
            call,
            sdp: msg::sdp(&m),
        });
        self.answered_timer(call, &resp);
    }

    /// A client transaction timed out or its transport failed.
    pub(crate) fn on_tx_failed(
        &mut self,
        key: &TransactionKey,
        info: &TxInfo,
        status: u16,
        phrase: &str,
    ) {
        let Some(call) = info.call else { return };
        match info.purpose {
            Purpose::Invite => {
                let answered = self.calls.get(&call).is_some_and(|c| c.dialog.is_some());
                if status == 408 {
                    // Timer B: the next hop never answered (health.rs).
                    self.invite_timed_out(call);
                }
                if !answered && self.calls.contains_key(&call) {
                    self.event(SipEvent::Rejected {
                        call,
                        status,
                        reason: phrase.to_owned(),
                    });
                    self.drop_call(call);
                }
            }
            Purpose::Server => {
                // Our response could not be delivered (a stream is gone).
                if self.calls.contains_key(&call) && status == 503 {
                    self.event(SipEvent::CommandFailed {
                        call,
                        command: Command::Response,
                        reason: phrase.to_owned(),
                    });
                }
            }
            Purpose::Probe => self.probe_failed(call, status == 408),
            Purpose::Reoffer => {
                if let Some(c) = self.calls.get_mut(&call)
                    && c.offering.take().is_some()
                {
                    self.event(SipEvent::ReofferRefused {
                        call,
                        status,
                        reason: phrase.to_owned(),
                    });
                }
            }
            Purpose::Other(what) => {
                if !matches!(what, Command::Bye | Command::Cancel) || self.calls.contains_key(&call)
                {
                    self.event(SipEvent::CommandFailed {
                        call,
                        command: what,
                        reason: phrase.to_owned(),
                    });
                }
            }
        }
        let _ = key;
    }

    fn invite_response(&mut self, key: &TransactionKey, call: CallKey, resp: Response) {
        let status = resp.status.code();
        let to_tag = msg::to_tag(&resp.headers);
        let Some(c) = self.calls.get_mut(&call) else {
            // The call ended already (our BYE went out) while the INVITE's
            // transaction still listens (timer M, RFC 6026 §7.2): a 2xx of
            // the answered dialog is ACKed again; another fork's 2xx gets
            // ACK and BYE (RFC 3261 §13.2.2.4).
            if resp.status.is_success()
                && let Some(request) = self.tl.client_request(key).cloned()
            {
                let answered = self.txs.get(key).and_then(|i| i.answered.clone());
                let bye = answered.is_none() || answered != to_tag;
                self.end_fork(call, &request, &resp, bye);
            }
            return;
        };
        let Some(Invite::Uac(u)) = c.invite.as_mut() else {
            return;
        };
        let m = Message::Response(resp.clone());
        if status < 200 {
            u.provisional = true;
            let mut reliable = false;
            if let Some(tag) = &to_tag {
                if !u.early.iter().any(|(t, _)| t == tag) {
                    u.early.push((tag.clone(), None));
                }
                reliable = self.prack_if_reliable(call, &resp, tag);
            }
            let deferred = self
                .calls
                .get_mut(&call)
                .and_then(|c| match c.invite.as_mut() {
                    Some(Invite::Uac(u)) if u.cancel_deferred => {
                        u.cancel_deferred = false;
                        Some(())
                    }
                    _ => None,
                })
                .is_some();
            if deferred {
                let _ = self.send_cancel(call);
            }
            if status > 100 {
                self.event(SipEvent::Provisional {
                    call,
                    status,
                    sdp: msg::sdp(&m),
                    reliable,
                    supported: msg::tokens(&resp.headers, &HeaderName::Supported),
                });
            }
            return;
        }
        if status < 300 {
            let tag = to_tag.unwrap_or_default();
            if let Some(dialog) = &c.dialog {
                if dialog.remote_tag != tag {
                    // RFC 3261 §13.2.2.4: another fork answered too: ACK it
                    // and end that dialog with BYE.
                    let request = u.request.clone();
                    self.end_fork(call, &request, &resp, true);
                } else if let Some((_, data)) = u.ack.clone() {
                    let dialog = dialog.clone();
                    if let Ok(hop) = self.dialog_hop(call, &dialog) {
                        self.push_transmit(hop.transport, hop.dest, data, Some(call));
                    }
                }
                return;
            }
            let request = u.request.clone();
            let contact = msg::value(&request.headers, &HeaderName::Contact)
                .map(|c| strip_angles(&c))
                .unwrap_or_default();
            let mut dialog = uac_dialog(&request, &resp, contact);
            // PRACKs were sent in the early dialog that this one confirms.
            dialog.local_cseq = dialog.local_cseq.max(c.prack_cseq);
            c.dialog = Some(dialog.clone());
            let cancelled = u.cancelled;
            if let Some(info) = self.txs.get_mut(key) {
                info.answered = Some(dialog.remote_tag.clone());
            }
            let ack = self.ack_for(&dialog, &request);
            match ack {
                Ok(ack) => {
                    let data = msg::to_bytes(&Message::Request(ack));
                    if let Some(Invite::Uac(u)) =
                        self.calls.get_mut(&call).and_then(|c| c.invite.as_mut())
                    {
                        u.ack = Some((dialog.remote_tag.clone(), data.clone()));
                    }
                    if let Ok(hop) = self.dialog_hop(call, &dialog) {
                        self.push_transmit(hop.transport, hop.dest, data, Some(call));
                    }
                }
                Err(e) => {
                    tracing::warn!(%call, error = %e, "cannot build the ACK for a 2xx");
                }
            }
            if cancelled {
                // Our CANCEL lost the race (RFC 3261 §9.1): the core asked
                // to end the call, so end the session that began anyway.
                self.event(SipEvent::Answered {
                    call,
                    sdp: msg::sdp(&m),
                    supported: msg::tokens(&resp.headers, &HeaderName::Supported),
                });
                return;
            }
            self.event(SipEvent::Answered {
                call,
                sdp: msg::sdp(&m),
                supported: msg::tokens(&resp.headers, &HeaderName::Supported),
            });
            self.answered_timer(call, &resp);
            return;
        }
        // 3xx–6xx: the transaction ACKs it.
        if c.dialog.is_some() {
            return; // a fork's failure after another answered
        }
        let (cancelled, retried_422) = (u.cancelled, u.retried_422);
        if status == 422 && !cancelled && !retried_422 && self.retry_422(call, &resp) {
            return;
        }
        if matches!(status, 401 | 407) && !cancelled && self.answer_challenge(call, &resp) {
            return;
        }
        let reason = String::from_utf8_lossy(&resp.reason).into_owned();
        self.event(SipEvent::Rejected {
            call,
            status,
            reason,
        });
        self.drop_call(call);
    }

    /// RFC 4028 §7.4: a 422 to our INVITE names the smallest interval the
    /// peer takes (Min-SE); the INVITE goes again once, CSeq one up, with
    /// that interval. False when it cannot (no usable Min-SE, or one above
    /// the interval we would ever refresh at — then the call is refused).
    fn retry_422(&mut self, call: CallKey, resp: &Response) -> bool {
        let Some(min) = crate::timer::min_se(&resp.headers).filter(|_| self.timers_on()) else {
            return false;
        };
        // One day at most: an interval longer than that is no timer.
        if min == 0 || min > 86_400 {
            return false;
        }
        let sent = self.resend_invite(call, |_, req| {
            [
                (HeaderName::SessionExpires, min.to_string()),
                (HeaderName::MinSe, min.to_string()),
            ]
            .into_iter()
            .all(|(name, value)| msg::replace_header(&mut req.headers, name, value).is_ok())
        });
        if sent
            && let Some(Invite::Uac(u)) = self.calls.get_mut(&call).and_then(|c| c.invite.as_mut())
        {
            u.retried_422 = true;
        }
        sent
    }

    /// Sends the INVITE of `call` again after a final response that can be
    /// answered (RFC 3261 §8.1.3.5: 401/407, 422): a new transaction (new
    /// branch, CSeq one up), changed by `edit` (false: not sent).
    pub(crate) fn resend_invite(
        &mut self,
        call: CallKey,
        edit: impl FnOnce(&mut Sip, &mut Request) -> bool,
    ) -> bool {
        let Some(Invite::Uac(u)) = self.calls.get(&call).and_then(|c| c.invite.as_ref()) else {
            return false;
        };
        let (mut req, hop) = (u.request.clone(), u.hop.clone());
        let seq = msg::cseq(&req.headers).map_or(1, |c| c.sequence) + 1;
        let via = self.via(hop.transport);
        let ok = [
            (HeaderName::Via, via),
            (HeaderName::CSeq, format!("{seq} INVITE")),
        ]
        .into_iter()
        .all(|(name, value)| msg::replace_header(&mut req.headers, name, value).is_ok());
        if !ok || !edit(self, &mut req) {
            return false;
        }
        if let Some(Invite::Uac(u)) = self.calls.get_mut(&call).and_then(|c| c.invite.as_mut()) {
            u.request = req.clone();
            u.provisional = false;
            u.early.clear();
        }
        self.send_request(req, hop, Some(call), Purpose::Invite)
            .is_some()
    }

    /// RFC 3262: a provisional with `Require: 100rel` and an RSeq above the
    /// last one of its early dialog gets a PRACK. Returns whether it was
    /// reliable (PRACKed).
    fn prack_if_reliable(&mut self, call: CallKey, resp: &Response, tag: &str) -> bool {
        let require = msg::tokens(&resp.headers, &HeaderName::Require);
        if !require.iter().any(|t| t == "100rel") {
            return false;
        }
        let Some(rseq) =
            msg::value(&resp.headers, &HeaderName::RSeq).and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(Invite::Uac(u)) = c.invite.as_mut() else {
            return false;
        };
        let Some(slot) = u.early.iter_mut().find(|(t, _)| t == tag) else {
            return false;
        };
        if slot.1.is_some_and(|last| rseq <= last) {
            return false; // a retransmission
        }
        slot.1 = Some(rseq);
        let request = u.request.clone();
        let invite_cseq = msg::cseq(&request.headers).map_or(1, |c| c.sequence);
        let contact = msg::value(&request.headers, &HeaderName::Contact)
            .map(|c| strip_angles(&c))
            .unwrap_or_default();
        let mut early = uac_dialog(&request, resp, contact);
        early.local_cseq = invite_cseq;
        // PRACK takes the dialog's next CSeq; keep the counter in the call.
        let cseq = c.prack_cseq.max(invite_cseq) + 1;
        c.prack_cseq = cseq;
        early.local_cseq = cseq - 1;
        let Ok(mut prack) = self.in_dialog_request(&mut early, Method::Prack) else {
            return false;
        };
        if let Ok(h) = msg::other_header("RAck", format!("{rseq} {invite_cseq} INVITE")) {
            prack.headers.push(h);
        }
        let Ok(hop) = self.hop_for_uri(&early.next_hop_uri(), None) else {
            return false;
        };
        self.send_request(prack, hop, Some(call), Purpose::Other(Command::Prack))
            .is_some()
    }

    /// ACK and BYE for a 2xx from a fork other than the answered one.
    /// ACKs a 2xx outside the call's live dialog and, with `bye`, ends the
    /// dialog it made.
    fn end_fork(&mut self, call: CallKey, request: &Request, resp: &Response, bye: bool) {
        let contact = msg::value(&request.headers, &HeaderName::Contact)
            .map(|c| strip_angles(&c))
            .unwrap_or_default();
        let mut fork = uac_dialog(request, resp, contact);
        let Ok(hop) = self.hop_for_uri(&fork.next_hop_uri(), None) else {
            return;
        };
        if let Ok(ack) = self.ack_for(&fork, request) {
            self.push_transmit(
                hop.transport,
                hop.dest.clone(),
                msg::to_bytes(&Message::Request(ack)),
                None,
            );
        }
        if !bye {
            return;
        }
        if let Ok(bye) = self.in_dialog_request(&mut fork, Method::Bye) {
            tracing::info!(%call, tag = %fork.remote_tag, "second 2xx from another fork: ACKed and ended with BYE");
            self.send_request(bye, hop, None, Purpose::Other(Command::Bye));
        }
    }

    /// RFC 3261 §13.2.2.4: the ACK for a 2xx, in the dialog, with the
    /// INVITE's CSeq number and a new branch.
    fn ack_for(&mut self, dialog: &Dialog, invite: &Request) -> Result<Request, String> {
        let mut d = dialog.clone();
        let cseq = msg::cseq(&invite.headers).map_or(1, |c| c.sequence);
        d.local_cseq = cseq.saturating_sub(1);
        let mut ack = self.in_dialog_request(&mut d, Method::Ack)?;
        ack.headers.remove_all(&HeaderName::CSeq);
        ack.headers
            .push(msg::header(HeaderName::CSeq, format!("{cseq} ACK"))?);
        Ok(ack)
    }

    /// A request in `dialog` (RFC 3261 §12.2.1.1): Request-URI the remote
    /// target, Route the route set, To/From/Call-ID of the dialog, the next
    /// local CSeq.
    pub(crate) fn in_dialog_request(
        &mut self,
        dialog: &mut Dialog,
        method: Method,
    ) -> Result<Request, String> {
        let uri = msg::parse_uri(&dialog.remote_target)?;
        let transport = dialog.transport();
        let cseq = dialog.next_cseq();
        let mut req = Request::new(method.clone(), uri);
        let via = self.via(transport);
        let mut headers: Vec<(HeaderName, String)> = vec![
            (HeaderName::Via, via),
            (HeaderName::MaxForwards, "70".into()),
            (HeaderName::From, dialog.local_party().to_owned()),
            (HeaderName::To, dialog.remote_party().to_owned()),
            (HeaderName::CallId, dialog.call_id.clone()),
            (HeaderName::CSeq, format!("{cseq} {method}")),
        ];
        for route in &dialog.route_set {
            headers.push((HeaderName::Route, route.clone()));
        }
        if matches!(method, Method::Invite | Method::Update) && !dialog.local_contact.is_empty() {
            headers.push((HeaderName::Contact, format!("<{}>", dialog.local_contact)));
        }
        headers.push((HeaderName::UserAgent, self.cfg.user_agent.clone()));
        for (name, value) in headers {
            req.headers.push(msg::header(name, value)?);
        }
        msg::fix_content_length(&mut req.headers, 0)?;
        Ok(req)
    }

    /// Where requests in `call`'s dialog go: its flow (a connection the
    /// peer opened), else the first route or the remote target.
    pub(crate) fn dialog_hop(&self, call: CallKey, dialog: &Dialog) -> Result<Hop, String> {
        let flow = self.calls.get(&call).and_then(|c| c.flow);
        self.hop_for_uri(&dialog.next_hop_uri(), flow)
    }

    /// `Cancel`: RFC 3261 §9.1, deferred until a provisional has arrived.
    fn cancel(&mut self, call: CallKey) -> Result<(), String> {
        if self.recovered.contains_key(&call) {
            return self.cancel_recovered(call);
        }
        let c = self.calls.get_mut(&call).ok_or("no such call")?;
        let Some(Invite::Uac(u)) = c.invite.as_mut() else {
            return Err("not an outgoing call".into());
        };
        if c.dialog.is_some() {
            return Err("the INVITE is answered already; use BYE".into());
        }
        u.cancelled = true;
        if !u.provisional {
            u.cancel_deferred = true;
            return Ok(());
        }
        self.send_cancel(call)
    }

    fn send_cancel(&mut self, call: CallKey) -> Result<(), String> {
        let (request, hop) = match self.calls.get(&call).and_then(|c| c.invite.as_ref()) {
            Some(Invite::Uac(u)) => (u.request.clone(), u.hop.clone()),
            _ => return Err("no pending INVITE".into()),
        };
        let cancel = crate::pending::cancel_request(&request)?;
        self.send_request(cancel, hop, Some(call), Purpose::Other(Command::Cancel))
            .ok_or("the CANCEL could not start a transaction")?;
        Ok(())
    }

    /// `Bye`: in the confirmed dialog (or after our 2xx, before its ACK).
    pub(crate) fn bye(&mut self, call: CallKey, reason: Option<&str>) -> Result<(), String> {
        let c = self.calls.get_mut(&call).ok_or("no such call")?;
        let mut dialog = c
            .dialog
            .take()
            .ok_or("the call has no confirmed dialog; use CANCEL or a final response")?;
        let bye = self
            .in_dialog_request(&mut dialog, Method::Bye)
            .and_then(|mut bye| {
                // RFC 3326: why the call ends.
                if let Some(reason) = reason {
                    bye.headers
                        .push(msg::header(HeaderName::Reason, reason.to_owned())?);
                }
                Ok(bye)
            });
        let hop = self.dialog_hop(call, &dialog);
        self.drop_call(call);
        let (bye, hop) = (bye?, hop?);
        self.send_request(bye, hop, Some(call), Purpose::Other(Command::Bye))
            .ok_or("the BYE could not start a transaction")?;
        Ok(())
    }

    /// `Info`: in the confirmed dialog, or the first early dialog of our
    /// INVITE (RFC 6086 allows INFO in an early dialog).
    fn info(&mut self, call: CallKey, content_type: &str, body: String) -> Result<(), String> {
        let c = self.calls.get_mut(&call).ok_or("no such call")?;
        let mut dialog = match (&mut c.dialog, &c.invite) {
            (Some(d), _) => d.clone(),
            (None, Some(Invite::Uac(u))) if !u.early.is_empty() => {
                let contact = msg::value(&u.request.headers, &HeaderName::Contact)
                    .map(|c| strip_angles(&c))
                    .unwrap_or_default();
                return Err(format!(
                    "INFO in an early dialog needs the provisional's Contact ({contact}); held until the answer"
                ));
            }
            _ => return Err("the call has no dialog yet".into()),
        };
        let mut req = self.in_dialog_request(&mut dialog, Method::Info)?;
        if let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
            d.local_cseq = dialog.local_cseq;
        }
        if content_type.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/trickle-ice-sdpfrag")
        }) {
            req.headers
                .push(msg::other_header("Info-Package", "trickle-ice")?);
        }
        req.headers.push(msg::header(
            HeaderName::ContentType,
            content_type.to_owned(),
        )?);
        msg::fix_content_length(&mut req.headers, body.len())?;
        req.set_body(Bytes::from(body));
        let hop = self.dialog_hop(call, &dialog)?;
        self.send_request(req, hop, Some(call), Purpose::Other(Command::Info))
            .ok_or("the INFO could not start a transaction")?;
        Ok(())
    }
}

/// The dialog a response of the callee to our INVITE makes (RFC 3261
/// §12.1.2): the route set is the Record-Route reversed, the remote target
/// the Contact.
pub(crate) fn uac_dialog(request: &Request, resp: &Response, local_contact: String) -> Dialog {
    let mut route_set: Vec<String> = msg::values(&resp.headers, &HeaderName::RecordRoute)
        .iter()
        .flat_map(|v| split_list(v))
        .collect();
    route_set.reverse();
    let from = msg::value(&request.headers, &HeaderName::From).unwrap_or_default();
    let to = msg::value(&resp.headers, &HeaderName::To).unwrap_or_default();
    Dialog {
        role: Role::Uac,
        call_id: msg::call_id(&request.headers).unwrap_or_default(),
        local_tag: msg::from_tag(&request.headers).unwrap_or_default(),
        remote_tag: msg::to_tag(&resp.headers).unwrap_or_default(),
        from,
        to,
        local_cseq: msg::cseq(&request.headers).map_or(1, |c| c.sequence),
        remote_cseq: None,
        local_contact,
        remote_target: msg::address_uri(&resp.headers, &HeaderName::Contact)
            .unwrap_or_else(|| request.uri.to_string()),
        route_set,
    }
}

/// The From URI a peer sees: the caller's, with the user and host its
/// identity policy sets.
fn shown_from(from: &str, identity: &crate::api::Identity) -> Result<String, String> {
    if identity.from_user.is_none() && identity.from_domain.is_none() {
        return Ok(from.to_owned());
    }
    let parsed = msg::parse_uri(from)?;
    let user = match &identity.from_user {
        Some(u) => u.clone(),
        None => parsed
            .user()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .unwrap_or_default(),
    };
    let host = match &identity.from_domain {
        Some(h) => h.clone(),
        None => parsed.host().map(|h| h.to_string()).unwrap_or_default(),
    };
    let uri = if user.is_empty() {
        format!("sip:{host}")
    } else {
        format!("sip:{user}@{host}")
    };
    msg::parse_uri(&uri).map_err(|e| format!("the From shown to the peer, {uri}: {e}"))?;
    Ok(uri)
}
