//! OpenClaw's own Control UI (the real build from the npm package) served by clawgate and
//! driven in headless Chromium: it loads from `/#token=…`, connects over the WebSocket, sends
//! a message, shows the fake model's reply while it streams, and shows the history after a
//! reload, with no Content-Security-Policy violation on the way.

use clawgate_testkit::browser::run_script;
use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeLlm, GatewayProcess};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn control_ui_root() -> PathBuf {
    let root = clawgate_testkit::npm::toolchain()
        .openclaw_pkg
        .join("dist/control-ui");
    assert!(root.join("index.html").is_file(), "{}", root.display());
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ui_loads_chats_streams_and_keeps_history() {
    let root = tokio::task::spawn_blocking(control_ui_root).await.unwrap();
    let fake = FakeLlm::start().await;
    let reply = "Bonjour from the streaming fake model, word by word, until the final full stop.";
    fake.push(Step::Text {
        chunks: clawgate_testkit::fake_llm::split_words(reply),
        delay_ms: 250,
    });
    let token = "ui-browser-token_0123456789abcdef";
    let config = format!(
        "gateway:\n  auth:\n    token: {token}\n  controlUi:\n    root: {}\n\
models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-fake\n      models: [fake-model]\n\
agents:\n  defaults:\n    model: fake/fake-model\n",
        root.display(),
        fake.openai_base_url()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    );
    let url = format!("http://127.0.0.1:{}", gw.port());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/control_ui_chat.mjs");
    let env: Vec<(String, String)> = vec![
        ("UI_URL".into(), url),
        ("UI_TOKEN".into(), token.into()),
        (
            "UI_MESSAGE".into(),
            "Hello from the headless browser".into(),
        ),
        ("UI_REPLY_FIRST".into(), "Bonjour from the".into()),
        ("UI_REPLY_LAST".into(), "until the final full stop.".into()),
    ];
    let result = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_script(&script, &env, Duration::from_secs(150))
    })
    .await
    .unwrap();
    let stderr = gw.stderr_text();
    assert!(
        result["csp"].as_array().is_some_and(|a| a.is_empty()),
        "CSP violations: {result:#}\n{stderr}"
    );
    let console = result["console"].as_array().unwrap();
    // For the record (run with --nocapture): what the UI complained about, if anything.
    for line in console.iter().filter_map(|l| l.as_str()) {
        eprintln!("console: {line}");
    }
    let csp_lines: Vec<_> = console
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.contains("Content Security Policy"))
        .collect();
    assert!(csp_lines.is_empty(), "{csp_lines:#?}");
    assert_eq!(
        result["partialBeforeEnd"], true,
        "the reply did not appear while streaming: {result:#}"
    );
    assert!(fake.request_count() >= 1);
    let user_turns = fake
        .requests()
        .iter()
        .filter(|r| {
            r.body
                .to_string()
                .contains("Hello from the headless browser")
        })
        .count();
    assert!(user_turns >= 1, "the model never saw the browser's message");
}
