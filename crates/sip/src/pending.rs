//! Unanswered INVITEs across a restart: [`snapshot`], [`restore`], and
//! ending them on the wire afterwards ([`cancel`], [`respond`]).
//!
//! A call killed with the process while it was being set up cannot be
//! resumed (its transactions died), but it can still be ended properly: our
//! own INVITE with a CANCEL (RFC 3261 §9.1), the peer's INVITE with a final
//! response (§17.2.1). Both only need the INVITE's head, which is stored
//! with the call's row while it rings (column `sip_pending`). The text form:
//!
//! ```text
//! stox-sip-pending/1
//! role: uas
//! local-tag: 1a2b3c
//!
//! INVITE sip:juliet@example.com SIP/2.0
//! Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776;received=198.51.100.7;rport=5060
//! …every header line as received (uas) or sent (uac), no body
//! ```
//!
//! `role: uac` is our INVITE: the CANCEL is built from it exactly as for a
//! live call (same Request-URI, top Via, From, To, Call-ID, CSeq number and
//! Route set) and sent in a client transaction of its own, which
//! retransmits it over UDP until answered. The INVITE's final response (487)
//! that follows is not ACKed: its transaction died with the old process, so
//! the callee retransmits it until its timer H and gives up.
//!
//! `role: uas` is the peer's INVITE: a new server transaction is created
//! for it as if the old one had never gone, the final response is sent to
//! where the Via says (received/rport), retransmitted over UDP until the
//! ACK, and the ACK is absorbed.

use crate::table::Role;
use crate::{Inner, SipError};
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Request, SipMessage, StatusCode, StatusCodeKind};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use stox_mapping::ids::CallId;
use tracing::{Instrument, debug, info, info_span, warn};

const MAGIC: &str = "stox-sip-pending/1";

/// An INVITE restored from its snapshot, waiting to be ended.
#[derive(Debug, Clone)]
pub(crate) struct Recovered {
    role: Role,
    request: Request,
    local_tag: Option<String>,
}

/// Restored INVITEs by Call-ID (each is used once, then forgotten).
#[derive(Default)]
pub(crate) struct RecoveredTable {
    calls: Mutex<HashMap<CallId, Recovered>>,
}

impl RecoveredTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<CallId, Recovered>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, call_id: &CallId) -> Option<Recovered> {
        let mut calls = self.lock();
        let r = calls.remove(call_id);
        stox_mapping::tables::shrink(&mut calls);
        r
    }

    pub fn contains(&self, call_id: &CallId) -> bool {
        self.lock().contains_key(call_id)
    }
}

/// The pending INVITE of `call_id` as text, while it is pending: ours until
/// it is answered, the peer's until we answer it.
pub(crate) fn snapshot(inner: &Inner, call_id: &CallId) -> Option<String> {
    let entry = inner.calls.get(call_id)?;
    let state = entry.dialog.state();
    if state.is_confirmed() || state.is_terminated() {
        return None;
    }
    let (role, request, local_tag) = match (entry.role, entry.uas) {
        (Role::Uac, _) => (Role::Uac, entry.dialog.initial_request(), None),
        (Role::Uas, Some(uas)) => (
            Role::Uas,
            uas.request,
            Some(entry.dialog.id().local_tag.clone()),
        ),
        (Role::Uas, None) => return None,
    };
    Some(encode(role, &request, local_tag.as_deref()))
}

fn encode(role: Role, request: &Request, local_tag: Option<&str>) -> String {
    let mut head = request.clone();
    head.body = Vec::new();
    head.headers
        .retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    let mut text = format!(
        "{MAGIC}\nrole: {}\n",
        match role {
            Role::Uac => "uac",
            Role::Uas => "uas",
        }
    );
    if let Some(tag) = local_tag {
        text.push_str(&format!("local-tag: {tag}\n"));
    }
    text.push('\n');
    text.push_str(&head.to_string());
    text
}

fn decode(text: &str) -> Result<Recovered, String> {
    let (meta, head) = text
        .split_once("\n\n")
        .ok_or("no blank line between the fields and the request")?;
    let mut lines = meta.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("not a {MAGIC} snapshot"));
    }
    let mut role = None;
    let mut local_tag = None;
    for line in lines {
        match line.split_once(": ") {
            Some(("role", "uac")) => role = Some(Role::Uac),
            Some(("role", "uas")) => role = Some(Role::Uas),
            Some(("local-tag", tag)) if !tag.is_empty() => local_tag = Some(tag.to_owned()),
            _ => return Err(format!("unknown line {line:?}")),
        }
    }
    let role = role.ok_or("no role")?;
    let mut head = head.to_owned();
    if !head.ends_with("\r\n\r\n") {
        head = format!("{}\r\n\r\n", head.trim_end());
    }
    let request = match SipMessage::try_from(head.as_bytes()) {
        Ok(SipMessage::Request(r)) if r.method == Method::Invite => r,
        Ok(_) => return Err("the stored message is not an INVITE".into()),
        Err(e) => return Err(format!("the stored INVITE does not parse: {e}")),
    };
    if let Some(problem) = [
        request.call_id_header().err().map(|_| "no Call-ID"),
        request.cseq_header().err().map(|_| "no CSeq"),
        request.via_header().err().map(|_| "no Via"),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        return Err(problem.into());
    }
    Ok(Recovered {
        role,
        request,
        local_tag,
    })
}

/// Keeps the pending INVITE of `call_id` from `text`, so that [`cancel`] or
/// [`respond`] can end it.
pub(crate) fn restore(inner: &Inner, call_id: &CallId, text: &str) -> Result<(), SipError> {
    let refuse = |detail: String| SipError::Snapshot {
        call_id: call_id.clone(),
        detail,
    };
    let recovered = decode(text).map_err(refuse)?;
    let stored = recovered
        .request
        .call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if stored != call_id.as_str() {
        return Err(refuse(format!("the snapshot belongs to Call-ID {stored}")));
    }
    inner.recovered.lock().insert(call_id.clone(), recovered);
    Ok(())
}

/// CANCELs a restored INVITE of ours. `None` when `call_id` was not
/// restored (a live call: the caller asks rsipstack instead).
pub(crate) fn cancel(inner: &Arc<Inner>, call_id: &CallId) -> Option<Result<(), SipError>> {
    let recovered = inner.recovered.take(call_id)?;
    if recovered.role != Role::Uac {
        return Some(Err(SipError::Stack(format!(
            "call {call_id} was not our INVITE"
        ))));
    }
    let cancel = match cancel_request(&recovered.request) {
        Ok(req) => req,
        Err(e) => return Some(Err(SipError::Stack(e))),
    };
    let key = match TransactionKey::from_request(&cancel, TransactionRole::Client) {
        Ok(key) => key,
        Err(e) => return Some(Err(SipError::Stack(e.to_string()))),
    };
    let endpoint = inner.endpoint.clone();
    let wait = inner.t1x64;
    let span = info_span!("sip_call", call_id = %call_id);
    tokio::spawn(
        async move {
            let mut tx = Transaction::new_client(key, cancel, endpoint, None);
            if let Err(e) = tx.send().await {
                warn!(error = %e, "CANCEL of the INVITE left by the previous run could not be sent");
                return;
            }
            let answer = tokio::time::timeout(wait, async {
                while let Some(msg) = tx.receive().await {
                    if let SipMessage::Response(resp) = msg
                        && resp.status_code.kind() != StatusCodeKind::Provisional
                    {
                        return Some(resp.status_code.code());
                    }
                }
                None
            })
            .await;
            match answer {
                Ok(Some(status)) => info!(status, "INVITE left by the previous run cancelled"),
                _ => warn!("CANCEL of the INVITE left by the previous run got no final answer"),
            }
        }
        .instrument(span),
    );
    Some(Ok(()))
}

/// RFC 3261 §9.1: the CANCEL of `invite` (same Request-URI, Call-ID, To,
/// From, top Via, Route set and CSeq number; method CANCEL; no body).
fn cancel_request(invite: &Request) -> Result<Request, String> {
    let mut req = invite.clone();
    let seq = req
        .cseq_header()
        .and_then(|c| c.seq())
        .map_err(|e| e.to_string())?;
    let mut first_via = true;
    req.headers.retain(|h| match h {
        Header::ContentLength(_) | Header::ContentType(_) => false,
        // Only the top Via (ours): a CANCEL is hop-by-hop.
        Header::Via(_) => std::mem::replace(&mut first_via, false),
        _ => true,
    });
    req.method = Method::Cancel;
    req.cseq_header_mut()
        .and_then(|c| c.mut_seq(seq))
        .and_then(|c| c.mut_method(Method::Cancel))
        .map_err(|e| e.to_string())?;
    req.body = Vec::new();
    req.headers.push(Header::ContentLength(0u32.into()));
    Ok(req)
}

/// Answers a restored INVITE of the peer with a final response. `None`
/// when `call_id` was not restored.
pub(crate) fn respond(
    inner: &Arc<Inner>,
    call_id: &CallId,
    status: u16,
    reason: Option<String>,
) -> Option<Result<(), SipError>> {
    let recovered = inner.recovered.take(call_id)?;
    if recovered.role != Role::Uas || !(300..=699).contains(&status) {
        return Some(Err(SipError::Stack(format!(
            "call {call_id}: only a final 3xx-6xx can answer an INVITE left by the previous run"
        ))));
    }
    let code = match reason {
        Some(reason) if !reason.is_empty() => {
            StatusCode::Other(status, reason.replace(['\r', '\n'], " "))
        }
        _ => StatusCode::from(status),
    };
    let inner = inner.clone();
    let span = info_span!("sip_call", call_id = %call_id);
    tokio::spawn(
        async move {
            if let Err(e) = answer(&inner, recovered, code).await {
                warn!(error = %e, "the INVITE left by the previous run could not be answered");
            }
        }
        .instrument(span),
    );
    Some(Ok(()))
}

async fn answer(inner: &Inner, recovered: Recovered, code: StatusCode) -> Result<(), String> {
    let request = recovered.request;
    let dest = inner
        .endpoint
        .get_destination_from_request(&request)
        .await
        .ok_or("the INVITE's Via names no usable address")?;
    let (connection, resolved) = inner
        .endpoint
        .transport_layer
        .lookup(&dest, None)
        .await
        .map_err(|e| format!("no way back to {dest}: {e}"))?;
    let mut resp = inner.endpoint.make_response(&request, code, None);
    if let Ok(to) = resp.to_header_mut()
        && matches!(to.tag(), Ok(None))
    {
        let tag = recovered
            .local_tag
            .unwrap_or_else(|| format!("r{:08x}", rand_tag(&request)));
        to.mut_tag(tag.into()).map_err(|e| e.to_string())?;
    }
    let key = TransactionKey::from_request(&request, TransactionRole::Server)
        .map_err(|e| e.to_string())?;
    let mut tx = Transaction::new_server(key, request, inner.endpoint.clone(), Some(connection));
    tx.destination = Some(resolved);
    tx.respond(resp).await.map_err(|e| e.to_string())?;
    debug!("final response sent to the INVITE left by the previous run");
    // Retransmitted until the ACK (timer G), which ends it.
    let drain = async { while tx.receive().await.is_some() {} };
    let _ = tokio::time::timeout(inner.t1x64, drain).await;
    Ok(())
}

/// A To tag when the old run had not chosen one yet (derived from the
/// branch, so a retransmitted answer keeps it).
fn rand_tag(request: &Request) -> u32 {
    let branch = request
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .map(|v| v.to_string())
        .unwrap_or_default();
    branch.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:romeo@example.net SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdef\r\n\
        Max-Forwards: 70\r\n\
        Route: <sip:127.0.0.1:5070;lr>\r\n\
        From: <sip:juliet@example.com>;tag=f1\r\n\
        To: <sip:romeo@example.net>\r\n\
        Call-ID: s1@sip.example.com\r\n\
        CSeq: 7 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn invite() -> Request {
        match SipMessage::try_from(INVITE.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_snapshot_round_trips_without_its_body() {
        let text = encode(Role::Uas, &invite(), Some("lt1"));
        assert!(text.starts_with("stox-sip-pending/1\nrole: uas\nlocal-tag: lt1\n\nINVITE "));
        assert!(!text.contains("v=0"), "no body: {text}");
        let back = decode(&text).expect("decodes");
        assert_eq!(back.role, Role::Uas);
        assert_eq!(back.local_tag.as_deref(), Some("lt1"));
        assert_eq!(back.request.uri.to_string(), "sip:romeo@example.net");
        assert_eq!(
            back.request
                .call_id_header()
                .map(|c| c.value().to_string())
                .ok(),
            Some("s1@sip.example.com".into())
        );
    }

    #[test]
    fn corrupt_snapshots_are_refused_not_panicked_on() {
        for bad in [
            "",
            "stox-sip-pending/1\nrole: uac\n",
            "stox-sip-pending/9\nrole: uac\n\nINVITE sip:a@b SIP/2.0\r\n\r\n",
            "stox-sip-pending/1\nrole: xyz\n\nINVITE sip:a@b SIP/2.0\r\n\r\n",
            "stox-sip-pending/1\nrole: uac\n\nBYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n\r\n",
            "stox-sip-pending/1\nrole: uac\n\ngarbage",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    /// RFC 3261 §9.1: the CANCEL has the INVITE's Request-URI, Call-ID,
    /// To, From, CSeq number and Route, one Via (the top one), no body.
    #[test]
    fn rfc3261_9_1_cancel_is_built_from_the_invite() {
        let cancel = cancel_request(&invite()).expect("builds");
        let text = cancel.to_string();
        assert!(
            text.starts_with("CANCEL sip:romeo@example.net SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("Via:").count(), 1, "{text}");
        assert!(text.contains("branch=z9hG4bKabc"));
        assert!(text.contains("CSeq: 7 CANCEL"));
        assert!(text.contains("Route: <sip:127.0.0.1:5070;lr>"));
        assert!(text.contains("To: <sip:romeo@example.net>\r\n"));
        assert!(text.contains("Content-Length: 0"));
        assert!(!text.contains("application/sdp"));
    }
}
