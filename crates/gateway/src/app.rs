//! The run loop: feeds what the adapters hear into the pure core, with the
//! current time, and carries out what the core asks for.

use crate::config::Config;
use anyhow::Context;
use futures::StreamExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stox_call::{
    CallState, Core, CoreConfig, Input, IqOutcome, Millis, Output, RejectedStanza, SessionRecord,
    SipCommand, SipInput, error_condition,
};
use stox_mapping::lograte::escaped;
use stox_sip::{OutgoingInvite, SipConfig, SipEndpoint, SipEvent};
use stox_store::{LiveRow, Store, StoreEvent, StoreOp, StoreOptions, StoreQueue, WriterConfig};
use stox_xmpp::{ComponentConfig, IqFailure, XmppEvent, XmppHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, error, info, warn};

pub fn now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Millis(ms)
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = Store::open_with(
        &cfg.store.database,
        StoreOptions {
            busy_timeout: Duration::from_millis(cfg.store.busy_timeout_ms),
        },
    )
    .await
    .context("opening the session store")?;

    let cancel = CancellationToken::new();
    // The component connects while the previous run's calls are restored:
    // what the server sends meanwhile waits in the event queue.
    let xmpp_cfg = ComponentConfig {
        keepalive_to: cfg.xmpp.domains.first().cloned().unwrap_or_default(),
        keepalive: Duration::from_secs(cfg.xmpp.keepalive_secs),
        iq_timeout: Duration::from_millis(cfg.xmpp.iq_timeout_ms),
        limits: cfg.xmpp.limits.stanza(),
        offline_queue: cfg.xmpp.offline_queue,
        offline_ttl: Duration::from_secs(cfg.xmpp.offline_ttl_secs),
        ..ComponentConfig::new(
            cfg.xmpp.server.clone(),
            cfg.xmpp.component.clone(),
            cfg.xmpp.secret.clone(),
        )
    };
    let (xmpp, mut xmpp_events, xmpp_task) = stox_xmpp::spawn(xmpp_cfg, cancel.child_token());

    let leftovers = store.live_rows().await?;
    let first_id = store.next_id().await?;
    let loaded_ms = started.elapsed().as_millis() as u64;
    let sip_cfg = SipConfig {
        udp: cfg.sip.udp,
        tcp: cfg.sip.tcp,
        ws: cfg.sip.ws,
        outbound_proxy: cfg.sip.outbound_proxy.clone(),
        user_agent: cfg.sip.user_agent.clone(),
        udp_mtu: cfg.sip.udp_mtu,
        large_requests_over_tcp: cfg.sip.large_requests_over_tcp,
    };
    let (sip, mut sip_events) = SipEndpoint::start(sip_cfg, cancel.child_token())
        .await
        .context("starting the SIP endpoint")?;
    for (transport, addr) in sip.local_addrs() {
        info!(%transport, %addr, "sip listening");
    }
    let (resumed, unfinished) = resume_calls(&sip, leftovers).await?;

    let writer_cfg = WriterConfig {
        max_backlog: cfg.store.max_backlog,
        ..WriterConfig::default()
    };
    let (store_queue, mut store_events, writer) =
        stox_store::spawn_writer(store.clone(), writer_cfg);

    let mut core = Core::new(
        CoreConfig {
            component: cfg.xmpp.component.clone(),
            domains: cfg.xmpp.domains.clone(),
            ring_timeout_ms: cfg.calls.ring_timeout_secs.saturating_mul(1000),
            candidate_window_ms: cfg.calls.candidate_window_ms,
            token_salt: rand::random(),
            retry_after_secs: cfg.calls.retry_after_secs,
            jingle_limits: cfg.xmpp.limits.jingle(),
        },
        first_id,
    );
    let restored = core.restore(resumed);
    let mut exec = Executor {
        xmpp,
        sip,
        store: store_queue,
        timers: DelayQueue::new(),
    };
    let ended = unfinished.len();
    let t = now();
    let outputs = core.recover(t, unfinished);
    exec.run(&mut core, t, outputs);
    info!(
        restored,
        ended,
        loaded_ms,
        ready_ms = started.elapsed().as_millis() as u64,
        "ready: calls of the previous run restored"
    );

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
            Some(ev) = store_events.recv() => match ev {
                StoreEvent::Backlog { over_limit, .. } => Some(Input::StoreBacklog { over_limit }),
            },
            Some(expired) = exec.timers.next() => Some(Input::Timer(expired.into_inner())),
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); break }
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break }
        };
        if let Some(input) = input {
            let t = now();
            let outputs = core.handle(t, input);
            exec.run(&mut core, t, outputs);
        }
    }

    cancel.cancel();
    let Executor { store: queue, .. } = exec;
    drop(queue);
    let grace = WriterConfig::default().shutdown_grace + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), xmpp_task).await;
    store.close().await;
    info!(live_calls = core.live_calls(), "stopped");
    Ok(())
}

/// Calls left live by a previous run (a crash or `kill -9`): answered calls
/// whose SIP dialog was stored are resumed (dialog restored in the SIP layer,
/// call handed to the core); the others cannot go on — their transactions
/// died with the process — and are returned to be ended by the core
/// (`Core::recover`), with whether their unanswered INVITE was restored so
/// that the SIP side can be told too.
async fn resume_calls(
    sip: &SipEndpoint,
    leftovers: Vec<LiveRow>,
) -> anyhow::Result<(Vec<SessionRecord>, Vec<(SessionRecord, bool)>)> {
    let started = std::time::Instant::now();
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
                .map(|row| {
                    let LiveRow {
                        record: rec,
                        dialog,
                        pending,
                    } = row;
                    let resumed = rec.state == CallState::Active
                        && dialog.is_some_and(|snapshot| {
                            sip.restore_dialog(&rec.sip_call_id, &snapshot)
                                .map_err(|e| {
                                    warn!(id = rec.id, call_id = %rec.sip_call_id, error = %e, "cannot resume call")
                                })
                                .is_ok()
                        });
                    let pending = !resumed
                        && rec.state != CallState::Active
                        && pending.is_some_and(|snapshot| {
                            sip.restore_pending(&rec.sip_call_id, &snapshot)
                                .map_err(|e| {
                                    warn!(id = rec.id, call_id = %rec.sip_call_id, error = %e, "cannot restore the unanswered INVITE")
                                })
                                .is_ok()
                        });
                    (rec, resumed, pending)
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut resumed = Vec::new();
    let mut unfinished = Vec::new();
    for task in tasks {
        for (rec, ok, pending) in task.await.context("restoring calls")? {
            if ok {
                resumed.push(rec);
            } else {
                unfinished.push((rec, pending));
            }
        }
    }
    if !resumed.is_empty() || !unfinished.is_empty() {
        info!(
            resumed = resumed.len(),
            ended = unfinished.len(),
            ms = started.elapsed().as_millis() as u64,
            "calls from the previous run: answered ones resumed, the rest ended on both sides"
        );
    }
    Ok((resumed, unfinished))
}

#[cfg(unix)]
fn terminate_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")
}

fn xmpp_input(ev: XmppEvent) -> Option<Input> {
    match ev {
        XmppEvent::Online => Some(Input::XmppLink { online: true }),
        XmppEvent::Offline { .. } => Some(Input::XmppLink { online: false }),
        XmppEvent::Stanza(el) => Some(Input::Stanza(el)),
        XmppEvent::IqResponse { id, result } => {
            let outcome = match result {
                Ok(_) => IqOutcome::Result,
                Err(IqFailure::Error(el)) => IqOutcome::Error(error_condition(&el)),
                Err(IqFailure::Timeout) => IqOutcome::Timeout,
                Err(IqFailure::Undelivered) => IqOutcome::Undelivered,
            };
            Some(Input::IqResponse { id, outcome })
        }
        XmppEvent::Rejected(r) => Some(Input::StanzaRejected(RejectedStanza {
            reason: r.violation.to_string(),
            name: r.name,
            from: r.from,
            to: r.to,
            id: r.id,
            kind: r.kind,
        })),
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
            debug!(call_id = %escaped(call_id.as_str()), %transport, %source, request_uri = %escaped(&request_uri), from = %escaped(&from), "incoming INVITE");
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
    store: StoreQueue,
    timers: DelayQueue<stox_call::TimerKey>,
}

impl Executor {
    /// Carries out `outputs`; what fails becomes an input to the core, whose
    /// outputs are carried out in turn (until nothing more fails).
    fn run(&mut self, core: &mut Core, t: Millis, outputs: Vec<Output>) {
        let mut failures = self.execute(t, outputs);
        while let Some(input) = failures.pop() {
            let outputs = core.handle(t, input);
            failures.extend(self.execute(t, outputs));
        }
    }

    fn execute(&mut self, t: Millis, outputs: Vec<Output>) -> Vec<Input> {
        let mut failures = Vec::new();
        for output in outputs {
            match output {
                Output::Xmpp(el) => {
                    if !self.xmpp.send(el) {
                        error!("xmpp connection task is gone; stanza dropped");
                    }
                }
                Output::Sip(cmd) => failures.extend(self.sip(cmd).map(Input::Sip)),
                Output::Persist(rec) => self.persist(rec),
                Output::SetTimer { key, at } => {
                    let delay = Duration::from_millis(at.0.saturating_sub(t.0));
                    self.timers.insert(key, delay);
                }
            }
        }
        failures
    }

    fn persist(&mut self, rec: SessionRecord) {
        // A call's first and last rows at info (its log is two lines: who
        // called whom, how it ended); the steps in between at debug, and
        // all of them in `sessions`.
        macro_rules! call_line {
            ($level:ident) => {
                tracing::$level!(
                    id = rec.id,
                    sid = %escaped(rec.jingle_sid.as_str()),
                    call_id = %escaped(rec.sip_call_id.as_str()),
                    direction = rec.direction.as_str(),
                    xmpp = %escaped(&rec.xmpp_jid),
                    sip = %escaped(&rec.sip_uri),
                    state = rec.state.as_str(),
                    end_reason = rec.end_reason.as_deref().unwrap_or(""),
                    sip_status = rec.sip_status.unwrap_or(0),
                    detail = %escaped(rec.end_detail.as_deref().unwrap_or("")),
                    "call"
                )
            };
        }
        if matches!(rec.state, CallState::Pending | CallState::Ended) {
            call_line!(info);
        } else {
            call_line!(debug);
        }
        // An answered call's confirmed dialog is stored with it, so the
        // call survives a restart; a call being set up stores its INVITE,
        // so that a restart can still end it on the wire.
        let sip_state = match rec.state {
            CallState::Active => {
                self.sip
                    .dialog_snapshot(&rec.sip_call_id)
                    .map(|snapshot| StoreOp::Dialog {
                        id: rec.id,
                        snapshot,
                    })
            }
            CallState::Pending => {
                self.sip
                    .pending_snapshot(&rec.sip_call_id)
                    .map(|snapshot| StoreOp::Pending {
                        id: rec.id,
                        snapshot,
                    })
            }
            _ => None,
        };
        for op in std::iter::once(StoreOp::Session(rec)).chain(sip_state) {
            if !self.store.push(op) {
                error!("store writer is gone; session row NOT written");
            }
        }
    }

    /// Carries out a SIP command; a failure is returned as the input that
    /// tells the core.
    fn sip(&self, cmd: SipCommand) -> Option<SipInput> {
        let (call_id, command, result) = match cmd {
            SipCommand::Invite {
                call_id,
                request_uri,
                from,
                sdp,
                supported,
            } => {
                let result = self.sip.invite(OutgoingInvite {
                    call_id: call_id.clone(),
                    request_uri,
                    from,
                    sdp,
                    supported,
                });
                (call_id, "INVITE", result)
            }
            SipCommand::Respond {
                call_id,
                status,
                reason,
                sdp,
                retry_after,
            } => {
                let result = self.sip.respond(&call_id, status, reason, sdp, retry_after);
                (call_id, "response", result)
            }
            SipCommand::Cancel { call_id } => {
                let result = self.sip.cancel(&call_id);
                (call_id, "CANCEL", result)
            }
            SipCommand::Bye { call_id } => {
                let result = self.sip.bye(&call_id);
                (call_id, "BYE", result)
            }
            SipCommand::Info {
                call_id,
                content_type,
                body,
            } => {
                let result = self.sip.info(&call_id, &content_type, body);
                (call_id, "INFO", result)
            }
        };
        let e = result.err()?;
        warn!(call_id = %escaped(call_id.as_str()), command, error = %e, "sip command failed");
        Some(SipInput::CommandFailed {
            call_id,
            command,
            reason: e.to_string(),
        })
    }
}
