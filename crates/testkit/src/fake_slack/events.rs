//! The Events API sender: what Slack does towards an app's Request URL. Every request
//! is signed over the exact bytes sent; failed deliveries are retried per Slack's
//! schedule with `X-Slack-Retry-Num` / `X-Slack-Retry-Reason`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::state::{lock, unix_now, Shared};
use super::{socket, DeliveryAttempt};
use crate::fake_telegram::client::{http_request, split_url, RawReply};

/// Slack's `User-Agent` on event deliveries.
const USER_AGENT: &str = "Slackbot 1.0 (+https://api.slack.com/robots)";

/// `v0=` + lowercase hex of HMAC-SHA256(secret, `"v0:" + timestamp + ":" + body`).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// `application/x-www-form-urlencoded` text of a JSON object's fields (strings as they
/// are, other values as JSON), e.g. for [`FakeSlack::slash_command`](super::FakeSlack::slash_command).
pub fn form_body(fields: &Value) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let Some(obj) = fields.as_object() else {
        return String::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}={}", enc(k), enc(&v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// How to spoil one signed request, for negative tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// Correctly signed with a fresh timestamp.
    None,
    /// Signed with another secret.
    WrongSecret,
    /// A timestamp 6 minutes in the past (outside Slack's 5-minute window), correctly signed.
    StaleTimestamp,
    /// The timestamp shifted by this many seconds (negative: past), correctly signed.
    TimestampOffset(i64),
    /// Signed, then one byte of the body changed before sending.
    AlteredBody,
    /// No `X-Slack-Signature` header.
    MissingSignature,
    /// No `X-Slack-Request-Timestamp` header (the signature is still sent).
    MissingTimestamp,
    /// A signature that is not `v0=<64 hex>`.
    MalformedSignature,
}

/// The `event_callback` envelope around `event`, with a new `event_id`.
pub(crate) fn envelope(shared: &Shared, event: Value) -> (Value, String) {
    let event_id = lock(&shared.state).alloc_event_id();
    let event_time = event["event_ts"]
        .as_str()
        .or(event["ts"].as_str())
        .and_then(|t| t.split('.').next())
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(unix_now);
    let cfg = &shared.cfg;
    let envelope = json!({
        "token": cfg.verification_token,
        "team_id": cfg.team_id,
        "context_team_id": cfg.team_id,
        "context_enterprise_id": null,
        "api_app_id": cfg.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": shared.authorizations(),
        "is_ext_shared_channel": false,
        "event_context": format!("4-fake-{event_id}"),
    });
    (envelope, event_id)
}

/// The app's own post as Slack echoes it in a `message` event.
pub(crate) fn bot_echo(
    shared: &Shared,
    channel: &str,
    channel_type: &str,
    ts: &str,
    text: &str,
    thread_ts: Option<&str>,
) -> Value {
    let cfg = &shared.cfg;
    let mut msg = json!({
        "type": "message",
        "channel": channel,
        "user": cfg.bot_user_id,
        "bot_id": cfg.bot_id,
        "app_id": cfg.app_id,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": cfg.team_id,
        "channel_type": channel_type,
        "bot_profile": shared.bot_profile(),
    });
    if let Some(t) = thread_ts {
        msg["thread_ts"] = json!(t);
    }
    msg
}

/// Sends `envelope` to the Request URL (with retries) when one is set, else queues it
/// for Socket Mode.
pub(crate) fn dispatch(shared: &Arc<Shared>, envelope: Value) {
    let url = lock(&shared.state).request_url.clone();
    match url {
        Some(url) => {
            let task = tokio::spawn(deliver(shared.clone(), url, envelope));
            shared.track(task.abort_handle());
        }
        None => socket::enqueue(shared, "events_api", envelope),
    }
}

/// One event through Slack's retry schedule: the first try, then a retry after each of
/// `event_retry_delays` while attempts fail (non-2xx, no answer in time, no connection).
/// A non-2xx answer with `X-Slack-No-Retry: 1` stops the retries.
async fn deliver(shared: Arc<Shared>, url: String, envelope: Value) {
    let body = envelope.to_string().into_bytes();
    let mut reason = String::new();
    let retries = shared.cfg.event_retry_delays.clone();
    for retry_num in 0..=retries.len() {
        if retry_num > 0 {
            tokio::time::sleep(retries[retry_num - 1]).await;
        }
        let attempt = attempt(
            &shared,
            &url,
            &body,
            "application/json",
            &Tamper::None,
            retry_num as u32,
            &reason,
        )
        .await;
        if attempt.ok() {
            return;
        }
        let no_retry =
            attempt.status.is_some() && attempt.response_header("x-slack-no-retry") == Some("1");
        if no_retry {
            return;
        }
        reason = attempt.failure.clone();
    }
}

/// One signed POST, no retries, recorded.
pub(crate) async fn post_once(
    shared: &Shared,
    url: &str,
    body: &[u8],
    content_type: &str,
    tamper: &Tamper,
) -> DeliveryAttempt {
    attempt(shared, url, body, content_type, tamper, 0, "").await
}

async fn attempt(
    shared: &Shared,
    url: &str,
    body: &[u8],
    content_type: &str,
    tamper: &Tamper,
    retry_num: u32,
    retry_reason: &str,
) -> DeliveryAttempt {
    let now = unix_now();
    let ts = match tamper {
        Tamper::StaleTimestamp => now - 360,
        Tamper::TimestampOffset(d) => now + d,
        _ => now,
    }
    .to_string();
    let secret = match tamper {
        Tamper::WrongSecret => "not-the-signing-secret-0000000000",
        _ => shared.cfg.signing_secret.as_str(),
    };
    let mut signature = sign(secret, &ts, body);
    let mut sent = body.to_vec();
    match tamper {
        Tamper::AlteredBody => match sent.iter().position(|b| b.is_ascii_alphanumeric()) {
            Some(i) => sent[i] = if sent[i] == b'x' { b'y' } else { b'x' },
            None => sent.push(b' '),
        },
        Tamper::MalformedSignature => signature = "v0=not-hex".into(),
        _ => {}
    }
    let retry_num_s = retry_num.to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", content_type),
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
        ("Accept-Encoding", "gzip,deflate"),
    ];
    if *tamper != Tamper::MissingTimestamp {
        headers.push(("X-Slack-Request-Timestamp", &ts));
    }
    if *tamper != Tamper::MissingSignature {
        headers.push(("X-Slack-Signature", &signature));
    }
    if retry_num > 0 {
        headers.push(("X-Slack-Retry-Num", &retry_num_s));
        headers.push(("X-Slack-Retry-Reason", retry_reason));
    }
    let event_id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["event_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let at = Instant::now();
    let reply = post(url, &headers, &sent, shared.cfg.event_timeout).await;
    let (status, response_body, response_headers, failure) = match reply {
        Ok(r) => {
            let failure = if (200..300).contains(&r.status) {
                String::new()
            } else {
                "http_error".to_string()
            };
            (Some(r.status), r.text(), r.headers, failure)
        }
        Err(failure) => (None, String::new(), Vec::new(), failure),
    };
    let attempt = DeliveryAttempt {
        url: url.to_string(),
        event_id,
        retry_num,
        retry_reason: retry_reason.to_string(),
        timestamp: ts,
        signature,
        body: sent,
        status,
        response_body,
        response_headers,
        failure,
        at,
    };
    lock(&shared.attempts).push(attempt.clone());
    shared.notify();
    attempt
}

/// POSTs and classifies a failure the way Slack names it.
async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<RawReply, String> {
    let target = split_url(url).map_err(|_| "unknown_error".to_string())?;
    let work = http_request(
        &target,
        "POST",
        headers,
        body,
        timeout + Duration::from_secs(1),
    );
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err("http_timeout".into()),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) if e.starts_with("Connection refused") || e.starts_with("Failed to connect") => {
            Err("connection_failed".into())
        }
        Ok(Err(e)) if e.starts_with("Read timeout") => Err("http_timeout".into()),
        Ok(Err(_)) => Err("unknown_error".into()),
    }
}

/// The `url_verification` handshake: a signed challenge the app must echo.
pub(crate) async fn verify_url(shared: &Shared, url: &str) -> Result<(), String> {
    let challenge = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let body = json!({
        "token": shared.cfg.verification_token,
        "challenge": challenge,
        "type": "url_verification",
    })
    .to_string();
    let a = post_once(
        shared,
        url,
        body.as_bytes(),
        "application/json",
        &Tamper::None,
    )
    .await;
    let Some(status) = a.status else {
        return Err(format!("Your URL didn't respond in time ({})", a.failure));
    };
    if status != 200 {
        return Err(format!(
            "Your request URL responded with an HTTP error: {status} {}",
            a.response_body
        ));
    }
    let text = a.response_body.trim();
    let echoed = text == challenge
        || text.strip_prefix("challenge=") == Some(challenge.as_str())
        || serde_json::from_str::<Value>(text)
            .ok()
            .is_some_and(|v| v["challenge"] == challenge.as_str());
    if echoed {
        Ok(())
    } else {
        Err(format!(
            "Your URL didn't respond with the value of the challenge parameter: {text:?}"
        ))
    }
}
