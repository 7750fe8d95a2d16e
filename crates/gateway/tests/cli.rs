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
