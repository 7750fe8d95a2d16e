//! The run loop: feeds what the adapters hear into the pure core, with the
//! current time, and carries out what the core asks for.

use crate::config::Config;
use anyhow::Context;
use futures::StreamExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stox_call::{
    CallState, Core, CoreConfig, EndedBy, Input, IqOutcome, Millis, Output, SessionRecord,
    SipCommand, SipInput, error_condition,
};
use stox_sip::{OutgoingInvite, SipConfig, SipEndpoint, SipEvent};
use stox_store::{Store, StoreOp};
use stox_xmpp::{ComponentConfig, IqFailure, XmppEvent, XmppHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

pub fn now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Millis(ms)
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = Store::open(&cfg.store.database)
        .await
        .context("opening the session store")?;

    let cancel = CancellationToken::new();
    // The component connects while the previous run's calls are restored:
    // what the server sends meanwhile waits in the event queue.
    let xmpp_cfg = ComponentConfig {
        server: cfg.xmpp.server.clone(),
        component: cfg.xmpp.component.clone(),
        secret: cfg.xmpp.secret.clone(),
        keepalive_to: cfg.xmpp.domains.first().cloned().unwrap_or_default(),
        keepalive: Duration::from_secs(cfg.xmpp.keepalive_secs),
        iq_timeout: Duration::from_millis(cfg.xmpp.iq_timeout_ms),
        connect_timeout: Duration::from_secs(10),
        max_backoff: Duration::from_secs(10),
    };
    let (xmpp, mut xmpp_events, xmpp_task) = stox_xmpp::spawn(xmpp_cfg, cancel.child_token());

    let leftovers = store.live_sessions_with_dialogs().await?;
    let first_id = store.next_id().await?;
    let loaded_ms = started.elapsed().as_millis() as u64;
    let sip_cfg = SipConfig {
        udp: cfg.sip.udp,
        tcp: cfg.sip.tcp,
        ws: cfg.sip.ws,
        outbound_proxy: cfg.sip.outbound_proxy.clone(),
        user_agent: cfg.sip.user_agent.clone(),
    };
    let (sip, mut sip_events) = SipEndpoint::start(sip_cfg, cancel.child_token())
        .await
        .context("starting the SIP endpoint")?;
    for (transport, addr) in sip.local_addrs() {
        info!(%transport, %addr, "sip listening");
    }
    let resumed = resume_calls(&store, &sip, leftovers).await?;

    let (store_tx, store_rx) = mpsc::channel(8192);
    let writer = tokio::spawn(stox_store::run_writer(store.clone(), store_rx));

    let mut core = Core::new(
        CoreConfig {
            component: cfg.xmpp.component.clone(),
            domains: cfg.xmpp.domains.clone(),
            ring_timeout_ms: cfg.calls.ring_timeout_secs.saturating_mul(1000),
            candidate_window_ms: cfg.calls.candidate_window_ms,
            token_salt: rand::random(),
        },
        first_id,
    );
    let restored = core.restore(resumed);
    info!(
        restored,
        loaded_ms,
        ready_ms = started.elapsed().as_millis() as u64,
        "ready: calls of the previous run restored"
    );
    let mut exec = Executor {
        xmpp,
        sip,
        store_tx,
        timers: DelayQueue::new(),
    };

    let mut sigterm = terminate_signal()?;
    loop {
        let input = tokio::select! {
            ev = xmpp_events.recv() => match ev {
                Some(ev) => xmpp_input(ev),
                None => break,
            },
            ev = sip_events.recv() => match ev {
                Some(ev) => Some(sip_input(ev)),
                None => break,
            },
            Some(expired) = exec.timers.next() => Some(Input::Timer(expired.into_inner())),
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); break }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break }
        };
        if let Some(input) = input {
            let t = now();
            let outputs = core.handle(t, input);
            exec.execute(t, outputs).await;
        }
    }

    cancel.cancel();
    let Executor { store_tx, .. } = exec;
    drop(store_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), xmpp_task).await;
    store.close().await;
    info!(live_calls = core.live_calls(), "stopped");
    Ok(())
}

/// Calls left live by a previous run (a crash or `kill -9`): answered calls
/// whose SIP dialog was stored are resumed (dialog restored in the SIP layer,
/// call handed to the core); calls that were still being set up cannot be —
/// their transactions died with the process — and are closed honestly instead
/// of staying live forever.
async fn resume_calls(
    store: &Store,
    sip: &SipEndpoint,
    leftovers: Vec<(SessionRecord, Option<String>)>,
) -> anyhow::Result<Vec<SessionRecord>> {
    let started = std::time::Instant::now();
    let t = now();
    // Restoring is CPU work (parsing the stored dialogs, rebuilding them in
    // the SIP stack): spread it over the cores, in order within each part.
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = leftovers.len().div_ceil(parts).max(1);
    let mut rest = leftovers.into_iter();
    let mut tasks = Vec::new();
    loop {
        let part: Vec<_> = rest.by_ref().take(size).collect();
        if part.is_empty() {
            break;
        }
        let sip = sip.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter()
                .map(|(rec, dialog)| {
                    let ok = rec.state == CallState::Active
                        && dialog.is_some_and(|snapshot| {
                            sip.restore_dialog(&rec.sip_call_id, &snapshot)
                                .map_err(|e| {
                                    warn!(id = rec.id, call_id = %rec.sip_call_id, error = %e, "cannot resume call")
                                })
                                .is_ok()
                        });
                    (rec, ok)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut resumed = Vec::new();
    let mut closed = Vec::new();
    for task in tasks {
        for (mut rec, ok) in task.await.context("restoring calls")? {
            if ok {
                resumed.push(rec);
                continue;
            }
            rec.state = CallState::Ended;
            rec.ended_at = Some(t);
            rec.ended_by = Some(EndedBy::Gateway);
            rec.end_reason = Some("connectivity-error".into());
            rec.updated_at = t;
            closed.push(rec);
        }
    }
    if !closed.is_empty() {
        store.save(&closed).await?;
    }
    if !resumed.is_empty() || !closed.is_empty() {
        info!(
            resumed = resumed.len(),
            closed = closed.len(),
            ms = started.elapsed().as_millis() as u64,
            "calls from the previous run: answered ones resumed, the rest closed"
        );
    }
    Ok(resumed)
}

#[cfg(unix)]
fn terminate_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")
}

fn xmpp_input(ev: XmppEvent) -> Option<Input> {
    match ev {
        XmppEvent::Online | XmppEvent::Offline { .. } => None,
        XmppEvent::Stanza(el) => Some(Input::Stanza(el)),
        XmppEvent::IqResponse { id, result } => {
            let outcome = match result {
                Ok(_) => IqOutcome::Result,
                Err(IqFailure::Error(el)) => IqOutcome::Error(error_condition(&el)),
                Err(IqFailure::Timeout) => IqOutcome::Timeout,
            };
            Some(Input::IqResponse { id, outcome })
        }
    }
}

fn sip_input(ev: SipEvent) -> Input {
    Input::Sip(match ev {
        SipEvent::IncomingInvite {
            call_id,
            request_uri,
            from,
            sdp,
            transport,
            source,
            supported,
            ..
        } => {
            debug!(%call_id, %transport, %source, %request_uri, %from, "incoming INVITE");
            SipInput::IncomingInvite {
                call_id,
                request_uri,
                from,
                sdp,
                supported,
            }
        }
        SipEvent::Provisional {
            call_id,
            status,
            sdp,
            supported,
            ..
        } => SipInput::Provisional {
            call_id,
            status,
            sdp,
            supported,
        },
        SipEvent::Answered {
            call_id,
            sdp,
            supported,
            ..
        } => SipInput::Answered {
            call_id,
            sdp,
            supported,
        },
        SipEvent::Rejected {
            call_id,
            status,
            reason,
        } => SipInput::Rejected {
            call_id,
            status,
            reason,
        },
        SipEvent::Acked { call_id } => SipInput::Acked { call_id },
        SipEvent::Cancelled { call_id } => SipInput::Cancelled { call_id },
        SipEvent::Bye { call_id } => SipInput::Bye { call_id },
        SipEvent::Terminated { call_id, reason } => SipInput::Terminated { call_id, reason },
        SipEvent::Info {
            call_id,
            content_type,
            body,
        } => SipInput::Info {
            call_id,
            content_type,
            body,
        },
    })
}

/// Carries out the core's outputs.
struct Executor {
    xmpp: XmppHandle,
    sip: SipEndpoint,
    store_tx: mpsc::Sender<StoreOp>,
    timers: DelayQueue<stox_call::TimerKey>,
}

impl Executor {
    async fn execute(&mut self, t: Millis, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Xmpp(el) => {
                    if !self.xmpp.send(el) {
                        warn!("xmpp connection task is gone; stanza dropped");
                    }
                }
                Output::Sip(cmd) => self.sip(cmd),
                Output::Persist(rec) => {
                    // A call's first and last rows at info (its log is two
                    // lines: who called whom, how it ended); the steps in
                    // between at debug, and all of them in `sessions`.
                    macro_rules! call_line {
                        ($level:ident) => {
                            tracing::$level!(
                                id = rec.id,
                                sid = %rec.jingle_sid,
                                call_id = %rec.sip_call_id,
                                direction = rec.direction.as_str(),
                                xmpp = %rec.xmpp_jid,
                                sip = %rec.sip_uri,
                                state = rec.state.as_str(),
                                end_reason = rec.end_reason.as_deref().unwrap_or(""),
                                sip_status = rec.sip_status.unwrap_or(0),
                                "call"
                            )
                        };
                    }
                    if matches!(rec.state, CallState::Pending | CallState::Ended) {
                        call_line!(info);
                    } else {
                        call_line!(debug);
                    }
                    // An answered call's confirmed dialog is stored with it, so
                    // the call survives a restart.
                    let dialog = (rec.state == CallState::Active)
                        .then(|| self.sip.dialog_snapshot(&rec.sip_call_id))
                        .flatten()
                        .map(|snapshot| StoreOp::Dialog {
                            id: rec.id,
                            snapshot,
                        });
                    for op in std::iter::once(StoreOp::Session(rec)).chain(dialog) {
                        if self.store_tx.send(op).await.is_err() {
                            warn!("store writer is gone; session row not written");
                        }
                    }
                }
                Output::SetTimer { key, at } => {
                    let delay = Duration::from_millis(at.0.saturating_sub(t.0));
                    self.timers.insert(key, delay);
                }
            }
        }
    }

    fn sip(&self, cmd: SipCommand) {
        let result = match cmd {
            SipCommand::Invite {
                call_id,
                request_uri,
                from,
                sdp,
                supported,
            } => self.sip.invite(OutgoingInvite {
                call_id,
                request_uri,
                from,
                sdp,
                supported,
            }),
            SipCommand::Respond {
                call_id,
                status,
                reason,
                sdp,
            } => self.sip.respond(&call_id, status, reason, sdp),
            SipCommand::Cancel { call_id } => self.sip.cancel(&call_id),
            SipCommand::Bye { call_id } => self.sip.bye(&call_id),
            SipCommand::Info {
                call_id,
                content_type,
                body,
            } => self.sip.info(&call_id, &content_type, body),
        };
        if let Err(e) = result {
            warn!(error = %e, "sip command failed");
        }
    }
}
