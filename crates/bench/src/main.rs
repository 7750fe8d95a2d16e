//! `stox-bench`: the load harness of stox-gateway.
//!
//! It plays the XMPP server: it listens for the gateway's XEP-0114 component
//! connection, checks the handshake, and drives calls on it at a fixed rate,
//! while SIPp is the SIP peer. It starts the gateway itself (fresh config and
//! SQLite file in the run's directory), so it knows its pid and can read its
//! CPU and memory from `/proc`. `bench/run.sh` runs every profile and the
//! Kamailio anchor; `docs/performance.md` explains each figure.
//!
//! ```text
//! stox-bench xmpp-to-sip --rate 200 --duration 20   # driver calls, SIPp UAS answers
//! stox-bench sip-to-xmpp --rate 200 --duration 20   # SIPp UAC calls, driver answers
//! stox-bench held --calls 5000 [--kill9]            # memory per held call, restart
//! stox-bench anchor [--direct]                      # Kamailio (or nothing) between SIPp UAC and UAS
//! stox-bench summary DIR                            # the runs side by side, CPU ratio
//! ```

mod anchor;
mod component;
mod driver;
mod jingle;
mod pcap;
mod procstat;
mod profiles;
mod report;
mod run;
mod spawn;
mod stats;
mod xml;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "stox-bench", about = "Load harness for stox-gateway")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The driver sends session-initiates; a SIPp UAS answers the gateway's INVITEs.
    XmppToSip(Common),
    /// A SIPp UAC sends INVITEs; the driver answers the gateway's session-initiates.
    SipToXmpp(Common),
    /// Holds N calls (XMPP → SIP): RSS per held call, RSS after they end, restart after kill -9.
    Held {
        #[command(flatten)]
        common: Common,
        /// Concurrent calls to hold.
        #[arg(long, default_value_t = 5000)]
        calls: u64,
        /// kill -9 the gateway while the calls are held and time its restart.
        #[arg(long)]
        kill9: bool,
        /// Seconds to wait after the calls end before the leak check (SIP
        /// transactions live up to 32 s after their call over UDP).
        #[arg(long, default_value_t = 40)]
        settle_secs: u64,
        /// Hold-and-release rounds on one gateway (2: is freed memory reused?).
        #[arg(long, default_value_t = 2)]
        rounds: u64,
    },
    /// Kamailio as a stateful record-routing proxy between SIPp UAC and UAS.
    Anchor {
        #[command(flatten)]
        common: Common,
        /// No proxy: the UAC calls the UAS directly (SIPp's own floor).
        #[arg(long)]
        direct: bool,
        /// Kamailio's memory manager: `tlsf` with 2 GiB shared / 8 MiB
        /// private memory, as operators run it under load, or `qm`
        /// (Debian's default manager, 512 MiB / 16 MiB).
        #[arg(long, default_value = "tlsf")]
        mem: String,
    },
    /// Prints the `*.kv` results in DIR side by side with the CPU ratio.
    Summary { dir: PathBuf },
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Calls per second offered.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of offered load (calls = rate × duration).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Milliseconds a call stays answered before the hang-up.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// Milliseconds the SIPp UAS rings before its 200 OK (subtracted from latencies).
    #[arg(long, default_value_t = 0)]
    ring_ms: u64,
    /// SIP transport between the gateway (or Kamailio) and SIPp.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    transport: String,
    #[arg(long, default_value = "target/release/stox-gateway")]
    gateway_bin: PathBuf,
    /// Holds sipp/*.xml and kamailio.cfg.
    #[arg(long, default_value = "bench")]
    bench_dir: PathBuf,
    /// Each run gets a subdirectory here (config, DB, logs, SIPp files).
    #[arg(long, default_value = "/tmp/stox-bench")]
    work_dir: PathBuf,
    /// Name of the run (subdirectory and report title).
    #[arg(long)]
    name: Option<String>,
    /// Also write the figures as key=value lines here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Capture the run with tcpdump on lo and report the gateway's latencies
    /// on the wire (stanza in -> INVITE out, 200 in -> session-accept out ...).
    #[arg(long)]
    pcap: bool,
}

impl Common {
    fn settings(&self) -> run::Settings {
        run::Settings {
            rate: self.rate,
            duration: Duration::from_secs_f64(self.duration.max(0.001)),
            hold: Duration::from_millis(self.hold_ms),
            ring: Duration::from_millis(self.ring_ms),
            transport: if self.transport == "tcp" {
                spawn::Transport::Tcp
            } else {
                spawn::Transport::Udp
            },
            gateway_bin: self.gateway_bin.clone(),
            bench_dir: self.bench_dir.clone(),
            work_dir: self.work_dir.clone(),
            clk_tck: self.clk_tck,
            pcap: self.pcap,
        }
    }

    fn name(&self, default: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{default}-{}-{}cps", self.transport, self.rate))
    }
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    let (report, out) = match cmd {
        Cmd::Summary { dir } => return report::summary(&dir),
        Cmd::XmppToSip(c) => (
            run::xmpp_to_sip(&c.settings(), &c.name("gateway-xmpp-to-sip")).await?,
            c.out,
        ),
        Cmd::SipToXmpp(c) => (
            run::sip_to_xmpp(&c.settings(), &c.name("gateway-sip-to-xmpp")).await?,
            c.out,
        ),
        Cmd::Held {
            common: c,
            calls,
            kill9,
            settle_secs,
            rounds,
        } => {
            let name = c
                .name
                .clone()
                .unwrap_or_else(|| format!("held-{calls}{}", if kill9 { "-kill9" } else { "" }));
            (
                run::held(
                    &c.settings(),
                    &name,
                    &run::HeldSpec {
                        calls,
                        rounds,
                        kill9,
                        settle: Duration::from_secs(settle_secs),
                    },
                )
                .await?,
                c.out,
            )
        }
        Cmd::Anchor {
            common: c,
            direct,
            mem,
        } => {
            let name = c.name(if direct { "sipp-direct" } else { "kamailio" });
            let kamailio = (!direct).then_some(mem.as_str());
            (anchor::run(&c.settings(), &name, kamailio).await?, c.out)
        }
    };
    report.print();
    if let Some(path) = out {
        report.save(&path)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stox-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stox-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
