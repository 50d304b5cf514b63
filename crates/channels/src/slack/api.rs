//! A thin Slack Web API client: `POST {apiRoot}/<method>` with `Authorization: Bearer` and a
//! JSON body (`application/json; charset=utf-8`). Slack answers app-level errors with HTTP 200
//! and `{"ok": false, "error": "<code>"}`, rate limits with 429 + `Retry-After`; both are
//! classified into [`SendError`] for the outbox. Tokens are never part of a URL or a message.

use super::events::BotIdentity;
use crate::SendError;
use clawgate_config::Secret;
use serde_json::{json, Value};
use std::time::Duration;

/// Largest response body read (Slack's answers are a few KB).
const MAX_RESPONSE_BYTES: usize = 2 << 20;
/// `Retry-After` values above this are clamped (a broken header must not park the outbox).
const MAX_RETRY_AFTER_SECS: u64 = 3600;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wait for the hinted time, then retry (HTTP 429 / `ratelimited`).
    RateLimited,
    /// Network, 5xx, Slack-side trouble: retry with backoff.
    Transient,
    /// Will not work until someone changes the config or the workspace (bad token, missing
    /// scope, channel gone, bot not in the channel, …): show in status, do not retry forever.
    Fatal,
}

/// `ok:false` codes that are worth retrying; every other code is fatal.
const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
    "timeout",
];

/// Codes that mean the credentials themselves are wrong (the channel cannot work at all).
const AUTH_CODES: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "org_login_required",
    "ekm_access_denied",
    "two_factor_setup_required",
    "team_access_not_granted",
];

/// Classifies an `ok:false` error code.
pub fn error_kind(code: &str) -> ErrorKind {
    if code == "ratelimited" || code == "rate_limited" {
        ErrorKind::RateLimited
    } else if TRANSIENT_CODES.contains(&code) {
        ErrorKind::Transient
    } else {
        ErrorKind::Fatal
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The Web API method called.
    pub method: String,
    /// HTTP status (0 for network errors and timeouts).
    pub status: u16,
    /// Slack's `error` code (`channel_not_found`, …), or a short description for transport
    /// failures (`http_503`, `timeout`, `network`, `bad_response`).
    pub error: String,
    /// `Retry-After` in seconds (429).
    pub retry_after: Option<u64>,
    /// `needed` scope on `missing_scope`.
    pub needed: Option<String>,
    pub kind: ErrorKind,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "slack {}: {}", self.method, self.error)?;
        if let Some(n) = &self.needed {
            write!(f, " (needs scope {n})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    fn transport(method: &str, status: u16, error: String, kind: ErrorKind) -> ApiError {
        ApiError {
            method: method.into(),
            status,
            error,
            retry_after: None,
            needed: None,
            kind,
        }
    }

    fn network(method: &str, e: &reqwest::Error) -> ApiError {
        let what = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "cannot_connect"
        } else {
            "network_error"
        };
        ApiError::transport(method, 0, what.into(), ErrorKind::Transient)
    }

    /// The credentials are wrong (bad/revoked token, missing scope): the channel is down.
    pub fn is_auth(&self) -> bool {
        AUTH_CODES.contains(&self.error.as_str())
    }

    pub fn is_fatal(&self) -> bool {
        self.kind == ErrorKind::Fatal
    }

    /// How the outbox should treat this failure.
    pub fn classify(&self) -> SendError {
        match self.kind {
            ErrorKind::RateLimited => {
                SendError::RetryAfter(self.retry_after.unwrap_or(1) * 1000, self.to_string())
            }
            ErrorKind::Transient => SendError::Transient(self.to_string()),
            ErrorKind::Fatal => SendError::Permanent(self.to_string()),
        }
    }
}

/// `auth.test`: who the token belongs to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthInfo {
    pub user_id: String,
    pub bot_id: Option<String>,
    pub team_id: String,
    pub team: String,
    pub user: String,
    pub url: String,
}

impl AuthInfo {
    /// The bot's identity for self-filtering (the app id comes from events' `api_app_id`).
    pub fn identity(&self) -> BotIdentity {
        BotIdentity {
            user_id: self.user_id.clone(),
            bot_id: self.bot_id.clone(),
            app_id: None,
        }
    }
}

/// A posted (or updated) message.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

pub struct SlackApi {
    http: reqwest::Client,
    root: String,
    token: Secret,
}

impl SlackApi {
    /// `token` is the bot token (`xoxb-`) for every method but `apps.connections.open`, which
    /// needs a client built with the app-level token (`xapp-`).
    pub fn new(api_root: &str, token: Secret) -> Result<SlackApi, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(SlackApi {
            http,
            root: api_root.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Calls a method with a JSON body; returns the whole `ok:true` response.
    pub async fn call(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{method}", self.root);
        let body = serde_json::to_vec(params).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = self
            .http
            .post(url)
            .timeout(timeout)
            .bearer_auth(self.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::network(method, &e))?;
        let status = resp.status().as_u16();
        let retry_after = clawgate_retry::retry_after(resp.headers())
            .map(|d| (d.as_secs_f64().ceil() as u64).min(MAX_RETRY_AFTER_SECS));
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if buf.len() + c.len() > MAX_RESPONSE_BYTES {
                        return Err(ApiError::transport(
                            method,
                            status,
                            "response_too_large".into(),
                            ErrorKind::Transient,
                        ));
                    }
                    buf.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(ApiError::network(method, &e)),
            }
        }
        let v: Option<Value> = serde_json::from_slice(&buf).ok().filter(Value::is_object);
        if status == 429 {
            let mut e =
                ApiError::transport(method, status, "ratelimited".into(), ErrorKind::RateLimited);
            e.retry_after = retry_after;
            return Err(e);
        }
        if status != 200 {
            let kind = if status >= 500 || status == 408 {
                ErrorKind::Transient
            } else {
                ErrorKind::Fatal
            };
            let error = v
                .as_ref()
                .and_then(|v| v["error"].as_str())
                .map(short)
                .unwrap_or_else(|| format!("http_{status}"));
            return Err(ApiError::transport(method, status, error, kind));
        }
        let Some(v) = v else {
            return Err(ApiError::transport(
                method,
                status,
                "bad_response".into(),
                ErrorKind::Transient,
            ));
        };
        if v["ok"] == true {
            return Ok(v);
        }
        let error = v["error"]
            .as_str()
            .map(short)
            .unwrap_or("unknown_error".into());
        let kind = error_kind(&error);
        Err(ApiError {
            method: method.into(),
            status,
            retry_after,
            needed: v["needed"].as_str().map(short),
            kind,
            error,
        })
    }

    /// `auth.test`: the bot's user id, bot id and team (call on start, for self-filtering).
    pub async fn auth_test(&self) -> Result<AuthInfo, ApiError> {
        let v = self.call("auth.test", &json!({}), DEFAULT_TIMEOUT).await?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(AuthInfo {
            user_id: s("user_id"),
            bot_id: v["bot_id"].as_str().map(String::from),
            team_id: s("team_id"),
            team: s("team"),
            user: s("user"),
            url: s("url"),
        })
    }

    /// `chat.postMessage` with mrkdwn text (already converted); `thread_ts` is the thread's
    /// parent ts. Link unfurling is off (OpenClaw's `unfurlLinks: false`).
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Result<Posted, ApiError> {
        let mut p = json!({"channel": channel, "text": text, "unfurl_links": false});
        if let Some(t) = thread_ts {
            p["thread_ts"] = json!(t);
        }
        let v = self.call("chat.postMessage", &p, DEFAULT_TIMEOUT).await?;
        Ok(posted(&v, channel))
    }

    /// `chat.update`: replaces the text of one of the bot's messages.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
    ) -> Result<Posted, ApiError> {
        let p = json!({"channel": channel, "ts": ts, "text": text});
        let v = self.call("chat.update", &p, DEFAULT_TIMEOUT).await?;
        Ok(posted(&v, channel))
    }

    /// `conversations.open` with one user: the DM channel id (`D…`).
    pub async fn open_conversation(&self, user: &str) -> Result<String, ApiError> {
        let v = self
            .call(
                "conversations.open",
                &json!({"users": user}),
                DEFAULT_TIMEOUT,
            )
            .await?;
        v["channel"]["id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| {
                ApiError::transport(
                    "conversations.open",
                    200,
                    "bad_response".into(),
                    ErrorKind::Transient,
                )
            })
    }

    /// `reactions.add` with a shortcode (`eyes`, not 👀). `already_reacted` counts as done.
    pub async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> Result<(), ApiError> {
        let p = json!({"channel": channel, "timestamp": ts, "name": name.trim_matches(':')});
        match self.call("reactions.add", &p, DEFAULT_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e) if e.error == "already_reacted" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `apps.connections.open` (client built with the APP token): a single-use `wss://` URL.
    /// The URL carries a ticket: do not log it.
    pub async fn open_socket_connection(&self) -> Result<String, ApiError> {
        let v = self
            .call("apps.connections.open", &json!({}), DEFAULT_TIMEOUT)
            .await?;
        v["url"]
            .as_str()
            .filter(|u| u.starts_with("wss://") || u.starts_with("ws://"))
            .map(String::from)
            .ok_or_else(|| {
                ApiError::transport(
                    "apps.connections.open",
                    200,
                    "bad_response".into(),
                    ErrorKind::Transient,
                )
            })
    }
}

fn posted(v: &Value, channel: &str) -> Posted {
    Posted {
        channel: v["channel"].as_str().unwrap_or(channel).to_string(),
        ts: v["ts"].as_str().unwrap_or_default().to_string(),
    }
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// One recorded request.
    #[derive(Debug)]
    struct Req {
        head: String,
        body: Value,
    }

    impl Req {
        fn header(&self, name: &str) -> Option<String> {
            self.head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        }
    }

    /// A one-shot-per-connection HTTP/1.1 server answering the scripted responses in order.
    async fn server(responses: Vec<(u16, &'static str, String)>) -> (String, mpsc::Receiver<Req>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for (status, extra, body) in responses {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let head_end = loop {
                    let n = s.read(&mut tmp).await.unwrap();
                    assert!(n > 0, "client closed early");
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = s.read(&mut tmp).await.unwrap();
                    buf.extend_from_slice(&tmp[..n]);
                }
                let req_body =
                    serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
                tx.send(Req {
                    head,
                    body: req_body,
                })
                .await
                .unwrap();
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
                s.shutdown().await.ok();
            }
        });
        (format!("http://{addr}/api"), rx)
    }

    fn api(root: &str) -> SlackApi {
        SlackApi::new(root, Secret::new("xoxb-test-token")).unwrap()
    }

    #[tokio::test]
    async fn auth_test_reads_identity_and_sends_bearer_json() {
        let (root, mut rx) = server(vec![(200, "", json!({"ok":true,"url":"https://subarachnoid.slack.com/","team":"Subarachnoid Workspace","user":"bot","team_id":"T0G9PQBBK","user_id":"W23456789","bot_id":"BZYBOTHED"}).to_string())]).await;
        let a = api(&root).auth_test().await.unwrap();
        assert_eq!(a.user_id, "W23456789");
        assert_eq!(a.bot_id.as_deref(), Some("BZYBOTHED"));
        assert_eq!(a.team_id, "T0G9PQBBK");
        assert_eq!(a.team, "Subarachnoid Workspace");
        assert_eq!(a.identity().user_id, "W23456789");
        let r = rx.recv().await.unwrap();
        assert!(
            r.head.starts_with("POST /api/auth.test HTTP/1.1"),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Bearer xoxb-test-token")
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert!(
            !r.head.contains("xoxb-test-token\r\n\r\n")
                && !r.head.split("\r\n").next().unwrap().contains("xoxb")
        );
    }

    #[tokio::test]
    async fn post_message_in_thread_returns_ts() {
        let (root, mut rx) = server(vec![
            (200, "", json!({"ok":true,"channel":"C0CHAN","ts":"1715600001.000200","message":{"text":"x"}}).to_string()),
            (200, "", json!({"ok":true,"channel":"C0CHAN","ts":"1715600002.000100"}).to_string()),
        ])
        .await;
        let a = api(&root);
        let p = a
            .post_message("C0CHAN", "*Done.*", Some("1715599000.000100"))
            .await
            .unwrap();
        assert_eq!(
            p,
            Posted {
                channel: "C0CHAN".into(),
                ts: "1715600001.000200".into()
            }
        );
        let r = rx.recv().await.unwrap();
        assert!(r.head.starts_with("POST /api/chat.postMessage "));
        assert_eq!(r.body["channel"], "C0CHAN");
        assert_eq!(r.body["text"], "*Done.*");
        assert_eq!(r.body["thread_ts"], "1715599000.000100");
        assert_eq!(r.body["unfurl_links"], false);
        a.post_message("C0CHAN", "top", None).await.unwrap();
        let r = rx.recv().await.unwrap();
        assert!(r.body.get("thread_ts").is_none(), "{:?}", r.body);
    }

    #[tokio::test]
    async fn update_open_react_and_socket_url() {
        let (root, mut rx) = server(vec![
            (
                200,
                "",
                json!({"ok":true,"channel":"C1","ts":"1.2","text":"updated"}).to_string(),
            ),
            (
                200,
                "",
                json!({"ok":true,"channel":{"id":"D0DM"}}).to_string(),
            ),
            (200, "", json!({"ok":true}).to_string()),
            (
                200,
                "",
                json!({"ok":false,"error":"already_reacted"}).to_string(),
            ),
            (
                200,
                "",
                json!({"ok":true,"url":"wss://wss-primary.slack.com/link/?ticket=abc&app_id=A1"})
                    .to_string(),
            ),
        ])
        .await;
        let a = api(&root);
        assert_eq!(
            a.update_message("C1", "1.2", "updated").await.unwrap().ts,
            "1.2"
        );
        let r = rx.recv().await.unwrap();
        assert!(r.head.starts_with("POST /api/chat.update "));
        assert_eq!(r.body, json!({"channel":"C1","ts":"1.2","text":"updated"}));
        assert_eq!(a.open_conversation("U1").await.unwrap(), "D0DM");
        assert_eq!(rx.recv().await.unwrap().body, json!({"users":"U1"}));
        a.add_reaction("C1", "1.2", ":eyes:").await.unwrap();
        let r = rx.recv().await.unwrap();
        assert!(r.head.starts_with("POST /api/reactions.add "));
        assert_eq!(
            r.body,
            json!({"channel":"C1","timestamp":"1.2","name":"eyes"})
        );
        a.add_reaction("C1", "1.2", "eyes").await.unwrap();
        rx.recv().await.unwrap();
        let app = SlackApi::new(&root, Secret::new("xapp-1-A1-tok")).unwrap();
        assert_eq!(
            app.open_socket_connection().await.unwrap(),
            "wss://wss-primary.slack.com/link/?ticket=abc&app_id=A1"
        );
        let r = rx.recv().await.unwrap();
        assert!(r.head.starts_with("POST /api/apps.connections.open "));
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Bearer xapp-1-A1-tok")
        );
    }

    #[tokio::test]
    async fn ok_false_errors_are_classified() {
        let cases = [
            ("invalid_auth", ErrorKind::Fatal, true),
            ("not_authed", ErrorKind::Fatal, true),
            ("account_inactive", ErrorKind::Fatal, true),
            ("token_revoked", ErrorKind::Fatal, true),
            ("channel_not_found", ErrorKind::Fatal, false),
            ("not_in_channel", ErrorKind::Fatal, false),
            ("is_archived", ErrorKind::Fatal, false),
            ("msg_too_long", ErrorKind::Fatal, false),
            ("some_future_code", ErrorKind::Fatal, false),
            ("internal_error", ErrorKind::Transient, false),
            ("fatal_error", ErrorKind::Transient, false),
            ("service_unavailable", ErrorKind::Transient, false),
            ("request_timeout", ErrorKind::Transient, false),
        ];
        let responses = cases
            .iter()
            .map(|(c, _, _)| (200, "", json!({"ok": false, "error": c}).to_string()))
            .collect();
        let (root, _rx) = server(responses).await;
        let a = api(&root);
        for (code, kind, auth) in cases {
            let e = a.post_message("C1", "x", None).await.unwrap_err();
            assert_eq!(e.error, code);
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.is_auth(), auth, "{code}");
            assert_eq!(e.status, 200);
            match e.classify() {
                SendError::Permanent(m) => {
                    assert_eq!(kind, ErrorKind::Fatal);
                    assert!(m.contains(code) && m.contains("chat.postMessage"), "{m}");
                }
                SendError::Transient(_) => assert_eq!(kind, ErrorKind::Transient),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn missing_scope_names_the_scope() {
        let (root, _rx) = server(vec![(200, "", json!({"ok":false,"error":"missing_scope","needed":"chat:write","provided":"users:read"}).to_string())]).await;
        let e = api(&root).post_message("C1", "x", None).await.unwrap_err();
        assert!(e.is_auth() && e.is_fatal());
        assert_eq!(
            e.to_string(),
            "slack chat.postMessage: missing_scope (needs scope chat:write)"
        );
    }

    #[tokio::test]
    async fn http_429_honours_retry_after() {
        let (root, _rx) = server(vec![
            (
                429,
                "Retry-After: 7\r\n",
                json!({"ok":false,"error":"ratelimited"}).to_string(),
            ),
            (429, "", String::new()),
            (429, "Retry-After: 999999\r\n", String::new()),
        ])
        .await;
        let a = api(&root);
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(
            (e.status, e.kind, e.retry_after),
            (429, ErrorKind::RateLimited, Some(7))
        );
        assert!(matches!(e.classify(), SendError::RetryAfter(7000, _)));
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(e.retry_after, None);
        assert!(
            matches!(e.classify(), SendError::RetryAfter(1000, _)),
            "no header: 1 s"
        );
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(e.retry_after, Some(MAX_RETRY_AFTER_SECS));
    }

    #[tokio::test]
    async fn http_errors_and_garbage() {
        let (root, _rx) = server(vec![
            (503, "", "<html>down</html>".into()),
            (
                500,
                "",
                json!({"ok":false,"error":"internal_error"}).to_string(),
            ),
            (404, "", "not found".into()),
            (200, "", "not json".into()),
        ])
        .await;
        let a = api(&root);
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(
            (e.status, e.error.as_str(), e.kind),
            (503, "http_503", ErrorKind::Transient)
        );
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(
            (e.status, e.error.as_str(), e.kind),
            (500, "internal_error", ErrorKind::Transient)
        );
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!((e.status, e.kind), (404, ErrorKind::Fatal));
        let e = a.post_message("C1", "x", None).await.unwrap_err();
        assert_eq!(
            (e.error.as_str(), e.kind),
            ("bad_response", ErrorKind::Transient)
        );
    }

    #[tokio::test]
    async fn network_failure_is_transient() {
        // A port with nothing listening.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}/api", l.local_addr().unwrap());
        drop(l);
        let e = api(&root).auth_test().await.unwrap_err();
        assert_eq!((e.status, e.kind), (0, ErrorKind::Transient));
        assert!(!e.to_string().contains("xoxb"));
    }

    #[test]
    fn error_kinds() {
        assert_eq!(error_kind("ratelimited"), ErrorKind::RateLimited);
        assert_eq!(error_kind("internal_error"), ErrorKind::Transient);
        assert_eq!(error_kind("channel_not_found"), ErrorKind::Fatal);
    }
}
