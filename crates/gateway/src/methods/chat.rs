//! `chat.send`, `chat.history`/`chat.startup`, `chat.abort`, `chat.inject`, `agent` (two
//! replies) and `agent.wait`.

use super::sessions::{defaults, key_param, row_json, store_err, validate_model};
use super::{object, opt_u64, req_str, BoxFuture, Ctx};
use crate::chat::events::{session_message, RunEmitter};
use crate::chat::{stored_status, transcript, RunSummary};
use crate::devices::now_ms;
use crate::keys;
use clawgate_protocol::error::ErrorShape;
use clawgate_protocol::frame;
use clawgate_store::{Claim, NewEntry};
use serde_json::{json, Value};
use std::pin::Pin;
use std::time::Duration;

/// Longest user message accepted (characters).
const MAX_MESSAGE_CHARS: usize = 200_000;

fn message_param(method: &str, p: &serde_json::Map<String, Value>) -> Result<String, ErrorShape> {
    match p.get("message") {
        Some(Value::String(s)) if s.chars().count() <= MAX_MESSAGE_CHARS => Ok(s.clone()),
        Some(Value::String(_)) => Err(ErrorShape::invalid_params(
            method,
            format!("at /message: longer than {MAX_MESSAGE_CHARS} characters"),
        )),
        _ => Err(ErrorShape::invalid_params(
            method,
            "must have required property 'message'",
        )),
    }
}

/// Where a new run stands after an idempotent retry.
async fn existing_status(ctx: &Ctx, run_id: &str) -> Value {
    if ctx.gw.chat.is_active(run_id) {
        return json!({"runId": run_id, "status": "in_flight"});
    }
    let rid = run_id.to_string();
    match ctx.gw.chat.store.call(move |s| s.get_run(&rid)).await {
        Ok(Some(row)) => stored_status(&row),
        _ => json!({"runId": run_id, "status": "in_flight"}),
    }
}

/// Stores the user message and queues the run. `Err` for bad input or storage failures.
/// Claims the idempotency key of `method` and, when new, starts the run (one store round trip).
pub(super) async fn start_run(
    ctx: &Ctx,
    method: &'static str,
    key: &str,
    run_id: &str,
    text: &str,
    gate: crate::chat::StartGate,
) -> Result<Claim, ErrorShape> {
    crate::chat::start_claimed_turn(
        &ctx.gw,
        key,
        run_id,
        text,
        Some(ctx.session.conn_id),
        Some(method),
        gate,
    )
    .await
    .map_err(|e| match e {
        crate::chat::TurnError::Store(m) => {
            ErrorShape::unavailable(format!("state database error: {m}"))
        }
        crate::chat::TurnError::Busy(m) => ErrorShape::unavailable(m),
    })
}

/// Chat commands handled by the gateway itself (`/new`, `/reset`, `/stop`, `/model x`).
async fn command(
    ctx: &Ctx,
    key: &str,
    run_id: &str,
    text: &str,
) -> Option<Result<Value, ErrorShape>> {
    let t = text.trim();
    if !t.starts_with('/') {
        return None;
    }
    let (cmd, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let reply = match cmd {
        "/new" | "/reset" => match super::sessions::do_reset(ctx, key).await {
            Ok(_) => "Started a new session.".to_string(),
            Err(e) => return Some(Err(e)),
        },
        "/stop" => {
            let ids = ctx.gw.chat.abort(&ctx.gw, key, None).await;
            if ids.is_empty() {
                "Nothing is running.".into()
            } else {
                "Stopped.".into()
            }
        }
        "/model" => {
            let arg = arg.trim();
            if arg.is_empty() {
                let k = key.to_string();
                let row = ctx
                    .gw
                    .chat
                    .store
                    .call(move |s| s.get_session(&k))
                    .await
                    .ok()
                    .flatten();
                let (p, m) = super::sessions::resolved_model(&ctx.gw, row.as_ref());
                format!(
                    "Model: {}/{}",
                    p.as_str().unwrap_or("none"),
                    m.as_str().unwrap_or("none")
                )
            } else if let Err(e) = validate_model(&ctx.gw, arg) {
                e
            } else {
                let (k, m, now) = (key.to_string(), arg.to_string(), now_ms());
                let set = ctx
                    .gw
                    .chat
                    .store
                    .call(move |s| s.set_model_override(&k, keys::agent_of(&k), Some(&m), now))
                    .await;
                if let Err(e) = set {
                    return Some(Err(store_err(e)));
                }
                format!("Model set to {arg} for this session.")
            }
        }
        _ => return None,
    };
    let mut em = RunEmitter::new(&ctx.gw, run_id, key, Some(ctx.session.conn_id));
    let message = transcript::assistant_message(&reply, &[], None, Some("stop"), None, now_ms());
    em.chat("final", json!({"stopReason": "stop", "message": message}));
    Some(Ok(json!({"runId": run_id, "status": "ok"})))
}

/// `chat.send` (write): acknowledges with `{runId, status: "started"}`, then the run streams
/// `chat`/`agent` events.
///
/// The run's first event waits until the client has read the acknowledgement: a ping queued
/// right after it, answered by the client's pong (at most `START_GATE_MAX`). OpenClaw's TUI
/// (like its other clients, on the `ws` library) handles every frame of one socket read
/// before the continuation of its `await chat.send` runs; a fast run whose events shared a
/// read with the acknowledgement was finished before the TUI recorded the send as accepted,
/// and it then waited forever for that run (busy, refusing `/new`). OpenClaw's own gateway
/// never hits this only because its dispatch takes 100+ ms.
pub fn send_deferred(
    ctx: &Ctx,
    id: String,
    params: Value,
) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        let (open, gate) = tokio::sync::oneshot::channel();
        match send_inner(ctx, params, crate::chat::StartGate::new(gate)).await {
            Ok(payload) => {
                ctx.outlet.send(frame::response_ok(&id, &payload));
                let acked = ctx.outlet.round_trip();
                tokio::spawn(async move {
                    if let Some(pong) = acked {
                        let _ = pong.await;
                    }
                    let _ = open.send(());
                });
            }
            Err(e) => {
                ctx.outlet.send(frame::response_err(&id, &e, None));
            }
        }
    })
}

async fn send_inner(
    ctx: &Ctx,
    params: Value,
    gate: crate::chat::StartGate,
) -> Result<Value, ErrorShape> {
    {
        let p = object("chat.send", params)?;
        let key = match p.get("sessionKey").and_then(Value::as_str) {
            Some(k) if !k.is_empty() => {
                keys::canonical(k).map_err(|e| ErrorShape::invalid_params("chat.send", e))?
            }
            _ => {
                return Err(
                    ErrorShape::invalid("session mutation target is unavailable").with_detail_code(
                        "SESSION_MUTATION_TARGET_REQUIRED",
                        &[("method", json!("chat.send"))],
                    ),
                )
            }
        };
        let text = message_param("chat.send", &p)?;
        let run_id = req_str("chat.send", &p, "idempotencyKey")?.to_string();
        if let Some(r) = command(ctx, &key, &run_id, &text).await {
            return r;
        }
        match start_run(ctx, "chat.send", &key, &run_id, &text, gate).await? {
            Claim::Existing { run_id } => Ok(existing_status(ctx, &run_id).await),
            Claim::New => Ok(json!({"runId": run_id, "status": "started"})),
        }
    }
}

/// `chat.history` and `chat.startup`.
pub fn history(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("chat.history", params)?;
        let requested = req_str("chat.history", &p, "sessionKey")?.to_string();
        let key = keys::canonical(&requested)
            .map_err(|e| ErrorShape::invalid_params("chat.history", e))?;
        let limit = opt_u64("chat.history", &p, "limit", 1, 1000)?.unwrap_or(200) as usize;
        let max_bytes = opt_u64("chat.history", &p, "maxBytes", 1024, 64 * 1024 * 1024)?;
        let gw = &ctx.gw;
        let k = key.clone();
        let (rows, total, session) = gw
            .chat
            .store
            .call(move |s| {
                Ok((
                    s.history(&k, limit)?,
                    s.count_entries(&k)?,
                    s.get_session(&k)?,
                ))
            })
            .await
            .map_err(store_err)?;
        let mut messages: Vec<Value> = rows.iter().map(transcript::wire).collect();
        if let Some(max) = max_bytes {
            // Keep the newest messages that fit.
            let mut size = 0usize;
            let mut keep = messages.len();
            for (i, m) in messages.iter().enumerate().rev() {
                size += m.to_string().len();
                if size as u64 > max {
                    break;
                }
                keep = i;
            }
            messages.drain(..keep);
        }
        Ok(json!({
            "sessionKey": requested,
            "sessionId": session.as_ref().map(|s| s.session_id.clone()),
            "messages": messages,
            "pendingInputs": {"items": [], "total": 0},
            "hasMore": total > messages.len(),
            "totalMessages": total,
            "defaults": defaults(gw),
            "sessionInfo": match &session {
                Some(s) => row_json(gw, s),
                None => unstarted_session_info(gw, &key),
            },
            "thinkingLevel": "off",
        }))
    })
}

/// `sessionInfo` of a session with no row yet (nothing sent to it): its defaults, never
/// updated, nothing running (OpenClaw answers the same for a fresh main session).
fn unstarted_session_info(gw: &crate::state::Gateway, key: &str) -> Value {
    let (provider, model) = super::sessions::resolved_model(gw, None);
    json!({
        "key": key, "kind": keys::kind_of(key), "agentId": keys::agent_of(key), "isMain": key == keys::MAIN_KEY,
        "isBackground": false, "updatedAt": null, "archived": false, "pinned": false, "unread": false,
        "modelProvider": provider, "model": model,
        "contextTokens": gw.chat.settings().cfg.context_tokens.unwrap_or(128_000),
        "hasActiveRun": false, "activeRunIds": [],
    })
}

pub fn abort(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("chat.abort", params)?;
        let key = key_param("chat.abort", &p, "sessionKey")?;
        let run_id = p
            .get("runId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let ids = ctx.gw.chat.abort(&ctx.gw, &key, run_id).await;
        Ok(json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
    })
}

pub fn inject(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("chat.inject", params)?;
        let key = key_param("chat.inject", &p, "sessionKey")?;
        let text = message_param("chat.inject", &p)?;
        if text.is_empty() {
            return Err(ErrorShape::invalid_params(
                "chat.inject",
                "at /message: must not be empty",
            ));
        }
        let gw = &ctx.gw;
        let now = now_ms();
        let content = transcript::assistant_message(&text, &[], None, Some("injected"), None, now);
        let k = key.clone();
        let row = gw
            .chat
            .store
            .call(move |s| {
                s.ensure_session(&k, keys::agent_of(&k), now)?;
                s.append_entry(&NewEntry {
                    session_key: &k,
                    role: "assistant",
                    content: &content,
                    run_id: None,
                    idempotency_key: None,
                    usage: None,
                    meta: None,
                    ts: now,
                })
            })
            .await
            .map_err(store_err)?;
        session_message(gw, &key, &transcript::wire(&row), &row.id, row.seq);
        let run_id = format!("inject-{}", row.id);
        let payload = json!({"runId": run_id, "sessionKey": key, "agentId": keys::agent_of(&key), "seq": 0, "state": "final", "message": transcript::wire(&row)});
        gw.conns.broadcast("chat", &payload, None);
        Ok(json!({"ok": true, "messageId": row.id}))
    })
}

fn wait_reply(s: &RunSummary) -> Value {
    json!({"runId": s.run_id, "status": s.status, "endedAt": s.ended_at, "stopReason": s.stop_reason})
}

pub fn wait(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("agent.wait", params)?;
        let run_id = req_str("agent.wait", &p, "runId")?.to_string();
        let timeout = opt_u64("agent.wait", &p, "timeoutMs", 0, 600_000)?.unwrap_or(30_000);
        if let Some(s) = ctx
            .gw
            .chat
            .wait(&run_id, Duration::from_millis(timeout))
            .await
        {
            return Ok(wait_reply(&s));
        }
        if !ctx.gw.chat.is_active(&run_id) {
            let rid = run_id.clone();
            if let Ok(Some(row)) = ctx.gw.chat.store.call(move |s| s.get_run(&rid)).await {
                if row.status != "running" {
                    return Ok(stored_status(&row));
                }
            }
        }
        Ok(json!({"runId": run_id, "status": "timeout"}))
    })
}

/// The final `agent` reply for a finished run: `(ok, payload, error)`.
fn agent_final(s: &RunSummary) -> (bool, Value, Option<ErrorShape>) {
    match s.status {
        "ok" => (
            true,
            json!({
                "runId": s.run_id, "status": "ok", "summary": "completed",
                "result": {
                    "payloads": [{"text": s.text, "mediaUrl": null}],
                    "meta": {"durationMs": s.ended_at - s.started_at, "agentMeta": {
                        "sessionId": s.session_id, "provider": s.provider, "model": s.model,
                        "usage": {"input": s.usage.0, "output": s.usage.1, "total": s.usage.0 + s.usage.1},
                    }},
                },
            }),
            None,
        ),
        "error" => {
            let msg = s.error.clone().unwrap_or_else(|| "the run failed".into());
            (
                false,
                json!({"runId": s.run_id, "status": "error", "summary": msg}),
                Some(ErrorShape::unavailable(msg)),
            )
        }
        _ => (
            true,
            json!({"runId": s.run_id, "status": "timeout", "summary": "aborted", "stopReason": s.stop_reason}),
            None,
        ),
    }
}

fn send_final(ctx: &Ctx, id: &str, s: &RunSummary) {
    let (ok, payload, err) = agent_final(s);
    let text = match (ok, err) {
        (true, _) => frame::response_ok(id, &payload),
        (false, Some(e)) => frame::response_err(id, &e, Some(&payload)),
        (false, None) => frame::response_err(
            id,
            &ErrorShape::unavailable("the run failed"),
            Some(&payload),
        ),
    };
    ctx.outlet.send(text);
}

/// `agent`: replies `accepted` at once, then a second reply with the same id when the run ends.
pub fn agent(
    ctx: &Ctx,
    id: String,
    params: Value,
) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        let result: Result<(), ErrorShape> = async {
            let p = object("agent", params)?;
            let text = message_param("agent", &p)?;
            let run_id = req_str("agent", &p, "idempotencyKey")?.to_string();
            let session_key_param = p.get("sessionKey").and_then(Value::as_str).filter(|s| !s.is_empty());
            let key = match (session_key_param, p.get("sessionId").and_then(Value::as_str).filter(|s| !s.is_empty())) {
                (Some(k), _) => keys::canonical(k),
                (None, Some(sid)) => keys::explicit(sid),
                (None, None) => Ok(keys::MAIN_KEY.to_string()),
            }
            .map_err(|e| ErrorShape::invalid_params("agent", e))?;
            let timeout_s = opt_u64("agent", &p, "timeout", 0, 172_800)?.unwrap_or(600).max(1);
            let gw = &ctx.gw;
            let claim = start_run(
                ctx,
                "agent",
                &key,
                &run_id,
                &text,
                crate::chat::StartGate::default(),
            )
            .await?;
            if let Claim::Existing { run_id } = claim {
                if !gw.chat.is_active(&run_id) {
                    if let Some(s) = gw.chat.wait(&run_id, Duration::ZERO).await {
                        send_final(ctx, &id, &s);
                        return Ok(());
                    }
                }
                ctx.outlet.send(frame::response_ok(&id, &existing_status(ctx, &run_id).await));
                return Ok(());
            }
            let mut accepted = json!({"runId": run_id, "agentId": keys::agent_of(&key), "status": "accepted", "acceptedAt": now_ms()});
            if session_key_param.is_some() {
                accepted["sessionKey"] = json!(key);
            }
            ctx.outlet.send(frame::response_ok(&id, &accepted));
            let outlet = ctx.outlet.clone();
            let gw2 = gw.clone();
            let id2 = id.clone();
            tokio::spawn(async move {
                let summary = gw2.chat.wait(&run_id, Duration::from_secs(timeout_s + 5)).await;
                let text = match summary {
                    Some(s) => {
                        let (ok, payload, err) = agent_final(&s);
                        match (ok, err) {
                            (false, Some(e)) => frame::response_err(&id2, &e, Some(&payload)),
                            _ => frame::response_ok(&id2, &payload),
                        }
                    }
                    None => frame::response_ok(&id2, &json!({"runId": run_id, "status": "timeout", "summary": "timed out waiting for the run"})),
                };
                outlet.send(text);
            });
            Ok(())
        }
        .await;
        if let Err(e) = result {
            ctx.outlet.send(frame::response_err(&id, &e, None));
        }
    })
}
