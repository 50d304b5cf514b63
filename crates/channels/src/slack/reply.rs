//! Where a Slack reply goes and how it is keyed: threads per `replyToMode`, OpenClaw's session
//! keys, and the reply text as mrkdwn chunks.

use super::config::ReplyToMode;
use super::events::ConversationKind;
use crate::session_key::peer_session_key;
use crate::InboundMessage;
use clawgate_config::DmScope;

/// The `thread_ts` for reply chunk `chunk_index` (0-based) to `msg`:
/// - a message inside a thread is answered in that thread (every chunk, any mode);
/// - otherwise `off` → in the conversation, `first` → only the first chunk threads under the
///   message (the rest go to the conversation), `all` → every chunk threads under it.
///
/// DMs follow the same rule as channels (a DM thread is answered in it; `all` threads DM
/// replies too).
pub fn reply_thread_ts(
    mode: ReplyToMode,
    msg: &InboundMessage,
    chunk_index: usize,
) -> Option<String> {
    if let Some(t) = &msg.thread_id {
        return Some(t.clone());
    }
    match mode {
        ReplyToMode::Off => None,
        ReplyToMode::First => (chunk_index == 0).then(|| msg.message_id.clone()),
        ReplyToMode::All => Some(msg.message_id.clone()),
    }
}

/// OpenClaw's session key for a Slack message:
/// - DM (`im`): by `dmScope` (a DM thread stays on the DM session);
/// - channel / private channel: `agent:main:slack:channel:<id>`, in a thread
///   `…:thread:<thread_ts>`; a top-level message whose reply will start a thread
///   (`replyToMode` ≠ `off`) is keyed on `…:thread:<its ts>` from the start, so the
///   conversation continuing in that thread keeps its session;
/// - group DM (`mpim`): `agent:main:slack:group:<id>` (threads likewise).
///
/// The conversation kind comes from [`InboundMessage::conversation_kind`].
pub fn session_key(scope: DmScope, m: &InboundMessage, mode: ReplyToMode) -> String {
    let kind = ConversationKind::of(m);
    if kind == ConversationKind::Im {
        return peer_session_key(scope, m, kind.peer_kind(), None);
    }
    let thread = match (&m.thread_id, mode) {
        (Some(t), _) => Some(t.as_str()),
        (None, ReplyToMode::Off) => None,
        (None, _) => Some(m.message_id.as_str()),
    };
    peer_session_key(scope, m, kind.peer_kind(), thread)
}

/// The reply as Slack messages: Markdown split at `limit` characters (paragraph/line/word
/// breaks, code fences closed and reopened), each chunk converted to mrkdwn.
pub fn render_chunks(markdown: &str, limit: usize) -> Vec<String> {
    crate::chunk::chunk_text(markdown, limit)
        .iter()
        .map(|c| super::format::to_mrkdwn(c))
        .filter(|c| !c.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::events::{to_inbound, BotIdentity, EventsBody, ParseOptions, SlackInbound};
    use serde_json::json;

    fn inbound(event: serde_json::Value) -> SlackInbound {
        let body =
            json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event});
        let EventsBody::EventCallback(c) = crate::slack::events::parse_value(&body).unwrap() else {
            panic!()
        };
        let me = BotIdentity {
            user_id: "U0BOT".into(),
            ..BotIdentity::default()
        };
        to_inbound(&c, &me, &ParseOptions::default()).unwrap()
    }

    fn channel_msg(thread: Option<&str>) -> SlackInbound {
        let mut e = json!({"type": "message", "channel": "C0CHAN", "user": "U0USER",
            "text": "<@U0BOT> hi", "ts": "1715600000.001500", "channel_type": "channel"});
        if let Some(t) = thread {
            e["thread_ts"] = json!(t);
        }
        inbound(e)
    }

    #[test]
    fn reply_threading_per_mode() {
        let top = channel_msg(None);
        assert_eq!(reply_thread_ts(ReplyToMode::Off, &top.msg, 0), None);
        assert_eq!(
            reply_thread_ts(ReplyToMode::First, &top.msg, 0).as_deref(),
            Some("1715600000.001500")
        );
        assert_eq!(reply_thread_ts(ReplyToMode::First, &top.msg, 1), None);
        assert_eq!(
            reply_thread_ts(ReplyToMode::All, &top.msg, 3).as_deref(),
            Some("1715600000.001500")
        );
        // Inside a thread: always that thread (the parent's ts), whatever the mode.
        let t = channel_msg(Some("1715599000.000100"));
        for mode in [ReplyToMode::Off, ReplyToMode::First, ReplyToMode::All] {
            for i in 0..3 {
                assert_eq!(
                    reply_thread_ts(mode, &t.msg, i).as_deref(),
                    Some("1715599000.000100")
                );
            }
        }
    }

    #[test]
    fn session_keys() {
        let top = channel_msg(None);
        assert_eq!(
            session_key(DmScope::Main, &top.msg, ReplyToMode::Off),
            "agent:main:slack:channel:c0chan"
        );
        assert_eq!(
            session_key(DmScope::Main, &top.msg, ReplyToMode::First),
            "agent:main:slack:channel:c0chan:thread:1715600000.001500"
        );
        let t = channel_msg(Some("1715599000.000100"));
        assert_eq!(
            session_key(DmScope::Main, &t.msg, ReplyToMode::Off),
            "agent:main:slack:channel:c0chan:thread:1715599000.000100"
        );
        let private = inbound(
            json!({"type": "message", "channel": "G0PRIV", "user": "U0USER",
            "text": "x", "ts": "1.5", "channel_type": "group"}),
        );
        assert_eq!(
            session_key(DmScope::Main, &private.msg, ReplyToMode::Off),
            "agent:main:slack:channel:g0priv"
        );
        let mpim = inbound(
            json!({"type": "message", "channel": "G0MPIM", "user": "U0USER",
            "text": "x", "ts": "1.5", "channel_type": "mpim"}),
        );
        assert_eq!(
            session_key(DmScope::Main, &mpim.msg, ReplyToMode::Off),
            "agent:main:slack:group:g0mpim"
        );
        let dm = inbound(
            json!({"type": "message", "channel": "D0DM", "user": "U0USER",
            "text": "x", "ts": "1.5", "thread_ts": "1.0", "channel_type": "im"}),
        );
        for mode in [ReplyToMode::Off, ReplyToMode::All] {
            assert_eq!(session_key(DmScope::Main, &dm.msg, mode), "agent:main:main");
            assert_eq!(
                session_key(DmScope::PerChannelPeer, &dm.msg, mode),
                "agent:main:slack:direct:u0user"
            );
            assert_eq!(
                session_key(DmScope::PerPeer, &dm.msg, mode),
                "agent:main:direct:u0user"
            );
        }
    }

    #[test]
    fn chunks_are_converted_and_bounded() {
        let md = format!("**Title**\n\n{}", "word & more ".repeat(50));
        let chunks = render_chunks(&md, 100);
        assert!(chunks.len() > 5, "{chunks:?}");
        assert!(chunks[0].starts_with("*Title*"), "{chunks:?}");
        for c in &chunks {
            assert!(!c.contains("**") && !c.contains(" & "), "{c}");
            // Escaping can grow a chunk a little; the markdown chunk was within the limit.
            assert!(c.chars().count() <= 100 + 4 * 10, "{c}");
        }
        assert!(render_chunks("   ", 100).is_empty());
        // A fence split across chunks is closed and reopened, and stays a code block.
        let code = format!("```\n{}```", "let a = b < c;\n".repeat(20));
        let chunks = render_chunks(&code, 80);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.starts_with("```") && c.ends_with("```"), "{c}");
            assert!(c.contains("&lt;"), "{c}");
        }
    }
}
