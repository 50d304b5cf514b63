//! The clawgate gateway: HTTP and the OpenClaw WebSocket protocol on one port.

pub mod auth;
pub mod channels;
pub mod chat;
pub mod connlimit;
pub mod conns;
pub mod devices;
pub mod exposure;
pub mod http;
pub mod keys;
pub mod logging;
pub mod methods;
pub mod preauth;
pub mod ratelimit;
pub mod reload;
pub mod sdnotify;
pub mod server;
pub mod state;
pub mod ui;
pub mod ws;

pub use server::{run, RunOptions, StartError};

/// Exit code for configuration problems (`EX_CONFIG`), as OpenClaw uses too.
pub const EXIT_CONFIG: i32 = 78;
