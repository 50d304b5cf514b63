//! WhatsApp through Meta's Cloud API (not OpenClaw's WhatsApp Web emulation):
//!
//! - [`config`]: `channels.whatsapp` (keys, defaults, exit-78 errors, declared secrets,
//!   E.164 normalisation);
//! - [`webhook`]: the verification GET, `X-Hub-Signature-256` on the raw bytes, batches;
//! - [`inbound`]: stored messages → [`crate::InboundMessage`] (media placeholders, groups);
//! - [`format`]: model Markdown → WhatsApp formatting;
//! - [`api`]: the Graph client, errors classified by code, the 24-hour window;
//! - [`channel`]: the running channel behind the seam.

pub mod api;
pub mod channel;
pub mod config;
pub mod format;
pub mod inbound;
pub mod webhook;

pub use channel::{Plugin, WhatsApp};
pub use config::WhatsAppConfig;
