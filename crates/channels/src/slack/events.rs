//! Events API bodies (HTTP mode, after verification; and Socket Mode `events_api` payloads):
//! `url_verification` → the challenge, `event_callback` → the envelope, and the inner
//! `message` / `app_mention` event → an [`InboundMessage`], with self/bot filtering, mention
//! detection and a dedupe key shared by the `message` and `app_mention` of one user message.

use crate::{ChatType, InboundMessage};
use serde_json::Value;

/// The channel name used in [`InboundMessage::channel`] and session keys.
pub const CHANNEL: &str = "slack";

/// Largest body we parse (Slack events are a few KB; the gateway's body cap applies first).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A parsed Events API body.
#[derive(Debug, Clone, PartialEq)]
pub enum EventsBody {
    /// Answer 200 with the challenge (see [`challenge_response`]).
    UrlVerification { challenge: String },
    /// An event: dedupe on `event_id`, persist, ack.
    EventCallback(EventCallback),
    /// `app_rate_limited` and anything newer: ack with 200, nothing to do.
    Other { kind: String },
}

/// The `event_callback` envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCallback {
    pub event_id: String,
    pub team_id: String,
    pub api_app_id: String,
    pub event_time: i64,
    /// `event.type` (`message`, `app_mention`, `reaction_added`, …).
    pub event_type: String,
    /// The inner event, as sent.
    pub event: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body too large")]
    TooLarge,
    #[error("body is not a JSON object")]
    NotJson,
    #[error("body has no `type`")]
    NoType,
    #[error("url_verification without a `challenge`")]
    NoChallenge,
    #[error("event_callback without `event_id` or `event`")]
    Incomplete,
}

/// Parses the raw body bytes (verify the signature first).
pub fn parse_body(raw: &[u8]) -> Result<EventsBody, ParseError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge);
    }
    let v: Value = serde_json::from_slice(raw).map_err(|_| ParseError::NotJson)?;
    parse_value(&v)
}

/// Parses an already-decoded body (the `payload` of a Socket Mode `events_api` envelope).
pub fn parse_value(v: &Value) -> Result<EventsBody, ParseError> {
    if !v.is_object() {
        return Err(ParseError::NotJson);
    }
    let kind = v["type"].as_str().ok_or(ParseError::NoType)?;
    match kind {
        "url_verification" => {
            let challenge = v["challenge"]
                .as_str()
                .filter(|c| !c.is_empty())
                .ok_or(ParseError::NoChallenge)?;
            Ok(EventsBody::UrlVerification {
                challenge: challenge.to_string(),
            })
        }
        "event_callback" => {
            let event_id = v["event_id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or(ParseError::Incomplete)?;
            let event = &v["event"];
            let event_type = event["type"].as_str().ok_or(ParseError::Incomplete)?;
            let team_id = v["team_id"]
                .as_str()
                .or_else(|| event["team"].as_str())
                .unwrap_or_default();
            Ok(EventsBody::EventCallback(EventCallback {
                event_id: event_id.to_string(),
                team_id: team_id.to_string(),
                api_app_id: v["api_app_id"].as_str().unwrap_or_default().to_string(),
                event_time: v["event_time"].as_i64().unwrap_or(0),
                event_type: event_type.to_string(),
                event: event.clone(),
            }))
        }
        other => Ok(EventsBody::Other {
            kind: other.to_string(),
        }),
    }
}

/// The HTTP answer to `url_verification`: `(content type, body)` — plain text, the challenge.
pub fn challenge_response(challenge: &str) -> (&'static str, String) {
    ("text/plain; charset=utf-8", challenge.to_string())
}

/// Who the bot is (from `auth.test` at start), for self-filtering and mention detection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BotIdentity {
    /// The bot's user id (`U…`): mentions are `<@user_id>`.
    pub user_id: String,
    /// The bot id (`B…`) carried by the bot's own posts.
    pub bot_id: Option<String>,
    /// The app id (`A…`); from `api_app_id` when known.
    pub app_id: Option<String>,
}

/// Parsing options (from the config).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseOptions {
    /// The account id put into [`InboundMessage::account`].
    pub account: String,
    /// `allowBots`: accept other bots' messages (never our own).
    pub allow_bots: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            account: "default".into(),
            allow_bots: false,
        }
    }
}

/// Slack's kinds of conversation (`channel_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// `im`: a DM with the bot.
    Im,
    /// `mpim`: a group DM (routes as `group`).
    Mpim,
    /// `channel`: a public channel.
    Channel,
    /// `group`: a private channel (routes as `channel`).
    PrivateChannel,
}

impl ConversationKind {
    /// The peer kind used in OpenClaw's session keys: `direct`, `group` or `channel`.
    pub fn peer_kind(self) -> &'static str {
        match self {
            ConversationKind::Im => "direct",
            ConversationKind::Mpim => "group",
            ConversationKind::Channel | ConversationKind::PrivateChannel => "channel",
        }
    }

    pub fn chat_type(self) -> ChatType {
        match self {
            ConversationKind::Im => ChatType::Direct,
            _ => ChatType::Group,
        }
    }

    /// Slack's `channel_type` name (`im`, `mpim`, `channel`, `group`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Im => "im",
            ConversationKind::Mpim => "mpim",
            ConversationKind::Channel => "channel",
            ConversationKind::PrivateChannel => "group",
        }
    }

    /// The kind a normalized message carries (see [`ConversationKind::as_str`]); a message
    /// without one is taken from its chat type (a group DM then counts as a channel).
    pub fn of(m: &crate::InboundMessage) -> ConversationKind {
        match m.conversation_kind.as_deref() {
            Some("im") => ConversationKind::Im,
            Some("mpim") => ConversationKind::Mpim,
            Some("group") => ConversationKind::PrivateChannel,
            Some(_) => ConversationKind::Channel,
            None if m.chat_type == ChatType::Direct => ConversationKind::Im,
            None => ConversationKind::Channel,
        }
    }
}

/// A user message ready for the router.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackInbound {
    /// Channel `slack`; chat id = conversation id; sender = user id; thread id = `thread_ts`;
    /// message id = `ts`; text with the bot's own mention stripped and `&amp;`/`&lt;`/`&gt;`
    /// decoded.
    pub msg: InboundMessage,
    /// The delivery's `event_id` (differs between `message` and `app_mention`).
    pub event_id: String,
    /// `team:channel:ts`: identical for the `message` and the `app_mention` of one user
    /// message, and for redeliveries — dedupe on this to answer once.
    pub dedupe_key: String,
    pub kind: ConversationKind,
    pub team_id: String,
    /// This delivery was an `app_mention` event.
    pub is_app_mention: bool,
}

/// The dedupe key of one Slack message: `(team, channel, ts)`.
pub fn dedupe_key(team_id: &str, channel: &str, ts: &str) -> String {
    format!("{team_id}:{channel}:{ts}")
}

/// Subtypes that are a user's message; everything else (edits, deletes, joins, topic
/// changes, legacy `bot_message`, …) is not a new request.
const ACCEPTED_SUBTYPES: &[&str] = &["file_share", "thread_broadcast"];

/// Turns an `event_callback` into a user message, or says why it is ignored.
pub fn to_inbound(
    cb: &EventCallback,
    me: &BotIdentity,
    opts: &ParseOptions,
) -> Result<SlackInbound, &'static str> {
    let e = &cb.event;
    let is_app_mention = match cb.event_type.as_str() {
        "message" => false,
        "app_mention" => true,
        _ => return Err("not a message event"),
    };
    if e["hidden"].as_bool() == Some(true) {
        return Err("hidden message event");
    }
    let subtype = e["subtype"].as_str();
    if subtype == Some("bot_message") && !opts.allow_bots {
        return Err("message from a bot");
    }
    let user = e["user"].as_str().unwrap_or_default();
    let bot_id = e["bot_id"].as_str();
    let app_id = e["app_id"].as_str().or(e["bot_profile"]["app_id"].as_str());
    // Every event's `api_app_id` is our own app id, so a message carrying it is ours too.
    let own_app = me
        .app_id
        .as_deref()
        .or(Some(cb.api_app_id.as_str()).filter(|a| !a.is_empty()));
    let own = (!user.is_empty() && user == me.user_id)
        || (bot_id.is_some() && bot_id == me.bot_id.as_deref())
        || (app_id.is_some() && app_id == own_app);
    if own {
        return Err("the bot's own message");
    }
    if bot_id.is_some() && !opts.allow_bots {
        return Err("message from a bot");
    }
    if let Some(st) = subtype {
        let accepted = ACCEPTED_SUBTYPES.contains(&st) || (st == "bot_message" && opts.allow_bots);
        if !accepted {
            return Err("message subtype that is not a user request");
        }
    }
    let sender = if user.is_empty() {
        bot_id.unwrap_or_default()
    } else {
        user
    };
    if sender.is_empty() {
        return Err("message without a sender");
    }
    let channel = e["channel"].as_str().unwrap_or_default();
    let ts = e["ts"].as_str().unwrap_or_default();
    if channel.is_empty() || ts.is_empty() {
        return Err("message without channel or ts");
    }
    let kind = match e["channel_type"].as_str() {
        Some("im") => ConversationKind::Im,
        Some("mpim") => ConversationKind::Mpim,
        Some("group") => ConversationKind::PrivateChannel,
        Some("channel") => ConversationKind::Channel,
        // app_mention carries no channel_type; it never fires in DMs.
        _ if channel.starts_with('D') => ConversationKind::Im,
        _ => ConversationKind::Channel,
    };
    let raw_text = e["text"].as_str().unwrap_or_default();
    let mentions_me = !me.user_id.is_empty() && mentions(raw_text, &me.user_id);
    let reply_to_me =
        !me.user_id.is_empty() && e["parent_user_id"].as_str() == Some(me.user_id.as_str());
    let text = decode_entities(strip_mention(raw_text, &me.user_id).trim());
    let has_files = e["files"].as_array().is_some_and(|f| !f.is_empty());
    if text.is_empty() && !has_files {
        return Err("empty message");
    }
    let thread_ts = e["thread_ts"].as_str().filter(|t| !t.is_empty());
    let team = if cb.team_id.is_empty() {
        e["team"].as_str().unwrap_or_default()
    } else {
        cb.team_id.as_str()
    };
    Ok(SlackInbound {
        msg: InboundMessage {
            channel: CHANNEL.into(),
            account: opts.account.clone(),
            chat_id: channel.to_string(),
            chat_type: kind.chat_type(),
            sender_id: sender.to_string(),
            sender_name: e["user_profile"]["display_name"]
                .as_str()
                .or(e["user_profile"]["real_name"].as_str())
                .filter(|n| !n.is_empty())
                .map(String::from),
            thread_id: thread_ts.map(String::from),
            message_id: ts.to_string(),
            text,
            mentioned: is_app_mention || mentions_me || reply_to_me,
            conversation_kind: Some(kind.as_str().to_string()),
        },
        event_id: cb.event_id.clone(),
        dedupe_key: dedupe_key(team, channel, ts),
        kind,
        team_id: team.to_string(),
        is_app_mention,
    })
}

/// `<@U…>` or `<@U…|label>` for this user id appears in the text.
pub fn mentions(text: &str, user_id: &str) -> bool {
    mention_spans(text, user_id).next().is_some()
}

fn mention_spans<'a>(text: &'a str, user_id: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let needle = format!("<@{user_id}");
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(i) = text[from..].find(&needle) {
            let start = from + i;
            let after = start + needle.len();
            let rest = &text[after..];
            let end = if rest.starts_with('>') {
                Some(after + 1)
            } else if rest.starts_with('|') {
                rest.find('>').map(|j| after + j + 1)
            } else {
                None
            };
            from = after;
            if let Some(end) = end {
                from = end;
                return Some((start, end));
            }
        }
        None
    })
}

/// Removes the bot's own mentions (other users' mentions stay), collapsing the spaces left.
pub fn strip_mention(text: &str, user_id: &str) -> String {
    if user_id.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in mention_spans(text, user_id) {
        out.push_str(&text[last..s]);
        last = e;
        // Drop one space after the mention when there is already one before it (or none
        // is needed at the start).
        if text[last..].starts_with(' ') && (out.is_empty() || out.ends_with([' ', '\n'])) {
            last += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Slack escapes `&`, `<`, `>` in message text; the agent gets them back.
pub fn decode_entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> BotIdentity {
        BotIdentity {
            user_id: "U0BOT".into(),
            bot_id: Some("B0BOT".into()),
            app_id: Some("A0001".into()),
        }
    }

    fn cb(event: Value) -> EventCallback {
        let body = json!({"token": "XXYYZZ", "team_id": "T0001", "api_app_id": "A0001",
            "event": event, "type": "event_callback", "event_id": "Ev08MFMKH6",
            "event_time": 1715600000});
        match parse_body(body.to_string().as_bytes()).unwrap() {
            EventsBody::EventCallback(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn inbound(event: Value) -> Result<SlackInbound, &'static str> {
        to_inbound(&cb(event), &me(), &ParseOptions::default())
    }

    #[test]
    fn url_verification_gives_the_challenge() {
        let body = br#"{"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}"#;
        let p = parse_body(body).unwrap();
        let EventsBody::UrlVerification { challenge } = p else {
            panic!("{p:?}")
        };
        assert_eq!(
            challenge,
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
        let (ct, body) = challenge_response(&challenge);
        assert!(ct.starts_with("text/plain"));
        assert_eq!(body, challenge);
        assert_eq!(
            parse_body(br#"{"type":"url_verification"}"#),
            Err(ParseError::NoChallenge)
        );
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(parse_body(b"token=x&a=b"), Err(ParseError::NotJson));
        assert_eq!(parse_body(b"[1]"), Err(ParseError::NotJson));
        assert_eq!(parse_body(b"{}"), Err(ParseError::NoType));
        assert_eq!(
            parse_body(br#"{"type":"event_callback","event":{"type":"message"}}"#),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            parse_body(br#"{"type":"event_callback","event_id":"Ev1"}"#),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            parse_body(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(ParseError::TooLarge)
        );
        assert_eq!(
            parse_body(br#"{"type":"app_rate_limited","minute_rate_limited":1}"#),
            Ok(EventsBody::Other {
                kind: "app_rate_limited".into()
            })
        );
    }

    #[test]
    fn spec_envelope_app_mention_in_thread() {
        let c = cb(json!({"type": "app_mention", "user": "U0USER",
            "text": "<@U0BOT> summarize this thread", "ts": "1715600000.001500",
            "thread_ts": "1715599000.000100", "channel": "C0CHAN", "event_ts": "1715600000.001500"}));
        assert_eq!(c.event_id, "Ev08MFMKH6");
        assert_eq!(c.team_id, "T0001");
        assert_eq!(c.api_app_id, "A0001");
        assert_eq!(c.event_time, 1715600000);
        let m = to_inbound(&c, &me(), &ParseOptions::default()).unwrap();
        assert_eq!(m.msg.channel, "slack");
        assert_eq!(m.msg.account, "default");
        assert_eq!(m.msg.chat_id, "C0CHAN");
        assert_eq!(m.msg.chat_type, ChatType::Group);
        assert_eq!(m.kind, ConversationKind::Channel);
        assert_eq!(m.msg.sender_id, "U0USER");
        assert_eq!(m.msg.thread_id.as_deref(), Some("1715599000.000100"));
        assert_eq!(m.msg.message_id, "1715600000.001500");
        assert_eq!(m.msg.text, "summarize this thread");
        assert!(m.msg.mentioned);
        assert!(m.is_app_mention);
        assert_eq!(m.dedupe_key, "T0001:C0CHAN:1715600000.001500");
    }

    #[test]
    fn dm_message() {
        let m = inbound(
            json!({"type": "message", "channel": "D024BE91L", "user": "U2147483697",
            "text": "Hello hello can you hear me?", "ts": "1355517523.000005",
            "event_ts": "1355517523.000005", "channel_type": "im"}),
        )
        .unwrap();
        assert_eq!(m.msg.chat_type, ChatType::Direct);
        assert_eq!(m.kind, ConversationKind::Im);
        assert_eq!(m.msg.text, "Hello hello can you hear me?");
        assert_eq!(m.msg.thread_id, None);
        assert!(!m.msg.mentioned);
        assert!(!m.is_app_mention);
    }

    #[test]
    fn message_and_app_mention_of_one_user_message_share_the_dedupe_key() {
        let ev = |t: &str| {
            json!({"type": t, "channel": "C0CHAN", "user": "U0USER", "text": "hey <@U0BOT> ping",
                   "ts": "1715600000.000100", "channel_type": "channel"})
        };
        let mut a = cb(ev("message"));
        let mut b = cb(ev("app_mention"));
        a.event_id = "Ev1".into();
        b.event_id = "Ev2".into();
        let a = to_inbound(&a, &me(), &ParseOptions::default()).unwrap();
        let b = to_inbound(&b, &me(), &ParseOptions::default()).unwrap();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.msg, b.msg, "both deliveries make the same message");
        assert!(a.msg.mentioned, "a <@BOT> in a plain message event counts");
        assert_eq!(a.msg.text, "hey ping");
    }

    #[test]
    fn thread_reply_to_the_bot_is_an_implicit_mention() {
        let m = inbound(
            json!({"type": "message", "channel": "C0CHAN", "user": "U0USER",
            "text": "and the logs?", "ts": "1715600100.000200", "thread_ts": "1715599000.000100",
            "parent_user_id": "U0BOT", "channel_type": "channel", "client_msg_id": "5b0c"}),
        )
        .unwrap();
        assert!(m.msg.mentioned);
        assert_eq!(m.msg.thread_id.as_deref(), Some("1715599000.000100"));
        let m = inbound(
            json!({"type": "message", "channel": "C0CHAN", "user": "U0USER",
            "text": "and the logs?", "ts": "1715600100.000200", "thread_ts": "1715599000.000100",
            "parent_user_id": "U0OTHER", "channel_type": "channel"}),
        )
        .unwrap();
        assert!(!m.msg.mentioned);
    }

    #[test]
    fn own_messages_are_ignored_by_user_bot_or_app_id() {
        let echo = json!({"type": "message", "channel": "C0CHAN", "user": "U0BOT", "bot_id": "B0BOT",
            "app_id": "A0001", "text": "Here is the summary", "ts": "1715600001.000200",
            "channel_type": "channel", "bot_profile": {"id": "B0BOT", "app_id": "A0001", "name": "OpenClaw"}});
        assert_eq!(inbound(echo.clone()), Err("the bot's own message"));
        // Even with allowBots.
        let opts = ParseOptions {
            allow_bots: true,
            ..ParseOptions::default()
        };
        assert_eq!(
            to_inbound(&cb(echo), &me(), &opts),
            Err("the bot's own message")
        );
        // Only the bot id known to match.
        let e = json!({"type": "message", "channel": "C0CHAN", "bot_id": "B0BOT", "subtype": "bot_message",
            "text": "x", "ts": "1.2", "channel_type": "channel"});
        assert_eq!(
            to_inbound(&cb(e), &me(), &opts),
            Err("the bot's own message")
        );
        // Identity unknown (auth.test not yet done): the envelope's api_app_id still tells.
        let e = json!({"type": "message", "channel": "C0CHAN", "user": "U0X", "bot_id": "B0X",
            "app_id": "A0001", "text": "x", "ts": "1.2", "channel_type": "channel"});
        assert_eq!(
            to_inbound(&cb(e), &BotIdentity::default(), &opts),
            Err("the bot's own message")
        );
    }

    #[test]
    fn other_bots_are_ignored_unless_allowed() {
        let e = json!({"type": "message", "channel": "C0CHAN", "user": "U0OTHERBOT", "bot_id": "B0OTHER",
            "text": "beep <@U0BOT>", "ts": "1.2", "channel_type": "channel"});
        assert_eq!(inbound(e.clone()), Err("message from a bot"));
        let legacy = json!({"type": "message", "subtype": "bot_message", "channel": "C0CHAN",
            "bot_id": "B0OTHER", "text": "beep", "ts": "1.3", "channel_type": "channel"});
        assert_eq!(inbound(legacy.clone()), Err("message from a bot"));
        let opts = ParseOptions {
            allow_bots: true,
            ..ParseOptions::default()
        };
        let m = to_inbound(&cb(e), &me(), &opts).unwrap();
        assert_eq!(m.msg.sender_id, "U0OTHERBOT");
        assert!(m.msg.mentioned);
        let m = to_inbound(&cb(legacy), &me(), &opts).unwrap();
        assert_eq!(m.msg.sender_id, "B0OTHER");
    }

    #[test]
    fn edits_deletes_and_joins_are_not_requests() {
        let edit = json!({"type": "message", "subtype": "message_changed", "hidden": true, "channel": "C0CHAN",
            "message": {"type": "message", "user": "U0USER", "text": "fixed typo", "ts": "1715600100.000200"},
            "event_ts": "1715600150.000300", "ts": "1715600150.000300", "channel_type": "channel"});
        assert!(inbound(edit).is_err());
        for st in [
            "message_deleted",
            "channel_join",
            "channel_leave",
            "channel_topic",
            "channel_purpose",
            "channel_name",
            "message_replied",
        ] {
            let e = json!({"type": "message", "subtype": st, "channel": "C0CHAN", "user": "U0USER",
                "text": "x", "ts": "1.2", "channel_type": "channel"});
            assert_eq!(
                inbound(e),
                Err("message subtype that is not a user request"),
                "{st}"
            );
        }
        for st in ["file_share", "thread_broadcast"] {
            let e = json!({"type": "message", "subtype": st, "channel": "C0CHAN", "user": "U0USER",
                "text": "look", "ts": "1.2", "channel_type": "channel"});
            assert!(inbound(e).is_ok(), "{st}");
        }
    }

    #[test]
    fn other_event_types_and_incomplete_messages_are_ignored() {
        assert_eq!(
            inbound(json!({"type": "reaction_added", "user": "U0USER", "reaction": "eyes"})),
            Err("not a message event")
        );
        assert_eq!(
            inbound(json!({"type": "message", "channel": "C0CHAN", "text": "x", "ts": "1.2"})),
            Err("message without a sender")
        );
        assert_eq!(
            inbound(json!({"type": "message", "user": "U0USER", "text": "x", "ts": "1.2"})),
            Err("message without channel or ts")
        );
        assert_eq!(
            inbound(
                json!({"type": "app_mention", "channel": "C0CHAN", "user": "U0USER",
                           "text": "<@U0BOT>", "ts": "1.2"})
            ),
            Err("empty message")
        );
        // A file without text is still a message.
        let m = inbound(
            json!({"type": "message", "subtype": "file_share", "channel": "D1", "user": "U0USER",
            "text": "", "ts": "1.2", "channel_type": "im", "files": [{"id": "F1"}]}),
        )
        .unwrap();
        assert_eq!(m.msg.text, "");
    }

    #[test]
    fn conversation_kinds() {
        let k = |ct: Option<&str>, ch: &str| {
            let mut e = json!({"type": "message", "channel": ch, "user": "U0USER", "text": "x", "ts": "1.2"});
            if let Some(ct) = ct {
                e["channel_type"] = json!(ct);
            }
            inbound(e).unwrap().kind
        };
        assert_eq!(k(Some("im"), "D1"), ConversationKind::Im);
        assert_eq!(k(Some("mpim"), "G1"), ConversationKind::Mpim);
        assert_eq!(k(Some("group"), "G1"), ConversationKind::PrivateChannel);
        assert_eq!(k(Some("channel"), "C1"), ConversationKind::Channel);
        assert_eq!(k(None, "D1"), ConversationKind::Im);
        assert_eq!(k(None, "C1"), ConversationKind::Channel);
        assert_eq!(ConversationKind::Mpim.chat_type(), ChatType::Group);
        assert_eq!(ConversationKind::Mpim.peer_kind(), "group");
        assert_eq!(ConversationKind::PrivateChannel.peer_kind(), "channel");
        assert_eq!(ConversationKind::Im.peer_kind(), "direct");
    }

    #[test]
    fn mention_stripping_and_entities() {
        assert_eq!(strip_mention("<@U0BOT> hi", "U0BOT"), "hi");
        assert_eq!(strip_mention("hi <@U0BOT>", "U0BOT"), "hi ");
        assert_eq!(strip_mention("a <@U0BOT> b", "U0BOT"), "a b");
        assert_eq!(strip_mention("a <@U0BOT|bot> b", "U0BOT"), "a b");
        assert_eq!(
            strip_mention("ask <@U0OTHER> and <@U0BOT>", "U0BOT"),
            "ask <@U0OTHER> and "
        );
        // A longer id with the bot's id as prefix is someone else.
        assert_eq!(strip_mention("<@U0BOTX> hi", "U0BOT"), "<@U0BOTX> hi");
        assert!(!mentions("<@U0BOTX> hi", "U0BOT"));
        assert!(mentions("x<@U0BOT|b>", "U0BOT"));
        assert!(!mentions("<@U0BOT", "U0BOT"));
        assert_eq!(
            decode_entities("a &lt;b&gt; &amp;lt; &amp;"),
            "a <b> &lt; &"
        );
        let m = inbound(json!({"type": "message", "channel": "D1", "user": "U0USER",
            "text": "is 1 &lt; 2 &amp;&amp; 3 &gt; 2?", "ts": "1.2", "channel_type": "im"}))
        .unwrap();
        assert_eq!(m.msg.text, "is 1 < 2 && 3 > 2?");
    }

    #[test]
    fn socket_mode_payload_parses_the_same() {
        let payload = json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev9",
            "event": {"type": "message", "channel": "D1", "user": "U1", "text": "hi", "ts": "5.6", "channel_type": "im"}});
        let EventsBody::EventCallback(c) = parse_value(&payload).unwrap() else {
            panic!()
        };
        let m = to_inbound(&c, &me(), &ParseOptions::default()).unwrap();
        assert_eq!(m.dedupe_key, "T1:D1:5.6");
        assert_eq!(m.event_id, "Ev9");
    }
}
