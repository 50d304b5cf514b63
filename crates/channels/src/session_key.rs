//! Session keys for channel messages, in OpenClaw's formats.

use crate::{ChatType, InboundMessage};
use clawgate_config::DmScope;

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

pub fn session_key(scope: DmScope, m: &InboundMessage) -> String {
    match m.chat_type {
        ChatType::Direct => peer_session_key(scope, m, "direct", None),
        ChatType::Group => {
            let base = format!(
                "agent:main:{}:group:{}",
                lower(&m.channel),
                lower(&m.chat_id)
            );
            match &m.thread_id {
                Some(t) => format!("{base}:topic:{}", lower(t)),
                None => base,
            }
        }
    }
}

/// OpenClaw's key for a peer of kind `direct`, `group` or `channel`, with an optional
/// `:thread:<id>` suffix (for channels whose threads are sessions of their own). Direct peers follow `dmScope` and never take the
/// thread suffix (DM reply threads stay on the base DM session); group and channel peers are
/// per-group: `agent:main:<channel>:<kind>:<peer id>`.
pub fn peer_session_key(
    scope: DmScope,
    m: &InboundMessage,
    peer_kind: &str,
    thread: Option<&str>,
) -> String {
    let ch = lower(&m.channel);
    if peer_kind == "direct" {
        let peer = lower(&m.sender_id);
        return match scope {
            DmScope::Main => "agent:main:main".to_string(),
            DmScope::PerPeer => format!("agent:main:direct:{peer}"),
            DmScope::PerChannelPeer => format!("agent:main:{ch}:direct:{peer}"),
            DmScope::PerAccountChannelPeer => {
                format!("agent:main:{ch}:{}:direct:{peer}", lower(&m.account))
            }
        };
    }
    let base = format!("agent:main:{ch}:{}:{}", lower(peer_kind), lower(&m.chat_id));
    match thread {
        Some(t) => format!("{base}:thread:{}", lower(t)),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(chat_type: ChatType, thread: Option<&str>) -> InboundMessage {
        InboundMessage {
            channel: "telegram".into(),
            account: "default".into(),
            chat_id: if chat_type == ChatType::Group {
                "-1001234567890".into()
            } else {
                "123".into()
            },
            chat_type,
            sender_id: "123".into(),
            sender_name: None,
            thread_id: thread.map(String::from),
            message_id: "1".into(),
            text: String::new(),
            mentioned: false,
            conversation_kind: None,
        }
    }

    #[test]
    fn formats() {
        let d = m(ChatType::Direct, None);
        assert_eq!(session_key(DmScope::Main, &d), "agent:main:main");
        assert_eq!(session_key(DmScope::PerPeer, &d), "agent:main:direct:123");
        assert_eq!(
            session_key(DmScope::PerChannelPeer, &d),
            "agent:main:telegram:direct:123"
        );
        assert_eq!(
            session_key(DmScope::PerAccountChannelPeer, &d),
            "agent:main:telegram:default:direct:123"
        );
        assert_eq!(
            session_key(DmScope::Main, &m(ChatType::Group, None)),
            "agent:main:telegram:group:-1001234567890"
        );
        assert_eq!(
            session_key(DmScope::Main, &m(ChatType::Group, Some("42"))),
            "agent:main:telegram:group:-1001234567890:topic:42"
        );
    }
}
