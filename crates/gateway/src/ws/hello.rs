//! The `hello-ok` payload and the presence entry of a connected client.

use super::Session;
use crate::auth::Peer;
use crate::devices::now_ms;
use crate::methods;
use crate::state::{Gateway, VERSION};
use clawgate_protocol::{scopes, MAX_PAYLOAD, PROTOCOL_VERSION};
use serde_json::{json, Value};

/// Events this gateway may emit.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "presence",
    "health",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "chat",
    "agent",
    "session.message",
    "sessions.changed",
];

/// Server capabilities advertised in `hello-ok.features.capabilities`: only contracts this
/// gateway implements. `published-model-catalog`: `models.list` is the published catalog
/// (the configured providers' models, each with a reliable `available`), which
/// `openclaw models list` requires.
pub const CAPABILITIES: &[&str] = &["published-model-catalog"];

pub fn hello_ok(gw: &Gateway, s: &Session, _peer: &Peer) -> Value {
    let mut auth = json!({
        "method": s.grant.method,
        "role": s.grant.role,
        "scopes": s.grant.scopes,
    });
    if let Some((token, issued)) = &s.grant.device_token {
        auth["deviceToken"] = json!(token);
        auth["issuedAtMs"] = json!(issued);
    }
    let mut snapshot = json!({
        "suspension": {"phase": "accepting"},
        "presence": gw.presence_list(),
        "health": gw.health_snapshot(),
        "stateVersion": gw.state_version(),
        "uptimeMs": gw.uptime_ms(),
        "sessionDefaults": {
            "defaultAgentId": "main", "modelConfigured": gw.chat.default_model().is_some(), "ownership": "sole",
            "selectionRequired": false, "mainKey": "main", "mainSessionKey": "agent:main:main",
            "scope": "per-sender",
        },
        "authMode": gw.auth.mode.as_str(),
    });
    if scopes::satisfies(&s.grant.scopes, scopes::ADMIN) {
        snapshot["configPath"] = json!(gw.config.path.display().to_string());
        snapshot["stateDir"] = json!(gw.home.display().to_string());
    }
    json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {
            "version": VERSION,
            "buildId": format!("clawgate-{VERSION}"),
            "bootId": gw.boot_id,
            "connId": s.conn_uuid,
            // The Control UI is the user's own build (gateway.controlUi.root): without this
            // it compares its build id with ours and asks for a refresh forever.
            "controlUiBuildSource": "configured",
        },
        "features": {"methods": methods::names(), "events": EVENTS, "capabilities": CAPABILITIES},
        "snapshot": snapshot,
        "auth": auth,
        "policy": {
            "maxPayload": MAX_PAYLOAD,
            "maxBufferedBytes": gw.timings.max_buffered_bytes,
            "tickIntervalMs": gw.timings.tick_interval_ms,
        },
    })
}

pub fn presence_entry(s: &Session, peer: &Peer) -> Value {
    let c = &s.params.client;
    let now = now_ms();
    json!({
        "clientId": c.id, "mode": c.mode,
        "host": c.display_name.clone().unwrap_or_else(|| c.id.clone()),
        "ip": peer.client_ip.to_string(),
        "version": c.version, "platform": c.platform, "deviceFamily": c.device_family,
        "deviceId": s.grant.device_id, "instanceId": c.instance_id,
        "roles": [s.grant.role], "scopes": s.grant.scopes, "reason": "connect",
        "text": format!("Node: {} · mode {}", c.display_name.as_deref().unwrap_or("unknown"), c.mode),
        "onlineSince": now, "ts": now,
    })
}
