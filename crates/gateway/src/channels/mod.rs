//! The channel router: durable inbound processing (access control → session → agent → reply
//! through the outbox), the outbox sender, and the receivers' supervisors. Platform details
//! stay in `clawgate_channels`.

pub mod router;
pub mod telegram;

use crate::devices::now_ms;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Instant;

/// Health of one channel account, for `channels.status` and `clawgate doctor`.
#[derive(Debug, Clone, Default)]
pub struct ChannelStatus {
    pub running: bool,
    pub connected: bool,
    pub last_error: Option<String>,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    /// Last completed long poll (or webhook delivery).
    pub last_poll_at: Option<i64>,
    pub last_poll_instant: Option<Instant>,
    pub restarts: u64,
    pub stalls: u64,
    pub bot_username: Option<String>,
}

pub struct StatusCell(Mutex<ChannelStatus>);

impl Default for StatusCell {
    fn default() -> Self {
        StatusCell(Mutex::new(ChannelStatus::default()))
    }
}

impl StatusCell {
    pub fn update(&self, f: impl FnOnce(&mut ChannelStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn get(&self) -> ChannelStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn polled(&self) {
        self.update(|s| {
            s.last_poll_at = Some(now_ms());
            s.last_poll_instant = Some(Instant::now());
            s.connected = true;
        });
    }
}

/// The `channels.status` result.
pub async fn status_json(gw: &crate::state::Gateway) -> Value {
    let mut channels = serde_json::Map::new();
    let mut accounts = serde_json::Map::new();
    let mut order = Vec::new();
    let mut issues = Vec::new();
    if let Some(tg) = &gw.telegram {
        order.push("telegram");
        let s = tg.status.get();
        let ((pending, sent, failed), (in_pending, in_done, in_ignored)) = gw
            .chat
            .store
            .call(|s| Ok((s.outbox_counts("telegram")?, s.inbound_counts("telegram")?)))
            .await
            .unwrap_or(((0, 0, 0), (0, 0, 0)));
        let summary = json!({
            "configured": true, "running": s.running, "connected": s.connected,
            "mode": tg.mode_name(), "lastError": s.last_error,
        });
        channels.insert("telegram".into(), summary);
        accounts.insert(
            "telegram".into(),
            json!([{
                "accountId": "default", "enabled": true, "configured": true,
                "running": s.running, "connected": s.connected, "mode": tg.mode_name(),
                "bot": {"username": s.bot_username},
                "lastInboundAt": s.last_inbound_at, "lastOutboundAt": s.last_outbound_at,
                "lastPollAt": s.last_poll_at, "lastError": s.last_error,
                "restarts": s.restarts, "stalls": s.stalls,
                "inbound": {"pending": in_pending, "done": in_done, "ignored": in_ignored},
                "outbox": {"pending": pending, "sent": sent, "failed": failed},
            }]),
        );
        if s.stalls > 0 {
            issues.push(json!({"channel": "telegram", "accountId": "default", "kind": "stalled",
                "message": format!("the polling loop stalled {} time(s) and was restarted", s.stalls)}));
        }
        if !s.connected {
            if let Some(e) = &s.last_error {
                issues.push(json!({"channel": "telegram", "accountId": "default", "kind": "error", "message": e}));
            }
        }
    }
    json!({
        "ts": now_ms(), "channelOrder": order, "channelLabels": {"telegram": "Telegram"},
        "channelDetailLabels": {}, "channelSystemImages": {}, "channelMeta": [],
        "channels": channels, "channelAccounts": accounts,
        "channelDefaultAccountId": {"telegram": "default"}, "statusIssues": issues,
    })
}
