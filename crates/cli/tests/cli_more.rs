//! More of issue 11 §4 against the real binary over real sockets: health counts the real
//! sessions, config.get returns every section redacted, pairing notices/reject/approved list,
//! devices, logs/sessions/models commands, completions and man page, tool-call traces.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::GatewayProcess;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(gw: &GatewayProcess, args: &[&str]) -> Output {
    gw.cli(bin()).args(args).output().expect("run clawgate")
}

/// `clawgate gateway call <method> --params <json>`, parsed; panics on failure.
fn call(gw: &GatewayProcess, method: &str, params: Value) -> Value {
    let out = run(
        gw,
        &["gateway", "call", method, "--params", &params.to_string()],
    );
    assert!(
        out.status.success(),
        "{method}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json result")
}

#[test]
fn health_and_status_count_the_stored_sessions_and_name_the_database() {
    let gw = GatewayProcess::start(bin(), Options::default());
    for k in ["agent:main:one", "agent:main:two", "agent:main:three"] {
        call(&gw, "sessions.patch", json!({"key": k, "label": k}));
    }
    let listed = call(&gw, "sessions.list", json!({}));
    let n = listed["sessions"].as_array().unwrap().len();
    assert_eq!(n, 3, "{listed}");

    let h = call(&gw, "health", json!({}));
    assert_eq!(h["sessions"]["count"], 3, "{h}");
    assert_eq!(h["agents"][0]["sessions"]["count"], 3, "{h}");
    let recent = h["sessions"]["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 3, "{h}");
    assert!(recent.iter().all(|r| r["key"].as_str().is_some()
        && r["updatedAt"].as_i64().is_some()
        && r["age"].as_i64().is_some()));
    let path = h["sessions"]["path"].as_str().unwrap();
    let p = Path::new(path);
    assert!(
        p.is_file(),
        "path is the database file, not a directory: {path}"
    );
    assert!(p.starts_with(gw.home.path()), "{path}");

    let s = call(&gw, "status", json!({}));
    assert_eq!(s["sessions"]["count"], 3, "{s}");
    assert_eq!(s["sessions"]["byAgent"][0]["count"], 3, "{s}");

    let out = run(&gw, &["health"]);
    assert!(out.status.success());
    let so = text(&out.stdout);
    assert!(so.contains(&format!("Sessions: 3 (store {path})")), "{so}");
    assert!(so.contains("agent:main:two"), "{so}");
    let out = run(&gw, &["status"]);
    assert!(
        text(&out.stdout).contains("Sessions: 3"),
        "{}",
        text(&out.stdout)
    );

    // A fresh connection's hello snapshot carries the same count.
    call(
        &gw,
        "sessions.patch",
        json!({"key": "agent:main:four", "label": "x"}),
    );
    let h = call(&gw, "health", json!({}));
    assert_eq!(h["sessions"]["count"], 4, "{h}");
}

#[test]
fn config_get_returns_every_section_with_all_secrets_redacted() {
    const GW_TOKEN: &str = "gw-inline-CANARY-token-0123456789abcdefXYZ";
    const API_KEY: &str = "sk-inline-CANARY-apikey-77";
    const HEADER: &str = "hdr-inline-CANARY-55";
    const ENV_BOT: &str = "123456:ENV-CANARY-bot-token";
    const ENV_KEY: &str = "sk-ENV-CANARY-second-key";
    let cfg = format!(
        "gateway:\n  auth:\n    token: \"{GW_TOKEN}\"\n\
models:\n  providers:\n    fake:\n      baseUrl: http://127.0.0.1:9/v1\n      apiKey: {API_KEY}\n      headers:\n        X-Custom: {HEADER}\n      models: [fake-model]\n    other:\n      baseUrl: http://127.0.0.1:9/v1\n      apiKey: ${{CM_ENV_KEY}}\n      models: [m2]\n\
agents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: ${{CM_ENV_BOT}}\n    apiRoot: http://127.0.0.1:9\n    dmPolicy: pairing\n"
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            env: vec![
                ("CM_ENV_BOT".into(), ENV_BOT.into()),
                ("CM_ENV_KEY".into(), ENV_KEY.into()),
            ],
            ..Options::default()
        },
    );
    let out = gw
        .cli(bin())
        .args(["gateway", "call", "config.get", "--token", GW_TOKEN])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    for canary in [GW_TOKEN, API_KEY, HEADER, ENV_BOT, ENV_KEY, "CANARY"] {
        assert!(!body.contains(canary), "{canary} leaked: {body}");
    }
    let v: Value = serde_json::from_str(&body).unwrap();
    for key in ["config", "parsed", "resolved"] {
        let c = &v[key];
        for section in ["gateway", "models", "agents", "channels"] {
            assert!(c[section].is_object(), "{key}.{section} missing: {c}");
        }
        let fake = &c["models"]["providers"]["fake"];
        assert_eq!(fake["apiKey"], "__OPENCLAW_REDACTED__", "{c}");
        assert_eq!(fake["headers"]["X-Custom"], "__OPENCLAW_REDACTED__", "{c}");
        assert_eq!(fake["baseUrl"], "http://127.0.0.1:9/v1", "{c}");
        assert_eq!(fake["models"], json!(["fake-model"]), "{c}");
        assert_eq!(c["agents"]["defaults"]["model"], "fake/fake-model");
        assert_eq!(c["channels"]["telegram"]["dmPolicy"], "pairing");
        assert_eq!(
            c["gateway"]["auth"]["token"], "__OPENCLAW_REDACTED__",
            "{c}"
        );
    }
    // The effective gateway values stay where `config get` consumers read them.
    assert_eq!(v["config"]["gateway"]["port"], gw.port());
    assert_eq!(v["config"]["gateway"]["auth"]["mode"], "token");
    // ${ENV} references are shown as written, never resolved.
    assert_eq!(
        v["parsed"]["channels"]["telegram"]["botToken"],
        "${CM_ENV_BOT}"
    );
    assert_eq!(
        v["parsed"]["models"]["providers"]["other"]["apiKey"],
        "${CM_ENV_KEY}"
    );
    assert!(v["raw"].as_str().unwrap().contains("__OPENCLAW_REDACTED__"));
}

fn llm_config(fake: &clawgate_testkit::FakeLlm) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    )
}

#[test]
fn agent_output_shows_each_tool_call_as_one_line() {
    use clawgate_testkit::fake_llm::Step;
    let fake = clawgate_testkit::FakeLlm::start_blocking();
    fake.push(Step::ToolCalls(vec![(
        "call_1".into(),
        "read".into(),
        json!({"path": "NOTE.txt"}),
    )]));
    fake.push(Step::ToolCalls(vec![(
        "call_2".into(),
        "read".into(),
        json!({"path": "MISSING.txt"}),
    )]));
    fake.push(Step::text("The note says hello."));
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(llm_config(&fake)),
            ..Options::default()
        },
    );
    let ws = gw.home.path().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("NOTE.txt"), "hello\n").unwrap();
    let out = run(&gw, &["agent", "-m", "read NOTE.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(se.contains("⚙ read NOTE.txt\n"), "{se}");
    assert!(se.contains("⚙ read MISSING.txt\n⚙ read failed\n"), "{se}");
    // The reply on stdout is the model's text alone.
    assert_eq!(so.trim(), "The note says hello.", "{so}");
    // --json prints no trace.
    fake.push(Step::ToolCalls(vec![(
        "call_3".into(),
        "read".into(),
        json!({"path": "NOTE.txt"}),
    )]));
    fake.push(Step::text("again"));
    let out = run(&gw, &["agent", "-m", "again", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!text(&out.stderr).contains('⚙'), "{}", text(&out.stderr));
}

/// Polls `f` until it returns `Some`, at most `secs` seconds.
fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn code_in(text: &str) -> String {
    text.split("Pairing code: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a pairing code")
        .to_string()
}

#[test]
fn pairing_approve_notifies_reject_drops_and_approved_senders_are_listed() {
    use clawgate_testkit::FakeTelegram;
    let fake = clawgate_testkit::FakeLlm::start_blocking();
    let tg = FakeTelegram::start_blocking();
    let cfg = format!(
        "{}channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
        llm_config(&fake),
        tg.token(),
        tg.api_root()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    tg.inject_private_text(501, "hi");
    tg.inject_private_text(502, "hello");
    let sent = until("two pairing codes", 20, || {
        let s = tg.sent_messages();
        (s.len() >= 2).then_some(s)
    });
    let code_of = |chat: i64| code_in(&sent.iter().find(|m| m.chat_id == chat).unwrap().text);
    let (c501, c502) = (code_of(501), code_of(502));

    // Reject 502: the request is gone, the sender is not allowed.
    let out = run(
        &gw,
        &["pairing", "reject", "telegram", &c502.to_lowercase()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Rejected telegram sender 502"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&gw, &["pairing", "list", "telegram"]);
    let so = text(&out.stdout);
    assert!(so.contains(&c501) && !so.contains(&c502), "{so}");
    let out = run(&gw, &["pairing", "reject", "telegram", &c502]);
    assert_eq!(out.status.code(), Some(1), "a code is rejected once");
    assert!(
        text(&out.stderr).contains("unknown or expired pairing code"),
        "{}",
        text(&out.stderr)
    );

    // Approve 501: it is told so on Telegram, in its own chat.
    let out = run(&gw, &["pairing", "approve", "telegram", &c501]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("A notice to the sender is queued on telegram."),
        "{}",
        text(&out.stdout)
    );
    let notice = until("the approval notice", 20, || {
        tg.sent_messages()
            .into_iter()
            .find(|m| m.chat_id == 501 && m.text.contains("approved"))
    });
    assert_eq!(
        notice.text,
        "✅ Access approved. Send a message to start chatting."
    );
    assert!(
        !tg.sent_messages()
            .iter()
            .any(|m| m.chat_id == 502 && m.text.contains("approved")),
        "the rejected sender gets no notice"
    );

    // The approved senders.
    let out = run(&gw, &["pairing", "list", "--approved"]);
    let so = text(&out.stdout);
    assert!(so.contains("telegram sender 501 (account default"), "{so}");
    assert!(!so.contains("502"), "{so}");
    let out = run(
        &gw,
        &["pairing", "list", "telegram", "--approved", "--json"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["approved"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["approved"][0]["senderId"], "501");

    // 502 asks again and gets a fresh code; --no-notify approves silently.
    tg.inject_private_text(502, "again");
    let again = until("a second code for 502", 20, || {
        tg.sent_messages()
            .into_iter()
            .filter(|m| m.chat_id == 502 && m.text.contains("Pairing code: "))
            .nth(1)
    });
    let out = run(
        &gw,
        &[
            "pairing",
            "approve",
            "telegram",
            &code_in(&again.text),
            "--no-notify",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&gw, &["pairing", "list", "--approved", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["approved"].as_array().unwrap().len(), 2, "{v}");
    // The approved sender is now answered by the agent (and the silent approval sent nothing).
    fake.push(clawgate_testkit::fake_llm::Step::text("hi 502"));
    tg.inject_private_text(502, "now?");
    until("the agent's reply to 502", 20, || {
        tg.sent_messages()
            .into_iter()
            .find(|m| m.chat_id == 502 && m.text == "hi 502")
    });
    assert!(!tg
        .sent_messages()
        .iter()
        .any(|m| m.chat_id == 502 && m.text.contains("Access approved")));
}

#[test]
fn logs_sessions_and_models_commands() {
    use clawgate_testkit::fake_llm::Step;
    let fake = clawgate_testkit::FakeLlm::start_blocking();
    fake.push(Step::text("first answer"));
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(llm_config(&fake)),
            ..Options::default()
        },
    );
    let out = run(
        &gw,
        &[
            "agent",
            "-m",
            "first question",
            "--session",
            "agent:main:cm",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // logs: plain lines, --limit, --json.
    let out = run(&gw, &["logs", "--limit", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let so = text(&out.stdout);
    let lines: Vec<&str> = so.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 3, "{so}");
    assert!(
        lines.iter().all(|l| !l.starts_with('{')),
        "plain lines: {so}"
    );
    let out = run(&gw, &["logs", "--limit", "50", "--json"]);
    let so = text(&out.stdout);
    assert!(
        so.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{so}"
    );
    assert!(so.contains("listening on"), "{so}");
    let out = run(&gw, &["logs", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "a bad --limit is a usage error");

    // logs --follow prints lines written after it started.
    let mut follow = gw
        .cli(bin())
        .args(["logs", "--follow", "--limit", "1", "--interval", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // The first batch (one line) arrives, then a new run's lines.
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("first line");
    fake.push(Step::status(401));
    let _ = run(
        &gw,
        &["agent", "-m", "second", "--session", "agent:main:cm2"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("agent:main:cm2") => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(found, "no line about the new run while following: {seen:?}");

    // sessions / sessions list / sessions history.
    for args in [&["sessions"][..], &["sessions", "list"]] {
        let out = run(&gw, args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let so = text(&out.stdout);
        assert!(
            so.contains("agent:main:cm ") || so.contains("agent:main:cm\n"),
            "{so}"
        );
        assert!(so.contains("fake/fake-model"), "{so}");
    }
    let out = run(&gw, &["sessions", "list", "--limit", "1", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1, "{v}");
    let out = run(&gw, &["sessions", "history", "agent:main:cm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let so = text(&out.stdout);
    assert!(so.contains("[user] first question"), "{so}");
    assert!(so.contains("[assistant] first answer"), "{so}");
    let out = run(&gw, &["sessions", "history", "agent:main:nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no session agent:main:nope"),
        "{}",
        text(&out.stderr)
    );

    // models list.
    let out = run(&gw, &["models", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("fake/fake-model"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&gw, &["models", "list", "--provider", "nope"]);
    assert!(
        text(&out.stdout).contains("No models"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let cmd = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap()
    };
    let out = cmd(&["completions", "bash"]);
    assert!(out.status.success());
    let script = text(&out.stdout);
    for word in [
        "pairing",
        "devices",
        "logs",
        "sessions",
        "completions",
        "--follow",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    // The bash script parses.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clawgate.bash");
    std::fs::write(&file, &script).unwrap();
    let st = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success(), "bash -n failed");
    for shell in ["zsh", "fish"] {
        let out = cmd(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(text(&out.stdout).contains("reject"), "{shell}");
    }
    let out = cmd(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));

    let out = cmd(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(
        page.contains(".TH clawgate 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for section in [
        ".SH \"CLAWGATE PAIRING REJECT\"",
        ".SH \"CLAWGATE DEVICES APPROVE\"",
        ".SH \"CLAWGATE LOGS\"",
        ".SH \"CLAWGATE GATEWAY RUN\"",
    ] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    // groff (when installed) renders it without warnings.
    let file = dir.path().join("clawgate.1");
    std::fs::write(&file, &page).unwrap();
    if let Ok(out) = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
    {
        assert!(out.status.success());
        assert_eq!(text(&out.stderr), "", "groff warnings");
    }
}

/// A device key pair, signing `connect` as OpenClaw's TUI does (v3 payload).
struct Device(ed25519_dalek::SigningKey);

impl Device {
    fn new() -> Device {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        Device(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    fn id(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.verifying_key().as_bytes()))
    }

    /// Connects through a (claimed) proxy so the gateway does not pair it silently.
    async fn connect(&self, gw: &GatewayProcess) -> Value {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut ws = clawgate_testkit::ws::RawWs::connect_with(
            gw.addr,
            &[("x-forwarded-for", "203.0.113.7")],
        )
        .await
        .expect("upgrade");
        let (nonce, ts) = ws.challenge().await;
        let scopes = ["operator.read"];
        let token = gw.token();
        let payload = format!(
            "v3|{}|openclaw-tui|ui|operator|{}|{ts}|{token}|{nonce}|linux|linux",
            self.id(),
            scopes.join(",")
        );
        let sig = b64.encode(self.0.sign(payload.as_bytes()).to_bytes());
        ws.connect_req(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "displayName": "phone", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux", "mode": "ui"},
            "caps": [], "role": "operator", "scopes": scopes, "auth": {"token": token},
            "device": {"id": self.id(), "publicKey": b64.encode(self.0.verifying_key().as_bytes()),
                       "signature": sig, "signedAt": ts, "nonce": nonce},
        }))
        .await
    }
}

#[tokio::test]
async fn devices_list_approve_reject_and_remove() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let (a, b) = (Device::new(), Device::new());
    let res = a.connect(&gw).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    let rid_a = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let res = b.connect(&gw).await;
    let rid_b = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();

    let out = run(&gw, &["devices", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let so = text(&out.stdout);
    assert!(so.contains("Pending (2):"), "{so}");
    assert!(so.contains(&rid_a) && so.contains(&rid_b), "{so}");
    assert!(so.contains("clawgate devices approve <requestId>"), "{so}");

    let out = run(&gw, &["devices", "approve", &rid_a]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("Approved device {}", a.id())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(a.connect(&gw).await["ok"], true, "approved device connects");

    let out = run(&gw, &["devices", "reject", &rid_b]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&gw, &["devices", "reject", &rid_b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown requestId"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&gw, &["devices", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pending"].as_array().unwrap().len(), 0, "{v}");
    let paired: Vec<&str> = v["paired"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["deviceId"].as_str())
        .collect();
    assert!(paired.contains(&a.id().as_str()), "{v}");

    let out = run(&gw, &["devices", "remove", &a.id()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("Removed device {}", a.id())));
    let out = run(&gw, &["devices", "list"]);
    assert!(
        !text(&out.stdout).contains(&a.id()),
        "{}",
        text(&out.stdout)
    );
    // Removed: it must ask again.
    let res = a.connect(&gw).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
}

/// One raw HTTP/1.1 request to the gateway; the whole response as text.
fn http_raw(port: u16, head: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// docs/troubleshooting.md quotes what the binary prints: each scenario is produced for real
/// and its message must stand in the page word for word.
#[test]
fn the_troubleshooting_page_quotes_the_messages_the_binary_prints() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/troubleshooting.md"),
    )
    .unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(readme.contains("docs/troubleshooting.md"));
    let in_doc = |what: &str, s: &str| assert!(doc.contains(s), "{what}: page lacks {s:?}");
    let first_error = |stderr: &str| -> String {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| panic!("no error line in {stderr}"))
            .to_string()
    };
    let home = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port();
    drop(free);
    let cli = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .env("CLAWGATE_HOME", home.path())
            .env_remove("CLAWGATE_GATEWAY_URL")
            .env_remove("CLAWGATE_GATEWAY_TOKEN")
            .env_remove("CLAWGATE_CONFIG")
            .env_remove("CM_UNSET_TOKEN")
            .output()
            .unwrap()
    };

    // Connection refused.
    let url = format!("ws://127.0.0.1:{free_port}");
    let out = cli(&["health", "--url", &url, "--token", "x"]);
    let err = first_error(&text(&out.stderr));
    let generic = err.replace(&url, "ws://127.0.0.1:18789");
    in_doc("refused", &generic);
    let hint = text(&out.stderr);
    in_doc(
        "refused hint",
        hint.lines()
            .find(|l| l.starts_with("hint:"))
            .unwrap()
            .split(" (target")
            .next()
            .unwrap(),
    );

    // Address already in use (a holder that does not speak HTTP).
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    let out = cli(&["gateway", "run", "--port", &busy.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = first_error(&text(&out.stderr));
    let (head, tail) = err.split_once(". ").unwrap();
    in_doc("in use", head.split(": ").nth(1).unwrap());
    in_doc("in use holder", tail.trim_end_matches('.'));
    drop(holder);

    // Invalid config.
    std::fs::write(
        home.path().join("config.yaml"),
        "gateway:\n  auth:\n    token: ${CM_UNSET_TOKEN}\n",
    )
    .unwrap();
    let out = cli(&["health"]);
    let se = text(&out.stderr);
    assert!(se.contains("config.yaml is invalid:"), "{se}");
    in_doc("invalid", "config.yaml is invalid:");
    in_doc("invalid detail", "gateway.auth.token: environment variable");
    in_doc(
        "invalid hint",
        se.lines().find(|l| l.starts_with("hint:")).unwrap(),
    );
    std::fs::remove_file(home.path().join("config.yaml")).unwrap();

    // Token mismatch, origin, host: against a running gateway.
    let gw = GatewayProcess::start(bin(), Options::default());
    let out = run(&gw, &["health", "--token", "wrong-token"]);
    let err = first_error(&text(&out.stderr));
    in_doc("token", &err);
    let port = gw.port();
    let resp = http_raw(
        port,
        &format!("GET /healthz HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert!(resp.starts_with("HTTP/1.1 421"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    in_doc("host", body["error"]["message"].as_str().unwrap());
    in_doc("host code", "host_not_allowed");
    let resp = http_raw(
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    in_doc("origin", body["error"]["message"].as_str().unwrap());
    in_doc("origin code", "origin_not_allowed");
    // The stuck-channel section names what `channels status` prints.
    for s in ["running, not connected", "stalls detected", "last error:"] {
        in_doc("channel", s);
    }
}

#[tokio::test]
async fn pairing_reject_and_approved_take_the_pairing_scope() {
    use clawgate_testkit::ws::connect_cli;
    let gw = GatewayProcess::start(bin(), Options::default());
    let (mut read, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let (mut pairing, _) = connect_cli(gw.addr, &gw.token(), &["operator.pairing"]).await;
    for (method, params) in [
        (
            "pairing.reject",
            json!({"channel": "telegram", "code": "ABCDEFGH"}),
        ),
        ("pairing.approved", json!({})),
    ] {
        let r = read.call(method, params.clone()).await;
        assert_eq!(r["error"]["code"], "FORBIDDEN", "{method}: {r}");
        let r = pairing.call(method, params).await;
        assert_ne!(r["error"]["code"], "FORBIDDEN", "{method}: {r}");
    }
    let r = pairing.call("pairing.approved", json!({})).await;
    assert_eq!(r["payload"], json!({"approved": []}), "{r}");
    let r = pairing
        .call("pairing.approved", json!({"channel": "nope"}))
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    let r = pairing
        .call(
            "pairing.reject",
            json!({"channel": "telegram", "code": "ABCDEFGH"}),
        )
        .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown or expired pairing code"),
        "{r}"
    );
}

#[test]
fn chat_shows_tool_calls_as_one_line_traces_too() {
    use clawgate_testkit::fake_llm::Step;
    use std::io::Write;
    let fake = clawgate_testkit::FakeLlm::start_blocking();
    fake.push(Step::ToolCalls(vec![(
        "c1".into(),
        "ls".into(),
        json!({"path": "."}),
    )]));
    fake.push(Step::text("Nothing much here."));
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(llm_config(&fake)),
            ..Options::default()
        },
    );
    let mut child = gw
        .cli(bin())
        .arg("chat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what is in the workspace?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("⚙ ls .\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Nothing much here."),
        "{}",
        text(&out.stdout)
    );
}
