use std::time::{Duration, Instant};

use serde_json::json;

use super::{bot, call_form, call_json, post, raw_call, to_reply, TIMEOUT};
use crate::fake_slack::{FakeSlack, FakeSlackConfig, Fault};

#[tokio::test]
async fn auth_test_returns_the_bot_identity() {
    let fake = FakeSlack::start().await;
    let r = bot(&fake, "auth.test", json!({})).await;
    let body = r.expect_ok();
    assert_eq!(body["user_id"], "U0BOT");
    assert_eq!(body["bot_id"], "B0BOT");
    assert_eq!(body["team_id"], "T0001");
    assert_eq!(body["url"], "https://clawtest.slack.com/");
    assert!(
        body["user"].is_string() && body["team"].is_string(),
        "{body}"
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[tokio::test]
async fn token_checks_answer_200_with_slack_errors() {
    let fake = FakeSlack::start().await;
    call_json(&fake, "auth.test", None, json!({}))
        .await
        .expect_error("not_authed");
    call_json(&fake, "auth.test", Some("xoxb-wrong"), json!({}))
        .await
        .expect_error("invalid_auth");
    // The app-level token is not for chat methods, the bot token not for Socket Mode.
    let app = fake.app_token().to_string();
    call_json(
        &fake,
        "chat.postMessage",
        Some(&app),
        json!({"channel": "C1", "text": "x"}),
    )
    .await
    .expect_error("not_allowed_token_type");
    let bot_token = fake.bot_token().to_string();
    call_json(&fake, "apps.connections.open", Some(&bot_token), json!({}))
        .await
        .expect_error("not_allowed_token_type");
    call_json(&fake, "apps.connections.open", None, json!({}))
        .await
        .expect_error("not_authed");
    call_json(
        &fake,
        "apps.connections.open",
        Some("xapp-1-other"),
        json!({}),
    )
    .await
    .expect_error("invalid_auth");
    // A token inside a JSON body does not count.
    let body = json!({"token": fake.bot_token()});
    call_json(&fake, "auth.test", None, body)
        .await
        .expect_error("not_authed");
    // Nothing was posted by any of these.
    assert!(fake.sent_messages().is_empty());
    assert_eq!(fake.call_count("auth.test"), 3);
    let calls = fake.calls();
    assert_eq!(calls[0].error.as_deref(), Some("not_authed"));
    assert_eq!(calls[0].status, 200);
}

#[tokio::test]
async fn revoked_token_answers_token_revoked() {
    let fake = FakeSlack::start().await;
    fake.revoke_bot_token();
    bot(&fake, "auth.test", json!({}))
        .await
        .expect_error("token_revoked");
}

#[tokio::test]
async fn form_bodies_carry_the_token_and_parameters() {
    let fake = FakeSlack::start().await;
    let form = format!(
        "token={}&channel=C0CHAN&text=hello%20form&thread_ts=1715599000.000100",
        fake.bot_token()
    );
    let r = call_form(&fake, "chat.postMessage", &form).await;
    let body = r.expect_ok();
    assert_eq!(body["channel"], "C0CHAN");
    assert_eq!(body["message"]["text"], "hello form");
    assert_eq!(body["message"]["thread_ts"], "1715599000.000100");
    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "hello form");
    assert_eq!(sent[0].thread_ts.as_deref(), Some("1715599000.000100"));
    call_form(&fake, "auth.test", "")
        .await
        .expect_error("not_authed");
}

#[tokio::test]
async fn post_message_returns_the_stored_message_with_increasing_ts() {
    let fake = FakeSlack::start().await;
    let mut last = String::new();
    for i in 0..5 {
        let body = post(&fake, "C0CHAN", &format!("msg {i}")).await;
        let ts = body["ts"].as_str().expect("ts").to_string();
        let (secs, micros) = ts.split_once('.').expect("ts has a dot");
        assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{ts}");
        let as_num = |t: &str| t.replace('.', "").parse::<u128>().unwrap();
        if !last.is_empty() {
            assert!(as_num(&ts) > as_num(&last), "{ts} after {last}");
        }
        last = ts.clone();
        let m = &body["message"];
        assert_eq!(m["ts"], ts.as_str());
        assert_eq!(m["user"], "U0BOT");
        assert_eq!(m["bot_id"], "B0BOT");
        assert_eq!(m["type"], "message");
        assert_eq!(
            fake.message("C0CHAN", &ts).expect("stored")["text"],
            format!("msg {i}")
        );
    }
    let r = bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": "*b*", "mrkdwn": false, "thread_ts": last}),
    )
    .await;
    assert_eq!(r.expect_ok()["message"]["thread_ts"], last.as_str());
    let sent = fake.wait_for_sent(6, TIMEOUT).await;
    assert_eq!(sent.len(), 6);
    assert!(sent[0].mrkdwn, "mrkdwn defaults to true");
    assert!(!sent[5].mrkdwn);
    assert_eq!(sent[5].thread_ts.as_deref(), Some(last.as_str()));
}

#[tokio::test]
async fn post_message_validates_text() {
    let fake = FakeSlack::start().await;
    bot(&fake, "chat.postMessage", json!({"channel": "C0CHAN"}))
        .await
        .expect_error("no_text");
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": ""}),
    )
    .await
    .expect_error("no_text");
    let long = "é".repeat(40_001);
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": long}),
    )
    .await
    .expect_error("msg_too_long");
    // Exactly at the limit (in characters, not bytes) is fine.
    let max = "é".repeat(40_000);
    post(&fake, "C0CHAN", &max).await;
    // Blocks alone are enough; malformed blocks are not.
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]);
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "blocks": blocks}),
    )
    .await
    .expect_ok();
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "blocks": "{nope"}),
    )
    .await
    .expect_error("invalid_blocks");
    assert_eq!(fake.sent_messages().len(), 2);
}

#[tokio::test]
async fn channel_errors_are_configurable() {
    let fake = FakeSlack::start().await;
    fake.add_channel("C0OUT", false);
    fake.delete_channel("C0GONE");
    fake.archive_channel("C0ARCH");
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0OUT", "text": "x"}),
    )
    .await
    .expect_error("not_in_channel");
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0GONE", "text": "x"}),
    )
    .await
    .expect_error("channel_not_found");
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0ARCH", "text": "x"}),
    )
    .await
    .expect_error("is_archived");
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "#general", "text": "x"}),
    )
    .await
    .expect_error("channel_not_found");
    bot(&fake, "chat.postMessage", json!({"text": "x"}))
        .await
        .expect_error("channel_not_found");
    fake.set_member("C0OUT", true);
    post(&fake, "C0OUT", "joined").await;
    assert_eq!(fake.sent_messages().len(), 1);

    let strict = FakeSlack::start_with(FakeSlackConfig {
        strict_channels: true,
        ..FakeSlackConfig::default()
    })
    .await;
    bot(
        &strict,
        "chat.postMessage",
        json!({"channel": "C0NEW", "text": "x"}),
    )
    .await
    .expect_error("channel_not_found");
    strict.add_channel("C0NEW", true);
    post(&strict, "C0NEW", "x").await;
}

#[tokio::test]
async fn posting_to_a_user_id_lands_in_the_dm() {
    let fake = FakeSlack::start().await;
    let body = post(&fake, "U0ALICE", "hi").await;
    let dm = fake.dm_channel("U0ALICE");
    assert!(dm.starts_with('D'), "{dm}");
    assert_eq!(body["channel"], dm.as_str());
    let sent = fake.sent_messages();
    assert_eq!(sent[0].channel, dm);
    assert_eq!(sent[0].requested_channel, "U0ALICE");
}

#[tokio::test]
async fn conversations_open_gives_a_dm_id() {
    let fake = FakeSlack::start().await;
    let r = bot(&fake, "conversations.open", json!({"users": "U0BOB"})).await;
    let id = r.expect_ok()["channel"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with('D'), "{id}");
    assert!(r.body.get("already_open").is_none(), "{}", r.body);
    let again = bot(&fake, "conversations.open", json!({"users": "U0BOB"})).await;
    assert_eq!(again.expect_ok()["channel"]["id"], id.as_str());
    assert_eq!(again.body["already_open"], true);
    let form = format!("token={}&users=U0BOB&return_im=true", fake.bot_token());
    let full = call_form(&fake, "conversations.open", &form).await;
    assert_eq!(full.expect_ok()["channel"]["user"], "U0BOB");
    assert_eq!(full.body["channel"]["is_im"], true);
    let group = bot(
        &fake,
        "conversations.open",
        json!({"users": "U0BOB,U0CAROL"}),
    )
    .await;
    let gid = group.expect_ok()["channel"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gid.starts_with('G') && gid != id, "{gid}");
    bot(&fake, "conversations.open", json!({}))
        .await
        .expect_error("users_list_not_supplied");
    bot(&fake, "conversations.open", json!({"users": "bob"}))
        .await
        .expect_error("user_not_found");
    // The DM is a conversation the bot can post to.
    let body = post(&fake, &id, "in the dm").await;
    assert_eq!(body["channel"], id.as_str());
}

#[tokio::test]
async fn chat_update_edits_only_the_bots_messages() {
    let fake = FakeSlack::start().await;
    let ts = post(&fake, "C0CHAN", "draft").await["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let r = bot(
        &fake,
        "chat.update",
        json!({"channel": "C0CHAN", "ts": ts, "text": "final"}),
    )
    .await;
    let body = r.expect_ok();
    assert_eq!(body["ts"], ts.as_str());
    assert_eq!(body["text"], "final");
    assert_eq!(body["message"]["text"], "final");
    assert_eq!(fake.message("C0CHAN", &ts).unwrap()["text"], "final");
    let updates = fake.updated_messages();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        (updates[0].ts.as_str(), updates[0].text.as_str()),
        (ts.as_str(), "final")
    );
    bot(
        &fake,
        "chat.update",
        json!({"channel": "C0CHAN", "ts": "1.000001", "text": "x"}),
    )
    .await
    .expect_error("message_not_found");
    bot(
        &fake,
        "chat.update",
        json!({"channel": "C0CHAN", "ts": ts, "text": ""}),
    )
    .await
    .expect_error("no_text");
    // A user's message cannot be edited by the bot.
    let user_msg = fake.channel_message("C0CHAN", "U0USER", "mine");
    let user_ts = user_msg["ts"].as_str().unwrap().to_string();
    fake.deliver_event(user_msg);
    bot(
        &fake,
        "chat.update",
        json!({"channel": "C0CHAN", "ts": user_ts, "text": "x"}),
    )
    .await
    .expect_error("cant_update_message");
    // Only the successful update counts as sent; chat.update is not a post.
    assert_eq!(fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn reactions_add_and_remove() {
    let fake = FakeSlack::start().await;
    let ts = post(&fake, "C0CHAN", "react to me").await["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let args = json!({"channel": "C0CHAN", "timestamp": ts, "name": "eyes"});
    bot(&fake, "reactions.add", args.clone()).await.expect_ok();
    bot(&fake, "reactions.add", args.clone())
        .await
        .expect_error("already_reacted");
    assert_eq!(
        fake.reactions(),
        vec![("C0CHAN".to_string(), ts.clone(), "eyes".to_string())]
    );
    bot(&fake, "reactions.remove", args.clone())
        .await
        .expect_ok();
    bot(&fake, "reactions.remove", args.clone())
        .await
        .expect_error("no_reaction");
    assert!(fake.current_reactions().is_empty());
    bot(
        &fake,
        "reactions.add",
        json!({"channel": "C0CHAN", "timestamp": "1.000002", "name": "eyes"}),
    )
    .await
    .expect_error("message_not_found");
    bot(
        &fake,
        "reactions.add",
        json!({"channel": "C0CHAN", "name": "eyes"}),
    )
    .await
    .expect_error("no_item_specified");
    bot(
        &fake,
        "reactions.add",
        json!({"channel": "C0CHAN", "timestamp": ts, "name": ":eyes:"}),
    )
    .await
    .expect_error("invalid_name");
}

#[tokio::test]
async fn apps_connections_open_hands_out_fresh_ws_urls() {
    let fake = FakeSlack::start().await;
    let app = fake.app_token().to_string();
    let a = call_json(&fake, "apps.connections.open", Some(&app), json!({})).await;
    let b = call_json(&fake, "apps.connections.open", Some(&app), json!({})).await;
    let (a, b) = (
        a.expect_ok()["url"].as_str().unwrap().to_string(),
        b.expect_ok()["url"].as_str().unwrap().to_string(),
    );
    let prefix = format!("ws://{}/link/?ticket=", fake.addr());
    assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a}");
    assert!(a.contains("app_id=A0001"), "{a}");
    assert_ne!(a, b, "every URL carries a fresh ticket");
    assert_eq!(fake.tickets_issued(), 2);
    // The app token may not come as a form parameter.
    let form = format!("token={app}");
    call_form(&fake, "apps.connections.open", &form)
        .await
        .expect_error("not_authed");
}

#[tokio::test]
async fn rate_limit_fault_answers_429_with_retry_after() {
    let fake = FakeSlack::start().await;
    fake.fail_next("chat.postMessage", Fault::RateLimited(7));
    let r = bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": "x"}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.body, json!({"ok": false, "error": "ratelimited"}));
    assert!(fake.sent_messages().is_empty());
    // One-shot: the retry goes through.
    post(&fake, "C0CHAN", "x").await;
    let calls = fake.calls();
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[1].status, 200);
}

#[tokio::test]
async fn emulated_per_channel_rate_limit() {
    let fake = FakeSlack::start().await;
    fake.set_post_message_interval(Some(Duration::from_secs(30)));
    post(&fake, "C0ONE", "first").await;
    let r = bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0ONE", "text": "x"}),
    )
    .await;
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // Other channels are limited separately.
    post(&fake, "C0TWO", "other channel").await;
    fake.set_post_message_interval(None);
    post(&fake, "C0ONE", "after").await;
}

#[tokio::test]
async fn error_and_status_faults() {
    let fake = FakeSlack::start().await;
    fake.fail_next("chat.postMessage", Fault::Error("internal_error".into()));
    fake.fail_next("chat.postMessage", Fault::Status(503));
    fake.fail_next("*", Fault::Error("fatal_error".into()));
    bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": "x"}),
    )
    .await
    .expect_error("internal_error");
    let r = bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": "x"}),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["ok"], false);
    bot(&fake, "auth.test", json!({}))
        .await
        .expect_error("fatal_error");
    bot(&fake, "auth.test", json!({})).await.expect_ok();
    assert!(fake.sent_messages().is_empty());
}

#[tokio::test]
async fn reset_fault_aborts_the_connection() {
    let fake = FakeSlack::start().await;
    fake.fail_next("chat.postMessage", Fault::ResetConnection);
    let body = json!({"channel": "C0CHAN", "text": "x"}).to_string();
    let auth = format!("Bearer {}", fake.bot_token());
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let r = raw_call(&fake, "chat.postMessage", &headers, body.as_bytes()).await;
    assert!(r.is_err(), "no HTTP answer expected: {r:?}");
    assert!(fake.sent_messages().is_empty());
    assert_eq!(fake.calls()[0].status, 0);
}

#[tokio::test]
async fn hang_and_stall_faults_hold_the_answer() {
    let fake = FakeSlack::start().await;
    fake.fail_next("auth.test", Fault::Hang);
    let auth = format!("Bearer {}", fake.bot_token());
    let headers = [("Authorization", auth.as_str())];
    let url = format!("{}/auth.test", fake.api_root());
    let target = crate::fake_telegram::client::split_url(&url).unwrap();
    let hung = crate::fake_telegram::client::http_request(
        &target,
        "POST",
        &headers,
        b"",
        Duration::from_millis(300),
    )
    .await;
    assert!(hung.is_err(), "{hung:?}");
    fake.fail_next("auth.test", Fault::Stall(Duration::from_millis(200)));
    let start = Instant::now();
    let r = to_reply(raw_call(&fake, "auth.test", &headers, b"").await.unwrap());
    r.expect_ok();
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn json_without_charset_gets_a_warning() {
    let fake = FakeSlack::start().await;
    let auth = format!("Bearer {}", fake.bot_token());
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let r = to_reply(raw_call(&fake, "auth.test", &headers, b"{}").await.unwrap());
    r.expect_ok();
    assert_eq!(r.body["warning"], "missing_charset");
    assert_eq!(
        r.body["response_metadata"]["warnings"][0],
        "missing_charset"
    );
    let with = bot(&fake, "auth.test", json!({})).await;
    assert!(with.body.get("warning").is_none(), "{}", with.body);
}

#[tokio::test]
async fn unknown_methods_and_bad_json() {
    let fake = FakeSlack::start().await;
    let r = bot(&fake, "chat.nope", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"], "unknown_method");
    let auth = format!("Bearer {}", fake.bot_token());
    let headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Authorization", auth.as_str()),
    ];
    let r = to_reply(
        raw_call(&fake, "chat.postMessage", &headers, b"{nope")
            .await
            .unwrap(),
    );
    r.expect_error("invalid_json");
}

#[test]
fn blocking_constructor_serves_from_its_own_runtime() {
    let fake = FakeSlack::start_blocking();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(bot(&fake, "auth.test", json!({})));
    r.expect_ok();
}

#[tokio::test]
async fn conversations_replies_returns_the_thread() {
    let fake = FakeSlack::start().await;
    let root = fake.channel_message("C0CHAN", "U0USER", "question");
    let root_ts = root["ts"].as_str().unwrap().to_string();
    fake.deliver_event(root);
    fake.deliver_event(fake.thread_reply("C0CHAN", "U0OTHER", "me too", &root_ts));
    let r = bot(
        &fake,
        "chat.postMessage",
        json!({"channel": "C0CHAN", "text": "answer", "thread_ts": root_ts}),
    )
    .await;
    assert_eq!(r.expect_ok()["message"]["parent_user_id"], "U0USER");
    post(&fake, "C0CHAN", "unrelated top-level").await;
    let r = bot(
        &fake,
        "conversations.replies",
        json!({"channel": "C0CHAN", "ts": root_ts}),
    )
    .await;
    let texts: Vec<&str> = r.expect_ok()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["question", "me too", "answer"]);
    assert_eq!(r.body["has_more"], false);
    let r = bot(
        &fake,
        "conversations.replies",
        json!({"channel": "C0CHAN", "ts": root_ts, "limit": 2}),
    )
    .await;
    assert_eq!(r.expect_ok()["messages"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["has_more"], true);
    bot(
        &fake,
        "conversations.replies",
        json!({"channel": "C0CHAN", "ts": "1.000009"}),
    )
    .await
    .expect_error("thread_not_found");
}

#[tokio::test]
async fn conversations_info_and_users_info() {
    let fake = FakeSlack::start().await;
    fake.add_channel("C0OUT", false);
    let r = bot(&fake, "conversations.info", json!({"channel": "C0OUT"})).await;
    let c = &r.expect_ok()["channel"];
    assert_eq!(
        (c["is_channel"].as_bool(), c["is_member"].as_bool()),
        (Some(true), Some(false))
    );
    let dm = fake.dm_channel("U0ALICE");
    let r = bot(&fake, "conversations.info", json!({"channel": dm})).await;
    assert_eq!(r.expect_ok()["channel"]["is_im"], true);
    assert_eq!(r.body["channel"]["user"], "U0ALICE");
    fake.delete_channel("C0GONE");
    bot(&fake, "conversations.info", json!({"channel": "C0GONE"}))
        .await
        .expect_error("channel_not_found");
    let r = bot(&fake, "users.info", json!({"user": "U0ALICE"})).await;
    let u = &r.expect_ok()["user"];
    assert_eq!(u["id"], "U0ALICE");
    assert_eq!(u["is_bot"], false);
    let r = bot(&fake, "users.info", json!({"user": "U0BOT"})).await;
    assert_eq!(r.expect_ok()["user"]["is_bot"], true);
    bot(&fake, "users.info", json!({"user": "nobody"}))
        .await
        .expect_error("user_not_found");
}

#[tokio::test]
async fn conversations_list_pages_the_requested_types() {
    let fake = FakeSlack::start().await;
    fake.add_channel("C2", true);
    fake.add_channel("C1", false);
    fake.add_channel("G1", true);
    fake.archive_channel("C2");
    // Default: public channels only, archived included.
    let r = bot(&fake, "conversations.list", json!({})).await;
    let ids: Vec<&str> = r.expect_ok()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C1", "C2"]);
    assert_eq!(r.body["channels"][0]["is_member"], false);
    assert_eq!(r.body["response_metadata"]["next_cursor"], "");
    let form = format!(
        "token={}&types=public_channel%2Cprivate_channel&exclude_archived=true&limit=1",
        fake.bot_token()
    );
    let page = call_form(&fake, "conversations.list", &form).await;
    assert_eq!(page.expect_ok()["channels"][0]["id"], "C1");
    let cursor = page.body["response_metadata"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!cursor.is_empty());
    let rest = bot(
        &fake,
        "conversations.list",
        json!({"types": "public_channel,private_channel", "exclude_archived": true, "cursor": cursor}),
    )
    .await;
    assert_eq!(rest.expect_ok()["channels"][0]["id"], "G1");
    assert_eq!(rest.body["channels"][0]["is_private"], true);
    assert_eq!(rest.body["response_metadata"]["next_cursor"], "");
    bot(&fake, "conversations.list", json!({"types": "nonsense"}))
        .await
        .expect_error("invalid_types");
}
