//! Socket Mode: the WebSocket upgrade at `/link/?ticket=…` (single-use tickets from
//! `apps.connections.open`), one task per connection (hello, envelopes, acks, pings,
//! disconnects, half-open and reset), and the dispatcher that routes `events_api`
//! envelopes to the newest open connection and redelivers unacknowledged ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::server::{text_response, Body};
use super::state::{lock, Conn, ConnCmd, Pending, Shared};
use super::{Ack, ConnectionInfo, EnvelopeDelivery};
use crate::resettable::ConnIo;

/// Commands queued per connection before the fake blocks (envelopes included).
const CONN_QUEUE: usize = 1024;

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Answers the WebSocket handshake (101) when the ticket is valid and unused.
pub(crate) fn upgrade(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
    let ticket = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("ticket="))
        .unwrap_or_default()
        .to_string();
    let is_ws = header(&req, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = header(&req, "sec-websocket-key").map(str::to_string) else {
        return text_response(400, "text/plain", "Bad Request".into());
    };
    if !is_ws || header(&req, "sec-websocket-version") != Some("13") {
        return text_response(400, "text/plain", "Bad Request".into());
    }
    {
        let mut sock = lock(&shared.socket);
        match sock.tickets.get_mut(&ticket) {
            Some(used) if !*used => *used = true,
            // Unknown or already used: Slack tickets are single-use.
            _ => return text_response(401, "text/plain", "invalid ticket".into()),
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let sh = shared.clone();
    let task = tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<ConnIo>>() else {
            return;
        };
        let io = parts.io.into_inner();
        let ws =
            WebSocketStream::from_partially_read(io, parts.read_buf.to_vec(), Role::Server, None)
                .await;
        run_conn(sh, ticket, ws).await;
    });
    shared.track(task.abort_handle());
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

fn update_info(shared: &Shared, id: u64, f: impl FnOnce(&mut ConnectionInfo)) {
    if let Some(c) = lock(&shared.socket).conns.get_mut(&id) {
        f(&mut c.info);
    }
    shared.notify();
}

/// Sends a command to a connection task, updating what the dispatcher sees at once.
pub(crate) fn command(shared: &Shared, id: u64, cmd: ConnCmd) {
    {
        let mut sock = lock(&shared.socket);
        let Some(conn) = sock.conns.get_mut(&id) else {
            return;
        };
        match &cmd {
            ConnCmd::Disconnect { reason, .. } => conn.info.disconnect_sent = Some(reason.clone()),
            ConnCmd::Freeze => conn.info.frozen = true,
            ConnCmd::Close | ConnCmd::Reset => {
                conn.info.closed_at.get_or_insert_with(Instant::now);
            }
            ConnCmd::Text(_) => {}
        }
        let _ = conn.tx.try_send(cmd);
    }
    shared.notify();
}

fn close_frame() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

async fn run_conn(shared: Arc<Shared>, ticket: String, mut ws: WebSocketStream<ConnIo>) {
    let (tx, mut rx) = mpsc::channel(CONN_QUEUE);
    let (id, num_connections) = {
        let mut sock = lock(&shared.socket);
        sock.next_conn += 1;
        let id = sock.next_conn;
        let info = ConnectionInfo {
            id,
            ticket,
            opened_at: Instant::now(),
            closed_at: None,
            disconnect_sent: None,
            frozen: false,
            pings_received: 0,
            pongs_received: 0,
        };
        sock.conns.insert(id, Conn { tx, info });
        let open = sock.conns.values().filter(|c| c.routable()).count();
        (id, open)
    };
    let hello = json!({
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {
            "host": format!("applink-fake-{id}"),
            "build_number": 10,
            "approximate_connection_time": 18060,
        },
        "connection_info": {"app_id": shared.cfg.app_id},
    });
    if ws.send(Message::text(hello.to_string())).await.is_ok() {
        shared.notify();
        conn_loop(&shared, id, &mut ws, &mut rx).await;
    }
    update_info(&shared, id, |i| {
        i.closed_at.get_or_insert_with(Instant::now);
    });
}

async fn conn_loop(
    shared: &Shared,
    id: u64,
    ws: &mut WebSocketStream<ConnIo>,
    rx: &mut mpsc::Receiver<ConnCmd>,
) {
    let mut close_at: Option<tokio::time::Instant> = None;
    let mut ping = shared
        .cfg
        .server_ping_interval
        .map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
    let mut ping_seq: u64 = 0;
    loop {
        let close_timer = async {
            match close_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let ping_tick = async {
            match ping.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Text(t)) => {
                    if ws.send(Message::text(t)).await.is_err() {
                        return;
                    }
                }
                Some(ConnCmd::Disconnect { reason, close_after }) => {
                    let msg = json!({
                        "type": "disconnect",
                        "reason": reason,
                        "debug_info": {"host": format!("applink-fake-{id}")},
                    });
                    if ws.send(Message::text(msg.to_string())).await.is_err() {
                        return;
                    }
                    if close_after.is_zero() {
                        let _ = ws.send(close_frame()).await;
                        return;
                    }
                    close_at = Some(tokio::time::Instant::now() + close_after);
                }
                Some(ConnCmd::Close) => {
                    let _ = ws.send(close_frame()).await;
                    return;
                }
                Some(ConnCmd::Freeze) => {
                    // Keep the socket (held by our caller) open and silent forever: no
                    // reads, so no pongs either, and no FIN until the fake is dropped.
                    std::future::pending::<()>().await;
                }
                Some(ConnCmd::Reset) => {
                    ws.get_ref().reset.store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                None => return,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => on_text(shared, id, t.as_str()),
                // tungstenite queues the pong and flushes it on the next read.
                Some(Ok(Message::Ping(_))) => update_info(shared, id, |i| i.pings_received += 1),
                Some(Ok(Message::Pong(_))) => update_info(shared, id, |i| i.pongs_received += 1),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = close_timer => {
                let _ = ws.send(close_frame()).await;
                return;
            }
            _ = ping_tick => {
                ping_seq += 1;
                let payload = format!("ping-{ping_seq}").into_bytes();
                if ws.send(Message::Ping(payload.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// An ack `{"envelope_id":…}` (optionally with a `payload`), or another frame.
fn on_text(shared: &Shared, conn: u64, text: &str) {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let envelope_id = parsed
        .as_ref()
        .and_then(|v| v["envelope_id"].as_str().map(str::to_string));
    let mut sock = lock(&shared.socket);
    match (envelope_id, parsed) {
        (Some(envelope_id), Some(raw)) => {
            let event_id = sock
                .pending
                .iter_mut()
                .find(|p| p.envelope_ids.contains(&envelope_id))
                .map(|p| {
                    p.acked = true;
                    p.event_id.clone()
                })
                .or_else(|| {
                    sock.sent
                        .iter()
                        .find(|d| d.envelope_id == envelope_id)
                        .map(|d| d.event_id.clone())
                });
            sock.acks.push(Ack {
                envelope_id,
                conn,
                event_id,
                raw,
                at: Instant::now(),
            });
        }
        _ => sock.other_frames.push((conn, text.to_string())),
    }
    drop(sock);
    shared.notify();
}

/// Queues an envelope payload of this `type` (`events_api`, `slash_commands`,
/// `interactive`) for delivery over Socket Mode.
pub(crate) fn enqueue(shared: &Shared, kind: &str, payload: Value) {
    let event_id = payload["event_id"].as_str().unwrap_or_default().to_string();
    lock(&shared.socket).pending.push(Pending {
        kind: kind.to_string(),
        event_id,
        payload,
        envelope_ids: Vec::new(),
        retry_attempt: 0,
        sent_at: None,
        acked: false,
    });
    shared.notify();
}

/// Routes pending envelopes until the fake is dropped.
pub(crate) async fn dispatcher(shared: Arc<Shared>) {
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match pump(&shared) {
            Some(deadline) => {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Sends what can be sent, redelivers what timed out; returns the next ack deadline.
fn pump(shared: &Shared) -> Option<Instant> {
    let now = Instant::now();
    let timeout = shared.cfg.socket_ack_timeout;
    let max_retries = shared.cfg.socket_max_retries;
    let mut changed = false;
    let mut next: Option<Instant> = None;
    let mut sock = lock(&shared.socket);
    let target = sock
        .conns
        .iter()
        .rev()
        .find(|(_, c)| c.routable())
        .map(|(id, c)| (*id, c.tx.clone()));
    let mut deliveries = Vec::new();
    let mut given_up = Vec::new();
    for p in sock.pending.iter_mut().filter(|p| !p.acked) {
        if let Some(sent) = p.sent_at {
            let due = sent + timeout;
            if now < due {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
                continue;
            }
            // Only Events API envelopes are redelivered.
            if p.retry_attempt >= max_retries || p.kind != "events_api" {
                given_up.push(p.event_id.clone());
                p.acked = true; // removed below
                continue;
            }
            p.retry_attempt += 1;
            p.sent_at = None;
            changed = true;
        }
        let Some((conn, tx)) = &target else {
            continue;
        };
        let envelope_id = uuid::Uuid::new_v4().to_string();
        let frame = if p.kind == "events_api" {
            json!({
                "envelope_id": envelope_id,
                "payload": p.payload,
                "type": "events_api",
                "accepts_response_payload": false,
                "retry_attempt": p.retry_attempt,
                "retry_reason": if p.retry_attempt == 0 { "" } else { "timeout" },
            })
        } else {
            json!({
                "envelope_id": envelope_id,
                "payload": p.payload,
                "type": p.kind,
                "accepts_response_payload": true,
            })
        };
        if tx.try_send(ConnCmd::Text(frame.to_string())).is_err() {
            continue;
        }
        p.sent_at = Some(now);
        p.envelope_ids.push(envelope_id.clone());
        let due = now + timeout;
        next = Some(next.map_or(due, |n: Instant| n.min(due)));
        deliveries.push(EnvelopeDelivery {
            envelope_id,
            event_id: p.event_id.clone(),
            retry_attempt: p.retry_attempt,
            conn: *conn,
            at: now,
        });
        changed = true;
    }
    let before = sock.pending.len();
    sock.pending.retain(|p| !p.acked);
    changed |= sock.pending.len() != before;
    sock.sent.extend(deliveries);
    sock.given_up.extend(given_up);
    drop(sock);
    if changed {
        shared.notify();
    }
    // A short floor keeps a tight loop impossible even with a zero timeout.
    next.map(|n| n.max(now + Duration::from_millis(1)))
}
