//! The per-Call-ID table of live INVITE dialogs, both roles.
//!
//! An entry is inserted when a dialog starts (our INVITE sent, or an INVITE
//! received) and removed by the dialog's watcher task as soon as the dialog
//! reaches `Terminated` — a call that ends disappears from the table.

use crate::forks::ForkWatch;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Request, Uri};
use rsipstack::transaction::transaction::TransactionEventSender;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use stox_mapping::ids::CallId;

/// Which side of the dialog the gateway is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// We sent the INVITE.
    Uac,
    /// We received the INVITE.
    Uas,
}

/// What a UAS needs to answer its pending INVITE by hand (responses that
/// rsipstack's dialog helpers cannot build, e.g. 180 with SDP).
#[derive(Clone)]
pub(crate) struct UasInvite {
    pub tu_sender: TransactionEventSender,
    pub request: Request,
    pub contact: Option<Uri>,
}

#[derive(Clone)]
pub(crate) struct CallEntry {
    pub role: Role,
    pub dialog: InviteDialog,
    pub uas: Option<UasInvite>,
    /// UAC only: provisionals of other forks the transaction would drop.
    pub forks: Option<Arc<ForkWatch>>,
}

#[derive(Clone, Default)]
pub(crate) struct CallTable {
    calls: Arc<Mutex<HashMap<CallId, CallEntry>>>,
}

impl CallTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<CallId, CallEntry>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every critical section is a single map operation).
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Inserts a new call; `false` if the Call-ID is already live.
    pub fn insert_new(&self, call_id: CallId, entry: CallEntry) -> bool {
        let mut calls = self.lock();
        if calls.contains_key(&call_id) {
            return false;
        }
        calls.insert(call_id, entry);
        true
    }

    pub fn contains(&self, call_id: &CallId) -> bool {
        self.lock().contains_key(call_id)
    }

    pub fn get(&self, call_id: &CallId) -> Option<CallEntry> {
        self.lock().get(call_id).cloned()
    }

    /// Drops the call's fork watch (once it is answered).
    pub fn forget_forks(&self, call_id: &CallId) {
        if let Some(entry) = self.lock().get_mut(call_id) {
            entry.forks = None;
        }
    }

    pub fn remove(&self, call_id: &CallId) -> Option<CallEntry> {
        let mut calls = self.lock();
        let entry = calls.remove(call_id);
        stox_mapping::tables::shrink(&mut calls);
        entry
    }

    pub fn ids(&self) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }
}
