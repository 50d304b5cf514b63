//! A raw WebSocket client for tests: custom upgrade headers, arbitrary frames, and helpers
//! for the OpenClaw handshake.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub struct RawWs {
    pub ws: WebSocketStream<TcpStream>,
    next_id: u64,
}

/// What came back when we expected the socket to close.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl RawWs {
    /// Connects to `addr` with extra upgrade headers. `Err(status)` when the server
    /// answered the upgrade with an HTTP error instead of 101.
    pub async fn connect_with(
        addr: std::net::SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<RawWs, u16> {
        let mut req = format!("ws://{addr}/")
            .into_client_request()
            .expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                    .expect("header name"),
                v.parse().expect("header value"),
            );
        }
        let tcp = TcpStream::connect(addr).await.expect("tcp connect");
        let mut cfg = WebSocketConfig::default();
        cfg.max_message_size = Some(64 << 20);
        cfg.max_frame_size = Some(64 << 20);
        match tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg)).await {
            Ok((ws, _)) => Ok(RawWs { ws, next_id: 1 }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    pub async fn connect(addr: std::net::SocketAddr) -> RawWs {
        Self::connect_with(addr, &[])
            .await
            .expect("upgrade refused")
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// Next text frame as JSON, or `None` if the socket closed / the deadline passed.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Value> {
        let fut = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).ok(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.ok().flatten()
    }

    /// Reads until the server closes; returns its close code and reason.
    pub async fn expect_close(&mut self, timeout: Duration) -> Closed {
        let fut = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(Some(f)))) => {
                        return Closed {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        }
                    }
                    Some(Ok(Message::Close(None))) => {
                        return Closed {
                            code: 1005,
                            reason: String::new(),
                        }
                    }
                    None | Some(Err(_)) => {
                        return Closed {
                            code: 1006,
                            reason: String::new(),
                        }
                    }
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .expect("server did not close in time")
    }

    /// Reads frames until one satisfies `pred` (events before it are skipped).
    pub async fn recv_until(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self
                .recv(left)
                .await
                .expect("socket closed or timed out before the expected frame");
            if pred(&v) {
                return v;
            }
        }
    }

    /// Reads the `connect.challenge` event and returns (nonce, ts).
    pub async fn challenge(&mut self) -> (String, i64) {
        let v = self.recv(Duration::from_secs(5)).await.expect("challenge");
        assert_eq!(v["event"], "connect.challenge", "{v}");
        (
            v["payload"]["nonce"].as_str().expect("nonce").to_string(),
            v["payload"]["ts"].as_i64().expect("ts"),
        )
    }

    /// Sends `connect` with `params` and returns the `res` frame.
    pub async fn connect_req(&mut self, params: Value) -> Value {
        self.send_json(&json!({"type": "req", "id": "c1", "method": "connect", "params": params}))
            .await;
        self.recv_until(Duration::from_secs(5), |v| {
            v["type"] == "res" && v["id"] == "c1"
        })
        .await
    }

    /// Sends a request and waits for its response.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        self.send_json(&json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        self.recv_until(Duration::from_secs(5), |v| {
            v["type"] == "res" && v["id"] == id.as_str()
        })
        .await
    }
}

/// `connect` params for the CLI client (`cli`/`cli`) with a token and scopes.
pub fn cli_params(token: &str, scopes: &[&str]) -> Value {
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
        "caps": [], "role": "operator", "scopes": scopes, "auth": {"token": token},
    })
}

/// Connects and completes the handshake as the local CLI; panics if refused.
pub async fn connect_cli(
    addr: std::net::SocketAddr,
    token: &str,
    scopes: &[&str],
) -> (RawWs, Value) {
    let mut ws = RawWs::connect(addr).await;
    ws.challenge().await;
    let res = ws.connect_req(cli_params(token, scopes)).await;
    assert_eq!(res["ok"], true, "connect refused: {res}");
    (ws, res["payload"].clone())
}
