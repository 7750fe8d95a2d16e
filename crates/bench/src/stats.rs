//! Percentiles and the parsing of SIPp's statistics files.

use anyhow::{Context, anyhow};
use std::time::Duration;

/// p50 / p99 / max of a sample, nearest-rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &mut [Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Summary {
            n: samples.len(),
            p50: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            max: samples[samples.len() - 1],
        })
    }
}

/// Nearest-rank percentile of a sorted, non-empty slice.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Response times (response time 1) from SIPp's `-trace_rtt` file:
/// `Date_ms;response_time_ms;rtd_no` with fractional milliseconds.
pub fn parse_sipp_rtt(text: &str, rtd: u32) -> Vec<Duration> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split(';');
            let _date = f.next()?;
            let ms: f64 = f.next()?.trim().parse().ok()?;
            let no: u32 = f.next()?.trim().parse().ok()?;
            (no == rtd && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
        })
        .collect()
}

/// Cumulative counters from the last row of SIPp's `-trace_stat` CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SippCounts {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
}

pub fn parse_sipp_stat(text: &str) -> anyhow::Result<SippCounts> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| anyhow!("empty stat file"))?
        .split(';')
        .collect();
    let last: Vec<&str> = lines
        .next_back()
        .ok_or_else(|| anyhow!("stat file has no data row"))?
        .split(';')
        .collect();
    let col = |name: &str| -> anyhow::Result<u64> {
        let i = header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| anyhow!("no column {name}"))?;
        last.get(i)
            .ok_or_else(|| anyhow!("short row"))?
            .trim()
            .parse()
            .with_context(|| name.to_owned())
    };
    Ok(SippCounts {
        total: col("TotalCallCreated")?,
        successful: col("SuccessfulCall(C)")?,
        failed: col("FailedCall(C)")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(d).collect();
        let s = Summary::of(&mut v).expect("summary");
        assert_eq!((s.p50, s.p99, s.max, s.n), (d(50), d(99), d(100), 100));
        let mut one = vec![d(7)];
        let s = Summary::of(&mut one).expect("summary");
        assert_eq!((s.p50, s.p99, s.max), (d(7), d(7), d(7)));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn sipp_rtt_file() {
        let text = "Date_ms;response_time_ms;rtd_no\n16.001;4;1\n32.001;0.250;1\n40;9;2\nbad\n";
        assert_eq!(
            parse_sipp_rtt(text, 1),
            vec![d(4), Duration::from_micros(250)]
        );
    }

    #[test]
    fn sipp_stat_file() {
        let text = "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
                    a;10;1;9;0;0;\n\
                    b;20;2;19;0;1;\n";
        assert_eq!(
            parse_sipp_stat(text).expect("parse"),
            SippCounts {
                total: 20,
                successful: 19,
                failed: 1
            }
        );
        assert!(parse_sipp_stat("").is_err());
    }
}
