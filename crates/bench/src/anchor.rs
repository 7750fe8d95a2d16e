//! The anchor: the same SIP call shape through Kamailio (a transaction-
//! stateful proxy with record-route, `bench/kamailio.cfg`) between a SIPp UAC
//! and a SIPp UAS, its CPU measured the same way as the gateway's (summed
//! over Kamailio's process tree, since it forks workers). With no proxy the
//! UAC calls the UAS directly: SIPp's own latency floor.

use crate::procstat;
use crate::report::Report;
use crate::run::{DOMAIN, Settings};
use crate::spawn::{self, Sipp, SippSpec, Transport};
use crate::stats::{parse_sipp_rtt, parse_sipp_stat};
use anyhow::Context;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio::time::Instant;

/// `kamailio`: `None` for SIPp → SIPp, else Kamailio's memory manager
/// (`tlsf`, tuned as operators run it, or `qm`, Debian's default).
pub async fn run(s: &Settings, name: &str, kamailio_mem: Option<&str>) -> anyhow::Result<Report> {
    let with_kamailio = kamailio_mem.is_some();
    let dir = s.work_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let calls = s.calls();
    let uas_port = spawn::free_port()?;
    let mut kamailio = None;
    let mut target = uas_port;
    if with_kamailio {
        let port = spawn::free_port()?;
        let template = std::fs::read_to_string(s.bench_dir.join("kamailio.cfg"))?;
        let proto = match s.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        let cfg = spawn::fill(
            &template,
            &[
                ("listen", format!("{proto}:127.0.0.1:{port}")),
                (
                    "next_hop",
                    format!("sip:127.0.0.1:{uas_port};transport={proto}"),
                ),
            ],
        )?;
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg)?;
        std::fs::create_dir_all(dir.join("run"))?;
        let log = std::fs::File::create(dir.join("kamailio.log"))?;
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E"])
            .args(match kamailio_mem {
                Some("qm") => ["-m", "512", "-M", "16"].as_slice(),
                _ => ["-x", "tlsf", "-X", "tlsf", "-m", "2048", "-M", "8"].as_slice(),
            })
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .args(["-Y", &dir.join("run").display().to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting kamailio (install the kamailio package)")?;
        kamailio = Some(child);
        target = port;
    }
    let mut uas = s.spawn_uas(uas_port, calls, None, &dir)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kpid = match &mut kamailio {
        Some(k) => {
            if let Ok(Some(st)) = k.try_wait() {
                anyhow::bail!(
                    "kamailio exited at once ({st}); see {}",
                    dir.join("kamailio.log").display()
                );
            }
            k.id()
        }
        None => None,
    };
    let cpu0 = kpid.map(procstat::tree_cpu_ticks);
    let uas_cpu0 = uas
        .child
        .id()
        .map(|p| procstat::tree_cpu_ticks(p).0)
        .unwrap_or(0);
    let t0 = Instant::now();
    let mut uac = Sipp::spawn(
        &SippSpec {
            name: "uac",
            template: &s.bench_dir.join("sipp/uac.xml"),
            params: vec![
                ("user", "user".into()),
                ("domain", DOMAIN.into()),
                ("hold_ms", s.hold.as_millis().to_string()),
            ],
            port: spawn::free_port()?,
            remote: Some(format!("127.0.0.1:{target}")),
            transport: s.transport,
            rate: Some(s.rate),
            calls,
            timeout: s.duration + s.hold + Duration::from_secs(60),
        },
        &dir,
    )?;
    let uac_pid = uac.child.id();
    // SIPp's own CPU, sampled just before it exits (a reaped process is gone from /proc).
    let mut uac_ticks = 0;
    let limit = t0 + s.duration + s.hold + Duration::from_secs(70);
    let code = loop {
        if let Ok(Some(st)) = uac.child.try_wait() {
            break st.code();
        }
        if Instant::now() > limit {
            break uac.finish(Duration::ZERO).await;
        }
        if let Some(p) = uac_pid {
            uac_ticks = procstat::stat(p).map_or(uac_ticks, |st| st.cpu_ticks);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = t0.elapsed();
    let cpu1 = kpid.map(procstat::tree_cpu_ticks);
    let uas_ticks = uas
        .child
        .id()
        .map(|p| procstat::tree_cpu_ticks(p).0)
        .unwrap_or(0)
        .saturating_sub(uas_cpu0);
    let uas_code = uas.finish(Duration::from_secs(10)).await;

    let mut r = Report::new(name);
    r.add(
        "direction",
        if with_kamailio {
            "sip-proxy"
        } else {
            "sipp-direct"
        },
    );
    r.add("transport", format!("{:?}", s.transport).to_lowercase());
    r.add("offered_cps", s.rate);
    r.add("duration_s", s.duration.as_secs_f64());
    r.add("hold_ms", s.hold.as_millis());
    r.add("calls_placed", calls);
    let mut failed = 0;
    let stat = parse_sipp_stat(&uac.stat_text());
    if let Ok(c) = &stat {
        r.add("sipp_uac_successful", c.successful);
        r.add("sipp_uac_failed", c.failed);
        failed += c.failed;
        r.add(
            "achieved_cps",
            format!(
                "{:.1}",
                c.successful as f64 / (elapsed.as_secs_f64() - s.hold.as_secs_f64()).max(0.001)
            ),
        );
    }
    if let Ok(c) = parse_sipp_stat(&uas.stat_text()) {
        r.add("sipp_uas_failed", c.failed);
        failed = failed.max(c.failed);
    }
    r.add(
        "sipp_uac_exit",
        code.map_or("killed".into(), |c| c.to_string()),
    );
    r.add(
        "sipp_uas_exit",
        uas_code.map_or("killed".into(), |c| c.to_string()),
    );
    r.add("failed_calls", failed);
    if failed > 0 {
        r.add(
            "sipp_uac_errors_tail",
            uac.errors_tail().replace('\n', " | "),
        );
    }
    if let (Some((c0, _)), Some((c1, procs))) = (cpu0, cpu1) {
        let ticks = c1.saturating_sub(c0);
        r.add("kamailio_processes", procs);
        r.add("kamailio_cpu_ticks", ticks);
        r.add(
            "cpu_us_per_call",
            format!("{:.1}", s.ticks_to_us(ticks) / calls.max(1) as f64),
        );
        if let Some(pid) = kpid {
            r.add("kamailio_rss_kib_sum", procstat::tree_rss_kib(pid));
        }
    }
    r.add(
        "sipp_uac_cpu_us_per_call",
        format!("{:.1}", s.ticks_to_us(uac_ticks) / calls.max(1) as f64),
    );
    r.add(
        "sipp_uas_cpu_us_per_call",
        format!("{:.1}", s.ticks_to_us(uas_ticks) / calls.max(1) as f64),
    );
    r.latency(
        "sipp_invite_to_200",
        &mut parse_sipp_rtt(&uac.rtt_text(), 1),
    );
    if let Some(k) = &mut kamailio {
        spawn::stop(k, Duration::from_secs(10)).await;
    }
    Ok(r)
}
