//! `channels.status`, `send` / `message.action` (outbound through the outbox, idempotent),
//! and the channel pairing requests (`pairing.list`, `pairing.approve`).

use super::sessions::store_err;
use super::{object, req_str, BoxFuture, Ctx};
use crate::devices::now_ms;
use clawgate_channels::chunk::chunk_text;
use clawgate_channels::pairing::{MAX_PENDING, TTL_MS};
use clawgate_protocol::error::ErrorShape;
use clawgate_store::NewOutbox;
use serde_json::{json, Value};
use std::time::Duration;

/// `channels.status {probe?, timeoutMs?, channel?}`: with `channel`, only that one (an empty
/// result when it is known but not configured); a name no plugin has is INVALID_REQUEST, as
/// in OpenClaw.
pub fn status(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let only = params
            .get("channel")
            .and_then(Value::as_str)
            .map(|c| c.trim().to_ascii_lowercase());
        if let Some(c) = &only {
            if clawgate_channels::plugin(c).is_none() {
                return Err(ErrorShape::invalid(format!("unknown channel: {c}")));
            }
        }
        Ok(crate::channels::status_json(&ctx.gw, only.as_deref()).await)
    })
}

/// Queues `text` to `to` on `channel` under an idempotency key, then waits briefly for the
/// platform's message id.
async fn send_text(
    ctx: &Ctx,
    channel: &str,
    to: &str,
    text: &str,
    key: &str,
) -> Result<Value, ErrorShape> {
    let rc = running(ctx, channel)?.clone();
    let chat = rc
        .ch
        .parse_target(to)
        .map_err(|e| ErrorShape::invalid(format!("invalid send params: {e}")))?;
    let chat = chat.as_str();
    if text.trim().is_empty() {
        return Err(ErrorShape::invalid(
            "invalid send params: message must not be empty",
        ));
    }
    let store = &ctx.gw.chat.store;
    let now = now_ms();
    let chunks = chunk_text(text, rc.ch.egress().chunk_limit());
    let name = rc.ch.name();
    let (chat_s, key_s) = (chat.to_string(), key.to_string());
    let ids = store
        .call(move |s| {
            let mut ids = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                let dedupe = format!("send:{key_s}:{i}");
                let row = NewOutbox {
                    channel: name,
                    account: "default",
                    chat_id: &chat_s,
                    thread_id: None,
                    reply_to: None,
                    text: c,
                    dedupe_key: &dedupe,
                    inbound_id: None,
                    now,
                };
                if let Some(id) = s.enqueue_outbox(&row)? {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
        .map_err(store_err)?;
    rc.host.outbox_wake.notify_one();
    // Report the platform message id when delivery is quick; the outbox keeps trying otherwise.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut status = if ids.is_empty() {
        "duplicate"
    } else {
        "queued"
    };
    let mut message_id = None;
    if let Some(first) = ids.first().copied() {
        loop {
            match store
                .call(move |s| s.get_outbox(first))
                .await
                .map_err(store_err)?
            {
                Some(row) if row.status == "sent" => {
                    status = "sent";
                    message_id = row.platform_message_id;
                    break;
                }
                Some(row) if row.status == "failed" => {
                    return Err(ErrorShape::unavailable(format!(
                        "{name} refused the message: {}",
                        row.last_error.unwrap_or_default()
                    )));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(
        json!({"runId": key, "messageId": message_id, "outboxId": ids.first(), "channel": name,
              "chatId": chat, "status": status, "queuedChunks": ids.len()}),
    )
}

/// The channel a `send` / `message.action` uses: the one it names, else (as OpenClaw does)
/// the only configured channel; with none or several, an INVALID_REQUEST naming them.
fn resolve_channel(ctx: &Ctx, requested: Option<&str>) -> Result<String, ErrorShape> {
    if let Some(c) = requested.map(str::trim).filter(|c| !c.is_empty()) {
        return Ok(c.to_ascii_lowercase());
    }
    let configured: Vec<&str> = ctx.gw.channels.iter().map(|rc| rc.ch.name()).collect();
    match configured.as_slice() {
        [only] => Ok(only.to_string()),
        [] => Err(ErrorShape::invalid(
            "Error: Channel is required (no configured channels detected). Add a \
             channels.<name> section to config.yaml and restart the gateway, or pass a channel.",
        )),
        several => Err(ErrorShape::invalid(format!(
            "Error: Channel is required when multiple channels are configured: {}. Pass \
             --channel <channel> to choose one.",
            several.join(", ")
        ))),
    }
}

pub fn send(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("send", params)?;
        let to = req_str("send", &p, "to")?.to_string();
        let key = req_str("send", &p, "idempotencyKey")?.to_string();
        let channel = resolve_channel(ctx, p.get("channel").and_then(Value::as_str))?;
        let text = p
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        send_text(ctx, &channel, &to, &text, &key).await
    })
}

/// The running channel `channel`, or the error `send` gives for an unknown / unconfigured one.
fn running<'a>(ctx: &'a Ctx, channel: &str) -> Result<&'a crate::channels::Running, ErrorShape> {
    let Some(plugin) = clawgate_channels::plugin(channel) else {
        return Err(ErrorShape::invalid(format!(
            "unsupported channel: {channel}"
        )));
    };
    crate::channels::find(&ctx.gw, channel).ok_or_else(|| {
        ErrorShape::unavailable(format!(
            "Error: {} is not configured. {}",
            plugin.label(),
            plugin.setup_hint()
        ))
    })
}

fn inner_str(inner: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| inner.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .to_string()
}

/// `message.action` `edit`: replaces the text of a message the bot sent
/// (`params: {to|target, messageId, message|text}`), through the channel's edit capability.
/// Rate limits and transient failures are retried briefly; a refusal is an error.
async fn edit_message(ctx: &Ctx, channel: &str, inner: &Value) -> Result<Value, ErrorShape> {
    let rc = running(ctx, channel)?;
    let to = inner_str(inner, &["to", "target"]);
    let chat = rc
        .ch
        .parse_target(&to)
        .map_err(|e| ErrorShape::invalid(format!("invalid edit params: {e}")))?;
    let message_id = match inner.get("messageId").or(inner.get("message_id")) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if message_id.is_empty() {
        return Err(ErrorShape::invalid(
            "invalid edit params: messageId is required",
        ));
    }
    let text = inner_str(inner, &["message", "text"]);
    if text.trim().is_empty() {
        return Err(ErrorShape::invalid(
            "invalid edit params: message must not be empty",
        ));
    }
    let limit = rc.ch.egress().chunk_limit();
    if text.chars().count() > limit {
        return Err(ErrorShape::invalid(format!(
            "invalid edit params: message is longer than {limit} characters"
        )));
    }
    let name = rc.ch.name();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(edit) = rc.ch.egress().edit(&chat, &message_id, &text) else {
            return Err(ErrorShape::invalid(format!(
                "{} cannot edit messages",
                rc.ch.label()
            )));
        };
        let wait = match edit.await {
            Ok(()) => break,
            Err(clawgate_channels::SendError::RetryAfter(ms, _)) if attempt < 3 && ms <= 5_000 => {
                Duration::from_millis(ms)
            }
            Err(clawgate_channels::SendError::Transient(_)) if attempt < 3 => {
                Duration::from_millis(250 * attempt)
            }
            Err(e) => {
                return Err(ErrorShape::unavailable(format!(
                    "{name} refused the edit: {e}"
                )))
            }
        };
        tokio::time::sleep(wait).await;
    }
    rc.ch
        .status()
        .update(|s| s.last_outbound_at = Some(now_ms()));
    Ok(
        json!({"ok": true, "action": "edit", "channel": name, "chatId": chat,
              "messageId": message_id}),
    )
}

pub fn message_action(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("message.action", params)?;
        let channel = resolve_channel(ctx, p.get("channel").and_then(Value::as_str))?;
        let action = req_str("message.action", &p, "action")?.to_string();
        let inner = p.get("params").cloned().unwrap_or(Value::Null);
        match action.as_str() {
            "send" => {}
            "edit" => return edit_message(ctx, &channel, &inner).await,
            _ => {
                return Err(ErrorShape::invalid(format!(
                    "unsupported message action: {action}"
                )))
            }
        }
        let to = inner_str(&inner, &["to", "target"]);
        let text = inner_str(&inner, &["message", "text"]);
        let key = p
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        send_text(ctx, &channel, &to, &text, &key).await
    })
}

pub fn pairing_list(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("pairing.list", params)?;
        let channel = p
            .get("channel")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let channel = channel.map(String::from);
        let now = now_ms();
        let reqs = ctx
            .gw
            .chat
            .store
            .call(move |s| s.list_pairing_requests(channel.as_deref(), now, TTL_MS))
            .await
            .map_err(store_err)?;
        let requests: Vec<Value> = reqs
            .iter()
            .map(|r| json!({"channel": r.channel, "accountId": r.account, "senderId": r.sender_id, "code": r.code,
                            "createdAt": r.created_at, "lastSeenAt": r.last_seen_at, "expiresAt": r.created_at + TTL_MS, "meta": r.meta}))
            .collect();
        Ok(json!({"requests": requests}))
    })
}

/// The notice an approved sender gets on its platform.
pub const APPROVED_NOTICE: &str = "✅ Access approved. Send a message to start chatting.";

/// Queues [`APPROVED_NOTICE`] to the approved sender's chat (the chat its request came
/// from) through the outbox; "queued", or why not.
async fn notify_approved(ctx: &Ctx, req: &clawgate_store::PairingRequest) -> &'static str {
    let Some(rc) = crate::channels::find(&ctx.gw, &req.channel) else {
        return "unavailable";
    };
    let chat = req
        .meta
        .get("chatId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&req.sender_id)
        .to_string();
    let (name, account) = (rc.ch.name(), req.account.clone());
    let dedupe = format!(
        "pairing-approved:{}:{}:{}",
        req.channel, req.account, req.code
    );
    let now = now_ms();
    let queued = ctx
        .gw
        .chat
        .store
        .call(move |s| {
            s.enqueue_outbox(&NewOutbox {
                channel: name,
                account: &account,
                chat_id: &chat,
                thread_id: None,
                reply_to: None,
                text: APPROVED_NOTICE,
                dedupe_key: &dedupe,
                inbound_id: None,
                now,
            })
        })
        .await;
    match queued {
        Ok(_) => {
            rc.host.outbox_wake.notify_one();
            "queued"
        }
        Err(e) => {
            tracing::warn!(channel = %req.channel, "cannot queue the approval notice: {e}");
            "failed"
        }
    }
}

/// `pairing.approve` (pairing) `{channel, code, notify?}`: allows the sender and, unless
/// `notify` is false, tells it so on its platform.
pub fn pairing_approve(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("pairing.approve", params)?;
        let channel = req_str("pairing.approve", &p, "channel")?.to_string();
        let code = req_str("pairing.approve", &p, "code")?
            .trim()
            .to_ascii_uppercase();
        let notify = match p.get("notify") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "pairing.approve",
                    "at /notify: must be boolean",
                ))
            }
        };
        let (ch, cd, now) = (channel.clone(), code.clone(), now_ms());
        let approved = ctx
            .gw
            .chat
            .store
            .call(move |s| s.approve_pairing(&ch, &cd, now, TTL_MS))
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                ErrorShape::invalid(format!(
                    "unknown or expired pairing code for {channel}: {code}"
                ))
            })?;
        tracing::info!(channel = %channel, sender = %approved.sender_id, "pairing approved");
        let notification = if notify {
            notify_approved(ctx, &approved).await
        } else {
            "not-requested"
        };
        Ok(
            json!({"approved": true, "channel": channel, "accountId": approved.account, "senderId": approved.sender_id, "notification": notification}),
        )
    })
}

/// `pairing.reject` (pairing) `{channel, code}`: drops the pending request without allowing
/// the sender (a later message asks again).
pub fn pairing_reject(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("pairing.reject", params)?;
        let channel = req_str("pairing.reject", &p, "channel")?.to_string();
        let code = req_str("pairing.reject", &p, "code")?
            .trim()
            .to_ascii_uppercase();
        let (ch, cd, now) = (channel.clone(), code.clone(), now_ms());
        let rejected = ctx
            .gw
            .chat
            .store
            .call(move |s| s.take_pairing(&ch, None, &cd, false, now, TTL_MS))
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                ErrorShape::invalid(format!(
                    "unknown or expired pairing code for {channel}: {code}"
                ))
            })?;
        tracing::info!(channel = %channel, sender = %rejected.sender_id, "pairing rejected");
        Ok(
            json!({"rejected": true, "channel": channel, "accountId": rejected.account, "senderId": rejected.sender_id}),
        )
    })
}

/// `pairing.approved` (pairing) `{channel?}`: the senders approved through pairing, per
/// channel (every channel this build knows when none is given).
pub fn pairing_approved(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("pairing.approved", params)?;
        let channels: Vec<String> = match p.get("channel").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => {
                if clawgate_channels::plugin(c).is_none() {
                    return Err(ErrorShape::invalid(format!("unknown channel: {c}")));
                }
                vec![c.to_string()]
            }
            _ => clawgate_channels::config_parsers()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        };
        let rows = ctx
            .gw
            .chat
            .store
            .call(move |s| {
                let mut out = Vec::new();
                for c in channels {
                    for (account, sender, at) in s.list_allowed_senders(&c)? {
                        out.push(json!({"channel": c, "accountId": account, "senderId": sender, "approvedAt": at}));
                    }
                }
                Ok(out)
            })
            .await
            .map_err(store_err)?;
        Ok(json!({"approved": rows}))
    })
}

/// Epoch milliseconds as an RFC 3339 UTC timestamp (`2026-12-03T14:05:09.123Z`).
pub fn iso_ms(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn label_of(channel: &str) -> String {
    clawgate_channels::plugin(channel).map_or_else(|| channel.to_string(), |p| p.label().into())
}

/// Optional non-empty string params of the `channels.pairing.*` methods; anything else in
/// `allowed` is type-checked by the caller, and unknown properties are refused.
fn pairing_params(
    method: &str,
    params: Value,
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, ErrorShape> {
    let p = object(method, params)?;
    for (k, v) in &p {
        if !allowed.contains(&k.as_str()) {
            return Err(ErrorShape::invalid_params(
                method,
                format!("must NOT have additional properties ({k})"),
            ));
        }
        let ok = match k.as_str() {
            "notify" | "bootstrapCommandOwner" => v.is_boolean(),
            _ => v.as_str().is_some_and(|s| !s.is_empty()),
        };
        if !ok {
            return Err(ErrorShape::invalid_params(
                method,
                format!("at /{k}: invalid value"),
            ));
        }
    }
    Ok(p)
}

/// `channels.pairing.list` (pairing) `{channel?, accountId?}`: OpenClaw's view of the pending
/// DM pairing requests (the same ones as `pairing.list`; `requestId` is the pairing code), and
/// the channel accounts whose `dmPolicy` is `pairing`.
pub fn channels_pairing_list(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "channels.pairing.list";
        let p = pairing_params(M, params, &["channel", "accountId"])?;
        let channel = p.get("channel").and_then(Value::as_str).map(String::from);
        let account = p.get("accountId").and_then(Value::as_str).map(String::from);
        let accounts: Vec<Value> = ctx
            .gw
            .channels
            .iter()
            .filter(|rc| rc.ch.policy().dm_policy == clawgate_config::DmPolicy::Pairing)
            .filter(|rc| channel.as_deref().is_none_or(|c| c == rc.ch.name()))
            .filter(|_| account.as_deref().is_none_or(|a| a == "default"))
            .map(|rc| {
                json!({"channel": rc.ch.name(), "channelLabel": rc.ch.label(),
                       "accountId": "default", "notifySupported": true})
            })
            .collect();
        let (ch, now) = (channel.clone(), now_ms());
        let reqs = ctx
            .gw
            .chat
            .store
            .call(move |s| s.list_pairing_requests(ch.as_deref(), now, TTL_MS))
            .await
            .map_err(store_err)?;
        let requests: Vec<Value> = reqs
            .iter()
            .filter(|r| account.as_deref().is_none_or(|a| a == r.account))
            .map(|r| {
                let mut metadata = serde_json::Map::new();
                if let Some(m) = r.meta.as_object() {
                    for (k, v) in m {
                        let s = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => continue,
                        };
                        if !k.is_empty() && !s.is_empty() {
                            metadata.insert(k.clone(), json!(s));
                        }
                    }
                }
                metadata.insert("code".into(), json!(r.code));
                let sender_label = r
                    .meta
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or(r.sender_id.as_str());
                json!({
                    "requestId": r.code, "channel": r.channel, "channelLabel": label_of(&r.channel),
                    "accountId": r.account, "senderId": r.sender_id, "senderLabel": sender_label,
                    "metadata": metadata, "createdAt": iso_ms(r.created_at),
                    "lastSeenAt": iso_ms(r.last_seen_at), "expiresAt": iso_ms(r.created_at + TTL_MS),
                    "notifySupported": true,
                })
            })
            .collect();
        Ok(json!({
            "accounts": accounts, "requests": requests, "commandOwnerConfigured": false,
            "limits": {"pendingPerAccount": MAX_PENDING, "ttlMs": TTL_MS},
        }))
    })
}

/// Approve (`allow`) or dismiss the request `requestId` of `{channel, accountId}`.
async fn take_request(
    ctx: &Ctx,
    method: &str,
    p: &serde_json::Map<String, Value>,
    allow: bool,
) -> Result<clawgate_store::PairingRequest, ErrorShape> {
    let channel = req_str(method, p, "channel")?.to_string();
    let account = req_str(method, p, "accountId")?.to_string();
    let request_id = req_str(method, p, "requestId")?.to_string();
    let (ch, acc, code, now) = (channel.clone(), account, request_id.clone(), now_ms());
    let taken = ctx
        .gw
        .chat
        .store
        .call(move |s| s.take_pairing(&ch, Some(&acc), &code, allow, now, TTL_MS))
        .await
        .map_err(store_err)?;
    taken.ok_or_else(|| {
        ErrorShape::invalid(format!(
            "unknown or expired pairing request for {channel}: {request_id}"
        ))
    })
}

/// `channels.pairing.approve` (pairing) `{channel, accountId, requestId, notify?,
/// bootstrapCommandOwner?}`: allows the sender, like `pairing.approve`. This gateway neither
/// notifies the sender nor manages a command owner, and says so in the result.
pub fn channels_pairing_approve(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "channels.pairing.approve";
        let p = pairing_params(
            M,
            params,
            &[
                "channel",
                "accountId",
                "requestId",
                "notify",
                "bootstrapCommandOwner",
            ],
        )?;
        let req = take_request(ctx, M, &p, true).await?;
        tracing::info!(channel = %req.channel, sender = %req.sender_id, "pairing approved");
        let flag = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(false);
        let notification = match notify_approved_flag(ctx, &req, flag("notify")).await {
            "queued" => "sent",
            "not-requested" => "not-requested",
            _ => "failed",
        };
        Ok(json!({
            "requestId": req.code, "senderId": req.sender_id,
            "notification": notification,
            "commandOwnerBootstrap": if flag("bootstrapCommandOwner") { "unavailable" } else { "not-requested" },
        }))
    })
}

async fn notify_approved_flag(
    ctx: &Ctx,
    req: &clawgate_store::PairingRequest,
    notify: bool,
) -> &'static str {
    if notify {
        notify_approved(ctx, req).await
    } else {
        "not-requested"
    }
}

/// `channels.pairing.dismiss` (pairing) `{channel, accountId, requestId}`: drops the request
/// without allowing the sender (who may ask again).
pub fn channels_pairing_dismiss(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "channels.pairing.dismiss";
        let p = pairing_params(M, params, &["channel", "accountId", "requestId"])?;
        let req = take_request(ctx, M, &p, false).await?;
        tracing::info!(channel = %req.channel, sender = %req.sender_id, "pairing dismissed");
        Ok(json!({"requestId": req.code, "senderId": req.sender_id}))
    })
}

#[cfg(test)]
mod tests {
    use super::iso_ms;

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(iso_ms(1_795_543_888_142), "2026-11-24T18:11:28.142Z");
    }
}
