//! One WebSocket connection: challenge, handshake, then the request loop.

pub mod hello;
pub mod io;

use crate::auth::{authenticate, Grant, Peer};
use crate::conns::Outlet;
use crate::devices::now_ms;
use crate::methods::{self, Ctx};
use crate::state::Gateway;
use clawgate_protocol::connect::ConnectParams;
use clawgate_protocol::error::ErrorShape;
use clawgate_protocol::frame::{self, FrameError, Request};
use clawgate_protocol::{close, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD};
use fastwebsockets::WebSocket;
use io::{Incoming, Reader};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

/// The connect that succeeded: who the client is and what it may do.
pub struct Session {
    pub conn_id: u64,
    pub conn_uuid: String,
    pub grant: Grant,
    pub params: ConnectParams,
}

pub async fn serve<S>(gw: Arc<Gateway>, ws: WebSocket<S>, peer: Peer, preauth: crate::preauth::Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = ws.split(tokio::io::split);
    let (outlet, rx, queued) = Outlet::new(gw.timings.max_buffered_bytes);
    let writer = tokio::spawn(io::run_writer(write, rx, queued));
    let mut reader = Reader::new(read, MAX_PREAUTH_PAYLOAD);

    let nonce = uuid::Uuid::new_v4().to_string();
    outlet.send(frame::event(
        "connect.challenge",
        &json!({"nonce": nonce, "ts": now_ms()}),
        None,
        None,
    ));

    let deadline = Duration::from_millis(gw.timings.handshake_timeout_ms);
    let result = tokio::time::timeout(
        deadline,
        handshake(&gw, &mut reader, &outlet, &peer, &nonce),
    )
    .await;
    drop(preauth);
    let session = match result {
        Ok(Some(s)) => s,
        Ok(None) => {
            drop(outlet);
            linger(&mut reader, writer).await;
            return;
        }
        Err(_) => {
            debug!(peer = %peer.addr, "handshake timed out");
            outlet.close(close::POLICY, "handshake timeout");
            drop(outlet);
            linger(&mut reader, writer).await;
            return;
        }
    };

    reader.set_max_message(MAX_PAYLOAD);
    let conn_id = session.conn_id;
    gw.conns.insert(
        conn_id,
        outlet.clone(),
        session.grant.scopes.clone(),
        session.grant.device_id.clone(),
        session.params.caps.clone(),
    );
    let listed = !clawgate_protocol::is_ephemeral_mode(&session.params.client.mode);
    if listed {
        gw.add_presence(conn_id, hello::presence_entry(&session, &peer));
    }
    let mut shutdown = gw.shutdown.subscribe();
    let ctx = Ctx {
        gw: gw.clone(),
        session,
        outlet: outlet.clone(),
        peer: peer.clone(),
    };
    loop {
        let incoming = tokio::select! {
            m = reader.next() => m,
            _ = shutdown.changed() => break,
        };
        match incoming {
            Incoming::Text(text) => match Request::parse(&text) {
                Ok(req) => methods::dispatch(&ctx, req).await,
                Err(FrameError::NotRequest) => {
                    // Answer when the frame names an id we can echo; otherwise close.
                    let id = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(String::from));
                    match id {
                        Some(id) => {
                            outlet.send(frame::response_err(
                                &id,
                                &ErrorShape::invalid("invalid request frame"),
                                None,
                            ));
                        }
                        None => {
                            outlet.close(close::POLICY, "invalid request frame");
                            break;
                        }
                    }
                }
                Err(FrameError::NotJson) => {
                    outlet.close(close::POLICY, "invalid request frame");
                    break;
                }
            },
            Incoming::Ping(p) => {
                outlet.pong(p);
            }
            Incoming::Binary => {
                outlet.close(1003, "binary frames are not supported");
                break;
            }
            Incoming::TooBig => {
                outlet.close(close::TOO_BIG, "payload too large");
                break;
            }
            Incoming::BadUtf8 => {
                outlet.close(1007, "invalid utf-8");
                break;
            }
            Incoming::Closed(code) => {
                // Echo the peer's close (a bare close for 1005, as the real gateway does).
                outlet.close(code.unwrap_or(1005), "");
                break;
            }
            Incoming::Gone => {
                outlet.close(close::PROTOCOL_ERROR, "protocol error");
                break;
            }
        }
        if outlet.is_closed() {
            break;
        }
    }
    gw.conns.remove(conn_id);
    if listed {
        gw.remove_presence(conn_id);
    }
    drop(ctx);
    drop(outlet);
    linger(&mut reader, writer).await;
}

/// Lets the writer deliver the close frame while unread input is discarded: closing a
/// socket with unread data would reset it and the peer could lose the close frame.
async fn linger<R: AsyncRead + Unpin>(reader: &mut Reader<R>, writer: tokio::task::JoinHandle<()>) {
    let drain = async {
        loop {
            match reader.next().await {
                Incoming::Closed(_) | Incoming::Gone | Incoming::TooBig | Incoming::BadUtf8 => {
                    break
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tokio::join!(drain, async {
            let _ = writer.await;
        })
    })
    .await;
}

/// Reads the first frame and runs `connect`. `None` means the connection was refused and a
/// close is queued.
async fn handshake<R: AsyncRead + Unpin>(
    gw: &Arc<Gateway>,
    reader: &mut Reader<R>,
    outlet: &Outlet,
    peer: &Peer,
    nonce: &str,
) -> Option<Session> {
    let text = loop {
        match reader.next().await {
            Incoming::Text(t) => break t,
            Incoming::Ping(p) => {
                outlet.pong(p);
            }
            Incoming::TooBig => {
                warn!(peer = %peer.addr, "pre-auth frame over 64 KiB");
                outlet.close(close::TOO_BIG, "preauth payload too large");
                return None;
            }
            Incoming::Closed(code) => {
                outlet.close(code.unwrap_or(1005), "");
                return None;
            }
            Incoming::BadUtf8 => {
                outlet.close(1007, "invalid utf-8");
                return None;
            }
            Incoming::Binary | Incoming::Gone => {
                outlet.close(close::POLICY, "invalid request frame");
                return None;
            }
        }
    };
    let req = match Request::parse(&text) {
        Ok(r) => r,
        Err(_) => {
            outlet.close(close::POLICY, "invalid request frame");
            return None;
        }
    };
    let refuse = |err: ErrorShape, code: u16, reason: &str| {
        outlet.send(frame::response_err(&req.id, &err, None));
        outlet.close(code, reason);
    };
    if req.method != "connect" {
        let msg = "invalid handshake: first request must be connect";
        refuse(ErrorShape::invalid(msg), close::POLICY, msg);
        return None;
    }
    let params = match ConnectParams::parse(&req.params) {
        Ok(p) => p,
        Err(e) => {
            let reason = e.message.clone();
            refuse(e, close::POLICY, &reason);
            return None;
        }
    };
    if !params.protocol_ok() {
        let err = ErrorShape::invalid("protocol mismatch").with_detail_code(
            "PROTOCOL_MISMATCH",
            &[
                ("clientMinProtocol", json!(params.min_protocol)),
                ("clientMaxProtocol", json!(params.max_protocol)),
                (
                    "expectedProtocol",
                    json!(clawgate_protocol::PROTOCOL_VERSION),
                ),
                (
                    "minimumProbeProtocol",
                    json!(clawgate_protocol::MIN_PROBE_PROTOCOL),
                ),
            ],
        );
        refuse(err, close::PROTOCOL_ERROR, "protocol mismatch");
        return None;
    }
    if gw.is_shutting_down() {
        let err = ErrorShape::unavailable("gateway stopping").retry_after(1000);
        refuse(err, close::SERVICE_RESTART, "service restart");
        return None;
    }
    let decided = if params.device.is_some() {
        // Device checks read and write the state database: not on an async worker.
        let (g, p, c, n) = (gw.clone(), peer.clone(), params.clone(), nonce.to_string());
        tokio::task::spawn_blocking(move || authenticate(&g, &p, &c, &n))
            .await
            .unwrap_or_else(|_| Err(ErrorShape::unavailable("authentication failed").into()))
    } else {
        authenticate(gw, peer, &params, nonce)
    };
    match decided {
        Ok(grant) => {
            let session = Session {
                conn_id: gw.conns.next_id(),
                conn_uuid: uuid::Uuid::new_v4().to_string(),
                grant,
                params,
            };
            info!(
                peer = %peer.addr,
                client = %session.params.client.id,
                mode = %session.params.client.mode,
                auth = session.grant.method,
                scopes = session.grant.scopes.len(),
                "client connected"
            );
            outlet.send(frame::response_ok(
                &req.id,
                &hello::hello_ok(gw, &session, peer),
            ));
            Some(session)
        }
        Err(refusal) => {
            let detail = refusal.error.detail_code().unwrap_or("").to_string();
            warn!(peer = %peer.addr, client = %params.client.id, reason = %detail, "connect refused");
            let mut reason = refusal.error.message.clone();
            if let Some(id) = refusal
                .error
                .details
                .as_ref()
                .and_then(|d| d.get("requestId"))
                .and_then(|v| v.as_str())
            {
                reason = format!("{reason} (requestId: {id})");
            }
            refuse(refusal.error, refusal.close_code, &reason);
            None
        }
    }
}
