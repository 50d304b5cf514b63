//! Issue 8 follow-ups, through the real binary: `send` when no channel is named (OpenClaw's
//! rule), Slack send targets, `clawgate channels status` with two channels, and the
//! per-channel checks of `clawgate doctor`.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeSlack, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn start(config: String) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    )
}

fn telegram_section(tg: &FakeTelegram) -> String {
    format!(
        "  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
        tg.token(),
        tg.api_root()
    )
}

fn slack_section(slack: &FakeSlack) -> String {
    format!(
        "  slack:\n    botToken: \"{}\"\n    appToken: \"{}\"\n    apiRoot: {}\n",
        slack.bot_token(),
        slack.app_token(),
        slack.api_root()
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(gw: &GatewayProcess, args: &[&str]) -> Output {
    gw.cli(bin()).args(args).output().unwrap()
}

#[tokio::test]
async fn send_without_a_channel_uses_the_only_one_and_names_several() {
    // One channel configured: `send` without `channel` goes there.
    let slack = FakeSlack::start().await;
    slack.add_channel("C123", true);
    let gw = start(format!("channels:\n{}", slack_section(&slack)));
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    let r = ws
        .call(
            "send",
            json!({"to": "C123", "message": "only one", "idempotencyKey": "k1"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["channel"], "slack", "{r}");
    let sent = slack.wait_for_sent(1, T).await;
    assert_eq!(
        (sent[0].channel.as_str(), sent[0].text.as_str()),
        ("C123", "only one")
    );
    drop(ws);
    drop(gw);

    // Two channels: no guessing, an INVALID_REQUEST that names them.
    let tg = FakeTelegram::start().await;
    let gw = start(format!(
        "channels:\n{}{}",
        telegram_section(&tg),
        slack_section(&slack)
    ));
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    let r = ws
        .call(
            "send",
            json!({"to": "12345", "message": "which?", "idempotencyKey": "k2"}),
        )
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    assert_eq!(
        r["error"]["message"],
        "Error: Channel is required when multiple channels are configured: telegram, slack. \
         Pass --channel <channel> to choose one."
    );
    // message.action (what the OpenClaw CLI sends) follows the same rule.
    let r = ws
        .call(
            "message.action",
            json!({"action": "send", "params": {"to": "12345", "message": "which?"}, "idempotencyKey": "k3"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("telegram, slack"),
        "{r}"
    );
    assert!(tg.sent_messages().is_empty());
    assert_eq!(slack.sent_messages().len(), 1);
}

#[tokio::test]
async fn send_to_a_channel_that_is_not_running_says_how_to_set_it_up() {
    let tg = FakeTelegram::start().await;
    let gw = start(format!("channels:\n{}", telegram_section(&tg)));
    let out = run(
        &gw,
        &[
            "message",
            "send",
            "--channel",
            "slack",
            "--to",
            "C123",
            "--text",
            "hi",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Slack is not configured"), "{t}");
    assert!(t.contains("channels.slack.botToken"), "{t}");
    // No channel configured at all: `send` without one says so.
    drop(gw);
    let gw = start(String::new());
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    let r = ws
        .call(
            "send",
            json!({"to": "1", "message": "x", "idempotencyKey": "k"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no configured channels"),
        "{r}"
    );
}

#[tokio::test]
async fn slack_targets_channel_user_and_mention_forms() {
    let slack = FakeSlack::start().await;
    slack.add_channel("C123", true);
    let tg = FakeTelegram::start().await;
    let gw = start(format!(
        "channels:\n{}{}",
        telegram_section(&tg),
        slack_section(&slack)
    ));
    for (to, msg) in [
        ("channel:C123", "to the channel"),
        ("user:U0BOB", "to a user"),
        ("<@U0BOB>", "to a mention"),
    ] {
        let out = run(
            &gw,
            &[
                "message",
                "send",
                "--channel",
                "slack",
                "--to",
                to,
                "--text",
                msg,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{to}: {}", text(&out));
    }
    let sent = slack.wait_for_sent(3, T).await;
    let dm = slack.dm_channel("U0BOB");
    assert_eq!(sent[0].channel, "C123");
    // A user target opens the DM first and posts into it.
    assert!(slack.call_count("conversations.open") >= 1);
    assert_eq!(sent[1].requested_channel, dm);
    assert_eq!(sent[1].text, "to a user");
    assert_eq!(sent[2].requested_channel, dm);
    // A channel name is refused with the way to find the id; nothing is posted.
    let out = run(
        &gw,
        &[
            "message",
            "send",
            "--channel",
            "slack",
            "--to",
            "#general",
            "--text",
            "x",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("names are not resolved"),
        "{}",
        text(&out)
    );
    assert_eq!(slack.sent_messages().len(), 3);
    assert!(tg.sent_messages().is_empty());
}

#[tokio::test]
async fn channels_status_lists_telegram_and_slack() {
    let slack = FakeSlack::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(format!(
        "channels:\n{}{}",
        telegram_section(&tg),
        slack_section(&slack)
    ));
    assert!(slack.wait_for_connections(1, T).await);
    let v: Value = clawgate_testkit::wait_for("both channels connected", T, || {
        let out = run(&gw, &["channels", "status", "--json"]);
        async move {
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let up = |c: &str| v["channelAccounts"][c][0]["connected"] == true;
            (up("telegram") && up("slack")).then_some(v)
        }
    })
    .await;
    // OpenClaw's UI catalog for each channel.
    assert_eq!(v["channelOrder"], json!(["telegram", "slack"]));
    assert_eq!(
        v["channelDetailLabels"],
        json!({"telegram": "Telegram Bot", "slack": "Slack Bot"})
    );
    assert_eq!(
        v["channelMeta"][1],
        json!({"id": "slack", "label": "Slack", "detailLabel": "Slack Bot", "systemImage": "number"})
    );
    assert_eq!(v["channels"]["slack"]["configured"], true);
    assert_eq!(v["channelAccounts"]["slack"][0]["dmPolicy"], "pairing");
    // One channel on request; a name no plugin has is refused, as in OpenClaw.
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let r = ws
        .call("channels.status", json!({"channel": "slack"}))
        .await;
    assert_eq!(r["payload"]["channelOrder"], json!(["slack"]), "{r}");
    assert!(r["payload"]["channelAccounts"]["telegram"].is_null(), "{r}");
    let r = ws
        .call("channels.status", json!({"channel": "nosuchchannel"}))
        .await;
    assert_eq!(r["error"]["code"], "INVALID_REQUEST", "{r}");
    assert_eq!(r["error"]["message"], "unknown channel: nosuchchannel");
    let out = run(&gw, &["channels", "status"]);
    assert_eq!(out.status.code(), Some(0));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        t.contains("telegram (default): connected, mode polling"),
        "{t}"
    );
    assert!(t.contains("slack (default): connected, mode socket"), "{t}");
}

/// `clawgate doctor` against a home with `config`, no gateway running.
fn doctor(config: &str) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // A port nothing listens on, so the doctor does not find some other gateway.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!("gateway:\n  port: {port}\n{config}");
    clawgate_testkit::gateway::write_config(home.path(), &config);
    let out = std::process::Command::new(bin())
        .arg("doctor")
        .env("CLAWGATE_HOME", home.path())
        .env_remove("CLAWGATE_GATEWAY_URL")
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn doctor_slack_http_mode_names_the_request_url_and_nginx_location() {
    let (code, out) = doctor(
        "channels:\n  slack:\n    mode: http\n    botToken: \"xoxb-1-2-abc\"\n    signingSecret: \"8f742231b10e8888abcd99yyyzzz85a5\"\n    webhookPath: /hooks/slack\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("✓ slack        botToken is a bot token (xoxb-…)"),
        "{out}"
    );
    assert!(out.contains("http mode: signingSecret is set"), "{out}");
    assert!(
        out.contains("Request URL) enter https://<your-public-host>/hooks/slack"),
        "{out}"
    );
    assert!(out.contains("location = /hooks/slack {"), "{out}");
    // The bot listens in no channel yet: advice, not a failure.
    assert!(
        out.contains("! slack        groupPolicy allowlist"),
        "{out}"
    );
    assert!(
        !out.contains("xoxb-1-2-abc"),
        "the token is never printed: {out}"
    );
}

#[test]
fn doctor_slack_socket_mode_and_wrong_token_kinds() {
    let (code, out) = doctor(
        "channels:\n  slack:\n    botToken: \"xoxb-1-2-abc\"\n    appToken: \"xapp-1-A1-xyz\"\n    channels:\n      C123: {}\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("appToken is an app-level token"), "{out}");
    assert!(
        out.contains("socket mode: the gateway connects out"),
        "{out}"
    );
    // A bot token where the app token belongs (and vice versa) is refused, with the key.
    let (code, out) = doctor(
        "channels:\n  slack:\n    botToken: \"xapp-1-A1-xyz\"\n    appToken: \"xoxb-1-2-abc\"\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("channels.slack.botToken"), "{out}");
    assert!(out.contains("xoxb-"), "{out}");
    assert!(out.contains("channels.slack.appToken"), "{out}");
}

#[test]
fn doctor_telegram_webhook_url_must_be_public_https() {
    let base = "channels:\n  telegram:\n    botToken: \"123456:ABCdefGhIJKlmNoPQRsTUVwxyZ0123456789\"\n    mode: webhook\n    webhookSecret: s3cret\n";
    let (code, out) = doctor(&format!(
        "{base}    webhookUrl: http://bot.example.com/webhook/telegram\n"
    ));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("✗ telegram"), "{out}");
    assert!(out.contains("Telegram only posts to HTTPS"), "{out}");
    let (code, out) = doctor(&format!(
        "{base}    webhookUrl: https://bot.example.com/webhook/telegram\n"
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("webhook mode: Telegram posts to https://bot.example.com/webhook/telegram"),
        "{out}"
    );
    let (code, out) = doctor(base);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("! telegram"), "{out}");
    assert!(
        out.contains("webhookUrl: https://<your-public-host>/webhook/telegram"),
        "{out}"
    );
}

#[tokio::test]
async fn doctor_reports_each_running_channel() {
    let slack = FakeSlack::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(format!(
        "channels:\n{}{}",
        telegram_section(&tg),
        slack_section(&slack)
    ));
    assert!(slack.wait_for_connections(1, T).await);
    let out = clawgate_testkit::wait_for("both channels connected in doctor", T, || {
        let out = run(&gw, &["doctor"]);
        async move {
            let t = text(&out);
            (t.contains("✓ telegram     gateway: running, connected (polling)")
                && t.contains("✓ slack        gateway: running, connected (socket)"))
            .then_some(out)
        }
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
