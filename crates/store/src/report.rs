//! Reporting and retention (migration 0009, docs/sql.md).
//!
//! The views `call_records` (one row per call, with its parties, times,
//! durations and [`Outcome`]) and `active_sessions` (calls not ended) are
//! what operators query with `sqlite3`; [`Store::call_records`] and
//! [`Store::active_sessions`] read the same views back typed for
//! `stox-gateway sessions`, so the command and the SQL never disagree.
//! [`Store::prune_ended`] deletes ended rows past their age, a few hundred
//! at a time so that the call writer is never held up for long.

use crate::{
    Store, StoreError, hold_column, parse_direction, parse_ended_by, parse_iso8601, parse_state,
    parsed, parsed_or_null, sip_status_column, time_column,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::time::Duration;
use stox_call::{CallState, Direction, EndedBy, Hold, Millis, iso8601};
use stox_mapping::ids::{CallId, Sid};

/// How a call went: the `outcome` column of `call_records`. The view
/// decides it with the first rule that matches, in this order (see
/// `migrations/0009_reporting.sql` and docs/sql.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not ended yet.
    InProgress,
    /// Answered, however it ended afterwards.
    Answered,
    /// The caller gave up before the answer.
    Cancelled,
    /// The callee was busy (486, 600, `busy`).
    Busy,
    /// The callee or a policy refused the call (603, 401/403/407,
    /// `decline`, `security-error`).
    Rejected,
    /// Nobody answered in time (408, `timeout`, `expired`).
    NoAnswer,
    /// The callee could not be reached (404, 410, 480, 484, 604, `gone`).
    Unavailable,
    /// Anything else: the gateway, the network or a server failed.
    Failed,
}

impl Outcome {
    /// Every outcome, in the view's rule order.
    pub const ALL: [Outcome; 8] = [
        Outcome::InProgress,
        Outcome::Answered,
        Outcome::Cancelled,
        Outcome::Busy,
        Outcome::Rejected,
        Outcome::NoAnswer,
        Outcome::Unavailable,
        Outcome::Failed,
    ];

    /// The value of `call_records.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in-progress",
            Outcome::Answered => "answered",
            Outcome::Cancelled => "cancelled",
            Outcome::Busy => "busy",
            Outcome::Rejected => "rejected",
            Outcome::NoAnswer => "no-answer",
            Outcome::Unavailable => "unavailable",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Which calls [`Store::call_records`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only calls created at or after this time.
    pub since: Option<Millis>,
    /// At most this many, the newest (`None`: all).
    pub limit: Option<u32>,
}

/// A row of the `call_records` view.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: i64,
    pub direction: Direction,
    /// The XMPP user's JID for XMPP → SIP calls, the SIP URI otherwise.
    pub caller: String,
    pub callee: String,
    pub started_at: Millis,
    pub answered_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// Seconds from the start to the answer (to the millisecond).
    pub setup_s: Option<f64>,
    /// Seconds from the answer to the end; `None` for calls never answered
    /// or not over.
    pub duration_s: Option<f64>,
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    pub end_reason: Option<String>,
    pub ended_by: Option<EndedBy>,
    pub end_detail: Option<String>,
    pub sip_peer: Option<String>,
    pub media_relay: Option<String>,
    pub media_packets_from_xmpp: Option<i64>,
    pub media_packets_from_sip: Option<i64>,
    pub media_errors: Option<i64>,
    pub jingle_sid: Sid,
    pub sip_call_id: CallId,
}

/// A row of the `active_sessions` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    pub id: i64,
    pub direction: Direction,
    pub xmpp_jid: String,
    pub sip_uri: String,
    pub state: CallState,
    pub created_at: Millis,
    pub answered_at: Option<Millis>,
    /// Whole seconds since the call was created, by the database's clock.
    pub age_s: i64,
    /// Whole seconds since it was answered (`None` while it rings).
    pub talk_s: Option<i64>,
    pub hold: Hold,
    pub sip_peer: Option<String>,
    pub media_relay: Option<String>,
    pub jingle_sid: Sid,
    pub sip_call_id: CallId,
}

const CALL_RECORD_COLUMNS: &str = "id, direction, caller, callee, started_at, answered_at, \
     ended_at, setup_s, duration_s, outcome, sip_status, end_reason, ended_by, end_detail, \
     sip_peer, media_relay, media_packets_from_xmpp, media_packets_from_sip, media_errors, \
     jingle_sid, sip_call_id";

/// Newest first; `started_at` is `sessions.created_at`, so the database
/// walks its index backwards and stops at the limit (`i64::MAX`: none; both
/// back ends take it, where SQLite's -1 is an error to PostgreSQL).
static CALL_RECORDS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {CALL_RECORD_COLUMNS} FROM call_records \
         ORDER BY started_at DESC, id DESC LIMIT $1"
    )
});
static CALL_RECORDS_SINCE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {CALL_RECORD_COLUMNS} FROM call_records WHERE started_at >= $1 \
         ORDER BY started_at DESC, id DESC LIMIT $2"
    )
});

/// Rows [`Store::prune_ended`] deletes per statement: a few milliseconds
/// of holding the write lock.
pub const PRUNE_BATCH: u32 = 500;

/// The pause between two batches: one commit window of the writer, which
/// gets the lock meanwhile.
pub const PRUNE_PAUSE: Duration = crate::GROUP_COMMIT;

impl Store {
    /// Calls from the `call_records` view, newest first.
    pub async fn call_records(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let limit = filter.limit.map_or(i64::MAX, i64::from);
        let rows = match filter.since {
            Some(since) => {
                sqlx::query(sqlx::AssertSqlSafe(CALL_RECORDS_SINCE_SQL.as_str()))
                    .bind(iso8601(since))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(CALL_RECORDS_SQL.as_str()))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(call_record_from_row).collect()
    }

    /// Calls not ended, from the `active_sessions` view, oldest first.
    pub async fn active_sessions(&self) -> Result<Vec<ActiveSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, direction, xmpp_jid, sip_uri, state, created_at, answered_at, age_s, \
             talk_s, hold, sip_peer, media_relay, jingle_sid, sip_call_id FROM active_sessions \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(active_session_from_row).collect()
    }

    /// Retention: deletes the rows of calls that ended before `before`
    /// (never a live row, whatever its times), [`PRUNE_BATCH`] rows per
    /// statement with a [`PRUNE_PAUSE`] between statements, so that the
    /// writer keeps committing while a large table is pruned. Returns how
    /// many rows were deleted. Ids are not reused afterwards
    /// ([`Store::next_id`]).
    pub async fn prune_ended(&self, before: Millis) -> Result<u64, StoreError> {
        self.prune_ended_in_batches(before, PRUNE_BATCH, PRUNE_PAUSE)
            .await
    }

    pub(crate) async fn prune_ended_in_batches(
        &self,
        before: Millis,
        batch: u32,
        pause: Duration,
    ) -> Result<u64, StoreError> {
        let before = iso8601(before);
        let mut deleted = 0;
        loop {
            // Oldest first, through the index on ended_at (0009). A trigger
            // keeps the largest id deleted per instance (migration 0010),
            // so that no id is handed out again (Store::next_id).
            let done = sqlx::query(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                 WHERE state = 'ended' AND ended_at < $1 ORDER BY ended_at LIMIT $2)",
            )
            .bind(&before)
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await?;
            deleted += done.rows_affected();
            if done.rows_affected() < u64::from(batch) {
                return Ok(deleted);
            }
            tokio::time::sleep(pause).await;
        }
    }
}

fn call_record_from_row(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |detail: String| StoreError::Corrupt { id, detail };
    Ok(CallRecord {
        id,
        direction: parsed(row, id, "direction", parse_direction)?,
        caller: row.try_get("caller")?,
        callee: row.try_get("callee")?,
        started_at: time_column(row, id, "started_at")?
            .ok_or_else(|| corrupt("created_at is NULL".into()))?,
        answered_at: time_column(row, id, "answered_at")?,
        ended_at: time_column(row, id, "ended_at")?,
        setup_s: row.try_get("setup_s")?,
        duration_s: row.try_get("duration_s")?,
        outcome: parsed(row, id, "outcome", Outcome::parse)?,
        sip_status: sip_status_column(row, id)?,
        end_reason: row.try_get("end_reason")?,
        ended_by: parsed_or_null(row, id, "ended_by", parse_ended_by)?,
        end_detail: row.try_get("end_detail")?,
        sip_peer: row.try_get("sip_peer")?,
        media_relay: row.try_get("media_relay")?,
        media_packets_from_xmpp: row.try_get("media_packets_from_xmpp")?,
        media_packets_from_sip: row.try_get("media_packets_from_sip")?,
        media_errors: row.try_get("media_errors")?,
        jingle_sid: Sid::new(row.try_get::<String, _>("jingle_sid")?),
        sip_call_id: CallId::new(row.try_get::<String, _>("sip_call_id")?),
    })
}

fn active_session_from_row(row: &AnyRow) -> Result<ActiveSession, StoreError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |detail: String| StoreError::Corrupt { id, detail };
    let created_at =
        time_column(row, id, "created_at")?.ok_or_else(|| corrupt("created_at is NULL".into()))?;
    Ok(ActiveSession {
        id,
        direction: parsed(row, id, "direction", parse_direction)?,
        xmpp_jid: row.try_get("xmpp_jid")?,
        sip_uri: row.try_get("sip_uri")?,
        state: parsed(row, id, "state", parse_state)?,
        created_at,
        answered_at: time_column(row, id, "answered_at")?,
        age_s: row.try_get("age_s")?,
        talk_s: row.try_get("talk_s")?,
        hold: hold_column(row, id)?,
        sip_peer: row.try_get("sip_peer")?,
        media_relay: row.try_get("media_relay")?,
        jingle_sid: Sid::new(row.try_get::<String, _>("jingle_sid")?),
        sip_call_id: CallId::new(row.try_get::<String, _>("sip_call_id")?),
    })
}

/// A `--since` value as a point in time: an ISO-8601 UTC date or time
/// (`2026-11-21`, `2026-11-21T08:30`, `2026-11-21 08:30:15`, with seconds,
/// milliseconds and a `Z` optional), or a duration back from `now`: a whole
/// number and a unit, `s`, `m`, `h`, `d` or `w` (`90m`, `24h`, `7d`).
/// `None` when it is neither.
pub fn parse_since(text: &str, now: Millis) -> Option<Millis> {
    let text = text.trim();
    if let Some(ago) = parse_duration_ms(text) {
        return Some(Millis(now.0.saturating_sub(ago)));
    }
    let bare = text.strip_suffix('Z').unwrap_or(text);
    // The date and time may be apart by a space as well as a `T`.
    let mut full = bare.replacen(' ', "T", 1);
    match full.len() {
        10 => full.push_str("T00:00:00.000"),
        16 => full.push_str(":00.000"),
        19 => full.push_str(".000"),
        // A fraction of one to three digits.
        21..=23 if full.as_bytes().get(19) == Some(&b'.') => {
            while full.len() < 23 {
                full.push('0');
            }
        }
        _ => return None,
    }
    full.push('Z');
    parse_iso8601(&full)
}

/// `24h` → milliseconds.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let split = text.len().checked_sub(1)?;
    let (number, unit) = (text.get(..split)?, text.get(split..)?);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(unit_ms)
}
