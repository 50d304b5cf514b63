//! Slack: config, request verification, Events API parsing, Markdown → mrkdwn, the Web API
//! client and Socket Mode. Plain library pieces; the gateway's channel seam wires them.

pub mod api;
pub mod config;
pub mod events;
pub mod format;
pub mod socket;
pub mod verify;
