//! Telegram `Update` JSON → [`InboundMessage`]. Mentions use Telegram's UTF-16 offsets.

use crate::{ChatType, InboundMessage};
use serde_json::Value;

/// What the parser needs to know about the bot itself.
#[derive(Debug, Clone, Default)]
pub struct BotIdentity {
    pub id: i64,
    pub username: String,
}

/// The `update_id` (the dedupe key), if the update has one.
pub fn update_id(update: &Value) -> Option<i64> {
    update.get("update_id")?.as_i64()
}

/// The slice of `text` at a UTF-16 offset/length, as Telegram entities count.
pub fn utf16_slice(text: &str, offset: usize, length: usize) -> Option<String> {
    let units: Vec<u16> = text.encode_utf16().collect();
    units_slice(&units, offset, length)
}

fn units_slice(units: &[u16], offset: usize, length: usize) -> Option<String> {
    let end = offset.checked_add(length)?;
    String::from_utf16(units.get(offset..end)?).ok()
}

fn mentions_bot(msg: &Value, text: &str, entities_key: &str, bot: &BotIdentity) -> bool {
    let Some(entities) = msg.get(entities_key).and_then(Value::as_array) else {
        return false;
    };
    let uname = bot.username.to_ascii_lowercase();
    // Encoded once: an update may carry many entities over a long text.
    let units: Vec<u16> = text.encode_utf16().collect();
    entities.iter().any(|e| {
        let off = e["offset"].as_u64().unwrap_or(u64::MAX) as usize;
        let len = e["length"].as_u64().unwrap_or(0) as usize;
        match e["type"].as_str() {
            Some("mention") => units_slice(&units, off, len).is_some_and(|s| {
                !uname.is_empty() && s.trim_start_matches('@').eq_ignore_ascii_case(&uname)
            }),
            Some("text_mention") => e["user"]["id"].as_i64() == Some(bot.id),
            Some("bot_command") => units_slice(&units, off, len).is_some_and(|s| {
                s.split_once('@')
                    .is_some_and(|(_, u)| !uname.is_empty() && u.eq_ignore_ascii_case(&uname))
            }),
            _ => false,
        }
    })
}

/// Parses a text message update; `None` for updates this gateway does not act on
/// (edits, service messages, messages without text, messages from bots).
pub fn parse_update(update: &Value, account: &str, bot: &BotIdentity) -> Option<InboundMessage> {
    let msg = update.get("message")?;
    let (text, entities_key) = match (msg.get("text"), msg.get("caption")) {
        (Some(t), _) => (t.as_str()?, "entities"),
        (None, Some(c)) => (c.as_str()?, "caption_entities"),
        _ => return None,
    };
    let from = msg.get("from")?;
    if from["is_bot"].as_bool() == Some(true) {
        return None;
    }
    let chat = msg.get("chat")?;
    let chat_id = chat.get("id")?.as_i64()?;
    let chat_type = match chat["type"].as_str()? {
        "private" => ChatType::Direct,
        "group" | "supergroup" => ChatType::Group,
        _ => return None,
    };
    let sender = from.get("id")?.as_i64()?;
    let reply_to_bot =
        msg["reply_to_message"]["from"]["id"].as_i64() == Some(bot.id) && bot.id != 0;
    let mentioned = reply_to_bot || mentions_bot(msg, text, entities_key, bot);
    let thread_id = match chat_type {
        ChatType::Group if msg["is_topic_message"].as_bool() == Some(true) => {
            msg["message_thread_id"].as_i64().map(|t| t.to_string())
        }
        _ => None,
    };
    let name = from["username"]
        .as_str()
        .or(from["first_name"].as_str())
        .map(|s| s.chars().take(64).collect::<String>());
    Some(InboundMessage {
        channel: "telegram".into(),
        account: account.to_string(),
        chat_id: chat_id.to_string(),
        chat_type,
        sender_id: sender.to_string(),
        sender_name: name,
        thread_id,
        message_id: msg["message_id"].as_i64().unwrap_or(0).to_string(),
        text: text.to_string(),
        mentioned,
        conversation_kind: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            id: 7000000001,
            username: "my_bot".into(),
        }
    }

    #[test]
    fn private_message() {
        let u = json!({"update_id": 811752001, "message": {"message_id": 17, "date": 1767225600,
            "from": {"id": 123456789, "is_bot": false, "first_name": "Ada", "username": "ada"},
            "chat": {"id": 123456789, "type": "private"}, "text": "hello"}});
        let m = parse_update(&u, "default", &bot()).unwrap();
        assert_eq!(m.chat_type, ChatType::Direct);
        assert_eq!(m.sender_id, "123456789");
        assert_eq!(m.text, "hello");
        assert_eq!(update_id(&u), Some(811752001));
    }

    #[test]
    fn mention_after_an_emoji_uses_utf16_offsets() {
        let u = json!({"update_id": 2, "message": {"message_id": 345, "message_thread_id": 42, "is_topic_message": true,
            "from": {"id": 555000111, "is_bot": false, "first_name": "Lin"},
            "chat": {"id": -1001234567890i64, "type": "supergroup", "is_forum": true},
            "text": "👋 @my_bot summarize", "entities": [{"type": "mention", "offset": 3, "length": 7}]}});
        let m = parse_update(&u, "default", &bot()).unwrap();
        assert!(m.mentioned);
        assert_eq!(m.thread_id.as_deref(), Some("42"));
        assert_eq!(
            utf16_slice("👋 @my_bot summarize", 3, 7).unwrap(),
            "@my_bot"
        );
        // The same bytes as a UTF-8 offset would cut the emoji: offsets really are UTF-16.
        let other = json!({"update_id": 3, "message": {"message_id": 1, "from": {"id": 5, "is_bot": false},
            "chat": {"id": -100, "type": "supergroup"}, "text": "👋 @someone else", "entities": [{"type": "mention", "offset": 3, "length": 8}]}});
        assert!(!parse_update(&other, "default", &bot()).unwrap().mentioned);
    }

    #[test]
    fn replies_and_commands_to_the_bot_count_as_mentions() {
        let reply = json!({"update_id": 4, "message": {"message_id": 346, "from": {"id": 5, "is_bot": false},
            "chat": {"id": -100, "type": "supergroup"}, "text": "and now?",
            "reply_to_message": {"message_id": 340, "from": {"id": 7000000001i64, "is_bot": true}, "chat": {"id": -100, "type": "supergroup"}}}});
        assert!(parse_update(&reply, "default", &bot()).unwrap().mentioned);
        let cmd = json!({"update_id": 5, "message": {"message_id": 1, "from": {"id": 5, "is_bot": false},
            "chat": {"id": -100, "type": "supergroup"}, "text": "/ask@my_bot now", "entities": [{"type": "bot_command", "offset": 0, "length": 11}]}});
        assert!(parse_update(&cmd, "default", &bot()).unwrap().mentioned);
        let plain = json!({"update_id": 6, "message": {"message_id": 1, "from": {"id": 5, "is_bot": false},
            "chat": {"id": -100, "type": "supergroup"}, "text": "just chatting"}});
        assert!(!parse_update(&plain, "default", &bot()).unwrap().mentioned);
    }

    #[test]
    fn non_text_and_bot_messages_are_skipped() {
        let edit = json!({"update_id": 7, "edited_message": {"message_id": 1}});
        assert!(parse_update(&edit, "default", &bot()).is_none());
        let from_bot = json!({"update_id": 8, "message": {"message_id": 1, "from": {"id": 9, "is_bot": true},
            "chat": {"id": 9, "type": "private"}, "text": "hi"}});
        assert!(parse_update(&from_bot, "default", &bot()).is_none());
        assert!(utf16_slice("ab", 1, 5).is_none());
    }
}
