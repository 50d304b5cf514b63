//! Tests acting as real clients: raw HTTP/1.1 over loopback with `Connection: close`.

mod control;
mod entities;
mod send;
mod updates;
mod webhook;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{parse_reply, RawReply};
use super::FakeTelegram;

impl RawReply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Writes a raw request and reads to EOF (bounded so a server bug fails instead of hanging).
async fn exchange(addr: SocketAddr, req: &str) -> RawReply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("response within 20s")
        .expect("read");
    parse_reply(&buf, true).expect("a complete HTTP response")
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> RawReply {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, &req).await
}

fn path(fake: &FakeTelegram, method: &str) -> String {
    format!("/bot{}/{method}", fake.token())
}

/// POSTs JSON params to a method; returns `(HTTP status, envelope)`.
async fn api(fake: &FakeTelegram, method: &str, params: Value) -> (u16, Value) {
    let body = params.to_string();
    let path = path(fake, method);
    let reply = request(fake.addr(), "POST", &path, "application/json", &body).await;
    (reply.status, reply.json())
}

/// POSTs a form-urlencoded body.
async fn api_form(fake: &FakeTelegram, method: &str, form: &str) -> (u16, Value) {
    let path = path(fake, method);
    let ct = "application/x-www-form-urlencoded";
    let reply = request(fake.addr(), "POST", &path, ct, form).await;
    (reply.status, reply.json())
}

/// GETs with a query string.
async fn api_get(fake: &FakeTelegram, method: &str, query: &str) -> (u16, Value) {
    let path = format!("{}?{query}", path(fake, method));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let reply = exchange(fake.addr(), &req).await;
    (reply.status, reply.json())
}

/// Asserts a Telegram error envelope and returns its description.
fn expect_error(reply: &(u16, Value), code: u16) -> String {
    let (status, body) = reply;
    assert_eq!(*status, code, "HTTP status of {body}");
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    body["description"]
        .as_str()
        .expect("description")
        .to_string()
}

/// Asserts success and returns `result`.
fn expect_ok(reply: &(u16, Value)) -> Value {
    let (status, body) = reply;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    body["result"].clone()
}

/// The `update_id`s of a `getUpdates` result.
fn update_ids(result: &Value) -> Vec<i64> {
    result
        .as_array()
        .expect("array of updates")
        .iter()
        .map(|u| u["update_id"].as_i64().expect("update_id"))
        .collect()
}
