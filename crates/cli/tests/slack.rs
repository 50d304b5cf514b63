//! Issue 8 §2: Slack end to end with the real binary (beyond the contract suite in
//! channel_contract.rs): the `url_verification` handshake, `message send`, status next to
//! Telegram, and a refused start without the credential the mode needs.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeLlm, FakeSlack, FakeTelegram, GatewayProcess};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

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

fn models(llm: &FakeLlm) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        llm.openai_base_url()
    )
}

#[tokio::test]
async fn i8_2_url_verification_is_answered_on_the_shared_gate() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(format!(
        "{}channels:\n  slack:\n    mode: http\n    botToken: \"{}\"\n    signingSecret: \"{}\"\n    apiRoot: {}\n",
        models(&llm),
        slack.bot_token(),
        slack.signing_secret(),
        slack.api_root()
    ));
    let url = format!("http://127.0.0.1:{}/slack/events", gw.port());
    slack.verify_url(&url).await.expect("url_verification");
}

#[tokio::test]
async fn i8_2_message_send_to_slack_and_status_shows_both_channels() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C123", true);
    let tg = FakeTelegram::start().await;
    let gw = start(format!(
        "{}channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n  slack:\n    botToken: \"{}\"\n    appToken: \"{}\"\n    apiRoot: {}\n",
        models(&llm),
        tg.token(),
        tg.api_root(),
        slack.bot_token(),
        slack.app_token(),
        slack.api_root()
    ));
    let out = gw
        .cli(bin())
        .args([
            "message",
            "send",
            "--channel",
            "slack",
            "--to",
            "C123",
            "--text",
            "**hi** <you>",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = slack.wait_for_sent(1, Duration::from_secs(20)).await;
    assert_eq!(sent[0].channel, "C123");
    // Model Markdown becomes mrkdwn, with & < > escaped.
    assert_eq!(sent[0].text, "*hi* &lt;you&gt;");
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["channelOrder"],
        serde_json::json!(["telegram", "slack"]),
        "{v}"
    );
    assert_eq!(v["channelAccounts"]["slack"][0]["mode"], "socket");
    assert_eq!(v["channelLabels"]["slack"], "Slack");
    // An id that is not a Slack conversation or user: a clear error.
    let out = gw
        .cli(bin())
        .args([
            "message",
            "send",
            "--channel",
            "slack",
            "--to",
            "#general",
            "--text",
            "x",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn i8_2_socket_mode_without_an_app_token_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    clawgate_testkit::gateway::write_config(
        home.path(),
        "channels:\n  slack:\n    botToken: \"xoxb-1-2\"\n",
    );
    let (status, _, err) = clawgate_testkit::gateway::run_to_exit(
        bin(),
        home.path(),
        &Options::default(),
        "0",
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(78));
    assert!(err.contains("channels.slack.appToken: required"), "{err}");
}

fn socket_config(llm: &FakeLlm, slack: &FakeSlack) -> String {
    format!(
        "{}channels:\n  slack:\n    botToken: \"{}\"\n    appToken: \"{}\"\n    apiRoot: {}\n    allowFrom: [\"U0000001\"]\n",
        models(llm),
        slack.bot_token(),
        slack.app_token(),
        slack.api_root()
    )
}

fn slack_status(gw: &GatewayProcess) -> Value {
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["channelAccounts"]["slack"][0].clone()
}

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn i8_2_socket_dropped_without_close_frame_is_reconnected_and_nothing_lost() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(socket_config(&llm, &slack));
    assert!(slack.wait_for_connections(1, T).await);
    let first = slack.latest_connection().unwrap();
    // TCP reset, no close frame; a message arrives meanwhile.
    slack.reset_connection(first);
    slack.deliver_message(slack.dm_message("U0000001", "still there?"));
    let sent = slack.wait_for_sent(1, T).await;
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    assert!(
        slack.tickets_issued() >= 2,
        "a fresh URL for the new connection"
    );
    let s = clawgate_testkit::wait_for("the reply to settle", T, || {
        let s = slack_status(&gw);
        async move { (s["outbox"]["sent"] == 1 && s["inbound"]["done"] == 1).then_some(s) }
    })
    .await;
    assert!(s["restarts"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert_eq!(slack.sent_messages().len(), 1);
}

#[tokio::test]
async fn i8_2_refresh_requested_opens_the_next_connection_before_closing() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let _gw = start(socket_config(&llm, &slack));
    assert!(slack.wait_for_connections(1, T).await);
    slack.send_disconnect("refresh_requested");
    let conns = slack
        .wait_until(T, || {
            let c = slack.connections();
            (c.len() >= 2 && c[0].closed_at.is_some()).then_some(c)
        })
        .await
        .expect("a second connection");
    assert!(conns[1].opened_at <= conns[0].closed_at.unwrap());
    slack.deliver_message(slack.dm_message("U0000001", "after refresh"));
    slack.wait_for_sent(1, T).await;
}

#[tokio::test]
async fn i8_2_link_disabled_stops_with_a_clear_status() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(socket_config(&llm, &slack));
    assert!(slack.wait_for_connections(1, T).await);
    slack.send_disconnect("link_disabled");
    let s = clawgate_testkit::wait_for("the status to show link_disabled", T, || {
        let s = slack_status(&gw);
        async move {
            s["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("link_disabled"))
                .then_some(s)
        }
    })
    .await;
    assert_eq!(s["connected"], false, "{s}");
    assert_eq!(
        slack.tickets_issued(),
        1,
        "no reconnect after link_disabled"
    );
}

#[tokio::test]
async fn i8_2_events_api_through_nginx_forwarding_the_public_host() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(format!(
        "gateway:\n  trustedProxies: [127.0.0.1]\n{}channels:\n  slack:\n    mode: http\n    botToken: \"{}\"\n    signingSecret: \"{}\"\n    apiRoot: {}\n    allowFrom: [\"U0000001\"]\n",
        models(&llm),
        slack.bot_token(),
        slack.signing_secret(),
        slack.api_root()
    ));
    // As a real deployment does: the public name in Host and X-Forwarded-Host.
    let nginx = clawgate_testkit::nginx::start_nginx(
        gw.port(),
        &[
            ("Host", "bot.example.com"),
            ("X-Forwarded-Host", "bot.example.com"),
        ],
    );
    let url = format!("http://127.0.0.1:{}/slack/events", nginx.port);
    // The handshake and a signed event pass nginx with no gateway.allowedHosts entry.
    slack
        .verify_url(&url)
        .await
        .expect("url_verification through nginx");
    slack.deliver_message(slack.dm_message("U0000001", "via nginx"));
    let sent = slack.wait_for_sent(1, T).await;
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    // A stale timestamp, an altered body, a wrong secret: 401, no agent call.
    for t in [
        clawgate_testkit::fake_slack::Tamper::StaleTimestamp,
        clawgate_testkit::fake_slack::Tamper::AlteredBody,
        clawgate_testkit::fake_slack::Tamper::WrongSecret,
    ] {
        let a = slack
            .send_tampered(slack.dm_message("U0000001", "forged"), t.clone())
            .await;
        assert_eq!(a.status, Some(401), "{t:?}");
    }
    assert_eq!(llm.request_count(), 1);
    assert_eq!(slack.sent_messages().len(), 1);
}
