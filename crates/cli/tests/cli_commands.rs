//! The `clawgate` CLI as a client of the real gateway: output, exit codes, hints.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::GatewayProcess;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn cli(home: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("CLAWGATE_HOME", home)
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("CLAWGATE_CONFIG");
    match url {
        Some(u) => cmd.env("CLAWGATE_GATEWAY_URL", u),
        None => cmd.env_remove("CLAWGATE_GATEWAY_URL"),
    };
    cmd.output().expect("run clawgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn gateway_call_finds_the_local_token_by_itself() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let url = gw.ws_url();
    let out = cli(&gw.home_path(), Some(&url), &["gateway", "call", "health"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], true);
    let out = cli(
        &gw.home_path(),
        Some(&url),
        &["gateway", "call", "logs.tail", "--params", r#"{"limit":2}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["lines"].as_array().unwrap().len() <= 2);
}

#[test]
fn exit_codes_are_0_1_2() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let url = gw.ws_url();
    let out = cli(
        &gw.home_path(),
        Some(&url),
        &["gateway", "call", "no.such.method"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unknown method: no.such.method"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    let out = cli(
        &gw.home_path(),
        Some(&url),
        &["gateway", "call", "health", "--params", "{oops"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--params is not valid JSON"));
    let out = cli(&gw.home_path(), Some(&url), &["gateway", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(
        &gw.home_path(),
        Some(&url),
        &["gateway", "call", "health", "--token", "wrong", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("gateway token mismatch"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn unreachable_gateway_gets_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let out = cli(home.path(), Some(&url), &["health", "--token", "t"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: cannot reach the gateway"), "{err}");
    assert!(
        err.contains("hint: is the gateway running? start it with `clawgate gateway run`"),
        "{err}"
    );
    let out = cli(home.path(), Some(&url), &["gateway", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    assert!(
        so.contains("✗ running") && so.contains("fix: start it"),
        "{so}"
    );
}

#[test]
fn gateway_status_health_status_doctor_dashboard() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let url = gw.ws_url();
    let home = gw.home_path();
    let out = cli(&home, Some(&url), &["gateway", "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["checks"].as_array().unwrap().len(), 3);
    let out = cli(&home, Some(&url), &["gateway", "status", "--token", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("✗ auth"),
        "{}",
        text(&out.stdout)
    );

    let out = cli(&home, Some(&url), &["health"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Gateway: healthy"));
    let out = cli(&home, Some(&url), &["status"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Auth mode: token"));

    // doctor: point the config at the running port so "port owned by us" is checked.
    std::fs::write(
        home.join("config.yaml"),
        format!("gateway:\n  port: {}\n", gw.port()),
    )
    .unwrap();
    let out = cli(&home, None, &["doctor"]);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}");
    for name in [
        "config",
        "state-dir",
        "token-file",
        "bind",
        "port",
        "gateway",
    ] {
        assert!(so.contains(&format!("✓ {name}")), "{name} missing: {so}");
    }
    let out = cli(&home, None, &["dashboard"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("http://127.0.0.1:{}/#token={}", gw.port(), gw.token())
    );
}

#[test]
fn doctor_flags_loose_permissions_and_unsafe_bind() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "gateway:\n  host: 0.0.0.0\n  auth:\n    mode: none\n",
    )
    .unwrap();
    std::fs::set_permissions(
        home.path().join("config.yaml"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let out = cli(home.path(), None, &["doctor"]);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(
        so.contains("✗ config-mode") && so.contains("chmod 600"),
        "{so}"
    );
    assert!(
        so.contains("✗ state-dir") && so.contains("chmod 700"),
        "{so}"
    );
    assert!(so.contains("✗ bind"), "{so}");
    std::fs::write(home.path().join("config.yaml"), "gateway:\n  bogus: 1\n").unwrap();
    let out = cli(home.path(), None, &["doctor"]);
    assert!(
        text(&out.stdout).contains("✗ config"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn env_token_overrides_the_token_file() {
    let token = "env-token-7f3a9c2e1b8d4f6a0c5e7b9d2f4a6c8e1b3d5f7";
    let gw = GatewayProcess::start(
        bin(),
        Options {
            env: vec![("CLAWGATE_GATEWAY_TOKEN".into(), token.into())],
            ..Options::default()
        },
    );
    let url = gw.ws_url();
    let out = cli(
        &gw.home_path(),
        Some(&url),
        &["gateway", "call", "health", "--token", token],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The generated file token is not the accepted one while the env override is in force.
    let file_token = std::fs::read_to_string(gw.home_path().join("credentials/gateway-token"))
        .unwrap_or_default();
    if !file_token.trim().is_empty() {
        let out = cli(
            &gw.home_path(),
            Some(&url),
            &["gateway", "call", "health", "--token", file_token.trim()],
        );
        assert_eq!(out.status.code(), Some(1));
    }
    assert!(!gw.stderr_text().contains(token));
}
