use super::*;
use std::time::Duration;

fn record(id: i64, state: CallState) -> SessionRecord {
    SessionRecord {
        id,
        jingle_sid: Sid::new(format!("sid{id}")),
        sip_call_id: CallId::new(format!("sid{id}@sip.example.com")),
        direction: Direction::XmppToSip,
        xmpp_jid: "juliet@example.com/balcony".into(),
        sip_uri: "sip:romeo@example.net".into(),
        gateway_jid: "romeo\\40example.net@sip.example.com".into(),
        state,
        created_at: Millis(1_795_296_363_000),
        answered_at: None,
        ended_at: None,
        end_reason: None,
        sip_status: None,
        ended_by: None,
        end_detail: None,
        local_sdp: None,
        remote_sdp: None,
        hold: Hold::default(),
        sip_peer: None,
        media_relay: None,
        updated_at: Millis(1_795_296_363_000),
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stox-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("gw.db")
}

/// A database for one test, on one back end.
struct TestDb {
    location: Location,
}

impl TestDb {
    async fn open(&self) -> Store {
        self.open_as(Instance::default()).await
    }

    async fn open_as(&self, instance: Instance) -> Store {
        Store::open_at(
            &self.location,
            StoreOptions {
                instance,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("open {:?}: {e}", self.location))
    }
}

/// The back ends a store test runs on: an SQLite file always, and a
/// PostgreSQL database of its own when `STOX_TEST_POSTGRES_URL` names a
/// server and a role that may create databases (tests/run.sh starts one and
/// sets `STOX_TEST_REQUIRE_POSTGRES=1`, which makes a missing URL a
/// failure rather than a test on SQLite only).
async fn test_dbs(name: &str) -> Vec<TestDb> {
    let mut dbs = vec![TestDb {
        location: Location::Sqlite(temp_db(name)),
    }];
    match std::env::var("STOX_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => dbs.push(TestDb {
            location: Location::Postgres(postgres_db(&url, name).await),
        }),
        _ => assert!(
            std::env::var("STOX_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "STOX_TEST_REQUIRE_POSTGRES=1 but STOX_TEST_POSTGRES_URL is not set"
        ),
    }
    dbs
}

/// A fresh database `stox_test_<name>` on the server of `url`; its URL.
async fn postgres_db(url: &str, name: &str) -> String {
    use sqlx::Connection;
    let db: String = format!("stox_test_{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("STOX_TEST_POSTGRES_URL {url}: {e}"));
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("create the test database");
    }
    let base = url.split('?').next().unwrap_or(url);
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{db}")
}

#[test]
fn iso8601_round_trips() {
    for ms in [0, 951_827_696_789, 1_795_296_363_123, 4_102_444_800_000] {
        assert_eq!(parse_iso8601(&iso8601(Millis(ms))), Some(Millis(ms)));
    }
    assert_eq!(parse_iso8601("2026-13-01T00:00:00.000Z"), None);
    assert_eq!(parse_iso8601("garbage"), None);
    assert_eq!(parse_iso8601("2026-11-21 21:26:03.000Z"), None);
}

#[tokio::test]
async fn upserts_rows_and_reads_them_back() {
    for db in test_dbs("upsert").await {
        let store = db.open().await;
        assert_eq!(store.next_id().await.expect("next id"), 1);

        let mut r = record(1, CallState::Pending);
        store.save(std::slice::from_ref(&r)).await.expect("insert");
        r.state = CallState::Active;
        r.answered_at = Some(Millis(1_795_296_364_000));
        r.sip_status = Some(200);
        // The media session: SDP with its line breaks, a digest over 2^63.
        r.local_sdp = Some("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n".into());
        r.remote_sdp = Some("v=0\r\no=b 2 2 IN IP4 127.0.0.2\r\ns=-\r\n".into());
        r.hold = Hold {
            xmpp: false,
            sip: true,
        };
        let other = record(2, CallState::Ringing);
        store
            .save(&[r.clone(), other.clone()])
            .await
            .expect("update");

        assert_eq!(store.session(1).await.expect("read"), Some(r.clone()));
        assert_eq!(store.next_id().await.expect("next id"), 3);
        let live = store.live_sessions().await.expect("live");
        assert_eq!(live, vec![r.clone(), other]);

        r.state = CallState::Ended;
        r.ended_by = Some(EndedBy::Sip);
        r.end_reason = Some("success".into());
        store.save(&[r]).await.expect("end");
        assert_eq!(store.live_sessions().await.expect("live").len(), 1);
        store.close().await;

        // Reopening runs the migrations again without harm.
        let again = db.open().await;
        assert_eq!(again.next_id().await.expect("next id"), 3);
    }
}

#[tokio::test]
async fn writer_drains_the_queue_in_order() {
    for db in test_dbs("writer").await {
        let store = db.open().await;
        let (queue, _events, writer) = spawn_writer(store.clone(), WriterConfig::default());
        for state in [CallState::Pending, CallState::Ringing, CallState::Active] {
            assert!(queue.push(StoreOp::Session(record(7, state))));
        }
        queue.push(StoreOp::Dialog {
            id: 7,
            snapshot: "v1\ncall-id: x".into(),
        });
        queue.push(StoreOp::Pending {
            id: 7,
            snapshot: "p1".into(),
        });
        drop(queue);
        let report = writer.await.expect("writer task");
        assert_eq!(report.lost, 0);
        let row = store.session(7).await.expect("read").expect("row");
        assert_eq!(row.state, CallState::Active);
        let live = store.live_rows().await.expect("live");
        assert_eq!(
            live,
            vec![LiveRow {
                record: row,
                dialog: Some("v1\ncall-id: x".to_owned()),
                pending: Some("p1".to_owned()),
            }]
        );
    }
}

/// A store on a fresh file whose write lock a second connection holds (as
/// `sqlite3` with an open transaction would), with a short busy timeout.
async fn locked_store(name: &str, busy_ms: u64) -> (Store, sqlx::AnyConnection) {
    let path = temp_db(name);
    let store = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(busy_ms),
            ..StoreOptions::default()
        },
    )
    .await
    .expect("open");
    let mut blocker = store.connect().await.expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("take the write lock");
    (store, blocker)
}

/// Another process holds the write lock (as `sqlite3` with an open
/// transaction would): every commit fails meanwhile. Nothing is lost: the
/// rows wait, the run loop is told to refuse new calls once they are over
/// the limit, and everything lands when the lock goes.
#[tokio::test]
async fn rows_wait_while_the_database_is_locked_and_all_land_afterwards() {
    let (store, mut blocker) = locked_store("locked", 20).await;
    let cfg = WriterConfig {
        max_backlog: 5,
        first_retry: Duration::from_millis(10),
        max_retry: Duration::from_millis(50),
        ..WriterConfig::default()
    };
    let (queue, mut events, writer) = spawn_writer(store.clone(), cfg);
    for id in 1..=8 {
        queue.push(StoreOp::Session(record(id, CallState::Pending)));
        queue.push(StoreOp::Session(record(id, CallState::Ended)));
    }
    let over = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("told in time");
    assert_eq!(
        over,
        Some(StoreEvent::Backlog {
            over_limit: true,
            rows: 8
        })
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.next_id().await.expect("read while locked"),
        1,
        "nothing committed"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("release");
    let back = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("told in time");
    assert_eq!(
        back,
        Some(StoreEvent::Backlog {
            over_limit: false,
            rows: 0
        })
    );
    drop(queue);
    let report = writer.await.expect("writer");
    assert_eq!(
        report,
        WriterReport {
            written: 8,
            lost: 0
        }
    );
    let rows = store.live_rows().await.expect("rows");
    assert!(
        rows.is_empty(),
        "every row landed in its last state (ended)"
    );
    assert_eq!(store.next_id().await.expect("next"), 9);
}

/// Past four times `max_backlog`, rows of new calls are dropped (with an
/// error line) while rows of known calls are still taken; a store that
/// stays unwritable through the shutdown grace reports what it lost.
#[tokio::test]
async fn the_backlog_is_bounded_and_losses_are_counted() {
    // The lock is held to the end: nothing of this test is ever written.
    let (store, _blocker) = locked_store("cap", 10).await;
    let cfg = WriterConfig {
        max_backlog: 2,
        first_retry: Duration::from_millis(10),
        max_retry: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    let (queue, _events, writer) = spawn_writer(store.clone(), cfg);
    for id in 1..=10 {
        queue.push(StoreOp::Session(record(id, CallState::Pending)));
    }
    // A known row is still taken at the cap.
    queue.push(StoreOp::Session(record(1, CallState::Ended)));
    drop(queue);
    let report = writer.await.expect("writer");
    assert_eq!(
        report,
        WriterReport {
            written: 0,
            lost: 10
        },
        "2 dropped at the cap, 8 at shutdown"
    );
}

/// A NUL or line break a peer put in a Call-ID never reaches a column raw.
#[tokio::test]
async fn control_characters_are_stored_escaped() {
    for db in test_dbs("controls").await {
        let store = db.open().await;
        let mut r = record(1, CallState::Ended);
        r.sip_call_id = CallId::new("abc\0def\r\nInjected: x");
        r.end_detail = Some("SIP INVITE failed: \u{1b}[31mred".into());
        store.save(&[r]).await.expect("save");
        let (call_id, detail): (String, String) =
            sqlx::query_as("SELECT sip_call_id, end_detail FROM sessions WHERE id = 1")
                .fetch_one(&store.pool)
                .await
                .expect("read");
        assert_eq!(call_id, "abc\\u{0}def\\r\\nInjected: x");
        assert!(!detail.contains('\u{1b}'), "{detail}");
    }
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    for db in test_dbs("corrupt").await {
        let store = db.open().await;
        sqlx::query(
            "INSERT INTO sessions (id, jingle_sid, sip_call_id, direction, xmpp_jid, sip_uri, \
         gateway_jid, state, created_at, updated_at) VALUES (9, 's', 'c', 'xmpp-to-sip', 'j', \
         'u', 'g', 'active', 'yesterday', '2026-11-21T21:26:03.000Z')",
        )
        .execute(&store.pool)
        .await
        .expect("insert by hand");
        match store.live_sessions().await {
            Err(StoreError::Corrupt { id: 9, .. }) => {}
            other => panic!("expected a corrupt-row error, got {other:?}"),
        }
    }
}

#[test]
fn a_batch_folds_into_one_row_per_id() {
    let ops = vec![
        StoreOp::Session(record(1, CallState::Pending)),
        StoreOp::Session(record(2, CallState::Pending)),
        StoreOp::Dialog {
            id: 9,
            snapshot: "orphan".into(),
        },
        StoreOp::Session(record(1, CallState::Active)),
        StoreOp::Dialog {
            id: 1,
            snapshot: "d1".into(),
        },
        StoreOp::Session(record(1, CallState::Ended)),
    ];
    let (rows, orphans) = merge(&ops);
    let seen: Vec<_> = rows
        .iter()
        .map(|r| (r.record.id, r.record.state, r.dialog))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, CallState::Ended, Some("d1")),
            (2, CallState::Pending, None)
        ]
    );
    assert!(matches!(orphans.as_slice(), [Orphan::Dialog(9, "orphan")]));
}

#[test]
fn every_prepared_upsert_has_the_right_parameter_count() {
    assert_eq!(UPSERTS.len(), 10);
    for (k, sql) in UPSERTS.iter().enumerate() {
        let params = ROW_PARAMS << k;
        assert_eq!(sql.matches('$').count(), params);
        assert!(
            sql.contains(&format!("${params})")),
            "the last is ${params}"
        );
        assert!(!sql.contains(&format!("${}", params + 1)));
    }
}

/// Batches of every awkward size (not powers of two, larger than one
/// statement), ids repeated within and across batches, dialogs stored in one
/// batch and kept when a later batch rewrites the row without one.
#[tokio::test]
async fn odd_sized_batches_write_every_row_once_and_keep_dialogs() {
    for db in test_dbs("batches").await {
        let store = db.open().await;
        let mut ops = Vec::new();
        for id in 1..=1_300 {
            ops.push(StoreOp::Session(record(id, CallState::Pending)));
            ops.push(StoreOp::Session(record(id, CallState::Active)));
            if id % 3 == 0 {
                ops.push(StoreOp::Dialog {
                    id,
                    snapshot: format!("dialog {id}"),
                });
            }
        }
        for batch in ops.chunks(777) {
            store.apply(batch).await.expect("batch");
        }
        // A later batch ends every second call, with no dialog in it.
        let ends: Vec<StoreOp> = (1..=1_300)
            .filter(|id| id % 2 == 0)
            .map(|id| StoreOp::Session(record(id, CallState::Ended)))
            .collect();
        store.apply(&ends).await.expect("ends");
        // A dialog for a row written by an earlier batch.
        store
            .apply(&[StoreOp::Dialog {
                id: 1,
                snapshot: "late".into(),
            }])
            .await
            .expect("late dialog");

        let live = store.live_rows().await.expect("live");
        assert_eq!(live.len(), 650);
        for LiveRow {
            record: rec,
            dialog,
            ..
        } in &live
        {
            assert_eq!(rec.id % 2, 1);
            assert_eq!(rec.state, CallState::Active);
            let want = match rec.id {
                1 => Some("late".to_owned()),
                id if id % 3 == 0 => Some(format!("dialog {id}")),
                _ => None,
            };
            assert_eq!(dialog, &want, "row {}", rec.id);
        }
        let ended = store.session(6).await.expect("read").expect("row 6");
        assert_eq!(ended.state, CallState::Ended);
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM sessions")
            .fetch_one(&store.pool)
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, 1_300);
        let dialogs: i64 = sqlx::query("SELECT COUNT(sip_dialog) FROM sessions")
            .fetch_one(&store.pool)
            .await
            .expect("count")
            .get(0);
        assert_eq!(dialogs, 433 + 1);
    }
}

#[tokio::test]
async fn registrar_users_and_bindings_round_trip_and_expire() {
    use crate::registrar::{BindingRow, UserRow};
    for db in test_dbs("registrar").await {
        let store = db.open().await;
        let now = Millis(1_795_296_000_000);
        let user = UserRow {
            aor: "alice@example.net".into(),
            ha1_md5: "a".repeat(32),
            ha1_sha256: "b".repeat(64),
        };
        let before = store.users_version().await.expect("version");
        store.put_user(&user, now).await.expect("put");
        assert_ne!(store.users_version().await.expect("version"), before);
        assert_eq!(store.users().await.expect("users"), vec![user.clone()]);
        assert!(!format!("{user:?}").contains("aaaa"), "no HA1 in logs");
        let binding = |key: &str, expires: u64| BindingRow {
            aor: "alice@example.net".into(),
            key: key.into(),
            contact: "sip:alice@127.0.0.1:5070".into(),
            transport: "udp".into(),
            source: "127.0.0.1:5070".into(),
            expires_at: Millis(now.0 + expires),
        };
        for (key, expires) in [("k1", 60_000), ("k2", 1_000)] {
            store
                .put_binding("alice@example.net", key, Some(&binding(key, expires)), now)
                .await
                .expect("binding");
        }
        let later = Millis(now.0 + 2_000);
        assert_eq!(
            store.live_bindings(later).await.expect("live"),
            vec![binding("k1", 60_000)],
            "the expired one is gone"
        );
        store
            .put_binding("alice@example.net", "k1", None, later)
            .await
            .expect("removed");
        assert!(store.live_bindings(later).await.expect("live").is_empty());
        assert!(
            store
                .remove_user("alice@example.net")
                .await
                .expect("remove")
        );
        assert!(!store.remove_user("alice@example.net").await.expect("again"));
    }
}

#[tokio::test]
async fn media_relay_sticks_and_media_figures_follow_the_last_row_write() {
    for db in test_dbs("media").await {
        let store = db.open().await;
        let mut r = record(1, CallState::Pending);
        r.media_relay = Some("127.0.0.1:2223".into());
        store.save(std::slice::from_ref(&r)).await.expect("insert");
        // A later write without the relay (a record cloned before it was
        // known) leaves it as it is.
        let mut ended = r.clone();
        ended.media_relay = None;
        ended.state = CallState::Ended;
        let stats = MediaStats {
            packets_from_xmpp: 250,
            packets_from_sip: 251,
            errors: 1,
        };
        store
            .apply(&[StoreOp::Session(ended), StoreOp::Media { id: 1, stats }])
            .await
            .expect("end and figures in one batch");
        let row: (Option<String>, Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT media_relay, media_packets_from_xmpp, media_packets_from_sip, media_errors \
         FROM sessions WHERE id = 1",
        )
        .fetch_one(&store.pool)
        .await
        .expect("row");
        assert_eq!(
            row,
            (Some("127.0.0.1:2223".into()), Some(250), Some(251), Some(1))
        );
        store.close().await;
    }
}

// ---- reporting (migration 0009) and retention -----------------------------

use crate::report::{CallFilter, Outcome, parse_since};

/// `at` plus `s` seconds.
fn secs(at: Millis, s: u64) -> Millis {
    at.plus_ms(s * 1000)
}

/// An ended call: answered `answered` seconds after its start (or never),
/// ended 10 s after its start.
fn ended(
    id: i64,
    direction: Direction,
    answered: Option<u64>,
    reason: &str,
    status: Option<u16>,
    by: EndedBy,
) -> SessionRecord {
    let mut r = record(id, CallState::Ended);
    r.direction = direction;
    r.answered_at = answered.map(|s| secs(r.created_at, s));
    r.ended_at = Some(secs(r.created_at, 10));
    r.end_reason = Some(reason.into());
    r.sip_status = status;
    r.ended_by = Some(by);
    r
}

/// The view's outcome for each way a call ends that the core writes
/// (crates/call: `Call::end` and its callers), both directions.
#[tokio::test]
async fn call_records_classify_every_way_a_call_ends() {
    use Direction::{SipToXmpp as S2x, XmppToSip as X2s};
    use EndedBy::{Gateway, Sip, Xmpp};
    for db in test_dbs("outcomes").await {
        let store = db.open().await;
        let cases: Vec<(&str, SessionRecord, Outcome)> = vec![
            (
                "ringing",
                record(1, CallState::Ringing),
                Outcome::InProgress,
            ),
            (
                "answered, BYE",
                ended(2, X2s, Some(2), "success", Some(200), Sip),
                Outcome::Answered,
            ),
            (
                "answered, lost later",
                ended(3, S2x, Some(1), "connectivity-error", Some(200), Gateway),
                Outcome::Answered,
            ),
            (
                "XMPP caller cancels",
                ended(4, X2s, None, "cancel", Some(487), Xmpp),
                Outcome::Cancelled,
            ),
            (
                "XMPP caller hangs up with success",
                ended(5, X2s, None, "success", Some(487), Xmpp),
                Outcome::Cancelled,
            ),
            (
                "SIP caller CANCELs",
                ended(6, S2x, None, "cancel", Some(487), Sip),
                Outcome::Cancelled,
            ),
            (
                "SIP callee 486",
                ended(7, X2s, None, "busy", Some(486), Sip),
                Outcome::Busy,
            ),
            (
                "XMPP callee busy",
                ended(8, S2x, None, "busy", Some(486), Xmpp),
                Outcome::Busy,
            ),
            (
                "XMPP callee alternative-session",
                ended(9, S2x, None, "alternative-session", Some(486), Xmpp),
                Outcome::Busy,
            ),
            (
                "XMPP callee declines",
                ended(10, S2x, None, "decline", Some(603), Xmpp),
                Outcome::Rejected,
            ),
            (
                "SIP callee 403",
                ended(11, X2s, None, "security-error", Some(403), Sip),
                Outcome::Rejected,
            ),
            (
                "XMPP -> SIP ring timeout (CANCEL, 487)",
                ended(12, X2s, None, "timeout", Some(487), Gateway),
                Outcome::NoAnswer,
            ),
            (
                "SIP callee 408",
                ended(13, X2s, None, "timeout", Some(408), Sip),
                Outcome::NoAnswer,
            ),
            (
                "SIP -> XMPP ring timeout (480)",
                ended(14, S2x, None, "timeout", Some(480), Gateway),
                Outcome::NoAnswer,
            ),
            (
                "SIP callee 404",
                ended(15, X2s, None, "gone", Some(404), Sip),
                Outcome::Unavailable,
            ),
            (
                "no route to an XMPP user (404 by the gateway)",
                ended(16, S2x, None, "gone", Some(404), Gateway),
                Outcome::Unavailable,
            ),
            (
                "the XMPP callee went away while ringing (480)",
                ended(17, S2x, None, "connectivity-error", Some(480), Gateway),
                Outcome::Unavailable,
            ),
            (
                "SIP callee 503",
                ended(18, X2s, None, "general-error", Some(503), Sip),
                Outcome::Failed,
            ),
            (
                "refused with 503 by the gateway",
                ended(19, S2x, None, "connectivity-error", Some(503), Gateway),
                Outcome::Failed,
            ),
            (
                "SDP that cannot be mapped",
                ended(20, X2s, None, "incompatible-parameters", Some(488), Sip),
                Outcome::Failed,
            ),
            (
                "unanswered when the gateway restarted",
                ended(21, S2x, None, "connectivity-error", Some(500), Gateway),
                Outcome::Failed,
            ),
            (
                "XMPP caller offline before the INVITE (no SIP status)",
                ended(22, X2s, None, "connectivity-error", None, Gateway),
                Outcome::Failed,
            ),
        ];
        let rows: Vec<SessionRecord> = cases.iter().map(|(_, r, _)| r.clone()).collect();
        store.save(&rows).await.expect("save");
        let records = store
            .call_records(&CallFilter::default())
            .await
            .expect("records");
        assert_eq!(records.len(), cases.len());
        for (what, row, outcome) in &cases {
            let rec = records
                .iter()
                .find(|c| c.id == row.id)
                .expect("every row is a record");
            assert_eq!(rec.outcome, *outcome, "{what}");
        }
        let seen: std::collections::HashSet<Outcome> = cases.iter().map(|(_, _, o)| *o).collect();
        assert_eq!(seen.len(), Outcome::ALL.len(), "every outcome is exercised");
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}

/// Parties by direction, times read back, setup and duration to the
/// millisecond (julianday() of the stored text, rounded by the view).
#[tokio::test]
async fn call_records_have_parties_times_and_durations() {
    for db in test_dbs("records").await {
        let store = db.open().await;
        let start = Millis(1_795_296_363_123);
        let mut out = ended(
            1,
            Direction::XmppToSip,
            None,
            "success",
            Some(200),
            EndedBy::Sip,
        );
        out.created_at = start;
        out.answered_at = Some(start.plus_ms(1_877));
        out.ended_at = Some(start.plus_ms(61_877 + 3_600_000));
        out.sip_peer = Some("trunk1".into());
        out.media_relay = Some("127.0.0.1:2223".into());
        let mut inbound = ended(
            2,
            Direction::SipToXmpp,
            None,
            "decline",
            Some(603),
            EndedBy::Xmpp,
        );
        inbound.created_at = start.plus_ms(5_000);
        store
            .apply(&[
                StoreOp::Session(out.clone()),
                StoreOp::Session(inbound),
                StoreOp::Media {
                    id: 1,
                    stats: MediaStats {
                        packets_from_xmpp: 3_000,
                        packets_from_sip: 2_999,
                        errors: 2,
                    },
                },
            ])
            .await
            .expect("save");
        let records = store
            .call_records(&CallFilter::default())
            .await
            .expect("records");
        let [second, first] = records.as_slice() else {
            panic!("two records, got {records:?}");
        };
        assert_eq!(second.id, 2, "newest first");
        assert_eq!(
            (second.caller.as_str(), second.callee.as_str()),
            ("sip:romeo@example.net", "juliet@example.com/balcony")
        );
        assert_eq!((second.setup_s, second.duration_s), (None, None));
        assert_eq!(second.outcome, Outcome::Rejected);
        assert_eq!(second.ended_by, Some(EndedBy::Xmpp));

        assert_eq!(
            (first.caller.as_str(), first.callee.as_str()),
            ("juliet@example.com/balcony", "sip:romeo@example.net")
        );
        assert_eq!(first.direction, Direction::XmppToSip);
        assert_eq!(first.started_at, start);
        assert_eq!(first.answered_at, out.answered_at);
        assert_eq!(first.ended_at, out.ended_at);
        assert_eq!(first.setup_s, Some(1.877));
        assert_eq!(first.duration_s, Some(3_660.0));
        assert_eq!(first.outcome, Outcome::Answered);
        assert_eq!(first.sip_status, Some(200));
        assert_eq!(first.end_reason.as_deref(), Some("success"));
        assert_eq!(first.sip_peer.as_deref(), Some("trunk1"));
        assert_eq!(first.media_relay.as_deref(), Some("127.0.0.1:2223"));
        assert_eq!(
            (
                first.media_packets_from_xmpp,
                first.media_packets_from_sip,
                first.media_errors
            ),
            (Some(3_000), Some(2_999), Some(2))
        );
        assert_eq!(first.jingle_sid, Sid::new("sid1"));
        assert_eq!(first.sip_call_id, CallId::new("sid1@sip.example.com"));
    }
}

#[tokio::test]
async fn call_records_since_and_limit() {
    for db in test_dbs("since").await {
        let store = db.open().await;
        let base = Millis(1_795_296_363_000);
        let rows: Vec<SessionRecord> = (1..=10)
            .map(|id| {
                let mut r = record(id, CallState::Ended);
                // One a minute, the last one first in id order.
                r.created_at = secs(base, 60 * (10 - id.unsigned_abs()));
                r
            })
            .collect();
        store.save(&rows).await.expect("save");
        let ids = |records: Vec<crate::report::CallRecord>| -> Vec<i64> {
            records.iter().map(|r| r.id).collect()
        };
        let all = store
            .call_records(&CallFilter::default())
            .await
            .expect("all");
        assert_eq!(ids(all), (1..=10).collect::<Vec<_>>(), "newest first");
        let since = store
            .call_records(&CallFilter {
                since: Some(secs(base, 6 * 60)),
                limit: None,
            })
            .await
            .expect("since");
        assert_eq!(ids(since), vec![1, 2, 3, 4], "created at or after");
        let limited = store
            .call_records(&CallFilter {
                since: Some(secs(base, 60)),
                limit: Some(3),
            })
            .await
            .expect("limited");
        assert_eq!(ids(limited), vec![1, 2, 3]);
        let none = store
            .call_records(&CallFilter {
                since: Some(secs(base, 3600)),
                limit: Some(3),
            })
            .await
            .expect("none");
        assert!(none.is_empty());
    }
}

fn wall_clock() -> Millis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    Millis(u64::try_from(ms).expect("fits"))
}

#[tokio::test]
async fn active_sessions_are_the_live_calls_with_their_age() {
    for db in test_dbs("active").await {
        let store = db.open().await;
        let now = wall_clock();
        let mut ringing = record(1, CallState::Ringing);
        ringing.created_at = Millis(now.0 - 90_000);
        ringing.direction = Direction::SipToXmpp;
        let mut talking = record(2, CallState::Active);
        talking.created_at = Millis(now.0 - 600_000);
        talking.answered_at = Some(Millis(now.0 - 540_000));
        talking.hold = Hold {
            xmpp: true,
            sip: false,
        };
        talking.sip_peer = Some("trunk1".into());
        let mut over = ended(
            3,
            Direction::XmppToSip,
            Some(1),
            "success",
            Some(200),
            EndedBy::Sip,
        );
        over.created_at = Millis(now.0 - 30_000);
        store.save(&[ringing, talking, over]).await.expect("save");
        let active = store.active_sessions().await.expect("active");
        let [first, second] = active.as_slice() else {
            panic!("two live calls, got {active:?}");
        };
        assert_eq!(first.id, 2, "oldest first");
        assert_eq!(first.state, CallState::Active);
        assert!((600..=630).contains(&first.age_s), "{first:?}");
        assert!(
            first.talk_s.is_some_and(|t| (540..=570).contains(&t)),
            "{first:?}"
        );
        assert_eq!(
            first.hold,
            Hold {
                xmpp: true,
                sip: false
            }
        );
        assert_eq!(first.sip_peer.as_deref(), Some("trunk1"));
        assert_eq!(second.id, 1);
        assert_eq!(second.direction, Direction::SipToXmpp);
        assert_eq!(second.state, CallState::Ringing);
        assert!((90..=120).contains(&second.age_s), "{second:?}");
        assert_eq!(second.talk_s, None);
    }
}

/// Only ended rows older than the cut-off go, oldest first, in batches;
/// a live row stays whatever its times say; ids are not reused.
#[tokio::test]
async fn prune_ended_deletes_old_ended_rows_in_batches_only() {
    for db in test_dbs("prune").await {
        let store = db.open().await;
        let base = Millis(1_795_296_363_000);
        let mut rows = Vec::new();
        // 1..=10 ended a minute apart; 11 live (created long before the
        // cut-off, and even carrying an old ended_at, which the core never
        // writes on a live row).
        for id in 1..=10_i64 {
            let mut r = record(id, CallState::Ended);
            r.ended_at = Some(secs(base, 60 * id.unsigned_abs()));
            rows.push(r);
        }
        let mut live = record(11, CallState::Active);
        live.ended_at = Some(base);
        rows.push(live);
        store.save(&rows).await.expect("save");

        // Strictly before 7 minutes: rows 1..=6, in batches of 4 (one full,
        // one short).
        let deleted = store
            .prune_ended_in_batches(secs(base, 7 * 60), 4, Duration::from_millis(1))
            .await
            .expect("prune");
        assert_eq!(deleted, 6);
        let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .expect("ids");
        assert_eq!(left, vec![7, 8, 9, 10, 11]);
        // Exactly one batch's worth: the loop stops on the empty one after it.
        let deleted = store
            .prune_ended_in_batches(secs(base, 11 * 60), 4, Duration::from_millis(1))
            .await
            .expect("prune");
        assert_eq!(deleted, 4);
        assert_eq!(
            store.prune_ended(secs(base, 3600)).await.expect("again"),
            0,
            "nothing else is ended"
        );
        let live = store.live_rows().await.expect("live");
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].record.id, 11);

        // With the newest rows gone, the next call still gets a new id.
        sqlx::query("DELETE FROM sessions")
            .execute(&store.pool)
            .await
            .expect("empty the table");
        assert_eq!(store.next_id().await.expect("next id"), 12);
    }
}

#[tokio::test]
async fn prune_ended_works_through_a_large_table() {
    for db in test_dbs("prune-large").await {
        let store = db.open().await;
        let old = Millis(1_795_296_363_000);
        let ops: Vec<StoreOp> = (1..=1_200)
            .map(|id| {
                let mut r = record(id, CallState::Ended);
                r.ended_at = Some(if id % 4 == 0 {
                    secs(old, 86_400 * 30)
                } else {
                    old
                });
                StoreOp::Session(r)
            })
            .collect();
        store.apply(&ops).await.expect("save");
        let deleted = store.prune_ended(secs(old, 86_400)).await.expect("prune");
        assert_eq!(deleted, 900);
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(count, 300);
    }
}

#[test]
fn since_takes_dates_times_and_durations() {
    let now = parse_iso8601("2026-11-21T21:45:03.123Z").expect("now");
    let at = |s: &str| parse_iso8601(s).expect("time");
    for (text, want) in [
        ("24h", at("2026-11-20T21:45:03.123Z")),
        ("7d", at("2026-11-14T21:45:03.123Z")),
        ("90m", at("2026-11-21T20:15:03.123Z")),
        ("30s", at("2026-11-21T21:44:33.123Z")),
        ("2w", at("2026-11-07T21:45:03.123Z")),
        ("2026-11-01", at("2026-11-01T00:00:00.000Z")),
        ("2026-11-01T08:30", at("2026-11-01T08:30:00.000Z")),
        ("2026-11-01 08:30:15", at("2026-11-01T08:30:15.000Z")),
        ("2026-11-01T08:30:15Z", at("2026-11-01T08:30:15.000Z")),
        ("2026-11-01T08:30:15.5", at("2026-11-01T08:30:15.500Z")),
        ("2026-11-01T08:30:15.123Z", at("2026-11-01T08:30:15.123Z")),
        (" 1h ", at("2026-11-21T20:45:03.123Z")),
    ] {
        assert_eq!(parse_since(text, now), Some(want), "{text}");
    }
    assert_eq!(
        parse_since("100000000w", now),
        Some(Millis(0)),
        "before 1970"
    );
    for bad in [
        "",
        "h",
        "24",
        "-1h",
        "+1h",
        "1.5h",
        "24x",
        "yesterday",
        "2026-13-01",
        "2026-11-01T25:00",
        "2026-11-01T08:30:15.1234",
        "2026-+1-01",
        "99999999999999999999d",
    ] {
        assert_eq!(parse_since(bad, now), None, "{bad:?}");
    }
}

/// The views compute with julianday() on the stored text: the bundled
/// SQLite reads `YYYY-MM-DDTHH:MM:SS.sssZ` to the millisecond (the e2e
/// test runs the same views with Debian's sqlite3 3.40).
#[tokio::test]
async fn sqlite_date_functions_read_the_stored_format() {
    let store = Store::open(&temp_db("dates")).await.expect("open");
    let t = Millis(1_795_296_363_123);
    let (version, unix, diff): (String, f64, f64) = sqlx::query_as(
        "SELECT sqlite_version(), (julianday($1) - 2440587.5) * 86400, \
         ROUND((julianday($2) - julianday($3)) * 86400, 3)",
    )
    .bind(iso8601(t))
    .bind(iso8601(t.plus_ms(61_877)))
    .bind(iso8601(t))
    .fetch_one(&store.pool)
    .await
    .expect("query");
    let minor: Vec<u32> = version
        .split('.')
        .take(2)
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert!(minor >= vec![3, 40], "SQLite {version}");
    assert!((unix - 1_795_296_363.123).abs() < 0.001, "{unix}");
    assert_eq!(diff, 61.877);
}

/// The views and retention read through indexes, not whole-table scans.
#[tokio::test]
async fn reports_and_retention_use_the_indexes() {
    let store = Store::open(&temp_db("plans")).await.expect("open");
    for (sql, index) in [
        ("SELECT * FROM active_sessions", "sessions_live"),
        (
            "SELECT * FROM call_records WHERE started_at >= '2026-11-21' \
             ORDER BY started_at DESC, id DESC LIMIT 10",
            "sessions_by_created",
        ),
        (
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE state = 'ended' AND ended_at < '2026-11-21' ORDER BY ended_at LIMIT 10)",
            "sessions_by_ended",
        ),
        (
            "SELECT outcome, COUNT(*) FROM call_records \
             WHERE ended_at >= '2026-11-21' GROUP BY outcome",
            "sessions_by_ended",
        ),
    ] {
        let plan: Vec<String> =
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&store.pool)
                .await
                .expect("plan")
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
        assert!(
            plan.iter().any(|line| line.contains(index)),
            "{sql}: {plan:?}"
        );
    }
}

// ---- several instances on one store (migration 0010) ----------------------

fn instance(n: u32) -> Instance {
    Instance::new(n).expect("instance number")
}

/// docs/decisions/0010-scale-out.md §4–5: two gateways on one database
/// number their calls in ranges of their own and each restores only its
/// own live rows; ids are not reused after retention, per instance.
#[tokio::test]
async fn instances_number_their_own_ids_and_restore_only_their_own_rows() {
    for db in test_dbs("instances").await {
        let one = db.open_as(instance(1)).await;
        let two = db.open_as(instance(2)).await;
        assert_eq!(one.next_id().await.expect("next"), (1 << 40) + 1);
        assert_eq!(two.next_id().await.expect("next"), (2 << 40) + 1);
        let a = record((1 << 40) + 1, CallState::Active);
        let b = record((2 << 40) + 1, CallState::Active);
        let mut c = record((2 << 40) + 2, CallState::Ended);
        c.ended_at = Some(Millis(1_795_296_363_000));
        one.save(std::slice::from_ref(&a)).await.expect("one");
        two.save(&[b.clone(), c]).await.expect("two");

        let ids = |rows: Vec<LiveRow>| rows.iter().map(|r| r.record.id).collect::<Vec<_>>();
        assert_eq!(ids(one.live_rows().await.expect("live")), vec![a.id]);
        assert_eq!(ids(two.live_rows().await.expect("live")), vec![b.id]);
        assert_eq!(one.next_id().await.expect("next"), (1 << 40) + 2);
        assert_eq!(two.next_id().await.expect("next"), (2 << 40) + 3);
        // A lone gateway (instance 0) on the same database sees neither.
        let zero = db.open().await;
        assert!(zero.live_rows().await.expect("live").is_empty());
        assert_eq!(zero.next_id().await.expect("next"), 1);

        // Retention (run by any instance) deletes instance 2's newest row;
        // instance 2 still never hands its id out again.
        assert_eq!(
            one.prune_ended(Millis(1_795_296_364_000))
                .await
                .expect("prune"),
            1
        );
        assert_eq!(two.next_id().await.expect("next"), (2 << 40) + 3);
        assert_eq!(one.next_id().await.expect("next"), (1 << 40) + 2);
        // Reports see every instance's calls.
        let all = zero
            .call_records(&crate::report::CallFilter::default())
            .await
            .expect("records");
        assert_eq!(all.len(), 2);
    }
}

/// docs/decisions/0010-scale-out.md: an instance number is held by one
/// gateway at a time; the same gateway takes it back at once after a
/// crash, another only once the holder has been silent for STALE_AFTER or
/// released it.
#[tokio::test]
async fn an_instance_number_is_held_by_one_gateway_at_a_time() {
    use crate::instance::STALE_AFTER;
    for db in test_dbs("claims").await {
        let store = db.open_as(instance(3)).await;
        let t0 = Millis(1_795_296_363_000);
        assert_eq!(
            store
                .claim_instance("sip1.example.com", t0)
                .await
                .expect("claim"),
            Claim::Taken
        );
        // sip1 crashes and comes back (kill -9): its own number, at once.
        assert_eq!(
            store
                .claim_instance("sip1.example.com", t0.plus_ms(500))
                .await
                .expect("again"),
            Claim::Taken
        );
        // Another gateway configured with the same number is refused.
        let t1 = t0.plus_ms(10_000);
        assert_eq!(
            store
                .claim_instance("sip2.example.com", t1)
                .await
                .expect("other"),
            Claim::HeldBy {
                owner: "sip1.example.com".into(),
                seen_ago: Duration::from_millis(9_500),
            }
        );
        assert!(store.heartbeat("sip1.example.com", t1).await.expect("beat"));
        assert!(
            !store
                .heartbeat("sip2.example.com", t1)
                .await
                .expect("not its")
        );
        // Silent past STALE_AFTER: the number may be taken over, and the
        // old holder learns it from its next heartbeat.
        let stale = t1.plus_ms(STALE_AFTER.as_millis() as u64 + 1);
        assert_eq!(
            store
                .claim_instance("sip2.example.com", stale)
                .await
                .expect("take over"),
            Claim::Taken
        );
        assert!(
            !store
                .heartbeat("sip1.example.com", stale)
                .await
                .expect("lost")
        );
        // Released at a clean stop: free at once.
        store.release("sip2.example.com").await.expect("release");
        assert_eq!(
            store
                .claim_instance("sip1.example.com", stale.plus_ms(1))
                .await
                .expect("free"),
            Claim::Taken
        );
        // Other numbers are independent.
        let other = db.open_as(instance(4)).await;
        assert_eq!(
            other
                .claim_instance("sip2.example.com", stale)
                .await
                .expect("claim"),
            Claim::Taken
        );
    }
}

/// Every SQLite migration has a PostgreSQL twin of the same version and
/// name, and nothing else: the two schemas move together.
#[test]
fn postgres_migrations_are_twins_of_the_sqlite_ones() {
    let names = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    let sqlite = names(&SQLITE_MIGRATIONS);
    assert!(sqlite.len() >= 10);
    assert_eq!(sqlite, names(&POSTGRES_MIGRATIONS));
}

#[test]
fn locations_are_told_apart_and_shown_without_passwords() {
    let pg = Location::parse("postgres://stox:s3cret@db.example:5432/stox?sslmode=require");
    assert_eq!(pg.backend(), "postgres");
    assert_eq!(
        pg.to_string(),
        "postgres://stox:***@db.example:5432/stox?sslmode=require"
    );
    assert!(!format!("{pg:?}").contains("s3cret"));
    assert_eq!(
        Location::parse("postgresql://db/stox").to_string(),
        "postgresql://db/stox"
    );
    let file = Location::parse("/var/lib/stox-gateway/sessions.db");
    assert_eq!(file.backend(), "sqlite");
    assert_eq!(Location::parse("postgres.db").backend(), "sqlite");
}

/// A file name with `?`, `#`, `%` and spaces is still that file.
#[tokio::test]
async fn sqlite_paths_with_url_characters_open_the_right_file() {
    let dir = temp_db("odd-name");
    let path = dir.with_file_name("a b?c#d%20e.db");
    let store = Store::open(&path).await.expect("open");
    store
        .save(&[record(1, CallState::Active)])
        .await
        .expect("save");
    store.close().await;
    assert!(path.exists(), "{}", path.display());
}
