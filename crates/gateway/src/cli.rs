//! The operators' subcommands that do not run the gateway:
//! `check-config` (load and check the config, one line, exit 0 or 1) and
//! `sessions` (the store's `call_records` or `active_sessions` view as a
//! table or JSON lines; the queries live in `stox_store::report`, the
//! views in migration 0009, both described in docs/sql.md).

use crate::config::{Config, StoreSection};
use std::path::Path;
use std::process::ExitCode;
use stox_call::{Millis, iso8601};
use stox_mapping::lograte::escape_controls;
use stox_store::Store;
use stox_store::report::{ActiveSession, CallFilter, CallRecord, parse_since};

/// Calls listed when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 100;

/// `stox-gateway --config C check-config`: exit 0 and `… OK` on standard
/// output, or exit 1 and the problem (naming the file and the key) on
/// standard error.
pub fn check_config(path: &Path) -> ExitCode {
    match Config::load(path).and_then(|cfg| check_store_dir(&cfg.store)) {
        Ok(()) => {
            println!("stox-gateway: config {} OK", path.display());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("stox-gateway: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The gateway creates `store.database` at start-up, but not its folder.
/// (A PostgreSQL database must exist; `check-config` does not connect.)
fn check_store_dir(store: &StoreSection) -> Result<(), String> {
    let Some(database) = store.database.as_ref() else {
        return Ok(());
    };
    let dir = match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "store.database {}: the directory {} does not exist",
            database.display(),
            dir.display()
        ))
    }
}

#[derive(clap::Args, Debug)]
pub struct SessionsArgs {
    /// The calls in progress (the `active_sessions` view), oldest first,
    /// instead of the call records.
    #[arg(long, conflicts_with_all = ["since", "limit"])]
    active: bool,
    /// Only calls started since WHEN: an ISO-8601 UTC date or time
    /// (2026-11-21, 2026-11-21T08:30) or a time back from now (90m, 24h, 7d, 2w).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// At most N calls, the newest [default: 100; 0: all].
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// One JSON object per line, with every column of the view, instead of
    /// a table.
    #[arg(long)]
    json: bool,
}

/// `stox-gateway --config C sessions …`: exit 0 done, 1 the store failed,
/// 2 a bad argument.
pub fn sessions(store_cfg: &StoreSection, args: &SessionsArgs, now: Millis) -> ExitCode {
    let since = match args.since.as_deref().map(|s| (s, parse_since(s, now))) {
        None => None,
        Some((_, Some(at))) => Some(at),
        Some((text, None)) => {
            eprintln!(
                "stox-gateway: --since {text:?}: expected an ISO-8601 UTC date or time \
                 (2026-11-21, 2026-11-21T08:30) or a time back from now (90m, 24h, 7d, 2w)"
            );
            return ExitCode::from(2);
        }
    };
    let filter = CallFilter {
        since,
        limit: match args.limit.unwrap_or(DEFAULT_LIMIT) {
            0 => None,
            n => Some(n),
        },
    };
    // Reading an existing database only: opening would create an empty one.
    if let Some(path) = store_cfg
        .database
        .as_ref()
        .filter(|_| store_cfg.url.is_none())
        && !path.exists()
    {
        eprintln!(
            "stox-gateway: store.database {} does not exist (the gateway creates it when it starts)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let store = Store::open_at(&store_cfg.location(), store_cfg.options()).await?;
        let out = if args.active {
            store.active_sessions().await.map(|rows| {
                if args.json {
                    rows.iter().map(active_json).collect()
                } else {
                    active_table(&rows)
                }
            })
        } else {
            store.call_records(&filter).await.map(|rows| {
                if args.json {
                    rows.iter().map(record_json).collect()
                } else {
                    records_table(&rows)
                }
            })
        };
        store.close().await;
        out
    });
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stox-gateway: store {}: {e}", store_cfg.location());
            ExitCode::FAILURE
        }
    }
}

/// A time as the table shows it: `2026-11-21 21:45:03` (UTC, no milliseconds).
fn short_time(t: Millis) -> String {
    let text = iso8601(t);
    text.get(..19).unwrap_or(&text).replacen('T', " ", 1)
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(String::new, |s| format!("{s:.1}"))
}

fn text(s: Option<&str>) -> String {
    s.map_or_else(String::new, str::to_owned)
}

fn records_table(rows: &[CallRecord]) -> Vec<String> {
    let header = [
        "ID",
        "STARTED (UTC)",
        "DIRECTION",
        "CALLER",
        "CALLEE",
        "OUTCOME",
        "STATUS",
        "SETUP_S",
        "DURATION_S",
        "REASON",
        "BY",
        "PEER",
        "DETAIL",
    ];
    let cells = rows.iter().map(|r| {
        vec![
            r.id.to_string(),
            short_time(r.started_at),
            r.direction.as_str().to_owned(),
            r.caller.clone(),
            r.callee.clone(),
            r.outcome.as_str().to_owned(),
            r.sip_status.map_or_else(String::new, |s| s.to_string()),
            seconds(r.setup_s),
            seconds(r.duration_s),
            text(r.end_reason.as_deref()),
            text(r.ended_by.map(|b| b.as_str())),
            text(r.sip_peer.as_deref()),
            text(r.end_detail.as_deref()),
        ]
    });
    table(&header, &[0, 6, 7, 8], cells)
}

fn active_table(rows: &[ActiveSession]) -> Vec<String> {
    let header = [
        "ID",
        "CREATED (UTC)",
        "DIRECTION",
        "XMPP_JID",
        "SIP_URI",
        "STATE",
        "AGE_S",
        "TALK_S",
        "HOLD",
        "PEER",
        "RELAY",
    ];
    let cells = rows.iter().map(|r| {
        vec![
            r.id.to_string(),
            short_time(r.created_at),
            r.direction.as_str().to_owned(),
            r.xmpp_jid.clone(),
            r.sip_uri.clone(),
            r.state.as_str().to_owned(),
            r.age_s.to_string(),
            r.talk_s.map_or_else(String::new, |t| t.to_string()),
            text(r.hold.as_str()),
            text(r.sip_peer.as_deref()),
            text(r.media_relay.as_deref()),
        ]
    });
    table(&header, &[0, 6, 7], cells)
}

/// Columns padded to their widest cell (in characters), numbers (the
/// columns in `right`) aligned right, two spaces apart, no trailing blanks.
/// Cells are shown with their control characters escaped.
fn table(header: &[&str], right: &[usize], rows: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut grid: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    grid.extend(rows.map(|row| {
        row.into_iter()
            .map(|cell| escape_controls(&cell).into_owned())
            .collect()
    }));
    let mut widths = vec![0; header.len()];
    for row in &grid {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    grid.iter()
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(col, (cell, &width))| {
                    if right.contains(&col) {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            line.join("  ").trim_end().to_owned()
        })
        .collect()
}

fn time_json(t: Option<Millis>) -> serde_json::Value {
    t.map(iso8601).into()
}

/// A `call_records` row as JSON, keyed by the view's column names.
fn record_json(r: &CallRecord) -> String {
    serde_json::json!({
        "id": r.id,
        "direction": r.direction.as_str(),
        "caller": r.caller,
        "callee": r.callee,
        "started_at": iso8601(r.started_at),
        "answered_at": time_json(r.answered_at),
        "ended_at": time_json(r.ended_at),
        "setup_s": r.setup_s,
        "duration_s": r.duration_s,
        "outcome": r.outcome.as_str(),
        "sip_status": r.sip_status,
        "end_reason": r.end_reason,
        "ended_by": r.ended_by.map(|b| b.as_str()),
        "end_detail": r.end_detail,
        "sip_peer": r.sip_peer,
        "media_relay": r.media_relay,
        "media_packets_from_xmpp": r.media_packets_from_xmpp,
        "media_packets_from_sip": r.media_packets_from_sip,
        "media_errors": r.media_errors,
        "jingle_sid": r.jingle_sid.as_str(),
        "sip_call_id": r.sip_call_id.as_str(),
    })
    .to_string()
}

/// An `active_sessions` row as JSON, keyed by the view's column names.
fn active_json(r: &ActiveSession) -> String {
    serde_json::json!({
        "id": r.id,
        "direction": r.direction.as_str(),
        "xmpp_jid": r.xmpp_jid,
        "sip_uri": r.sip_uri,
        "state": r.state.as_str(),
        "created_at": iso8601(r.created_at),
        "answered_at": time_json(r.answered_at),
        "age_s": r.age_s,
        "talk_s": r.talk_s,
        "hold": r.hold.as_str(),
        "sip_peer": r.sip_peer,
        "media_relay": r.media_relay,
        "jingle_sid": r.jingle_sid.as_str(),
        "sip_call_id": r.sip_call_id.as_str(),
    })
    .to_string()
}

/// The one-thread runtime of a command that talks to the store; `Err` is
/// the exit code after the reason was printed.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("stox-gateway: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_escapes_cells() {
        let lines = table(
            &["ID", "NAME", "NOTE"],
            &[0],
            vec![
                vec!["7".to_owned(), "juliet".to_owned(), String::new()],
                vec!["1234".to_owned(), "r\u{e9}my\n".to_owned(), "x".to_owned()],
            ]
            .into_iter(),
        );
        assert_eq!(
            lines,
            vec![
                "  ID  NAME    NOTE",
                "   7  juliet",
                "1234  r\u{e9}my\\n  x",
            ]
        );
    }

    #[test]
    fn times_show_to_the_second() {
        assert_eq!(short_time(Millis(1_795_296_363_123)), "2026-11-21 21:26:03");
    }
}
