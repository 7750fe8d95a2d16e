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
    let path = temp_db("upsert");
    let store = Store::open(&path).await.expect("open");
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
    let again = Store::open(&path).await.expect("reopen");
    assert_eq!(again.next_id().await.expect("next id"), 3);
}

#[tokio::test]
async fn writer_drains_the_queue_in_order() {
    let path = temp_db("writer");
    let store = Store::open(&path).await.expect("open");
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

/// A store on a fresh file whose write lock a second connection holds (as
/// `sqlite3` with an open transaction would), with a short busy timeout.
async fn locked_store(name: &str, busy_ms: u64) -> (Store, sqlx::SqliteConnection) {
    let path = temp_db(name);
    let store = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(busy_ms),
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
    let path = temp_db("controls");
    let store = Store::open(&path).await.expect("open");
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

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    let path = temp_db("corrupt");
    let store = Store::open(&path).await.expect("open");
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
        assert_eq!(sql.matches('?').count(), ROW_PARAMS << k);
    }
}

/// Batches of every awkward size (not powers of two, larger than one
/// statement), ids repeated within and across batches, dialogs stored in one
/// batch and kept when a later batch rewrites the row without one.
#[tokio::test]
async fn odd_sized_batches_write_every_row_once_and_keep_dialogs() {
    let path = temp_db("batches");
    let store = Store::open(&path).await.expect("open");
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

#[tokio::test]
async fn registrar_users_and_bindings_round_trip_and_expire() {
    use crate::registrar::{BindingRow, UserRow};
    let store = Store::open(&temp_db("registrar")).await.expect("open");
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

#[tokio::test]
async fn media_relay_sticks_and_media_figures_follow_the_last_row_write() {
    let path = temp_db("media");
    let store = Store::open(&path).await.expect("open");
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
