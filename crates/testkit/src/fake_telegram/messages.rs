//! `sendMessage`, `sendChatAction`, `editMessageText`, `deleteMessage`, `setMessageReaction`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::entities::{self, Parsed};
use super::methods::{api_error, bad, ok, ApiError, ApiResult};
use super::params::Params;
use super::state::{chat_json, lock, unix_now, Shared, State};
use super::SentMessage;

/// Longest message text, in characters after entity parsing.
pub(crate) const MAX_TEXT_CHARS: usize = 4096;

/// Telegram's `sendChatAction` actions.
const CHAT_ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

/// `chat_id` as an integer; `@username` chats are unknown to the fake.
fn chat_id(p: &Params) -> Result<i64, ApiError> {
    let raw = p.str("chat_id").unwrap_or_default();
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad("chat_id is empty"));
    }
    match raw.parse::<i64>() {
        Ok(0) | Err(_) => Err(bad("chat not found")),
        Ok(id) => Ok(id),
    }
}

fn message_id(p: &Params) -> Result<i64, ApiError> {
    p.i64("message_id")
        .map_err(bad)?
        .ok_or_else(|| bad("message identifier is not specified"))
}

fn check_blocked(st: &State, chat: i64) -> Result<(), ApiError> {
    if !st.blocked.contains(&chat) {
        return Ok(());
    }
    let msg = if chat > 0 {
        "Forbidden: bot was blocked by the user"
    } else {
        "Forbidden: bot was kicked from the supergroup chat"
    };
    Err(api_error(403, msg))
}

/// The `text` + `parse_mode` pair, parsed and length-checked.
fn message_text(p: &Params) -> Result<(String, Option<String>, Parsed), ApiError> {
    let raw = p.str("text").unwrap_or_default();
    let mode = p.str("parse_mode").filter(|m| !m.is_empty());
    if let Some(m) = &mode {
        if !entities::mode_known(m) {
            return Err(bad("unsupported parse_mode"));
        }
    }
    if raw.trim().is_empty() {
        return Err(bad("message text is empty"));
    }
    let parsed = entities::parse(&raw, mode.as_deref())
        .map_err(|e| bad(format!("can't parse entities: {e}")))?;
    if parsed.text.trim().is_empty() {
        return Err(bad("message text is empty"));
    }
    if parsed.text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad("message is too long"));
    }
    Ok((raw, mode, parsed))
}

/// What a reply asks for: `(message_id, chat_id override, allow_sending_without_reply)`.
fn reply_request(p: &Params) -> Result<Option<(i64, Option<i64>, bool)>, ApiError> {
    if let Some(rp) = p
        .json("reply_parameters", "reply parameters")
        .map_err(bad)?
    {
        let as_i64 = |v: &Value| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok());
        let id = as_i64(&rp["message_id"])
            .ok_or_else(|| bad("can't parse reply parameters JSON object"))?;
        let allow = rp["allow_sending_without_reply"].as_bool().unwrap_or(false);
        return Ok(Some((id, as_i64(&rp["chat_id"]), allow)));
    }
    let legacy = p.i64("reply_to_message_id").map_err(bad)?;
    Ok(legacy.map(|id| (id, None, p.bool("allow_sending_without_reply"))))
}

pub(crate) fn send_message(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let chat = chat_id(p)?;
    let thread = p.i64("message_thread_id").map_err(bad)?;
    let reply = reply_request(p)?;
    p.json("link_preview_options", "link preview options")
        .map_err(bad)?;
    let markup = p.json("reply_markup", "reply markup").map_err(bad)?;
    let mut st = lock(&shared.state);
    check_blocked(&st, chat)?;
    let (raw, mode, parsed) = message_text(p)?;
    let mut reply_to = None;
    if let Some((id, reply_chat, allow)) = reply {
        match st.message(reply_chat.unwrap_or(chat), id) {
            Some(m) => reply_to = Some((id, m.clone())),
            None if allow => {}
            None => return Err(bad("message to be replied not found")),
        }
    }
    let message_id = st.alloc_message_id(chat);
    let mut msg = json!({
        "message_id": message_id,
        "from": shared.bot_user(),
        "chat": chat_json(chat),
        "date": unix_now(),
        "text": parsed.text,
    });
    if let Some(t) = thread {
        msg["message_thread_id"] = json!(t);
        if chat < 0 {
            msg["is_topic_message"] = json!(true);
        }
    }
    if let Some((_, m)) = &reply_to {
        msg["reply_to_message"] = m.clone();
    }
    if !parsed.entities.is_empty() {
        msg["entities"] = json!(parsed.entities);
    }
    if let Some(markup) = markup.filter(|m| m.get("inline_keyboard").is_some()) {
        msg["reply_markup"] = markup;
    }
    st.store_message(&msg);
    st.sent.push(SentMessage {
        chat_id: chat,
        text: parsed.text,
        parse_mode: mode,
        message_thread_id: thread,
        reply_to_message_id: reply_to.map(|(id, _)| id),
        message_id,
        at: Instant::now(),
        raw_text: raw,
        entities: json!(parsed.entities),
    });
    ok(msg)
}

pub(crate) fn send_chat_action(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let chat = chat_id(p)?;
    p.i64("message_thread_id").map_err(bad)?;
    let action = p.str("action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(bad("wrong parameter action in request"));
    }
    let mut st = lock(&shared.state);
    check_blocked(&st, chat)?;
    st.actions.push((chat, action, Instant::now()));
    ok(true)
}

pub(crate) fn edit_message_text(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    if p.str("inline_message_id").is_some() {
        return Err(bad("message to edit not found"));
    }
    let chat = chat_id(p)?;
    let id = message_id(p)?;
    let mut st = lock(&shared.state);
    check_blocked(&st, chat)?;
    let (raw, mode, parsed) = message_text(p)?;
    let bot_id = shared.bot_id;
    let Some(msg) = st
        .chats
        .get_mut(&chat)
        .and_then(|c| c.messages.get_mut(&id))
    else {
        return Err(bad("message to edit not found"));
    };
    if msg["from"]["id"].as_i64() != Some(bot_id) {
        return Err(bad("message can't be edited"));
    }
    let entities = json!(parsed.entities);
    let old_entities = msg.get("entities").cloned().unwrap_or_else(|| json!([]));
    if msg["text"].as_str() == Some(parsed.text.as_str()) && old_entities == entities {
        return Err(bad(
            "message is not modified: specified new message content and reply markup are \
             exactly the same as a current content and reply markup of the message",
        ));
    }
    msg["text"] = json!(parsed.text);
    msg["edit_date"] = json!(unix_now());
    match msg.as_object_mut() {
        Some(obj) if parsed.entities.is_empty() => {
            obj.remove("entities");
        }
        _ => msg["entities"] = entities.clone(),
    }
    let result = msg.clone();
    st.edits.push(SentMessage {
        chat_id: chat,
        text: parsed.text,
        parse_mode: mode,
        message_thread_id: result["message_thread_id"].as_i64(),
        reply_to_message_id: None,
        message_id: id,
        at: Instant::now(),
        raw_text: raw,
        entities,
    });
    ok(result)
}

pub(crate) fn delete_message(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let chat = chat_id(p)?;
    let id = message_id(p)?;
    let mut st = lock(&shared.state);
    check_blocked(&st, chat)?;
    let removed = st.chats.get_mut(&chat).and_then(|c| c.messages.remove(&id));
    if removed.is_none() {
        return Err(bad("message to delete not found"));
    }
    st.deleted.push((chat, id));
    ok(true)
}

pub(crate) fn set_message_reaction(shared: &Arc<Shared>, p: &Params) -> ApiResult {
    let chat = chat_id(p)?;
    let id = message_id(p)?;
    let reaction = p
        .json("reaction", "reaction types")
        .map_err(bad)?
        .unwrap_or_else(|| json!([]));
    let Some(list) = reaction.as_array() else {
        return Err(bad("can't parse reaction types JSON object"));
    };
    let known = ["emoji", "custom_emoji", "paid"];
    if list
        .iter()
        .any(|r| !known.contains(&r["type"].as_str().unwrap_or_default()))
    {
        return Err(bad("REACTION_INVALID"));
    }
    let mut st = lock(&shared.state);
    check_blocked(&st, chat)?;
    if st.message(chat, id).is_none() {
        return Err(bad("message to react not found"));
    }
    st.reactions.push((chat, id, reaction));
    ok(true)
}
