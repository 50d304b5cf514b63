//! Messaging channels. A channel supplies only its platform pieces — a verifier and parser
//! for inbound updates, a sender for replies, its status — and the gateway's router does the
//! rest (durability, access control, sessions, the agent, the outbox).

pub mod access;
pub mod chunk;
pub mod pairing;
pub mod plugin;
pub mod session_key;
pub mod slack;
pub mod status;
pub mod telegram;
pub mod whatsapp;

use serde::{Deserialize, Serialize};

pub use plugin::{
    Channel, ChannelPlugin, DoctorCheck, DoctorLevel, Egress, Host, OutChunk, Rejected, ReplyRoute,
    Webhook, WebhookEvent,
};
pub use status::{ChannelStatus, StatusCell};

/// Every platform, one line each. Adding a channel is a directory plus a line here.
static REGISTRY: &[&dyn ChannelPlugin] = &[&telegram::Plugin, &slack::Plugin, &whatsapp::Plugin];

/// The channel plugins, in the order `channels.status` lists them.
pub fn registry() -> &'static [&'static dyn ChannelPlugin] {
    REGISTRY
}

/// The registry's config section parsers, for `Config::load_with`.
pub fn config_parsers() -> Vec<&'static dyn clawgate_config::ChannelConfigParser> {
    REGISTRY
        .iter()
        .map(|p| *p as &dyn clawgate_config::ChannelConfigParser)
        .collect()
}

/// The plugin named `name`.
pub fn plugin(name: &str) -> Option<&'static dyn ChannelPlugin> {
    REGISTRY.iter().copied().find(|p| p.name() == name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    Direct,
    Group,
}

/// A normalized inbound message (what every channel's parser produces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: String,
    pub account: String,
    pub chat_id: String,
    pub chat_type: ChatType,
    /// Immutable platform id of the sender (never a display name).
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub thread_id: Option<String>,
    pub message_id: String,
    pub text: String,
    /// The bot was addressed: an @mention, a command to it, or a reply to one of its messages.
    pub mentioned: bool,
    /// The platform's own kind of conversation where the chat type alone does not tell it
    /// (for the channel's session keys); `None` where it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_kind: Option<String>,
}

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundTarget {
    pub chat_id: String,
    pub thread_id: Option<String>,
    pub reply_to: Option<String>,
}

/// Why sending failed, classified for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Try again after this many milliseconds (the platform said so, e.g. Telegram 429).
    RetryAfter(u64, String),
    /// Transient (5xx, network): retry with backoff.
    Transient(String),
    /// Will never work (bad chat, blocked): give up.
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::RetryAfter(ms, m) => write!(f, "rate limited, retry after {ms} ms: {m}"),
            SendError::Transient(m) => write!(f, "transient: {m}"),
            SendError::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}
