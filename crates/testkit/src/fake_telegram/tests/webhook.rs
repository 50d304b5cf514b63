use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{api, expect_error, expect_ok};
use crate::fake_telegram::{post_update, FakeTelegram, DEFAULT_FIRST_UPDATE_ID};

/// One request the test webhook received.
#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny webhook endpoint answering the given statuses in turn (then 200).
struct Hook {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hook {
    async fn start(statuses: Vec<u16>) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let hit = read_request(&mut s).await;
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(hit);
                    seen.len()
                };
                let status = statuses.get(n - 1).copied().unwrap_or(200);
                let reason = match status {
                    200 => "OK",
                    401 => "Unauthorized",
                    _ => "Internal Server Error",
                };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        Hook { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("http://{}/tg/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.hits().len() < n {
            assert!(Instant::now() < deadline, "webhook got {:?}", self.hits());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.hits()
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Hit {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        buf.extend_from_slice(&chunk[..n]);
        let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(n > 0, "EOF inside the request head");
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        if buf.len() - split - 4 < len {
            assert!(n > 0, "EOF inside the request body");
            continue;
        }
        let body = serde_json::from_slice(&buf[split + 4..split + 4 + len]).expect("JSON body");
        return Hit {
            at: Instant::now(),
            path,
            headers,
            body,
        };
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn webhook_delivery_retries_after_500_then_acks() {
    let fake = FakeTelegram::start().await;
    let hook = Hook::start(vec![500, 200]).await;
    let set = json!({"url": hook.url(), "secret_token": "s3cr3t_-X", "max_connections": 5});
    assert_eq!(expect_ok(&api(&fake, "setWebhook", set).await), json!(true));
    let id = fake.inject_private_text(77, "hello webhook");
    let hits = hook.wait_for(2).await;
    wait_until("the ack", || fake.pending_update_count() == 0).await;

    for hit in &hits {
        assert_eq!(hit.path, "/tg/hook");
        assert_eq!(
            hit.header("x-telegram-bot-api-secret-token"),
            Some("s3cr3t_-X")
        );
        assert_eq!(hit.header("content-type"), Some("application/json"));
        assert_eq!(hit.body["update_id"], id);
        assert_eq!(hit.body["message"]["text"], "hello webhook");
        assert_eq!(hit.body["message"]["chat"]["id"], 77);
    }
    assert_eq!(id, DEFAULT_FIRST_UPDATE_ID);
    assert_eq!(hits[0].body, hits[1].body, "the same update is retried");
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(90),
        "retried after backoff: {gap:?}"
    );

    let info = expect_ok(&api(&fake, "getWebhookInfo", json!({})).await);
    assert_eq!(info["url"], hook.url());
    assert_eq!(info["pending_update_count"], 0);
    assert_eq!(info["max_connections"], 5);
    assert_eq!(
        info["last_error_message"],
        "Wrong response from the webhook: 500 Internal Server Error"
    );
    assert!(info["last_error_date"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(fake.webhook_info(), info);
    // Acked: no third delivery.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.hits().len(), 2);
}

#[tokio::test]
async fn webhook_delivers_in_update_id_order_and_can_pause() {
    let fake = FakeTelegram::start().await;
    let hook = Hook::start(vec![]).await;
    fake.set_webhook_delivery(false);
    let set = api(&fake, "setWebhook", json!({"url": hook.url()})).await;
    assert_eq!(expect_ok(&set), json!(true));
    let ids: Vec<i64> = (0..3)
        .map(|i| fake.inject_private_text(10 + i, &format!("n{i}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(hook.hits().is_empty());
    assert_eq!(fake.webhook_info()["pending_update_count"], 3);

    fake.set_webhook_delivery(true);
    let hits = hook.wait_for(3).await;
    let got: Vec<i64> = hits
        .iter()
        .map(|h| h.body["update_id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert!(hits
        .iter()
        .all(|h| h.header("x-telegram-bot-api-secret-token").is_none()));
    wait_until("acks", || fake.pending_update_count() == 0).await;
    assert!(fake.webhook_info().get("last_error_message").is_none());
}

#[tokio::test]
async fn webhook_records_connection_errors() {
    let fake = FakeTelegram::start().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    expect_ok(&api(&fake, "setWebhook", json!({"url": url})).await);
    fake.inject_private_text(1, "lost");
    wait_until("an error", || {
        fake.webhook_info()["last_error_message"] == "Connection refused"
    })
    .await;
    assert_eq!(fake.pending_update_count(), 1);
    // Dropping pending updates empties the queue.
    let del = json!({"drop_pending_updates": true});
    expect_ok(&api(&fake, "deleteWebhook", del).await);
    assert_eq!(fake.pending_update_count(), 0);
    assert_eq!(fake.webhook_info()["url"], "");
}

#[tokio::test]
async fn set_webhook_validates_its_parameters() {
    let fake = FakeTelegram::start().await;
    let url = "http://127.0.0.1:9/hook";
    let bad_secret = api(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": "no spaces!"}),
    )
    .await;
    assert_eq!(
        expect_error(&bad_secret, 400),
        "Bad Request: secret token contains unallowed characters"
    );
    let long = "a".repeat(257);
    let too_long = api(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": long}),
    )
    .await;
    assert_eq!(
        expect_error(&too_long, 400),
        "Bad Request: secret token is too long"
    );
    let ftp = api(&fake, "setWebhook", json!({"url": "ftp://example.com/x"})).await;
    assert_eq!(
        expect_error(&ftp, 400),
        "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    );
    assert_eq!(fake.webhook_info()["url"], "");

    fake.set_webhook_delivery(false);
    let ok = api(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": "A".repeat(256)}),
    )
    .await;
    assert_eq!(ok.1["description"], "Webhook was set");
    let same = api(
        &fake,
        "setWebhook",
        json!({"url": url, "secret_token": "A".repeat(256)}),
    )
    .await;
    assert_eq!(same.1["description"], "Webhook is already set");
    let removed = api(&fake, "setWebhook", json!({"url": ""})).await;
    assert_eq!(expect_ok(&removed), json!(true));
    assert_eq!(removed.1["description"], "Webhook was deleted");
    let again = api(&fake, "deleteWebhook", json!({})).await;
    assert_eq!(again.1["description"], "Webhook is already deleted");
}

#[tokio::test]
async fn post_update_delivers_like_telegram() {
    let hook = Hook::start(vec![401]).await;
    let update = json!({"update_id": 5, "message": {"message_id": 1, "text": "x"}});
    let (status, body) = post_update(&hook.url(), Some("sec"), &update).await;
    assert_eq!((status, body.as_str()), (401, "ok"));
    let (status, _) = post_update(&hook.url(), None, &update).await;
    assert_eq!(status, 200);
    let hits = hook.hits();
    assert_eq!(hits[0].body, update);
    assert_eq!(
        hits[0].header("x-telegram-bot-api-secret-token"),
        Some("sec")
    );
    assert_eq!(hits[0].header("host"), Some(hook.addr.to_string().as_str()));
    assert_eq!(hits[1].header("x-telegram-bot-api-secret-token"), None);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    assert_eq!(
        post_update(&url, None, &update).await,
        (0, "Connection refused".to_string())
    );
}
