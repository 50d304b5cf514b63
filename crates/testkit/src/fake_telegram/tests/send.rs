use serde_json::json;

use super::{api, expect_error, expect_ok};
use crate::fake_telegram::FakeTelegram;

const PARSE_ERR: &str = "Bad Request: can't parse entities: ";

#[tokio::test]
async fn send_message_returns_messages_with_increasing_ids() {
    let fake = FakeTelegram::start().await;
    let first = expect_ok(
        &api(
            &fake,
            "sendMessage",
            json!({"chat_id": 42, "text": "hello"}),
        )
        .await,
    );
    assert_eq!(first["message_id"], 1000);
    assert_eq!(first["text"], "hello");
    assert_eq!(
        first["from"],
        json!({"id": 123456, "is_bot": true, "first_name": "Claw", "username": "claw_test_bot"})
    );
    assert_eq!(first["chat"]["id"], 42);
    assert_eq!(first["chat"]["type"], "private");
    assert!(first["date"].as_i64().unwrap() > 1_600_000_000);
    assert!(first.get("entities").is_none());

    // chat_id as a string; ids are per chat.
    let second = expect_ok(
        &api(
            &fake,
            "sendMessage",
            json!({"chat_id": "42", "text": "again"}),
        )
        .await,
    );
    assert_eq!(second["message_id"], 1001);
    let group = json!({"chat_id": -1001234, "text": "topic", "message_thread_id": 7});
    let group = expect_ok(&api(&fake, "sendMessage", group).await);
    assert_eq!(group["message_id"], 1000);
    assert_eq!(group["chat"]["type"], "supergroup");
    assert_eq!(group["message_thread_id"], 7);

    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        (sent[0].chat_id, sent[0].message_id, sent[0].text.as_str()),
        (42, 1000, "hello")
    );
    assert_eq!((sent[1].chat_id, sent[1].message_id), (42, 1001));
    assert_eq!(sent[2].message_thread_id, Some(7));
    assert_eq!(sent[2].parse_mode, None);
    assert!(sent[0].at <= sent[1].at);
    let waited = fake
        .wait_for_sent(3, std::time::Duration::from_millis(10))
        .await;
    assert_eq!(waited, sent);
    assert_eq!(fake.message(42, 1001).unwrap()["text"], "again");
}

#[tokio::test]
async fn send_message_checks_text_length() {
    let fake = FakeTelegram::start().await;
    let max = expect_ok(
        &api(
            &fake,
            "sendMessage",
            json!({"chat_id": 1, "text": "a".repeat(4096)}),
        )
        .await,
    );
    assert_eq!(max["text"].as_str().unwrap().len(), 4096);
    let long = api(
        &fake,
        "sendMessage",
        json!({"chat_id": 1, "text": "a".repeat(4097)}),
    )
    .await;
    assert_eq!(expect_error(&long, 400), "Bad Request: message is too long");
    // The limit applies after entity parsing: 4096 escaped '<' are 4096 characters.
    let escaped = json!({"chat_id": 1, "text": "&lt;".repeat(4096), "parse_mode": "HTML"});
    let escaped = expect_ok(&api(&fake, "sendMessage", escaped).await);
    assert_eq!(escaped["text"], "<".repeat(4096));
    // Multi-byte characters count once.
    let emoji = expect_ok(
        &api(
            &fake,
            "sendMessage",
            json!({"chat_id": 1, "text": "é".repeat(4096)}),
        )
        .await,
    );
    assert_eq!(emoji["text"].as_str().unwrap().chars().count(), 4096);

    let empty = api(&fake, "sendMessage", json!({"chat_id": 1, "text": ""})).await;
    assert_eq!(
        expect_error(&empty, 400),
        "Bad Request: message text is empty"
    );
    let missing = api(&fake, "sendMessage", json!({"chat_id": 1})).await;
    assert_eq!(
        expect_error(&missing, 400),
        "Bad Request: message text is empty"
    );
    let only_tags = json!({"chat_id": 1, "text": "<b> </b>", "parse_mode": "HTML"});
    let only_tags = api(&fake, "sendMessage", only_tags).await;
    assert_eq!(
        expect_error(&only_tags, 400),
        "Bad Request: message text is empty"
    );
    let no_chat = api(&fake, "sendMessage", json!({"text": "x"})).await;
    assert_eq!(expect_error(&no_chat, 400), "Bad Request: chat_id is empty");
    let by_name = api(
        &fake,
        "sendMessage",
        json!({"chat_id": "@somebody", "text": "x"}),
    )
    .await;
    assert_eq!(expect_error(&by_name, 400), "Bad Request: chat not found");
    assert_eq!(fake.sent_messages().len(), 3);
}

#[tokio::test]
async fn html_parse_mode() {
    let fake = FakeTelegram::start().await;
    let html = r#"<b>bold</b> &amp; <i>it</i> <a href="https://x.test/?a=1&amp;b=2">link</a>"#;
    let msg = json!({"chat_id": 5, "text": html, "parse_mode": "HTML"});
    let msg = expect_ok(&api(&fake, "sendMessage", msg).await);
    assert_eq!(msg["text"], "bold & it link");
    assert_eq!(
        msg["entities"],
        json!([
            {"offset": 0, "length": 4, "type": "bold"},
            {"offset": 7, "length": 2, "type": "italic"},
            {"offset": 10, "length": 4, "type": "text_link", "url": "https://x.test/?a=1&b=2"},
        ])
    );
    let sent = &fake.sent_messages()[0];
    assert_eq!(sent.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent.raw_text, html);
    assert_eq!(sent.text, "bold & it link");

    let misnested = json!({"chat_id": 5, "text": "<b>x</i>", "parse_mode": "HTML"});
    let err = expect_error(&api(&fake, "sendMessage", misnested).await, 400);
    assert_eq!(
        err,
        format!("{PARSE_ERR}Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\"")
    );
    let unknown = json!({"chat_id": 5, "text": "<foo>x</foo>", "parse_mode": "html"});
    let err = expect_error(&api(&fake, "sendMessage", unknown).await, 400);
    assert_eq!(
        err,
        format!("{PARSE_ERR}Unsupported start tag \"foo\" at byte offset 0")
    );
    let bare = json!({"chat_id": 5, "text": "1 < 2", "parse_mode": "HTML"});
    let err = expect_error(&api(&fake, "sendMessage", bare).await, 400);
    assert!(err.starts_with(PARSE_ERR), "{err}");
    let unclosed = json!({"chat_id": 5, "text": "<b>open", "parse_mode": "HTML"});
    let err = expect_error(&api(&fake, "sendMessage", unclosed).await, 400);
    assert_eq!(
        err,
        format!("{PARSE_ERR}Can't find end tag corresponding to start tag \"b\"")
    );
    let bad_mode = json!({"chat_id": 5, "text": "x", "parse_mode": "BBCode"});
    let err = expect_error(&api(&fake, "sendMessage", bad_mode).await, 400);
    assert_eq!(err, "Bad Request: unsupported parse_mode");
    assert_eq!(fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn markdown_v2_parse_mode() {
    let fake = FakeTelegram::start().await;
    let ok = json!({"chat_id": 5, "text": "Hi *bold* _it_ \\. `a.b`", "parse_mode": "MarkdownV2"});
    let ok = expect_ok(&api(&fake, "sendMessage", ok).await);
    assert_eq!(ok["text"], "Hi bold it . a.b");
    assert_eq!(
        ok["entities"],
        json!([
            {"offset": 3, "length": 4, "type": "bold"},
            {"offset": 8, "length": 2, "type": "italic"},
            {"offset": 13, "length": 3, "type": "code"},
        ])
    );
    let dot = json!({"chat_id": 5, "text": "Done.", "parse_mode": "MarkdownV2"});
    let err = expect_error(&api(&fake, "sendMessage", dot).await, 400);
    assert_eq!(
        err,
        format!("{PARSE_ERR}Character '.' is reserved and must be escaped with the preceding '\\'")
    );
    let odd = json!({"chat_id": 5, "text": "*a* *b", "parse_mode": "MarkdownV2"});
    let err = expect_error(&api(&fake, "sendMessage", odd).await, 400);
    assert_eq!(
        err,
        format!("{PARSE_ERR}Can't find end of Bold entity at byte offset 4")
    );
    let dash = json!({"chat_id": 5, "text": "a-b", "parse_mode": "MarkdownV2"});
    let err = expect_error(&api(&fake, "sendMessage", dash).await, 400);
    assert!(err.contains("Character '-' is reserved"), "{err}");
}

#[tokio::test]
async fn replies_need_an_existing_message() {
    let fake = FakeTelegram::start().await;
    fake.inject_private_text(7, "question?");
    let reply = json!({"chat_id": 7, "text": "answer", "reply_parameters": {"message_id": 1000}});
    let reply = expect_ok(&api(&fake, "sendMessage", reply).await);
    assert_eq!(reply["message_id"], 1001);
    assert_eq!(reply["reply_to_message"]["message_id"], 1000);
    assert_eq!(reply["reply_to_message"]["text"], "question?");
    assert_eq!(fake.sent_messages()[0].reply_to_message_id, Some(1000));

    let missing = json!({"chat_id": 7, "text": "x", "reply_parameters": {"message_id": 999}});
    let err = expect_error(&api(&fake, "sendMessage", missing).await, 400);
    assert_eq!(err, "Bad Request: message to be replied not found");
    // Another chat's message does not count.
    let other = json!({"chat_id": 8, "text": "x", "reply_parameters": {"message_id": 1000}});
    expect_error(&api(&fake, "sendMessage", other).await, 400);

    let lenient = json!({"chat_id": 7, "text": "anyway",
        "reply_parameters": {"message_id": 999, "allow_sending_without_reply": true}});
    let lenient = expect_ok(&api(&fake, "sendMessage", lenient).await);
    assert!(lenient.get("reply_to_message").is_none());
    assert_eq!(fake.sent_messages()[1].reply_to_message_id, None);
    assert_eq!(fake.sent_messages().len(), 2);
}

#[tokio::test]
async fn blocked_chats_and_chat_actions() {
    let fake = FakeTelegram::start().await;
    fake.set_blocked_chat(13);
    let blocked = api(&fake, "sendMessage", json!({"chat_id": 13, "text": "hi"})).await;
    assert_eq!(
        expect_error(&blocked, 403),
        "Forbidden: bot was blocked by the user"
    );
    let typing = api(
        &fake,
        "sendChatAction",
        json!({"chat_id": 13, "action": "typing"}),
    )
    .await;
    assert_eq!(
        expect_error(&typing, 403),
        "Forbidden: bot was blocked by the user"
    );
    fake.unblock_chat(13);

    let typing = api(
        &fake,
        "sendChatAction",
        json!({"chat_id": 13, "action": "typing"}),
    )
    .await;
    assert_eq!(expect_ok(&typing), json!(true));
    let bad = api(
        &fake,
        "sendChatAction",
        json!({"chat_id": 13, "action": "dancing"}),
    )
    .await;
    assert_eq!(
        expect_error(&bad, 400),
        "Bad Request: wrong parameter action in request"
    );
    let actions = fake.chat_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!((actions[0].0, actions[0].1.as_str()), (13, "typing"));
}

#[tokio::test]
async fn edit_delete_and_react() {
    let fake = FakeTelegram::start().await;
    expect_ok(&api(&fake, "sendMessage", json!({"chat_id": 3, "text": "draft"})).await);
    let same = api(
        &fake,
        "editMessageText",
        json!({"chat_id": 3, "message_id": 1000, "text": "draft"}),
    )
    .await;
    assert!(expect_error(&same, 400).starts_with("Bad Request: message is not modified"));
    let edit =
        json!({"chat_id": 3, "message_id": 1000, "text": "<b>final</b>", "parse_mode": "HTML"});
    let edited = expect_ok(&api(&fake, "editMessageText", edit).await);
    assert_eq!(edited["text"], "final");
    assert_eq!(edited["entities"][0]["type"], "bold");
    assert!(edited["edit_date"].as_i64().is_some());
    assert_eq!(fake.edited_messages()[0].text, "final");
    assert_eq!(fake.message(3, 1000).unwrap()["text"], "final");
    let gone = api(
        &fake,
        "editMessageText",
        json!({"chat_id": 3, "message_id": 5, "text": "x"}),
    )
    .await;
    assert_eq!(
        expect_error(&gone, 400),
        "Bad Request: message to edit not found"
    );

    let react =
        json!({"chat_id": 3, "message_id": 1000, "reaction": [{"type": "emoji", "emoji": "👍"}]});
    assert_eq!(
        expect_ok(&api(&fake, "setMessageReaction", react).await),
        json!(true)
    );
    assert_eq!(fake.reactions()[0].2[0]["emoji"], "👍");

    let del = json!({"chat_id": 3, "message_id": 1000});
    assert_eq!(
        expect_ok(&api(&fake, "deleteMessage", del.clone()).await),
        json!(true)
    );
    let twice = api(&fake, "deleteMessage", del).await;
    assert_eq!(
        expect_error(&twice, 400),
        "Bad Request: message to delete not found"
    );
    assert_eq!(fake.deleted_messages(), vec![(3, 1000)]);
}
