//! `sessions.*`: list, describe, get, patch (model override, label), reset, delete, and the
//! subscriptions for `sessions.changed` / `session.message`.

use super::{object, opt_u64, req_str, BoxFuture, Ctx};
use crate::chat::events::sessions_changed;
use crate::chat::transcript;
use crate::devices::now_ms;
use crate::keys::{self, MAIN_KEY};
use crate::state::Gateway;
use clawgate_protocol::error::ErrorShape;
use clawgate_store::SessionRow;
use serde_json::{json, Value};

pub fn store_err(e: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::unavailable(format!("state database error: {e}"))
}

fn store_path(gw: &Gateway) -> String {
    gw.chat
        .store
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

pub fn key_param(
    method: &str,
    p: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<String, ErrorShape> {
    let raw = req_str(method, p, name)?;
    keys::canonical(raw).map_err(|e| ErrorShape::invalid_params(method, e))
}

/// The model a session uses: its override, else the default.
pub fn resolved_model(gw: &Gateway, row: Option<&SessionRow>) -> (Value, Value) {
    let m = row
        .and_then(|r| r.model_override.clone())
        .or_else(|| gw.chat.settings().cfg.model.clone());
    match m.as_deref().and_then(|m| m.split_once('/')) {
        Some((p, id)) => (json!(p), json!(id)),
        None => (Value::Null, Value::Null),
    }
}

pub fn defaults(gw: &Gateway) -> Value {
    let (provider, model) = resolved_model(gw, None);
    json!({
        "modelProvider": provider, "model": model, "contextTokens": gw.chat.settings().cfg.context_tokens.unwrap_or(128_000),
        "thinkingLevels": [{"id": "off", "label": "off"}], "thinkingOptions": ["off"], "thinkingDefault": "off",
    })
}

/// A session row as clients render it.
pub fn row_json(gw: &Gateway, r: &SessionRow) -> Value {
    let active = gw.chat.active_runs_of(&r.key);
    let (provider, model) = resolved_model(gw, Some(r));
    let display = r
        .label
        .clone()
        .unwrap_or_else(|| r.key.rsplit(':').next().unwrap_or(&r.key).to_string());
    let mut v = json!({
        "key": r.key, "sessionId": r.session_id, "kind": keys::kind_of(&r.key), "chatType": "direct",
        "agentId": r.agent_id, "isMain": r.key == MAIN_KEY, "isBackground": false, "displayName": display,
        "createdAt": r.created_at, "updatedAt": r.updated_at, "lastInteractionAt": r.last_activity_at,
        "hasActiveRun": !active.is_empty(), "activeRunIds": active, "archived": false, "pinned": false,
        "unread": false, "modelProvider": provider, "model": model,
        "contextTokens": gw.chat.settings().cfg.context_tokens.unwrap_or(128_000),
        "inputTokens": r.input_tokens, "outputTokens": r.output_tokens, "totalTokens": r.input_tokens + r.output_tokens,
        "createdVia": "operator", "visibility": "shared",
    });
    if let Some(l) = &r.label {
        v["label"] = json!(l);
    }
    if let Some(s) = &r.status {
        v["status"] = json!(s);
    }
    v
}

pub fn list(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.list", params)?;
        let limit = opt_u64("sessions.list", &p, "limit", 1, 1000)?.unwrap_or(100) as usize;
        let offset = opt_u64("sessions.list", &p, "offset", 0, u64::MAX)?.unwrap_or(0) as usize;
        let gw = &ctx.gw;
        let (rows, total) = gw
            .chat
            .store
            .call(move |s| s.list_sessions(limit, offset))
            .await
            .map_err(store_err)?;
        let sessions: Vec<Value> = rows.iter().map(|r| row_json(gw, r)).collect();
        let next = (offset + rows.len() < total).then_some(offset + rows.len());
        Ok(json!({
            "ts": now_ms(), "path": store_path(gw), "count": sessions.len(),
            "totalCount": total, "limitApplied": limit, "nextOffset": next, "hasMore": next.is_some(),
            "owners": [], "defaults": defaults(gw), "sessions": sessions,
        }))
    })
}

pub fn describe(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.describe", params)?;
        let key = key_param("sessions.describe", &p, "key")?;
        let row = ctx
            .gw
            .chat
            .store
            .call(move |s| s.get_session(&key))
            .await
            .map_err(store_err)?;
        Ok(json!({"session": row.map(|r| row_json(&ctx.gw, &r))}))
    })
}

pub fn get(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.get", params)?;
        let key = key_param("sessions.get", &p, "key")?;
        let limit = opt_u64("sessions.get", &p, "limit", 1, 1000)?.unwrap_or(200) as usize;
        let rows = ctx
            .gw
            .chat
            .store
            .call(move |s| s.history(&key, limit))
            .await
            .map_err(store_err)?;
        Ok(json!({"messages": rows.iter().map(transcript::wire).collect::<Vec<_>>()}))
    })
}

/// Checks `"<provider>/<model>"` against the configured providers.
pub fn validate_model(gw: &Gateway, m: &str) -> Result<(), String> {
    let (pid, mid) = m
        .split_once('/')
        .ok_or_else(|| format!("model `{m}` must be `<provider>/<model>`"))?;
    let settings = gw.chat.settings();
    let p = settings
        .providers
        .get(pid)
        .ok_or_else(|| format!("unknown provider `{pid}` (configure it in models.providers)"))?;
    if !p.cfg.models.is_empty() && !p.cfg.models.iter().any(|e| e.id == mid) {
        return Err(format!(
            "provider `{pid}` has no model `{mid}` in models.providers.{pid}.models"
        ));
    }
    Ok(())
}

pub fn patch(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.patch", params)?;
        let key = key_param("sessions.patch", &p, "key")?;
        let gw = &ctx.gw;
        let agent = keys::agent_of(&key).to_string();
        let now = now_ms();
        // Validate everything first, then apply in one store round trip.
        let model: Option<Option<String>> = match p.get("model") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.is_empty() => Some(None),
            Some(Value::String(s)) => {
                validate_model(gw, s)
                    .map_err(|e| ErrorShape::invalid_params("sessions.patch", e))?;
                Some(Some(s.clone()))
            }
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "sessions.patch",
                    "at /model: must be string or null",
                ))
            }
        };
        let label: Option<Option<String>> = match p.get("label") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.chars().count() <= 100 => Some(Some(s.clone())),
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "sessions.patch",
                    "at /label: must be a string of at most 100 characters or null",
                ))
            }
        };
        // Rows never report a session unread (no read tracking here), so marking one read is
        // a no-op and marking one unread is refused rather than silently dropped.
        match p.get("unread") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                return Err(ErrorShape::invalid_params(
                    "sessions.patch",
                    "at /unread: marking a session unread is not supported by this gateway",
                ))
            }
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "sessions.patch",
                    "at /unread: must be boolean",
                ))
            }
        }
        let k = key.clone();
        let row = gw
            .chat
            .store
            .call(move |s| {
                let mut row = s.ensure_session(&k, &agent, now)?;
                if let Some(m) = model {
                    row = s.set_model_override(&k, &agent, m.as_deref(), now)?;
                }
                if let Some(l) = label {
                    row = s.set_label(&k, &agent, l.as_deref(), now)?;
                }
                Ok(row)
            })
            .await
            .map_err(store_err)?;
        let (provider, model) = resolved_model(gw, Some(&row));
        let rj = row_json(gw, &row);
        sessions_changed(gw, &key, "patch", Some(rj.clone()));
        Ok(json!({
            "ok": true, "path": store_path(gw), "key": key,
            "entry": {"sessionId": row.session_id, "updatedAt": row.updated_at, "label": row.label, "model": row.model_override},
            "resolved": {"modelProvider": provider, "model": model},
        }))
    })
}

pub fn reset(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.reset", params)?;
        let key = key_param("sessions.reset", &p, "key")?;
        do_reset(ctx, &key).await
    })
}

/// Aborts what runs in the session, then starts a fresh transcript (new sessionId).
pub async fn do_reset(ctx: &Ctx, key: &str) -> Result<Value, ErrorShape> {
    let gw = &ctx.gw;
    gw.chat.abort(gw, key, None).await;
    let (k, now) = (key.to_string(), now_ms());
    let row = gw
        .chat
        .store
        .call(move |s| s.reset_session(&k, keys::agent_of(&k), now))
        .await
        .map_err(store_err)?;
    let (provider, model) = resolved_model(gw, Some(&row));
    sessions_changed(gw, key, "reset", Some(row_json(gw, &row)));
    Ok(json!({
        "ok": true, "key": key,
        "entry": {"sessionId": row.session_id, "updatedAt": row.updated_at},
        "resolved": {"modelProvider": provider, "model": model},
    }))
}

pub fn delete(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.delete", params)?;
        let key = key_param("sessions.delete", &p, "key")?;
        if key == MAIN_KEY {
            return Err(ErrorShape::invalid(format!(
                "Cannot delete the main session ({MAIN_KEY})."
            )));
        }
        let gw = &ctx.gw;
        gw.chat.abort(gw, &key, None).await;
        let k = key.clone();
        let deleted = gw
            .chat
            .store
            .call(move |s| s.delete_session(&k))
            .await
            .map_err(store_err)?;
        sessions_changed(gw, &key, "delete", None);
        Ok(json!({"ok": true, "key": key, "deleted": deleted, "archived": []}))
    })
}

fn set_sessions_sub(ctx: &Ctx, on: bool) -> Value {
    if let Some(c) = ctx.gw.conns.get(ctx.session.conn_id) {
        c.subs().sessions = on;
    }
    json!({"subscribed": on})
}

pub fn subscribe(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(set_sessions_sub(ctx, true)) })
}

pub fn unsubscribe(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(set_sessions_sub(ctx, false)) })
}

/// At most this many per-session subscriptions per connection.
const MAX_MESSAGE_SUBS: usize = 256;

pub fn messages_subscribe(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.messages.subscribe", params)?;
        let key = key_param("sessions.messages.subscribe", &p, "key")?;
        if let Some(c) = ctx.gw.conns.get(ctx.session.conn_id) {
            let mut s = c.subs();
            if s.message_keys.len() >= MAX_MESSAGE_SUBS && !s.message_keys.contains(&key) {
                return Err(ErrorShape::invalid(
                    "too many session subscriptions on this connection",
                ));
            }
            s.message_keys.insert(key.clone());
        }
        let mut out = json!({"subscribed": true, "key": key});
        match p.get("includeApprovals") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                out["approvalReplay"] = super::controlui::approval_replay(&key)
            }
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "sessions.messages.subscribe",
                    "at /includeApprovals: must be boolean",
                ))
            }
        }
        Ok(out)
    })
}

pub fn messages_unsubscribe(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("sessions.messages.unsubscribe", params)?;
        let key = key_param("sessions.messages.unsubscribe", &p, "key")?;
        if let Some(c) = ctx.gw.conns.get(ctx.session.conn_id) {
            c.subs().message_keys.remove(&key);
        }
        Ok(json!({"subscribed": false, "key": key}))
    })
}

/// `sessions.create` params this gateway understands. OpenClaw's other options (worktrees,
/// projects, exec nodes, forks, …) are refused by name rather than silently ignored.
const CREATE_KNOWN: &[&str] = &[
    "key",
    "idempotencyKey",
    "agentId",
    "label",
    "displayName",
    "titleSource",
    "model",
    "parentSessionKey",
    "emitCommandHooks",
    "succeedsParent",
    "message",
    "task",
    "timeoutMs",
];
const CREATE_UNSUPPORTED: &[&str] = &[
    "category",
    "agentRuntime",
    "contextWindow",
    "thinkingLevel",
    "fastMode",
    "permissionMode",
    "toolOverrides",
    "incognito",
    "visibility",
    "catalogId",
    "spawnDepth",
    "fork",
    "forkFrom",
    "mentions",
    "attachments",
    "projectId",
    "projectGitUrl",
    "repository",
    "worktree",
    "worktreeSource",
    "worktreeBaseRef",
    "worktreeName",
    "execNode",
    "cwd",
];

fn opt_string(
    p: &serde_json::Map<String, Value>,
    key: &str,
    max_chars: usize,
) -> Result<Option<String>, ErrorShape> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => {
            Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        }
        Some(_) => Err(ErrorShape::invalid_params(
            "sessions.create",
            format!("at /{key}: must be a string of at most {max_chars} characters"),
        )),
    }
}

/// `sessions.create` (write): creates the session `key` (a bare key is the default agent's;
/// without one a fresh key is generated), or adopts it unchanged when it exists. `label` (or
/// `displayName`) and `model` apply to a new session. A non-empty `message` (or `task`)
/// starts the first turn, as `chat.send` would. The TUI's `/new` calls this.
pub fn create(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "sessions.create";
        let p = object(M, params)?;
        for k in p.keys() {
            if CREATE_UNSUPPORTED.contains(&k.as_str()) {
                return Err(ErrorShape::invalid_params(
                    M,
                    format!("at /{k}: not supported by this gateway"),
                ));
            }
            if !CREATE_KNOWN.contains(&k.as_str()) {
                return Err(ErrorShape::invalid_params(
                    M,
                    format!("must NOT have additional properties ({k})"),
                ));
            }
        }
        let agent = opt_string(&p, "agentId", 128)?.map(|a| a.to_ascii_lowercase());
        let key = match opt_string(&p, "key", 512)? {
            Some(k) => keys::canonical(&k).map_err(|e| ErrorShape::invalid_params(M, e))?,
            None => format!(
                "agent:{}:{}",
                agent.as_deref().unwrap_or(keys::DEFAULT_AGENT),
                uuid::Uuid::new_v4()
            ),
        };
        let owner = keys::agent_of(&key).to_string();
        if agent.as_deref().is_some_and(|a| a != owner) {
            return Err(ErrorShape::invalid(format!(
                "agentId \"{}\" does not own session \"{key}\"",
                agent.unwrap_or_default()
            )));
        }
        if owner != keys::DEFAULT_AGENT {
            return Err(ErrorShape::invalid(format!("unknown agent id \"{owner}\"")));
        }
        if let Some(parent) = opt_string(&p, "parentSessionKey", 512)? {
            keys::canonical(&parent).map_err(|e| ErrorShape::invalid_params(M, e))?;
        }
        let label = match opt_string(&p, "label", 100)? {
            Some(l) => Some(l),
            None => {
                opt_string(&p, "displayName", 500)?.map(|d| d.chars().take(100).collect::<String>())
            }
        };
        let model = opt_string(&p, "model", 512)?;
        if let Some(m) = &model {
            validate_model(&ctx.gw, m).map_err(|e| ErrorShape::invalid_params(M, e))?;
        }
        let message = match opt_string(&p, "message", 200_000)? {
            Some(m) => Some(m),
            None => opt_string(&p, "task", 200_000)?,
        };
        let run_id = opt_string(&p, "idempotencyKey", 256)?
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

        let gw = &ctx.gw;
        let (k, now) = (key.clone(), now_ms());
        let (row, created) = gw
            .chat
            .store
            .call(move |s| {
                if let Some(row) = s.get_session(&k)? {
                    return Ok((row, false));
                }
                let mut row = s.ensure_session(&k, &owner, now)?;
                if let Some(m) = model {
                    row = s.set_model_override(&k, &owner, Some(m.as_str()), now)?;
                }
                if let Some(l) = label {
                    row = s.set_label(&k, &owner, Some(l.as_str()), now)?;
                }
                Ok((row, true))
            })
            .await
            .map_err(store_err)?;
        if created {
            sessions_changed(gw, &key, "create", Some(row_json(gw, &row)));
        }
        let (provider, model) = resolved_model(gw, Some(&row));
        let mut out = json!({
            "ok": true, "key": key, "sessionId": row.session_id,
            "entry": {"sessionId": row.session_id, "updatedAt": row.updated_at,
                      "label": row.label, "model": row.model_override},
            "runStarted": false,
            "resolved": {"modelProvider": provider, "model": model},
        });
        if let Some(text) = message {
            match super::chat::start_run(
                ctx,
                "chat.send",
                &key,
                &run_id,
                &text,
                crate::chat::StartGate::default(),
            )
            .await?
            {
                clawgate_store::Claim::New => {
                    out["runStarted"] = json!(true);
                    out["runId"] = json!(run_id);
                    out["status"] = json!("started");
                }
                clawgate_store::Claim::Existing { run_id } => {
                    out["runId"] = json!(run_id);
                    out["status"] = json!("in_flight");
                }
            }
        }
        Ok(out)
    })
}
