//! Slack, as plain library pieces the gateway's channel seam wires together:
//!
//! - [`config`]: `channels.slack` (OpenClaw's keys and defaults) and its semantic checks;
//! - [`verify`]: the HTTP-mode request signature (`X-Slack-Signature` v0, 300 s window);
//! - [`events`]: Events API bodies → `url_verification` challenge or an [`crate::InboundMessage`]
//!   (self/bot filtering, mentions, the `(team, channel, ts)` dedupe key);
//! - [`format`]: model Markdown → Slack mrkdwn;
//! - [`http`]: the HTTP-mode gate (verify → parse → what to answer) in one call;
//! - [`reply`]: reply threading per `replyToMode`, session keys, mrkdwn chunks;
//! - [`api`]: the Web API client with errors classified for the outbox;
//! - [`socket`]: Socket Mode frames and the connection driver.
//!
//! HTTP mode, in the webhook gate's order: body cap → `verify::Verifier::verify` on the raw
//! bytes and headers → `events::parse_body` → `url_verification`: answer
//! `events::challenge_response` → `event_callback`: dedupe on `event_id`, persist, answer 200
//! (within 3 s, before the agent) → later `events::to_inbound`, dedupe again on
//! `SlackInbound::dedupe_key` (one reply for `message` + `app_mention`).
//! Socket Mode: `api::SlackApi::open_socket_connection` (app token) →
//! `socket::SocketModeSession::connect` → for each envelope: `events::parse_value(&payload)`,
//! persist, `ack`.

pub mod api;
pub mod channel;
pub mod config;
pub mod doctor;
pub mod events;
pub mod format;
pub mod http;
pub mod reply;
pub mod section;
pub mod socket;
pub mod verify;

pub use api::{ApiError, AuthInfo, ErrorKind, Posted, SlackApi};
pub use channel::{Plugin, Slack};
pub use config::{GroupPolicy, ReplyToMode, SlackConfig, SlackMode};
pub use events::{BotIdentity, EventCallback, EventsBody, ParseOptions, SlackInbound};
pub use socket::{SocketEvent, SocketModeSession, SocketOptions};
pub use verify::{Verifier, VerifyError};
