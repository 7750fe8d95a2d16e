//! One gateway load run, start to end: start the gateway against our
//! component listener, accept its handshake, start SIPp, drive the calls,
//! then read CPU, memory, latency and the `sessions` table.

use crate::component;
use crate::driver::{Conn, Outcome};
use crate::pcap;
use crate::procstat;
use crate::profiles::{SipToXmpp, XmppToSip};
use crate::report::Report;
use crate::spawn::{self, Capture, Gateway, GatewayPorts, Sipp, SippSpec, Transport};
use crate::stats::{parse_sipp_rtt, parse_sipp_stat};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

pub const COMPONENT: &str = "sip.example.com";
pub const DOMAIN: &str = "example.com";
const SECRET: &str = "bench-secret";

/// Settings shared by every run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rate: f64,
    pub duration: Duration,
    pub hold: Duration,
    pub ring: Duration,
    pub transport: Transport,
    pub gateway_bin: PathBuf,
    pub bench_dir: PathBuf,
    pub work_dir: PathBuf,
    pub clk_tck: u64,
    /// Capture the run with tcpdump and report on-the-wire gateway latencies.
    pub pcap: bool,
}

impl Settings {
    pub fn calls(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round().max(1.0) as u64
    }

    pub fn ticks_to_us(&self, ticks: u64) -> f64 {
        ticks as f64 * 1_000_000.0 / self.clk_tck.max(1) as f64
    }

    fn scenario(&self, name: &str) -> PathBuf {
        self.bench_dir.join("sipp").join(name)
    }

    /// The SIPp UAS (`uas.xml`) on `port` for `calls` calls: rings for
    /// `--ring-ms`, answers, waits for the BYE — for the run's hold plus
    /// 30 s, or for `hold` (and as long again before giving up) when given.
    pub(crate) fn spawn_uas(
        &self,
        port: u16,
        calls: u64,
        hold: Option<Duration>,
        dir: &Path,
    ) -> anyhow::Result<Sipp> {
        let (wait, timeout) = match hold {
            Some(hold) => (hold, hold),
            None => (
                self.hold + Duration::from_secs(30),
                self.duration + self.hold + Duration::from_secs(60),
            ),
        };
        Sipp::spawn(
            &SippSpec {
                name: "uas",
                template: &self.scenario("uas.xml"),
                params: vec![
                    ("ring_ms", self.ring.as_millis().to_string()),
                    ("wait_ms", wait.as_millis().to_string()),
                    ("linger_ms", "0".into()),
                ],
                port,
                remote: None,
                transport: self.transport,
                rate: None,
                calls,
                timeout,
            },
            dir,
        )
    }
}

/// The gateway, connected to us and ready for calls.
pub struct Running {
    pub gw: Gateway,
    pub conn: Conn,
    pub ports: GatewayPorts,
    listener: TcpListener,
    /// Spawn → handshake done.
    pub startup: Duration,
}

pub async fn start_gateway(s: &Settings, dir: &Path) -> anyhow::Result<Running> {
    std::fs::create_dir_all(dir)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ports = GatewayPorts {
        component: listener.local_addr()?.port(),
        sip: spawn::free_port()?,
        outbound_proxy: spawn::free_port()?,
    };
    let (config, db) = Gateway::write_config(dir, &ports, SECRET, s.transport == Transport::Tcp)?;
    let t0 = Instant::now();
    let gw = Gateway::spawn(&s.gateway_bin, dir, &config, &db, ports.sip, "gateway.log")?;
    let (conn, startup) = accept(&listener, t0, &gw).await?;
    Ok(Running {
        gw,
        conn,
        ports,
        listener,
        startup,
    })
}

async fn accept(
    listener: &TcpListener,
    t0: Instant,
    gw: &Gateway,
) -> anyhow::Result<(Conn, Duration)> {
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
        .await
        .with_context(|| {
            format!(
                "the gateway did not connect within 60 s; see {}",
                gw.log.display()
            )
        })??;
    let (domain, splitter) =
        component::accept(&mut stream, SECRET, Duration::from_secs(10)).await?;
    anyhow::ensure!(
        domain == COMPONENT,
        "component {domain} connected, expected {COMPONENT}"
    );
    Ok((Conn::new(stream, splitter), t0.elapsed()))
}

impl Running {
    /// After a `kill -9`: starts the gateway again on the same config and DB.
    pub async fn restart_after_kill(
        &mut self,
        s: &Settings,
        dir: &Path,
    ) -> anyhow::Result<(Duration, Duration)> {
        let _ = self.gw.child.kill().await;
        let t0 = Instant::now();
        self.gw = Gateway::spawn(
            &s.gateway_bin,
            dir,
            &self.gw.config,
            &self.gw.db,
            self.ports.sip,
            "gateway-restart.log",
        )?;
        let (conn, online) = accept(&self.listener, t0, &self.gw).await?;
        self.conn = conn;
        // The component may be online before the old calls are restored (the
        // gateway does both at once): ready is when its log says the calls
        // are back in the core, which then takes events.
        let deadline = t0 + Duration::from_secs(120);
        loop {
            let log = std::fs::read_to_string(&self.gw.log).unwrap_or_default();
            if log.contains(READY_LINE) {
                return Ok((online, t0.elapsed()));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the restarted gateway never logged {READY_LINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How long `held` keeps the calls after set-up before its steady-state
/// figure: Timer M (32 s) plus a margin.
const STEADY_AFTER_SETUP: Duration = Duration::from_secs(35);

/// What the gateway logs once the previous run's calls are restored.
const READY_LINE: &str = "ready: calls of the previous run restored";

struct Usage {
    cpu0: u64,
    rss0: u64,
    t0: Instant,
}

impl Usage {
    fn start(pid: u32) -> anyhow::Result<Usage> {
        Ok(Usage {
            cpu0: procstat::stat(pid)?.cpu_ticks,
            rss0: procstat::rss(pid)?.0,
            t0: Instant::now(),
        })
    }

    fn finish(&self, s: &Settings, pid: u32, calls: u64, r: &mut Report) -> anyhow::Result<()> {
        let ticks = procstat::stat(pid)?.cpu_ticks - self.cpu0;
        let (rss, peak) = procstat::rss(pid)?;
        let secs = self.t0.elapsed().as_secs_f64();
        r.add("gateway_cpu_ticks", ticks);
        r.add(
            "gateway_cpu_percent",
            format!("{:.1}", 100.0 * s.ticks_to_us(ticks) / 1e6 / secs),
        );
        r.add(
            "cpu_us_per_call",
            format!("{:.1}", s.ticks_to_us(ticks) / calls.max(1) as f64),
        );
        r.add("baseline_rss_kib", self.rss0);
        r.add("end_rss_kib", rss);
        r.add("peak_rss_kib", peak);
        Ok(())
    }
}

fn header(r: &mut Report, s: &Settings, direction: &str) {
    r.add("direction", direction);
    r.add("transport", format!("{:?}", s.transport).to_lowercase());
    r.add("offered_cps", s.rate);
    r.add("duration_s", s.duration.as_secs_f64());
    r.add("hold_ms", s.hold.as_millis());
    r.add("calls_placed", s.calls());
}

fn sipp_figures(r: &mut Report, sipp: &Sipp, code: Option<i32>, prefix: &str) -> u64 {
    r.add(
        &format!("{prefix}_exit"),
        code.map_or("killed".into(), |c| c.to_string()),
    );
    match parse_sipp_stat(&sipp.stat_text()) {
        Ok(c) => {
            r.add(&format!("{prefix}_successful"), c.successful);
            r.add(&format!("{prefix}_failed"), c.failed);
            if c.failed > 0 {
                r.add(
                    &format!("{prefix}_errors_tail"),
                    sipp.errors_tail().replace('\n', " | "),
                );
            }
            c.failed
        }
        Err(e) => {
            r.add(&format!("{prefix}_stats"), format!("unreadable: {e}"));
            0
        }
    }
}

/// Failed calls as both sides saw them: the driver's and SIPp's, the larger
/// of the two counting as the run's failures.
fn failure_figures(
    r: &mut Report,
    sipp: &Sipp,
    code: Option<i32>,
    prefix: &str,
    failures: &crate::profiles::Failures,
    outcome: &Outcome,
) {
    let sipp_failed = sipp_figures(r, sipp, code, prefix);
    r.add("driver_failed", failures.total());
    r.add("failed_calls", failures.total().max(sipp_failed));
    if failures.total() > 0 {
        r.add("failures", failures.display());
    }
    r.add("outcome", format!("{outcome:?}"));
}

async fn rows(r: &mut Report, db: &Path, placed: u64) {
    match spawn::sqlite(
        db,
        "SELECT COUNT(*), COALESCE(SUM(state='ended' AND end_reason='success'),0), COALESCE(SUM(state<>'ended'),0) FROM sessions",
    ) {
        Ok(line) => {
            let f: Vec<&str> = line.split('|').collect();
            r.add("sessions_rows", f.first().copied().unwrap_or("?"));
            r.add("sessions_ended_success", f.get(1).copied().unwrap_or("?"));
            r.add("sessions_live", f.get(2).copied().unwrap_or("?"));
            r.add(
                "rows_equal_calls_placed",
                f.first().is_some_and(|n| *n == placed.to_string()),
            );
        }
        Err(e) => r.add("sessions_rows", format!("error: {e}")),
    }
}

async fn capture(s: &Settings, dir: &Path, run: &Running) -> anyhow::Result<Option<Capture>> {
    if !s.pcap {
        return Ok(None);
    }
    Ok(Some(
        Capture::start(dir, run.ports.component, run.ports.sip).await?,
    ))
}

/// Adds the on-the-wire latencies of a finished capture to the report.
async fn wire_latencies(r: &mut Report, cap: Option<Capture>, run: &Running) {
    let Some(cap) = cap else { return };
    let file = cap.file.clone();
    r.add("pcap_counts", cap.stop().await);
    match std::fs::read(&file)
        .map_err(anyhow::Error::from)
        .and_then(|d| pcap::parse(&d))
    {
        Ok(packets) => {
            r.add("pcap_packets", packets.len());
            for (name, mut v) in
                pcap::gateway_latencies(&packets, run.ports.component, run.ports.sip)
            {
                r.latency(&format!("wire.{name}"), &mut v);
            }
        }
        Err(e) => r.add("pcap_error", e),
    }
}

fn achieved(calls: u64, first: Option<Instant>, last: Option<Instant>) -> String {
    match (first, last) {
        (Some(a), Some(b)) if b > a && calls > 1 => {
            format!("{:.1}", (calls - 1) as f64 / (b - a).as_secs_f64())
        }
        _ => "-".into(),
    }
}

/// XMPP → SIP: the driver calls, the SIPp UAS (the outbound proxy) answers.
pub async fn xmpp_to_sip(s: &Settings, name: &str) -> anyhow::Result<Report> {
    let dir = s.work_dir.join(name);
    let mut run = start_gateway(s, &dir).await?;
    let calls = s.calls();
    let mut uas = s.spawn_uas(run.ports.outbound_proxy, calls, None, &dir)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cap = capture(s, &dir, &run).await?;
    let usage = Usage::start(run.gw.pid)?;
    let start = Instant::now() + Duration::from_millis(100);
    let mut p = XmppToSip::new(COMPONENT, DOMAIN, start, s.rate, calls, Some(s.hold));
    let deadline = start + s.duration + s.hold + Duration::from_secs(30);
    let outcome = run.conn.run_until(&mut p, deadline, XmppToSip::done).await;
    let mut r = Report::new(name);
    header(&mut r, s, "xmpp-to-sip");
    r.add("gateway_startup_ms", run.startup.as_millis());
    if !p.done() {
        p.fail_unfinished();
    }
    usage.finish(s, run.gw.pid, calls, &mut r)?;
    let code = uas.finish(Duration::from_secs(10)).await;
    wire_latencies(&mut r, cap, &run).await;
    run.conn.close().await;
    run.gw.stop().await;
    r.add(
        "achieved_cps",
        achieved(p.answered, p.first_sent, p.last_answer),
    );
    r.add("answered", p.answered);
    r.add("completed", p.finished);
    failure_figures(&mut r, &uas, code, "sipp_uas", &p.failures, &outcome);
    r.add(
        "max_send_lag_ms",
        format!("{:.3}", p.max_send_lag.as_secs_f64() * 1000.0),
    );
    r.add("max_concurrent_calls", p.max_live);
    let (mut res, mut ring, mut acc) = p.samples();
    r.add("ring_ms_subtracted", s.ring.as_millis());
    for a in &mut acc {
        *a = a.saturating_sub(s.ring);
    }
    r.latency("initiate_to_iq_result", &mut res);
    r.latency("initiate_to_ringing", &mut ring);
    r.latency("initiate_to_accept", &mut acc);
    rows(&mut r, &run.gw.db, calls).await;
    Ok(r)
}

/// SIP → XMPP: the SIPp UAC calls `sip:user{n}@example.com;gr=res`, the driver answers.
pub async fn sip_to_xmpp(s: &Settings, name: &str) -> anyhow::Result<Report> {
    let dir = s.work_dir.join(name);
    let mut run = start_gateway(s, &dir).await?;
    let calls = s.calls();
    let cap = capture(s, &dir, &run).await?;
    let usage = Usage::start(run.gw.pid)?;
    let mut uac = Sipp::spawn(
        &SippSpec {
            name: "uac",
            template: &s.scenario("uac.xml"),
            params: vec![
                ("user", "user".into()),
                ("domain", DOMAIN.into()),
                ("hold_ms", s.hold.as_millis().to_string()),
            ],
            port: spawn::free_port()?,
            remote: Some(format!("127.0.0.1:{}", run.gw.sip_port)),
            transport: s.transport,
            rate: Some(s.rate),
            calls,
            timeout: s.duration + s.hold + Duration::from_secs(60),
        },
        &dir,
    )?;
    let mut p = SipToXmpp::default();
    let deadline = Instant::now() + s.duration + s.hold + Duration::from_secs(30);
    let settled = move |p: &SipToXmpp| p.settled(calls);
    let mut code = None;
    let mut outcome = tokio::select! {
        o = run.conn.run_until(&mut p, deadline, settled) => o,
        st = uac.child.wait() => { code = Some(st.ok().and_then(|s| s.code())); Outcome::Deadline }
    };
    if code.is_some() {
        // SIPp is done: give the last session-terminates a moment.
        let grace = (Instant::now() + Duration::from_secs(5)).min(deadline);
        outcome = run.conn.run_until(&mut p, grace, settled).await;
    }
    let mut r = Report::new(name);
    header(&mut r, s, "sip-to-xmpp");
    r.add("gateway_startup_ms", run.startup.as_millis());
    if !p.settled(calls) {
        p.fail_unfinished();
    }
    usage.finish(s, run.gw.pid, calls, &mut r)?;
    let code = match code {
        Some(c) => c,
        None => uac.finish(Duration::from_secs(10)).await,
    };
    wire_latencies(&mut r, cap, &run).await;
    run.conn.close().await;
    run.gw.stop().await;
    r.add(
        "achieved_cps",
        achieved(p.initiated, p.first_initiate, p.last_initiate),
    );
    r.add("answered", p.initiated);
    r.add("completed", p.finished);
    failure_figures(&mut r, &uac, code, "sipp_uac", &p.failures, &outcome);
    r.add("max_concurrent_calls", p.max_live);
    r.add(
        "driver_max_turnaround_ms",
        format!("{:.3}", p.max_turnaround.as_secs_f64() * 1000.0),
    );
    r.latency(
        "sipp_invite_to_200",
        &mut parse_sipp_rtt(&uac.rtt_text(), 1),
    );
    r.latency("accept_to_iq_result", &mut p.accept_samples());
    rows(&mut r, &run.gw.db, calls).await;
    Ok(r)
}

/// N held calls (XMPP → SIP): RSS per held call, RSS after they end, and
/// optionally `kill -9` with the calls live and the restart time.
pub struct HeldSpec {
    pub calls: u64,
    /// Rounds of hold-then-release on one gateway: if RSS after round 2 is
    /// about RSS after round 1, freed memory is reused (no leak).
    pub rounds: u64,
    pub kill9: bool,
    pub settle: Duration,
}

pub async fn held(s: &Settings, name: &str, h: &HeldSpec) -> anyhow::Result<Report> {
    let dir = s.work_dir.join(name);
    let mut run = start_gateway(s, &dir).await?;
    let rounds = if h.kill9 { 1 } else { h.rounds.max(1) };
    let hold_all = Duration::from_secs(3600);
    let mut uas = s.spawn_uas(
        run.ports.outbound_proxy,
        h.calls * rounds,
        Some(hold_all),
        &dir,
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut r = Report::new(name);
    r.add("held_calls_target", h.calls);
    r.add("setup_rate_cps", s.rate);
    let usage = Usage::start(run.gw.pid)?;
    r.add("baseline_rss_kib", usage.rss0);
    let setup = Duration::from_secs_f64(h.calls as f64 / s.rate) + Duration::from_secs(60);
    let mut failed = 0;
    let mut completed = 0;
    for round in 1..=rounds {
        let start = Instant::now() + Duration::from_millis(100);
        let mut p = XmppToSip::new(COMPONENT, DOMAIN, start, s.rate, h.calls, None);
        p.base = (round - 1) * h.calls;
        run.conn
            .run_until(&mut p, start + setup, XmppToSip::all_answered)
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_held, _) = procstat::rss(run.gw.pid)?;
        let live = p.live;
        let tag = if round == 1 {
            String::new()
        } else {
            format!("round{round}.")
        };
        r.add(&format!("{tag}held_calls"), live);
        r.add(&format!("{tag}held_rss_kib"), rss_held);
        r.add(
            &format!("{tag}rss_per_held_call_kib"),
            per_call_kib(rss_held, usage.rss0, live),
        );
        // The INVITE client transactions outlive the answer by Timer M
        // (RFC 6026: 64*T1 = 32 s), each with its task and its last
        // response: that is set-up state, bounded by rate × 32 s, not state
        // per held call. Hold on past it and measure again.
        run.conn
            .run_until(&mut p, Instant::now() + STEADY_AFTER_SETUP, |_| false)
            .await;
        let (rss_steady, _) = procstat::rss(run.gw.pid)?;
        r.add(&format!("{tag}held_steady_rss_kib"), rss_steady);
        r.add(
            &format!("{tag}rss_per_held_call_steady_kib"),
            per_call_kib(rss_steady, usage.rss0, live),
        );
        if round == 1 {
            let live_rows = spawn::sqlite(
                &run.gw.db,
                "SELECT COUNT(*) FROM sessions WHERE state <> 'ended'",
            )
            .unwrap_or_else(|e| e.to_string());
            r.add("live_rows_while_held", live_rows);
        }
        if h.kill9 {
            let (online, ready) = run.restart_after_kill(s, &dir).await?;
            r.add(
                "restart_online_after_kill9_ms",
                format!("{:.1}", online.as_secs_f64() * 1000.0),
            );
            r.add(
                "restart_after_kill9_ms",
                format!("{:.1}", ready.as_secs_f64() * 1000.0),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = spawn::sqlite(
                &run.gw.db,
                "SELECT COUNT(*), COALESCE(SUM(state<>'ended'),0), \
                 COALESCE(SUM(end_reason='connectivity-error'),0) FROM sessions",
            )
            .unwrap_or_else(|e| e.to_string());
            r.add(
                "rows|live|closed_as_connectivity_error_after_restart",
                after,
            );
            stop_all(&mut run, &mut uas).await;
            return Ok(r);
        }
        p.release(Instant::now());
        let end = Instant::now() + setup;
        run.conn.run_until(&mut p, end, XmppToSip::done).await;
        completed += p.finished;
        failed += p.failures.total();
        if p.failures.total() > 0 {
            r.add(&format!("{tag}failures"), p.failures.display());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss_3s, _) = procstat::rss(run.gw.pid)?;
        r.add(&format!("{tag}rss_3s_after_end_kib"), rss_3s);
        // SIP transactions legitimately outlive their calls (timers D, J, K:
        // up to 64*T1 = 32 s over UDP), so the leak check waits them out.
        tokio::time::sleep(h.settle.saturating_sub(Duration::from_secs(3))).await;
        let (rss_after, _) = procstat::rss(run.gw.pid)?;
        r.add(&format!("{tag}rss_after_end_kib"), rss_after);
        r.add(
            &format!("{tag}rss_after_vs_baseline_percent"),
            format!(
                "{:.1}",
                100.0 * (rss_after as f64 - usage.rss0 as f64) / usage.rss0.max(1) as f64
            ),
        );
    }
    r.add("settle_s", h.settle.as_secs());
    r.add("peak_rss_kib", procstat::rss(run.gw.pid)?.1);
    r.add("completed", completed);
    r.add("failed_calls", failed);
    stop_all(&mut run, &mut uas).await;
    Ok(r)
}

/// (RSS − baseline) ÷ calls, in KiB, for the report.
fn per_call_kib(rss: u64, baseline: u64, calls: u64) -> String {
    format!(
        "{:.2}",
        rss.saturating_sub(baseline) as f64 / calls.max(1) as f64
    )
}

async fn stop_all(run: &mut Running, uas: &mut Sipp) {
    run.gw.stop().await;
    spawn::stop(&mut uas.child, Duration::from_secs(3)).await;
}
