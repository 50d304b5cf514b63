//! Issue 8 §2, Slack follow-ups with the real binary: `replyToMode` threading per chunk,
//! OpenClaw's session keys (channel, thread, group DM), the Socket Mode watchdog on a
//! half-open socket, fatal vs transient `ok:false` errors on `chat.postMessage`, other bots'
//! messages (`allowBots`), and `message.action` `edit` (`chat.update`).

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::fake_slack::Fault;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::{wait_for, FakeLlm, FakeSlack, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

const T: Duration = Duration::from_secs(20);
const USER: &str = "U0000001";

fn models(llm: &FakeLlm) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        llm.openai_base_url()
    )
}

/// Socket Mode with `extra` lines appended under `channels.slack` (4-space indented).
fn start(llm: &FakeLlm, slack: &FakeSlack, extra: &str) -> GatewayProcess {
    let config = format!(
        "{}channels:\n  slack:\n    botToken: \"{}\"\n    appToken: \"{}\"\n    apiRoot: {}\n{extra}",
        models(llm),
        slack.bot_token(),
        slack.app_token(),
        slack.api_root()
    );
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    )
}

fn call(gw: &GatewayProcess, method: &str, params: Value) -> Result<Value, String> {
    let out = gw
        .cli(bin())
        .args(["gateway", "call", method, "--params", &params.to_string()])
        .output()
        .unwrap();
    if out.status.code() == Some(0) {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON on stdout"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn slack_status(gw: &GatewayProcess) -> Value {
    call(gw, "channels.status", json!({})).unwrap()["channelAccounts"]["slack"][0].clone()
}

/// Waits until the Slack status satisfies `f`; returns it.
async fn status_until(gw: &GatewayProcess, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, T, || {
        let s = slack_status(gw);
        let ok = f(&s);
        async move { ok.then_some(s) }
    })
    .await
}

/// The user texts stored in a session's transcript.
fn user_texts(gw: &GatewayProcess, key: &str) -> Vec<String> {
    let v = call(gw, "sessions.get", json!({ "key": key })).unwrap_or(Value::Null);
    v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| {
            m["content"]
                .as_str()
                .map(String::from)
                .or_else(|| {
                    m["content"].as_array().map(|parts| {
                        parts
                            .iter()
                            .filter_map(|p| p["text"].as_str())
                            .collect::<Vec<_>>()
                            .join("")
                    })
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Three paragraphs of 60–70 characters: three chunks at `textChunkLimit: 100`.
const LONG: &str = "First part of the answer, long enough to fill most of one chunk.\n\nSecond part of the answer, again most of a chunk on its own.\n\nThird part, the end of the answer, in a chunk of its own.";
const FIRST: &str = "First part of the answer, long enough to fill most of one chunk.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_reply_to_mode_first_threads_only_the_first_chunk() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    let _gw = start(
        &llm,
        &slack,
        &format!("    replyToMode: first\n    textChunkLimit: 100\n    allowFrom: [\"{USER}\"]\n    channels:\n      C0CHAN:\n        requireMention: true\n"),
    );
    assert!(slack.wait_for_connections(1, T).await);

    // A top-level mention: the first chunk starts a thread under it, the rest go to the channel.
    llm.push(Step::text(LONG));
    let root = slack.channel_message("C0CHAN", USER, &slack.mention("explain"));
    let root_ts = root["ts"].as_str().unwrap().to_string();
    slack.deliver_message(root);
    let sent = slack.wait_for_sent(3, T).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0].text, FIRST);
    assert_eq!(
        sent[0].thread_ts.as_deref(),
        Some(root_ts.as_str()),
        "{sent:?}"
    );
    assert_eq!(sent[1].thread_ts, None, "{sent:?}");
    assert_eq!(sent[2].thread_ts, None, "{sent:?}");

    // A message inside a thread: every chunk stays in that thread.
    llm.push(Step::text(LONG));
    slack.deliver_message(slack.thread_reply("C0CHAN", USER, &slack.mention("more"), &root_ts));
    let sent = slack.wait_for_sent(6, T).await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    for s in &sent[3..] {
        assert_eq!(s.thread_ts.as_deref(), Some(root_ts.as_str()), "{sent:?}");
    }

    // DMs follow the same mode: the first chunk threads under the DM message.
    llm.push(Step::text(LONG));
    let dm = slack.dm_message(USER, "in a DM");
    let dm_ts = dm["ts"].as_str().unwrap().to_string();
    slack.deliver_message(dm);
    let sent = slack.wait_for_sent(9, T).await;
    assert_eq!(sent.len(), 9, "{sent:?}");
    assert_eq!(
        sent[6].thread_ts.as_deref(),
        Some(dm_ts.as_str()),
        "{sent:?}"
    );
    assert_eq!(sent[7].thread_ts, None);
    assert_eq!(sent[8].thread_ts, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_reply_to_mode_off_answers_in_the_channel_but_stays_in_a_thread() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    let _gw = start(
        &llm,
        &slack,
        &format!("    textChunkLimit: 100\n    allowFrom: [\"{USER}\"]\n    channels:\n      C0CHAN:\n        requireMention: true\n"),
    );
    assert!(slack.wait_for_connections(1, T).await);
    llm.push(Step::text(LONG));
    slack.deliver_message(slack.channel_message("C0CHAN", USER, &slack.mention("hi")));
    let sent = slack.wait_for_sent(3, T).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|s| s.thread_ts.is_none()), "{sent:?}");
    llm.push(Step::text(LONG));
    slack.deliver_message(slack.thread_reply(
        "C0CHAN",
        USER,
        &slack.mention("in thread"),
        "1715599000.000100",
    ));
    let sent = slack.wait_for_sent(6, T).await;
    assert_eq!(sent.len(), 6, "{sent:?}");
    for s in &sent[3..] {
        assert_eq!(
            s.thread_ts.as_deref(),
            Some("1715599000.000100"),
            "{sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_session_keys_for_channel_thread_and_group_dm() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    slack.add_channel("G0MPIM", true);
    let gw = start(
        &llm,
        &slack,
        &format!("    allowFrom: [\"{USER}\"]\n    groupPolicy: open\n"),
    );
    assert!(slack.wait_for_connections(1, T).await);

    slack.deliver_message(slack.channel_message("C0CHAN", USER, &slack.mention("in the channel")));
    slack.wait_for_sent(1, T).await;
    slack.deliver_message(slack.thread_reply(
        "C0CHAN",
        USER,
        &slack.mention("in the thread"),
        "1715599000.000100",
    ));
    slack.wait_for_sent(2, T).await;
    let mut mpim = slack.channel_message("G0MPIM", USER, &slack.mention("in the group DM"));
    mpim["channel_type"] = json!("mpim");
    slack.deliver_message(mpim);
    slack.wait_for_sent(3, T).await;

    let channel = "agent:main:slack:channel:c0chan";
    let thread = "agent:main:slack:channel:c0chan:thread:1715599000.000100";
    let group = "agent:main:slack:group:g0mpim";
    let texts = wait_for("the three sessions", T, || {
        let t = (
            user_texts(&gw, channel),
            user_texts(&gw, thread),
            user_texts(&gw, group),
        );
        async move { (!t.0.is_empty() && !t.1.is_empty() && !t.2.is_empty()).then_some(t) }
    })
    .await;
    assert_eq!(texts.0, vec!["in the channel"], "{texts:?}");
    assert_eq!(texts.1, vec!["in the thread"], "{texts:?}");
    assert_eq!(texts.2, vec!["in the group DM"], "{texts:?}");
    let list = call(&gw, "sessions.list", json!({})).unwrap();
    let keys: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    for k in [channel, thread, group] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_half_open_socket_is_noticed_and_replaced() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(&llm, &slack, &format!("    allowFrom: [\"{USER}\"]\n"));
    assert!(slack.wait_for_connections(1, T).await);
    let first = slack.latest_connection().unwrap();
    // No close frame, no FIN, no pongs: only the gateway's own watchdog can tell.
    slack.freeze_connection(first);
    let frozen_at = Instant::now();
    slack.deliver_message(slack.dm_message(USER, "are you there?"));
    let sent = slack.wait_for_sent(1, Duration::from_secs(40)).await;
    assert_eq!(sent.len(), 1, "a reply after the watchdog reconnected");
    assert!(
        frozen_at.elapsed() < Duration::from_secs(30),
        "noticed within ping interval + 15 s pong timeout: {:?}",
        frozen_at.elapsed()
    );
    let conns = slack.connections();
    assert!(conns.len() >= 2, "{conns:?}");
    assert!(conns[0].frozen);
    assert!(
        slack.tickets_issued() >= 2,
        "a fresh URL for the new connection"
    );
    let s = status_until(&gw, "the reply to settle", |s| {
        s["outbox"]["sent"] == 1 && s["inbound"]["done"] == 1
    })
    .await;
    assert!(s["restarts"].as_u64().unwrap_or(0) >= 1, "{s}");
    // The watchdog's reason is in the log and the stop time in the status; once the new
    // connection works the status no longer shows it as the current error.
    assert!(s["lastStopAt"].as_i64().is_some(), "{s}");
    assert!(s["lastError"].is_null(), "recovered: {s}");
    assert!(
        gw.stderr_text().contains("half-open"),
        "the watchdog's reason is logged"
    );
    assert_eq!(slack.sent_messages().len(), 1, "exactly one reply");
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_fatal_post_errors_are_shown_and_not_retried() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0OUT", false);
    let gw = start(
        &llm,
        &slack,
        &format!("    allowFrom: [\"{USER}\"]\n    channels:\n      C0OUT:\n        requireMention: true\n"),
    );
    assert!(slack.wait_for_connections(1, T).await);
    status_until(&gw, "the bot identity", |s| s["connected"] == true).await;

    // `message send` to a deleted channel: refused once, reported, shown in the status.
    slack.delete_channel("C0GONE");
    let err = call(
        &gw,
        "send",
        json!({"channel": "slack", "to": "C0GONE", "message": "x", "idempotencyKey": "k-gone"}),
    )
    .unwrap_err();
    assert!(err.contains("channel_not_found"), "{err}");
    let s = status_until(&gw, "channel_not_found in the status", |s| {
        s["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("channel_not_found"))
    })
    .await;
    assert_eq!(s["outbox"]["failed"], 1, "{s}");
    assert_eq!(slack.call_count("chat.postMessage"), 1);

    // A reply in a channel the bot is not in: `not_in_channel`, one attempt.
    slack.deliver_message(slack.channel_message("C0OUT", USER, &slack.mention("hello")));
    let s = status_until(&gw, "not_in_channel in the status", |s| {
        s["outbox"]["failed"] == 2
    })
    .await;
    assert!(
        s["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("not_in_channel"),
        "{s}"
    );
    assert_eq!(slack.call_count("chat.postMessage"), 2);

    // A revoked token answers `invalid_auth`: one attempt too.
    slack.fail_next("chat.postMessage", Fault::Error("invalid_auth".into()));
    slack.deliver_message(slack.dm_message(USER, "and now?"));
    let s = status_until(&gw, "invalid_auth in the status", |s| {
        s["outbox"]["failed"] == 3
    })
    .await;
    assert!(
        s["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("invalid_auth"),
        "{s}"
    );
    assert_eq!(slack.call_count("chat.postMessage"), 3);
    assert!(slack.sent_messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_rate_limits_and_server_errors_are_retried() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    let gw = start(&llm, &slack, &format!("    allowFrom: [\"{USER}\"]\n"));
    assert!(slack.wait_for_connections(1, T).await);
    slack.fail_next("chat.postMessage", Fault::RateLimited(2));
    slack.fail_next("chat.postMessage", Fault::Status(503));
    slack.fail_next("chat.postMessage", Fault::Error("internal_error".into()));
    slack.deliver_message(slack.dm_message(USER, "hi"));
    let sent = slack.wait_for_sent(1, Duration::from_secs(30)).await;
    assert_eq!(sent.len(), 1);
    let posts: Vec<_> = slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(posts.len(), 4, "{posts:?}");
    assert_eq!(posts[0].status, 429);
    assert!(
        posts[1].at.duration_since(posts[0].at) >= Duration::from_millis(1900),
        "Retry-After: 2 honoured"
    );
    let s = status_until(&gw, "the reply to settle", |s| s["outbox"]["sent"] == 1).await;
    assert_eq!(s["outbox"]["failed"], 0, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_other_bots_are_ignored_by_default() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    let gw = start(
        &llm,
        &slack,
        "    channels:\n      C0CHAN:\n        requireMention: false\n",
    );
    assert!(slack.wait_for_connections(1, T).await);
    status_until(&gw, "the bot identity", |s| s["connected"] == true).await;
    slack.deliver_message(slack.bot_message("C0CHAN", "B0OTHER", "U0OTHERBOT", "beep"));
    slack.deliver_message(slack.legacy_bot_message("C0CHAN", "B0LEGACY", "boop"));
    slack.deliver_message(slack.own_bot_message("C0CHAN", "my own words", None));
    slack.deliver_message(slack.channel_message("C0CHAN", "U0HUMAN", "a person"));
    let s = status_until(&gw, "four messages handled", |s| {
        s["inbound"]["ignored"] == 3 && s["outbox"]["sent"] == 1
    })
    .await;
    assert_eq!(s["inbound"]["done"], 1, "{s}");
    assert_eq!(llm.request_count(), 1);
    assert_eq!(slack.sent_messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_allow_bots_answers_other_bots_never_itself() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    let gw = start(
        &llm,
        &slack,
        "    allowBots: true\n    channels:\n      C0CHAN:\n        requireMention: false\n",
    );
    assert!(slack.wait_for_connections(1, T).await);
    status_until(&gw, "the bot identity", |s| s["connected"] == true).await;
    slack.deliver_message(slack.own_bot_message("C0CHAN", "my own words", None));
    slack.deliver_message(slack.bot_message("C0CHAN", "B0OTHER", "U0OTHERBOT", "beep"));
    slack.deliver_message(slack.legacy_bot_message("C0CHAN", "B0LEGACY", "boop"));
    let s = status_until(&gw, "three messages handled", |s| {
        s["inbound"]["ignored"] == 1 && s["outbox"]["sent"] == 2
    })
    .await;
    assert_eq!(s["inbound"]["done"], 2, "{s}");
    assert_eq!(llm.request_count(), 2);
    let prompts: Vec<String> = llm.requests().iter().map(|r| r.body.to_string()).collect();
    assert!(prompts.iter().any(|p| p.contains("beep")), "{prompts:?}");
    assert!(prompts.iter().any(|p| p.contains("boop")), "{prompts:?}");
    assert!(!prompts.iter().any(|p| p.contains("my own words")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_2_message_action_edit_updates_a_sent_message() {
    let llm = FakeLlm::start().await;
    let slack = FakeSlack::start().await;
    slack.add_channel("C0CHAN", true);
    let gw = start(&llm, &slack, "");
    let sent = call(
        &gw,
        "message.action",
        json!({"channel": "slack", "action": "send",
               "params": {"to": "C0CHAN", "message": "draft"}, "idempotencyKey": "e-1"}),
    )
    .unwrap();
    let ts = sent["messageId"]
        .as_str()
        .expect("the posted ts")
        .to_string();
    let out = gw
        .cli(bin())
        .args([
            "gateway",
            "call",
            "message.action",
            "--params",
            &json!({"channel": "slack", "action": "edit",
                    "params": {"to": "C0CHAN", "messageId": ts, "message": "**final** & done"}})
            .to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["messageId"], ts.as_str());
    let updated = slack.updated_messages();
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0].ts, ts);
    assert_eq!(updated[0].channel, "C0CHAN");
    // Markdown becomes mrkdwn, as for sends.
    assert_eq!(updated[0].text, "*final* &amp; done");
    assert_eq!(
        slack.message("C0CHAN", &ts).unwrap()["text"],
        "*final* &amp; done"
    );

    // The same through `clawgate message edit`.
    let out = gw
        .cli(bin())
        .args([
            "message",
            "edit",
            "--channel",
            "slack",
            "--to",
            "C0CHAN",
            "--message-id",
            &ts,
            "--text",
            "edited again",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("edited"));
    assert_eq!(
        slack.message("C0CHAN", &ts).unwrap()["text"],
        "edited again"
    );

    // Slack's refusal is an error: a message that does not exist.
    let err = call(
        &gw,
        "message.action",
        json!({"channel": "slack", "action": "edit",
               "params": {"to": "C0CHAN", "messageId": "1.000001", "message": "x"}}),
    )
    .unwrap_err();
    assert!(err.contains("message_not_found"), "{err}");
    // Missing messageId: a parameter error.
    let err = call(
        &gw,
        "message.action",
        json!({"channel": "slack", "action": "edit", "params": {"to": "C0CHAN", "message": "x"}}),
    )
    .unwrap_err();
    assert!(err.contains("messageId"), "{err}");
    assert_eq!(slack.updated_messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i8_message_action_edit_on_telegram_uses_edit_message_text() {
    let llm = FakeLlm::start().await;
    let tg = clawgate_testkit::FakeTelegram::start().await;
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "{}channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
                models(&llm),
                tg.token(),
                tg.api_root()
            )),
            ..Options::default()
        },
    );
    let sent = call(
        &gw,
        "message.action",
        json!({"channel": "telegram", "action": "send",
               "params": {"to": "12345", "message": "draft"}, "idempotencyKey": "t-1"}),
    )
    .unwrap();
    let mid = sent["messageId"]
        .as_str()
        .expect("the message id")
        .to_string();
    let v = call(
        &gw,
        "message.action",
        json!({"channel": "telegram", "action": "edit",
               "params": {"to": "12345", "messageId": mid, "message": "**final**"}}),
    )
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let edited = tg.edited_messages();
    assert_eq!(edited.len(), 1, "{edited:?}");
    assert_eq!(edited[0].chat_id, 12345);
    assert_eq!(edited[0].message_id.to_string(), mid);
    assert_eq!(edited[0].text, "final");
    assert_eq!(edited[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(tg.sent_messages().len(), 1);
}
