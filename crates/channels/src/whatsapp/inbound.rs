//! A stored message (`{"message", "contact", "metadata"}`, one per `wamid`) → the normalized
//! [`InboundMessage`]. Text and replies go to the agent; media become a short placeholder
//! with the caption; reactions, `system` and other kinds are recorded but not answered.

use super::config::to_e164;
use crate::{ChatType, InboundMessage};
use serde_json::Value;

pub const CHANNEL: &str = "whatsapp";

/// The sender's E.164 form (`+16505551234`), for `allowFrom` and pairing.
pub fn sender_e164(wa_id: &str) -> String {
    to_e164(wa_id).unwrap_or_else(|| format!("+{wa_id}"))
}

fn caption(kind: &str, m: &Value) -> String {
    let media = &m[kind];
    let label = match kind {
        "image" => "an image".to_string(),
        "video" => "a video".to_string(),
        "audio" if media["voice"] == true => "a voice message".to_string(),
        "audio" => "an audio file".to_string(),
        "sticker" => "a sticker".to_string(),
        "document" => match media["filename"].as_str() {
            Some(f) => format!("a document ({f})"),
            None => "a document".to_string(),
        },
        _ => format!("a {kind}"),
    };
    match media["caption"].as_str().filter(|c| !c.trim().is_empty()) {
        Some(c) => format!("[The user sent {label} with the caption: {c}]"),
        None => format!("[The user sent {label}; attachments are not supported yet, so only this note reaches you]"),
    }
}

/// The text the agent sees for a message, or `None` for kinds that are not answered.
pub fn message_text(m: &Value) -> Option<String> {
    let kind = m["type"].as_str()?;
    match kind {
        "text" => m["text"]["body"].as_str().map(str::to_string),
        "image" | "audio" | "video" | "document" | "sticker" => Some(caption(kind, m)),
        "button" => m["button"]["text"].as_str().map(str::to_string),
        "interactive" => {
            let i = &m["interactive"];
            let r = if i["button_reply"].is_object() {
                &i["button_reply"]
            } else {
                &i["list_reply"]
            };
            r["title"].as_str().map(str::to_string)
        }
        "location" => {
            let l = &m["location"];
            Some(format!(
                "[The user shared a location: {}, {}{}]",
                l["latitude"],
                l["longitude"],
                l["name"]
                    .as_str()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ))
        }
        // reaction, system (e.g. user_changed_number), unsupported, request_welcome, …
        _ => None,
    }
}

/// The Unix time of a stored message (`timestamp` is a string of seconds).
pub fn timestamp(stored: &Value) -> Option<i64> {
    let t = &stored["message"]["timestamp"];
    t.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| t.as_i64())
}

/// The chat a reply goes to: the sender's `wa_id` exactly as given, or the group id.
pub fn chat_of(stored: &Value) -> Option<String> {
    let m = &stored["message"];
    m["group_id"]
        .as_str()
        .or(m["from"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub fn to_inbound(stored: &Value, account: &str) -> Option<InboundMessage> {
    let m = &stored["message"];
    let from = m["from"].as_str().filter(|s| !s.is_empty())?;
    let id = m["id"].as_str()?;
    let text = message_text(m)?;
    let group = m["group_id"].as_str().filter(|s| !s.is_empty());
    let me = stored["metadata"]["display_phone_number"]
        .as_str()
        .unwrap_or("");
    // In a group the bot is addressed by an @mention of its number or a reply to it.
    let mentioned = !me.is_empty()
        && (m["context"]["from"].as_str() == Some(me) || text.contains(&format!("@{me}")));
    Some(InboundMessage {
        channel: CHANNEL.into(),
        account: account.into(),
        chat_id: group.unwrap_or(from).to_string(),
        chat_type: if group.is_some() {
            ChatType::Group
        } else {
            ChatType::Direct
        },
        sender_id: sender_e164(from),
        sender_name: stored["contact"]["profile"]["name"]
            .as_str()
            .map(str::to_string),
        thread_id: None,
        message_id: id.to_string(),
        text,
        mentioned,
        conversation_kind: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(m: Value) -> Value {
        json!({"message": m, "contact": {"profile": {"name": "Sheena"}, "wa_id": "16505551234"},
               "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106"}})
    }

    #[test]
    fn text_and_replies() {
        let s = stored(
            json!({"from": "16505551234", "id": "wamid.A", "timestamp": "1739321024", "type": "text", "text": {"body": "Hi"}}),
        );
        let m = to_inbound(&s, "default").unwrap();
        assert_eq!(
            (m.chat_id.as_str(), m.sender_id.as_str(), m.text.as_str()),
            ("16505551234", "+16505551234", "Hi")
        );
        assert_eq!(m.chat_type, ChatType::Direct);
        assert_eq!(m.sender_name.as_deref(), Some("Sheena"));
        assert_eq!(timestamp(&s), Some(1739321024));
        let r = stored(
            json!({"context": {"from": "15550783881", "id": "wamid.B"}, "from": "16505551234", "id": "wamid.C", "timestamp": "1", "type": "text", "text": {"body": "yes that one"}}),
        );
        let m = to_inbound(&r, "default").unwrap();
        assert_eq!(m.text, "yes that one");
        assert!(m.mentioned);
    }

    #[test]
    fn media_placeholders_and_unanswered_kinds() {
        let img = stored(
            json!({"from": "1650555", "id": "wamid.I", "timestamp": "1", "type": "image", "image": {"id": "1", "mime_type": "image/jpeg", "caption": "receipt"}}),
        );
        assert_eq!(
            to_inbound(&img, "default").unwrap().text,
            "[The user sent an image with the caption: receipt]"
        );
        let voice = stored(
            json!({"from": "1650555", "id": "wamid.V", "timestamp": "1", "type": "audio", "audio": {"id": "2", "voice": true}}),
        );
        assert!(to_inbound(&voice, "default")
            .unwrap()
            .text
            .contains("a voice message"));
        let doc = stored(
            json!({"from": "1650555", "id": "wamid.D", "timestamp": "1", "type": "document", "document": {"id": "3", "filename": "a.pdf"}}),
        );
        assert!(to_inbound(&doc, "default")
            .unwrap()
            .text
            .contains("a document (a.pdf)"));
        let sticker = stored(
            json!({"from": "1650555", "id": "wamid.S", "timestamp": "1", "type": "sticker", "sticker": {"id": "4", "animated": false}}),
        );
        assert!(to_inbound(&sticker, "default")
            .unwrap()
            .text
            .contains("a sticker"));
        for m in [
            json!({"from": "1650555", "id": "wamid.R", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}}),
            json!({"from": "1650555", "id": "wamid.Y", "timestamp": "1", "type": "system", "system": {"body": "changed number", "type": "user_changed_number"}}),
            json!({"from": "1650555", "id": "wamid.U", "timestamp": "1", "type": "unsupported", "errors": [{"code": 131051}]}),
        ] {
            assert_eq!(to_inbound(&stored(m), "default"), None);
        }
    }

    #[test]
    fn session_keys_in_openclaws_formats() {
        use crate::session_key::session_key;
        use clawgate_config::DmScope;
        let s = stored(
            json!({"from": "16505551234", "id": "wamid.A", "timestamp": "1", "type": "text", "text": {"body": "Hi"}}),
        );
        let m = to_inbound(&s, "default").unwrap();
        assert_eq!(session_key(DmScope::Main, &m), "agent:main:main");
        assert_eq!(
            session_key(DmScope::PerPeer, &m),
            "agent:main:direct:+16505551234"
        );
        assert_eq!(
            session_key(DmScope::PerChannelPeer, &m),
            "agent:main:whatsapp:direct:+16505551234"
        );
        assert_eq!(
            session_key(DmScope::PerAccountChannelPeer, &m),
            "agent:main:whatsapp:default:direct:+16505551234"
        );
        let g = stored(
            json!({"from": "16505551234", "group_id": "Y2FwaV9ncm91cDox", "id": "wamid.G", "timestamp": "1", "type": "text", "text": {"body": "x"}}),
        );
        let m = to_inbound(&g, "default").unwrap();
        assert_eq!(
            session_key(DmScope::Main, &m),
            "agent:main:whatsapp:group:y2fwav9ncm91cdox"
        );
    }

    #[test]
    fn groups_need_a_mention_of_the_number() {
        let g = stored(
            json!({"from": "16505551234", "group_id": "Y2FwaV9ncm91cDox", "id": "wamid.G", "timestamp": "1", "type": "text", "text": {"body": "hello all"}}),
        );
        let m = to_inbound(&g, "default").unwrap();
        assert_eq!(
            (m.chat_type, m.chat_id.as_str(), m.mentioned),
            (ChatType::Group, "Y2FwaV9ncm91cDox", false)
        );
        let g = stored(
            json!({"from": "16505551234", "group_id": "Y2FwaV9ncm91cDox", "id": "wamid.H", "timestamp": "1", "type": "text", "text": {"body": "@15550783881 what's up"}}),
        );
        assert!(to_inbound(&g, "default").unwrap().mentioned);
    }
}
