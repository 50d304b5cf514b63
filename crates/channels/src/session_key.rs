//! Session keys for channel messages, in OpenClaw's formats.

use crate::{ChatType, InboundMessage};
use clawgate_config::DmScope;

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

pub fn session_key(scope: DmScope, m: &InboundMessage) -> String {
    let ch = lower(&m.channel);
    match m.chat_type {
        ChatType::Direct => {
            let peer = lower(&m.sender_id);
            match scope {
                DmScope::Main => "agent:main:main".to_string(),
                DmScope::PerPeer => format!("agent:main:direct:{peer}"),
                DmScope::PerChannelPeer => format!("agent:main:{ch}:direct:{peer}"),
                DmScope::PerAccountChannelPeer => {
                    format!("agent:main:{ch}:{}:direct:{peer}", lower(&m.account))
                }
            }
        }
        ChatType::Group => {
            let base = format!("agent:main:{ch}:group:{}", lower(&m.chat_id));
            match &m.thread_id {
                Some(t) => format!("{base}:topic:{}", lower(t)),
                None => base,
            }
        }
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
