//! Webhook delivery: a background worker POSTs queued updates one at a time, lowest
//! `update_id` first, and retries a failed one with backoff; plus [`post_update`].

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::Value;

use super::client::{http_request, split_url, RawReply};
use super::state::{lock, unix_now, Shared};

/// First retry delay after a failed delivery; doubles up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long [`post_update`] waits for the whole exchange.
const POST_TIMEOUT: Duration = Duration::from_secs(30);

struct Job {
    url: String,
    secret: Option<String>,
    seq: u64,
    update: Value,
}

/// The next update to deliver, if a webhook is set and delivery is not paused.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut st = lock(&shared.state);
    if st.delivery_paused {
        return None;
    }
    let (url, secret) = {
        let wh = st.webhook.as_ref()?;
        (wh.url.clone(), wh.secret.clone())
    };
    // Updates of types the bot did not subscribe to are never delivered.
    let rejected: Vec<u64> = st
        .queue
        .iter()
        .filter(|q| !st.allowed(q))
        .map(|q| q.seq)
        .collect();
    st.queue.retain(|q| !rejected.contains(&q.seq));
    let q = st.queue.iter().min_by_key(|q| (q.id, q.seq))?;
    Some(Job {
        url,
        secret,
        seq: q.seq,
        update: q.update.clone(),
    })
}

/// Runs until aborted (when the fake is dropped).
pub(crate) async fn delivery_worker(shared: Arc<Shared>) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(job) = next_job(&shared) else {
            notified.await;
            continue;
        };
        let timeout = shared.cfg.webhook_timeout;
        let outcome = send(&job.url, job.secret.as_deref(), &job.update, timeout).await;
        let failure = match outcome {
            Ok(r) if (200..300).contains(&r.status) => None,
            Ok(r) => Some(format!(
                "Wrong response from the webhook: {} {}",
                r.status,
                reason(&r)
            )),
            Err(e) => Some(e),
        };
        {
            let mut st = lock(&shared.state);
            match &failure {
                None => st.queue.retain(|q| q.seq != job.seq),
                Some(msg) => {
                    if let Some(wh) = st.webhook.as_mut().filter(|w| w.url == job.url) {
                        wh.last_error = Some((unix_now(), msg.clone()));
                    }
                }
            }
        }
        if failure.is_some() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = INITIAL_BACKOFF;
        }
    }
}

/// The standard reason phrase, else whatever the server sent.
fn reason(r: &RawReply) -> String {
    StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(str::to_string)
        .unwrap_or_else(|| r.reason.clone())
}

async fn send(
    url: &str,
    secret: Option<&str>,
    update: &Value,
    timeout: Duration,
) -> Result<RawReply, String> {
    let target = split_url(url)?;
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(s) = secret {
        headers.push(("X-Telegram-Bot-Api-Secret-Token", s));
    }
    let body = update.to_string();
    http_request(&target, "POST", &headers, body.as_bytes(), timeout).await
}

/// POSTs one update to `url` (`http://host:port/path`) like Telegram's webhook delivery:
/// JSON body, `Content-Type: application/json`, and `X-Telegram-Bot-Api-Secret-Token`
/// when `secret` is given. Returns `(status, body)`; on a connection failure or after
/// 30 s, `(0, error text)`.
pub async fn post_update(url: &str, secret: Option<&str>, update: &Value) -> (u16, String) {
    match send(url, secret, update, POST_TIMEOUT).await {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, e),
    }
}
