use std::time::{Duration, Instant};

use serde_json::json;

use super::{api, api_get, expect_error, expect_ok, update_ids};
use crate::fake_telegram::{FakeTelegram, DEFAULT_FIRST_UPDATE_ID};

const FIRST: i64 = DEFAULT_FIRST_UPDATE_ID;
const POLL_CONFLICT: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
const WEBHOOK_CONFLICT: &str = "Conflict: can't use getUpdates method while webhook is active; \
                                use deleteWebhook to delete the webhook first";

#[tokio::test]
async fn get_me_describes_the_bot() {
    let fake = FakeTelegram::start().await;
    let me = expect_ok(&api(&fake, "getMe", json!({})).await);
    assert_eq!(
        me,
        json!({
            "id": 123456,
            "is_bot": true,
            "first_name": "Claw",
            "username": "claw_test_bot",
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
        })
    );
    // Method names are case-insensitive and GET works too.
    let again = expect_ok(&api_get(&fake, "GETME", "").await);
    assert_eq!(again, me);
    assert_eq!(fake.call_count("getMe"), 2);
    assert_eq!(fake.calls()[1].method, "getme");
    assert_eq!(fake.calls()[1].status, 200);
    assert_eq!(fake.bot_id(), 123456);
    assert_eq!(fake.api_root(), format!("http://{}", fake.addr()));
}

#[tokio::test]
async fn offset_confirms_updates() {
    let fake = FakeTelegram::start().await;
    let ids: Vec<i64> = ["one", "two", "three"]
        .iter()
        .map(|t| fake.inject_private_text(42, t))
        .collect();
    assert_eq!(ids, vec![FIRST, FIRST + 1, FIRST + 2]);

    let all = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(update_ids(&all), ids);
    let msg = &all[0]["message"];
    assert_eq!(msg["text"], "one");
    assert_eq!(msg["message_id"], 1000);
    assert_eq!(all[2]["message"]["message_id"], 1002);
    assert_eq!(
        msg["chat"],
        json!({"id": 42, "first_name": "Tester42", "username": "tester42", "type": "private"})
    );
    assert_eq!(msg["from"]["id"], 42);
    assert_eq!(msg["from"]["is_bot"], false);
    assert!(msg["date"].as_i64().unwrap() > 1_600_000_000);

    // Unconfirmed updates come back; `limit` caps the batch.
    let again = expect_ok(&api(&fake, "getUpdates", json!({"limit": 2})).await);
    assert_eq!(update_ids(&again), vec![FIRST, FIRST + 1]);

    // offset = first + 1 confirms the first one.
    let rest = expect_ok(&api(&fake, "getUpdates", json!({"offset": FIRST + 1})).await);
    assert_eq!(update_ids(&rest), vec![FIRST + 1, FIRST + 2]);
    assert_eq!(fake.pending_update_count(), 2);

    let none = expect_ok(&api(&fake, "getUpdates", json!({"offset": FIRST + 3})).await);
    assert_eq!(none, json!([]));
    assert_eq!(fake.pending_update_count(), 0);

    // Ids keep increasing after confirmation.
    assert_eq!(fake.inject_private_text(42, "four"), FIRST + 3);
}

#[tokio::test]
async fn negative_offset_keeps_only_the_last_updates() {
    let fake = FakeTelegram::start().await;
    for i in 0..5 {
        fake.inject_private_text(7, &format!("m{i}"));
    }
    let last = expect_ok(&api(&fake, "getUpdates", json!({"offset": -2})).await);
    assert_eq!(update_ids(&last), vec![FIRST + 3, FIRST + 4]);
    assert_eq!(last[1]["message"]["text"], "m4");
    assert_eq!(fake.pending_update_count(), 2);
}

#[tokio::test]
async fn long_poll_wakes_up_on_injection() {
    let fake = std::sync::Arc::new(FakeTelegram::start().await);
    let poller = fake.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let reply = api(&poller, "getUpdates", json!({"offset": 0, "timeout": 10})).await;
        (reply, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll must wait for an update");
    let id = fake.inject_private_text(5, "wake up");
    let (reply, elapsed) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("poll answers well before its 10 s timeout")
        .expect("join");
    let result = expect_ok(&reply);
    assert_eq!(update_ids(&result), vec![id]);
    assert_eq!(result[0]["message"]["text"], "wake up");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn long_poll_times_out_with_an_empty_list() {
    let fake = FakeTelegram::start().await;
    let started = Instant::now();
    let result = expect_ok(&api(&fake, "getUpdates", json!({"timeout": 1})).await);
    let elapsed = started.elapsed();
    assert_eq!(result, json!([]));
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_second_poller_terminates_the_first() {
    let fake = std::sync::Arc::new(FakeTelegram::start().await);
    let first = {
        let fake = fake.clone();
        tokio::spawn(async move { api(&fake, "getUpdates", json!({"timeout": 10})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished());
    let second = {
        let fake = fake.clone();
        tokio::spawn(async move { api(&fake, "getUpdates", json!({"timeout": 10})).await })
    };
    let first = tokio::time::timeout(Duration::from_secs(3), first)
        .await
        .expect("the earlier poll answers at once")
        .expect("join");
    assert_eq!(expect_error(&first, 409), POLL_CONFLICT);
    // The newer poll is still waiting and gets the next update.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second.is_finished());
    let id = fake.inject_private_text(9, "for the survivor");
    let second = tokio::time::timeout(Duration::from_secs(3), second)
        .await
        .expect("second poll answers")
        .expect("join");
    assert_eq!(update_ids(&expect_ok(&second)), vec![id]);
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![409, 200]);
}

#[tokio::test]
async fn get_updates_conflicts_with_a_webhook() {
    let fake = std::sync::Arc::new(FakeTelegram::start().await);
    fake.set_webhook_delivery(false);
    let pending = {
        let fake = fake.clone();
        tokio::spawn(async move { api(&fake, "getUpdates", json!({"timeout": 10})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let set = api(
        &fake,
        "setWebhook",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(expect_ok(&set), json!(true));
    assert_eq!(set.1["description"], "Webhook was set");
    // The poll that was waiting is cut off with the webhook conflict.
    let pending = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("pending poll answers")
        .expect("join");
    assert_eq!(expect_error(&pending, 409), WEBHOOK_CONFLICT);
    let now = api(&fake, "getUpdates", json!({})).await;
    assert_eq!(expect_error(&now, 409), WEBHOOK_CONFLICT);
    // Delivery is paused, so the update waits in the queue.
    fake.inject_private_text(3, "queued");
    let info = expect_ok(&api(&fake, "getWebhookInfo", json!({})).await);
    assert_eq!(info["url"], "http://127.0.0.1:9/hook");
    assert_eq!(info["pending_update_count"], 1);
    assert_eq!(info["has_custom_certificate"], false);

    let deleted = api(&fake, "deleteWebhook", json!({})).await;
    assert_eq!(expect_ok(&deleted), json!(true));
    assert_eq!(deleted.1["description"], "Webhook was deleted");
    let after = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(update_ids(&after), vec![FIRST]);
}

#[tokio::test]
async fn raw_updates_are_redelivered_with_their_own_id() {
    let fake = FakeTelegram::start().await;
    let id = fake.inject_private_text(11, "once");
    let got = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    let update = got[0].clone();
    let none = expect_ok(&api(&fake, "getUpdates", json!({"offset": id + 1})).await);
    assert_eq!(none, json!([]));

    fake.inject_raw_update(update.clone());
    let again = expect_ok(&api(&fake, "getUpdates", json!({"offset": id + 1})).await);
    assert_eq!(again, json!([update]));
    // Once returned, the offset confirms it like any other.
    let gone = expect_ok(&api(&fake, "getUpdates", json!({"offset": id + 1})).await);
    assert_eq!(gone, json!([]));
    // The counter is not disturbed.
    assert_eq!(fake.inject_private_text(11, "next"), id + 1);
}

#[tokio::test]
async fn allowed_updates_filters_kinds() {
    let fake = FakeTelegram::start().await;
    fake.inject_update(json!({"callback_query": {"id": "cb1", "data": "x"}}));
    let msg_id = fake.inject_private_text(4, "text");
    fake.inject_update(json!({"message_reaction": {"chat": {"id": 4}}}));
    // By default message_reaction is opt-in.
    let default = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(update_ids(&default), vec![FIRST, msg_id]);
    let only = json!({"allowed_updates": ["message"]});
    let filtered = expect_ok(&api(&fake, "getUpdates", only).await);
    assert_eq!(update_ids(&filtered), vec![msg_id]);
    // The setting sticks; a form-style JSON string works too.
    let sticky = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(update_ids(&sticky), vec![msg_id]);
    let reactions = json!({"allowed_updates": "[\"message_reaction\"]"});
    let reaction = expect_ok(&api(&fake, "getUpdates", reactions).await);
    assert_eq!(update_ids(&reaction), vec![FIRST + 2]);
}

#[tokio::test]
async fn injected_updates_get_ids_and_are_replyable() {
    let fake = FakeTelegram::start().await;
    let id = fake.inject_update(json!({"message": {"chat": {"id": -100500, "type": "supergroup"}, "from": {"id": 8}, "text": "custom"}}));
    assert_eq!(id, FIRST);
    let got = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(got[0]["update_id"], FIRST);
    assert_eq!(got[0]["message"]["message_id"], 1000);
    let reply = json!({"chat_id": -100500, "text": "re", "reply_parameters": {"message_id": 1000}});
    let sent = expect_ok(&api(&fake, "sendMessage", reply).await);
    assert_eq!(sent["message_id"], 1001);
    assert_eq!(sent["reply_to_message"]["text"], "custom");

    let group = fake.inject_group_text(
        -100500,
        8,
        "@claw_test_bot hi",
        json!([{"offset": 0, "length": 14, "type": "mention"}]),
        true,
    );
    let got = expect_ok(&api(&fake, "getUpdates", json!({"offset": group})).await);
    let msg = &got[0]["message"];
    assert_eq!(msg["entities"][0]["type"], "mention");
    assert_eq!(msg["reply_to_message"]["message_id"], 1001);
    assert_eq!(msg["reply_to_message"]["from"]["id"], 123456);
    assert_eq!(msg["chat"]["type"], "supergroup");
    assert_eq!(msg["message_id"], 1002);

    let cmd = fake.inject_private_text(5, "/start now");
    let got = expect_ok(&api(&fake, "getUpdates", json!({"offset": cmd})).await);
    assert_eq!(
        got[0]["message"]["entities"],
        json!([{"offset": 0, "length": 6, "type": "bot_command"}])
    );
}

#[test]
fn start_blocking_serves_synchronous_clients() {
    use std::io::{Read, Write};
    let fake = FakeTelegram::start_blocking();
    let mut s = std::net::TcpStream::connect(fake.addr()).expect("connect");
    let req = format!(
        "GET /bot{}/getMe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        fake.token()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let reply = crate::fake_telegram::client::parse_reply(&buf, true).expect("reply");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["result"]["username"], "claw_test_bot");
}

#[tokio::test]
async fn an_abandoned_poll_is_forgotten() {
    use tokio::io::AsyncWriteExt;
    let fake = FakeTelegram::start().await;
    let active = || crate::fake_telegram::state::lock(&fake.shared.state).active_poll;
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let req = format!(
        "GET /bot{}/getUpdates?timeout=10 HTTP/1.1\r\nHost: x\r\n\r\n",
        fake.token()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active(), Some(1));
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(active(), None, "the client hung up, so no poll is pending");
    // The update is still there for the next poll.
    let id = fake.inject_private_text(2, "kept");
    let got = expect_ok(&api(&fake, "getUpdates", json!({})).await);
    assert_eq!(update_ids(&got), vec![id]);
}
