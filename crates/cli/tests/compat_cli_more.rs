//! The real OpenClaw CLI (`openclaw health`, `openclaw status --json`) against the real
//! clawgate binary: both report the gateway's stored sessions (issue 11 §4). Node and OpenClaw
//! come from the npm registry into `CLAWGATE_COMPAT_CACHE` (default `.cache/compat`).

use clawgate_testkit::gateway::Options;
use clawgate_testkit::npm::toolchain;
use clawgate_testkit::GatewayProcess;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// Runs `openclaw args` with `HOME=home` and the gateway in the environment; (code, stdout).
fn openclaw(args: &[&str], gw: &GatewayProcess, home: &Path) -> (Option<i32>, String, String) {
    let tc = toolchain();
    let path = format!(
        "{}:{}",
        tc.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(&tc.openclaw)
        .args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env(
            "OPENCLAW_GATEWAY_URL",
            format!("ws://127.0.0.1:{}", gw.port()),
        )
        .env("OPENCLAW_GATEWAY_TOKEN", gw.token())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openclaw");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("openclaw output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn openclaw_health_and_status_show_the_stored_session_count() {
    toolchain();
    let gw = GatewayProcess::start(bin(), Options::default());
    for k in ["agent:main:alpha", "agent:main:beta"] {
        let out = gw
            .cli(bin())
            .args(["gateway", "call", "sessions.patch", "--params"])
            .arg(json!({"key": k, "label": k}).to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let home = tempfile::tempdir().unwrap();

    let (code, so, se) = openclaw(&["health"], &gw, home.path());
    assert_eq!(code, Some(0), "{so}{se}");
    let db = gw.home.path().join("state.db");
    assert!(
        so.contains(&format!(
            "Session store (main): {} (2 entries)",
            db.display()
        )),
        "{so}"
    );
    assert!(so.contains("agent:main:beta"), "{so}");

    // `openclaw status` reads the gateway's `status` only with a local config file present.
    std::fs::create_dir(home.path().join(".openclaw")).unwrap();
    std::fs::write(home.path().join(".openclaw/openclaw.json"), "{}").unwrap();
    let (code, so, se) = openclaw(&["status", "--json"], &gw, home.path());
    assert_eq!(code, Some(0), "{so}{se}");
    let v: Value = serde_json::from_str(so.trim()).unwrap_or_else(|e| panic!("{e}: {so}"));
    assert_eq!(v["sessions"]["count"], 2, "{}", v["sessions"]);
    assert_eq!(v["agents"]["totalSessions"], 2, "{}", v["agents"]);
    assert_eq!(
        v["agents"]["agents"][0]["sessionsCount"], 2,
        "{}",
        v["agents"]
    );
}
