//! A thin Bot API client: `POST {apiRoot}/bot<token>/<method>` with JSON, errors classified
//! for retries. The token is part of every URL, so URLs are never logged.

use crate::SendError;
use clawgate_config::Secret;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status / `error_code` (0 for network errors and timeouts).
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == 0 {
            write!(f, "{}", self.description)
        } else {
            write!(f, "{} {}", self.code, self.description)
        }
    }
}

impl ApiError {
    fn network(e: &reqwest::Error) -> ApiError {
        let what = if e.is_timeout() {
            "request timed out"
        } else if e.is_connect() {
            "cannot connect to the Bot API"
        } else {
            "network error talking to the Bot API"
        };
        ApiError {
            code: 0,
            description: what.into(),
            retry_after: None,
        }
    }

    /// How the outbox should treat this failure.
    pub fn classify(&self) -> SendError {
        match self.code {
            429 => SendError::RetryAfter(self.retry_after.unwrap_or(1) * 1000, self.to_string()),
            0 | 500..=599 => SendError::Transient(self.to_string()),
            _ => SendError::Permanent(self.to_string()),
        }
    }
}

pub struct Api {
    http: reqwest::Client,
    root: String,
    token: Secret,
}

impl Api {
    pub fn new(api_root: &str, token: Secret) -> Result<Api, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Api {
            http,
            root: api_root.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Calls a method; `timeout` bounds the whole request.
    pub async fn call(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.root, self.token.expose());
        let resp = self
            .http
            .post(url)
            .timeout(timeout)
            .json(params)
            .send()
            .await
            .map_err(|e| ApiError::network(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| ApiError::network(&e))?;
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return Err(ApiError {
                    code: if status == 200 { 502 } else { status },
                    description: format!("HTTP {status} with a non-JSON body"),
                    retry_after: None,
                })
            }
        };
        if v["ok"] == true {
            return Ok(v["result"].clone());
        }
        let code = v["error_code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(status);
        let description: String = v["description"]
            .as_str()
            .unwrap_or("unknown error")
            .chars()
            .take(300)
            .collect();
        Err(ApiError {
            code,
            description,
            retry_after: v["parameters"]["retry_after"].as_u64(),
        })
    }

    pub async fn get_me(&self) -> Result<Value, ApiError> {
        self.call("getMe", &json!({}), Duration::from_secs(15))
            .await
    }

    pub async fn delete_webhook(&self) -> Result<Value, ApiError> {
        self.call(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            Duration::from_secs(15),
        )
        .await
    }

    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<Value, ApiError> {
        let params = json!({"url": url, "secret_token": secret, "allowed_updates": ["message", "edited_message"]});
        self.call("setWebhook", &params, Duration::from_secs(15))
            .await
    }

    /// Long poll: the HTTP timeout exceeds the poll timeout so an idle poll is not an error.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let mut params = json!({"timeout": timeout_secs, "limit": 100, "allowed_updates": ["message", "edited_message"]});
        if let Some(o) = offset {
            params["offset"] = json!(o);
        }
        let v = self
            .call(
                "getUpdates",
                &params,
                Duration::from_secs(timeout_secs + 10),
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    pub async fn send_chat_action(
        &self,
        chat_id: &str,
        thread_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut params = json!({"chat_id": chat_id_value(chat_id), "action": "typing"});
        if let Some(t) = thread_id.and_then(|t| t.parse::<i64>().ok()) {
            params["message_thread_id"] = json!(t);
        }
        self.call("sendChatAction", &params, Duration::from_secs(10))
            .await
    }

    /// `sendMessage` with Telegram HTML; falls back to plain text when Telegram rejects the
    /// entities, and drops the reply reference when the original message is gone.
    pub async fn send_message(
        &self,
        chat_id: &str,
        thread_id: Option<&str>,
        reply_to: Option<&str>,
        text: &str,
    ) -> Result<Value, ApiError> {
        let html = super::format::to_html(text);
        let mut params = json!({"chat_id": chat_id_value(chat_id), "text": html, "parse_mode": "HTML",
                                "link_preview_options": {"is_disabled": true}});
        if let Some(t) = thread_id
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|t| *t != 1)
        {
            params["message_thread_id"] = json!(t);
        }
        if let Some(r) = reply_to.and_then(|r| r.parse::<i64>().ok()) {
            params["reply_parameters"] =
                json!({"message_id": r, "allow_sending_without_reply": true});
        }
        let timeout = Duration::from_secs(20);
        match self.call("sendMessage", &params, timeout).await {
            Err(e) if e.code == 400 && e.description.contains("can't parse entities") => {
                params["text"] = json!(text);
                if let Some(o) = params.as_object_mut() {
                    o.remove("parse_mode");
                }
                self.call("sendMessage", &params, timeout).await
            }
            Err(e) if e.code == 400 && e.description.contains("message thread not found") => {
                if let Some(o) = params.as_object_mut() {
                    o.remove("message_thread_id");
                }
                self.call("sendMessage", &params, timeout).await
            }
            other => other,
        }
    }

    /// `editMessageText` with Telegram HTML (plain text when Telegram rejects the entities).
    /// An edit that changes nothing ("message is not modified") counts as done.
    pub async fn edit_message_text(
        &self,
        chat_id: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), ApiError> {
        let Ok(mid) = message_id.trim().parse::<i64>() else {
            return Err(ApiError {
                code: 400,
                description: format!("Bad Request: `{message_id}` is not a message id"),
                retry_after: None,
            });
        };
        let html = super::format::to_html(text);
        let mut params = json!({"chat_id": chat_id_value(chat_id), "message_id": mid,
                                "text": html, "parse_mode": "HTML",
                                "link_preview_options": {"is_disabled": true}});
        let timeout = Duration::from_secs(20);
        let r = match self.call("editMessageText", &params, timeout).await {
            Err(e) if e.code == 400 && e.description.contains("can't parse entities") => {
                params["text"] = json!(text);
                if let Some(o) = params.as_object_mut() {
                    o.remove("parse_mode");
                }
                self.call("editMessageText", &params, timeout).await
            }
            other => other,
        };
        match r {
            Err(e) if e.code == 400 && e.description.contains("message is not modified") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn chat_id_value(chat_id: &str) -> Value {
    chat_id
        .parse::<i64>()
        .map(|n| json!(n))
        .unwrap_or_else(|_| json!(chat_id))
}
