//! A small OpenClaw-protocol client: connect, authenticate with the shared secret, call.

use anyhow::{anyhow, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the CLI reaches the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Where the local gateway keeps its token (for hints).
    pub token_file: std::path::PathBuf,
}

/// An RPC error from the gateway (`res.ok == false`).
#[derive(Debug)]
pub struct RpcError {
    pub code: String,
    pub message: String,
    pub details: Value,
    /// `error.retryAfterMs` (rate limits).
    pub retry_after_ms: Option<u64>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

/// Why talking to the gateway failed, sorted so each gets its own hint.
#[derive(Debug)]
pub enum ClientError {
    /// TCP/WebSocket connection could not be made.
    Unreachable(String),
    /// The handshake was refused (auth, pairing, protocol).
    Refused(RpcError),
    /// The method answered with an error.
    Rpc(RpcError),
    Timeout(&'static str),
    Other(anyhow::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(m) => write!(f, "cannot reach the gateway: {m}"),
            ClientError::Refused(e) => {
                write!(f, "connection refused by the gateway: {}", e.message)
            }
            ClientError::Rpc(e) => write!(f, "{e}"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            ClientError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl ClientError {
    /// A one-line suggestion for the user.
    pub fn hint(&self, target: &Target) -> Option<String> {
        match self {
            ClientError::Unreachable(m) if m.contains("421") => Some(format!(
                "the gateway refused the host name in {}: it accepts loopback names (127.0.0.1, localhost, [::1]) \
                 and gateway.allowedHosts. Connect through 127.0.0.1 (Docker: publish with -p 127.0.0.1:{port}:{port}; \
                 another machine: ssh -N -L {port}:127.0.0.1:{port} user@host), or add the name to gateway.allowedHosts",
                target.url,
                port = target.port()
            )),
            ClientError::Unreachable(_) => {
                let port = target.port();
                Some(format!(
                    "is the gateway running? start it with `clawgate gateway run` (target {}; on another machine use `ssh -N -L {port}:127.0.0.1:{port} user@host`)",
                    target.url
                ))
            }
            ClientError::Refused(e) => match e.details.get("code").and_then(Value::as_str) {
                Some("AUTH_TOKEN_MISMATCH" | "AUTH_TOKEN_MISSING") => Some(format!(
                    "the token does not match: use the one in {} (the gateway's $CLAWGATE_HOME), or pass --token",
                    target.token_file.display()
                )),
                Some("AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING") => {
                    Some("pass the gateway password with --password or CLAWGATE_GATEWAY_PASSWORD".into())
                }
                Some("AUTH_RATE_LIMITED") => Some(match e.retry_after_ms {
                    Some(ms) => format!(
                        "too many failed attempts from this address; wait {} s and retry with the right token",
                        ms.div_ceil(1000).max(1)
                    ),
                    None => "too many failed attempts from this address; wait a while and retry with the right token".into(),
                }),
                Some("DEVICE_IDENTITY_REQUIRED") => Some(format!(
                    "this CLI sent no token: it sends the one in {} only to a gateway on this machine's loopback; \
                     pass --token or set CLAWGATE_GATEWAY_TOKEN (Docker: the container's token, e.g. \
                     `docker exec <container> cat /data/credentials/gateway-token`)",
                    target.token_file.display()
                )),
                _ => None,
            },
            ClientError::Rpc(e) if e.message.starts_with("missing scope") => Some(
                "a client with only the token (no paired device) keeps its scopes only on the gateway's own \
                 loopback; from a container network or another machine it can call `health` alone. Run the \
                 command where the gateway runs (Docker: `docker exec <container> clawgate …`)"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Target {
    /// The port of the target URL (the scheme's default when it has none).
    pub fn port(&self) -> u16 {
        let rest = self
            .url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.url);
        let authority = rest.split('/').next().unwrap_or(rest);
        let port = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => p.parse().ok(),
            _ => None,
        };
        port.unwrap_or(if self.url.starts_with("wss:") {
            443
        } else {
            80
        })
    }
}

impl From<anyhow::Error> for ClientError {
    fn from(e: anyhow::Error) -> Self {
        ClientError::Other(e)
    }
}

pub struct Connection {
    ws: Ws,
    next_id: u64,
    pub hello: Value,
}

fn rpc_error(v: &Value) -> RpcError {
    let e = v.get("error").cloned().unwrap_or(Value::Null);
    RpcError {
        code: e
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string(),
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        details: e.get("details").cloned().unwrap_or(Value::Null),
        retry_after_ms: e
            .get("retryAfterMs")
            .or_else(|| e.get("details").and_then(|d| d.get("retryAfterMs")))
            .and_then(Value::as_u64),
    }
}

async fn next_json(ws: &mut Ws) -> Result<Option<Value>, ClientError> {
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(ClientError::Unreachable(e.to_string())),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map(Some)
                    .map_err(|e| ClientError::Other(anyhow!("gateway sent invalid JSON: {e}")))
            }
            Some(Ok(Message::Close(frame))) => {
                let reason = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(ClientError::Unreachable(format!(
                    "connection closed by the gateway {reason}"
                )));
            }
            Some(Ok(_)) => continue,
        }
    }
}

impl Connection {
    /// Opens the socket, waits for `connect.challenge`, sends `connect`, waits for `hello-ok`.
    pub async fn open(
        target: &Target,
        scopes: &[&str],
        mode: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let fut = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(target.url.as_str())
                .await
                .map_err(|e| ClientError::Unreachable(format!("{} ({e})", target.url)))?;
            let challenge = next_json(&mut ws)
                .await?
                .ok_or_else(|| ClientError::Unreachable("closed before the challenge".into()))?;
            if challenge.get("event").and_then(Value::as_str) != Some("connect.challenge") {
                return Err(ClientError::Other(anyhow!(
                    "expected connect.challenge first"
                )));
            }
            let mut auth = serde_json::Map::new();
            if let Some(t) = &target.token {
                auth.insert("token".into(), json!(t));
            }
            if let Some(p) = &target.password {
                auth.insert("password".into(), json!(p));
            }
            let connect = json!({
                "type": "req", "id": "1", "method": "connect",
                "params": {
                    "minProtocol": 4, "maxProtocol": 4,
                    "client": {"id": "cli", "version": env!("CARGO_PKG_VERSION"), "platform": std::env::consts::OS, "mode": mode,
                               "instanceId": uuid::Uuid::new_v4().to_string()},
                    "caps": ["tool-events"], "role": "operator", "scopes": scopes, "auth": auth,
                }
            });
            ws.send(Message::text(connect.to_string()))
                .await
                .map_err(|e| ClientError::Unreachable(e.to_string()))?;
            loop {
                let Some(v) = next_json(&mut ws).await? else {
                    return Err(ClientError::Unreachable(
                        "closed during the handshake".into(),
                    ));
                };
                if v.get("type").and_then(Value::as_str) != Some("res") {
                    continue;
                }
                if v.get("ok").and_then(Value::as_bool) == Some(true) {
                    return Ok(Connection {
                        ws,
                        next_id: 2,
                        hello: v.get("payload").cloned().unwrap_or(Value::Null),
                    });
                }
                return Err(ClientError::Refused(rpc_error(&v)));
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("the gateway handshake"))?
    }

    /// Calls one method and waits for its response (events in between are skipped).
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let req = json!({"type": "req", "id": id, "method": method, "params": params});
        let fut = async {
            self.ws
                .send(Message::text(req.to_string()))
                .await
                .map_err(|e| ClientError::Unreachable(e.to_string()))?;
            loop {
                let Some(v) = next_json(&mut self.ws).await? else {
                    return Err(ClientError::Unreachable(
                        "connection closed before the reply".into(),
                    ));
                };
                if v.get("type").and_then(Value::as_str) == Some("res")
                    && v.get("id").and_then(Value::as_str) == Some(id.as_str())
                {
                    if v.get("ok").and_then(Value::as_bool) == Some(true) {
                        return Ok(v.get("payload").cloned().unwrap_or(Value::Null));
                    }
                    return Err(ClientError::Rpc(rpc_error(&v)));
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("the reply"))?
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_req(&mut self, method: &str, params: Value) -> Result<String, ClientError> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let req = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(req.to_string()))
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok(id)
    }

    /// The next frame from the gateway (events and responses alike).
    pub async fn next_frame(&mut self) -> Result<Value, ClientError> {
        next_json(&mut self.ws)
            .await?
            .ok_or_else(|| ClientError::Unreachable("connection closed by the gateway".into()))
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A plain `GET path` over HTTP/1.1 to the gateway port; returns (status, body).
pub async fn http_get(host_port: &str, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(host_port))
        .await
        .context("timed out")??;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(3),
        s.take(1 << 20).read_to_end(&mut buf),
    )
    .await
    .context("timed out")??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
