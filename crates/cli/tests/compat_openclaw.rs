//! Compatibility with the real OpenClaw CLI (`openclaw@2026.9.6` on Node 26), unmodified,
//! against the real clawgate binary. Node and OpenClaw are installed from the npm registry
//! into a cache directory on first use (`CLAWGATE_COMPAT_CACHE`, default `.cache/compat`).

use clawgate_testkit::gateway::Options;
use clawgate_testkit::npm::{cache_dir, toolchain};
use clawgate_testkit::{FakeLlm, GatewayProcess};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn openclaw(args: &[&str], env: &[(&str, &str)], home: &Path) -> Run {
    let tc = toolchain();
    let path = format!(
        "{}:{}",
        tc.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(&tc.openclaw);
    cmd.args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn openclaw");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("openclaw output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_ok(what: &str, r: &Run) {
    assert_eq!(
        r.code,
        Some(0),
        "`openclaw {what}` failed:\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

fn json_of(what: &str, r: &Run) -> Value {
    serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("`openclaw {what}` printed no JSON ({e}):\n{}", r.stdout))
}

struct Env {
    gw: GatewayProcess,
    home: tempfile::TempDir,
    url: String,
    token: String,
}

fn setup() -> Env {
    setup_with(Options::default())
}

fn setup_with(opts: Options) -> Env {
    toolchain();
    let gw = GatewayProcess::start(bin(), opts);
    let url = format!("ws://127.0.0.1:{}", gw.port());
    let token = gw.token();
    Env {
        gw,
        home: tempfile::tempdir().unwrap(),
        url,
        token,
    }
}

#[test]
fn openclaw_gateway_call_health_and_status() {
    let e = setup();
    let args = [
        "gateway", "call", "health", "--json", "--url", &e.url, "--token", &e.token,
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_ok("gateway call health", &r);
    let v = json_of("gateway call health", &r);
    assert_eq!(v["ok"], true);
    assert_eq!(v["defaultAgentId"], "main");

    let args = [
        "gateway", "call", "status", "--json", "--url", &e.url, "--token", &e.token,
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_ok("gateway call status", &r);
    let v = json_of("gateway call status", &r);
    assert_eq!(v["runtimeVersion"], env!("CARGO_PKG_VERSION"));

    // A wrong token fails the way the real gateway makes it fail.
    let args = [
        "gateway",
        "call",
        "health",
        "--json",
        "--url",
        &e.url,
        "--token",
        "wrong-token",
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_eq!(r.code, Some(1));
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("gateway token mismatch"),
        "{} {}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn openclaw_gateway_probe_and_status() {
    let e = setup();
    let r = openclaw(
        &["gateway", "probe", "--url", &e.url, "--token", &e.token],
        &[],
        e.home.path(),
    );
    assert_ok("gateway probe", &r);
    assert!(r.stdout.contains("Connect: ok"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("app {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Read probe: ok"), "{}", r.stdout);

    let r = openclaw(
        &["gateway", "status", "--url", &e.url, "--token", &e.token],
        &[],
        e.home.path(),
    );
    assert_ok("gateway status", &r);
    assert!(r.stdout.contains("Connectivity probe: ok"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("Gateway version: {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.stdout
    );
}

#[test]
fn openclaw_health_via_environment() {
    let e = setup();
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(&["health"], &env, e.home.path());
    assert_ok("health", &r);
    assert!(r.stdout.contains("Agents: main (default)"), "{}", r.stdout);
    let r = openclaw(&["health", "--json"], &env, e.home.path());
    assert_ok("health --json", &r);
    assert_eq!(json_of("health --json", &r)["ok"], true);
}

#[test]
fn openclaw_logs_and_devices_list() {
    let e = setup();
    let r = openclaw(
        &[
            "logs", "--limit", "5", "--plain", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("logs --limit 5", &r);
    assert!(r.stdout.contains("gateway.log"), "{}", r.stdout);
    assert!(
        r.stdout.contains("listening on"),
        "the gateway's own log lines: {}",
        r.stdout
    );

    let r = openclaw(
        &[
            "devices", "list", "--json", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("devices list", &r);
    let v = json_of("devices list", &r);
    assert!(v["paired"].is_array() && v["pending"].is_array(), "{v}");
    drop(e.gw);
}

/// A gateway whose default model is the fake OpenAI-compatible LLM.
fn setup_with_llm() -> (Env, FakeLlm) {
    let fake = FakeLlm::start_blocking();
    let config = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-fake-test-key\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    );
    (
        setup_with(Options {
            config: Some(config),
            ..Options::default()
        }),
        fake,
    )
}

fn history(e: &Env, key: &str) -> Value {
    let params = format!("{{\"sessionKey\":\"{key}\"}}");
    let r = openclaw(
        &[
            "gateway",
            "call",
            "chat.history",
            "--json",
            "--url",
            &e.url,
            "--token",
            &e.token,
            "--params",
            &params,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("gateway call chat.history", &r);
    json_of("gateway call chat.history", &r)
}

#[test]
fn openclaw_agent_prints_the_reply() {
    let (e, _fake) = setup_with_llm();
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(
        &["agent", "--message", "hello", "--session-id", "S1"],
        &env,
        e.home.path(),
    );
    assert_ok("agent --message hello", &r);
    assert!(
        r.stdout.contains("Hello from the fake LLM!"),
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
    let h = history(&e, "agent:main:explicit:S1");
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["content"], "hello");
}

#[test]
fn openclaw_gateway_call_chat_send_then_history() {
    let (e, fake) = setup_with_llm();
    let params = r#"{"sessionKey":"agent:main:rec-chat-1","message":"hello via chat.send","idempotencyKey":"idem-chat-send-1"}"#;
    let r = openclaw(
        &[
            "gateway",
            "call",
            "chat.send",
            "--json",
            "--url",
            &e.url,
            "--token",
            &e.token,
            "--params",
            params,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("gateway call chat.send", &r);
    let v = json_of("gateway call chat.send", &r);
    assert_eq!(v["runId"], "idem-chat-send-1");
    assert_eq!(v["status"], "started");
    // The CLI disconnects at once; the run goes on in the gateway.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = history(&e, "agent:main:rec-chat-1");
        let msgs = h["messages"].as_array().cloned().unwrap_or_default();
        if msgs.len() == 2 {
            assert_eq!(msgs[0]["content"], "hello via chat.send");
            assert_eq!(msgs[0]["idempotencyKey"], "idem-chat-send-1:user");
            assert_eq!(msgs[1]["content"][0]["text"], "Hello from the fake LLM!");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the turn never reached the history: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(fake.request_count(), 1);
}

#[test]
fn openclaw_tui_connects_with_its_device_and_gets_the_reply() {
    let (e, _fake) = setup_with_llm();
    let tc = toolchain();
    // The TUI needs a terminal: run it under `script`, and stop it once the reply is stored.
    let cmd = format!(
        "{} tui --url {} --token {} --session rec-tui-1 --message 'hello from the tui'",
        tc.openclaw.display(),
        e.url,
        e.token
    );
    let path = format!(
        "{}:{}",
        tc.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("PATH", path)
        .env("HOME", e.home.path())
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .env("LINES", "40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reply = None;
    while Instant::now() < deadline {
        let h = history(&e, "agent:main:rec-tui-1");
        let msgs = h["messages"].as_array().cloned().unwrap_or_default();
        if msgs.len() >= 2 {
            reply = Some(msgs);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("tui output");
    let screen = String::from_utf8_lossy(&out.stdout);
    let msgs = reply.unwrap_or_else(|| {
        panic!("the TUI's message never reached the gateway; screen:\n{screen}")
    });
    assert_eq!(msgs[0]["content"], "hello from the tui");
    assert_eq!(msgs[1]["content"][0]["text"], "Hello from the fake LLM!");
    // It connected with a device identity, paired silently on loopback.
    let r = openclaw(
        &[
            "devices", "list", "--json", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    let v = json_of("devices list", &r);
    let paired = v["paired"].as_array().unwrap();
    assert!(
        paired.iter().any(|d| d["clientId"] == "openclaw-tui"),
        "{v}"
    );
}

#[test]
fn openclaw_message_send_and_channels_status_with_telegram() {
    let tg = clawgate_testkit::FakeTelegram::start_blocking();
    let config = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
        tg.token(),
        tg.api_root()
    );
    let e = setup_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(
        &[
            "message",
            "send",
            "--channel",
            "telegram",
            "--target",
            "12345",
            "--message",
            "hello from openclaw",
            "--json",
        ],
        &env,
        e.home.path(),
    );
    assert_ok("message send --channel telegram", &r);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tg.sent_messages().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing reached Telegram; stdout:\n{}\nstderr:\n{}",
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = tg.sent_messages();
    assert_eq!(sent[0].chat_id, 12345);
    assert_eq!(sent[0].text, "hello from openclaw");
    let r = openclaw(&["channels", "status", "--json"], &env, e.home.path());
    assert_ok("channels status", &r);
    assert!(r.stdout.contains("telegram"), "{}", r.stdout);
}

/// A HOME for the OpenClaw CLI with the official Slack plugin installed. In 2026.9.6 Slack is
/// an external plugin (`@openclaw/slack`), not bundled like Telegram: without it the CLI
/// refuses `--channel slack` locally. Installed once per cache directory with OpenClaw's own
/// `plugins install`, then copied per test.
fn slack_plugin_home() -> tempfile::TempDir {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    let src = READY.get_or_init(|| {
        let home = cache_dir().join("slack-home");
        let installed = home.join(".openclaw/npm/projects");
        // The plugin links to the OpenClaw install by absolute path: a cache that was moved
        // or copied needs a fresh install.
        let marker = home.join("installed-for");
        let for_here = cache_dir().display().to_string();
        let same_place = std::fs::read_to_string(&marker).is_ok_and(|m| m == for_here);
        let has_plugin = same_place
            && std::fs::read_dir(&installed)
                .map(|d| {
                    d.flatten()
                        .any(|p| p.path().join("node_modules/@openclaw/slack").exists())
                })
                .unwrap_or(false);
        if !has_plugin {
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir_all(&home).unwrap();
            let r = openclaw(
                &["plugins", "install", "@openclaw/slack@2026.9.6"],
                &[],
                &home,
            );
            assert_ok("plugins install @openclaw/slack", &r);
            std::fs::write(&marker, &for_here).unwrap();
        }
        home
    });
    let dst = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(src.join(".openclaw"))
        .arg(dst.path())
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

#[test]
fn openclaw_channels_status_and_message_send_with_telegram_and_slack() {
    let tg = clawgate_testkit::FakeTelegram::start_blocking();
    let slack = clawgate_testkit::FakeSlack::start_blocking();
    // A channel id of Slack's real shape: OpenClaw restores the case of such ids only.
    const CHAN: &str = "C0123ABCDE";
    slack.add_channel(CHAN, true);
    let config = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n  slack:\n    botToken: \"{}\"\n    appToken: \"{}\"\n    apiRoot: {}\n",
        tg.token(),
        tg.api_root(),
        slack.bot_token(),
        slack.app_token(),
        slack.api_root()
    );
    let e = setup_with(Options {
        config: Some(config),
        ..Options::default()
    });
    // Both channels up (asked through our own CLI: cheap to poll).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out =
            e.gw.cli(bin())
                .args(["channels", "status", "--json"])
                .output()
                .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let up = |c: &str| v["channelAccounts"][c][0]["connected"] == true;
        if up("telegram") && up("slack") {
            break;
        }
        assert!(Instant::now() < deadline, "channels never connected: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];

    // `channels status --json` prints the gateway's result: both channels, OpenClaw's shape.
    let r = openclaw(&["channels", "status", "--json"], &env, e.home.path());
    assert_ok("channels status --json", &r);
    let v = json_of("channels status --json", &r);
    assert_eq!(
        v["channelOrder"],
        serde_json::json!(["telegram", "slack"]),
        "{v}"
    );
    assert_eq!(v["channelLabels"]["slack"], "Slack");
    assert_eq!(v["channelDetailLabels"]["telegram"], "Telegram Bot");
    assert_eq!(v["channelMeta"][1]["detailLabel"], "Slack Bot");
    assert_eq!(v["channelDefaultAccountId"]["slack"], "default");
    for (c, mode) in [("telegram", "polling"), ("slack", "socket")] {
        let a = &v["channelAccounts"][c][0];
        assert_eq!(a["accountId"], "default", "{v}");
        assert_eq!(
            (&a["configured"], &a["running"], &a["connected"]),
            (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true)),
            "{c}: {v}"
        );
        assert_eq!(a["mode"], mode);
        assert_eq!(v["channels"][c]["configured"], true);
    }
    assert_eq!(v["statusIssues"], serde_json::json!([]));

    // One channel on request.
    let r = openclaw(
        &["channels", "status", "--channel", "slack", "--json"],
        &env,
        e.home.path(),
    );
    assert_ok("channels status --channel slack --json", &r);
    let v = json_of("channels status --channel slack --json", &r);
    assert_eq!(v["channelOrder"], serde_json::json!(["slack"]), "{v}");

    // The text view renders one line per account from the same result.
    let r = openclaw(&["channels", "status"], &env, e.home.path());
    assert_ok("channels status", &r);
    assert!(r.stdout.contains("Gateway reachable."), "{}", r.stdout);
    for line in [
        "- Telegram default: enabled, configured, running, connected, mode:polling",
        "- Slack default: enabled, configured, running, connected, mode:socket",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }

    // Through the gateway: `send` on Slack reaches chat.postMessage; without a channel it is
    // refused, naming both.
    let params = format!(
        r#"{{"channel":"slack","to":"channel:{CHAN}","message":"hi via the gateway","idempotencyKey":"compat-slack-1"}}"#
    );
    let args = [
        "gateway", "call", "send", "--json", "--url", &e.url, "--token", &e.token, "--params",
        &params,
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_ok("gateway call send (slack)", &r);
    assert_eq!(json_of("gateway call send", &r)["channel"], "slack");
    let params =
        r#"{"to":"C0123ABCDE","message":"which channel?","idempotencyKey":"compat-nochan-1"}"#;
    let args = [
        "gateway", "call", "send", "--json", "--url", &e.url, "--token", &e.token, "--params",
        params,
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        format!("{}{}", r.stdout, r.stderr)
            .contains("Channel is required when multiple channels are configured: telegram, slack"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    // Slack is not bundled with OpenClaw 2026.9.6: without its plugin the CLI refuses locally.
    let r = openclaw(
        &[
            "message",
            "send",
            "--channel",
            "slack",
            "--target",
            CHAN,
            "--message",
            "hi",
            "--json",
        ],
        &env,
        e.home.path(),
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("Channel is unavailable: slack"),
        "{}",
        r.stdout
    );

    // `message send --channel slack`: OpenClaw's Slack plugin delivers directly from the CLI
    // process (deliveryMode "direct"), with the CLI's own Slack config; SLACK_API_URL points
    // its Web API client at the fake.
    let home = slack_plugin_home();
    let cfg_path = home.path().join(".openclaw/openclaw.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["channels"] = serde_json::json!({"slack": {"botToken": slack.bot_token(), "appToken": slack.app_token()}});
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let api = format!("{}/", slack.api_root().trim_end_matches('/'));
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
        ("SLACK_API_URL", api.as_str()),
    ];
    let r = openclaw(
        &[
            "message",
            "send",
            "--channel",
            "slack",
            "--target",
            CHAN,
            "--message",
            "hi",
            "--json",
        ],
        &env,
        home.path(),
    );
    assert_ok("message send --channel slack", &r);
    let sent = slack.sent_messages();
    let texts: Vec<(&str, &str)> = sent
        .iter()
        .map(|m| (m.channel.as_str(), m.text.as_str()))
        .collect();
    assert!(texts.contains(&(CHAN, "hi via the gateway")), "{texts:?}");
    assert!(
        texts.contains(&(CHAN, "hi")),
        "{texts:?}\n{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// Issue 9: the real CLI sees WhatsApp (Cloud API) in `channels status` and sends through
/// the gateway's `send`.
#[test]
fn openclaw_channels_status_and_send_with_whatsapp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let wa = rt.block_on(clawgate_testkit::FakeWhatsApp::start());
    wa.open_window("16505551234");
    let config = format!(
        "channels:\n  whatsapp:\n    phoneNumberId: \"{}\"\n    accessToken: \"{}\"\n    appSecret: \"{}\"\n    verifyToken: \"{}\"\n    graphBaseUrl: {}\n",
        wa.phone_number_id(),
        wa.token(),
        wa.app_secret(),
        wa.verify_token(),
        wa.graph_base_url()
    );
    let e = setup_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(&["channels", "status", "--json"], &env, e.home.path());
    assert_ok("channels status --json", &r);
    let v = json_of("channels status --json", &r);
    assert_eq!(v["channelOrder"], serde_json::json!(["whatsapp"]), "{v}");
    assert_eq!(v["channelLabels"]["whatsapp"], "WhatsApp");
    let a = &v["channelAccounts"]["whatsapp"][0];
    assert_eq!(a["mode"], "webhook", "{v}");
    assert_eq!(a["configured"], true, "{v}");
    let r = openclaw(&["channels", "status"], &env, e.home.path());
    assert_ok("channels status", &r);
    assert!(
        r.stdout
            .contains("- WhatsApp default: enabled, configured, running"),
        "{}",
        r.stdout
    );
    // With one channel configured, `send` needs no channel name.
    let params =
        r#"{"to":"+16505551234","message":"hi from openclaw","idempotencyKey":"compat-wa-1"}"#;
    let args = [
        "gateway", "call", "send", "--json", "--url", &e.url, "--token", &e.token, "--params",
        params,
    ];
    let r = openclaw(&args, &[], e.home.path());
    assert_ok("gateway call send (whatsapp)", &r);
    assert_eq!(json_of("gateway call send", &r)["channel"], "whatsapp");
    let deadline = Instant::now() + Duration::from_secs(20);
    while wa.sent_messages().is_empty() {
        assert!(Instant::now() < deadline, "nothing reached the Graph API");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = wa.sent_messages();
    assert_eq!(sent[0].text, "hi from openclaw");
    assert_eq!(sent.len(), 1);
    let r = openclaw(
        &[
            "message",
            "send",
            "--channel",
            "whatsapp",
            "--target",
            "+16505551234",
            "--message",
            "second",
            "--json",
        ],
        &env,
        e.home.path(),
    );
    // OpenClaw 2026.9.6 does not bundle WhatsApp (its own is a WhatsApp Web plugin): the CLI
    // refuses locally, before reaching any gateway. `gateway call send` above is the path.
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("Channel is unavailable: whatsapp"),
        "{}",
        r.stdout
    );
}

#[test]
fn openclaw_models_list_shows_the_configured_model() {
    let (e, _fake) = setup_with_llm();
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(&["models", "list", "--json"], &env, e.home.path());
    assert_ok("models list --json", &r);
    let v = json_of("models list --json", &r);
    assert_eq!(v["count"], 1, "{v}");
    let m = &v["models"][0];
    assert_eq!(m["key"], "fake/fake-model", "{v}");
    assert_eq!(m["available"], true, "{v}");
    assert_eq!(m["local"], true, "{v}");
    assert_eq!(m["tags"], serde_json::json!(["default"]), "{v}");

    let r = openclaw(&["models", "list"], &env, e.home.path());
    assert_ok("models list", &r);
    assert!(r.stdout.contains("fake/fake-model"), "{}", r.stdout);

    let r = openclaw(
        &["models", "list", "--json", "--provider", "other"],
        &env,
        e.home.path(),
    );
    assert_ok("models list --provider other", &r);
    assert_eq!(json_of("models list --provider", &r)["count"], 0);
}

#[test]
fn openclaw_cron_list_reads_the_empty_inventory() {
    let e = setup();
    let r = openclaw(
        &[
            "cron", "list", "--json", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("cron list --json", &r);
    let v = json_of("cron list --json", &r);
    assert_eq!(v["jobs"], serde_json::json!([]), "{v}");
    assert_eq!(v["total"], 0, "{v}");
    assert!(v["snapshotRevision"].is_string(), "{v}");

    let r = openclaw(
        &[
            "cron", "list", "--all", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("cron list --all", &r);
    assert!(r.stdout.contains("No automations."), "{}", r.stdout);
}

/// `openclaw approvals pending` reads `exec.approval.list`, `plugin.approval.list` and
/// `openclaw.approval.list` (asking for operator.admin); all three answer, with nothing pending.
#[test]
fn openclaw_approvals_pending() {
    let e = setup();
    let r = openclaw(
        &["approvals", "pending", "--url", &e.url, "--token", &e.token],
        &[],
        e.home.path(),
    );
    assert_ok("approvals pending", &r);
    assert!(r.stdout.contains("No pending approvals."), "{}", r.stdout);
    let r = openclaw(
        &[
            "approvals",
            "pending",
            "--json",
            "--url",
            &e.url,
            "--token",
            &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("approvals pending --json", &r);
    assert_eq!(
        json_of("approvals pending --json", &r),
        serde_json::json!({"approvals": []})
    );
}

/// `openclaw system event --text …` calls `wake`; the event is queued for the main session
/// (shown by `status`) and reaches the model with the next turn there.
#[test]
fn openclaw_system_event_queues_for_the_next_turn() {
    let (e, fake) = setup_with_llm();
    for (text, mode) in [
        ("deploy finished", "next-heartbeat"),
        ("tests green", "now"),
    ] {
        let r = openclaw(
            &[
                "system", "event", "--text", text, "--mode", mode, "--json", "--url", &e.url,
                "--token", &e.token,
            ],
            &[],
            e.home.path(),
        );
        assert_ok("system event", &r);
        assert_eq!(json_of("system event", &r)["ok"], true, "{}", r.stdout);
    }
    let r = openclaw(
        &[
            "gateway", "call", "status", "--json", "--url", &e.url, "--token", &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("gateway call status", &r);
    assert_eq!(
        json_of("gateway call status", &r)["queuedSystemEvents"],
        serde_json::json!(["deploy finished", "tests green"])
    );
    let env = [
        ("OPENCLAW_GATEWAY_URL", e.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", e.token.as_str()),
    ];
    let r = openclaw(
        &[
            "agent",
            "--message",
            "what happened?",
            "--session-key",
            "agent:main:main",
        ],
        &env,
        e.home.path(),
    );
    assert_ok("agent --message", &r);
    let reqs = fake.requests();
    let user = reqs.last().expect("the turn reached the model").body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .clone();
    assert_eq!(
        user,
        "System: deploy finished\nSystem: tests green\n\nwhat happened?"
    );
}

/// The keys of the gateway's sessions, through `openclaw gateway call sessions.list`.
fn session_keys(e: &Env) -> Vec<String> {
    let r = openclaw(
        &[
            "gateway",
            "call",
            "sessions.list",
            "--json",
            "--url",
            &e.url,
            "--token",
            &e.token,
        ],
        &[],
        e.home.path(),
    );
    assert_ok("gateway call sessions.list", &r);
    json_of("gateway call sessions.list", &r)["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["key"].as_str().map(String::from))
        .collect()
}

/// The TUI's `/new` calls `sessions.create` with a fresh `tui-<uuid>` key and switches to it;
/// the next message goes to the new session. (This needs the TUI idle after its first turn:
/// it stayed busy when the run's events reached it in the same socket read as the `chat.send`
/// acknowledgement; see `methods::chat::send_deferred`.)
#[test]
fn openclaw_tui_new_creates_and_switches_to_a_new_session() {
    use std::io::Write;
    let (e, _fake) = setup_with_llm();
    let tc = toolchain();
    let cmd = format!(
        "{} tui --url {} --token {} --session rec-tui-new --message 'first message'",
        tc.openclaw.display(),
        e.url,
        e.token
    );
    let path = format!(
        "{}:{}",
        tc.node_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("PATH", path)
        .env("HOME", e.home.path())
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .env("LINES", "40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let mut stdin = child.stdin.take().unwrap();
    let wait = |what: &str, f: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        eprintln!("timed out waiting for {what}");
        false
    };
    // The first turn is answered: the TUI is connected and idle.
    let first = wait("the first reply", &mut || {
        history(&e, "agent:main:rec-tui-new")["messages"]
            .as_array()
            .map_or(0, Vec::len)
            >= 2
    });
    let mut new_key = None;
    if first {
        stdin.write_all(b"/new").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(b"\r").unwrap();
        stdin.flush().unwrap();
        let mut nudged = Instant::now();
        wait("a tui-… session", &mut || {
            new_key = session_keys(&e)
                .into_iter()
                .find(|k| k.starts_with("agent:main:tui-"));
            if new_key.is_none() && nudged.elapsed() > Duration::from_secs(5) {
                // An open completion menu takes the first Enter.
                let _ = stdin.write_all(b"\r");
                let _ = stdin.flush();
                nudged = Instant::now();
            }
            new_key.is_some()
        });
    }
    let mut second = false;
    if let Some(key) = &new_key {
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"second message\r").unwrap();
        stdin.flush().unwrap();
        second = wait("the second reply in the new session", &mut || {
            history(&e, key)["messages"].as_array().map_or(0, Vec::len) >= 2
        });
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("tui output");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(first, "the first turn never finished; screen:\n{screen}");
    let key = new_key.unwrap_or_else(|| panic!("/new created no session; screen:\n{screen}"));
    assert!(
        second,
        "the message after /new did not reach {key}; screen:\n{screen}"
    );
    assert!(screen.contains("new session"), "screen:\n{screen}");
    let h = history(&e, &key);
    assert_eq!(h["messages"][0]["content"], "second message", "{h}");
    // The first session keeps its own history.
    let h = history(&e, "agent:main:rec-tui-new");
    assert_eq!(h["messages"].as_array().unwrap().len(), 2, "{h}");
}
