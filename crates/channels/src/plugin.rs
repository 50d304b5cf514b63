//! The channel seam: what a platform supplies (config section, ingress, egress, status) and
//! what it gets from the gateway (the narrow [`Host`]). The gateway holds the channels built
//! from [`crate::registry`] and loops over them; it names no platform.

use crate::access::PolicySet;
use crate::status::StatusCell;
use crate::{ChatType, InboundMessage, SendError};
use clawgate_config::{ChannelConfigParser, ChannelEntry, DmScope};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a channel may ask of the gateway. One host per channel: it knows the channel's name,
/// stores with dedupe, and wakes the channel's own inbound queue.
pub trait Host: Send + Sync {
    /// Stores events durably, deduped on (channel, account `default`, key), and, when given,
    /// sets a state key in the same transaction (a poll offset). Returns how many were new;
    /// new ones wake the channel's inbound processing.
    fn ingest(
        &self,
        items: Vec<(String, Value)>,
        state: Option<(String, String)>,
    ) -> BoxFuture<'_, Result<usize, String>>;
    /// Reads a state key (e.g. a poll offset).
    fn get_state(&self, key: String) -> BoxFuture<'_, Result<Option<String>, String>>;
    /// Writes a state key (the channel's own keys start with its name).
    fn set_state(&self, key: String, value: String) -> BoxFuture<'_, Result<(), String>>;
    /// Records a delivery report the platform sent for one of our outbound messages, found
    /// by the platform's message id (`sent` / `delivered` / `read` / `failed`, with the
    /// error for `failed`). `Ok(false)`: no outbox row has that id (yet).
    fn delivery_status(
        &self,
        _platform_message_id: String,
        _status: String,
        _error: Option<String>,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async { Ok(false) })
    }
}

/// A platform in the registry: parses its config section and builds the running channel.
pub trait ChannelPlugin: ChannelConfigParser {
    /// Display name (`Telegram`).
    fn label(&self) -> &'static str;
    /// How to configure the channel, shown when `send` names it but it is not running.
    fn setup_hint(&self) -> String {
        format!(
            "Set channels.{} in config.yaml and restart the gateway.",
            self.name()
        )
    }
    /// The longer label OpenClaw shows in `channels.status` (`channelDetailLabels`,
    /// `channelMeta[].detailLabel`): `Telegram Bot`.
    fn detail_label(&self) -> &'static str {
        self.label()
    }
    /// The UI icon name OpenClaw gives the channel (`channelSystemImages`), if any.
    fn system_image(&self) -> Option<&'static str> {
        None
    }
    /// Checks for `clawgate doctor` on a parsed, valid section: what the operator still has
    /// to set up outside the config (a public URL, a proxy location) and what looks wrong.
    /// `gateway_port` is where the gateway listens (for proxy advice). Empty by default.
    fn doctor(&self, _entry: &ChannelEntry, _gateway_port: u16) -> Vec<DoctorCheck> {
        Vec::new()
    }
    /// Builds the running channel from its parsed section (only called when enabled).
    fn build(&self, entry: &ChannelEntry, host: Arc<dyn Host>) -> Result<Arc<dyn Channel>, String>;
}

/// How a doctor check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorLevel {
    /// In order (the message says what was checked).
    Ok,
    /// Works, but something outside clawgate needs doing or looks wrong.
    Warn,
    /// Will not work as configured.
    Fail,
}

/// One line of `clawgate doctor` for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorCheck {
    pub level: DoctorLevel,
    pub message: String,
    /// What to do about it (config keys, URLs to register, a proxy location).
    pub fix: Option<String>,
}

impl DoctorCheck {
    pub fn ok(message: impl Into<String>) -> DoctorCheck {
        DoctorCheck {
            level: DoctorLevel::Ok,
            message: message.into(),
            fix: None,
        }
    }
    pub fn warn(message: impl Into<String>, fix: impl Into<String>) -> DoctorCheck {
        DoctorCheck {
            level: DoctorLevel::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(message: impl Into<String>, fix: impl Into<String>) -> DoctorCheck {
        DoctorCheck {
            level: DoctorLevel::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    /// `ok` with advice attached (e.g. the URL to register).
    pub fn ok_with(message: impl Into<String>, note: impl Into<String>) -> DoctorCheck {
        DoctorCheck {
            level: DoctorLevel::Ok,
            message: message.into(),
            fix: Some(note.into()),
        }
    }
}

/// A channel cannot take a new section while running: the change waits for a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartNeeded;

/// One outbound chunk (a row of the outbox).
#[derive(Debug, Clone, Copy)]
pub struct OutChunk<'a> {
    pub chat_id: &'a str,
    pub thread_id: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub text: &'a str,
}

/// Where one chunk of a reply goes: decided when the reply is queued and stored with the
/// chunk, so a restart or a config change between queueing and sending does not move it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyRoute {
    /// The thread / topic the chunk is posted in.
    pub thread_id: Option<String>,
    /// The message the chunk quotes or answers (a platform reply reference).
    pub reply_to: Option<String>,
}

/// Egress: sending, and the optional typing indicator and editing.
pub trait Egress: Send + Sync {
    /// Replies are split at this many characters.
    fn chunk_limit(&self) -> usize;
    /// Sends one chunk; `Ok(platform message id)`.
    fn send<'a>(&'a self, chunk: OutChunk<'a>) -> BoxFuture<'a, Result<Option<String>, SendError>>;
    /// Shows "typing…" while the agent works, where the platform has it (best effort).
    fn typing<'a>(&'a self, _chat_id: &'a str, _thread_id: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Replaces the text (Markdown, converted like `send`) of a message the bot sent, where
    /// the platform allows it; `None`: the channel cannot edit messages.
    fn edit<'a>(
        &'a self,
        _chat_id: &'a str,
        _message_id: &'a str,
        _text: &'a str,
    ) -> Option<BoxFuture<'a, Result<(), SendError>>> {
        None
    }
}

/// Why the webhook gate refuses a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Machine code of the error body (`unauthorized`, `bad_json`, …).
    pub code: &'static str,
    pub message: String,
}

impl Rejected {
    pub fn new(code: &'static str, message: impl Into<String>) -> Rejected {
        Rejected {
            code,
            message: message.into(),
        }
    }
}

/// What a verified, parsed webhook delivery is.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// Store durably under the platform's event id, then acknowledge.
    Store { key: String, payload: Value },
    /// Store several events of one delivery (a batch), each under its own event id, in one
    /// transaction, then acknowledge.
    StoreMany(Vec<(String, Value)>),
    /// Answer at once with this JSON (a handshake such as Slack's `url_verification`).
    Respond(Value),
    /// Acknowledge and drop (an event type the channel does not handle).
    Ignore,
}

/// Ingress by webhook: a channel supplies only its verifier and its parser; the gateway's one
/// gate does body cap → verify → replay window → parse → durable insert → ack.
pub trait Webhook: Send + Sync {
    /// The route on the gateway port.
    fn path(&self) -> &str;
    /// Checks possible before reading the body (a secret header), constant time. A failure
    /// is a 401 and counts against the client like a failed login.
    fn verify_headers(&self, _headers: &HeaderMap) -> Result<(), Rejected> {
        Ok(())
    }
    /// Checks on the raw body (an HMAC signature) and the replay window (`now_secs` is Unix
    /// time). A failure is a 401.
    fn verify_body(
        &self,
        _headers: &HeaderMap,
        _body: &[u8],
        _now_secs: i64,
    ) -> Result<(), Rejected> {
        Ok(())
    }
    /// Parses a verified body. A failure is a 400.
    fn parse(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, Rejected>;
    /// A `GET` on the route (a subscription handshake such as Meta's `hub.challenge`), given
    /// the raw query string: `None` when the platform has none (405), `Some(Ok(body))` →
    /// 200 with that `text/plain` body, `Some(Err)` → 403 (counted like a failed login).
    fn verify_get(&self, _query: &str) -> Option<Result<String, Rejected>> {
        None
    }
}

/// A running channel: small capabilities, each optional where the platform may lack it.
pub trait Channel: Send + Sync {
    /// Config section name and the `channel` column of the store (`telegram`).
    fn name(&self) -> &'static str;
    fn label(&self) -> &'static str;
    /// Ingress mode shown in `channels.status` (`polling`, `webhook`, `socket`, …).
    fn mode(&self) -> &'static str;
    fn status(&self) -> &StatusCell;

    /// Ingress through the shared webhook gate.
    fn webhook(&self) -> Option<&dyn Webhook> {
        None
    }
    /// Ingress through a receiver task (long poll, socket): one run, returning why it stopped.
    /// The gateway supervises it (restart with backoff, and the stall watchdog below).
    fn receiver(self: Arc<Self>) -> Option<BoxFuture<'static, String>> {
        None
    }
    /// A receiver that completes no cycle (`StatusCell::polled`) for this long is restarted.
    fn stall_timeout(&self) -> Option<Duration> {
        None
    }
    /// A one-off start-up task (learn the bot identity, register the webhook).
    fn setup(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        None
    }

    /// Whether the channel knows enough (its own identity) to process messages.
    fn ready(&self) -> bool;
    /// A stored payload → the normalized message (`None`: not a message for the agent).
    fn parse(&self, raw: &Value) -> Option<InboundMessage>;
    /// Who may talk to the agent (the running set; a reload may replace it).
    fn policy(&self) -> Arc<PolicySet>;
    /// The keys of the channel's section that [`Channel::reconfigure`] applies live (its
    /// access policy); a change to any other key needs a restart. Empty by default.
    fn live_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Takes the live keys ([`Channel::live_keys`]) from a new, valid section of this channel
    /// and leaves everything else as it runs. `Ok(true)`: the policy changed. The default
    /// applies nothing.
    fn reconfigure(&self, _entry: &ChannelEntry) -> Result<bool, RestartNeeded> {
        Err(RestartNeeded)
    }
    /// The line that tells an unknown sender their id (`Your Telegram user id: 42`).
    fn id_line(&self, sender_id: &str) -> String;
    fn egress(&self) -> &dyn Egress;
    /// A `send` target → the chat id to store, or why it is not one.
    fn parse_target(&self, to: &str) -> Result<String, String>;

    /// The session a message belongs to, in OpenClaw's key format. The default is the
    /// generic one (DMs by `dmScope`, groups per chat, topics as `:topic:<id>`).
    fn session_key(&self, dm_scope: DmScope, msg: &InboundMessage) -> String {
        crate::session_key::session_key(dm_scope, msg)
    }

    /// Where chunk `chunk_index` (0-based) of a reply to `msg` goes. The default: the
    /// message's thread/topic, quoting the message in groups.
    fn reply_route(&self, msg: &InboundMessage, _chunk_index: usize) -> ReplyRoute {
        ReplyRoute {
            thread_id: msg.thread_id.clone(),
            reply_to: (msg.chat_type == ChatType::Group).then(|| msg.message_id.clone()),
        }
    }
}
