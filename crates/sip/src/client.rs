//! Outgoing INVITEs: the UAC side.
//!
//! What rsipstack does here: `do_invite_async` builds and sends the INVITE,
//! retransmits it (timer A), times it out with a local 408 (timer B), ACKs
//! every final response — the 2xx once, and again for each retransmitted 2xx
//! during the RFC 6026 Accepted window — and registers the confirmed dialog
//! so the peer's BYE finds it. `InviteDialog::cancel` defers the CANCEL until
//! a provisional response when none came yet (RFC 3261 §9.1). It PRACKs
//! every provisional with `Require: 100rel` and an RSeq (RFC 3262) before
//! reporting it, whether or not we advertised `100rel`. Forks (RFC 3261
//! §13.2.2.4): each provisional is reported as an `Early` state, whatever
//! its To tag; only the first 2xx confirms the dialog; each further 2xx with
//! another To tag is ACKed by the transaction and BYE'd by the dialog layer
//! from that response's Contact/Record-Route, without a dialog entry or a
//! state change; a later non-2xx is dropped by the transaction.
//! What we add: routing (outbound proxy or Request-URI), the Contact for the
//! chosen transport, `Supported: 100rel[, …]`, events (at most one
//! `Answered`), and the table entry.

use crate::forks::ForkWatch;
use crate::info::{REL100, supported_tags};
use crate::server::{sdp_body, transport_name};
use crate::table::{CallEntry, Role};
use crate::watch::Watched;
use crate::{Inner, OutgoingInvite, SipError, SipEvent};
use rsipstack::dialog::dialog::TerminatedReason;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{Response, Transport, Uri};
use rsipstack::transport::SipAddr;
use std::sync::Arc;
use stox_mapping::ids::CallId;
use tracing::{Instrument, debug, info, info_span, warn};

/// `sip:host:port[;transport=tcp]` → the next hop for out-of-dialog requests.
pub(crate) fn parse_proxy(proxy: &str) -> Result<SipAddr, SipError> {
    let uri = parse_uri(proxy)?;
    SipAddr::try_from(&uri).map_err(|_| SipError::InvalidUri(proxy.to_string()))
}

/// The outbound proxy as a loose-routing `Route` header value.
pub(crate) fn proxy_route(proxy: &str) -> Result<rsipstack::sip::typed::Route, SipError> {
    let uri = parse_uri(proxy)?;
    let mut route = rsipstack::sip::typed::Route::from(uri);
    if !route.has_lr() {
        let text = format!("<{}>", with_lr(proxy));
        route = rsipstack::sip::typed::Route::parse(&text)
            .map_err(|_| SipError::InvalidUri(proxy.to_string()))?;
    }
    Ok(route)
}

/// `sip:host:port;params` → the same URI with `;lr` added.
fn with_lr(proxy: &str) -> String {
    let uri = proxy.trim().trim_start_matches('<').trim_end_matches('>');
    match uri.split_once('?') {
        Some((base, headers)) => format!("{base};lr?{headers}"),
        None => format!("{uri};lr"),
    }
}

/// A `sip:`/`sips:` URI with a host (rsipstack's parser alone is lenient).
fn parse_uri(text: &str) -> Result<Uri, SipError> {
    let invalid = || SipError::InvalidUri(text.to_string());
    let trimmed = text.trim().trim_start_matches('<').trim_end_matches('>');
    let lower = trimmed.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:"))
        || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    let uri = Uri::try_from(trimmed).map_err(|_| invalid())?;
    if uri.host_with_port.host.to_string().is_empty() {
        return Err(invalid());
    }
    Ok(uri)
}

pub(crate) fn invite(inner: &Arc<Inner>, invite: OutgoingInvite) -> Result<(), SipError> {
    let callee = parse_uri(&invite.request_uri)?;
    let caller = parse_uri(&invite.from)?;
    if inner.calls.contains(&invite.call_id) {
        return Err(SipError::Stack(format!(
            "call {} already exists",
            invite.call_id
        )));
    }
    let mut destination = inner.outbound_proxy.clone();
    let transport = destination
        .as_ref()
        .and_then(|d| d.r#type)
        .or_else(|| callee.transport().cloned())
        .unwrap_or(Transport::Udp);
    let transport = large_request_transport(inner, &invite, transport, &mut destination, &callee)?;
    let contact = inner
        .contact(transport)
        .ok_or_else(|| SipError::Stack("no SIP listener configured".into()))?;
    let option = InviteOption {
        caller,
        callee,
        destination,
        content_type: Some("application/sdp".into()),
        offer: Some(invite.sdp.into_bytes()),
        contact,
        call_id: Some(invite.call_id.to_string()),
        route_set: inner.outbound_route.iter().cloned().collect(),
        // One `Supported` header with 100rel and the caller's tags, rather
        // than `support_prack` (which would add a second one).
        headers: Some(crate::info::invite_headers(&invite.supported)),
        ..Default::default()
    };
    let call_id = invite.call_id;
    let span = info_span!("sip_call", call_id = %call_id);
    let _entered = span.enter();
    if !inner.watcher.register(&call_id, Watched::uac()) {
        return Err(SipError::Stack(format!("call {call_id} already exists")));
    }
    let (dialog, outcome) = match inner
        .dialogs
        .do_invite_async(option, inner.watcher.states())
    {
        Ok(started) => started,
        Err(e) => {
            inner.watcher.unregister(&call_id);
            return Err(SipError::Stack(e.to_string()));
        }
    };
    let forks = ForkWatch::new(&dialog.initial_request());
    let entry = CallEntry {
        role: Role::Uac,
        dialog: dialog.clone(),
        uas: None,
        forks: Some(Arc::new(forks)),
    };
    if !inner.calls.insert_new(call_id.clone(), entry) {
        outcome.abort();
        inner.watcher.unregister(&call_id);
        return Err(SipError::Stack(format!("call {call_id} already exists")));
    }
    debug!(transport = transport_name(transport), "INVITE sent");
    inner.watcher.outcome(call_id, outcome);
    Ok(())
}

/// The largest UDP payload over IPv4 (65,535 − 8 − 20).
pub(crate) const UDP_MAX: usize = 65_507;

/// Roughly how large the INVITE will be on the wire: the body plus its
/// header lines (rsipstack builds them; this errs on the large side).
fn estimated_size(invite: &OutgoingInvite, route: usize) -> usize {
    invite.sdp.len()
        + 2 * invite.request_uri.len()
        + invite.from.len()
        + 2 * invite.call_id.as_str().len()
        + route
        + invite.supported.iter().map(|t| t.len() + 2).sum::<usize>()
        + 600
}

/// RFC 3261 §18.1.1: a request within 200 bytes of the path MTU goes over
/// TCP — when TCP is configured for large requests, and the next hop is not
/// pinned to UDP. Otherwise it stays on UDP while it fits one datagram, and
/// fails at once (nothing is sent, the call ends) when it does not.
fn large_request_transport(
    inner: &Inner,
    invite: &OutgoingInvite,
    transport: Transport,
    destination: &mut Option<SipAddr>,
    callee: &Uri,
) -> Result<Transport, SipError> {
    if transport != Transport::Udp {
        return Ok(transport);
    }
    let route = inner
        .outbound_route
        .as_ref()
        .map_or(0, |r| r.to_string().len() + 9);
    let bytes = estimated_size(invite, route);
    if bytes + 200 <= inner.udp_mtu {
        return Ok(transport);
    }
    let next_hop = destination
        .as_ref()
        .map_or_else(|| callee.to_string(), ToString::to_string);
    let pinned_udp = match destination {
        Some(d) => d.r#type == Some(Transport::Udp),
        None => callee.transport() == Some(&Transport::Udp),
    };
    if inner.large_requests_over_tcp && inner.has_tcp && !pinned_udp {
        debug!(bytes, %next_hop, "large request: sent over TCP (RFC 3261 §18.1.1)");
        match destination {
            Some(d) => d.r#type = Some(Transport::Tcp),
            None => {
                let mut addr = SipAddr::try_from(callee)
                    .map_err(|_| SipError::InvalidUri(callee.to_string()))?;
                addr.r#type = Some(Transport::Tcp);
                *destination = Some(addr);
            }
        }
        return Ok(Transport::Tcp);
    }
    if bytes > UDP_MAX {
        return Err(SipError::TooLarge {
            bytes,
            limit: UDP_MAX,
            next_hop,
        });
    }
    Ok(transport)
}

pub(crate) fn cancel(inner: &Inner, call_id: &CallId) -> Result<(), SipError> {
    let entry = inner
        .calls
        .get(call_id)
        .ok_or_else(|| SipError::UnknownCall(call_id.clone()))?;
    if entry.role != Role::Uac {
        return Err(SipError::Stack(format!(
            "call {call_id} is not an outgoing call"
        )));
    }
    let dialog = entry.dialog;
    let span = info_span!("sip_call", call_id = %call_id);
    tokio::spawn(
        async move {
            info!("cancelling INVITE");
            if let Err(e) = dialog.cancel().await {
                warn!(error = %e, "CANCEL failed");
            }
        }
        .instrument(span),
    );
    Ok(())
}

/// Mirrors rsipstack's PRACK decision (`prepare_prack_request`): a
/// provisional with `Require: 100rel` and an RSeq is PRACKed unless its RSeq
/// is below the last one PRACKed (one counter for all forks).
#[derive(Debug, Default)]
pub(crate) struct PrackTracker {
    last_rseq: Option<u32>,
}

impl PrackTracker {
    pub fn pracked(&mut self, resp: &Response) -> bool {
        if !resp.header_contains_token("Require", REL100) {
            return false;
        }
        let Some(rseq) = resp.rseq_value() else {
            warn!("reliable provisional without RSeq: not PRACKed");
            return false;
        };
        if self.last_rseq.is_some_and(|last| rseq < last) {
            warn!(rseq, "reliable provisional with an old RSeq: not PRACKed");
            return false;
        }
        self.last_rseq = Some(rseq);
        true
    }
}

pub(crate) fn provisional(call_id: &CallId, resp: &Response, reliable: bool) -> SipEvent {
    let status = resp.status_code.code();
    let tag = crate::forks::to_tag(resp);
    debug!(status, %tag, reliable, "provisional response");
    SipEvent::Provisional {
        call_id: call_id.clone(),
        status,
        sdp: sdp_body(resp.headers.iter(), &resp.body),
        reliable,
        supported: supported_tags(resp.headers.iter()),
    }
}

/// Our INVITE answered with `resp` (a 2xx).
pub(crate) fn answered(call_id: &CallId, resp: &Response) -> SipEvent {
    SipEvent::Answered {
        call_id: call_id.clone(),
        status: resp.status_code.code(),
        sdp: sdp_body(resp.headers.iter(), &resp.body),
        supported: supported_tags(resp.headers.iter()),
    }
}

pub(crate) fn rejected(
    call_id: &CallId,
    resp: Option<Response>,
    reason: &TerminatedReason,
) -> SipEvent {
    let (status, reason) = match resp {
        Some(resp) if resp.status_code.code() >= 300 => {
            let phrase = resp
                .wire_reason
                .clone()
                .unwrap_or_else(|| resp.status_code.text().to_string());
            (resp.status_code.code(), phrase)
        }
        // Ended without a final response of its own: cancelled before any
        // provisional, or the transaction gave up.
        _ => match reason {
            TerminatedReason::UacCancel => (487, "Request Terminated".to_string()),
            _ => (408, "Request Timeout".to_string()),
        },
    };
    debug!(status, %reason, "INVITE rejected");
    SipEvent::Rejected {
        call_id: call_id.clone(),
        status,
        reason,
    }
}
