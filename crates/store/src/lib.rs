//! The session store: one `sessions` row per call, written whole on every
//! state change by a single writer task ([`writer`]) that batches what is
//! queued into one transaction and never loses a row silently: a failed
//! commit is rolled back and retried with everything queued until it lands.
//!
//! Two back ends behind one set of queries (sqlx's `Any` driver,
//! docs/decisions/0010-scale-out.md): an embedded **SQLite** file (the
//! default; WAL mode, so operators query it while the gateway writes —
//! docs/decisions/0006-durable-store.md) and **PostgreSQL**, shared by
//! several gateway instances. Each back end has its migrations, embedded at
//! build time (no database is needed to build) and applied at start-up:
//! `migrations/` for SQLite and their twins in `migrations/postgres/`.
//!
//! Several instances share a store without a shared counter: a row's id is
//! `instance << 40 | n` ([`Instance`]), each instance numbers its own range
//! and restores only its own rows after a restart, and an instance number
//! is held by one gateway at a time ([`Store::claim_instance`]).

use sqlx::AnyConnection;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use stox_call::media::MediaStats;
use stox_call::{CallState, Direction, EndedBy, Hold, Millis, SessionRecord, iso8601};
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::lograte::escape_controls;

pub mod instance;
pub mod registrar;
pub mod report;
pub mod writer;

pub use instance::{Claim, Instance};
pub use writer::{StoreEvent, StoreQueue, WriterConfig, WriterReport, spawn_writer};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("bad store location {location}: {detail}")]
    Location { location: String, detail: String },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("corrupt row {id}: {detail}")]
    Corrupt { id: i64, detail: String },
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

const COLUMNS: &str = "id, jingle_sid, sip_call_id, direction, xmpp_jid, sip_uri, gateway_jid, \
     state, created_at, answered_at, ended_at, end_reason, sip_status, ended_by, end_detail, \
     updated_at, sip_dialog, sip_pending, local_sdp, remote_sdp, hold, sip_peer, media_relay";
const ROW_PARAMS: usize = 23;
/// A row already in the table is overwritten whole, except its stored SIP
/// state (dialog, pending INVITE), which a row without one (NULL) leaves as
/// it is.
const ON_CONFLICT: &str = " ON CONFLICT(id) DO UPDATE SET jingle_sid = excluded.jingle_sid, \
     sip_call_id = excluded.sip_call_id, xmpp_jid = excluded.xmpp_jid, sip_uri = excluded.sip_uri, \
     gateway_jid = excluded.gateway_jid, state = excluded.state, answered_at = excluded.answered_at, \
     ended_at = excluded.ended_at, end_reason = excluded.end_reason, sip_status = excluded.sip_status, \
     ended_by = excluded.ended_by, end_detail = excluded.end_detail, updated_at = excluded.updated_at, \
     sip_dialog = COALESCE(excluded.sip_dialog, sessions.sip_dialog), \
     sip_pending = COALESCE(excluded.sip_pending, sessions.sip_pending), \
     local_sdp = excluded.local_sdp, remote_sdp = excluded.remote_sdp, hold = excluded.hold, \
     sip_peer = excluded.sip_peer, \
     media_relay = COALESCE(excluded.media_relay, sessions.media_relay)";
/// Rows per statement are powers of two up to this, so a batch of any size
/// is written by at most `log2(MAX_ROWS) + 1` statements drawn from as many
/// cached prepared statements (23 × 512 parameters is well under SQLite's
/// limit of 32,766 and PostgreSQL's of 65,535).
const MAX_ROWS: usize = 512;

/// The upsert for 1, 2, 4, … `MAX_ROWS` rows (index = log2 of the count),
/// built once: only our constants go into them, never data.
static UPSERTS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..=MAX_ROWS.ilog2()).map(|k| upsert_sql(1 << k)).collect());

/// `INSERT … VALUES ($1, …), … ON CONFLICT …` for `rows` rows. Parameters
/// are numbered (`$n`), which both back ends read.
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=ROW_PARAMS)
                .map(|c| format!("${}", r * ROW_PARAMS + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO sessions ({COLUMNS}) VALUES {}{ON_CONFLICT}",
        values.join(", ")
    )
}

/// One row to write: the last record of an id in the batch, with the newest
/// SIP state the batch holds for it.
struct MergedRow<'a> {
    record: &'a SessionRecord,
    dialog: Option<&'a str>,
    pending: Option<&'a str>,
}

/// What updates a row apart from its whole-row write: SIP state for a row
/// that is not in the batch (written earlier), and rtpengine's figures.
enum Orphan<'a> {
    Dialog(i64, &'a str),
    Pending(i64, &'a str),
    Media(i64, &'a MediaStats),
}

/// Folds a batch into one row per id (the last record wins; SIP state
/// sticks to its id), in first-seen order. SIP state whose row is not in the
/// batch is returned apart: it updates a row written earlier.
fn merge(ops: &[StoreOp]) -> (Vec<MergedRow<'_>>, Vec<Orphan<'_>>) {
    let mut rows: Vec<MergedRow<'_>> = Vec::with_capacity(ops.len());
    let mut index = std::collections::HashMap::with_capacity(ops.len());
    let mut orphans = Vec::new();
    for op in ops {
        match op {
            StoreOp::Session(record) => match index.get(&record.id) {
                Some(&i) => {
                    let row: &mut MergedRow<'_> = &mut rows[i];
                    row.record = record;
                }
                None => {
                    index.insert(record.id, rows.len());
                    rows.push(MergedRow {
                        record,
                        dialog: None,
                        pending: None,
                    });
                }
            },
            StoreOp::Dialog { id, snapshot } => match index.get(id) {
                Some(&i) => rows[i].dialog = Some(snapshot),
                None => orphans.push(Orphan::Dialog(*id, snapshot.as_str())),
            },
            StoreOp::Pending { id, snapshot } => match index.get(id) {
                Some(&i) => rows[i].pending = Some(snapshot),
                None => orphans.push(Orphan::Pending(*id, snapshot.as_str())),
            },
            // Applied after the rows: the columns are never in a row write.
            StoreOp::Media { id, stats } => orphans.push(Orphan::Media(*id, stats)),
        }
    }
    (rows, orphans)
}

/// Where the store lives (config `[store]`: `database` or `url`).
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://user[:password]@host[:port]/db`.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else
    /// is the path of an SQLite file.
    pub fn parse(text: &str) -> Location {
        if is_postgres_url(text) {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// `sqlite` or `postgres`: the back end's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

fn is_postgres_url(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Shown with any password left out: locations go into logs and errors.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({self})", self.backend())
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How the store is opened (config `[store]`).
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// SQLite: how long a statement waits for another process's lock before
    /// it fails (and the writer retries the batch later). PostgreSQL: how
    /// long a connection attempt may take.
    pub busy_timeout: Duration,
    /// Whose rows this store numbers and restores.
    pub instance: Instance,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_millis(1000),
            instance: Instance::default(),
        }
    }
}

/// How a connection is made: the back end's options and, for SQLite, the
/// settings every connection runs first.
struct Connect {
    options: AnyConnectOptions,
    location: Location,
    setup: Option<String>,
}

impl Connect {
    fn new(location: &Location, opts: &StoreOptions) -> Result<Connect, StoreError> {
        let bad = |detail: String| StoreError::Location {
            location: location.to_string(),
            detail,
        };
        let (url, setup) = match location {
            Location::Sqlite(path) => {
                let path = std::path::absolute(path).map_err(|e| bad(e.to_string()))?;
                let text = path
                    .to_str()
                    .ok_or_else(|| bad("the path is not UTF-8".into()))?;
                // Checkpoints stay automatic (every 1000 pages); after one
                // the WAL file is cut back to journal_size_limit instead of
                // keeping its peak.
                let setup = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;",
                    opts.busy_timeout.as_millis()
                );
                (
                    format!("sqlite://{}?mode=rwc", percent_encode_path(text)),
                    Some(setup),
                )
            }
            Location::Postgres(url) => (url.clone(), None),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| bad(e.to_string()))?;
        Ok(Connect {
            options,
            location: location.clone(),
            setup,
        })
    }

    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect_with(&self.options).await?;
        if let Some(setup) = &self.setup {
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup.clone())))
                .await?;
        }
        Ok(conn)
    }
}

/// Every byte but unreserved ones and `/` as `%XX`: SQLite's URL form of a
/// file name (`?`, `#`, `%` and spaces in a path stay themselves).
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// How the writer opens its own connection.
    connect: Arc<Connect>,
    instance: Instance,
}

impl Store {
    /// Opens (creating it if needed) and migrates the SQLite file at `path`
    /// with the default [`StoreOptions`].
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default()).await
    }

    /// Opens (creating it if needed) and migrates the SQLite file at `path`.
    pub async fn open_with(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Self::open_at(&Location::Sqlite(path.to_owned()), opts).await
    }

    /// Opens and migrates the store at `location`: an SQLite file (created
    /// if needed) or a PostgreSQL database (which must exist; its tables
    /// are created by the migrations).
    pub async fn open_at(location: &Location, opts: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = location.to_string();
        let connect = Arc::new(Connect::new(location, &opts)?);
        let setup = connect.setup.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(opts.busy_timeout.max(Duration::from_secs(5)))
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    if let Some(setup) = setup {
                        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup)))
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect.options.clone())
            .await
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        let migrator = match location {
            Location::Sqlite(_) => &SQLITE_MIGRATIONS,
            Location::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: shown,
                source,
            })?;
        Ok(Store {
            pool,
            connect,
            instance: opts.instance,
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.connect.location
    }

    /// The instance whose rows this store numbers and restores.
    pub fn instance(&self) -> Instance {
        self.instance
    }

    /// A connection of its own, for the writer: a failed transaction is
    /// then dropped with its connection (which rolls it back and releases
    /// every lock) instead of going back to a pool half-open.
    pub(crate) async fn connect(&self) -> Result<AnyConnection, StoreError> {
        Ok(self.connect.connect().await?)
    }

    /// Writes the records in one transaction, in order (the last write of a
    /// row wins).
    pub async fn save(&self, records: &[SessionRecord]) -> Result<(), StoreError> {
        let ops: Vec<StoreOp> = records.iter().cloned().map(StoreOp::Session).collect();
        self.apply(&ops).await
    }

    /// Applies the operations in one transaction, as if in order: one row
    /// per id, written by a few multi-row statements rather than one
    /// statement (and one round trip) per operation.
    pub async fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        apply_on(&mut conn, ops).await
    }

    /// One past the largest id this instance ever stored: where the core
    /// starts numbering. Rows deleted by retention ([`Store::prune_ended`])
    /// count too (`store_instances.last_id`), so a call's id is never given
    /// to another call.
    pub async fn next_id(&self) -> Result<i64, StoreError> {
        let (first, end) = self.instance.ids();
        let row = sqlx::query(
            "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM sessions WHERE id >= $1 AND id < $2 \
             UNION ALL SELECT last_id AS m FROM store_instances WHERE instance = $3) AS t",
        )
        .bind(first)
        .bind(end)
        .bind(i64::from(self.instance.get()))
        .fetch_one(&self.pool)
        .await?;
        let last: Option<i64> = row.try_get(0)?;
        Ok(last.unwrap_or(0).max(first) + 1)
    }

    /// Rows of this instance's calls that were not ended (left by a
    /// previous run).
    pub async fn live_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self
            .live_rows()
            .await?
            .into_iter()
            .map(|r| r.record)
            .collect())
    }

    /// This instance's live rows with their stored SIP state, for resuming
    /// (answered) or ending (unanswered) calls at start-up. Another
    /// instance's rows are never returned: they are its calls.
    pub async fn live_rows(&self) -> Result<Vec<LiveRow>, StoreError> {
        let (first, end) = self.instance.ids();
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE state <> 'ended' AND id >= $1 AND id < $2 ORDER BY id",
        )
        .bind(first)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LiveRow {
                    record: record_from_row(row)?,
                    dialog: row.try_get("sip_dialog")?,
                    pending: row.try_get("sip_pending")?,
                })
            })
            .collect()
    }

    pub async fn session(&self, id: i64) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The shortest time between two commits of the writer (see [`writer`]).
pub const GROUP_COMMIT: Duration = Duration::from_millis(20);

/// A row left live by a previous run, with its stored SIP state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    pub record: SessionRecord,
    /// The confirmed dialog (answered calls).
    pub dialog: Option<String>,
    /// The unanswered INVITE (calls being set up).
    pub pending: Option<String>,
}

/// What the writer task writes.
#[derive(Debug, Clone, PartialEq, Eq)]
// Rows are the common case and move once into the writer's queue, where
// they are folded per id: boxing them would add an allocation per write
// for nothing.
#[allow(clippy::large_enum_variant)]
pub enum StoreOp {
    /// A session row, written whole.
    Session(SessionRecord),
    /// The confirmed SIP dialog of row `id` (see migration 0002).
    Dialog { id: i64, snapshot: String },
    /// The unanswered INVITE of row `id` (see migration 0003).
    Pending { id: i64, snapshot: String },
    /// rtpengine's figures for row `id` (see migration 0008).
    Media { id: i64, stats: MediaStats },
}

impl StoreOp {
    /// The row this operation writes.
    pub fn id(&self) -> i64 {
        match self {
            StoreOp::Session(r) => r.id,
            StoreOp::Dialog { id, .. }
            | StoreOp::Pending { id, .. }
            | StoreOp::Media { id, .. } => *id,
        }
    }
}

/// Applies the operations in one transaction on `conn` (see
/// [`Store::apply`]). On error the transaction is not committed; the caller
/// drops or rolls back the connection.
pub(crate) async fn apply_on(conn: &mut AnyConnection, ops: &[StoreOp]) -> Result<(), StoreError> {
    let (rows, orphans) = merge(ops);
    let mut tx = conn.begin().await?;
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let n = if rest.len() >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let sql = &UPSERTS[n.ilog2() as usize];
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for MergedRow {
            record: r,
            dialog,
            pending,
        } in chunk
        {
            // Text a peer chose is stored with its control characters
            // escaped: never a raw NUL or line break in a column.
            query = query
                .bind(r.id)
                .bind(escape_controls(r.jingle_sid.as_str()).into_owned())
                .bind(escape_controls(r.sip_call_id.as_str()).into_owned())
                .bind(r.direction.as_str())
                .bind(escape_controls(&r.xmpp_jid).into_owned())
                .bind(escape_controls(&r.sip_uri).into_owned())
                .bind(escape_controls(&r.gateway_jid).into_owned())
                .bind(r.state.as_str())
                .bind(iso8601(r.created_at))
                .bind(r.answered_at.map(iso8601))
                .bind(r.ended_at.map(iso8601))
                .bind(
                    r.end_reason
                        .as_deref()
                        .map(|t| escape_controls(t).into_owned()),
                )
                .bind(r.sip_status.map(i64::from))
                .bind(r.ended_by.map(EndedBy::as_str))
                .bind(
                    r.end_detail
                        .as_deref()
                        .map(|t| escape_controls(t).into_owned()),
                )
                .bind(iso8601(r.updated_at))
                .bind(*dialog)
                .bind(*pending)
                .bind(r.local_sdp.as_deref())
                .bind(r.remote_sdp.as_deref())
                .bind(r.hold.as_str())
                .bind(
                    r.sip_peer
                        .as_deref()
                        .map(|t| escape_controls(t).into_owned()),
                )
                .bind(r.media_relay.as_deref());
        }
        query.execute(&mut *tx).await?;
    }
    for orphan in orphans {
        let query = match orphan {
            Orphan::Dialog(id, s) => {
                sqlx::query("UPDATE sessions SET sip_dialog = $1 WHERE id = $2")
                    .bind(s)
                    .bind(id)
            }
            Orphan::Pending(id, s) => {
                sqlx::query("UPDATE sessions SET sip_pending = $1 WHERE id = $2")
                    .bind(s)
                    .bind(id)
            }
            Orphan::Media(id, m) => sqlx::query(
                "UPDATE sessions SET media_packets_from_xmpp = $1, media_packets_from_sip = $2, \
                 media_errors = $3 WHERE id = $4",
            )
            .bind(m.packets_from_xmpp)
            .bind(m.packets_from_sip)
            .bind(m.errors)
            .bind(id),
        };
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn record_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |detail: String| StoreError::Corrupt { id, detail };
    let time = |col: &str| time_column(row, id, col);
    Ok(SessionRecord {
        id,
        jingle_sid: Sid::new(row.try_get::<String, _>("jingle_sid")?),
        sip_call_id: CallId::new(row.try_get::<String, _>("sip_call_id")?),
        direction: parsed(row, id, "direction", parse_direction)?,
        xmpp_jid: row.try_get("xmpp_jid")?,
        sip_uri: row.try_get("sip_uri")?,
        gateway_jid: row.try_get("gateway_jid")?,
        state: parsed(row, id, "state", parse_state)?,
        created_at: time("created_at")?.ok_or_else(|| corrupt("created_at is NULL".into()))?,
        answered_at: time("answered_at")?,
        ended_at: time("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        sip_status: sip_status_column(row, id)?,
        end_detail: row.try_get("end_detail")?,
        ended_by: parsed_or_null(row, id, "ended_by", parse_ended_by)?,
        updated_at: time("updated_at")?.ok_or_else(|| corrupt("updated_at is NULL".into()))?,
        local_sdp: row.try_get("local_sdp")?,
        remote_sdp: row.try_get("remote_sdp")?,
        hold: hold_column(row, id)?,
        sip_peer: row.try_get("sip_peer")?,
        media_relay: row.try_get("media_relay")?,
    })
}

/// Text column `col` of row `id` read by `parse`; text it does not take
/// is a corrupt row.
pub(crate) fn parsed<T>(
    row: &AnyRow,
    id: i64,
    col: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| StoreError::Corrupt {
        id,
        detail: format!("{col} = {text:?}"),
    })
}

/// [`parsed`] for a column that may be NULL (`None`).
pub(crate) fn parsed_or_null<T>(
    row: &AnyRow,
    id: i64,
    col: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|text| {
        parse(&text).ok_or_else(|| StoreError::Corrupt {
            id,
            detail: format!("{col} = {text:?}"),
        })
    })
    .transpose()
}

/// `hold` of row `id` (NULL: nobody holds the call).
pub(crate) fn hold_column(row: &AnyRow, id: i64) -> Result<Hold, StoreError> {
    let hold: Option<String> = row.try_get("hold")?;
    Hold::parse(hold.as_deref()).ok_or_else(|| StoreError::Corrupt {
        id,
        detail: format!("hold = {hold:?}"),
    })
}

/// A time column of row `id` (NULL: `None`); text that is not the store's
/// format is a corrupt row.
pub(crate) fn time_column(row: &AnyRow, id: i64, col: &str) -> Result<Option<Millis>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        parse_iso8601(&t).ok_or_else(|| StoreError::Corrupt {
            id,
            detail: format!("{col} = {t:?}"),
        })
    })
    .transpose()
}

/// `sip_status` of row `id`: a SIP status fits a `u16`.
pub(crate) fn sip_status_column(row: &AnyRow, id: i64) -> Result<Option<u16>, StoreError> {
    let status: Option<i64> = row.try_get("sip_status")?;
    status
        .map(|s| {
            u16::try_from(s).map_err(|_| StoreError::Corrupt {
                id,
                detail: format!("sip_status = {s}"),
            })
        })
        .transpose()
}

/// The inverse of [`Direction::as_str`].
pub(crate) fn parse_direction(s: &str) -> Option<Direction> {
    match s {
        "xmpp-to-sip" => Some(Direction::XmppToSip),
        "sip-to-xmpp" => Some(Direction::SipToXmpp),
        _ => None,
    }
}

/// The inverse of [`CallState::as_str`].
pub(crate) fn parse_state(s: &str) -> Option<CallState> {
    match s {
        "pending" => Some(CallState::Pending),
        "ringing" => Some(CallState::Ringing),
        "active" => Some(CallState::Active),
        "ended" => Some(CallState::Ended),
        _ => None,
    }
}

/// The inverse of [`EndedBy::as_str`].
pub(crate) fn parse_ended_by(s: &str) -> Option<EndedBy> {
    match s {
        "xmpp" => Some(EndedBy::Xmpp),
        "sip" => Some(EndedBy::Sip),
        "gateway" => Some(EndedBy::Gateway),
        _ => None,
    }
}

/// Parses the store's own time format `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn parse_iso8601(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    // Digits only: `parse` alone would also take a sign ("+1").
    let num = |r: std::ops::Range<usize>| {
        let t = s.get(r)?;
        t.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        t.parse::<u64>().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (H. Hinnant), the inverse of stox_call::iso8601.
    let y = if mo <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(Millis(
        ((days * 86_400 + h * 3600 + mi * 60 + se) * 1000) + ms,
    ))
}

#[cfg(test)]
mod tests;
