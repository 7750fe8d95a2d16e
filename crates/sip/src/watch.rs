//! One task watches every dialog: rsipstack reports each dialog's states on
//! the sender it was created with, and every dialog here gets a clone of the
//! same one. The task turns states into [`SipEvent`]s and removes a call when
//! its dialog ends.
//!
//! Why one task and not one per call: a per-call task and its channel cost
//! about 13 KiB per call (tokio allocates a channel's first block of 32
//! slots at creation, and a `DialogState` is some 300 bytes) — a third of a
//! held call's memory — and every state then crossed one more task.
//!
//! Per call, a [`Watched`] entry holds what the events need (answered yet,
//! the PRACK counter, the final response of a rejected INVITE). It is
//! registered *before* the dialog exists, so no state can arrive for a call
//! the watcher does not know; a state for an unknown call is ignored.
//!
//! Ordering: everything reaches the task through three queues — states,
//! provisionals of other forks ([`crate::forks`]) and the outcomes of our
//! INVITE transactions. The fork queue is read first: the transport
//! inspector sees a response before the transaction does, so a fork's
//! provisional is queued before any state that follows it.

use crate::client::{self, PrackTracker};
use crate::{Inner, SipEvent};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invitation::InviteAsyncResult;
use rsipstack::sip::Response;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use stox_mapping::ids::CallId;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tracing::{debug, info_span, warn};

/// What the watcher keeps per call.
#[derive(Debug)]
pub(crate) enum Watched {
    /// Our INVITE.
    Uac(UacWatch),
    /// An INVITE we received; `acked` once its 2xx was ACKed.
    Uas { acked: bool },
    /// A confirmed dialog restored after a restart; `uac` is our role.
    Restored { uac: bool },
}

impl Watched {
    pub fn uac() -> Watched {
        Watched::Uac(UacWatch::default())
    }
}

#[derive(Debug, Default)]
pub(crate) struct UacWatch {
    answered: bool,
    prack: PrackTracker,
    /// The INVITE's final response, kept until a rejection is reported.
    final_response: Option<Response>,
    /// The INVITE task has ended (its outcome was seen).
    outcome_seen: bool,
    /// The dialog ended before the INVITE task did: reported with the
    /// final response once the outcome arrives.
    ended: Option<TerminatedReason>,
}

type Outcome = (CallId, Result<InviteAsyncResult, JoinError>);

/// The senders every dialog shares, and the per-call entries.
pub(crate) struct Watcher {
    states: rsipstack::dialog::dialog::DialogStateSender,
    forks: mpsc::UnboundedSender<(CallId, Response)>,
    outcomes: mpsc::UnboundedSender<(CallId, JoinHandle<InviteAsyncResult>)>,
    calls: Mutex<HashMap<CallId, Watched>>,
}

/// The receiving ends, handed to [`run`].
pub(crate) struct Queues {
    states: DialogStateReceiver,
    forks: mpsc::UnboundedReceiver<(CallId, Response)>,
    outcomes: mpsc::UnboundedReceiver<(CallId, JoinHandle<InviteAsyncResult>)>,
}

impl Watcher {
    pub fn new() -> (Watcher, Queues) {
        let (states, states_rx) = mpsc::unbounded_channel();
        let (forks, forks_rx) = mpsc::unbounded_channel();
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let watcher = Watcher {
            states,
            forks,
            outcomes,
            calls: Mutex::new(HashMap::new()),
        };
        let queues = Queues {
            states: states_rx,
            forks: forks_rx,
            outcomes: outcomes_rx,
        };
        (watcher, queues)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CallId, Watched>> {
        // Every critical section is a single map operation.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a call before its dialog is created; `false` if the Call-ID
    /// is already watched.
    pub fn register(&self, call_id: &CallId, watched: Watched) -> bool {
        let mut calls = self.lock();
        if calls.contains_key(call_id) {
            return false;
        }
        calls.insert(call_id.clone(), watched);
        true
    }

    /// Undoes [`Watcher::register`] when the dialog could not be created.
    pub fn unregister(&self, call_id: &CallId) {
        let mut calls = self.lock();
        calls.remove(call_id);
        stox_mapping::tables::shrink(&mut calls);
    }

    /// The sender to create the call's dialog with.
    pub fn states(&self) -> rsipstack::dialog::dialog::DialogStateSender {
        self.states.clone()
    }

    /// Hands over the task of our INVITE (its result carries the final
    /// response, or why the INVITE could not be sent).
    pub fn outcome(&self, call_id: CallId, handle: JoinHandle<InviteAsyncResult>) {
        let _ = self.outcomes.send((call_id, handle));
    }

    /// A provisional of another fork (see [`crate::forks`]).
    pub fn fork_provisional(&self, call_id: CallId, resp: Response) {
        let _ = self.forks.send((call_id, resp));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Runs the watcher until the endpoint shuts down.
pub(crate) async fn run(inner: Arc<Inner>, mut queues: Queues) {
    let mut outcomes: FuturesUnordered<Pin<Box<dyn Future<Output = Outcome> + Send>>> =
        FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => {
                forget_all(&inner);
                break;
            }
            Some((call_id, resp)) = queues.forks.recv() => {
                on_fork(&inner, call_id, &resp).await;
            }
            Some((call_id, handle)) = queues.outcomes.recv() => {
                outcomes.push(Box::pin(async move { (call_id, handle.await) }));
            }
            Some(state) = queues.states.recv() => on_state(&inner, state).await,
            Some((call_id, result)) = outcomes.next(), if !outcomes.is_empty() => {
                on_outcome(&inner, call_id, result).await;
            }
            else => break,
        }
    }
}

async fn on_fork(inner: &Inner, call_id: CallId, resp: &Response) {
    let answered = match inner.watcher.lock().get(&call_id) {
        Some(Watched::Uac(w)) => w.answered,
        _ => return,
    };
    if !answered {
        let event = info_span!("sip_call", call_id = %call_id)
            .in_scope(|| client::provisional(&call_id, resp, false));
        inner.emit(event).await;
    }
}

async fn on_state(inner: &Inner, state: DialogState) {
    let call_id = CallId::new(state.id().call_id.clone());
    let span = info_span!("sip_call", call_id = %call_id);
    // Decide under the lock, emit after it.
    let (events, end) = {
        let mut calls = inner.watcher.lock();
        let Some(watched) = calls.get_mut(&call_id) else {
            debug!(%call_id, ?state, "state of a dialog no call watches");
            return;
        };
        span.in_scope(|| decide(watched, &call_id, state))
    };
    if events
        .iter()
        .any(|e| matches!(e, SipEvent::Answered { .. }))
    {
        // Other forks' provisionals no longer matter.
        inner.calls.forget_forks(&call_id);
    }
    for event in events {
        inner.emit(event).await;
    }
    if end {
        finish(inner, &call_id);
    }
}

/// The events a state gives, and whether the call is over.
fn decide(watched: &mut Watched, call_id: &CallId, state: DialogState) -> (Vec<SipEvent>, bool) {
    match watched {
        Watched::Uac(w) => decide_uac(w, call_id, state),
        Watched::Uas { acked } => match state {
            DialogState::Confirmed(..) if !*acked => {
                *acked = true;
                (
                    vec![SipEvent::Acked {
                        call_id: call_id.clone(),
                    }],
                    false,
                )
            }
            DialogState::Terminated(_, reason) => {
                debug!(?reason, "dialog ended");
                (uas_end(call_id, reason).into_iter().collect(), true)
            }
            _ => (vec![], false),
        },
        Watched::Restored { uac } => match state {
            DialogState::Terminated(_, reason) => {
                debug!(?reason, "dialog ended");
                (
                    confirmed_end(call_id, *uac, reason).into_iter().collect(),
                    true,
                )
            }
            _ => (vec![], false),
        },
    }
}

fn decide_uac(w: &mut UacWatch, call_id: &CallId, state: DialogState) -> (Vec<SipEvent>, bool) {
    match state {
        DialogState::Early(_, resp) if !w.answered => {
            let reliable = w.prack.pracked(&resp);
            (vec![client::provisional(call_id, &resp, reliable)], false)
        }
        DialogState::Confirmed(id, resp) if !w.answered => {
            w.answered = true;
            w.final_response = None;
            debug!(status = resp.status_code.code(), tag = %id.remote_tag, "answered");
            (vec![client::answered(call_id, &resp)], false)
        }
        DialogState::Terminated(_, reason) => {
            debug!(?reason, "dialog ended");
            if w.answered {
                (
                    confirmed_end(call_id, true, reason).into_iter().collect(),
                    true,
                )
            } else if w.outcome_seen {
                let resp = w.final_response.take();
                (vec![client::rejected(call_id, resp, &reason)], true)
            } else {
                // The final response comes with the INVITE task's outcome.
                w.ended = Some(reason);
                (vec![], false)
            }
        }
        _ => (vec![], false),
    }
}

async fn on_outcome(inner: &Inner, call_id: CallId, result: Result<InviteAsyncResult, JoinError>) {
    let span = info_span!("sip_call", call_id = %call_id);
    let (event, end) = {
        let mut calls = inner.watcher.lock();
        let Some(Watched::Uac(w)) = calls.get_mut(&call_id) else {
            return;
        };
        w.outcome_seen = true;
        span.in_scope(|| match result {
            Ok(Ok((_, resp))) => {
                if !w.answered {
                    w.final_response = resp;
                }
                match w.ended.take() {
                    Some(reason) => {
                        let resp = w.final_response.take();
                        (Some(client::rejected(&call_id, resp, &reason)), true)
                    }
                    None => (None, false),
                }
            }
            Ok(Err(e)) if !w.answered && w.ended.is_none() => {
                // The INVITE could not even be sent (bad target, transport
                // failure): no dialog state will follow.
                warn!(error = %e, "INVITE failed");
                let event = SipEvent::Rejected {
                    call_id: call_id.clone(),
                    status: 503,
                    reason: "Service Unavailable".into(),
                };
                (Some(event), true)
            }
            other => {
                match other {
                    Ok(Err(e)) => warn!(error = %e, "INVITE task ended with an error"),
                    Err(e) => warn!(error = %e, "INVITE task died"),
                    Ok(Ok(_)) => {}
                }
                match w.ended.take() {
                    Some(reason) => (Some(client::rejected(&call_id, None, &reason)), true),
                    None => (None, false),
                }
            }
        })
    };
    if let Some(event) = event {
        inner.emit(event).await;
    }
    if end {
        finish(inner, &call_id);
    }
}

/// The end of an INVITE we received.
fn uas_end(call_id: &CallId, reason: TerminatedReason) -> Option<SipEvent> {
    let call_id = call_id.clone();
    match reason {
        TerminatedReason::UacCancel => Some(SipEvent::Cancelled { call_id }),
        TerminatedReason::UacBye => Some(SipEvent::Bye { call_id }),
        // Our own BYE or final error response: the core knows.
        TerminatedReason::UasBye | TerminatedReason::UasDecline => None,
        TerminatedReason::Timeout => Some(SipEvent::Terminated {
            call_id,
            reason: "no ACK for our 2xx (timer H)".into(),
        }),
        other => Some(SipEvent::Terminated {
            call_id,
            reason: format!("{other:?}"),
        }),
    }
}

/// The end of a confirmed dialog in which we are the UAC (`uac`) or the UAS:
/// the peer's BYE is reported, our own is not.
fn confirmed_end(call_id: &CallId, uac: bool, reason: TerminatedReason) -> Option<SipEvent> {
    // rsipstack names the sender of the BYE by its INVITE role.
    let peer_bye = match reason {
        TerminatedReason::UasBye => Some(uac),
        TerminatedReason::UacBye => Some(!uac),
        TerminatedReason::UacCancel if uac => Some(false),
        _ => None,
    };
    match peer_bye {
        Some(true) => Some(SipEvent::Bye {
            call_id: call_id.clone(),
        }),
        Some(false) => None,
        None => Some(SipEvent::Terminated {
            call_id: call_id.clone(),
            reason: format!("{reason:?}"),
        }),
    }
}

/// Forgets a call that is over: watcher entry, table entry, dialog.
fn finish(inner: &Inner, call_id: &CallId) {
    inner.watcher.unregister(call_id);
    if let Some(entry) = inner.calls.remove(call_id) {
        inner.dialogs.remove_dialog(&entry.dialog.id());
    }
}

/// Shutdown: every call is forgotten without being reported.
fn forget_all(inner: &Inner) {
    let ids: Vec<CallId> = inner.watcher.lock().keys().cloned().collect();
    for call_id in ids {
        finish(inner, &call_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CallId {
        CallId::new("c1")
    }

    #[test]
    fn a_confirmed_dialog_reports_the_peers_bye_only() {
        let cases = [
            (true, TerminatedReason::UasBye, Some("bye")),
            (true, TerminatedReason::UacBye, None),
            (true, TerminatedReason::UacCancel, None),
            (false, TerminatedReason::UacBye, Some("bye")),
            (false, TerminatedReason::UasBye, None),
            (true, TerminatedReason::Timeout, Some("terminated")),
            (false, TerminatedReason::Timeout, Some("terminated")),
        ];
        for (uac, reason, want) in cases {
            let got = confirmed_end(&id(), uac, reason.clone()).map(|e| match e {
                SipEvent::Bye { .. } => "bye",
                SipEvent::Terminated { .. } => "terminated",
                _ => "other",
            });
            assert_eq!(got, want, "uac={uac} reason={reason:?}");
        }
    }

    #[test]
    fn an_incoming_invite_reports_cancel_bye_and_timer_h() {
        let kind = |r| match uas_end(&id(), r) {
            Some(SipEvent::Cancelled { .. }) => "cancelled",
            Some(SipEvent::Bye { .. }) => "bye",
            Some(SipEvent::Terminated { reason, .. }) => {
                if reason.contains("timer H") {
                    "timer-h"
                } else {
                    "terminated"
                }
            }
            Some(_) => "other",
            None => "none",
        };
        assert_eq!(kind(TerminatedReason::UacCancel), "cancelled");
        assert_eq!(kind(TerminatedReason::UacBye), "bye");
        assert_eq!(kind(TerminatedReason::UasBye), "none");
        assert_eq!(kind(TerminatedReason::UasDecline), "none");
        assert_eq!(kind(TerminatedReason::Timeout), "timer-h");
    }

    #[test]
    fn registration_is_exclusive_per_call_id() {
        let (w, _queues) = Watcher::new();
        assert!(w.register(&id(), Watched::uac()));
        assert!(!w.register(&id(), Watched::Uas { acked: false }));
        w.unregister(&id());
        assert!(w.register(&id(), Watched::Restored { uac: true }));
        assert_eq!(w.len(), 1);
    }
}
