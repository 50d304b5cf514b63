//! Telegram end to end: the real gateway binary, a fake Telegram Bot API server and a fake LLM
//! on loopback, nginx (Debian's package) as the reverse proxy for the webhook.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::fake_telegram::{post_update, Fault};
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{cli_params, RawWs};
use clawgate_testkit::{wait_for, FakeLlm, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const SECRET: &str = "hook-secret_0123456789";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn config(llm: &FakeLlm, tg: &FakeTelegram, telegram_extra: &str) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n{telegram_extra}",
        llm.openai_base_url(),
        tg.token(),
        tg.api_root()
    )
}

fn start(llm: &FakeLlm, tg: &FakeTelegram, extra: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(llm, tg, extra)),
            ..Options::default()
        },
    )
}

/// `channels.status` through the real CLI (JSON).
fn channel_status(gw: &GatewayProcess) -> Value {
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["channelAccounts"]["telegram"][0].clone()
}

async fn until_status(gw: &GatewayProcess, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, T, || {
        let s = channel_status(gw);
        let ok = pred(&s);
        async move { ok.then_some(s) }
    })
    .await
}

#[tokio::test]
async fn polling_dm_from_an_allowed_user_gets_one_reply() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "    allowFrom: [\"42\"]\n");
    tg.inject_private_text(42, "hello");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1, "no reply");
    assert_eq!(sent[0].chat_id, 42);
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    assert!(tg
        .chat_actions()
        .iter()
        .any(|(chat, action, _)| *chat == 42 && action == "typing"));
    assert_eq!(llm.request_count(), 1);
    let user_turn = llm.requests()[0].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(user_turn["content"], "hello");
    // Stored in the per-sender session (session.dmScope default: per-channel-peer).
    let s = until_status(&gw, "the message to be marked done", |s| {
        s["inbound"]["done"] == 1 && s["outbox"]["sent"] == 1
    })
    .await;
    assert_eq!(s["connected"], true);
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let h = ws
        .call(
            "chat.history",
            json!({"sessionKey": "agent:main:telegram:direct:42"}),
        )
        .await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 2, "{h}");
}

#[tokio::test]
async fn unknown_sender_gets_a_pairing_code_then_is_answered_after_approval() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "");
    tg.inject_private_text(777, "hi there");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1);
    let text = sent[0].text.clone();
    assert!(text.contains("Your Telegram user id: 777"), "{text}");
    let code = text
        .split("Pairing code: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(code.len(), 8);
    assert!(
        code.chars()
            .all(|c| "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c)),
        "{code}"
    );
    assert_eq!(
        llm.request_count(),
        0,
        "the agent must not run for an unknown sender"
    );
    // A second message before approval: no second code, no agent.
    tg.inject_private_text(777, "hello?");
    until_status(&gw, "the second message to be ignored", |s| {
        s["inbound"]["ignored"] == 1
    })
    .await;
    assert_eq!(tg.sent_messages().len(), 1);
    // The owner lists and approves with the CLI.
    let cli = |args: &[&str]| gw.cli(bin()).args(args).output().unwrap();
    let out = cli(&["pairing", "list", "telegram"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&code));
    let out = cli(&["pairing", "approve", "telegram", &code.to_lowercase()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["pairing", "approve", "telegram", &code]);
    assert_eq!(out.status.code(), Some(1), "a code works once");
    // The approved sender is told so, then answered.
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(
        sent[1].text,
        "✅ Access approved. Send a message to start chatting."
    );
    tg.inject_private_text(777, "now?");
    let sent = tg.wait_for_sent(3, T).await;
    assert_eq!(sent[2].text, "Hello from the fake LLM!");
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn the_same_update_delivered_twice_gets_one_reply() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "    allowFrom: [\"42\"]\n");
    let id = tg.inject_private_text(42, "hello");
    tg.wait_for_sent(1, T).await;
    let original = tg
        .calls()
        .into_iter()
        .find(|c| c.method == "getupdates" && c.status == 200)
        .map(|_| ())
        .is_some();
    assert!(original);
    // Telegram redelivers the same update (e.g. the offset was not confirmed in time).
    let polls_before = tg.call_count("getupdates");
    tg.inject_raw_update(json!({"update_id": id, "message": {"message_id": 1, "date": 1767225600,
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "chat": {"id": 42, "type": "private"}, "text": "hello"}}));
    // Two more completed polls: the redelivery was received and confirmed.
    wait_for("two more polls", T, || {
        let n = tg.call_count("getupdates");
        async move { (n >= polls_before + 2).then_some(()) }
    })
    .await;
    let s = channel_status(&gw);
    assert_eq!(s["inbound"]["done"], 1, "{s}");
    assert_eq!(tg.sent_messages().len(), 1);
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn a_429_on_send_message_is_retried_after_retry_after() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    tg.fail_next("sendmessage", Fault::RetryAfter(1));
    let _gw = start(&llm, &tg, "    allowFrom: [\"42\"]\n");
    tg.inject_private_text(42, "hello");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1);
    let sends: Vec<_> = tg
        .calls()
        .into_iter()
        .filter(|c| c.method == "sendmessage")
        .collect();
    assert_eq!(sends.len(), 2, "one refused, one delivered");
    assert_eq!(sends[0].status, 429);
    assert_eq!(sends[1].status, 200);
    assert!(
        sends[1].at.duration_since(sends[0].at) >= Duration::from_millis(950),
        "retry_after honoured"
    );
}

#[tokio::test]
async fn sigkill_between_acceptance_and_reply_still_gets_exactly_one_reply() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    // The first answer takes long enough to kill the gateway while it runs.
    llm.push(Step::Text {
        chunks: vec!["slow".into(), " answer".into()],
        delay_ms: 3000,
    });
    let gw = start(&llm, &tg, "    allowFrom: [\"42\"]\n");
    tg.inject_private_text(42, "hello");
    assert!(llm.wait_for_requests(1, T).await, "the agent never started");
    let home = gw.stop();
    assert!(tg.sent_messages().is_empty());
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1);
    until_status(&gw, "the reply to be settled", |s| {
        s["inbound"]["done"] == 1 && s["outbox"]["sent"] == 1 && s["outbox"]["pending"] == 0
    })
    .await;
    assert_eq!(tg.sent_messages().len(), 1, "exactly one reply");
}

#[tokio::test]
async fn a_stalled_poll_is_detected_and_recovered() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    tg.fail_next("getupdates", Fault::Hang);
    let gw = start(
        &llm,
        &tg,
        "    allowFrom: [\"42\"]\n    stallTimeoutSeconds: 2\n",
    );
    let s = until_status(&gw, "the stall to be detected", |s| {
        s["stalls"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(
        s["lastError"].as_str().unwrap_or("").contains("stalled"),
        "{s}"
    );
    tg.inject_private_text(42, "are you there?");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1, "recovered after the stall");
    // doctor-style status output names the stall.
    let out = gw.cli(bin()).args(["channels", "status"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stalls detected: 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn group_messages_need_a_mention() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "    groups:\n      \"-100555\": {}\n");
    tg.inject_group_text(-100555, 42, "hello everyone", json!([]), false);
    until_status(&gw, "the unmentioned message to be ignored", |s| {
        s["inbound"]["ignored"] == 1
    })
    .await;
    assert_eq!(llm.request_count(), 0);
    let text = "@claw_test_bot what is up";
    tg.inject_group_text(
        -100555,
        42,
        text,
        json!([{"type": "mention", "offset": 0, "length": 14}]),
        false,
    );
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent[0].chat_id, -100555);
    assert!(
        sent[0].reply_to_message_id.is_some(),
        "group replies quote the message"
    );
    // A group that is not listed is ignored even with a mention.
    tg.inject_group_text(
        -100999,
        42,
        text,
        json!([{"type": "mention", "offset": 0, "length": 14}]),
        false,
    );
    until_status(&gw, "the unlisted group to be ignored", |s| {
        s["inbound"]["ignored"] == 2
    })
    .await;
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn message_send_through_the_cli() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "");
    let out = gw
        .cli(bin())
        .args([
            "message",
            "send",
            "--channel",
            "telegram",
            "--to",
            "12345",
            "--text",
            "**hi** <there>",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent[0].chat_id, 12345);
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        sent[0].text, "hi <there>",
        "rendered as HTML, stored by the fake without tags"
    );
    // An unknown channel is refused.
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    let r = ws
        .call(
            "send",
            json!({"to": "1", "message": "x", "channel": "nosuchchannel", "idempotencyKey": "k"}),
        )
        .await;
    assert_eq!(r["error"]["message"], "unsupported channel: nosuchchannel");
    // The same idempotency key twice sends once.
    let p =
        json!({"to": "12345", "message": "once", "channel": "telegram", "idempotencyKey": "same"});
    ws.call("send", p.clone()).await;
    ws.call("send", p).await;
    tg.wait_for_sent(2, T).await;
    let n = tg
        .sent_messages()
        .iter()
        .filter(|m| m.text == "once")
        .count();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn webhook_through_nginx() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(
        &llm,
        &tg,
        &format!("    mode: webhook\n    webhookSecret: \"{SECRET}\"\n    allowFrom: [\"42\"]\n"),
    );
    let nginx = clawgate_testkit::nginx::start_nginx(gw.port(), &[]);
    let url = format!("http://127.0.0.1:{}/webhook/telegram", nginx.port);
    let update = json!({"update_id": 5001, "message": {"message_id": 11, "date": 1767225600,
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "chat": {"id": 42, "type": "private"}, "text": "via nginx"}});
    // Forged or missing secret: 401 and no agent call.
    let (status, _) = post_update(&url, Some("wrong-secret"), &update).await;
    assert_eq!(status, 401);
    let (status, _) = post_update(&url, None, &update).await;
    assert_eq!(status, 401);
    let (status, body) = post_update(&url, Some(SECRET), &update).await;
    assert_eq!(status, 200, "{body}");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent[0].chat_id, 42);
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    // Telegram retrying the same update: acknowledged, not answered again.
    let (status, _) = post_update(&url, Some(SECRET), &update).await;
    assert_eq!(status, 200);
    until_status(&gw, "the delivery to settle", |s| {
        s["outbox"]["sent"] == 1 && s["inbound"]["done"] == 1
    })
    .await;
    assert_eq!(llm.request_count(), 1);
    assert_eq!(tg.sent_messages().len(), 1);

    // A client coming through nginx is never local: no scopes without a device identity.
    let nginx_addr: std::net::SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let mut ws = RawWs::connect(nginx_addr).await;
    ws.challenge().await;
    let res = ws
        .connect_req(cli_params(&gw.token(), &["operator.admin"]))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    let st = ws.call("status", json!({})).await;
    assert_eq!(st["error"]["code"], "FORBIDDEN");
}

#[test]
fn webhook_mode_without_a_secret_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    clawgate_testkit::gateway::write_config(
        home.path(),
        "channels:\n  telegram:\n    botToken: \"1:ABC\"\n    mode: webhook\n",
    );
    let (status, _, err) = clawgate_testkit::gateway::run_to_exit(
        bin(),
        home.path(),
        &Options::default(),
        "0",
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(78));
    assert!(
        err.contains("channels.telegram.webhookSecret: required in webhook mode"),
        "{err}"
    );
}

#[tokio::test]
async fn poll_conflicts_and_rate_limits_are_survived() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    tg.fail_next("getupdates", Fault::Status(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".into()));
    tg.fail_next("getupdates", Fault::RetryAfter(1));
    let gw = start(&llm, &tg, "    allowFrom: [\"42\"]\n");
    tg.inject_private_text(42, "still there?");
    let sent = tg.wait_for_sent(1, T).await;
    assert_eq!(sent.len(), 1);
    let polls: Vec<u16> = tg
        .calls()
        .iter()
        .filter(|c| c.method == "getupdates")
        .map(|c| c.status)
        .collect();
    assert_eq!(&polls[..2], &[409, 429], "{polls:?}");
    // Once polls succeed again the conflict is history: logged, not the current error.
    let s = channel_status(&gw);
    assert!(s["lastError"].is_null(), "{s}");
    assert_eq!(s["connected"], true, "{s}");
    assert!(
        tg.call_count("deletewebhook") >= 2,
        "a conflict triggers webhook cleanup"
    );
}

#[tokio::test]
async fn webhook_url_is_registered_with_its_secret() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let _gw = start(
        &llm,
        &tg,
        &format!("    mode: webhook\n    webhookSecret: \"{SECRET}\"\n    webhookUrl: https://claw.example.com/webhook/telegram\n"),
    );
    wait_for("setWebhook", T, || {
        let n = tg.call_count("setwebhook");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let call = tg
        .calls()
        .into_iter()
        .find(|c| c.method == "setwebhook")
        .unwrap();
    assert_eq!(
        call.params["url"],
        "https://claw.example.com/webhook/telegram"
    );
    assert_eq!(call.params["secret_token"], SECRET);
    assert_eq!(tg.call_count("getupdates"), 0, "no polling in webhook mode");
}

#[tokio::test]
async fn rejected_formatting_falls_back_to_plain_text_and_long_replies_are_chunked() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let long = (0..30)
        .map(|i| format!("Paragraph {i}: {}", "word ".repeat(30)))
        .collect::<Vec<_>>()
        .join("\n\n");
    llm.push(Step::text(&long));
    tg.fail_next(
        "sendmessage",
        Fault::Status(
            400,
            "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"
                .into(),
        ),
    );
    let _gw = start(
        &llm,
        &tg,
        "    allowFrom: [\"42\"]\n    textChunkLimit: 1000\n",
    );
    tg.inject_private_text(42, "tell me a lot");
    let expected_chunks = clawgate_channels_chunks(&long, 1000);
    let sent = tg.wait_for_sent(expected_chunks, T).await;
    assert_eq!(sent.len(), expected_chunks, "one message per chunk");
    assert!(sent.iter().all(|m| m.text.chars().count() <= 1000));
    // The first chunk was refused as HTML and resent as plain text.
    assert_eq!(sent[0].parse_mode, None);
    assert_eq!(sent[1].parse_mode.as_deref(), Some("HTML"));
    let joined: String = sent
        .iter()
        .map(|m| m.text.clone())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        joined.split_whitespace().count(),
        long.split_whitespace().count()
    );
}

/// How many messages the gateway's chunker makes of `text` (recomputed independently: every
/// paragraph here is ~170 characters, so chunks hold whole paragraphs).
fn clawgate_channels_chunks(text: &str, limit: usize) -> usize {
    let mut chunks = 0;
    let mut len = 0usize;
    for p in text.split("\n\n") {
        let n = p.chars().count();
        if len == 0 {
            len = n;
            chunks += 1;
        } else if len + 2 + n <= limit {
            len += 2 + n;
        } else {
            len = n;
            chunks += 1;
        }
    }
    chunks
}
