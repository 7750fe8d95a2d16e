//! Incoming requests: the dispatcher, the UAS side of INVITE dialogs and
//! [`respond`].
//!
//! What rsipstack does here: the transaction layer absorbs retransmissions,
//! answers a CANCEL with 200 and hands it to the INVITE's dialog, which sends
//! 487; the dialog answers an in-dialog BYE with 200 and retransmits nothing
//! itself (the transaction retransmits our 2xx until the ACK, and ends the
//! dialog with `Terminated(Timeout)` when it never comes — timer H).
//! What we add: the 100 Trying right away, request routing by method, the
//! Call-ID table, events, and answers for everything we do not support.

use crate::table::{CallEntry, Role, UasInvite};
use crate::watch::Watched;
use crate::{Inner, SipError, SipEvent};
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Request, StatusCode, Transport};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::{Transaction, TransactionEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use stox_mapping::ids::CallId;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

/// The methods we implement (advertised in `Allow`).
pub(crate) const ALLOWED: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Info,
];

fn allow_header() -> Header {
    Header::Allow("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO".into())
}

/// Reads new server transactions until `cancel` fires.
pub(crate) async fn dispatch(
    inner: Arc<Inner>,
    mut incoming: TransactionReceiver,
    cancel: CancellationToken,
) {
    loop {
        let tx = tokio::select! {
            () = cancel.cancelled() => break,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
        };
        route(&inner, tx);
    }
    debug!("sip dispatcher stopped");
}

fn route(inner: &Arc<Inner>, tx: Transaction) {
    let call_id = tx
        .original
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let in_dialog = matches!(tx.original.to_header().and_then(|t| t.tag()), Ok(Some(_)));
    let span = info_span!("sip_call", call_id = %call_id, method = %tx.original.method);
    let inner = inner.clone();
    let task = async move {
        match tx.original.method {
            Method::Invite if !in_dialog => on_new_invite(inner, tx, CallId::new(call_id)).await,
            // Re-INVITE (hold, codec change, session refresh) is a later
            // issue: refuse it with 488, which leaves the session as it was
            // (RFC 3261 §14.2) instead of dropping it silently.
            Method::Invite => {
                let known = inner.calls.contains(&CallId::new(call_id));
                let status = if known {
                    StatusCode::NotAcceptableHere
                } else {
                    StatusCode::CallTransactionDoesNotExist
                };
                info!(status = status.code(), "re-INVITE refused");
                final_reply(&inner, tx, status, vec![]).await;
            }
            Method::Bye => on_bye(inner, tx).await,
            // Keep-alive pings from proxies, in or out of a dialog.
            Method::Options => {
                let headers = vec![allow_header(), Header::Accept("application/sdp".into())];
                final_reply(&inner, tx, StatusCode::OK, headers).await;
            }
            // Normally answered by the transaction layer (200, or 481 when
            // nothing matches); a CANCEL that reaches us matched nothing.
            Method::Cancel => {
                final_reply(&inner, tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
            }
            Method::Ack => {}
            Method::Info if in_dialog => {
                crate::info::on_info(inner, tx, CallId::new(call_id)).await;
            }
            Method::Info => {
                info!("INFO outside a dialog");
                final_reply(&inner, tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
            }
            // UPDATE in a dialog is a later issue.
            Method::Update if in_dialog => {
                info!("in-dialog request not implemented yet");
                final_reply(&inner, tx, StatusCode::NotImplemented, vec![allow_header()]).await;
            }
            _ => {
                info!("method not allowed");
                final_reply(
                    &inner,
                    tx,
                    StatusCode::MethodNotAllowed,
                    vec![allow_header()],
                )
                .await;
            }
        }
    };
    tokio::spawn(task.instrument(span));
}

/// Sends a final response from the dispatcher and, for an INVITE, keeps the
/// transaction until it ends so the response is retransmitted and the ACK
/// absorbed.
pub(crate) async fn final_reply(
    inner: &Inner,
    mut tx: Transaction,
    status: StatusCode,
    headers: Vec<Header>,
) {
    if let Err(e) = tx.reply_with(status, headers, None).await {
        warn!(error = %e, "cannot send response");
        return;
    }
    if tx.original.method == Method::Invite {
        let drain = async { while tx.receive().await.is_some() {} };
        let _ = tokio::time::timeout(inner.t1x64, drain).await;
    }
}

async fn on_new_invite(inner: Arc<Inner>, mut tx: Transaction, call_id: CallId) {
    if inner.calls.contains(&call_id) {
        warn!("INVITE reuses the Call-ID of a live call");
        final_reply(&inner, tx, StatusCode::LoopDetected, vec![]).await;
        return;
    }
    let transport = tx
        .connection
        .as_ref()
        .map(|c| c.transport())
        .unwrap_or(Transport::Udp);
    let contact = inner.contact(transport);
    if !inner
        .watcher
        .register(&call_id, Watched::Uas { acked: false })
    {
        warn!("INVITE reuses the Call-ID of a call still winding down");
        final_reply(&inner, tx, StatusCode::LoopDetected, vec![]).await;
        return;
    }
    let dialog = match inner.dialogs.get_or_create_server_invite(
        &tx,
        inner.watcher.states(),
        None,
        contact.clone(),
    ) {
        Ok(dialog) => dialog,
        Err(e) => {
            inner.watcher.unregister(&call_id);
            warn!(error = %e, "cannot create server dialog");
            final_reply(&inner, tx, StatusCode::BadRequest, vec![]).await;
            return;
        }
    };
    if let Err(e) = tx.send_trying().await {
        warn!(error = %e, "cannot send 100 Trying");
    }
    let event = incoming_invite_event(&tx, call_id.clone(), transport);
    let entry = CallEntry {
        role: Role::Uas,
        dialog: dialog.clone(),
        uas: Some(UasInvite {
            tu_sender: tx.tu_sender.clone(),
            request: tx.original.clone(),
            contact,
        }),
        forks: None,
    };
    if !inner.calls.insert_new(call_id.clone(), entry) {
        // Lost a race with another INVITE of the same Call-ID.
        inner.watcher.unregister(&call_id);
        dialog.reject(Some(StatusCode::LoopDetected), None).ok();
    } else {
        debug!(transport = transport_name(transport), "incoming INVITE");
        inner.emit(event).await;
    }
    let mut dialog = dialog;
    if let Err(e) = dialog.handle(&mut tx).await {
        warn!(error = %e, "INVITE transaction ended with an error");
    }
}

fn incoming_invite_event(tx: &Transaction, call_id: CallId, transport: Transport) -> SipEvent {
    let req = &tx.original;
    let uri_of =
        |typed: Result<rsipstack::sip::Uri, _>| typed.map(|u| u.to_string()).unwrap_or_default();
    let from = uri_of(req.from_header().and_then(|h| h.typed()).map(|f| f.uri));
    let to = uri_of(req.to_header().and_then(|h| h.typed()).map(|t| t.uri));
    let source = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    SipEvent::IncomingInvite {
        call_id,
        request_uri: req.uri.to_string(),
        from,
        to,
        sdp: sdp_body(req.headers.iter(), &req.body),
        transport: transport_name(transport),
        source,
        supported: crate::info::supported_tags(req.headers.iter()),
    }
}

/// The body as SDP, if the message says it is SDP.
pub(crate) fn sdp_body<'a>(
    headers: impl Iterator<Item = &'a Header>,
    body: &[u8],
) -> Option<String> {
    let is_sdp = headers.into_iter().any(|h| match h {
        Header::ContentType(ct) => ct
            .value()
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/sdp")),
        _ => false,
    });
    if !is_sdp || body.is_empty() {
        return None;
    }
    match String::from_utf8(body.to_vec()) {
        Ok(sdp) => Some(sdp),
        Err(_) => {
            warn!("SDP body is not UTF-8, ignored");
            None
        }
    }
}

pub(crate) fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
        Transport::Tls => "tls",
        Transport::Sctp | Transport::TlsSctp => "sctp",
    }
}

async fn on_bye(inner: Arc<Inner>, mut tx: Transaction) {
    match inner.dialogs.match_dialog(&tx) {
        Some(Dialog::Invite(mut dialog)) => {
            // Answers 200 and ends the dialog; the watcher reports the Bye.
            if let Err(e) = dialog.handle(&mut tx).await {
                warn!(error = %e, "BYE handling failed");
            }
        }
        _ => {
            info!("BYE for no known dialog");
            final_reply(&inner, tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
        }
    }
}

/// Answers our pending incoming INVITE.
pub(crate) fn respond(
    inner: &Inner,
    call_id: &CallId,
    status: u16,
    reason: Option<String>,
    sdp: Option<String>,
    retry_after: Option<u32>,
) -> Result<(), SipError> {
    let entry = inner
        .calls
        .get(call_id)
        .ok_or_else(|| SipError::UnknownCall(call_id.clone()))?;
    let uas = match (entry.role, entry.uas) {
        (Role::Uas, Some(uas)) => uas,
        _ => {
            return Err(SipError::Stack(format!(
                "call {call_id} is not an incoming call"
            )));
        }
    };
    let dialog = entry.dialog;
    let code = status_code(status, reason);
    let _span = info_span!("sip_call", call_id = %call_id).entered();
    debug!(status, "responding to INVITE");
    let stack = |e: rsipstack::Error| SipError::Stack(e.to_string());
    let sdp_headers = || {
        sdp.as_ref()
            .map(|_| vec![Header::ContentType("application/sdp".into())])
    };
    let body = sdp.clone().map(String::into_bytes);
    match status {
        100 => Ok(()), // sent as soon as the INVITE arrived
        180 if sdp.is_none() => dialog.ringing(None, None).map_err(stack),
        183 if sdp.is_some() => dialog.ringing(sdp_headers(), body).map_err(stack),
        101..=199 => send_custom(inner, &dialog, &uas, code, sdp),
        200..=299 => dialog.accept(sdp_headers(), body).map_err(stack),
        300..=699 if retry_after.is_some() => {
            // rsipstack's reject() takes no headers: send our response
            // through the transaction first; reject() then only ends the
            // dialog (the transaction refuses a second final response).
            let extra = retry_after
                .map(|secs| Header::RetryAfter(secs.to_string().into()))
                .into_iter()
                .collect();
            send_final(inner, &dialog, &uas, code.clone(), extra)?;
            dialog.reject(Some(code), None).map_err(stack)
        }
        300..=699 => dialog.reject(Some(code), None).map_err(stack),
        _ => Err(SipError::Stack(format!("invalid status code {status}"))),
    }
}

/// The status to send: the standard phrase unless `reason` is given.
fn status_code(status: u16, reason: Option<String>) -> StatusCode {
    match reason {
        Some(reason) if !reason.is_empty() => {
            StatusCode::Other(status, reason.replace(['\r', '\n'], " "))
        }
        _ => StatusCode::from(status),
    }
}

/// A final non-2xx with extra headers (Retry-After), sent through the
/// INVITE transaction.
fn send_final(
    inner: &Inner,
    dialog: &InviteDialog,
    uas: &UasInvite,
    code: StatusCode,
    headers: Vec<Header>,
) -> Result<(), SipError> {
    let mut resp = inner.endpoint.make_response(&uas.request, code, None);
    if let Ok(to) = resp.to_header_mut()
        && matches!(to.tag(), Ok(None))
    {
        to.mut_tag(dialog.id().local_tag.into()).ok();
    }
    resp.headers.extend(headers);
    uas.tu_sender
        .send(TransactionEvent::Respond(resp))
        .map_err(|e| SipError::Stack(e.to_string()))
}

/// A provisional response rsipstack's `ringing()` cannot build (180 with
/// SDP, 183 without, other 1xx), sent through the INVITE transaction.
fn send_custom(
    inner: &Inner,
    dialog: &InviteDialog,
    uas: &UasInvite,
    code: StatusCode,
    sdp: Option<String>,
) -> Result<(), SipError> {
    let request: &Request = &uas.request;
    let mut resp = inner
        .endpoint
        .make_response(request, code, sdp.map(String::into_bytes));
    if let Ok(to) = resp.to_header_mut()
        && matches!(to.tag(), Ok(None))
    {
        to.mut_tag(dialog.id().local_tag.into()).ok();
    }
    for rr in request.record_route_headers() {
        resp.headers.push(Header::RecordRoute(rr.clone()));
    }
    if !resp.body.is_empty() {
        resp.headers
            .push(Header::ContentType("application/sdp".into()));
    }
    if let Some(contact) = &uas.contact {
        resp.headers
            .push(Header::Contact(format!("<{contact}>").into()));
    }
    uas.tu_sender
        .send(TransactionEvent::Respond(resp))
        .map_err(|e| SipError::Stack(e.to_string()))
}
