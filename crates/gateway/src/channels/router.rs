//! Channel-independent processing: stored inbound message → access control → pairing or the
//! agent → reply chunks into the outbox (atomically marking the inbound done) → the outbox
//! sender delivers each chunk once, honouring the platform's retry-after.

use crate::chat::{start_turn, TurnError};
use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_channels::access::{decide, Decision, Policy};
use clawgate_channels::chunk::chunk_text;
use clawgate_channels::pairing::{generate_code, reply_text, MAX_PENDING, TTL_MS};
use clawgate_channels::session_key::session_key;
use clawgate_channels::{ChatType, InboundMessage, SendError};
use clawgate_store::{InboundRow, NewOutbox, OutboxRow, PairingOutcome};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the router needs from a channel: parsing, policy, and the two outbound calls.
pub trait Port: Send + Sync {
    fn name(&self) -> &'static str;
    fn parse(&self, raw: &Value) -> Option<InboundMessage>;
    fn policy(&self) -> Policy<'_>;
    /// The line that tells an unknown sender their id (`Your Telegram user id: 42`).
    fn id_line(&self, sender_id: &str) -> String;
    fn chunk_limit(&self) -> usize;
    fn typing<'a>(&'a self, chat_id: &'a str, thread_id: Option<&'a str>) -> PortFuture<'a, ()>;
    /// Sends one chunk; `Ok(platform message id)`.
    fn send<'a>(&'a self, row: &'a OutboxRow) -> PortFuture<'a, Result<Option<String>, SendError>>;
    /// Whether the channel knows enough (e.g. the bot's own identity) to process messages.
    fn ready(&self) -> bool;
    fn inbound_wake(&self) -> &Notify;
    fn outbox_wake(&self) -> &Notify;
    fn status(&self) -> &super::StatusCell;
}

/// Attempts at running the agent for one message before answering with an apology.
const MAX_ATTEMPTS: i64 = 3;
/// Outbox delivery attempts before a chunk is given up.
const MAX_SEND_ATTEMPTS: i64 = 10;
/// Messages processed at once (different chats run concurrently; a session runs one at a time).
const MAX_CONCURRENT: usize = 8;

/// The reply split at the platform limit, each chunk with its once-only dedupe key.
fn chunks_for(port: &dyn Port, row: &InboundRow, text: &str) -> Vec<(String, String)> {
    chunk_text(text, port.chunk_limit())
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{}:{}:{}", port.name(), row.id, i), c))
        .collect()
}

/// Queues the reply chunks and marks the inbound row done, in one transaction.
fn reply(gw: &Gateway, port: &dyn Port, row: &InboundRow, msg: &InboundMessage, text: &str) {
    let now = now_ms();
    let reply_to = (msg.chat_type == ChatType::Group).then(|| msg.message_id.clone());
    let chunks = chunks_for(port, row, text);
    let outs: Vec<NewOutbox> = chunks
        .iter()
        .map(|(key, c)| NewOutbox {
            channel: port.name(),
            account: &msg.account,
            chat_id: &msg.chat_id,
            thread_id: msg.thread_id.as_deref(),
            reply_to: reply_to.as_deref(),
            text: c,
            dedupe_key: key,
            inbound_id: Some(row.id),
            now,
        })
        .collect();
    match gw.chat.store.enqueue_reply(&outs, row.id, now) {
        Ok(_) => port.outbox_wake().notify_one(),
        Err(e) => warn!(
            channel = port.name(),
            inbound = row.id,
            "cannot queue the reply: {e}"
        ),
    }
}

fn mark(gw: &Gateway, row: &InboundRow, status: &str) {
    if let Err(e) = gw.chat.store.mark_inbound(row.id, status, now_ms()) {
        warn!(inbound = row.id, "cannot mark an inbound message: {e}");
    }
}

async fn process(gw: Arc<Gateway>, port: Arc<dyn Port>, row: InboundRow) {
    let store = &gw.chat.store;
    let Some(msg) = port.parse(&row.payload) else {
        mark(&gw, &row, "ignored");
        return;
    };
    port.status()
        .update(|s| s.last_inbound_at = Some(row.received_at));
    let approved = store
        .is_sender_allowed(port.name(), &msg.account, &msg.sender_id)
        .unwrap_or(false);
    match decide(&port.policy(), &msg, approved) {
        Decision::Drop(reason) => {
            debug!(channel = port.name(), chat = %msg.chat_id, "message ignored: {reason}");
            mark(&gw, &row, "ignored");
        }
        Decision::Pair => {
            let meta = json!({"name": msg.sender_name, "chatId": msg.chat_id});
            let mut gen = generate_code;
            let outcome = store.upsert_pairing_request(
                port.name(),
                &msg.account,
                &msg.sender_id,
                &meta,
                now_ms(),
                TTL_MS,
                MAX_PENDING,
                &mut gen,
            );
            match outcome {
                Ok(PairingOutcome::Created(req)) => {
                    info!(channel = port.name(), sender = %msg.sender_id, "pairing requested by an unknown sender");
                    let text = reply_text(port.name(), &port.id_line(&msg.sender_id), &req.code);
                    reply(&gw, port.as_ref(), &row, &msg, &text);
                }
                // One reply per request; at the cap, stay silent.
                Ok(_) => mark(&gw, &row, "ignored"),
                Err(e) => warn!("pairing store error: {e}"),
            }
        }
        Decision::Process => run_agent(&gw, port.as_ref(), &row, &msg).await,
    }
}

async fn run_agent(gw: &Arc<Gateway>, port: &dyn Port, row: &InboundRow, msg: &InboundMessage) {
    let store = &gw.chat.store;
    // A crash after the reply was queued: the reply exists, nothing to redo.
    if store
        .outbox_for_inbound(row.id)
        .map(|o| !o.is_empty())
        .unwrap_or(false)
    {
        mark(gw, row, "done");
        return;
    }
    let attempt = store.bump_inbound_attempts(row.id).unwrap_or(1);
    if attempt > MAX_ATTEMPTS {
        reply(
            gw,
            port,
            row,
            msg,
            "⚠️ Sorry, I could not answer this message.",
        );
        return;
    }
    let key = session_key(gw.config.dm_scope, msg);
    let run_id = format!("{}-{}-{}", port.name(), row.id, attempt);
    match start_turn(gw, &key, &run_id, &msg.text, None) {
        Ok(()) => {}
        Err(TurnError::Store(e)) | Err(TurnError::Busy(e)) => {
            warn!(channel = port.name(), "cannot start a run: {e}");
            return;
        }
    }
    // Typing while the agent works (Telegram shows it for about 5 s).
    let wait = gw.chat.wait(
        &run_id,
        Duration::from_millis(gw.chat.cfg.timeout_ms + 60_000),
    );
    tokio::pin!(wait);
    let summary = loop {
        port.typing(&msg.chat_id, msg.thread_id.as_deref()).await;
        tokio::select! {
            s = &mut wait => break s,
            _ = tokio::time::sleep(Duration::from_secs(4)) => {}
        }
    };
    let text = match summary {
        Some(s) if s.status == "ok" && !s.text.trim().is_empty() => s.text,
        Some(s) if s.status == "ok" => "(no reply)".to_string(),
        Some(s) if s.status == "error" => {
            format!("⚠️ {}", s.error.unwrap_or_else(|| "the run failed".into()))
        }
        Some(_) => "⚠️ The run was stopped before it finished.".to_string(),
        None => "⚠️ The run did not finish in time.".to_string(),
    };
    reply(gw, port, row, msg, &text);
}

/// Processes stored inbound messages, oldest first, until the gateway stops.
pub async fn inbound_loop(gw: Arc<Gateway>, port: Arc<dyn Port>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    let in_flight: Arc<std::sync::Mutex<std::collections::HashSet<i64>>> = Arc::default();
    loop {
        if gw.is_shutting_down() {
            return;
        }
        let rows = if port.ready() {
            gw.chat.store.pending_inbound(64).unwrap_or_default()
        } else {
            Vec::new()
        };
        for row in rows {
            if row.channel != port.name() {
                continue;
            }
            if !in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(row.id)
            {
                continue;
            }
            let Ok(permit) = sem.clone().acquire_owned().await else {
                return;
            };
            let (gw2, port2, in_flight2) = (gw.clone(), port.clone(), in_flight.clone());
            tokio::spawn(async move {
                let id = row.id;
                process(gw2, port2, row).await;
                in_flight2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                drop(permit);
            });
        }
        tokio::select! {
            _ = port.inbound_wake().notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn backoff_ms(attempts: i64) -> i64 {
    let base = 500i64.saturating_mul(1 << attempts.clamp(0, 6));
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = i64::from(u16::from_le_bytes(b)) % (base / 10 + 1);
    (base + jitter).min(30_000)
}

/// Delivers due outbox rows: each chunk is claimed, sent, and marked; failures are retried
/// with the platform's retry-after or a backoff, and never sent twice once marked sent.
pub async fn outbox_loop(gw: Arc<Gateway>, port: Arc<dyn Port>) {
    let store = gw.chat.store.clone();
    loop {
        if gw.is_shutting_down() {
            return;
        }
        let now = now_ms();
        let due = store.due_outbox(port.name(), now, 32).unwrap_or_default();
        for row in due {
            if !store.claim_outbox(row.id, now + 60_000).unwrap_or(false) {
                continue;
            }
            match port.send(&row).await {
                Ok(mid) => {
                    let _ = store.mark_outbox_sent(row.id, mid.as_deref(), now_ms());
                    port.status()
                        .update(|s| s.last_outbound_at = Some(now_ms()));
                }
                Err(SendError::RetryAfter(ms, e)) => {
                    info!(channel = port.name(), "rate limited; retrying in {ms} ms");
                    let _ = store.mark_outbox_retry(row.id, now_ms() + ms as i64, &e);
                }
                Err(SendError::Transient(e)) if row.attempts + 1 < MAX_SEND_ATTEMPTS => {
                    let _ =
                        store.mark_outbox_retry(row.id, now_ms() + backoff_ms(row.attempts), &e);
                }
                Err(SendError::Transient(e)) | Err(SendError::Permanent(e)) => {
                    warn!(channel = port.name(), chat = %row.chat_id, "giving up on a reply: {e}");
                    let _ = store.mark_outbox_failed(row.id, &e, now_ms());
                    port.status()
                        .update(|s| s.last_error = Some(format!("send failed: {e}")));
                }
            }
        }
        let wait_ms = match store.next_outbox_due(port.name()) {
            Ok(Some(t)) => (t - now_ms()).clamp(10, 1000),
            _ => 1000,
        };
        tokio::select! {
            _ = port.outbox_wake().notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
        }
    }
}
