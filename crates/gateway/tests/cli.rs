//! The binary's command line: a missing or invalid config exits non-zero with
//! one clear line naming the problem.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stox-gateway"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stox-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn missing_config_file_is_one_line_and_exit_2() {
    let (code, err) = run(&["--config", "/nonexistent/stox.toml"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/stox.toml"), "{err}");
}

#[test]
fn invalid_config_names_the_problem() {
    let example = include_str!("../../../config/gateway.toml");
    for (name, text, needle) in [
        (
            "nosecret",
            example.replace("secret = \"s3cret\"", ""),
            "secret",
        ),
        ("typo", example.replace("[store]", "[stor]"), "stor"),
        (
            "nolisteners",
            example
                .replace("udp = \"127.0.0.1:5060\"", "")
                .replace("tcp = \"127.0.0.1:5060\"", "")
                .replace("ws  = \"127.0.0.1:8080\"", ""),
            "listener",
        ),
    ] {
        let path = temp_config(name, &text);
        let (code, err) = run(&["--config", path.to_str().expect("utf-8 path")]);
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {needle:?} in {err}");
    }
}

#[test]
fn no_arguments_is_a_usage_error() {
    let (code, err) = run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
}

// ---- check-config and sessions (docs/sql.md) --------------------------------

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_out(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_stox-gateway"))
        .args(args)
        .output()
        .expect("the binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The example config with its database in a fresh directory of its own.
fn example_with_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("stox-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("gw.db");
    let text = include_str!("../../../config/gateway.toml").replace(
        "database = \"stox-gateway.db\"",
        &format!("database = \"{}\"", db.display()),
    );
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).expect("write config");
    (config, db)
}

#[test]
fn check_config_prints_ok_or_the_problem() {
    let (config, _) = example_with_db("check-ok");
    let path = config.to_str().expect("utf-8 path");
    let ok = run_out(&["--config", path, "check-config"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.stdout.trim(), format!("stox-gateway: config {path} OK"));
    assert!(ok.stderr.is_empty(), "{}", ok.stderr);

    let example = std::fs::read_to_string(&config).expect("read");
    for (name, text, needles) in [
        (
            "server",
            example.replace("server = \"127.0.0.1:5347\"", "server = \"nohost\""),
            vec!["xmpp.server", "nohost"],
        ),
        (
            "unknown",
            example.replace("[store]", "[stor]"),
            vec!["stor"],
        ),
        (
            "nodir",
            example.replace(
                &format!("{}", config.with_file_name("gw.db").display()),
                "/nonexistent/dir/gw.db",
            ),
            vec!["store.database", "/nonexistent/dir"],
        ),
    ] {
        let bad = temp_config(&format!("check-{name}"), &text);
        let bad = bad.to_str().expect("utf-8 path");
        let out = run_out(&["--config", bad, "check-config"]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{name}: {}",
            out.stderr
        );
        for needle in needles {
            assert!(
                out.stderr.contains(needle),
                "{name}: {needle:?} in {}",
                out.stderr
            );
        }
        if name != "nodir" {
            assert!(
                out.stderr.contains(bad),
                "{name}: the file in {}",
                out.stderr
            );
        }
    }
    let missing = run_out(&["--config", "/nonexistent/stox.toml", "check-config"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("/nonexistent/stox.toml"),
        "{}",
        missing.stderr
    );
}

fn now_ms() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    u64::try_from(ms).expect("fits")
}

/// Three calls, stored the way the gateway stores them: an answered call
/// an hour ago, a busy one a minute ago, one ringing now.
fn store_three_calls(db: &std::path::Path) {
    use stox_call::{CallState, Direction, EndedBy, Hold, Millis, SessionRecord};
    use stox_mapping::ids::{CallId, Sid};
    let now = now_ms();
    let call = |id: i64, created: u64, state: CallState| SessionRecord {
        id,
        jingle_sid: Sid::new(format!("sid{id}")),
        sip_call_id: CallId::new(format!("sid{id}@sip.example.com")),
        direction: Direction::XmppToSip,
        xmpp_jid: "juliet@example.com/balcony".into(),
        sip_uri: "sip:romeo@example.net".into(),
        gateway_jid: "romeo\\40example.net@sip.example.com".into(),
        state,
        created_at: Millis(created),
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
        updated_at: Millis(created),
    };
    let mut answered = call(1, now - 3_600_000, CallState::Ended);
    answered.answered_at = Some(Millis(now - 3_598_000));
    answered.ended_at = Some(Millis(now - 3_538_000));
    answered.end_reason = Some("success".into());
    answered.sip_status = Some(200);
    answered.ended_by = Some(EndedBy::Sip);
    answered.sip_peer = Some("trunk1".into());
    let mut busy = call(2, now - 60_000, CallState::Ended);
    busy.direction = Direction::SipToXmpp;
    busy.ended_at = Some(Millis(now - 58_000));
    busy.end_reason = Some("busy".into());
    busy.sip_status = Some(486);
    busy.ended_by = Some(EndedBy::Xmpp);
    let ringing = call(3, now - 5_000, CallState::Ringing);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = stox_store::Store::open(db).await.expect("open");
        store.save(&[answered, busy, ringing]).await.expect("save");
        store.close().await;
    });
}

/// The cells of a left-aligned column: from where its header starts to
/// where the next one starts.
fn column<'a>(lines: &[&'a str], name: &str) -> Vec<&'a str> {
    let header = lines[0];
    let start = header.find(name).expect("the column");
    let end = header[start + name.len()..]
        .find(|c: char| !c.is_whitespace())
        .map(|i| start + name.len() + i);
    lines[1..]
        .iter()
        .map(|line| {
            let cell = match end {
                Some(end) => line.get(start..end.min(line.len())),
                None => line.get(start..),
            };
            cell.unwrap_or("").trim()
        })
        .collect()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn sessions_prints_the_call_records_and_the_live_calls() {
    let (config, db) = example_with_db("sessions");
    let config = config.to_str().expect("utf-8 path");
    let none = run_out(&["--config", config, "sessions"]);
    assert_eq!(none.code, 1, "no database yet: {}", none.stdout);
    assert!(
        none.stderr.contains("store.database") && none.stderr.contains("does not exist"),
        "{}",
        none.stderr
    );
    assert!(!db.exists(), "sessions does not create the database");
    store_three_calls(&db);

    let table = run_out(&["--config", config, "sessions"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", table.stdout);
    assert!(
        lines[0].trim_start().starts_with("ID  STARTED (UTC)"),
        "{}",
        lines[0]
    );
    // Newest first, each value under its header.
    assert_eq!(
        column(&lines, "OUTCOME"),
        ["in-progress", "busy", "answered"]
    );
    assert_eq!(
        column(&lines, "CALLER"),
        [
            "juliet@example.com/balcony",
            "sip:romeo@example.net",
            "juliet@example.com/balcony"
        ]
    );
    assert_eq!(column(&lines, "PEER"), ["", "", "trunk1"]);
    // Numbers are aligned right: they end where their header ends.
    let end = lines[0].find("DURATION_S").expect("a DURATION_S column") + "DURATION_S".len();
    assert_eq!(lines[3].get(end - 4..end), Some("60.0"), "{}", table.stdout);

    let json = run_out(&["--config", config, "sessions", "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let records = json_lines(&json.stdout);
    assert_eq!(records.len(), 3);
    let first = &records[2];
    assert_eq!(first["id"], 1);
    assert_eq!(first["outcome"], "answered");
    assert_eq!(first["caller"], "juliet@example.com/balcony");
    assert_eq!(first["callee"], "sip:romeo@example.net");
    assert_eq!(first["setup_s"], 2.0);
    assert_eq!(first["duration_s"], 60.0);
    assert_eq!(first["sip_status"], 200);
    assert_eq!(first["ended_by"], "sip");
    assert_eq!(first["sip_peer"], "trunk1");
    assert!(first["media_relay"].is_null());
    assert!(
        first["started_at"]
            .as_str()
            .is_some_and(|t| t.len() == 24 && t.ends_with('Z'))
    );
    assert_eq!(records[1]["outcome"], "busy");
    assert_eq!(records[1]["direction"], "sip-to-xmpp");

    // --since as a duration and as a date, --limit.
    let recent = run_out(&["--config", config, "sessions", "--json", "--since", "10m"]);
    let ids: Vec<i64> = json_lines(&recent.stdout)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, [3, 2], "{}", recent.stderr);
    let future = run_out(&[
        "--config",
        config,
        "sessions",
        "--json",
        "--since",
        "2999-01-01",
    ]);
    assert_eq!(
        (future.code, future.stdout.as_str()),
        (0, ""),
        "{}",
        future.stderr
    );
    let old = run_out(&[
        "--config",
        config,
        "sessions",
        "--json",
        "--since",
        "2000-01-01T00:00:00Z",
        "--limit",
        "1",
    ]);
    let ids: Vec<i64> = json_lines(&old.stdout)
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, [3], "{}", old.stderr);

    let active = run_out(&["--config", config, "sessions", "--active"]);
    assert_eq!(active.code, 0, "{}", active.stderr);
    let lines: Vec<&str> = active.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", active.stdout);
    assert!(
        lines[0].contains("STATE") && lines[0].contains("AGE_S"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("ringing"), "{}", lines[1]);
    let live = run_out(&["--config", config, "sessions", "--active", "--json"]);
    let live = json_lines(&live.stdout);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], 3);
    assert_eq!(live[0]["state"], "ringing");
    assert!(
        live[0]["age_s"]
            .as_i64()
            .is_some_and(|a| (5..60).contains(&a)),
        "{}",
        live[0]
    );
    assert!(live[0]["talk_s"].is_null());

    let bad = run_out(&["--config", config, "sessions", "--since", "yesterday"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--since") && bad.stderr.contains("yesterday"),
        "{}",
        bad.stderr
    );
    let both = run_out(&["--config", config, "sessions", "--active", "--since", "1h"]);
    assert_eq!(
        both.code, 2,
        "--active lists every live call: {}",
        both.stderr
    );
}
