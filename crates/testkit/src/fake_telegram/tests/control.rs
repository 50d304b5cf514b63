use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{api, api_form, api_get, exchange, expect_error, expect_ok, path, request};
use crate::fake_telegram::{FakeTelegram, FakeTelegramConfig, Fault};

#[tokio::test]
async fn retry_after_fault_is_a_429_with_parameters() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("sendMessage", Fault::RetryAfter(3));
    let body = json!({"chat_id": 1, "text": "hi"}).to_string();
    let p = path(&fake, "sendMessage");
    let reply = request(fake.addr(), "POST", &p, "application/json", &body).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert_eq!(
        reply.json(),
        json!({
            "ok": false,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        })
    );
    // One-shot: the retry goes through.
    let sent = expect_ok(&api(&fake, "sendmessage", json!({"chat_id": 1, "text": "hi"})).await);
    assert_eq!(sent["message_id"], 1000);
    let calls = fake.calls();
    let statuses: Vec<(&str, u16)> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.status))
        .collect();
    assert_eq!(statuses, vec![("sendmessage", 429), ("sendmessage", 200)]);
    assert_eq!(calls[0].params, json!({"chat_id": 1, "text": "hi"}));
    assert_eq!(fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn status_faults_including_409_on_get_updates() {
    let fake = FakeTelegram::start().await;
    let conflict = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
    fake.fail_next("getUpdates", Fault::Status(409, conflict.into()));
    fake.fail_next(
        "getUpdates",
        Fault::Status(500, "Internal Server Error".into()),
    );
    let first = api(&fake, "getUpdates", json!({"timeout": 5})).await;
    assert_eq!(expect_error(&first, 409), conflict);
    let second = api(&fake, "getUpdates", json!({})).await;
    assert_eq!(expect_error(&second, 500), "Internal Server Error");
    let third = api(&fake, "getUpdates", json!({})).await;
    assert_eq!(expect_ok(&third), json!([]));
}

#[tokio::test]
async fn html_error_fault_has_an_html_body() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("getMe", Fault::HtmlError(502));
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        path(&fake, "getMe")
    );
    let reply = exchange(fake.addr(), &req).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header("content-type"), Some("text/html"));
    assert!(
        reply.text().contains("<title>502 Bad Gateway</title>"),
        "{}",
        reply.text()
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
    assert_eq!(fake.calls()[0].status, 502);
}

#[tokio::test]
async fn stall_fault_delays_a_normal_answer() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("GETME", Fault::Stall(Duration::from_millis(400)));
    let started = Instant::now();
    let me = expect_ok(&api(&fake, "getMe", json!({})).await);
    let elapsed = started.elapsed();
    assert_eq!(me["id"], 123456);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

async fn send_raw_get_me(fake: &FakeTelegram) -> TcpStream {
    let mut s = TcpStream::connect(fake.addr()).await.expect("connect");
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path(fake, "getMe"));
    s.write_all(req.as_bytes()).await.expect("write");
    s
}

#[tokio::test]
async fn hang_fault_never_answers() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("getMe", Fault::Hang);
    let mut s = send_raw_get_me(&fake).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(read.is_err(), "nothing may arrive: {read:?}");
    assert_eq!(fake.call_count("getme"), 1);
    assert_eq!(fake.calls()[0].status, 0);
    // Other requests are unaffected.
    assert_eq!(
        expect_ok(&api(&fake, "getMe", json!({})).await)["id"],
        123456
    );
}

#[tokio::test]
async fn reset_fault_aborts_the_connection() {
    let fake = FakeTelegram::start().await;
    fake.fail_next("getMe", Fault::ResetConnection);
    let mut s = send_raw_get_me(&fake).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("the connection ends");
    let err = read.expect_err("a reset, not a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(buf.is_empty());
    assert_eq!(fake.calls()[0].status, 0);
}

#[tokio::test]
async fn form_urlencoded_params() {
    let fake = FakeTelegram::start().await;
    fake.inject_private_text(42, "ping");
    let form = "chat_id=42&text=%3Cb%3Ehi%3C%2Fb%3E+there%21&parse_mode=HTML\
                &reply_parameters=%7B%22message_id%22%3A1000%7D&disable_notification=true";
    let msg = expect_ok(&api_form(&fake, "sendMessage", form).await);
    assert_eq!(msg["text"], "hi there!");
    assert_eq!(msg["reply_to_message"]["message_id"], 1000);
    assert_eq!(
        msg["entities"],
        json!([{"offset": 0, "length": 2, "type": "bold"}])
    );
    let sent = &fake.sent_messages()[0];
    assert_eq!((sent.chat_id, sent.reply_to_message_id), (42, Some(1000)));
    assert_eq!(fake.calls()[0].params["chat_id"], "42");

    let hook = "url=http%3A%2F%2F127.0.0.1%3A9%2Fx&secret_token=bad%20token";
    let err = expect_error(&api_form(&fake, "setWebhook", hook).await, 400);
    assert_eq!(
        err,
        "Bad Request: secret token contains unallowed characters"
    );
    let typing = expect_ok(&api_form(&fake, "sendChatAction", "chat_id=42&action=typing").await);
    assert_eq!(typing, json!(true));
}

#[tokio::test]
async fn query_string_params() {
    let fake = FakeTelegram::start().await;
    let msg = expect_ok(&api_get(&fake, "sendMessage", "chat_id=-100777&text=via%20query").await);
    assert_eq!(msg["text"], "via query");
    assert_eq!(msg["chat"]["id"], -100777);
    let id = fake.inject_private_text(1, "x");
    let got = expect_ok(&api_get(&fake, "getUpdates", &format!("offset={id}&timeout=0")).await);
    assert_eq!(got[0]["update_id"], id);
    let confirmed = expect_ok(&api_get(&fake, "getUpdates", &format!("offset={}", id + 1)).await);
    assert_eq!(confirmed, json!([]));
}

#[tokio::test]
async fn multipart_params() {
    let fake = FakeTelegram::start().await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n9\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nmulti\r\npart\r\n--XyZ--\r\n";
    let p = path(&fake, "sendMessage");
    let reply = request(
        fake.addr(),
        "POST",
        &p,
        "multipart/form-data; boundary=XyZ",
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["result"]["text"], "multi\r\npart");
}

#[tokio::test]
async fn unknown_token_method_and_path() {
    let fake = FakeTelegram::start().await;
    let reply = request(
        fake.addr(),
        "POST",
        "/bot999:WRONG/getMe",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.json(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let unknown = api(&fake, "sendSticker", json!({})).await;
    assert_eq!(expect_error(&unknown, 404), "Not Found");
    let stray = request(fake.addr(), "GET", "/health", "text/plain", "").await;
    assert_eq!(stray.status, 404);
    assert_eq!(stray.json()["description"], "Not Found");
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![401, 404, 404]);
}

#[tokio::test]
async fn custom_config() {
    let cfg = FakeTelegramConfig {
        token: "777:abc".into(),
        username: "other_bot".into(),
        first_update_id: 5,
        ..FakeTelegramConfig::default()
    };
    let fake = FakeTelegram::start_with(cfg).await;
    let me = expect_ok(&api(&fake, "getMe", json!({})).await);
    assert_eq!(
        (me["id"].as_i64(), me["username"].as_str()),
        (Some(777), Some("other_bot"))
    );
    assert_eq!(fake.inject_private_text(1, "x"), 5);
    let commands = json!({"commands": [{"command": "start", "description": "Start"}]});
    assert_eq!(
        expect_ok(&api(&fake, "setMyCommands", commands).await),
        json!(true)
    );
    assert_eq!(fake.my_commands()[0]["command"], "start");
    let mine = expect_ok(&api(&fake, "getMyCommands", json!({})).await);
    assert_eq!(mine, fake.my_commands());
}
