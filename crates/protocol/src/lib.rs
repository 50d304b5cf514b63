//! OpenClaw Gateway protocol v4: wire types and pure helpers.
//!
//! No I/O lives here: frames, error shapes, scopes, and the device-signature payload
//! strings. Everything the gateway and the CLI agree on is in this crate.

pub mod connect;
pub mod device;
pub mod error;
pub mod frame;
pub mod scopes;

/// The protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u64 = 4;
/// Probe clients (`client.mode == "probe"`) may negotiate down to this version.
pub const MIN_PROBE_PROTOCOL: u64 = 3;

/// Largest inbound frame accepted before `hello-ok` (bytes).
pub const MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
/// Largest inbound frame accepted after `hello-ok` (bytes); advertised as `policy.maxPayload`.
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;
/// Outbound bytes queued per connection before it is closed as a slow consumer.
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Outbound bytes queued for a connection that has not completed `connect` (the challenge,
/// pongs, a refusal). A pre-auth peer that lets more pile up is closed as a slow consumer.
pub const PREAUTH_MAX_BUFFERED_BYTES: usize = 8 * 1024;
/// Requests of one connection that run at once; beyond this the gateway stops reading the
/// socket until one finishes (back-pressure).
pub const MAX_IN_FLIGHT: usize = 32;
/// Default `tick` interval advertised in `policy.tickIntervalMs`.
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Time from socket open to a completed `connect`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// Allowed clock skew of a device signature (`device.signedAt`).
pub const DEVICE_SIGNATURE_SKEW_MS: i64 = 120_000;

/// Close codes the server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Every `client.id` the official clients may send.
pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// Every `client.mode` the official clients may send.
pub const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// Modes that are one-shot helpers and never appear in presence.
pub fn is_ephemeral_mode(mode: &str) -> bool {
    matches!(mode, "cli" | "backend" | "probe")
}
