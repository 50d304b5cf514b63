//! The Graph API client (`POST {graphBaseUrl}/{version}/{phoneNumberId}/messages`, Bearer
//! token) and Meta's errors classified by `code`, never by text.

use crate::SendError;
use clawgate_config::Secret;
use serde_json::{json, Value};
use std::time::Duration;

/// One Graph call's limit (the outbox lease allows two).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Meta's customer-service window.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// A failed Graph call.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    /// HTTP status (0: no answer).
    pub http: u16,
    /// `error.code` (`None`: no Graph error envelope).
    pub code: Option<i64>,
    pub message: String,
    pub details: Option<String>,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "Graph error {c}: {}", self.message)?,
            None if self.http == 0 => write!(f, "{}", self.message)?,
            None => write!(f, "HTTP {}: {}", self.http, self.message)?,
        }
        if let Some(d) = self
            .details
            .as_deref()
            .filter(|d| !self.message.contains(*d))
        {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// The fix shown when Meta refuses the access token.
pub const TOKEN_FIX: &str = "the WhatsApp access token was refused (expired or revoked): create a new one (a System User token in Meta Business Settings does not expire), set channels.whatsapp.accessToken and restart the gateway";

/// The clear error for a reply outside the 24-hour window.
pub fn window_error(detail: &str) -> String {
    format!("outside WhatsApp's 24-hour customer-service window: {detail}. Free-form messages can only be sent within 24 hours of the user's last message; the user has to write again first (or a pre-approved template message is needed)")
}

impl GraphError {
    /// The access token is expired or invalid: the channel cannot send until it is fixed.
    pub fn is_auth(&self) -> bool {
        matches!(self.code, Some(190) | Some(0)) || (self.code.is_none() && self.http == 401)
    }

    /// For the outbox: back off on rate limits, retry temporary failures, give up on the rest.
    pub fn classify(&self) -> SendError {
        let text = self.to_string();
        let at_least = |ms: u64| {
            let hinted = self.retry_after.map(|s| s * 1000).unwrap_or(0);
            SendError::RetryAfter(ms.max(hinted), text.clone())
        };
        match self.code {
            Some(131047) => {
                SendError::Permanent(window_error(&format!("Meta refused the reply ({text})")))
            }
            // Cloud API throughput (per phone number, about 80 messages/s).
            Some(130429) => at_least(1_000),
            // Too many messages to the same user in a short time.
            Some(131056) => at_least(6_000),
            // App-level and WABA-level rate limits.
            Some(4) | Some(80007) => at_least(30_000),
            // Spam rate limit: back off for a long time.
            Some(131048) => at_least(300_000),
            Some(131000) | Some(2) => SendError::Transient(text),
            Some(190) | Some(0) => SendError::Permanent(format!("{TOKEN_FIX} ({text})")),
            Some(_) => SendError::Permanent(text),
            None if self.http == 429 => at_least(1_000),
            None if self.http == 0 || self.http >= 500 || self.http == 408 => {
                SendError::Transient(text)
            }
            None if self.http == 401 => SendError::Permanent(format!("{TOKEN_FIX} ({text})")),
            None => SendError::Permanent(text),
        }
    }
}

pub struct Graph {
    http: reqwest::Client,
    /// `{base}/{version}/{phoneNumberId}/messages`.
    messages_url: String,
    token: Secret,
}

impl Graph {
    pub fn new(
        base: &str,
        version: &str,
        phone_number_id: &str,
        token: Secret,
    ) -> Result<Graph, String> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Graph {
            http,
            messages_url: format!(
                "{}/{version}/{phone_number_id}/messages",
                base.trim_end_matches('/')
            ),
            token,
        })
    }

    async fn post(&self, body: &Value) -> Result<Value, GraphError> {
        let resp = self
            .http
            .post(&self.messages_url)
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| GraphError {
                http: 0,
                code: None,
                message: format!("Graph API unreachable: {}", without_url(&e)),
                details: None,
                retry_after: None,
            })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) && v.get("error").is_none() {
            return Ok(v);
        }
        let e = &v["error"];
        Err(GraphError {
            http: status,
            code: e["code"].as_i64(),
            message: e["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect()),
            details: e["error_data"]["details"].as_str().map(str::to_string),
            retry_after,
        })
    }

    /// Sends one text message; `Ok(wamid)`. `group`: `to` is a group id.
    pub async fn send_text(
        &self,
        to: &str,
        text: &str,
        reply_to: Option<&str>,
        group: bool,
    ) -> Result<String, GraphError> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": if group { "group" } else { "individual" },
            "to": to, "type": "text",
            "text": {"preview_url": false, "body": text},
        });
        if let Some(id) = reply_to {
            body["context"] = json!({ "message_id": id });
        }
        let v = self.post(&body).await?;
        Ok(v["messages"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Marks an inbound message read, with the typing indicator when `typing`.
    pub async fn mark_read(&self, message_id: &str, typing: bool) -> Result<(), GraphError> {
        let mut body =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": message_id});
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        self.post(&body).await.map(|_| ())
    }
}

/// A reqwest error without its URL (which holds nothing secret here, but stays short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(http: u16, code: Option<i64>) -> GraphError {
        GraphError {
            http,
            code,
            message: "m".into(),
            details: None,
            retry_after: None,
        }
    }

    #[test]
    fn errors_are_classified_by_code() {
        let perm = |e: GraphError| matches!(e.classify(), SendError::Permanent(_));
        let trans = |e: GraphError| matches!(e.classify(), SendError::Transient(_));
        let after = |e: GraphError| match e.classify() {
            SendError::RetryAfter(ms, _) => ms,
            other => panic!("{other:?}"),
        };
        // The HTTP status does not matter, the code does.
        assert!(perm(err(400, Some(131047))));
        let SendError::Permanent(m) = err(400, Some(131047)).classify() else {
            panic!()
        };
        assert!(m.contains("24-hour"), "{m}");
        assert_eq!(after(err(429, Some(130429))), 1_000);
        assert_eq!(after(err(400, Some(131056))), 6_000);
        assert_eq!(after(err(400, Some(4))), 30_000);
        assert_eq!(after(err(400, Some(80007))), 30_000);
        assert!(trans(err(500, Some(131000))));
        assert!(trans(err(503, Some(2))));
        assert!(trans(err(400, Some(2))));
        assert!(perm(err(401, Some(190))));
        assert!(err(401, Some(190)).is_auth());
        assert!(perm(err(400, Some(100))));
        assert!(trans(err(502, None)));
        assert!(trans(err(0, None)));
        let hinted = GraphError {
            retry_after: Some(3),
            ..err(429, Some(130429))
        };
        assert_eq!(after(hinted), 3_000);
    }
}
