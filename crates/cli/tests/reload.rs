//! Reload without restart (issue 11 §3): the real binary, a fake Telegram Bot API and a fake
//! LLM on loopback. config.yaml is edited on disk, then SIGHUP, `clawgate gateway reload` or
//! the `gateway.reload` / `config.apply` methods make the running gateway take it.

use clawgate_testkit::gateway::{write_config, Options};
use clawgate_testkit::ws::{connect_cli, RawWs};
use clawgate_testkit::{wait_for, FakeLlm, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const ADMIN: &[&str] = &["operator.read", "operator.write", "operator.admin"];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// A config with the fake LLM as provider `fake` and Telegram polling the fake Bot API.
/// `model` is the default model id, `extra` goes into `channels.telegram`, `tail` at the end.
fn config(llm: &FakeLlm, tg: &FakeTelegram, model: &str, extra: &str, tail: &str) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model, other-model]\n\
agents:\n  defaults:\n    model: fake/{model}\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n{extra}{tail}",
        llm.openai_base_url(),
        tg.token(),
        tg.api_root()
    )
}

fn start(text: String) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(text),
            ..Options::default()
        },
    )
}

/// `clawgate gateway reload --json` against `gw`: (exit code, stdout JSON or Null, stderr).
fn cli_reload(gw: &GatewayProcess) -> (i32, Value, String) {
    cli_reload_with(gw, &[])
}

fn cli_reload_with(gw: &GatewayProcess, extra: &[&str]) -> (i32, Value, String) {
    let out = gw
        .cli(bin())
        .args(["gateway", "reload", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn wait_stderr(gw: &GatewayProcess, needle: &str) {
    wait_for(&format!("`{needle}` in the gateway log"), T, || {
        let ok = gw.stderr_text().contains(needle);
        async move { ok.then_some(()) }
    })
    .await
}

/// The pairing reply to an unknown sender, and that the agent did not run for it.
async fn expect_pairing_reply(tg: &FakeTelegram, llm: &FakeLlm, n: usize) {
    let sent = tg.wait_for_sent(n, T).await;
    assert_eq!(sent.len(), n, "no reply");
    assert!(
        sent[n - 1].text.contains("Pairing code: "),
        "expected a pairing reply, got {:?}",
        sent[n - 1].text
    );
    assert_eq!(
        llm.request_count(),
        0,
        "the agent ran for a sender not allowed"
    );
}

/// The connection opened before the reload still answers.
async fn still_connected(ws: &mut RawWs) {
    let h = ws.call("health", json!({})).await;
    assert_eq!(h["ok"], true, "{h}");
}

#[tokio::test]
async fn sighup_applies_a_new_allow_from_and_keeps_connections() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(config(&llm, &tg, "fake-model", "", ""));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    tg.inject_private_text(777, "hello");
    expect_pairing_reply(&tg, &llm, 1).await;

    write_config(
        &gw.home_path(),
        &config(&llm, &tg, "fake-model", "    allowFrom: [\"777\"]\n", ""),
    );
    gw.signal(libc::SIGHUP);
    wait_stderr(
        &gw,
        "config reload (SIGHUP): changed [channels.telegram.allowFrom]",
    )
    .await;
    assert!(
        gw.stderr_text()
            .contains("applied [channels.telegram.allowFrom]; needs a restart: []"),
        "{}",
        gw.stderr_text()
    );

    tg.inject_private_text(777, "hello again");
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].chat_id, 777);
    assert_eq!(sent[1].text, "Hello from the fake LLM!");
    assert_eq!(llm.request_count(), 1);
    still_connected(&mut ws).await;
}

#[tokio::test]
async fn cli_reload_applies_allow_from_and_a_port_change_waits_for_a_restart() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(config(&llm, &tg, "fake-model", "", ""));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    tg.inject_private_text(777, "hello");
    expect_pairing_reply(&tg, &llm, 1).await;

    // Nothing changed yet: a no-op.
    let (code, v, err) = cli_reload(&gw);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["noop"], true, "{v}");

    // allowFrom (live) and the port (restart) in one edit.
    let new_port = gw.port().wrapping_add(1).max(1024);
    write_config(
        &gw.home_path(),
        &config(
            &llm,
            &tg,
            "fake-model",
            "    allowFrom: [\"777\"]\n",
            &format!("gateway:\n  port: {new_port}\n"),
        ),
    );
    let (code, v, err) = cli_reload(&gw);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        v["changed"],
        json!(["channels.telegram.allowFrom", "gateway.port"]),
        "{v}"
    );
    assert_eq!(v["applied"], json!(["channels.telegram.allowFrom"]), "{v}");
    assert_eq!(v["restartRequired"], json!(["gateway.port"]), "{v}");

    tg.inject_private_text(777, "hello again");
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(sent[1].text, "Hello from the fake LLM!");

    // Still on the old port: the old connection works, a new one on the old port too.
    still_connected(&mut ws).await;
    let (mut ws2, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    still_connected(&mut ws2).await;
    let status = ws.call("status", json!({})).await;
    assert_eq!(status["ok"], true, "{status}");

    // The human output names the key that waits for a restart.
    let out = gw.cli(bin()).args(["gateway", "reload"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("Needs a restart"), "{text}");
    assert!(text.contains("gateway.port"), "{text}");
}

#[tokio::test]
async fn an_invalid_file_is_refused_with_its_position_and_the_old_allow_from_stays() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(config(
        &llm,
        &tg,
        "fake-model",
        "    allowFrom: [\"42\"]\n",
        "",
    ));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;

    // 777 added, but with a bad type further down: nothing may apply.
    let bad = config(
        &llm,
        &tg,
        "fake-model",
        "    allowFrom: [\"42\", \"777\"]\n    textChunkLimit: many\n",
        "",
    );
    let line = bad
        .lines()
        .position(|l| l.contains("textChunkLimit"))
        .unwrap()
        + 1;
    write_config(&gw.home_path(), &bad);
    let expected = format!("config.yaml:{line}:21: channels.telegram.textChunkLimit");
    // The CLI reads the same file to find the gateway: it stops there with the position.
    let (code, _, err) = cli_reload(&gw);
    assert_ne!(code, 0, "an invalid file must be refused");
    assert!(err.contains(&expected), "want `{expected}` in:\n{err}");
    // Told where the gateway is, it asks it, and the gateway refuses with the same position.
    let url = gw.ws_url();
    let token = gw.token();
    let (code, v, err) = cli_reload_with(&gw, &["--url", &url, "--token", &token]);
    assert_ne!(code, 0, "an invalid file must be refused");
    let msg = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains(&expected), "want `{expected}` in:\n{v}\n{err}");
    assert!(msg.contains("running config is unchanged"), "{v}");

    // SIGHUP refuses it the same way, in the log.
    gw.signal(libc::SIGHUP);
    wait_stderr(&gw, "config reload (SIGHUP) refused").await;
    assert!(gw.stderr_text().contains(&expected), "{}", gw.stderr_text());

    tg.inject_private_text(777, "let me in");
    expect_pairing_reply(&tg, &llm, 1).await;
    tg.inject_private_text(42, "hi");
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(sent[1].chat_id, 42);
    assert_eq!(sent[1].text, "Hello from the fake LLM!");
    still_connected(&mut ws).await;
}

#[tokio::test]
async fn logging_level_applies_on_reload() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let text = |level: &str| {
        config(
            &llm,
            &tg,
            "fake-model",
            "",
            &format!("logging:\n  level: {level}\n"),
        )
    };
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(text("warn")),
            // Empty: `logging.level` decides, not the test kit's CLAWGATE_LOG=info.
            env: vec![("CLAWGATE_LOG".into(), String::new())],
            ..Options::default()
        },
    );
    // At `warn` the start-up info lines are not written.
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    let r = ws.call("gateway.reload", json!({})).await;
    assert_eq!(r["payload"]["noop"], true, "{r}");
    assert!(
        !gw.stderr_text().contains("listening on http://"),
        "{}",
        gw.stderr_text()
    );
    // Raised to `info` by a reload: the reload's own info line is written.
    write_config(&gw.home_path(), &text("info"));
    gw.signal(libc::SIGHUP);
    wait_stderr(
        &gw,
        "config reload (SIGHUP): changed [logging.level]; applied [logging.level]",
    )
    .await;
    assert!(!gw.stderr_text().contains("config reload (gateway.reload)"));
}

#[tokio::test]
async fn a_new_default_model_is_used_by_the_next_run() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let allow = "    allowFrom: [\"42\"]\n";
    let gw = start(config(&llm, &tg, "fake-model", allow, ""));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    tg.inject_private_text(42, "first");
    tg.wait_for_sent(1, T).await;
    assert_eq!(llm.requests()[0].body["model"], "fake-model");

    write_config(
        &gw.home_path(),
        &config(&llm, &tg, "other-model", allow, ""),
    );
    let r = ws.call("gateway.reload", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["payload"]["applied"],
        json!(["agents.defaults.model"]),
        "{r}"
    );
    assert_eq!(r["payload"]["restartRequired"], json!([]), "{r}");

    tg.inject_private_text(42, "second");
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(sent.len(), 2);
    assert!(llm.wait_for_requests(2, T).await);
    assert_eq!(llm.requests()[1].body["model"], "other-model");
    // What clients see follows too.
    let agents = ws.call("agents.list", json!({})).await;
    assert_eq!(
        agents["payload"]["agents"][0]["model"]["primary"], "fake/other-model",
        "{agents}"
    );
}

#[tokio::test]
async fn reload_and_config_apply_need_admin_and_apply_checks_the_base_hash() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(config(&llm, &tg, "fake-model", "", ""));

    let (mut rw, _) = connect_cli(gw.addr, &gw.token(), &["operator.read", "operator.write"]).await;
    for (method, params) in [
        ("gateway.reload", json!({})),
        ("config.apply", json!({"raw": "gateway:\n  port: 1\n"})),
    ] {
        let r = rw.call(method, params).await;
        assert_eq!(r["ok"], false, "{method}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("operator.admin"),
            "{method}: {r}"
        );
    }

    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    let new_text = config(&llm, &tg, "fake-model", "    allowFrom: [\"777\"]\n", "");
    // No baseHash, then a stale one: refused, file untouched.
    let r = ws.call("config.apply", json!({"raw": new_text})).await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base hash required"),
        "{r}"
    );
    let r = ws
        .call(
            "config.apply",
            json!({"raw": new_text, "baseHash": "0".repeat(64)}),
        )
        .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config changed since last load"),
        "{r}"
    );
    let on_disk = std::fs::read_to_string(gw.home_path().join("config.yaml")).unwrap();
    assert!(!on_disk.contains("777"));

    // Invalid raw with the right hash: refused with its position.
    let got = ws.call("config.get", json!({})).await;
    let hash = got["payload"]["hash"].as_str().unwrap().to_string();
    let r = ws
        .call(
            "config.apply",
            json!({"raw": "gateway:\n  port: [1]\n", "baseHash": hash}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]["details"]["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("config.yaml:2:9: gateway.port"),
        "{r}"
    );

    // The right hash and a valid body: written 0600, applied.
    let r = ws
        .call("config.apply", json!({"raw": new_text, "baseHash": hash}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["payload"]["changedPaths"],
        json!(["channels.telegram.allowFrom"])
    );
    assert_eq!(r["payload"]["restart"]["required"], false);
    let path = gw.home_path().join("config.yaml");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new_text);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let got = ws.call("config.get", json!({})).await;
    assert_eq!(got["payload"]["hash"], r["payload"]["hash"]);
    tg.inject_private_text(777, "hello");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
}

#[tokio::test]
async fn allowed_origins_and_hosts_apply_on_reload() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(config(&llm, &tg, "fake-model", "", ""));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    let origin = [("Origin", "https://claw.example.test")];
    let host = [("Host", "gw.example.test")];
    assert_eq!(RawWs::connect_with(gw.addr, &origin).await.err(), Some(403));
    assert_eq!(RawWs::connect_with(gw.addr, &host).await.err(), Some(421));

    write_config(
        &gw.home_path(),
        &config(
            &llm,
            &tg,
            "fake-model",
            "",
            "gateway:\n  allowedOrigins: [\"https://claw.example.test\"]\n  allowedHosts: [\"gw.example.test\"]\n",
        ),
    );
    let r = ws.call("gateway.reload", json!({})).await;
    assert_eq!(
        r["payload"]["applied"],
        json!(["gateway.allowedHosts", "gateway.allowedOrigins"]),
        "{r}"
    );
    assert_eq!(r["payload"]["restartRequired"], json!([]), "{r}");
    assert!(RawWs::connect_with(gw.addr, &origin).await.is_ok());
    assert!(RawWs::connect_with(gw.addr, &host).await.is_ok());
    still_connected(&mut ws).await;
}

#[tokio::test]
async fn a_new_bot_token_waits_for_a_restart_and_is_never_logged() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let allow = "    allowFrom: [\"42\"]\n";
    let gw = start(config(&llm, &tg, "fake-model", allow, ""));
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), ADMIN).await;
    let old = config(&llm, &tg, "fake-model", allow, "");
    let new_token = "999999:NEW-token-never-logged";
    let edited = old.replace(tg.token(), new_token);
    assert_ne!(edited, old);
    write_config(&gw.home_path(), &edited);
    let r = ws.call("gateway.reload", json!({})).await;
    assert_eq!(
        r["payload"]["changed"],
        json!(["channels.telegram.botToken"]),
        "{r}"
    );
    assert_eq!(r["payload"]["applied"], json!([]), "{r}");
    assert_eq!(
        r["payload"]["restartRequired"],
        json!(["channels.telegram.botToken"]),
        "{r}"
    );
    // Still polling with the running token: a message is answered.
    tg.inject_private_text(42, "still there?");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    // A second reload still lists it (the running value differs from the file).
    let r = ws.call("gateway.reload", json!({})).await;
    assert_eq!(r["payload"]["noop"], true, "{r}");
    assert_eq!(
        r["payload"]["restartRequired"],
        json!(["channels.telegram.botToken"]),
        "{r}"
    );
    let log = gw.stderr_text()
        + &std::fs::read_to_string(gw.home_path().join("logs/gateway.log")).unwrap_or_default();
    assert!(!log.contains(new_token), "the new token reached a log");
    assert!(!log.contains(tg.token()), "the token reached a log");
}
