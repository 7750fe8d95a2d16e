//! The run loop: one task owns the call core and the SIP layer (both pure
//! state machines), feeds them what the adapters hear — XMPP stanzas, SIP
//! transport events, store events, timers — with the current time, and
//! carries out what they ask for.
//!
//! ```text
//!  XMPP component ──XmppEvent──▶ ┐                         ┌──▶ XmppHandle::send
//!  SIP sockets ─────IoEvent────▶ ├─▶ Sip ◀──SipCommand── Core ──▶ StoreQueue::push
//!  store writer ────StoreEvent─▶ │   │ └──SipEvent──▶ Core │     timers
//!  timers ─────────────────────▶ ┘   └──Transmit──▶ SipIo::transmit
//! ```

use crate::config::Config;
use anyhow::Context;
use futures::StreamExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stox_call::{
    CallKey, CallState, Core, CoreConfig, Input, IqOutcome, Millis, Output, RejectedStanza,
    SessionRecord, SipEvent, error_condition,
};
use stox_mapping::lograte::{LogGate, escaped};
use stox_sip::{IoConfig, IoEvent, SipIo};
use stox_sipcore::{KeyGen, Sip};
use stox_store::{Claim, LiveRow, Store, StoreEvent, StoreOp, StoreQueue, WriterConfig};
use stox_xmpp::{ComponentConfig, IqFailure, XmppEvent, XmppHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, error, info, warn};

/// The gateway's clock: the wall time read once at start, then moved on by
/// the monotonic clock. Row timestamps stay UTC wall time, yet time as the
/// core sees it never steps back or jumps with an NTP correction, so its
/// timers (ring timeout, answer timeout …) run for what they say.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Millis,
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock {
            wall: Millis(ms),
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall.plus_ms(elapsed)
    }
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    // The operations endpoint first: /health answers while the rest starts.
    let cancel = CancellationToken::new();
    let ready = std::sync::Arc::new(crate::http::Readiness::default());
    if let Some(http) = &cfg.http {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ],
            )
            .context("metrics buckets")?
            .install_recorder()
            .context("installing the metrics recorder")?;
        crate::http::serve(http.listen, handle, ready.clone(), cancel.child_token())
            .await
            .with_context(|| format!("http.listen {}", http.listen))?;
    }
    let store = Store::open_at(&cfg.store.location(), cfg.store.options())
        .await
        .context("opening the session store")?;
    // One gateway per instance number (docs/decisions/0010-scale-out.md):
    // the component's name is the owner; the same gateway restarted takes
    // its number (and its calls) back at once.
    match store
        .claim_instance(&cfg.xmpp.component, Clock::start().now())
        .await
        .context("claiming store.instance")?
    {
        Claim::Taken => {}
        Claim::HeldBy { owner, seen_ago } => anyhow::bail!(
            "store.instance {} is held by the gateway {owner} (seen {} s ago) on {}: \
             give every gateway on one store its own instance number",
            store.instance(),
            seen_ago.as_secs(),
            store.location()
        ),
    }
    let heartbeat = spawn_heartbeat(
        store.clone(),
        cfg.xmpp.component.clone(),
        cancel.child_token(),
    );

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

    let io_cfg = IoConfig {
        udp: cfg.sip.udp,
        tcp: cfg.sip.tcp,
        ws: cfg.sip.ws,
        tls_listen: cfg.sip.tls,
        dns_servers: cfg.sip.dns_servers.clone(),
        wss: cfg.sip.wss,
        tls: Some(
            stox_sip::TlsConfig::load(
                cfg.sip.tls_certificate.as_deref(),
                cfg.sip.tls_key.as_deref(),
                cfg.sip.tls_ca_file.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("sip TLS: {e}"))?,
        ),
        max_connections: cfg.sip.max_connections,
        max_connections_per_source: cfg.sip.max_connections_per_source,
        max_queued_writes: cfg.sip.max_queued_writes,
        keepalive: Duration::from_secs(cfg.sip.keepalive_secs),
    };
    let (io, mut io_events) = SipIo::start(io_cfg, cancel.child_token())
        .await
        .context("starting the SIP listeners")?;
    let mut local = io.local_addrs();
    if let Some(public) = cfg.sip.public_address {
        for (_, addr) in &mut local {
            addr.set_ip(public);
        }
    }
    for (transport, addr) in io.local_addrs() {
        info!(%transport, %addr, "sip listening");
    }
    if cfg.sip.min_se_secs < stox_sipcore::RFC_MIN_SE {
        warn!(
            min_se_secs = cfg.sip.min_se_secs,
            "sip.min_se_secs is below RFC 4028's 90 s: for tests only"
        );
    }
    // RFC 3263 §4.1: a peer or proxy named by domain alone takes the
    // transport its NAPTR records prefer.
    let peers = resolved_peers(&cfg, io.dns()).await;
    let outbound_proxy = match &cfg.sip.outbound_proxy {
        Some(uri) => Some(with_naptr_transport(io.dns(), uri).await),
        None => None,
    };
    let sip_cfg = stox_sipcore::Config {
        local,
        outbound_proxy,
        user_agent: cfg.sip.user_agent.clone(),
        udp_mtu: cfg.sip.udp_mtu,
        large_requests_over_tcp: cfg.sip.large_requests_over_tcp,
        hello_timeout: Duration::from_secs(cfg.sip.hello_timeout_secs),
        idle_timeout: Duration::from_secs(cfg.sip.idle_timeout_secs),
        seed: rand::random(),
        session_expires: cfg.sip.session_expires_secs,
        min_se: cfg.sip.min_se_secs,
        trusted_sources: Some(cfg.trusted_sources().map_err(|e| anyhow::anyhow!(e))?),
        peers,
        registrar: cfg
            .registrar
            .as_ref()
            .map(|r| stox_sipcore::registrar::RegistrarConfig {
                domains: r.domains.clone(),
                min_expires: r.min_expires_secs,
                max_expires: r.max_expires_secs,
                nonce_secret: rand::random(),
                algorithms: r.algorithms.clone(),
            }),
        rate_per_source: Some((
            cfg.sip.max_requests_per_source,
            cfg.sip.max_requests_per_source.saturating_mul(2),
        )),
        probe_interval: cfg.probe_interval(),
        ..stox_sipcore::Config::default()
    };
    let mut sip = Sip::new(sip_cfg, Instant::now())
        .map_err(|e| anyhow::anyhow!("sip.outbound_proxy: {e}"))?;

    let (resumed, unfinished) = resume_calls(&mut sip, leftovers);
    if cfg.registrar.is_some() {
        let users = store.users().await?;
        let count = users.len();
        sip.set_users(users_map(users));
        let now = Clock::start().now();
        let mut restored = 0;
        for row in store.live_bindings(now).await? {
            let record = stox_sipcore::registrar::BindingRecord {
                key: row.key.clone(),
                contact: row.contact.clone(),
                expires_in: u32::try_from(row.expires_at.0.saturating_sub(now.0) / 1000)
                    .unwrap_or(u32::MAX),
                transport: stox_sipcore::Transport::from_token(row.transport.as_bytes())
                    .unwrap_or(stox_sipcore::Transport::Udp),
                source: row
                    .source
                    .parse()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            };
            match sip.restore_binding(&row.aor, record) {
                Ok(()) => restored += 1,
                Err(e) => {
                    warn!(aor = %escaped(&row.aor), error = %e, "cannot restore a registrar binding")
                }
            }
        }
        info!(
            users = count,
            bindings = restored,
            "registrar: users and bindings loaded"
        );
    }
    let (bindings, mut users_rx) = spawn_registrar_store(store.clone(), cfg.registrar.is_some());
    if let Some(days) = cfg.store.retention_days {
        spawn_retention(store.clone(), days, cancel.child_token());
    }

    let writer_cfg = WriterConfig {
        max_backlog: cfg.store.max_backlog,
        ..WriterConfig::default()
    };
    let (store_queue, mut store_events, writer) =
        stox_store::spawn_writer(store.clone(), writer_cfg);

    let core = Core::new(
        CoreConfig {
            component: cfg.xmpp.component.clone(),
            domains: cfg.xmpp.domains.clone(),
            ring_timeout_ms: cfg.calls.ring_timeout_secs.saturating_mul(1000),
            candidate_window_ms: cfg.calls.candidate_window_ms,
            token_salt: rand::random(),
            retry_after_secs: cfg.calls.retry_after_secs,
            peer_ping_ms: cfg.calls.peer_ping_secs.saturating_mul(1000),
            max_duration_ms: cfg.calls.max_duration_secs.saturating_mul(1000),
            jingle_limits: cfg.xmpp.limits.jingle(),
            policy: Some(cfg.policy()),
            max_calls: cfg.calls.max_calls,
            media: cfg.media_policy().map_err(|e| anyhow::anyhow!(e))?,
        },
        first_id,
    );
    let (media, mut media_results) = match &cfg.rtpengine {
        Some(r) => {
            let (handle, results) = crate::media::spawn(r.ng.clone(), cancel.child_token())
                .await
                .context("starting the rtpengine NG driver")?;
            (Some(handle), Some(results))
        }
        None => (None, None),
    };
    let mut gw = Gateway {
        core,
        sip,
        io,
        xmpp,
        store: store_queue,
        timers: DelayQueue::new(),
        clock: Clock::start(),
        faults: LogGate::new(2, 5, 16),
        bindings,
        media,
        ready,
        retry_after_secs: cfg.calls.retry_after_secs,
        drain: cfg.calls.drain_secs,
        draining: None,
        xmpp_online: false,
        seen_online: false,
        calls_in_memory: usize::MAX,
    };
    gw.next_hop_gauges();
    let restored = gw.core.restore(resumed);
    let ended = unfinished.len();
    let t = gw.clock.now();
    let outputs = gw.core.recover(t, unfinished);
    gw.execute(t, outputs);
    gw.pump();
    info!(
        restored,
        ended,
        loaded_ms,
        ready_ms = started.elapsed().as_millis() as u64,
        "ready: calls of the previous run restored"
    );

    let mut sigterm = terminate_signal()?;
    let mut sighup = hangup_signal()?;
    let mut running_cfg = cfg;
    loop {
        let sip_deadline = gw.sip.poll_timeout().map(tokio::time::Instant::from_std);
        // While draining, look at the calls left every 100 ms.
        let drain_tick = gw
            .draining
            .map(|_| tokio::time::Instant::now() + Duration::from_millis(100));
        tokio::select! {
            ev = xmpp_events.recv() => match ev {
                Some(ev) => {
                    if let Some(input) = xmpp_input(ev) {
                        if let Input::XmppLink { online } = input {
                            gw.xmpp_link(online);
                        }
                        gw.core_input(input);
                    }
                }
                None => break,
            },
            ev = io_events.recv() => match ev {
                Some(ev) => gw.io_event(ev),
                None => break,
            },
            Some(ev) = store_events.recv() => match ev {
                StoreEvent::Backlog { over_limit, .. } => {
                    gw.ready.store_backlogged.store(over_limit, std::sync::atomic::Ordering::Relaxed);
                    gw.core_input(Input::StoreBacklog { over_limit });
                }
            },
            Some(expired) = gw.timers.next() => gw.core_input(Input::Timer(expired.into_inner())),
            Some(users) = users_rx.recv() => gw.sip.set_users(users),
            Some((ticket, result)) = recv_opt(&mut media_results) => {
                let outcome = if result.is_ok() { "ok" } else { "failed" };
                metrics::counter!("stox_media_requests_total", "result" => outcome).increment(1);
                gw.core_input(Input::Media { ticket, result });
            }
            () = sleep_until(sip_deadline), if sip_deadline.is_some() => {
                gw.sip.handle_timeout(Instant::now());
            }
            _ = tokio::signal::ctrl_c() => {
                if gw.draining.is_some() { info!("SIGINT again: stopping now"); break }
                gw.start_drain("SIGINT");
            }
            _ = sigterm.recv() => {
                if gw.draining.is_some() { info!("SIGTERM again: stopping now"); break }
                gw.start_drain("SIGTERM");
            }
            () = sleep_until(drain_tick), if drain_tick.is_some() => {}
            _ = sighup.recv() => gw.reload(&mut running_cfg, io_dns(&gw)).await,
        }
        gw.pump();
        if gw.drained() {
            break;
        }
    }

    cancel.cancel();
    let live_calls = gw.core.live_calls();
    let Gateway { store: queue, .. } = gw;
    drop(queue);
    let grace = WriterConfig::default().shutdown_grace + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), xmpp_task).await;
    heartbeat.abort();
    if let Err(e) = store.release(&running_cfg.xmpp.component).await {
        warn!(error = %e, instance = %store.instance(), "store: could not release the instance number; it is free again once 30 s stale");
    }
    store.close().await;
    info!(live_calls, "stopped");
    Ok(())
}

/// The next item of an optional channel (never, without one).
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The status code of a response about to be sent (`SIP/2.0 NNN …`).
fn response_code(data: &[u8]) -> Option<&'static str> {
    let code = data.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    // Static labels: the codes a gateway sends are few; anything else is
    // "other" (a label per value a peer could choose is unbounded).
    Some(match code {
        b"100" => "100",
        b"180" => "180",
        b"183" => "183",
        b"200" => "200",
        b"202" => "202",
        b"400" => "400",
        b"401" => "401",
        b"403" => "403",
        b"404" => "404",
        b"405" => "405",
        b"407" => "407",
        b"408" => "408",
        b"415" => "415",
        b"416" => "416",
        b"420" => "420",
        b"422" => "422",
        b"423" => "423",
        b"480" => "480",
        b"481" => "481",
        b"482" => "482",
        b"486" => "486",
        b"487" => "487",
        b"488" => "488",
        b"491" => "491",
        b"500" => "500",
        b"501" => "501",
        b"503" => "503",
        b"505" => "505",
        b"513" => "513",
        b"603" => "603",
        _ => "other",
    })
}

/// Counters and the set-up latency of a call, from the row it writes.
/// Each is counted once: a row starts (`created_at` = `updated_at`), is
/// answered (`answered_at` = `updated_at`) and ends (`ended_at` =
/// `updated_at`) in exactly one write.
fn call_metrics(rec: &SessionRecord) {
    let direction = rec.direction.as_str();
    match rec.state {
        CallState::Pending if rec.created_at == rec.updated_at => {
            metrics::counter!("stox_calls_started_total", "direction" => direction).increment(1);
        }
        CallState::Active if rec.answered_at == Some(rec.updated_at) => {
            let setup = rec.updated_at.0.saturating_sub(rec.created_at.0) as f64 / 1000.0;
            metrics::histogram!("stox_call_setup_seconds", "direction" => direction).record(setup);
        }
        CallState::Ended if rec.ended_at == Some(rec.updated_at) => {
            let outcome = if rec.answered_at.is_some() {
                "answered"
            } else {
                "unanswered"
            };
            metrics::counter!("stox_calls_ended_total",
                "direction" => direction,
                "outcome" => outcome,
                "reason" => rec.end_reason.clone().unwrap_or_default())
            .increment(1);
        }
        _ => {}
    }
}

/// `stox_sip_peer_up{peer}` / `stox_sip_outbound_proxy_up`: 1 while the
/// next hop is usable (up, not probed yet, or no longer watched), 0 while
/// it is down. Labels are configured peer names only.
fn next_hop_gauge(hop: &stox_sipcore::NextHop, usable: bool) {
    let value = if usable { 1.0 } else { 0.0 };
    match hop {
        stox_sipcore::NextHop::Peer(name) => {
            metrics::gauge!("stox_sip_peer_up", "peer" => name.clone()).set(value);
        }
        stox_sipcore::NextHop::OutboundProxy => {
            metrics::gauge!("stox_sip_outbound_proxy_up").set(value);
        }
    }
}

/// A call refused because `hop` (with every other route it had) was down.
fn next_hop_refusal(hop: &stox_sipcore::NextHop) {
    match hop {
        stox_sipcore::NextHop::Peer(name) => {
            metrics::counter!("stox_sip_peer_down_refusals_total", "peer" => name.clone())
                .increment(1);
        }
        stox_sipcore::NextHop::OutboundProxy => {
            metrics::counter!("stox_sip_outbound_proxy_down_refusals_total").increment(1);
        }
    }
}

/// After the drain: how long calls ended by the gateway may wait for the
/// answers to their BYEs and CANCELs before the process exits.
const LINGER: Duration = Duration::from_secs(2);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Calls left live by a previous run (a crash or `kill -9`): answered calls
/// whose SIP dialog was stored are resumed (the dialog restored in the SIP
/// layer, the call handed to the core); the others cannot go on — their
/// transactions died with the process — and are returned to be ended by
/// the core (`Core::recover`), with whether their unanswered INVITE was
/// restored so that the SIP side can be told too.
#[allow(clippy::type_complexity)]
fn resume_calls(
    sip: &mut Sip,
    leftovers: Vec<LiveRow>,
) -> (
    Vec<(CallKey, SessionRecord)>,
    Vec<(CallKey, SessionRecord, bool)>,
) {
    let started = Instant::now();
    let mut keys = KeyGen::new(rand::random());
    let mut resumed = Vec::new();
    let mut unfinished = Vec::new();
    for row in leftovers {
        let LiveRow {
            record: rec,
            dialog,
            pending,
        } = row;
        let key = keys.key();
        let ok = rec.state == CallState::Active
            && dialog.is_some_and(|snapshot| {
                sip.restore_dialog(key, &rec.sip_call_id, &snapshot)
                    .map_err(|e| {
                        warn!(id = rec.id, call_id = %escaped(rec.sip_call_id.as_str()), error = %e, "cannot resume call");
                    })
                    .is_ok()
            });
        if ok {
            resumed.push((key, rec));
            continue;
        }
        let pending = rec.state != CallState::Active
            && pending.is_some_and(|snapshot| {
                sip.restore_pending(key, rec.sip_call_id.as_str(), &snapshot)
                    .map_err(|e| {
                        warn!(id = rec.id, call_id = %escaped(rec.sip_call_id.as_str()), error = %e, "cannot restore the unanswered INVITE");
                    })
                    .is_ok()
            });
        unfinished.push((key, rec, pending));
    }
    if !resumed.is_empty() || !unfinished.is_empty() {
        info!(
            resumed = resumed.len(),
            ended = unfinished.len(),
            ms = started.elapsed().as_millis() as u64,
            "calls from the previous run: answered ones resumed, the rest ended on both sides"
        );
    }
    (resumed, unfinished)
}

/// The configured peers as the SIP layer needs them, each `uri` named by
/// domain alone given the transport its NAPTR records prefer.
async fn resolved_peers(cfg: &Config, dns: &stox_sip::Dns) -> Vec<stox_sipcore::api::Peer> {
    let mut peers = cfg.sip_peers();
    for peer in &mut peers {
        if let Some(uri) = peer.uri.clone() {
            peer.uri = Some(with_naptr_transport(dns, &uri).await);
        }
    }
    peers
}

/// `uri` with the transport its domain's NAPTR records prefer, when it
/// names neither transport nor port and its host is a name (RFC 3263 §4.1);
/// else `uri` as it is.
async fn with_naptr_transport(dns: &stox_sip::Dns, uri: &str) -> String {
    let Ok(parsed) = stox_mapping::address::SipUri::parse(uri) else {
        return uri.to_owned();
    };
    let named = parsed.host.parse::<std::net::IpAddr>().is_err() && !parsed.host.starts_with('[');
    let open = parsed.port.is_none()
        && !parsed
            .params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transport"))
        && !uri.trim_start().to_ascii_lowercase().starts_with("sips:");
    if !(named && open) {
        return uri.to_owned();
    }
    match dns.naptr_transport(&parsed.host).await {
        Some(transport) => {
            info!(uri = %escaped(uri), transport, "RFC 3263 NAPTR: transport chosen");
            format!("{uri};transport={transport}")
        }
        None => uri.to_owned(),
    }
}

/// A binding change for the store: (AOR, key, the row or `None`, when).
type BindingWrite = (
    String,
    String,
    Option<stox_store::registrar::BindingRow>,
    stox_call::Millis,
);

fn users_map(
    rows: Vec<stox_store::registrar::UserRow>,
) -> std::collections::HashMap<String, stox_sipcore::registrar::UserKeys> {
    rows.into_iter()
        .map(|u| {
            (
                u.aor,
                stox_sipcore::registrar::UserKeys {
                    ha1_md5: u.ha1_md5,
                    ha1_sha256: u.ha1_sha256,
                },
            )
        })
        .collect()
}

/// The registrar's store side: a task that writes binding changes in order,
/// and one that re-reads the users when the table changes (`stox-gateway
/// user add` from another process), every 2 s.
fn spawn_registrar_store(
    store: Store,
    on: bool,
) -> (
    mpsc::Sender<BindingWrite>,
    mpsc::Receiver<std::collections::HashMap<String, stox_sipcore::registrar::UserKeys>>,
) {
    let (tx, mut rx) = mpsc::channel::<BindingWrite>(4096);
    let (users_tx, users_rx) = mpsc::channel(1);
    if !on {
        return (tx, users_rx);
    }
    let writer = store.clone();
    tokio::spawn(async move {
        while let Some((aor, key, row, now)) = rx.recv().await {
            if let Err(e) = writer.put_binding(&aor, &key, row.as_ref(), now).await {
                error!(aor = %escaped(&aor), error = %e, "registrar binding NOT stored");
            }
        }
    });
    tokio::spawn(async move {
        let mut seen = store.users_version().await.unwrap_or_default();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let Ok(version) = store.users_version().await else {
                continue;
            };
            if version == seen {
                continue;
            }
            match store.users().await {
                Ok(users) => {
                    seen = version;
                    info!(users = users.len(), "registrar: users re-read");
                    if users_tx.send(users_map(users)).await.is_err() {
                        break;
                    }
                }
                Err(e) => warn!(error = %e, "registrar: cannot re-read the users"),
            }
        }
    });
    (tx, users_rx)
}

#[cfg(unix)]
fn hangup_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")
}

/// The SIP IO's resolver (for RFC 3263 lookups of reloaded peers).
fn io_dns(gw: &Gateway) -> stox_sip::Dns {
    gw.io.dns().clone()
}

/// Keeps this gateway's claim on its instance number fresh
/// ([`stox_store::instance::HEARTBEAT`]). A claim found taken over (this
/// gateway was silent past the stale limit and another started with the
/// same number) is an error: both would now number and restore the same
/// calls.
fn spawn_heartbeat(
    store: Store,
    owner: String,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(stox_store::instance::HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match store.heartbeat(&owner, Clock::start().now()).await {
                Ok(true) => metrics::gauge!("stox_store_instance_held").set(1.0),
                Ok(false) => {
                    metrics::gauge!("stox_store_instance_held").set(0.0);
                    error!(
                        instance = %store.instance(),
                        "store: another gateway took this instance number over; \
                         both now number and restore the same calls: stop one"
                    );
                }
                // A store that is down is the writer's to report; the claim
                // is refreshed when it is back.
                Err(e) => warn!(error = %e, "store: the instance heartbeat failed"),
            }
        }
    })
}

/// `[store] retention_days`: rows of calls that ended longer ago than that
/// are deleted 5 s after start, then every day (docs/sql.md).
fn spawn_retention(store: Store, days: u32, cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            next += Duration::from_secs(24 * 3600);
            let now = Clock::start().now();
            let before = Millis(now.0.saturating_sub(u64::from(days) * 86_400_000));
            match store.prune_ended(before).await {
                Ok(rows) => {
                    metrics::counter!("stox_store_rows_pruned_total").increment(rows);
                    info!(
                        rows,
                        days, "retention: ended calls older than the limit deleted"
                    );
                }
                Err(e) => error!(error = %e, "retention: pruning failed; tried again tomorrow"),
            }
        }
    });
}

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
                Err(IqFailure::Error(el)) => {
                    let condition = error_condition(&el);
                    metrics::counter!("stox_jingle_errors_received_total",
                        "condition" => condition.as_str().to_owned())
                    .increment(1);
                    IqOutcome::Error(condition)
                }
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

/// Everything the run loop owns.
struct Gateway {
    core: Core,
    sip: Sip,
    io: SipIo,
    xmpp: XmppHandle,
    store: StoreQueue,
    timers: DelayQueue<stox_call::TimerKey>,
    clock: Clock,
    /// Lines about inputs a call did not expect, a few a second per kind.
    faults: LogGate<&'static str>,
    /// Registrar binding changes, to their writer task.
    bindings: mpsc::Sender<BindingWrite>,
    /// The rtpengine NG driver, when `[rtpengine]` is configured.
    media: Option<crate::media::MediaHandle>,
    /// What `/ready` reports.
    ready: std::sync::Arc<crate::http::Readiness>,
    retry_after_secs: u32,
    /// `[calls] drain_secs`.
    drain: u64,
    /// Draining since SIGTERM: when what is left is ended.
    draining: Option<Instant>,
    xmpp_online: bool,
    /// The component was online once (later onlines are reconnects).
    seen_online: bool,
    /// The `stox_calls_in_memory` gauge's value (set when it changes).
    calls_in_memory: usize,
}

impl Gateway {
    fn core_input(&mut self, input: Input) {
        let t = self.clock.now();
        let outputs = self.core.handle(t, input);
        self.execute(t, outputs);
        let calls = self.core.live_calls();
        if calls != self.calls_in_memory {
            self.calls_in_memory = calls;
            metrics::gauge!("stox_calls_in_memory").set(calls as f64);
        }
    }

    /// The component went up or down: OPTIONS, /ready and the metrics
    /// follow (the core refuses INVITEs itself).
    fn xmpp_link(&mut self, online: bool) {
        use std::sync::atomic::Ordering;
        self.xmpp_online = online;
        self.ready.component.store(online, Ordering::Relaxed);
        metrics::gauge!("stox_xmpp_component_connected").set(if online { 1.0 } else { 0.0 });
        if online {
            if self.seen_online {
                metrics::counter!("stox_xmpp_reconnects_total").increment(1);
            }
            self.seen_online = true;
        }
        self.sip_availability();
    }

    fn sip_availability(&mut self) {
        let why = if self.draining.is_some() {
            Some("Service Unavailable (the gateway is shutting down)")
        } else if !self.xmpp_online {
            Some("Service Unavailable (XMPP server not connected)")
        } else {
            None
        };
        self.sip
            .set_unavailable(why.map(|w| (w.to_owned(), self.retry_after_secs)));
    }

    /// SIGHUP: the config file is read again and its policy tables
    /// applied — peers (addresses, routes, credentials, identity, media),
    /// who may call out, the trusted sources — without touching calls in
    /// progress. A file that does not load, or a peer that does not apply,
    /// keeps everything as it was; keys only a restart applies are named
    /// in the log and left as they were.
    async fn reload(&mut self, running: &mut Config, dns: stox_sip::Dns) {
        let Some(path) = running.source.clone() else {
            warn!("SIGHUP: the config has no file to read again; nothing reloaded");
            return;
        };
        let applied = async {
            let new = Config::load(&path)?;
            let trusted = new.trusted_sources()?;
            let media = new.media_policy()?;
            if media.anchors_any() && self.media.is_none() {
                return Err(
                    "media = \"rtpengine\" needs [rtpengine], which only a restart starts"
                        .to_owned(),
                );
            }
            let peers = resolved_peers(&new, &dns).await;
            self.sip.reload_peers(peers, Some(trusted))?;
            Ok((new, media))
        }
        .await;
        let (new, media) = match applied {
            Ok(done) => done,
            Err(e) => {
                error!(error = %e, "SIGHUP: reload refused; the running config stays");
                metrics::counter!("stox_config_reloads_total", "result" => "refused").increment(1);
                return;
            }
        };
        self.core.reload_policy(Some(new.policy()), media);
        // Peers kept keep their health; new ones are probed now.
        self.sip.set_probe_interval(new.probe_interval());
        self.next_hop_gauges();
        let restart = running.needs_restart(&new);
        if !restart.is_empty() {
            warn!(
                keys = %restart.join(", "),
                "SIGHUP: these changes need a restart; the running values stay"
            );
        }
        info!(
            peers = new.sip.peers.len(),
            live_calls = self.core.live_calls(),
            "SIGHUP: config reloaded (peers, callers, routes, media modes)"
        );
        metrics::counter!("stox_config_reloads_total", "result" => "applied").increment(1);
        // What a reload applies is now the running config's; the rest
        // stays as it was started.
        running.sip.peers = new.sip.peers;
        running.sip.media = new.sip.media;
        running.sip.media_transport = new.sip.media_transport;
        running.sip.probe_secs = new.sip.probe_secs;
        running.xmpp.callers = new.xmpp.callers;
    }

    /// SIGTERM: no new calls; live ones have `drain` seconds.
    fn start_drain(&mut self, signal: &str) {
        let live = self.core.active_calls();
        info!(
            signal,
            live_calls = live,
            drain_secs = self.drain,
            "draining: new calls refused, live calls go on until they end or the drain time is over"
        );
        self.draining = Some(Instant::now() + Duration::from_secs(self.drain));
        self.ready
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.sip_availability();
        self.core_input(Input::Draining { on: true });
    }

    /// Draining, and nothing is left (or the drain time is over: what is
    /// left is ended on both sides, and its BYEs get a moment to go out and
    /// be answered).
    fn drained(&mut self) -> bool {
        let Some(deadline) = self.draining else {
            return false;
        };
        if self.core.active_calls() == 0 {
            return self.core.live_calls() == 0 || Instant::now() >= deadline + LINGER;
        }
        if Instant::now() < deadline {
            return false;
        }
        let left = self.core.active_calls();
        info!(
            calls = left,
            "drain time over: ending the calls left on both sides"
        );
        let t = self.clock.now();
        let outputs = self.core.shut_down(t);
        self.execute(t, outputs);
        self.pump();
        false
    }

    fn io_event(&mut self, ev: IoEvent) {
        use stox_sipcore::Input as I;
        let now = Instant::now();
        match ev {
            IoEvent::Datagram { source, data } => {
                self.sip.handle_input(
                    now,
                    I::Datagram {
                        source,
                        data: &data,
                    },
                );
            }
            IoEvent::Stream { conn, data } => {
                self.sip.handle_input(now, I::Stream { conn, data: &data })
            }
            IoEvent::Frame { conn, data } => {
                self.sip.handle_input(now, I::Frame { conn, data: &data })
            }
            IoEvent::Opened {
                conn,
                transport,
                peer,
            } => self.sip.handle_input(
                now,
                I::Opened {
                    conn,
                    transport,
                    peer,
                },
            ),
            IoEvent::Closed { conn } => self.sip.handle_input(now, I::Closed { conn }),
            IoEvent::SendFailed { call, reason } => {
                self.sip.handle_input(now, I::SendFailed { call, reason });
            }
        }
    }

    /// Carries out what the SIP layer asks for until it has nothing more:
    /// transmits, connections to close, and events for the core (whose
    /// commands go back into the SIP layer).
    fn pump(&mut self) {
        while let Some(out) = self.sip.poll_output() {
            match out {
                stox_sipcore::Output::Transmit(t) => {
                    if let Some(code) = response_code(&t.data) {
                        metrics::counter!("stox_sip_responses_sent_total", "code" => code)
                            .increment(1);
                    }
                    let call = t.call;
                    if let Err(e) = self.io.transmit(t) {
                        debug!(error = %e, "sip transmit failed");
                        self.sip.handle_input(
                            Instant::now(),
                            stox_sipcore::Input::SendFailed {
                                call,
                                reason: e.to_string(),
                            },
                        );
                    }
                }
                stox_sipcore::Output::Event(ev) => self.sip_event(ev),
                stox_sipcore::Output::Close { conn, reason } => self.io.close(conn, reason),
                stox_sipcore::Output::Binding { aor, key, binding } => {
                    let now = self.clock.now();
                    let row = binding.map(|b| stox_store::registrar::BindingRow {
                        aor: aor.clone(),
                        key: key.clone(),
                        contact: b.contact,
                        transport: b.transport.as_str().to_owned(),
                        source: b.source.to_string(),
                        expires_at: now.plus_ms(u64::from(b.expires_in) * 1000),
                    });
                    if self.bindings.try_send((aor, key, row, now)).is_err() {
                        error!("registrar binding NOT stored: its writer is behind or gone");
                    }
                }
                stox_sipcore::Output::Health { hop, down } => self.next_hop_health(hop, down),
            }
        }
    }

    /// A SIP next hop went down or is usable again (the SIP layer's OPTIONS
    /// probes, failed INVITEs): a log line, its gauge, `/ready`'s note, and
    /// the core, which refuses the calls routed to it while it is down.
    fn next_hop_health(&mut self, hop: stox_sipcore::NextHop, down: Option<String>) {
        match &down {
            Some(why) => warn!(
                hop = %hop,
                why = %escaped(why),
                "sip next hop down: XMPP calls routed to it are refused"
            ),
            None => info!(hop = %hop, "sip next hop up"),
        }
        next_hop_gauge(&hop, down.is_none());
        let hops = self.sip.next_hops();
        let all_down = !hops.is_empty() && hops.iter().all(|(_, why)| why.is_some());
        let note = all_down.then(|| {
            let list: Vec<String> = hops
                .iter()
                .map(|(hop, why)| format!("{hop}: {}", why.as_deref().unwrap_or("")))
                .collect();
            format!(
                "every probed SIP next hop is down ({}): calls from XMPP to SIP are refused",
                list.join("; ")
            )
        });
        *self
            .ready
            .sip_down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = note;
        self.core_input(Input::PeerHealth { hop, down });
    }

    /// Every watched next hop's gauge, as the SIP layer knows it (at start
    /// and after a reload: new hops show as usable until probed).
    fn next_hop_gauges(&self) {
        for (hop, down) in self.sip.next_hops() {
            next_hop_gauge(&hop, down.is_none());
        }
    }

    fn sip_event(&mut self, ev: SipEvent) {
        let received = match &ev {
            SipEvent::Provisional { status, .. } | SipEvent::Rejected { status, .. } => {
                Some(*status)
            }
            SipEvent::Answered { .. } => Some(200),
            _ => None,
        };
        if let Some(status) = received {
            metrics::counter!("stox_sip_invite_responses_received_total", "code" => status.to_string())
                .increment(1);
        }
        if let SipEvent::IncomingInvite {
            call_id,
            transport,
            source,
            request_uri,
            from,
            ..
        } = &ev
        {
            debug!(call_id = %escaped(call_id.as_str()), %transport, %source, request_uri = %escaped(request_uri), from = %escaped(from), "incoming INVITE");
        }
        self.core_input(Input::Sip(ev));
    }

    /// Carries out the core's outputs (SIP commands go into the SIP layer;
    /// what they make it output is carried out by `pump`).
    fn execute(&mut self, t: Millis, outputs: Vec<Output>) {
        // NG requests that cannot even be queued fail back into the core
        // once this batch is carried out (their order with it kept).
        let mut media_failed = Vec::new();
        for output in outputs {
            match output {
                Output::Media(req) => {
                    let sent = match &self.media {
                        Some(h) => h.send(req),
                        None => Err((req.ticket, "no [rtpengine] configured".to_owned())),
                    };
                    if let Err(failed) = sent {
                        media_failed.push(failed);
                    }
                }
                Output::MediaStats { id, stats } => {
                    info!(
                        id,
                        from_xmpp = stats.packets_from_xmpp,
                        from_sip = stats.packets_from_sip,
                        errors = stats.errors,
                        "media: rtpengine session deleted"
                    );
                    if !self.store.push(StoreOp::Media { id, stats }) {
                        error!(id, "store writer is gone; media figures NOT written");
                    }
                }
                Output::Xmpp(el) => {
                    self.log_iq_error(&el, t);
                    if !self.xmpp.send(el) {
                        error!("xmpp connection task is gone; stanza dropped");
                    }
                }
                Output::Sip(cmd) => {
                    if let stox_call::SipCommand::Reply {
                        call,
                        status: status @ 400..,
                        reason,
                        ..
                    } = &cmd
                        && let Some(held_back) = self.faults.admit(&"sip-refused", t.0)
                    {
                        info!(
                            call = call.0,
                            held_back,
                            status,
                            "in-dialog request refused: {}",
                            escaped(reason.as_deref().unwrap_or(""))
                        );
                    }
                    self.sip
                        .handle_input(Instant::now(), stox_sipcore::Input::Command(cmd))
                }
                Output::Persist { record, call } => self.persist(record, call),
                Output::SetTimer { key, at } => {
                    let delay = Duration::from_millis(at.0.saturating_sub(t.0));
                    self.timers.insert(key, delay);
                }
                Output::Fault { call, fault } => {
                    let kind = match &fault {
                        stox_call::Fault::UnexpectedSip { .. } => "unexpected-sip",
                        stox_call::Fault::UnexpectedJmi { .. } => "unexpected-jmi",
                        stox_call::Fault::IqFailed { .. } => "iq-failed",
                        stox_call::Fault::CommandFailed { .. } => "command-failed",
                        stox_call::Fault::ChangeRefused { .. } => "change-refused",
                        stox_call::Fault::Forbidden { .. } => "forbidden",
                        stox_call::Fault::MediaRelay { .. } => "media-relay",
                        stox_call::Fault::PeerDown { hops, .. } => {
                            for hop in hops {
                                next_hop_refusal(hop);
                            }
                            "peer-down"
                        }
                    };
                    if let Some(held_back) = self.faults.admit(&kind, t.0) {
                        info!(call, kind, held_back, "{}", escaped(&fault.to_string()));
                    }
                }
            }
        }
        for (ticket, reason) in media_failed {
            warn!(ticket, reason = %reason, "rtpengine request not sent");
            self.core_input(Input::Media {
                ticket,
                result: Err(reason),
            });
        }
    }

    /// Every IQ error the core answers with gets a log line (rate-limited):
    /// who asked, which condition, why.
    fn log_iq_error(&mut self, el: &minidom::Element, t: Millis) {
        if el.name() != "iq" || el.attr("type") != Some("error") {
            return;
        }
        let Some(error) = el.children().find(|c| c.name() == "error") else {
            return;
        };
        const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
        let condition = error
            .children()
            .find(|c| c.ns() == STANZAS && c.name() != "text")
            .map_or("", |c| c.name());
        let text = error
            .children()
            .find(|c| c.ns() == STANZAS && c.name() == "text")
            .map(|c| c.text())
            .unwrap_or_default();
        metrics::counter!("stox_jingle_errors_sent_total", "condition" => condition.to_owned())
            .increment(1);
        if let Some(held_back) = self.faults.admit(&"iq-refused", t.0) {
            info!(
                to = %escaped(el.attr("to").unwrap_or("")),
                id = %escaped(el.attr("id").unwrap_or("")),
                condition = %condition,
                held_back,
                "IQ refused: {}",
                escaped(&text)
            );
        }
    }

    fn persist(&mut self, rec: SessionRecord, call: Option<CallKey>) {
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
        call_metrics(&rec);
        // An answered call's confirmed dialog is stored with it, so the
        // call survives a restart; a call being set up stores its INVITE,
        // so that a restart can still end it on the wire.
        let sip_state = call.and_then(|call| match rec.state {
            CallState::Active => self
                .sip
                .dialog_snapshot(call)
                .map(|snapshot| StoreOp::Dialog {
                    id: rec.id,
                    snapshot,
                }),
            CallState::Pending => {
                self.sip
                    .pending_snapshot(call)
                    .map(|snapshot| StoreOp::Pending {
                        id: rec.id,
                        snapshot,
                    })
            }
            _ => None,
        });
        for op in std::iter::once(StoreOp::Session(rec)).chain(sip_state) {
            if !self.store.push(op) {
                error!("store writer is gone; session row NOT written");
            }
        }
    }
}
