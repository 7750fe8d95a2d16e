//! The writer task: everything the gateway writes goes through it, and no
//! row is lost without an error line.
//!
//! ```text
//!  StoreQueue::push ──▶ channel ──▶ backlog (one slot per row id, folded) ──▶ one transaction
//!                                        ▲                                       │ failed: rolled
//!                                        └──────── kept, retried with backoff ◀──┘ back (its own
//!                                                                                  connection is dropped)
//! ```
//!
//! * Commits are at least `group_commit` apart: under load each commit
//!   carries many calls' changes; an idle gateway still writes a change
//!   within that time.
//! * A failed commit (disk full, another process holding the write lock, an
//!   I/O error) keeps every row of the batch in the backlog, in order, and
//!   the writer keeps taking new ones meanwhile and retries everything
//!   (backoff `first_retry` doubling to `max_retry`) until it lands. The log
//!   says so when writes start failing, every minute while they fail, and
//!   when they land again — not once per row.
//! * Above `max_backlog` rows waiting, [`StoreEvent::Backlog`] tells the run
//!   loop to refuse new calls (and again when it is back under). Rows of
//!   calls already known are always taken; rows of *new* ids past four times
//!   `max_backlog` are dropped with an error line (a flood of refused calls
//!   cannot grow memory without bound).
//! * When every [`StoreQueue`] is dropped, the writer tries for
//!   `shutdown_grace` more to land what is left, then reports what it could
//!   not write, by id.

use crate::{Store, StoreError, StoreOp, apply_on};
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::time::Duration;
use stox_call::SessionRecord;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

/// The writer's knobs (config `[store]`, docs/configuration.md).
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Rows waiting to be written above which new calls are refused.
    pub max_backlog: usize,
    /// Shortest time between two commits.
    pub group_commit: Duration,
    /// First wait after a failed commit; doubles up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// At shutdown, how long to keep trying to land the backlog.
    pub shutdown_grace: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_backlog: 10_000,
            group_commit: crate::GROUP_COMMIT,
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What the writer tells the run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// The backlog went over `max_backlog` (`over_limit`) or back under.
    Backlog { over_limit: bool, rows: usize },
}

/// Hands rows to the writer. Cheap to clone; the writer ends when every
/// clone is dropped.
#[derive(Clone)]
pub struct StoreQueue {
    tx: mpsc::UnboundedSender<StoreOp>,
}

impl StoreQueue {
    /// Queues an operation; `false` only when the writer is gone.
    pub fn push(&self, op: StoreOp) -> bool {
        self.tx.send(op).is_ok()
    }
}

/// How the writer ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Rows committed (one per id per commit).
    pub written: u64,
    /// Rows that never landed: dropped past the hard cap, or still waiting
    /// when the shutdown grace ran out.
    pub lost: u64,
}

/// Starts the writer on `store`.
pub fn spawn_writer(
    store: Store,
    cfg: WriterConfig,
) -> (
    StoreQueue,
    mpsc::UnboundedReceiver<StoreEvent>,
    tokio::task::JoinHandle<WriterReport>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(store, cfg, rx, events_tx));
    (StoreQueue { tx }, events_rx, task)
}

/// One row waiting: its newest record and SIP state, and when it was first
/// queued (commit order).
struct Slot {
    seq: u64,
    record: Option<SessionRecord>,
    dialog: Option<String>,
    pending: Option<String>,
    media: Option<stox_call::media::MediaStats>,
}

#[derive(Default)]
struct Backlog {
    slots: HashMap<i64, Slot>,
    seq: u64,
}

impl Backlog {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Folds `op` in; `false` when it is a new row and the backlog is at
    /// `hard_cap` (the op is dropped).
    fn fold(&mut self, op: StoreOp, hard_cap: usize) -> bool {
        let id = op.id();
        if !self.slots.contains_key(&id) && self.slots.len() >= hard_cap {
            return false;
        }
        self.seq += 1;
        let seq = self.seq;
        let slot = self.slots.entry(id).or_insert_with(|| Slot {
            seq,
            record: None,
            dialog: None,
            pending: None,
            media: None,
        });
        match op {
            StoreOp::Session(r) => slot.record = Some(r),
            StoreOp::Dialog { snapshot, .. } => slot.dialog = Some(snapshot),
            StoreOp::Pending { snapshot, .. } => slot.pending = Some(snapshot),
            StoreOp::Media { stats, .. } => slot.media = Some(stats),
        }
        true
    }

    /// The backlog as operations, rows in the order first queued.
    fn ops(&self) -> Vec<StoreOp> {
        let mut slots: Vec<(&i64, &Slot)> = self.slots.iter().collect();
        slots.sort_by_key(|(_, s)| s.seq);
        let mut ops = Vec::with_capacity(slots.len());
        for (&id, slot) in slots {
            if let Some(r) = &slot.record {
                ops.push(StoreOp::Session(r.clone()));
            }
            if let Some(snapshot) = &slot.dialog {
                ops.push(StoreOp::Dialog {
                    id,
                    snapshot: snapshot.clone(),
                });
            }
            if let Some(snapshot) = &slot.pending {
                ops.push(StoreOp::Pending {
                    id,
                    snapshot: snapshot.clone(),
                });
            }
            if let Some(stats) = slot.media {
                ops.push(StoreOp::Media { id, stats });
            }
        }
        ops
    }

    fn clear(&mut self) {
        self.slots.clear();
        stox_mapping::tables::shrink(&mut self.slots);
    }

    /// The ids waiting, sorted (for the shutdown report).
    fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.slots.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// Writes have been failing since `since`.
struct Failing {
    since: Instant,
    attempts: u64,
    last_said: Instant,
}

struct Writer {
    store: Store,
    cfg: WriterConfig,
    events: mpsc::UnboundedSender<StoreEvent>,
    backlog: Backlog,
    conn: Option<AnyConnection>,
    failing: Option<Failing>,
    over_limit: bool,
    report: WriterReport,
}

const BATCH: usize = 4096;

async fn run(
    store: Store,
    cfg: WriterConfig,
    mut rx: mpsc::UnboundedReceiver<StoreOp>,
    events: mpsc::UnboundedSender<StoreEvent>,
) -> WriterReport {
    let mut w = Writer {
        store,
        cfg,
        events,
        backlog: Backlog::default(),
        conn: None,
        failing: None,
        over_limit: false,
        report: WriterReport::default(),
    };
    let mut buf = Vec::with_capacity(BATCH);
    let mut closed = false;
    let mut closed_at: Option<Instant> = None;
    let mut retry = cfg.first_retry;
    let mut next_attempt = Instant::now();
    loop {
        // Take what is queued; wait for something when nothing is waiting.
        if w.backlog.len() == 0 {
            if closed || rx.recv_many(&mut buf, BATCH).await == 0 {
                break;
            }
            w.take(&mut buf);
        }
        // Until the next commit may happen, keep taking rows.
        while !closed && Instant::now() < next_attempt {
            tokio::select! {
                () = sleep_until(next_attempt) => {}
                n = rx.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        closed = true;
                    } else {
                        w.take(&mut buf);
                    }
                }
            }
        }
        while let Ok(op) = rx.try_recv() {
            buf.push(op);
            if buf.len() == BATCH {
                w.take(&mut buf);
            }
        }
        w.take(&mut buf);
        if closed && closed_at.is_none() {
            closed_at = Some(Instant::now());
        }

        let started = Instant::now();
        match w.commit().await {
            Ok(()) => {
                retry = cfg.first_retry;
                next_attempt = started + cfg.group_commit;
            }
            Err(()) => {
                next_attempt = Instant::now() + retry;
                retry = (retry * 2).min(cfg.max_retry);
                if closed_at.is_some_and(|t| t.elapsed() >= cfg.shutdown_grace) {
                    break;
                }
            }
        }
        w.tell_backlog();
    }
    if w.backlog.len() > 0 {
        let ids = w.backlog.ids();
        w.report.lost += ids.len() as u64;
        error!(
            rows = ids.len(),
            first_ids = ?&ids[..ids.len().min(20)],
            "session store: rows NOT written at shutdown (the store stayed unwritable)"
        );
    }
    w.report
}

impl Writer {
    fn hard_cap(&self) -> usize {
        self.cfg.max_backlog.saturating_mul(4).max(1)
    }

    /// Folds received operations into the backlog.
    fn take(&mut self, buf: &mut Vec<StoreOp>) {
        let cap = self.hard_cap();
        for op in buf.drain(..) {
            let id = op.id();
            if !self.backlog.fold(op, cap) {
                self.report.lost += 1;
                if self.report.lost.is_power_of_two() {
                    error!(
                        id,
                        lost = self.report.lost,
                        cap,
                        "session store: backlog at its hard cap; a new row was dropped NOT written"
                    );
                }
            }
        }
        self.tell_backlog();
    }

    fn tell_backlog(&mut self) {
        let rows = self.backlog.len();
        let over = rows > self.cfg.max_backlog;
        if over == self.over_limit {
            return;
        }
        self.over_limit = over;
        if over {
            warn!(
                rows,
                max_backlog = self.cfg.max_backlog,
                "session store: backlog over its limit; new calls are refused (503 / resource-constraint)"
            );
        } else {
            info!(
                rows,
                "session store: backlog back under its limit; new calls are taken again"
            );
        }
        let _ = self.events.send(StoreEvent::Backlog {
            over_limit: over,
            rows,
        });
    }

    /// Writes the whole backlog in one transaction. On failure the
    /// connection is dropped (rolling the transaction back and releasing
    /// its locks) and the backlog stays.
    async fn commit(&mut self) -> Result<(), ()> {
        if self.backlog.len() == 0 {
            return Ok(());
        }
        let ops = self.backlog.ops();
        let started = Instant::now();
        let result = match self.conn.as_mut() {
            Some(conn) => apply_on(conn, &ops).await,
            None => match self.store.connect().await {
                Ok(conn) => apply_on(self.conn.insert(conn), &ops).await,
                Err(e) => Err(e),
            },
        };
        // Metrics (docs/operations.md); no-ops without a recorder.
        metrics::histogram!("stox_store_write_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                let rows = self.backlog.len() as u64;
                metrics::counter!("stox_store_rows_written_total").increment(rows);
                self.report.written += rows;
                self.backlog.clear();
                if let Some(f) = self.failing.take() {
                    info!(
                        rows,
                        attempts = f.attempts,
                        failing_ms = f.since.elapsed().as_millis() as u64,
                        "session store: writable again; every row kept meanwhile is written"
                    );
                }
                Ok(())
            }
            Err(e) => {
                metrics::counter!("stox_store_write_failures_total").increment(1);
                self.conn = None;
                self.failed(&e);
                Err(())
            }
        }
    }

    fn failed(&mut self, e: &StoreError) {
        let rows = self.backlog.len();
        let now = Instant::now();
        match self.failing.as_mut() {
            None => {
                error!(
                    error = %e,
                    rows,
                    "session store: write failed; rows are kept in memory and retried until they land"
                );
                self.failing = Some(Failing {
                    since: now,
                    attempts: 1,
                    last_said: now,
                });
            }
            Some(f) => {
                f.attempts += 1;
                if now.duration_since(f.last_said) >= Duration::from_secs(60) {
                    f.last_said = now;
                    warn!(
                        error = %e,
                        rows,
                        attempts = f.attempts,
                        failing_s = f.since.elapsed().as_secs(),
                        "session store: still failing; rows kept"
                    );
                }
            }
        }
    }
}
