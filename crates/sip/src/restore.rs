//! Confirmed dialogs across a restart: [`snapshot`] and [`restore`].
//!
//! What rsipstack does here: `InviteDialog::snapshot` copies a dialog's
//! state (id, From/To, CSeqs, contacts, remote target, route set, 100rel,
//! Session-ID) into a `DialogSnapshot`; `DialogLayer::restore_from_snapshot`
//! rebuilds a *confirmed* dialog from one and registers it, so an incoming
//! BYE/INFO matches it by Call-ID and tags and `bye()`/`info()` build their
//! requests from it (remote target, route set, next local CSeq). A restored
//! dialog has no remembered connection, so every request it sends is routed
//! afresh: to the first Route, else to the remote target, by that URI's
//! transport parameter — UDP through our listener, TCP over a *new*
//! connection (the transport layer connects and then reads it like any
//! other).
//! What we add: the text format (`snapshot` module), the call table entry,
//! its registration with the watcher ([`crate::watch`]: events, clean-up), the CSeq margin and the TCP target
//! fix described on [`restore`].

use crate::snapshot::{self, CSEQ_LIMIT};
use crate::table::{CallEntry, Role};
use crate::watch::Watched;
use crate::{Inner, SipError};
use rsipstack::dialog::dialog::{Dialog, DialogSnapshot};
use rsipstack::sip::uri::ParamsExt;
use rsipstack::sip::{Param, Scheme, Transport};
use rsipstack::transaction::key::TransactionRole;
use std::sync::Arc;
use stox_mapping::ids::CallId;
use tracing::{debug, info, warn};

/// Added to the stored local CSeq on restore. The store holds the snapshot
/// taken when it was last written (typically when the call was answered),
/// but the dead process may have sent more requests in the dialog since —
/// INFO with trickled candidates, say. The peer refuses a request whose
/// CSeq is not above the last one it saw (RFC 3261 §12.2.2: 500), which
/// would make our BYE after the restart fail. Jumping ahead is allowed
/// (CSeq must increase, not by one), so any number of requests up to this
/// margin since the last snapshot is covered.
pub(crate) const CSEQ_MARGIN: u32 = 1000;

/// The confirmed dialog of `call_id` as text (see the `snapshot` module).
pub(crate) fn snapshot(inner: &Inner, call_id: &CallId) -> Option<String> {
    let entry = inner.calls.get(call_id)?;
    let text = snapshot::encode(&entry.dialog.snapshot())?;
    // Only hand out what `restore` will take back.
    match snapshot::decode(&text) {
        Ok(_) => Some(text),
        Err(e) => {
            warn!(%call_id, error = %e, "dialog cannot be represented as a snapshot");
            None
        }
    }
}

/// Re-creates the confirmed dialog of `call_id` from `text`.
///
/// Adjustments made to the stored state:
/// - the local CSeq jumps by [`CSEQ_MARGIN`];
/// - a dialog that ran over TCP (our stored Contact says
///   `;transport=tcp`), has no route set and whose remote target names no
///   transport gets `;transport=tcp` on its remote target: without the old
///   connection rsipstack would otherwise pick UDP (RFC 3263 for a URI with
///   no transport), which a TCP-only peer does not hear.
///
/// WebSocket: a WS client's connection died with the old process and it
/// cannot be reached by connecting back (its Contact is usually a
/// `.invalid` host), so requests *to* it fail (logged); `bye()` still ends
/// the call locally. Requests *from* it — a client that reconnects and
/// sends BYE or INFO — match the restored dialog as usual. Restore returns
/// `Ok` for such dialogs and logs the limitation.
pub(crate) fn restore(inner: &Arc<Inner>, call_id: &CallId, text: &str) -> Result<(), SipError> {
    let refuse = |detail: String| SipError::Snapshot {
        call_id: call_id.clone(),
        detail,
    };
    let mut snap = snapshot::decode(text).map_err(|e| refuse(e.to_string()))?;
    if snap.id.call_id != call_id.as_str() {
        return Err(refuse(format!(
            "the snapshot belongs to Call-ID {}",
            snap.id.call_id
        )));
    }
    if inner.calls.contains(call_id) {
        return Err(SipError::Stack(format!("call {call_id} already exists")));
    }
    snap.local_cseq = snap
        .local_cseq
        .checked_add(CSEQ_MARGIN)
        .filter(|n| *n < CSEQ_LIMIT)
        .ok_or_else(|| refuse("local CSeq too close to 2^31".into()))?;
    let transport = dialog_transport(&snap);
    adjust_target(&mut snap, transport);
    check_contact(inner, &snap);
    if matches!(transport, Transport::Ws | Transport::Wss) {
        info!(%call_id, "restored a WebSocket dialog: requests to the client cannot be delivered until it reconnects, and then only from its side");
    }

    let role = match snap.role {
        TransactionRole::Client => Role::Uac,
        TransactionRole::Server => Role::Uas,
    };
    let id = snap.id.clone();
    let target = snap.remote_uri.to_string();
    let uac = role == Role::Uac;
    if !inner.watcher.register(call_id, Watched::Restored { uac }) {
        return Err(SipError::Stack(format!("call {call_id} already exists")));
    }
    let restored = inner
        .dialogs
        .restore_from_snapshot(snap, inner.watcher.states())
        .map_err(|e| SipError::Stack(e.to_string()));
    let dialog = match restored {
        Ok(true) => match inner.dialogs.get_dialog(&id) {
            Some(Dialog::Invite(dialog)) => Ok(dialog),
            _ => {
                inner.dialogs.remove_dialog(&id);
                Err(SipError::Stack(format!("restored dialog {id} vanished")))
            }
        },
        Ok(false) => Err(SipError::Stack(format!(
            "dialog {id} already exists for call {call_id}"
        ))),
        Err(e) => Err(e),
    };
    let dialog = match dialog {
        Ok(dialog) => dialog,
        Err(e) => {
            inner.watcher.unregister(call_id);
            return Err(e);
        }
    };
    let entry = CallEntry {
        role,
        dialog: dialog.clone(),
        uas: None,
        forks: None,
    };
    if !inner.calls.insert_new(call_id.clone(), entry) {
        inner.watcher.unregister(call_id);
        inner.dialogs.remove_dialog(&id);
        return Err(SipError::Stack(format!("call {call_id} already exists")));
    }
    debug!(
        %call_id,
        role = ?role,
        transport = crate::server::transport_name(transport),
        %target,
        "dialog restored"
    );
    Ok(())
}

/// The transport the dialog ran over: our Contact names it for everything
/// but UDP (see `Inner::contact`).
fn dialog_transport(snap: &DialogSnapshot) -> Transport {
    snap.local_contact
        .as_ref()
        .and_then(|c| c.transport().cloned())
        .unwrap_or(Transport::Udp)
}

/// See [`restore`]: keep a TCP dialog on TCP.
fn adjust_target(snap: &mut DialogSnapshot, transport: Transport) {
    let target = &mut snap.remote_uri;
    if transport == Transport::Tcp
        && snap.route_set.is_empty()
        && target.transport().is_none()
        && target.scheme != Some(Scheme::Sips)
    {
        target.params.push(Param::Transport(Transport::Tcp));
    }
}

/// Warns when the stored Contact is not one of our listeners: the peer will
/// send its requests there.
fn check_contact(inner: &Inner, snap: &DialogSnapshot) {
    let Some(contact) = &snap.local_contact else {
        return;
    };
    let ours = inner
        .endpoint
        .transport_layer
        .get_listen_addrs()
        .iter()
        .any(|a| a.addr == contact.host_with_port);
    if !ours {
        warn!(%contact, "restored dialog's Contact is not one of our listeners: the peer's requests will not reach us");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(contact: &str, target: &str, route: bool) -> DialogSnapshot {
        let mut text = format!(
            "stox-sip-dialog/1\nrole: uas\ncall-id: c\nlocal-tag: l\nremote-tag: r\n\
             from: <sip:a@example.net>;tag=r\nto: <sip:b@example.com>;tag=l\n\
             local-cseq: 0\nremote-cseq: 1\nlocal-contact: {contact}\nremote-target: {target}\n100rel: no\n"
        );
        if route {
            text.push_str("route: <sip:proxy.example.net;lr>\n");
        }
        snapshot::decode(&text).expect("decodes")
    }

    fn adjusted(contact: &str, target: &str, route: bool) -> String {
        let mut s = snap(contact, target, route);
        let transport = dialog_transport(&s);
        adjust_target(&mut s, transport);
        s.remote_uri.to_string()
    }

    #[test]
    fn tcp_dialogs_stay_on_tcp() {
        let tcp = "sip:192.0.2.1:5060;transport=tcp";
        assert_eq!(
            adjusted(tcp, "sip:bob@192.0.2.9:5070", false),
            "sip:bob@192.0.2.9:5070;transport=TCP"
        );
        // Already named, routed, secure, or not TCP: untouched.
        for (contact, target, route) in [
            (tcp, "sip:bob@192.0.2.9;transport=udp", false),
            (tcp, "sip:bob@192.0.2.9", true),
            (tcp, "sips:bob@192.0.2.9", false),
            ("sip:192.0.2.1:5060", "sip:bob@192.0.2.9", false),
            (
                "sip:192.0.2.1:5060;transport=ws",
                "sip:x@y.invalid;transport=ws",
                false,
            ),
        ] {
            assert!(adjusted(contact, target, route).eq_ignore_ascii_case(target));
        }
    }
}
