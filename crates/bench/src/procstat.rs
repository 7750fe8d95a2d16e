//! CPU and memory of processes, read from `/proc`.
//!
//! CPU is `utime + stime` from `/proc/PID/stat` (fields 14 and 15, in clock
//! ticks, all threads of the process included). A forking server such as
//! Kamailio is measured as the sum over its process tree. Memory is `VmRSS`
//! (now) and `VmHWM` (peak) from `/proc/PID/status`, in KiB.

use anyhow::{Context, anyhow};
use std::collections::HashMap;

/// The fields of `/proc/PID/stat` the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    /// user + system time, clock ticks.
    pub cpu_ticks: u64,
}

/// Parses one `/proc/PID/stat` line. The command name is in parentheses and
/// may itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat(line: &str) -> anyhow::Result<Stat> {
    let close = line
        .rfind(')')
        .ok_or_else(|| anyhow!("no ')' in stat line"))?;
    // After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9)
    // minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15).
    let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("stat line has no field {n}"))?
            .parse::<u64>()
            .with_context(|| format!("stat field {n}"))
    };
    Ok(Stat {
        ppid: u32::try_from(field(4)?)?,
        cpu_ticks: field(14)? + field(15)?,
    })
}

/// `(VmRSS, VmHWM)` in KiB from the text of `/proc/PID/status`.
pub fn parse_status_rss(text: &str) -> anyhow::Result<(u64, u64)> {
    let kib = |key: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or_else(|| anyhow!("no {key} in status"))?;
        line[key.len()..]
            .split_whitespace()
            .next()
            .ok_or_else(|| anyhow!("empty {key}"))?
            .parse::<u64>()
            .with_context(|| key.to_owned())
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}

pub fn stat(pid: u32) -> anyhow::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_stat(&text)
}

/// `(rss_kib, peak_rss_kib)` of one process.
pub fn rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_status_rss(&text)
}

/// Every live process (pid → stat). Processes that vanish while listing are skipped.
fn all_stats() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(s) = stat(pid) {
            out.insert(pid, s);
        }
    }
    out
}

/// Pids of `root` and all its descendants.
pub fn tree_pids(root: u32) -> Vec<u32> {
    descendants(root, &all_stats())
}

fn descendants(root: u32, stats: &HashMap<u32, Stat>) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            stats
                .iter()
                .filter(|(_, s)| s.ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    out
}

/// CPU ticks of `root` and its descendants, and how many processes that is.
pub fn tree_cpu_ticks(root: u32) -> (u64, usize) {
    let stats = all_stats();
    let pids = descendants(root, &stats);
    let ticks = pids
        .iter()
        .filter_map(|p| stats.get(p))
        .map(|s| s.cpu_ticks)
        .sum();
    (ticks, pids.len())
}

/// Sum of RSS (KiB) over a process tree (shared pages counted per process).
pub fn tree_rss_kib(root: u32) -> u64 {
    tree_pids(root)
        .into_iter()
        .filter_map(|p| rss(p).ok())
        .map(|(now, _)| now)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let line = "4242 (tokio (rt) x) S 17 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 123456789 4096 18446744073709551615";
        assert_eq!(
            parse_stat(line).expect("parse"),
            Stat {
                ppid: 17,
                cpu_ticks: 325
            }
        );
        assert!(parse_stat("garbage").is_err());
        assert!(parse_stat("1 (x) S 1").is_err());
    }

    #[test]
    fn status_rss() {
        let text =
            "Name:\tstox-gateway\nVmPeak:\t  999 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_rss(text).expect("parse"), (10240, 20480));
        assert!(parse_status_rss("Name: x\n").is_err());
    }

    #[test]
    fn tree_walk() {
        let s = |ppid| Stat { ppid, cpu_ticks: 1 };
        let stats: HashMap<u32, Stat> = [
            (10, s(1)),
            (11, s(10)),
            (12, s(10)),
            (13, s(11)),
            (20, s(1)),
        ]
        .into_iter()
        .collect();
        let mut pids = descendants(10, &stats);
        pids.sort_unstable();
        assert_eq!(pids, vec![10, 11, 12, 13]);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(stat(me).is_ok());
        let (now, peak) = rss(me).expect("rss");
        assert!(now > 0 && peak >= now);
        assert!(tree_pids(me).contains(&me));
    }
}
