//! Rate limits for log lines about peer faults, and escaping of what a peer
//! sent before it is written to a log.
//!
//! A peer that sends garbage must not be able to fill the disk with our
//! warnings about it: [`LogGate`] lets through a burst, then a few lines a
//! second per source (a token bucket per key), and tells the next line it
//! lets through how many were held back meanwhile. Time is passed in (in
//! milliseconds, from any monotonic origin), like everywhere in this crate.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

/// Per-key token buckets for log lines. At most `max_keys` keys are kept;
/// past that, idle keys are forgotten, and if none is idle every other key
/// shares one bucket (a flood from many sources is then limited as one).
#[derive(Debug)]
pub struct LogGate<K> {
    per_sec: u64,
    burst: u64,
    max_keys: usize,
    keys: HashMap<K, Bucket>,
    shared: Bucket,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli_tokens: u64,
    last_ms: u64,
    held_back: u64,
}

impl Bucket {
    fn full(burst: u64, now_ms: u64) -> Bucket {
        Bucket {
            milli_tokens: burst * 1000,
            last_ms: now_ms,
            held_back: 0,
        }
    }

    fn take(&mut self, per_sec: u64, burst: u64, now_ms: u64) -> Option<u64> {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli_tokens = (self.milli_tokens + elapsed.saturating_mul(per_sec)).min(burst * 1000);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }

    fn idle(&self, per_sec: u64, burst: u64, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.held_back == 0 && self.milli_tokens + elapsed.saturating_mul(per_sec) >= burst * 1000
    }
}

impl<K: Eq + Hash + Clone> LogGate<K> {
    /// `per_sec` lines a second per key after a burst of `burst`.
    pub fn new(per_sec: u64, burst: u64, max_keys: usize) -> LogGate<K> {
        LogGate {
            per_sec: per_sec.max(1),
            burst: burst.max(1),
            max_keys: max_keys.max(1),
            keys: HashMap::new(),
            shared: Bucket::full(burst.max(1), 0),
        }
    }

    /// May a line about `key` be logged at `now_ms`? `Some(n)`: yes, and `n`
    /// lines about it were held back since the last one let through.
    pub fn admit(&mut self, key: &K, now_ms: u64) -> Option<u64> {
        let (per_sec, burst) = (self.per_sec, self.burst);
        if let Some(bucket) = self.keys.get_mut(key) {
            return bucket.take(per_sec, burst, now_ms);
        }
        if self.keys.len() >= self.max_keys {
            self.keys.retain(|_, b| !b.idle(per_sec, burst, now_ms));
            crate::tables::shrink(&mut self.keys);
        }
        if self.keys.len() >= self.max_keys {
            return self.shared.take(per_sec, burst, now_ms);
        }
        let mut bucket = Bucket::full(burst, now_ms);
        let admitted = bucket.take(per_sec, burst, now_ms);
        self.keys.insert(key.clone(), bucket);
        admitted
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Shows text a peer sent with control characters escaped (`\0`, `\n`,
/// `\u{1b}` …) and cut to `max` characters, so that it can go into a log
/// line or an error text without forging lines or terminal sequences.
pub struct Escaped<'a> {
    text: &'a str,
    max: usize,
}

/// [`Escaped`] with at most 200 characters.
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped { text, max: 200 }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.text.chars().enumerate() {
            if shown == self.max {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// The text with its control characters escaped (see [`Escaped`]), whole;
/// borrowed when there is nothing to escape.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        Escaped {
            text,
            max: usize::MAX,
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_few_a_second_with_the_count_held_back() {
        let mut gate = LogGate::new(2, 3, 16);
        let key = "198.51.100.7";
        let admitted: Vec<Option<u64>> = (0..10).map(|_| gate.admit(&key, 0)).collect();
        assert_eq!(&admitted[..3], &[Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        // Half a second later one token is back: the 7 held back are told.
        assert_eq!(gate.admit(&key, 500), Some(7));
        assert_eq!(gate.admit(&key, 500), None);
        // Another source is not affected.
        assert_eq!(gate.admit(&"203.0.113.1", 500), Some(0));
    }

    #[test]
    fn a_flood_from_126290_datagrams_logs_a_few_lines_a_second() {
        let mut gate = LogGate::new(5, 10, 1024);
        let mut lines = 0;
        let mut told = 0;
        // 126,290 bad datagrams over 10 seconds from one source.
        for n in 0..126_290u64 {
            if let Some(held) = gate.admit(&"src", n * 10_000 / 126_290) {
                lines += 1;
                told += held;
            }
        }
        assert!(lines <= 10 + 5 * 10 + 1, "{lines} lines");
        assert_eq!(lines + told + gate.keys[&"src"].held_back, 126_290);
    }

    #[test]
    fn many_sources_are_bounded_and_share_a_bucket_past_the_limit() {
        let mut gate = LogGate::new(1, 1, 4);
        for n in 0..100u32 {
            let _ = gate.admit(&n, 0);
        }
        assert!(gate.len() <= 4);
        // Idle keys are forgotten later, making room again.
        assert_eq!(gate.admit(&1000, 10_000), Some(0));
        assert!(gate.len() <= 4);
    }

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(
            escaped("a\0b\r\nc\u{1b}[31m").to_string(),
            "a\\u{0}b\\r\\nc\\u{1b}[31m"
        );
        assert_eq!(
            Escaped {
                text: "abcdef",
                max: 3
            }
            .to_string(),
            "abc…"
        );
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(escape_controls("x\u{7f}"), "x\\u{7f}");
    }
}
