//! One WebSocket connection: challenge, handshake, then the request loop.

pub mod hello;
pub mod io;

use crate::auth::{authenticate, Grant, Peer};
use crate::conns::{ConnSlot, Outlet};
use crate::devices::now_ms;
use crate::methods::{self, Ctx};
use crate::state::Gateway;
use clawgate_protocol::connect::ConnectParams;
use clawgate_protocol::error::ErrorShape;
use clawgate_protocol::frame::{self, FrameError, Request};
use clawgate_protocol::{
    close, MAX_IN_FLIGHT, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD, PREAUTH_MAX_BUFFERED_BYTES,
};
use fastwebsockets::WebSocket;
use futures_util::stream::{FuturesUnordered, StreamExt};
use io::{Incoming, Reader};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, warn};

/// The connect that succeeded: who the client is and what it may do.
pub struct Session {
    pub conn_id: u64,
    pub conn_uuid: String,
    pub grant: Grant,
    pub params: ConnectParams,
}

/// How long a closing connection keeps reading (discarding) while its close frame goes out.
const LINGER: Duration = Duration::from_secs(2);
/// The same for a connection whose handshake failed; also its writer's grace.
const PREAUTH_LINGER: Duration = Duration::from_secs(1);
/// How long the writer of a closing authenticated connection may take to deliver what is
/// queued (bounded by `maxBufferedBytes`) to a peer that reads late; then it is dropped.
const AUTHED_WRITER_GRACE: Duration = Duration::from_secs(10);

/// How the handshake phase ended.
enum Handshake {
    /// Authenticated; the id of the `connect` request to answer with hello-ok, and the
    /// connection's place under `gateway.maxConnections`.
    Done(Box<Session>, String, ConnSlot),
    /// Refused; a close is queued (or the peer went away).
    Refused,
    TimedOut,
    /// The pre-auth slot was taken for a newcomer (all slots full, this one idle).
    Evicted,
}

/// Leaves the outbound budget's candidates when the connection is gone.
struct BudgetMember(Arc<Gateway>, u64);

impl Drop for BudgetMember {
    fn drop(&mut self) {
        self.0.conns.budget.leave(self.1);
    }
}

/// Reads one message with the reader moved in and out, so the read can stay pending across
/// `select!` iterations without being cancelled mid-frame.
async fn next_owned<R: AsyncRead + Unpin>(mut reader: Reader<R>) -> (Reader<R>, Incoming) {
    let incoming = reader.next().await;
    (reader, incoming)
}

pub async fn serve<S>(gw: Arc<Gateway>, ws: WebSocket<S>, peer: Peer, preauth: crate::preauth::Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = ws.split(tokio::io::split);
    // Until `connect` succeeds the peer gets a small outbound budget: a client that sends
    // pings and never reads is closed after a few KiB, not after `maxBufferedBytes`.
    let (mut outlet, queue) = Outlet::new(PREAUTH_MAX_BUFFERED_BYTES, gw.conns.budget.clone());
    let writer = tokio::spawn(io::run_writer(write, queue));
    let mut reader = Reader::new(read, MAX_PREAUTH_PAYLOAD);

    let nonce = uuid::Uuid::new_v4().to_string();
    outlet.send(frame::event(
        "connect.challenge",
        &json!({"nonce": nonce, "ts": now_ms()}),
        None,
        None,
    ));

    let deadline = Duration::from_millis(gw.timings.handshake_timeout_ms);
    let result = tokio::select! {
        r = tokio::time::timeout(
            deadline,
            handshake(&gw, &mut reader, &outlet, &peer, &nonce, &preauth),
        ) => match r {
            Ok(Some((s, id, slot))) => Handshake::Done(Box::new(s), id, slot),
            Ok(None) => Handshake::Refused,
            Err(_) => Handshake::TimedOut,
        },
        _ = preauth.evicted() => Handshake::Evicted,
    };
    let linger_permit = match result {
        Handshake::Done(..) => None,
        _ => preauth.linger_permit(),
    };
    drop(preauth);
    let (session, _slot) = match result {
        Handshake::Done(session, id, slot) => {
            // Authenticated: the full outbound bound applies from the hello-ok on.
            outlet.set_max_buffered(gw.timings.max_buffered_bytes);
            // The snapshot's session summary may be a second old: hello stays cheap.
            gw.refresh_sessions(std::time::Duration::from_secs(1)).await;
            outlet.send(frame::response_ok(
                &id,
                &hello::hello_ok(&gw, &session, &peer),
            ));
            (*session, slot)
        }
        end => {
            match end {
                Handshake::TimedOut => {
                    debug!(peer = %peer.addr, "handshake timed out");
                    outlet.close(close::POLICY, "handshake timeout");
                }
                Handshake::Evicted => {
                    debug!(peer = %peer.addr, "idle handshake evicted: pre-auth slots full");
                    outlet.close(close::TRY_AGAIN_LATER, "server busy");
                }
                _ => {}
            }
            if outlet.overflowed() || linger_permit.is_none() {
                // The peer does not read (no close frame can reach it), or too many failed
                // handshakes are lingering already: drop it now.
                debug!(peer = %peer.addr, "pre-auth connection dropped without linger");
                writer.abort();
                return;
            }
            drop(outlet);
            linger(&mut reader, writer, PREAUTH_LINGER).await;
            drop(linger_permit);
            return;
        }
    };

    reader.set_max_message(MAX_PAYLOAD);
    let conn_id = session.conn_id;
    // Its queue may now be shed to keep the process-wide outbound budget.
    gw.conns.budget.join(conn_id, &outlet);
    let _member = BudgetMember(gw.clone(), conn_id);
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
    // Requests run concurrently (up to MAX_IN_FLIGHT), all on this task: a slow one
    // (`agent.wait`, `send`) no longer blocks the others or the pongs. At the cap the socket
    // is not read until one finishes. Replies carry their ids; event `seq` is assigned at
    // broadcast time under the registry lock, so it is unaffected.
    let mut inflight = FuturesUnordered::new();
    // What running requests may hold (text length plus `frame::values_weight`); reading
    // pauses at MAX_PAYLOAD.
    let mut inflight_bytes = 0usize;
    let read = next_owned(reader);
    tokio::pin!(read);
    // The reader, once it returned a terminal frame (nothing more to read).
    let mut finished: Option<Reader<_>> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(len) = inflight.next(), if !inflight.is_empty() => inflight_bytes -= len,
            (r, incoming) = read.as_mut(),
                if inflight.len() < MAX_IN_FLIGHT && inflight_bytes < MAX_PAYLOAD => {
                let mut stop = incoming.is_terminal();
                match incoming {
                    Incoming::Text(text) => match Request::parse_weighed(&text) {
                        Ok((req, weight)) => {
                            // Counted by what the parsed request may hold, not its text.
                            inflight_bytes += weight;
                            let ctx = &ctx;
                            inflight.push(async move {
                                methods::dispatch(ctx, req).await;
                                weight
                            });
                        }
                        Err(e @ (FrameError::NotRequest | FrameError::TooManyValues)) => {
                            // Answer when the frame names an id we can echo; otherwise close.
                            let msg = match e {
                                FrameError::TooManyValues => "frame has too many JSON values",
                                _ => "invalid request frame",
                            };
                            match frame::request_id(&text) {
                                Some(id) => {
                                    outlet.send(frame::response_err(
                                        &id,
                                        &ErrorShape::invalid(msg),
                                        None,
                                    ));
                                }
                                None => outlet.close(close::POLICY, msg),
                            }
                        }
                        Err(FrameError::NotJson) => outlet.close(close::POLICY, "invalid request frame"),
                    },
                    Incoming::Ping(p) => {
                        outlet.pong(p);
                    }
                    Incoming::Pong(p) => outlet.pong_received(&p),
                    Incoming::Binary => {
                        outlet.close(1003, "binary frames are not supported");
                        stop = true;
                    }
                    Incoming::TooBig => outlet.close(close::TOO_BIG, "payload too large"),
                    Incoming::BadUtf8 => outlet.close(1007, "invalid utf-8"),
                    Incoming::Closed(code) => {
                        // Echo the peer's close (a bare close for 1005, as the real gateway does).
                        outlet.close(code.unwrap_or(1005), "");
                    }
                    Incoming::Protocol(why) => {
                        debug!(peer = %peer.addr, "protocol violation: {why}");
                        outlet.close(close::PROTOCOL_ERROR, why);
                    }
                    Incoming::Gone => outlet.close(close::PROTOCOL_ERROR, "protocol error"),
                }
                if stop {
                    finished = Some(r);
                    break;
                }
                read.set(next_owned(r));
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
    // Requests still running get the linger time to finish (their replies are dropped once
    // the outlet is closed); then they are cancelled with the connection.
    let settle = async { while inflight.next().await.is_some() {} };
    let drain = async {
        let mut reader = match finished {
            Some(r) => r,
            None => {
                let (r, incoming) = read.as_mut().await;
                if incoming.is_terminal() {
                    return;
                }
                r
            }
        };
        while !reader.next().await.is_terminal() {}
    };
    let _ = tokio::time::timeout(LINGER, async { tokio::join!(settle, drain) }).await;
    drop(inflight);
    drop(ctx);
    drop(outlet);
    finish_writer(writer, AUTHED_WRITER_GRACE).await;
}

/// Gives the writer up to `grace` to deliver what is queued (ending with the close frame),
/// then drops it, so a peer that never reads cannot pin the connection.
async fn finish_writer(mut writer: tokio::task::JoinHandle<()>, grace: Duration) {
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Lets the writer deliver the close frame while unread input is discarded: closing a
/// socket with unread data would reset it and the peer could lose the close frame.
async fn linger<R: AsyncRead + Unpin>(
    reader: &mut Reader<R>,
    writer: tokio::task::JoinHandle<()>,
    grace: Duration,
) {
    let drain = async { while !reader.next().await.is_terminal() {} };
    let _ = tokio::join!(
        tokio::time::timeout(LINGER, drain),
        finish_writer(writer, grace)
    );
}

/// Reads the first frame and runs `connect`: the session and the request id to answer with
/// hello-ok. `None` means the connection was refused and a close is queued.
async fn handshake<R: AsyncRead + Unpin>(
    gw: &Arc<Gateway>,
    reader: &mut Reader<R>,
    outlet: &Outlet,
    peer: &Peer,
    nonce: &str,
    slot: &crate::preauth::Slot,
) -> Option<(Session, String, ConnSlot)> {
    let text = loop {
        match reader.next().await {
            Incoming::Text(t) => break t,
            Incoming::Ping(p) => {
                // Over the pre-auth budget the outlet closes itself (slow consumer).
                if !outlet.pong(p) {
                    return None;
                }
            }
            Incoming::Pong(_) => {}
            Incoming::Protocol(why) => {
                debug!(peer = %peer.addr, "pre-auth protocol violation: {why}");
                outlet.close(close::PROTOCOL_ERROR, why);
                return None;
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
    slot.mark_busy();
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
            let Some(conn_slot) = gw.conns.try_slot() else {
                warn!(peer = %peer.addr, "connect refused: gateway.maxConnections reached");
                let msg = "too many connections";
                refuse(
                    ErrorShape::unavailable(msg).retry_after(1000),
                    close::TRY_AGAIN_LATER,
                    msg,
                );
                return None;
            };
            let session = Session {
                conn_id: gw.conns.next_id(),
                conn_uuid: uuid::Uuid::new_v4().to_string(),
                grant,
                params,
            };
            // Connection chatter is debug: a `logs --follow` client would otherwise fill the
            // log with itself.
            debug!(
                peer = %peer.addr,
                client = %session.params.client.id,
                mode = %session.params.client.mode,
                auth = session.grant.method,
                scopes = session.grant.scopes.len(),
                "client connected"
            );
            Some((session, req.id, conn_slot))
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
