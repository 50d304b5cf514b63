//! Providers turn a [`ModelRequest`] into a stream of [`ModelEvent`]s. The loop never sees
//! HTTP; retries with backoff live here too, shared by every provider.

pub mod anthropic;
pub mod openai;
pub mod sse;

use crate::types::{ModelEvent, ModelRequest};
use clawgate_config::{ProviderApi, ProviderConfig};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderError {
    /// The provider answered with an HTTP error.
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No response (or no first token) in time, or the whole request took too long.
    Timeout(&'static str),
    /// Could not connect, or the connection broke.
    Network(String),
    /// The response was not what the API promises (bad JSON, truncated stream).
    Protocol(String),
}

impl ProviderError {
    /// Worth another attempt: rate limits, server errors, timeouts, broken connections.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            ProviderError::Timeout(_) | ProviderError::Network(_) => true,
            ProviderError::Protocol(_) => true,
        }
    }

    /// A human message without secrets (provider bodies are truncated and never echo our key).
    pub fn describe(&self, provider: &str, model: &str) -> String {
        match self {
            ProviderError::Http { status: 400, message, .. } => format!(
                "LLM request failed: {provider}/{model} rejected the request (HTTP 400): {message}"
            ),
            ProviderError::Http { status: 401 | 403, .. } => format!(
                "LLM request failed: {provider}/{model} refused the API key (check models.providers.{provider}.apiKey)"
            ),
            ProviderError::Http { status: 404, .. } => format!(
                "LLM request failed: {provider}/{model} not found (check models.providers.{provider}.baseUrl and the model id)"
            ),
            ProviderError::Http { status: 429, .. } => {
                format!("{provider}/{model} is rate limited (HTTP 429); try again shortly")
            }
            ProviderError::Http { status, .. } => format!(
                "{provider}/{model} request failed (provider error, HTTP {status}). This is usually temporary — try again shortly."
            ),
            ProviderError::Timeout(what) => format!("{provider}/{model} timed out waiting for {what}"),
            ProviderError::Network(m) => format!("cannot reach {provider} ({m})"),
            ProviderError::Protocol(m) => format!("{provider}/{model} sent an invalid response: {m}"),
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            ProviderError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// One configured provider with its HTTP client.
pub struct Provider {
    pub cfg: ProviderConfig,
    http: reqwest::Client,
}

impl Provider {
    pub fn new(cfg: ProviderConfig) -> Result<Provider, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .no_proxy()
            .build()
            .map_err(|e| format!("provider {}: {e}", cfg.id))?;
        Ok(Provider { cfg, http })
    }

    /// One attempt: streams events into `tx`. Returns how many events were sent, so the
    /// caller knows whether a retry would repeat output.
    pub async fn stream_once(
        &self,
        req: &ModelRequest,
        tx: &mpsc::Sender<ModelEvent>,
    ) -> Result<(), (ProviderError, usize)> {
        let total = Duration::from_millis(self.cfg.total_timeout_ms);
        let mut out = Emitter { tx, sent: 0 };
        let result = {
            let fut = async {
                match self.cfg.api {
                    ProviderApi::OpenAiCompletions => openai::stream(self, req, &mut out).await,
                    ProviderApi::AnthropicMessages => anthropic::stream(self, req, &mut out).await,
                }
            };
            tokio::time::timeout(total, fut).await
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err((e, out.sent)),
            Err(_) => Err((ProviderError::Timeout("the whole response"), out.sent)),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn first_token_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.first_token_timeout_ms)
    }
}

/// Forwards events to the loop, counting them (a failed attempt that already produced
/// output must not be retried, or the user would see it twice).
pub(crate) struct Emitter<'a> {
    tx: &'a mpsc::Sender<ModelEvent>,
    pub sent: usize,
}

impl Emitter<'_> {
    pub async fn send(&mut self, ev: ModelEvent) -> Result<(), ProviderError> {
        self.sent += 1;
        self.tx
            .send(ev)
            .await
            .map_err(|_| ProviderError::Network("the run was cancelled".into()))
    }
}

/// Sends a provider request with the configured extra headers, waiting at most the
/// first-token timeout for the response head; a non-2xx answer becomes an error.
pub(crate) async fn send_request(
    p: &Provider,
    rb: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    let mut rb = rb;
    for (k, v) in &p.cfg.headers {
        rb = rb.header(k.as_str(), v.expose());
    }
    let resp = match tokio::time::timeout(p.first_token_timeout(), rb.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_connect() => {
            return Err(ProviderError::Network(format!(
                "connection to {} failed",
                p.cfg.base_url
            )))
        }
        Ok(Err(e)) => return Err(ProviderError::Network(short(&e.to_string()))),
        Err(_) => return Err(ProviderError::Timeout("the first token")),
    };
    if !resp.status().is_success() {
        return Err(http_error(resp).await);
    }
    Ok(resp)
}

/// Reads the next body chunk with an idle timeout; `Ok(None)` at the end of the body.
pub(crate) async fn next_chunk(
    resp: &mut reqwest::Response,
    idle: Duration,
    first: bool,
) -> Result<Option<bytes::Bytes>, ProviderError> {
    match tokio::time::timeout(idle, resp.chunk()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ProviderError::Network(short(&e.to_string()))),
        Err(_) => Err(ProviderError::Timeout(if first {
            "the first token"
        } else {
            "more output"
        })),
    }
}

/// Turns a non-2xx response into an error, reading at most a little of the body.
pub(crate) async fn http_error(mut resp: reqwest::Response) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = clawgate_retry::retry_after(resp.headers());
    let mut body = Vec::new();
    while body.len() < 4096 {
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(c))) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(String::from)
        })
        .unwrap_or_else(|| text.trim().to_string());
    ProviderError::Http {
        status,
        message: short(&message),
        retry_after,
    }
}

/// At most 300 characters of provider text in our messages.
pub(crate) fn short(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(300)
        .collect();
    s
}

/// The shared API backoff; a provider's `Retry-After` wins when it is longer, but a chat turn
/// waits at most two minutes for one retry.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    clawgate_retry::Backoff::API
        .delay_with_hint(attempt, retry_after)
        .min(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        assert!(backoff(0, None) <= Duration::from_millis(500));
        assert!(backoff(3, None) >= Duration::from_millis(2000));
        assert!(backoff(10, None) <= Duration::from_secs(30));
        assert!(backoff(0, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(999))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn retryable_classes() {
        let http = |status| ProviderError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(http(429).retryable());
        assert!(http(503).retryable());
        assert!(!http(400).retryable());
        assert!(!http(401).retryable());
        assert!(ProviderError::Timeout("x").retryable());
    }
}
