//! INFO in a call's dialog, both ways, and SIP option tags.
//!
//! What rsipstack does here: `InviteDialog::info` builds an INFO in a
//! *confirmed* dialog (remote target, route set, CSeq) and runs its client
//! transaction; the transaction layer absorbs retransmitted INFOs. Its own
//! handling of an incoming INFO works only in a confirmed dialog and leaves
//! an early-dialog INFO unanswered, so we answer INFO ourselves.
//! What we add: the dialog check for an incoming INFO (To tag ours, From tag
//! the peer's; in a UAC early dialog any fork's), the 200, the event, the
//! RFC 8840 Info-Package headers, and `Supported` parsing/building.

use crate::server::final_reply;
use crate::table::{CallEntry, Role};
use crate::{Inner, SipError, SipEvent};
use rsipstack::dialog::dialog::DialogState;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Request, StatusCode, StatusCodeKind};
use rsipstack::transaction::transaction::Transaction;
use std::sync::Arc;
use stox_mapping::ids::CallId;
use tracing::{Instrument, debug, info, info_span, warn};

/// RFC 8840 §6: the media type of trickled candidates and its Info Package.
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const TRICKLE_ICE: &str = "trickle-ice";
/// RFC 3262: reliable provisional responses.
pub(crate) const REL100: &str = "100rel";

/// The option tags of every `Supported` header (`k` included), lower-cased,
/// without duplicates, in order of appearance.
pub(crate) fn supported_tags<'a>(headers: impl Iterator<Item = &'a Header>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for header in headers {
        if let Header::Supported(value) = header {
            for tag in value.value().split(',') {
                let tag = tag.trim().to_ascii_lowercase();
                if !tag.is_empty() && !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
    }
    tags
}

/// A SIP token (RFC 3261 §25.1): what an option tag may be.
fn is_token(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
}

/// The headers our INVITE carries for `extra` option tags: one `Supported`
/// that always starts with `100rel`, and `Recv-Info: trickle-ice` when we
/// trickle (RFC 8840 §4.1, RFC 6086 §5.2.3).
pub(crate) fn invite_headers(extra: &[String]) -> Vec<Header> {
    let mut tags = vec![REL100.to_string()];
    for tag in extra {
        let tag = tag.trim().to_ascii_lowercase();
        if !is_token(&tag) {
            warn!(%tag, "option tag is not a SIP token, left out");
        } else if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let mut headers = Vec::new();
    if tags.iter().any(|t| t == TRICKLE_ICE) {
        headers.push(Header::Other("Recv-Info".into(), TRICKLE_ICE.into()));
    }
    headers.insert(0, Header::Supported(tags.join(", ").into()));
    headers
}

/// An incoming INFO with a To tag: answered and reported if it belongs to a
/// live dialog of its call, otherwise 481.
pub(crate) async fn on_info(inner: Arc<Inner>, mut tx: Transaction, call_id: CallId) {
    let entry = inner.calls.get(&call_id);
    let problem = match &entry {
        None => Some("no such call"),
        Some(entry) => dialog_problem(entry, &tx.original),
    };
    if let Some(problem) = problem {
        info!(problem, "INFO outside any dialog of ours");
        final_reply(&inner, tx, StatusCode::CallTransactionDoesNotExist, vec![]).await;
        return;
    }
    let req = &tx.original;
    let content_type = req
        .headers
        .iter()
        .find_map(|h| match h {
            Header::ContentType(ct) => Some(ct.value().trim().to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let body = match String::from_utf8(req.body.clone()) {
        Ok(body) => body,
        Err(_) => {
            warn!("INFO body is not UTF-8");
            final_reply(&inner, tx, StatusCode::UnsupportedMediaType, vec![]).await;
            return;
        }
    };
    if let Err(e) = tx.reply(StatusCode::OK).await {
        warn!(error = %e, "cannot answer INFO");
        return;
    }
    info!(%content_type, len = body.len(), "INFO received");
    inner
        .emit(SipEvent::Info {
            call_id,
            content_type,
            body,
        })
        .await;
}

/// Why `req` is not an INFO in `entry`'s dialog, if it is not.
fn dialog_problem(entry: &CallEntry, req: &Request) -> Option<&'static str> {
    let tag_of = |tag: Result<Option<rsipstack::sip::param::Tag>, _>| {
        tag.ok().flatten().map(|t| t.value().to_string())
    };
    let to_tag = tag_of(req.to_header().and_then(|t| t.tag()));
    let from_tag = tag_of(req.from_header().and_then(|f| f.tag()));
    let id = entry.dialog.id();
    if to_tag.as_deref() != Some(id.local_tag.as_str()) {
        return Some("To tag is not ours");
    }
    let state = entry.dialog.state();
    match state {
        DialogState::Terminated(..) => Some("dialog ended"),
        // Before any provisional no early dialog exists on our side.
        DialogState::Calling(_) | DialogState::Trying(_) if entry.role == Role::Uac => {
            Some("no early dialog yet")
        }
        // A UAC's early dialogs: one per fork; the dialog id holds only the
        // latest fork's tag, so any From tag is taken.
        DialogState::Early(..) if entry.role == Role::Uac => None,
        _ if from_tag.as_deref() != Some(id.remote_tag.as_str()) => {
            Some("From tag is not the peer's")
        }
        _ => None,
    }
}

/// Sends INFO in the confirmed dialog of `call_id` (in a task).
pub(crate) fn send(
    inner: &Inner,
    call_id: &CallId,
    content_type: &str,
    body: String,
) -> Result<(), SipError> {
    let entry = inner
        .calls
        .get(call_id)
        .ok_or_else(|| SipError::UnknownCall(call_id.clone()))?;
    if !entry.dialog.state().is_confirmed() {
        return Err(SipError::NotConfirmed(call_id.clone()));
    }
    let content_type = content_type.trim();
    if content_type.chars().any(|c| c.is_control()) {
        return Err(SipError::Stack(format!(
            "invalid Content-Type {content_type:?} for INFO"
        )));
    }
    let headers = info_headers(content_type);
    let dialog = entry.dialog;
    let span = info_span!("sip_call", call_id = %call_id);
    tokio::spawn(
        async move {
            debug!("sending INFO");
            match dialog.info(Some(headers), Some(body.into_bytes())).await {
                Ok(Some(resp)) if resp.status_code.kind() == StatusCodeKind::Successful => {
                    debug!(status = resp.status_code.code(), "INFO answered");
                }
                Ok(Some(resp)) => {
                    warn!(status = resp.status_code.code(), "INFO refused");
                }
                Ok(None) => warn!("INFO not sent or unanswered (dialog no longer confirmed)"),
                Err(e) => warn!(error = %e, "INFO failed"),
            }
        }
        .instrument(span),
    );
    Ok(())
}

/// `Content-Type`, plus the Info Package headers for trickled candidates
/// (RFC 8840 §6, RFC 6086 §4.2.1).
fn info_headers(content_type: &str) -> Vec<Header> {
    let mut headers = Vec::new();
    if content_type.is_empty() {
        return headers;
    }
    headers.push(Header::ContentType(content_type.into()));
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case(SDPFRAG) {
        headers.push(Header::Other("Info-Package".into(), TRICKLE_ICE.into()));
        headers.push(Header::ContentDisposition("Info-Package".into()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_tags_are_lower_cased_split_and_deduplicated() {
        let headers = [
            Header::Supported("100rel, Trickle-ICE".into()),
            Header::Require("100rel".into()),
            Header::Supported(" timer ,,100REL".into()),
        ];
        assert_eq!(
            supported_tags(headers.iter()),
            ["100rel", "trickle-ice", "timer"]
        );
        assert!(supported_tags([].iter()).is_empty());
    }

    #[test]
    fn invite_always_supports_100rel_and_announces_trickle_info() {
        let plain = invite_headers(&[]);
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].to_string(), "Supported: 100rel");
        let trickle = invite_headers(&[
            "trickle-ice".into(),
            "100rel".into(),
            "bad tag\r\nX: y".into(),
            "".into(),
        ]);
        let lines: Vec<String> = trickle.iter().map(Header::to_string).collect();
        assert_eq!(
            lines,
            ["Supported: 100rel, trickle-ice", "Recv-Info: trickle-ice"]
        );
    }

    #[test]
    fn sdpfrag_info_names_its_package() {
        let lines: Vec<String> = info_headers("application/trickle-ice-sdpfrag")
            .iter()
            .map(Header::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "Content-Type: application/trickle-ice-sdpfrag",
                "Info-Package: trickle-ice",
                "Content-Disposition: Info-Package"
            ]
        );
        assert_eq!(info_headers("application/dtmf-relay").len(), 1);
        assert!(info_headers("").is_empty());
    }
}
