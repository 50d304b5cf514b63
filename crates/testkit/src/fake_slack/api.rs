//! The Web API: token checks, faults, the `{"ok":…}` envelope, and the methods.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::Response;
use serde_json::{json, Map, Value};

use super::server::{text_response, Body};
use super::state::{is_id, lock, unix_now, Shared, State};
use super::{events, Call, Fault, SentMessage};
use crate::fake_telegram::params::Params;

/// Methods the fake implements; others answer `unknown_method`.
const METHODS: [&str; 11] = [
    "auth.test",
    "conversations.info",
    "conversations.list",
    "conversations.replies",
    "users.info",
    "chat.postMessage",
    "chat.update",
    "conversations.open",
    "reactions.add",
    "reactions.remove",
    "apps.connections.open",
];

/// An `ok:false` answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub error: String,
    pub retry_after: Option<u64>,
}

fn err(error: &str) -> ApiError {
    ApiError {
        status: 200,
        error: error.to_string(),
        retry_after: None,
    }
}

fn rate_limited(secs: u64) -> ApiError {
    ApiError {
        status: 429,
        error: "ratelimited".into(),
        retry_after: Some(secs),
    }
}

type ApiResult = Result<Map<String, Value>, ApiError>;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn take_fault(shared: &Shared, method: &str) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    if let Some(f) = faults.get_mut(method).and_then(|q| q.pop_front()) {
        return Some(f);
    }
    faults.get_mut("*").and_then(|q| q.pop_front())
}

fn set_outcome(shared: &Shared, idx: usize, status: u16, error: Option<String>) {
    if let Some(call) = lock(&shared.calls).get_mut(idx) {
        call.status = status;
        call.error = error;
    }
    shared.notify();
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    reset: &AtomicBool,
    method: &str,
    parts: &Parts,
    body: &[u8],
) -> Result<Response<Body>, io::Error> {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let is_json = content_type
        .to_ascii_lowercase()
        .starts_with("application/json");
    let (params, parse_error) = match Params::parse(parts.uri.query(), &content_type, body) {
        Ok(p) => (p, None),
        Err(_) if is_json => (Params::default(), Some("invalid_json")),
        Err(_) => (Params::default(), Some("invalid_form_data")),
    };
    let header_token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    // JSON bodies cannot carry the token; form bodies and the query string can.
    let param_token = if is_json {
        None
    } else {
        params.str("token").filter(|t| !t.is_empty())
    };
    let idx = {
        let mut calls = lock(&shared.calls);
        calls.push(Call {
            method: method.to_string(),
            params: params.value(),
            token: header_token.clone().or_else(|| param_token.clone()),
            content_type: content_type.clone(),
            at: Instant::now(),
            status: 0,
            error: None,
        });
        calls.len() - 1
    };
    shared.notify();

    let fault = take_fault(shared, method);
    let result = match fault {
        Some(Fault::RateLimited(secs)) => Err(rate_limited(secs)),
        Some(Fault::Error(code)) => Err(err(&code)),
        Some(Fault::Status(code)) => Err(ApiError {
            status: code,
            error: if code >= 500 {
                "internal_error".into()
            } else {
                String::new()
            },
            retry_after: None,
        }),
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::ResetConnection) => {
            reset.store(true, Ordering::SeqCst);
            shared.notify();
            return Err(io::Error::other("fake Slack: connection reset"));
        }
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            run(
                shared,
                method,
                &params,
                parse_error,
                header_token,
                param_token,
            )
        }
        None => run(
            shared,
            method,
            &params,
            parse_error,
            header_token,
            param_token,
        ),
    };
    let missing_charset = is_json && !content_type.to_ascii_lowercase().contains("charset");
    let (resp, status, error) = envelope(result, missing_charset);
    set_outcome(shared, idx, status, error);
    Ok(resp)
}

fn envelope(result: ApiResult, missing_charset: bool) -> (Response<Body>, u16, Option<String>) {
    match result {
        Ok(fields) => {
            let mut body = Map::new();
            body.insert("ok".into(), json!(true));
            body.extend(fields);
            if missing_charset {
                body.insert("warning".into(), json!("missing_charset"));
                body.insert(
                    "response_metadata".into(),
                    json!({"warnings": ["missing_charset"]}),
                );
            }
            let text = Value::Object(body).to_string();
            (
                text_response(200, "application/json; charset=utf-8", text),
                200,
                None,
            )
        }
        Err(e) => {
            let body = if e.error.is_empty() {
                json!({"ok": false})
            } else {
                json!({"ok": false, "error": e.error})
            };
            let mut resp = text_response(
                e.status,
                "application/json; charset=utf-8",
                body.to_string(),
            );
            if let Some(secs) = e.retry_after {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            let error = (!e.error.is_empty()).then_some(e.error);
            (resp, e.status, error)
        }
    }
}

fn run(
    shared: &Arc<Shared>,
    method: &str,
    params: &Params,
    parse_error: Option<&str>,
    header_token: Option<String>,
    param_token: Option<String>,
) -> ApiResult {
    if !METHODS.contains(&method) {
        return Err(ApiError {
            status: 404,
            error: "unknown_method".into(),
            retry_after: None,
        });
    }
    if let Some(e) = parse_error {
        return Err(err(e));
    }
    let cfg = &shared.cfg;
    if method == "apps.connections.open" {
        // The app-level token must come in the Authorization header.
        let Some(token) = header_token else {
            return Err(err("not_authed"));
        };
        if token == cfg.bot_token || token.starts_with("xox") {
            return Err(err("not_allowed_token_type"));
        }
        if token != cfg.app_token {
            return Err(err("invalid_auth"));
        }
        return connections_open(shared);
    }
    let Some(token) = header_token.or(param_token) else {
        return Err(err("not_authed"));
    };
    if token == cfg.app_token || (token.starts_with("xapp-") && token != cfg.bot_token) {
        return Err(err("not_allowed_token_type"));
    }
    if token != cfg.bot_token {
        return Err(err("invalid_auth"));
    }
    if lock(&shared.state).bot_token_revoked {
        return Err(err("token_revoked"));
    }
    match method {
        "auth.test" => Ok(obj(json!({
            "url": format!("https://{}.slack.com/", cfg.team_domain),
            "team": cfg.team_name,
            "user": cfg.bot_name,
            "team_id": cfg.team_id,
            "user_id": cfg.bot_user_id,
            "bot_id": cfg.bot_id,
            "is_enterprise_install": false,
        }))),
        "chat.postMessage" => post_message(shared, params),
        "chat.update" => update(shared, params),
        "conversations.open" => conversations_open(shared, params),
        "reactions.add" => reaction(shared, params, true),
        "reactions.remove" => reaction(shared, params, false),
        "conversations.info" => conversations_info(shared, params),
        "conversations.list" => conversations_list(shared, params),
        "conversations.replies" => conversations_replies(shared, params),
        "users.info" => users_info(shared, params),
        _ => Err(err("unknown_method")),
    }
}

/// A non-empty string parameter.
fn arg(params: &Params, name: &str) -> Option<String> {
    params.str(name).filter(|s| !s.trim().is_empty())
}

/// The conversation a `channel` argument names, as Slack resolves it for posting.
fn resolve_channel(shared: &Shared, st: &mut State, arg: &str) -> Result<String, ApiError> {
    if st.gone.contains(arg) {
        return Err(err("channel_not_found"));
    }
    if is_id(arg, &['U', 'W']) {
        return Ok(st.dm(arg).0);
    }
    match st.channels.get(arg) {
        Some(c) if c.archived => Err(err("is_archived")),
        Some(c) if !c.member => Err(err("not_in_channel")),
        Some(_) => Ok(arg.to_string()),
        None if !shared.cfg.strict_channels && is_id(arg, &['C', 'G', 'D']) => Ok(arg.to_string()),
        None => Err(err("channel_not_found")),
    }
}

/// `text` and `blocks` checks shared by `chat.postMessage` and `chat.update`.
fn message_content(shared: &Shared, params: &Params) -> Result<(String, Option<Value>), ApiError> {
    let text = params.str("text").unwrap_or_default();
    let blocks = match params.json("blocks", "blocks") {
        Ok(Some(b)) if b.is_array() => Some(b),
        Ok(Some(_)) | Err(_) => return Err(err("invalid_blocks")),
        Ok(None) => None,
    };
    let attachments = params.json("attachments", "attachments").ok().flatten();
    let has_blocks = blocks
        .as_ref()
        .is_some_and(|b| b.as_array().is_some_and(|a| !a.is_empty()));
    if text.trim().is_empty() && !has_blocks && attachments.is_none() {
        return Err(err("no_text"));
    }
    if text.chars().count() > shared.cfg.max_text_chars {
        return Err(err("msg_too_long"));
    }
    Ok((text, blocks))
}

fn post_message(shared: &Arc<Shared>, params: &Params) -> ApiResult {
    let requested = arg(params, "channel").ok_or_else(|| err("channel_not_found"))?;
    let mut st = lock(&shared.state);
    let channel = resolve_channel(shared, &mut st, &requested)?;
    let (text, blocks) = message_content(shared, params)?;
    if let Some(interval) = st.post_interval {
        if let Some(last) = st.last_post.get(&channel) {
            let elapsed = last.elapsed();
            if elapsed < interval {
                let wait = (interval - elapsed).as_secs_f64().ceil().max(1.0) as u64;
                return Err(rate_limited(wait));
            }
        }
    }
    let thread_ts = arg(params, "thread_ts");
    let mrkdwn = params.0.get("mrkdwn").is_none_or(|_| params.bool("mrkdwn"));
    let reply_broadcast = params.bool("reply_broadcast");
    let ts = st.alloc_ts();
    let cfg = &shared.cfg;
    let mut message = json!({
        "user": cfg.bot_user_id,
        "type": "message",
        "ts": ts,
        "bot_id": cfg.bot_id,
        "app_id": cfg.app_id,
        "text": text,
        "team": cfg.team_id,
        "bot_profile": shared.bot_profile(),
    });
    if let Some(b) = &blocks {
        message["blocks"] = b.clone();
    }
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
        if let Some(parent) = st.message(&channel, t) {
            message["parent_user_id"] = parent["user"].clone();
        }
    }
    st.store_message(&channel, &message);
    st.last_post.insert(channel.clone(), Instant::now());
    st.sent.push(SentMessage {
        channel: channel.clone(),
        requested_channel: requested,
        text: text.clone(),
        thread_ts: thread_ts.clone(),
        ts: ts.clone(),
        mrkdwn,
        blocks,
        reply_broadcast,
        at: Instant::now(),
    });
    let kind = st.channel_type(&channel);
    drop(st);
    if cfg.echo_bot_messages {
        let mut echo = events::bot_echo(shared, &channel, kind, &ts, &text, thread_ts.as_deref());
        if let Some(b) = &message.get("blocks") {
            echo["blocks"] = (*b).clone();
        }
        let (envelope, _) = events::envelope(shared, echo);
        events::dispatch(shared, envelope);
    }
    Ok(obj(
        json!({"channel": channel, "ts": ts, "message": message}),
    ))
}

fn update(shared: &Arc<Shared>, params: &Params) -> ApiResult {
    let requested = arg(params, "channel").ok_or_else(|| err("channel_not_found"))?;
    let ts = arg(params, "ts").ok_or_else(|| err("message_not_found"))?;
    let mut st = lock(&shared.state);
    let channel = resolve_channel(shared, &mut st, &requested)?;
    let Some(mut message) = st.message(&channel, &ts).cloned() else {
        return Err(err("message_not_found"));
    };
    let cfg = &shared.cfg;
    if message["user"] != cfg.bot_user_id.as_str() && message["bot_id"] != cfg.bot_id.as_str() {
        return Err(err("cant_update_message"));
    }
    let (text, blocks) = message_content(shared, params)?;
    let edited_ts = st.alloc_ts();
    let previous = message.clone();
    message["text"] = json!(text);
    if let Some(b) = &blocks {
        message["blocks"] = b.clone();
    }
    message["edited"] = json!({"user": cfg.bot_user_id, "ts": edited_ts});
    st.store_message(&channel, &message);
    st.updates.push(SentMessage {
        channel: channel.clone(),
        requested_channel: requested,
        text: text.clone(),
        thread_ts: message["thread_ts"].as_str().map(str::to_string),
        ts: ts.clone(),
        mrkdwn: true,
        blocks,
        reply_broadcast: false,
        at: Instant::now(),
    });
    let kind = st.channel_type(&channel);
    drop(st);
    if cfg.echo_bot_messages {
        let event = json!({
            "type": "message",
            "subtype": "message_changed",
            "hidden": true,
            "channel": channel,
            "message": message,
            "previous_message": previous,
            "event_ts": edited_ts,
            "ts": edited_ts,
            "channel_type": kind,
        });
        let (envelope, _) = events::envelope(shared, event);
        events::dispatch(shared, envelope);
    }
    Ok(obj(json!({
        "channel": channel,
        "ts": ts,
        "text": text,
        "message": message,
    })))
}

fn conversations_open(shared: &Shared, params: &Params) -> ApiResult {
    let mut st = lock(&shared.state);
    if let Some(channel) = arg(params, "channel") {
        if st.channels.contains_key(&channel) && !st.gone.contains(&channel) {
            return Ok(obj(
                json!({"channel": {"id": channel}, "no_op": true, "already_open": true}),
            ));
        }
        return Err(err("channel_not_found"));
    }
    let Some(users) = arg(params, "users") else {
        return Err(err("users_list_not_supplied"));
    };
    let users: Vec<String> = users
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if users.is_empty() {
        return Err(err("users_list_not_supplied"));
    }
    if users.len() > 8 {
        return Err(err("too_many_users"));
    }
    if users.iter().any(|u| !is_id(u, &['U', 'W'])) {
        return Err(err("user_not_found"));
    }
    let (id, already) = if users.len() == 1 {
        st.dm(&users[0])
    } else {
        st.mpim(&users)
    };
    let mut channel = json!({"id": id});
    if params.bool("return_im") && users.len() == 1 {
        channel = json!({
            "id": id,
            "created": unix_now(),
            "is_im": true,
            "is_org_shared": false,
            "user": users[0],
            "is_user_deleted": false,
            "priority": 0,
        });
    }
    let mut out = json!({"channel": channel});
    if already {
        out["no_op"] = json!(true);
        out["already_open"] = json!(true);
    }
    Ok(obj(out))
}

fn reaction(shared: &Shared, params: &Params, add: bool) -> ApiResult {
    let (Some(requested), Some(ts)) = (arg(params, "channel"), arg(params, "timestamp")) else {
        return Err(err("no_item_specified"));
    };
    let name = params.str("name").unwrap_or_default();
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(err("invalid_name"));
    }
    let mut st = lock(&shared.state);
    let channel = resolve_channel(shared, &mut st, &requested)?;
    if st.message(&channel, &ts).is_none() {
        return Err(err("message_not_found"));
    }
    let key = (channel, ts, name);
    let present = st.reactions.contains(&key);
    if add {
        if present {
            return Err(err("already_reacted"));
        }
        st.reactions.push(key.clone());
        st.reaction_log.push(key);
    } else {
        if !present {
            return Err(err("no_reaction"));
        }
        st.reactions.retain(|r| *r != key);
    }
    Ok(Map::new())
}

fn connections_open(shared: &Shared) -> ApiResult {
    let ticket = uuid::Uuid::new_v4().to_string();
    lock(&shared.socket).tickets.insert(ticket.clone(), false);
    shared.notify();
    let url = format!(
        "ws://{}/link/?ticket={ticket}&app_id={}",
        shared.addr, shared.cfg.app_id
    );
    Ok(obj(json!({ "url": url })))
}

fn conversations_info(shared: &Shared, params: &Params) -> ApiResult {
    let id = arg(params, "channel").ok_or_else(|| err("channel_not_found"))?;
    let st = lock(&shared.state);
    let known = st.channels.get(&id).cloned();
    let lenient = !shared.cfg.strict_channels && is_id(&id, &['C', 'G', 'D']);
    if st.gone.contains(&id) || (known.is_none() && !lenient) {
        return Err(err("channel_not_found"));
    }
    let c = known.unwrap_or_default();
    let kind = st.channel_type(&id);
    let member = c.member || (lenient && !st.channels.contains_key(&id));
    let mut channel = json!({
        "id": id,
        "created": 1_700_000_000,
        "is_channel": kind == "channel",
        "is_group": kind == "group",
        "is_im": kind == "im",
        "is_mpim": kind == "mpim",
        "is_private": kind != "channel",
        "is_archived": c.archived,
        "is_general": false,
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "is_member": member,
        "context_team_id": shared.cfg.team_id,
    });
    if kind == "im" {
        let user = st
            .dms
            .iter()
            .find(|(_, d)| **d == id)
            .map(|(u, _)| u.clone());
        channel["user"] = json!(user);
    } else {
        channel["name"] = json!(format!("chan-{}", id.to_ascii_lowercase()));
    }
    Ok(obj(json!({ "channel": channel })))
}

/// `conversations.list`: the known conversations of the requested `types` (default
/// `public_channel`), sorted by id, paged with `limit` (default 100, max 1000) and an opaque
/// `cursor`; `next_cursor` is empty on the last page.
fn conversations_list(shared: &Shared, params: &Params) -> ApiResult {
    let types = arg(params, "types").unwrap_or_else(|| "public_channel".into());
    let mut wanted = Vec::new();
    for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        wanted.push(match t {
            "public_channel" => "channel",
            "private_channel" => "group",
            "im" => "im",
            "mpim" => "mpim",
            _ => return Err(err("invalid_types")),
        });
    }
    let exclude_archived = arg(params, "exclude_archived").is_some_and(|v| v == "true" || v == "1");
    let limit = arg(params, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(100)
        .min(1000);
    let start = match arg(params, "cursor") {
        None => 0,
        Some(c) => c
            .strip_prefix("dGVhbTp")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| err("invalid_cursor"))?,
    };
    let st = lock(&shared.state);
    let mut ids: Vec<&String> = st
        .channels
        .iter()
        .filter(|(id, c)| {
            !st.gone.contains(*id)
                && wanted.contains(&st.channel_type(id))
                && !(exclude_archived && c.archived)
        })
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(limit)
        .map(|id| {
            let c = &st.channels[*id];
            let kind = st.channel_type(id);
            json!({
                "id": id, "name": format!("chan-{}", id.to_ascii_lowercase()),
                "created": 1_700_000_000, "is_channel": kind == "channel",
                "is_group": kind == "group", "is_im": kind == "im", "is_mpim": kind == "mpim",
                "is_private": kind != "channel", "is_archived": c.archived, "is_general": false,
                "is_shared": false, "is_ext_shared": false, "is_org_shared": false,
                "is_member": c.member, "context_team_id": shared.cfg.team_id,
            })
        })
        .collect();
    let next = if start + limit < ids.len() {
        format!("dGVhbTp{}", start + limit)
    } else {
        String::new()
    };
    Ok(obj(
        json!({"channels": page, "response_metadata": {"next_cursor": next}}),
    ))
}

fn conversations_replies(shared: &Shared, params: &Params) -> ApiResult {
    let id = arg(params, "channel").ok_or_else(|| err("channel_not_found"))?;
    let ts = arg(params, "ts").ok_or_else(|| err("thread_not_found"))?;
    let limit = params
        .i64("limit")
        .ok()
        .flatten()
        .filter(|l| *l > 0)
        .unwrap_or(1000) as usize;
    let st = lock(&shared.state);
    if st.gone.contains(&id) {
        return Err(err("channel_not_found"));
    }
    let Some(parent) = st.message(&id, &ts) else {
        return Err(err("thread_not_found"));
    };
    let mut messages = vec![parent.clone()];
    if let Some(all) = st.messages.get(&id) {
        // BTreeMap order is ts order (same-length "<unix>.<6 digits>" strings).
        messages.extend(
            all.values()
                .filter(|m| m["thread_ts"] == ts.as_str() && m["ts"] != ts.as_str())
                .cloned(),
        );
    }
    let has_more = messages.len() > limit;
    messages.truncate(limit);
    Ok(obj(json!({
        "messages": messages,
        "has_more": has_more,
        "response_metadata": {"next_cursor": ""},
    })))
}

fn users_info(shared: &Shared, params: &Params) -> ApiResult {
    let id = arg(params, "user").ok_or_else(|| err("user_not_found"))?;
    if !is_id(&id, &['U', 'W']) {
        return Err(err("user_not_found"));
    }
    let cfg = &shared.cfg;
    let is_bot = id == cfg.bot_user_id;
    let name = if is_bot {
        cfg.bot_name.clone()
    } else {
        format!("user-{}", id.to_ascii_lowercase())
    };
    let mut user = json!({
        "id": id,
        "team_id": cfg.team_id,
        "name": name,
        "deleted": false,
        "real_name": name,
        "tz": "Europe/Berlin",
        "tz_offset": 3600,
        "is_admin": false,
        "is_owner": false,
        "is_bot": is_bot,
        "is_app_user": false,
        "profile": {"real_name": name, "display_name": name},
    });
    if is_bot {
        user["profile"]["bot_id"] = json!(cfg.bot_id);
    }
    Ok(obj(json!({ "user": user })))
}
