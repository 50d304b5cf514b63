//! Tests acting as real clients of the fake Slack: raw HTTP/1.1 over loopback for the Web
//! API, a tiny HTTP endpoint standing in for the app's Request URL, and a real WebSocket
//! client for Socket Mode.

mod api;
mod events;
mod signature;
mod socket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::FakeSlack;
use crate::fake_telegram::client::{http_request, split_url, RawReply};

const TIMEOUT: Duration = Duration::from_secs(10);

/// One Web API answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts HTTP 200 `ok:false` with this error.
    fn expect_error(&self, error: &str) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["ok"], false, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
    }

    fn expect_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["ok"], true, "{}", self.body);
        &self.body
    }
}

async fn raw_call(
    fake: &FakeSlack,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawReply, String> {
    let url = format!("{}/{method}", fake.api_root());
    let target = split_url(&url).expect("url");
    http_request(&target, "POST", headers, body, TIMEOUT).await
}

fn to_reply(r: RawReply) -> Reply {
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Reply {
        status: r.status,
        headers: r.headers,
        body,
    }
}

/// POSTs JSON (`application/json; charset=utf-8`) with `Authorization: Bearer token`.
async fn call_json(fake: &FakeSlack, method: &str, token: Option<&str>, params: Value) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json; charset=utf-8")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let body = params.to_string();
    to_reply(
        raw_call(fake, method, &headers, body.as_bytes())
            .await
            .expect("reply"),
    )
}

/// POSTs a form body (the token, if any, must be in it).
async fn call_form(fake: &FakeSlack, method: &str, form: &str) -> Reply {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    to_reply(
        raw_call(fake, method, &headers, form.as_bytes())
            .await
            .expect("reply"),
    )
}

/// A bot-token JSON call.
async fn bot(fake: &FakeSlack, method: &str, params: Value) -> Reply {
    call_json(fake, method, Some(fake.bot_token()), params).await
}

/// `chat.postMessage` that must succeed; returns the answer.
async fn post(fake: &FakeSlack, channel: &str, text: &str) -> Value {
    let r = bot(
        fake,
        "chat.postMessage",
        serde_json::json!({"channel": channel, "text": text}),
    )
    .await;
    r.expect_ok().clone()
}

/// One request the test endpoint received.
#[derive(Debug, Clone)]
struct Hit {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// How the test endpoint answers one request.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    delay: Duration,
    headers: Vec<(&'static str, &'static str)>,
    /// None: echo the `challenge` of the request, else empty.
    body: Option<String>,
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: None,
        }
    }

    fn ok() -> Answer {
        Answer::status(200)
    }
}

/// A stand-in for the app's Request URL answering scripted [`Answer`]s in turn (then 200).
struct Endpoint {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    async fn start(script: Vec<Answer>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let Some(hit) = read_request(&mut s).await else {
                    continue;
                };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(hit.clone());
                    seen.len()
                };
                let answer = script.get(n - 1).cloned().unwrap_or_else(Answer::ok);
                tokio::spawn(async move {
                    tokio::time::sleep(answer.delay).await;
                    let body = answer.body.unwrap_or_else(|| {
                        serde_json::from_slice::<Value>(&hit.body)
                            .ok()
                            .and_then(|v| v["challenge"].as_str().map(str::to_string))
                            .unwrap_or_default()
                    });
                    let mut resp = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        answer.status,
                        body.len()
                    );
                    for (k, v) in &answer.headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(&body);
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        Endpoint { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("http://{}/slack/events", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn read_request(s: &mut TcpStream) -> Option<Hit> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Hit { headers, body })
}
