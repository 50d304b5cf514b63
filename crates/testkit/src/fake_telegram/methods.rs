//! Method dispatch, the `getUpdates` long poll and the webhook methods.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant as TokioInstant;

use super::client::split_url;
use super::messages;
use super::params::Params;
use super::state::{lock, Shared, Webhook};

/// Longest `getUpdates` hold honoured (seconds).
const MAX_POLL_TIMEOUT_SECS: f64 = 3600.0;

/// A successful call: `result` plus Telegram's optional `description`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    pub result: Value,
    pub description: Option<&'static str>,
}

/// A failed call as Telegram reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub description: String,
    pub parameters: Option<Value>,
}

pub(crate) type ApiResult = Result<Success, ApiError>;

pub(crate) fn ok(result: impl Into<Value>) -> ApiResult {
    Ok(Success {
        result: result.into(),
        description: None,
    })
}

fn ok_described(result: impl Into<Value>, description: &'static str) -> ApiResult {
    Ok(Success {
        result: result.into(),
        description: Some(description),
    })
}

pub(crate) fn api_error(code: u16, description: impl Into<String>) -> ApiError {
    ApiError {
        code,
        description: description.into(),
        parameters: None,
    }
}

/// 400 `Bad Request: <what>`.
pub(crate) fn bad(what: impl std::fmt::Display) -> ApiError {
    api_error(400, format!("Bad Request: {what}"))
}

const WEBHOOK_CONFLICT: &str = "Conflict: can't use getUpdates method while webhook is active; \
                                use deleteWebhook to delete the webhook first";
const POLL_CONFLICT: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

/// Runs one method (name already lowercase).
pub(crate) async fn dispatch(shared: &Arc<Shared>, method: &str, p: &Params) -> ApiResult {
    match method {
        "getme" => ok(shared.me()),
        "getupdates" => get_updates(shared, p).await,
        "setwebhook" => set_webhook(shared, p),
        "deletewebhook" => delete_webhook(shared, p),
        "getwebhookinfo" => ok(lock(&shared.state).webhook_info()),
        "sendmessage" => messages::send_message(shared, p),
        "sendchataction" => messages::send_chat_action(shared, p),
        "editmessagetext" => messages::edit_message_text(shared, p),
        "deletemessage" => messages::delete_message(shared, p),
        "setmessagereaction" => messages::set_message_reaction(shared, p),
        "setmycommands" => {
            let commands = p.json("commands", "bot commands").map_err(bad)?;
            let commands = commands.ok_or_else(|| bad("parameter \"commands\" is required"))?;
            if !commands.is_array() {
                return Err(bad("can't parse bot commands JSON object"));
            }
            lock(&shared.state).commands = commands;
            ok(true)
        }
        "getmycommands" => ok(lock(&shared.state).commands.clone()),
        "deletemycommands" => {
            lock(&shared.state).commands = json!([]);
            ok(true)
        }
        "answercallbackquery" => ok(true),
        _ => Err(api_error(404, "Not Found")),
    }
}

/// Clears the active poll when a `getUpdates` request ends, however it ends.
struct PollGuard<'a> {
    shared: &'a Shared,
    seq: u64,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        if st.active_poll == Some(self.seq) {
            st.active_poll = None;
        }
    }
}

async fn get_updates(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let offset = p.i64("offset").map_err(bad)?.unwrap_or(0);
    let limit = p.i64("limit").map_err(bad)?.unwrap_or(100);
    let limit = if limit <= 0 { 100 } else { limit.min(100) } as usize;
    let timeout = p.f64("timeout").unwrap_or(0.0);
    let timeout = timeout.clamp(0.0, MAX_POLL_TIMEOUT_SECS);
    let allowed = p.str_list("allowed_updates").map_err(bad)?;
    let deadline = TokioInstant::now() + Duration::from_secs_f64(timeout);

    let seq = {
        let mut st = lock(&shared.state);
        if st.webhook.is_some() {
            return Err(api_error(409, WEBHOOK_CONFLICT));
        }
        if let Some(list) = allowed {
            st.allowed_updates = Some(list);
        }
        st.confirm(offset);
        st.poll_seq += 1;
        let seq = st.poll_seq;
        st.active_poll = Some(seq);
        seq
    };
    // Wakes an earlier poll so it answers 409.
    shared.changed.notify_waiters();
    let _guard = PollGuard { shared, seq };
    let offset = offset.max(0);
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = lock(&shared.state);
            if st.active_poll != Some(seq) {
                let msg = if st.webhook.is_some() {
                    WEBHOOK_CONFLICT
                } else {
                    POLL_CONFLICT
                };
                return Err(api_error(409, msg));
            }
            let ready = st.ready(offset, limit);
            if !ready.is_empty() || TokioInstant::now() >= deadline {
                let mut out = Vec::with_capacity(ready.len());
                for s in ready {
                    if let Some(q) = st.queue.iter_mut().find(|q| q.seq == s) {
                        q.delivered = true;
                        out.push(q.update.clone());
                    }
                }
                return ok(Value::Array(out));
            }
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn valid_secret(s: &str) -> Result<(), ApiError> {
    if s.len() > 256 {
        return Err(bad("secret token is too long"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad("secret token contains unallowed characters"));
    }
    Ok(())
}

fn set_webhook(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let url = p.str("url").unwrap_or_default().trim().to_string();
    let secret = p.str("secret_token").filter(|s| !s.is_empty());
    if let Some(s) = &secret {
        valid_secret(s)?;
    }
    let max_connections = p.i64("max_connections").map_err(bad)?.unwrap_or(40);
    let max_connections = max_connections.clamp(1, 100);
    let drop_pending = p.bool("drop_pending_updates");
    let allowed = p.str_list("allowed_updates").map_err(bad)?;
    if url.is_empty() {
        return remove_webhook(shared, drop_pending);
    }
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(bad(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    if let Err(e) = split_url(&url) {
        return Err(bad(format!("bad webhook: {e}")));
    }
    let already = {
        let mut st = lock(&shared.state);
        if drop_pending {
            st.queue.clear();
        }
        if let Some(list) = allowed {
            st.allowed_updates = Some(list);
        }
        let prev = st.webhook.take();
        let already = prev.as_ref().is_some_and(|w| {
            w.url == url && w.secret == secret && w.max_connections == max_connections
        });
        let last_error = prev.filter(|w| w.url == url).and_then(|w| w.last_error);
        st.webhook = Some(Webhook {
            url,
            secret,
            max_connections,
            last_error,
        });
        // A pending getUpdates now answers 409.
        st.active_poll = None;
        already
    };
    shared.changed.notify_waiters();
    if already {
        ok_described(true, "Webhook is already set")
    } else {
        ok_described(true, "Webhook was set")
    }
}

fn delete_webhook(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    remove_webhook(shared, p.bool("drop_pending_updates"))
}

fn remove_webhook(shared: &Arc<Shared>, drop_pending: bool) -> ApiResult {
    let was_set = {
        let mut st = lock(&shared.state);
        if drop_pending {
            st.queue.clear();
        }
        st.webhook.take().is_some()
    };
    shared.changed.notify_waiters();
    if was_set {
        ok_described(true, "Webhook was deleted")
    } else {
        ok_described(true, "Webhook is already deleted")
    }
}
