//! Provisional responses of forks that rsipstack's client transaction drops.
//!
//! rsipstack's INVITE client transaction drops a provisional response equal
//! to the previous one in status, body and RSeq as a retransmission — it
//! does not compare the To tag. A forking proxy relaying a bare `180
//! Ringing` from two branches therefore gets only the first one to the
//! dialog. The transport inspector sees every response first and in the
//! transaction's order, so [`ForkWatch`] mirrors that rule per call and
//! hands the provisionals the transaction will drop, when they come from
//! another early dialog (To tag), to the call's watcher. They are not
//! PRACKed (rsipstack never sees them); a reliable one is logged.

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Request, Response};
use std::sync::Mutex;
use tracing::{info, warn};

/// What the transaction compares to spot a retransmitted provisional.
#[derive(PartialEq, Eq, Clone)]
struct Key {
    status: u16,
    body: Vec<u8>,
    rseq: Option<u32>,
}

struct Seen {
    /// The last 101–199 the transaction passed on.
    last: Option<Key>,
    /// Every (To tag, response) pair already accounted for.
    forks: Vec<(String, Key)>,
}

/// Per outgoing INVITE: the mirror of the transaction's rule.
pub(crate) struct ForkWatch {
    branch: Option<String>,
    seen: Mutex<Seen>,
}

impl ForkWatch {
    pub fn new(invite: &Request) -> ForkWatch {
        ForkWatch {
            branch: branch_of(invite.via_header().ok().map(|v| v.value().to_string())),
            seen: Mutex::new(Seen {
                last: None,
                forks: Vec::new(),
            }),
        }
    }

    /// Called with every incoming response carrying this call's Call-ID;
    /// `true` for a provisional of another fork that the transaction will
    /// drop, which the caller hands to the call's watcher.
    pub fn observe(&self, resp: &Response) -> bool {
        let status = resp.status_code.code();
        if !(101..=199).contains(&status) {
            return false;
        }
        let is_ours = resp
            .cseq_header()
            .and_then(|c| c.method())
            .is_ok_and(|m| m == rsipstack::sip::Method::Invite)
            && branch_of(resp.via_header().ok().map(|v| v.value().to_string())) == self.branch;
        if !is_ours {
            return false;
        }
        let tag = to_tag(resp);
        let key = Key {
            status,
            body: resp.body.clone(),
            rseq: resp.rseq_value(),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let known = seen.forks.iter().any(|(t, k)| *t == tag && *k == key);
        if !known {
            seen.forks.push((tag.clone(), key.clone()));
        }
        if seen.last.as_ref() != Some(&key) {
            // The transaction passes it on: the dialog reports it.
            seen.last = Some(key);
            return false;
        }
        if known {
            return false; // a real retransmission
        }
        info!(status, %tag, "provisional from another fork (dropped by the transaction)");
        if resp.header_contains_token("Require", crate::info::REL100) {
            warn!(%tag, "reliable provisional of a second fork with the same RSeq: not PRACKed");
        }
        true
    }
}

/// The To tag of a response ("" when it has none): which early dialog
/// (fork) it belongs to.
pub(crate) fn to_tag(resp: &Response) -> String {
    resp.to_header()
        .ok()
        .and_then(|to| to.tag().ok().flatten())
        .map(|t| t.value().to_string())
        .unwrap_or_default()
}

fn branch_of(via: Option<String>) -> Option<String> {
    let via = via?;
    via.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim().to_string())
    })
}
