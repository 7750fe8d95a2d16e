//! The processes a run starts: the gateway, SIPp, Kamailio. Each is a child
//! of this process (so `bench/run.sh` can stop the whole process group) and
//! each is stopped by pid when the run ends.

use anyhow::{Context, bail};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A port free on 127.0.0.1 for both UDP and TCP (SIP listens on both).
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1")
}

/// Sends a signal by pid with the `kill` utility (no unsafe code here).
pub async fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub async fn stop(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    if let Some(pid) = child.id() {
        signal(pid, "TERM").await;
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(st) => st.ok(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// Replaces `{{name}}` placeholders.
pub fn fill(template: &str, params: &[(&str, String)]) -> anyhow::Result<String> {
    let mut s = template.to_owned();
    for (k, v) in params {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(at) = s.find("{{") {
        let end = s[at..].find("}}").map_or(s.len(), |e| at + e + 2);
        bail!("unfilled placeholder {}", &s[at..end]);
    }
    Ok(s)
}

pub struct Gateway {
    pub child: Child,
    pub pid: u32,
    pub config: PathBuf,
    pub db: PathBuf,
    pub log: PathBuf,
    pub sip_port: u16,
}

pub struct GatewayPorts {
    pub component: u16,
    pub sip: u16,
    pub outbound_proxy: u16,
}

impl Gateway {
    pub fn write_config(
        dir: &Path,
        ports: &GatewayPorts,
        secret: &str,
        tcp: bool,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let db = dir.join("gateway.db");
        let config = dir.join("gateway.toml");
        let transport = if tcp { ";transport=tcp" } else { "" };
        let text = format!(
            "# written by stox-bench\n\
             [xmpp]\n\
             server = \"127.0.0.1:{}\"\n\
             component = \"sip.example.com\"\n\
             secret = \"{secret}\"\n\
             domains = [\"example.com\"]\n\
             \n\
             [sip]\n\
             udp = \"127.0.0.1:{sip}\"\n\
             tcp = \"127.0.0.1:{sip}\"\n\
             outbound_proxy = \"sip:127.0.0.1:{}{transport}\"\n\
             \n\
             [store]\n\
             database = \"{}\"\n\
             \n\
             # The bench holds 50,000 calls at once.\n\
             [calls]\n\
             max_calls = 0\n",
            ports.component,
            ports.outbound_proxy,
            db.display(),
            sip = ports.sip,
        );
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        Ok((config, db))
    }

    /// Starts the gateway with its production log filter (`info`) unless
    /// `RUST_LOG` is set, its log in `dir`.
    pub fn spawn(
        bin: &Path,
        dir: &Path,
        config: &Path,
        db: &Path,
        sip_port: u16,
        log_name: &str,
    ) -> anyhow::Result<Gateway> {
        let log = dir.join(log_name);
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("gateway has no pid")?;
        Ok(Gateway {
            child,
            pid,
            config: config.to_owned(),
            db: db.to_owned(),
            log,
            sip_port,
        })
    }

    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        stop(&mut self.child, Duration::from_secs(15)).await
    }
}

/// `sqlite3 -readonly DB SQL` → the first output line.
pub fn sqlite(db: &Path, sql: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .context("running sqlite3 (install the sqlite3 package)")?;
    if !out.status.success() {
        bail!("sqlite3: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

pub struct SippSpec<'a> {
    pub name: &'a str,
    pub template: &'a Path,
    pub params: Vec<(&'a str, String)>,
    pub port: u16,
    pub remote: Option<String>,
    pub transport: Transport,
    pub rate: Option<f64>,
    pub calls: u64,
    pub timeout: Duration,
}

pub struct Sipp {
    pub child: Child,
    pub dir: PathBuf,
}

impl Sipp {
    pub fn spawn(spec: &SippSpec<'_>, parent: &Path) -> anyhow::Result<Sipp> {
        let dir = parent.join(format!("sipp-{}", spec.name));
        std::fs::create_dir_all(&dir)?;
        let text = std::fs::read_to_string(spec.template)
            .with_context(|| format!("reading {}", spec.template.display()))?;
        let scenario = dir.join(format!("{}.xml", spec.name));
        std::fs::write(&scenario, fill(&text, &spec.params)?)?;
        let mut cmd = Command::new("sipp");
        if let Some(remote) = &spec.remote {
            cmd.arg(remote);
        }
        cmd.arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &spec.port.to_string()])
            .args(["-t", spec.transport.sipp_flag()])
            .args(["-m", &spec.calls.to_string()])
            .args(["-l", "1000000", "-nostdin"])
            .args(["-timeout", &format!("{}s", spec.timeout.as_secs().max(1))])
            .arg("-timeout_error")
            .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-trace_err", "-error_file", "errors.log"])
            .args(["-trace_rtt", "-rtt_freq", "20"])
            .arg("-trace_screen");
        if let Some(rate) = spec.rate {
            cmd.args([
                "-r",
                &format!("{}", rate.round().max(1.0) as u64),
                "-rp",
                "1000",
            ]);
        }
        let child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting sipp (install the sip-tester package)")?;
        Ok(Sipp { child, dir })
    }

    /// Waits for SIPp to exit by itself, up to `limit`; then stops it.
    pub async fn finish(&mut self, limit: Duration) -> Option<i32> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(st)) => st.code(),
            _ => stop(&mut self.child, Duration::from_secs(3))
                .await
                .and_then(|s| s.code()),
        }
    }

    pub fn stat_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stat.csv")).unwrap_or_default()
    }

    /// The `*_rtt.csv` file SIPp wrote (named after the scenario and its pid).
    pub fn rtt_text(&self) -> String {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return String::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_rtt.csv"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    pub fn errors_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }
}

/// A `tcpdump -i lo` capture of the component connection and the gateway's
/// SIP port, for latencies on the wire (`pcap.rs`).
pub struct Capture {
    child: Child,
    pub file: PathBuf,
    stderr: PathBuf,
}

impl Capture {
    pub async fn start(dir: &Path, component_port: u16, sip_port: u16) -> anyhow::Result<Capture> {
        let file = dir.join("capture.pcap");
        let stderr = dir.join("tcpdump.log");
        let filter = format!("tcp port {component_port} or udp port {sip_port}");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-s", "0", "-B", "131072", "-w"])
            .arg(&file)
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting tcpdump (install the tcpdump package)")?;
        // Ready once it says it is listening.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if std::fs::read_to_string(&stderr)
                .unwrap_or_default()
                .contains("listening on")
            {
                break;
            }
        }
        Ok(Capture {
            child,
            file,
            stderr,
        })
    }

    /// Stops the capture; returns tcpdump's packet counts line(s).
    pub async fn stop(mut self) -> String {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(&mut self.child, Duration::from_secs(10)).await;
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("packets"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_and_rejects_leftovers() {
        let p = [("a", "1".to_owned()), ("bb", "x".to_owned())];
        assert_eq!(
            fill("{{a}}-{{bb}}-[call_number]", &p).expect("fill"),
            "1-x-[call_number]"
        );
        assert!(fill("{{a}} {{c}}", &p).is_err());
    }

    #[test]
    fn free_ports_differ_from_zero() {
        assert_ne!(free_port().expect("port"), 0);
    }
}
