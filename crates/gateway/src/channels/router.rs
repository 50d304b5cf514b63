//! Channel-independent processing: stored inbound message → access control → pairing or the
//! agent → reply chunks into the outbox (atomically marking the inbound done) → the outbox
//! sender delivers each chunk once, honouring the platform's retry-after.

use super::Running;
use crate::chat::{start_turn, TurnError};
use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_channels::access::{decide, Decision};
use clawgate_channels::chunk::chunk_text;
use clawgate_channels::pairing::{generate_code, reply_text, MAX_PENDING, TTL_MS};
use clawgate_channels::{InboundMessage, OutChunk, ReplyRoute, SendError};
use clawgate_store::{InboundRow, NewOutbox, PairingOutcome};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Attempts at running the agent for one message before answering with an apology.
const MAX_ATTEMPTS: i64 = 3;
/// Outbox delivery attempts before a chunk is given up.
const MAX_SEND_ATTEMPTS: i64 = 10;
/// Messages processed at once (different chats run concurrently; a session runs one at a time).
const MAX_CONCURRENT: usize = 8;

/// The reply split at the platform limit, each chunk with its once-only dedupe key and where
/// it goes (the channel decides per chunk: thread, reply reference).
fn chunks_for(
    port: &Running,
    row: &InboundRow,
    msg: &InboundMessage,
    text: &str,
) -> Vec<(String, String, ReplyRoute)> {
    chunk_text(text, port.ch.egress().chunk_limit())
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let key = format!("{}:{}:{}", port.ch.name(), row.id, i);
            (key, c, port.ch.reply_route(msg, i))
        })
        .collect()
}

/// Queues the reply chunks and marks the inbound row done, in one transaction.
async fn reply(gw: &Gateway, port: &Running, row: &InboundRow, msg: &InboundMessage, text: &str) {
    let now = now_ms();
    let chunks = chunks_for(port, row, msg, text);
    let channel = port.ch.name();
    let (account, chat_id) = (msg.account.clone(), msg.chat_id.clone());
    let inbound_id = row.id;
    let queued = gw
        .chat
        .store
        .call(move |store| {
            let outs: Vec<NewOutbox> = chunks
                .iter()
                .map(|(key, c, route)| NewOutbox {
                    channel,
                    account: &account,
                    chat_id: &chat_id,
                    thread_id: route.thread_id.as_deref(),
                    reply_to: route.reply_to.as_deref(),
                    text: c,
                    dedupe_key: key,
                    inbound_id: Some(inbound_id),
                    now,
                })
                .collect();
            store.enqueue_reply(&outs, inbound_id, now)
        })
        .await;
    match queued {
        Ok(_) => port.host.outbox_wake.notify_one(),
        Err(e) => warn!(
            channel = port.ch.name(),
            inbound = row.id,
            "cannot queue the reply: {e}"
        ),
    }
}

async fn mark(gw: &Gateway, row: &InboundRow, status: &'static str) {
    let (id, now) = (row.id, now_ms());
    let marked = gw
        .chat
        .store
        .call(move |store| store.mark_inbound(id, status, now))
        .await;
    if let Err(e) = marked {
        warn!(inbound = row.id, "cannot mark an inbound message: {e}");
    }
}

async fn process(gw: Arc<Gateway>, port: Running, row: InboundRow) {
    let store = &gw.chat.store;
    let Some(msg) = port.ch.parse(&row.payload) else {
        mark(&gw, &row, "ignored").await;
        return;
    };
    port.ch
        .status()
        .update(|s| s.last_inbound_at = Some(row.received_at));
    let channel = port.ch.name();
    let (account, sender) = (msg.account.clone(), msg.sender_id.clone());
    // Unknown is not "not allowed": on a store error the message stays pending and the next
    // pass decides, rather than sending an approved sender a pairing code.
    let approved = match store
        .call(move |s| s.is_sender_allowed(channel, &account, &sender))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            warn!(
                channel,
                inbound = row.id,
                "cannot read the allowlist; will retry: {e}"
            );
            return;
        }
    };
    match decide(&port.ch.policy().view(), &msg, approved) {
        Decision::Drop(reason) => {
            debug!(channel = port.ch.name(), chat = %msg.chat_id, "message ignored: {reason}");
            mark(&gw, &row, "ignored").await;
        }
        Decision::Pair => {
            let meta = json!({"name": msg.sender_name, "chatId": msg.chat_id});
            let (account, sender) = (msg.account.clone(), msg.sender_id.clone());
            let now = now_ms();
            let outcome = store
                .call(move |s| {
                    let mut gen = generate_code;
                    s.upsert_pairing_request(
                        channel,
                        &account,
                        &sender,
                        &meta,
                        now,
                        TTL_MS,
                        MAX_PENDING,
                        &mut gen,
                    )
                })
                .await;
            match outcome {
                Ok(PairingOutcome::Created(req)) => {
                    info!(channel = port.ch.name(), sender = %msg.sender_id, "pairing requested by an unknown sender");
                    let text =
                        reply_text(port.ch.name(), &port.ch.id_line(&msg.sender_id), &req.code);
                    reply(&gw, &port, &row, &msg, &text).await;
                }
                // One reply per request; at the cap, stay silent.
                Ok(_) => mark(&gw, &row, "ignored").await,
                Err(e) => warn!("pairing store error: {e}"),
            }
        }
        Decision::Process => run_agent(&gw, &port, &row, &msg).await,
    }
}

async fn run_agent(gw: &Arc<Gateway>, port: &Running, row: &InboundRow, msg: &InboundMessage) {
    let id = row.id;
    // A crash after the reply was queued: the reply exists, nothing to redo. Otherwise count
    // the attempt. One store round trip.
    let attempt = gw
        .chat
        .store
        .call(move |s| {
            if !s.outbox_for_inbound(id)?.is_empty() {
                return Ok(None);
            }
            Ok(Some(s.bump_inbound_attempts(id)?))
        })
        .await;
    let attempt = match attempt {
        Ok(Some(a)) => a,
        Ok(None) => {
            mark(gw, row, "done").await;
            return;
        }
        // Left pending: the next pass tries again.
        Err(e) => {
            warn!(
                channel = port.ch.name(),
                inbound = id,
                "state database error: {e}"
            );
            return;
        }
    };
    if attempt > MAX_ATTEMPTS {
        reply(
            gw,
            port,
            row,
            msg,
            "⚠️ Sorry, I could not answer this message.",
        )
        .await;
        return;
    }
    let key = port.ch.session_key(gw.live_config().dm_scope, msg);
    let run_id = format!("{}-{}-{}", port.ch.name(), row.id, attempt);
    match start_turn(gw, &key, &run_id, &msg.text, None).await {
        Ok(()) => {}
        Err(TurnError::Store(e)) | Err(TurnError::Busy(e)) => {
            warn!(channel = port.ch.name(), "cannot start a run: {e}");
            return;
        }
    }
    // Typing while the agent works (platforms show it for about 5 s).
    let wait = gw.chat.wait(
        &run_id,
        Duration::from_millis(gw.chat.settings().cfg.timeout_ms + 60_000),
    );
    tokio::pin!(wait);
    let summary = loop {
        port.ch
            .egress()
            .typing(&msg.chat_id, msg.thread_id.as_deref())
            .await;
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
    reply(gw, port, row, msg, &text).await;
}

/// Processes stored inbound messages, oldest first, until the gateway stops.
pub async fn inbound_loop(gw: Arc<Gateway>, port: Running) {
    let sem = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    let in_flight: Arc<std::sync::Mutex<std::collections::HashSet<i64>>> = Arc::default();
    loop {
        if gw.is_shutting_down() {
            return;
        }
        let channel = port.ch.name();
        let rows = if port.ch.ready() {
            match gw
                .chat
                .store
                .call(move |s| s.pending_inbound(channel, 64))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(
                        channel,
                        "cannot read stored messages; retrying shortly: {e}"
                    );
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        for row in rows {
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
            _ = port.host.inbound_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn backoff_ms(attempts: i64) -> i64 {
    let attempt = u32::try_from(attempts).unwrap_or(0);
    clawgate_retry::Backoff::API.delay(attempt).as_millis() as i64
}

/// How long a claimed chunk stays leased to this sender: beyond the longest `send` (two
/// platform send calls of up to 20 s each, see the channels' API clients). Only a
/// sender that stopped without recording the outcome lets a lease run out; a restart does not
/// wait for it (see [`outbox_loop`]).
pub const SEND_LEASE_MS: i64 = 45_000;

/// What happened to a claimed chunk, to be written to its outbox row.
#[derive(Clone)]
enum Outcome {
    Sent(Option<String>),
    Retry { at: i64, error: String },
    Failed(String),
}

impl Outcome {
    fn describe(&self) -> &'static str {
        match self {
            Outcome::Sent(_) => "a delivered chunk",
            Outcome::Retry { .. } => "a retry",
            Outcome::Failed(_) => "a failed chunk",
        }
    }
}

/// Records the outcome of a claimed chunk. Until it is written the chunk stays leased
/// (`sending`): a lost "sent" would let the lease run out and the chunk be sent again, a lost
/// retry time would hold the chunk until the lease ends. So a failed write is logged and
/// retried with the shared backoff until shortly before the lease ends, never dropped.
async fn record(gw: &Gateway, id: i64, outcome: Outcome, lease_until: i64) {
    let what = outcome.describe();
    let curve = clawgate_retry::Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut attempt = 0;
    loop {
        let (o, now) = (outcome.clone(), now_ms());
        let written = gw
            .chat
            .store
            .call(move |s| match o {
                Outcome::Sent(mid) => s.mark_outbox_sent(id, mid.as_deref(), now),
                Outcome::Retry { at, error } => s.mark_outbox_retry(id, at, &error),
                Outcome::Failed(error) => s.mark_outbox_failed(id, &error, now),
            })
            .await;
        let delay = curve.delay(attempt);
        match written {
            Ok(()) => return,
            Err(e) if now_ms() + (delay.as_millis() as i64) < lease_until - 1000 => {
                warn!(outbox = id, "cannot record {what} yet (retrying): {e}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => {
                warn!(
                    outbox = id,
                    "cannot record {what}; the chunk is retried when its lease ends: {e}"
                );
                return;
            }
        }
    }
}

/// Delivers due outbox rows: each chunk is claimed (recorded `sending`, under a lease), sent,
/// and marked; failures are retried with the platform's retry-after or a backoff, and a chunk
/// marked sent is never sent again. Platforms without an idempotency key (most): so a chunk whose
/// `sendMessage` was in flight when the process died is sent again after a restart (at least
/// once); every other chunk is sent exactly once.
pub async fn outbox_loop(gw: Arc<Gateway>, port: Running) {
    let store = gw.chat.store.clone();
    let channel = port.ch.name();
    // Chunks a previous process left `sending` may or may not have reached the platform:
    // retry them now instead of when their lease runs out (one gateway per state directory).
    let now = now_ms();
    match store.call(move |s| s.release_outbox_leases(channel, now)).await {
        Ok(0) => {}
        Ok(n) => warn!(
            channel,
            "{n} reply chunk(s) were being sent when the gateway stopped; sending them again (the recipient may see them twice)"
        ),
        Err(e) => warn!(channel, "cannot release interrupted sends: {e}"),
    }
    loop {
        if gw.is_shutting_down() {
            return;
        }
        let now = now_ms();
        let due = match store.call(move |s| s.due_outbox(channel, now, 32)).await {
            Ok(due) => due,
            Err(e) => {
                warn!(channel, "cannot read the outbox; retrying shortly: {e}");
                Vec::new()
            }
        };
        for row in due {
            let id = row.id;
            let lease_until = now_ms() + SEND_LEASE_MS;
            // Committed before the HTTP call: a restart knows this chunk may have been sent.
            match store.call(move |s| s.claim_outbox(id, lease_until)).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    warn!(
                        channel,
                        outbox = id,
                        "cannot claim a reply chunk; retrying shortly: {e}"
                    );
                    continue;
                }
            }
            let chunk = OutChunk {
                chat_id: &row.chat_id,
                thread_id: row.thread_id.as_deref(),
                reply_to: row.reply_to.as_deref(),
                text: &row.text,
            };
            match port.ch.egress().send(chunk).await {
                Ok(mid) => {
                    record(&gw, id, Outcome::Sent(mid), lease_until).await;
                    port.ch
                        .status()
                        .update(|s| s.last_outbound_at = Some(now_ms()));
                }
                Err(SendError::RetryAfter(ms, e)) => {
                    info!(channel, "rate limited; retrying in {ms} ms");
                    let at = now_ms() + ms as i64;
                    record(&gw, id, Outcome::Retry { at, error: e }, lease_until).await;
                }
                Err(SendError::Transient(e)) if row.attempts + 1 < MAX_SEND_ATTEMPTS => {
                    let wait = backoff_ms(row.attempts);
                    warn!(
                        channel,
                        chat = %row.chat_id,
                        attempt = row.attempts + 1,
                        "reply not sent, retrying in {wait} ms: {e}"
                    );
                    let at = now_ms() + wait;
                    record(&gw, id, Outcome::Retry { at, error: e }, lease_until).await;
                }
                Err(SendError::Transient(e)) | Err(SendError::Permanent(e)) => {
                    warn!(channel, chat = %row.chat_id, "giving up on a reply: {e}");
                    port.ch
                        .status()
                        .update(|s| s.last_error = Some(format!("send failed: {e}")));
                    record(&gw, id, Outcome::Failed(e), lease_until).await;
                }
            }
        }
        let wait_ms = match store.call(move |s| s.next_outbox_due(channel)).await {
            Ok(Some(t)) => (t - now_ms()).clamp(10, 1000),
            Ok(None) => 1000,
            Err(e) => {
                warn!(channel, "cannot read the next due time of the outbox: {e}");
                1000
            }
        };
        tokio::select! {
            _ = port.host.outbox_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
        }
    }
}
