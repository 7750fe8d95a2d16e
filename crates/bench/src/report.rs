//! Figures of one run: printed as aligned `key  value` lines and saved as
//! `key=value` lines so `stox-bench summary` can put runs side by side.

use crate::stats::Summary;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    rows: Vec<(String, String)>,
}

impl Report {
    pub fn new(name: &str) -> Report {
        Report {
            name: name.to_owned(),
            rows: Vec::new(),
        }
    }

    pub fn add(&mut self, key: &str, value: impl ToString) {
        self.rows.push((key.to_owned(), value.to_string()));
    }

    pub fn latency(&mut self, key: &str, samples: &mut [Duration]) {
        match Summary::of(samples) {
            Some(s) => {
                self.add(&format!("{key}.p50_ms"), fmt_ms(s.p50));
                self.add(&format!("{key}.p99_ms"), fmt_ms(s.p99));
                self.add(&format!("{key}.max_ms"), fmt_ms(s.max));
                self.add(&format!("{key}.n"), s.n);
            }
            None => self.add(&format!("{key}.n"), 0),
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.rows
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn print(&self) {
        println!("== {} ==", self.name);
        let w = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.rows {
            println!("  {k:w$}  {v}");
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = format!("run={}\n", self.name);
        for (k, v) in &self.rows {
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(path, text)?;
        Ok(())
    }
}

pub fn fmt_ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Reads every `*.kv` in `dir` and prints the comparison the issue asks for:
/// gateway µs/call per direction against Kamailio's, and the ratio.
pub fn summary(dir: &Path) -> anyhow::Result<()> {
    let mut runs: Vec<BTreeMap<String, String>> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().is_some_and(|e| e == "kv") {
            runs.push(parse_kv(&std::fs::read_to_string(&path)?));
        }
    }
    let field =
        |r: &BTreeMap<String, String>, k: &str| r.get(k).cloned().unwrap_or_else(|| "-".into());
    println!("== summary ({}) ==", dir.display());
    println!(
        "  {:<26} {:>8} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "run", "offered", "achieved", "failed", "cpu_us/call", "peak_rss", "rows"
    );
    for r in &runs {
        println!(
            "  {:<26} {:>8} {:>9} {:>7} {:>10} {:>10} {:>10}",
            field(r, "run"),
            field(r, "offered_cps"),
            field(r, "achieved_cps"),
            field(r, "failed_calls"),
            field(r, "cpu_us_per_call"),
            field(r, "peak_rss_kib"),
            field(r, "sessions_rows"),
        );
    }
    // One ratio per Kamailio run (tuned tlsf, and Debian's qm if measured).
    for k in runs
        .iter()
        .filter(|r| r.get("run").is_some_and(|n| n.starts_with("kamailio")))
    {
        let (Some(kname), Some(kcpu)) = (
            k.get("run"),
            k.get("cpu_us_per_call").and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        for r in &runs {
            let Some(name) = r.get("run").filter(|n| n.starts_with("gateway")) else {
                continue;
            };
            if let Some(g) = r.get("cpu_us_per_call").and_then(|v| v.parse::<f64>().ok()) {
                println!(
                    "  ratio {name} / {kname}: {g:.1} / {kcpu:.1} us/call = {:.2} (target <= 2.0, goal 1.0)",
                    g / kcpu
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_round_trip() {
        let mut r = Report::new("gateway-x");
        r.add("cpu_us_per_call", 12.5);
        r.latency("setup", &mut [Duration::from_micros(1500)]);
        assert_eq!(r.get("setup.p99_ms"), Some("1.500"));
        let dir = std::env::temp_dir().join(format!("stox-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("a.kv");
        r.save(&path).expect("save");
        let kv = parse_kv(&std::fs::read_to_string(&path).expect("read"));
        assert_eq!(kv.get("run").map(String::as_str), Some("gateway-x"));
        assert_eq!(kv.get("cpu_us_per_call").map(String::as_str), Some("12.5"));
        summary(&dir).expect("summary");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
