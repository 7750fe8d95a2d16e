//! Requests per source (token buckets): an untrusted source that sends
//! requests outside a dialog faster than its rate first gets 503 with
//! Retry-After, then (past twice its burst within the refill) nothing at
//! all, so a flood costs at most one small answer per request it is
//! allowed. The buckets are bounded: at `MAX_SOURCES` sources, the idle
//! ones are forgotten, and if none is idle the new ones share one bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked at once.
pub(crate) const MAX_SOURCES: usize = 4096;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Take,
    /// Over the rate: 503 with Retry-After.
    Refuse,
    /// Far over the rate: no answer.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens in thousandths; below zero down to `-burst` while refusing.
    milli: i64,
    last: Instant,
}

#[derive(Debug)]
pub(crate) struct Rates {
    per_sec: u32,
    burst: u32,
    buckets: HashMap<IpAddr, Bucket>,
    shared: Option<Bucket>,
}

impl Rates {
    pub(crate) fn new(per_sec: u32, burst: u32) -> Rates {
        Rates {
            per_sec,
            burst: burst.max(1),
            buckets: HashMap::new(),
            shared: None,
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let ms = now
            .saturating_duration_since(b.last)
            .as_millis()
            .min(3_600_000) as i64;
        b.last = b.last.max(now);
        b.milli = (b.milli + ms * i64::from(self.per_sec)).min(i64::from(self.burst) * 1000);
    }

    /// Counts one request from `ip` at `now`.
    pub(crate) fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        let full = Bucket {
            milli: i64::from(self.burst) * 1000,
            last: now,
        };
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_SOURCES {
            self.forget_idle(now);
        }
        let mut bucket = match self.buckets.get(&ip) {
            Some(b) => *b,
            None if self.buckets.len() < MAX_SOURCES => full,
            None => self.shared.unwrap_or(full),
        };
        self.refill(&mut bucket, now);
        let verdict = if bucket.milli >= 1000 {
            Verdict::Take
        } else if bucket.milli > -i64::from(self.burst) * 1000 {
            Verdict::Refuse
        } else {
            Verdict::Drop
        };
        if verdict != Verdict::Drop {
            bucket.milli -= 1000;
        }
        if self.buckets.len() < MAX_SOURCES || self.buckets.contains_key(&ip) {
            self.buckets.insert(ip, bucket);
        } else {
            self.shared = Some(bucket);
        }
        verdict
    }

    /// Forgets the sources whose buckets have refilled (idle ones).
    fn forget_idle(&mut self, now: Instant) {
        let (per_sec, burst) = (i64::from(self.per_sec), i64::from(self.burst));
        self.buckets.retain(|_, b| {
            let ms = now
                .saturating_duration_since(b.last)
                .as_millis()
                .min(3_600_000) as i64;
            b.milli + ms * per_sec < burst * 1000
        });
    }

    /// How long until `ip` may send again, whole seconds (for Retry-After).
    pub(crate) fn retry_after(&self, ip: IpAddr) -> Duration {
        let missing = self
            .buckets
            .get(&ip)
            .or(self.shared.as_ref())
            .map_or(1000, |b| 1000 - b.milli);
        let ms = missing.max(0) as u64 / u64::from(self.per_sec.max(1));
        Duration::from_secs(ms.div_ceil(1000).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn a_burst_then_503_then_silence_then_again_after_the_refill() {
        let t0 = Instant::now();
        let mut r = Rates::new(2, 4);
        let verdicts: Vec<Verdict> = (0..12).map(|_| r.check(ip(1), t0)).collect();
        assert_eq!(&verdicts[..4], &[Verdict::Take; 4]);
        assert_eq!(&verdicts[4..8], &[Verdict::Refuse; 4]);
        assert_eq!(&verdicts[8..], &[Verdict::Drop; 4]);
        assert!(r.retry_after(ip(1)) >= Duration::from_secs(2));
        // Another source is not affected.
        assert_eq!(r.check(ip(2), t0), Verdict::Take);
        // Refilled after long enough (4 refused requests to pay back first).
        let later = t0 + Duration::from_secs(5);
        assert_eq!(r.check(ip(1), later), Verdict::Take);
    }

    #[test]
    fn the_sources_are_bounded_and_idle_ones_forgotten() {
        let t0 = Instant::now();
        let mut r = Rates::new(1, 1);
        for n in 0..MAX_SOURCES as u32 {
            assert_eq!(r.check(ip(n), t0), Verdict::Take);
        }
        // Full and nobody idle yet: a new source shares one bucket.
        assert_eq!(r.check(ip(900_000), t0), Verdict::Take);
        assert_eq!(r.check(ip(900_001), t0), Verdict::Refuse);
        assert_eq!(r.buckets.len(), MAX_SOURCES);
        // A second later every bucket has refilled: forgotten for new ones.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(r.check(ip(900_002), later), Verdict::Take);
        assert!(r.buckets.len() <= MAX_SOURCES);
        assert!(r.buckets.len() < 10, "{}", r.buckets.len());
    }
}
