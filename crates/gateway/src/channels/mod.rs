//! The gateway side of the channel seam: the channels built from
//! `clawgate_channels::registry()`, the [`Host`] each one gets, the receivers' supervisor,
//! and `channels.status`. Nothing here names a platform; the router (durable inbound →
//! access → pairing or agent → outbox) is in [`router`].

pub mod router;

use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_channels::plugin::BoxFuture;
use clawgate_channels::{Channel, Host};
use clawgate_config::Config;
use clawgate_store::{NewInbound, StoreHandle};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::warn;

pub use clawgate_channels::{ChannelStatus, StatusCell};

/// What one channel gets from the gateway: durable, deduped storage of its events and its
/// own wake-ups.
pub struct ChannelHost {
    name: &'static str,
    store: StoreHandle,
    pub inbound_wake: Notify,
    pub outbox_wake: Notify,
}

impl Host for ChannelHost {
    fn ingest(
        &self,
        items: Vec<(String, Value)>,
        state: Option<(String, String)>,
    ) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let (channel, now) = (self.name, now_ms());
            let ids = self
                .store
                .call(move |s| {
                    let rows: Vec<NewInbound> = items
                        .iter()
                        .map(|(k, p)| NewInbound {
                            channel,
                            account: "default",
                            dedupe_key: k,
                            payload: p,
                            received_at: now,
                        })
                        .collect();
                    let st = state.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
                    s.insert_inbound_batch(&rows, st)
                })
                .await
                .map_err(|e| e.to_string())?;
            if !ids.is_empty() {
                self.inbound_wake.notify_one();
            }
            Ok(ids.len())
        })
    }

    fn get_state(&self, key: String) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            self.store
                .call(move |s| s.get_state(&key))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn set_state(&self, key: String, value: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.store
                .call(move |s| s.set_state(&key, &value))
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn delivery_status(
        &self,
        platform_message_id: String,
        status: String,
        error: Option<String>,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let channel = self.name;
            self.store
                .call(move |s| {
                    s.record_outbox_delivery(
                        channel,
                        &platform_message_id,
                        &status,
                        error.as_deref(),
                    )
                })
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// A running channel and its host.
#[derive(Clone)]
pub struct Running {
    pub ch: Arc<dyn Channel>,
    pub host: Arc<ChannelHost>,
}

/// Builds every enabled channel of the config, in registry order.
pub fn build(config: &Config, store: &StoreHandle) -> Result<Vec<Running>, String> {
    let mut out = Vec::new();
    for plugin in clawgate_channels::registry() {
        let Some(entry) = config.channel(plugin.name()) else {
            continue;
        };
        if !entry.section.enabled() {
            continue;
        }
        let host = Arc::new(ChannelHost {
            name: plugin.name(),
            store: store.clone(),
            inbound_wake: Notify::new(),
            outbox_wake: Notify::new(),
        });
        let ch = plugin.build(entry, host.clone())?;
        out.push(Running { ch, host });
    }
    Ok(out)
}

/// Starts every channel's tasks: inbound processing, the outbox sender, its receiver under a
/// supervisor, its start-up task.
pub fn spawn_all(gw: &Arc<Gateway>) {
    for rc in &gw.channels {
        tokio::spawn(router::inbound_loop(gw.clone(), rc.clone()));
        tokio::spawn(router::outbox_loop(gw.clone(), rc.clone()));
        if let Some(setup) = rc.ch.clone().setup() {
            tokio::spawn(setup);
        }
        if rc.ch.clone().receiver().is_some() {
            tokio::spawn(supervise(gw.clone(), rc.ch.clone()));
        }
    }
}

/// Runs a receiver under a supervisor: restarts it with backoff when it fails, and when it
/// stalls (no completed cycle for the channel's stall timeout) even though sending works.
async fn supervise(gw: Arc<Gateway>, ch: Arc<dyn Channel>) {
    let stall = ch.stall_timeout();
    let status = || ch.status();
    let mut failures: u32 = 0;
    loop {
        if gw.is_shutting_down() {
            return;
        }
        let Some(run) = ch.clone().receiver() else {
            return;
        };
        status().update(|s| {
            s.running = true;
            s.last_poll_instant = Some(std::time::Instant::now());
            s.last_start_at = Some(now_ms());
        });
        let mut task = tokio::spawn(run);
        let started = std::time::Instant::now();
        let reason = loop {
            tokio::select! {
                r = &mut task => break r.unwrap_or_else(|e| format!("receiver task ended: {e}")),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let last = status().get().last_poll_instant;
                    if let Some(stall) = stall.filter(|d| last.is_some_and(|t| t.elapsed() > *d)) {
                        task.abort();
                        status().update(|s| s.stalls += 1);
                        break format!("the {} loop stalled (no completed receive cycle for {}s); restarted", ch.mode(), stall.as_secs());
                    }
                }
            }
        };
        warn!(channel = ch.name(), "{reason}");
        status().update(|s| {
            s.connected = false;
            s.restarts += 1;
            s.last_error = Some(reason);
            s.last_stop_at = Some(now_ms());
        });
        // A receiver that ran fine for a while starts over with a short delay.
        if started.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        tokio::time::sleep(clawgate_retry::Backoff::RECONNECT.delay(failures)).await;
        failures += 1;
    }
}

/// The channel named `name`, when configured and enabled.
pub fn find<'a>(gw: &'a Gateway, name: &str) -> Option<&'a Running> {
    gw.channels.iter().find(|r| r.ch.name() == name)
}

/// `dmPolicy` as OpenClaw writes it.
fn dm_policy_name(p: clawgate_config::DmPolicy) -> &'static str {
    use clawgate_config::DmPolicy;
    match p {
        DmPolicy::Pairing => "pairing",
        DmPolicy::Allowlist => "allowlist",
        DmPolicy::Open => "open",
        DmPolicy::Disabled => "disabled",
    }
}

/// The `channels.status` result, for every running channel or only `only`.
pub async fn status_json(gw: &Gateway, only: Option<&str>) -> Value {
    let mut channels = serde_json::Map::new();
    let mut accounts = serde_json::Map::new();
    let mut labels = serde_json::Map::new();
    let mut detail_labels = serde_json::Map::new();
    let mut system_images = serde_json::Map::new();
    let mut meta = Vec::new();
    let mut default_accounts = serde_json::Map::new();
    let mut order = Vec::new();
    let mut issues = Vec::new();
    for rc in gw
        .channels
        .iter()
        .filter(|rc| only.is_none_or(|o| o == rc.ch.name()))
    {
        let ch = &rc.ch;
        let name = ch.name();
        order.push(name);
        labels.insert(name.into(), json!(ch.label()));
        // OpenClaw's UI catalog: label, detail label and icon per channel.
        let plugin = clawgate_channels::plugin(name);
        let detail = plugin.map_or(ch.label(), |p| p.detail_label());
        let image = plugin.and_then(|p| p.system_image());
        detail_labels.insert(name.into(), json!(detail));
        let mut m = json!({"id": name, "label": ch.label(), "detailLabel": detail});
        if let Some(img) = image {
            system_images.insert(name.into(), json!(img));
            m["systemImage"] = json!(img);
        }
        meta.push(m);
        default_accounts.insert(name.into(), json!("default"));
        let s = ch.status().get();
        let ((pending, sent, failed), (in_pending, in_done, in_ignored)) = gw
            .chat
            .store
            .call(move |s| Ok((s.outbox_counts(name)?, s.inbound_counts(name)?)))
            .await
            .unwrap_or(((0, 0, 0), (0, 0, 0)));
        let summary = json!({
            "configured": true, "running": s.running, "connected": s.connected,
            "lastStartAt": s.last_start_at, "lastStopAt": s.last_stop_at,
            "mode": ch.mode(), "lastError": s.last_error,
        });
        channels.insert(name.into(), summary);
        accounts.insert(
            name.into(),
            json!([{
                "accountId": "default", "enabled": true, "configured": true,
                "running": s.running, "connected": s.connected, "mode": ch.mode(),
                "dmPolicy": dm_policy_name(ch.policy().dm_policy),
                "bot": {"username": s.bot_username},
                "lastInboundAt": s.last_inbound_at, "lastOutboundAt": s.last_outbound_at,
                "lastPollAt": s.last_poll_at, "lastError": s.last_error,
                "restarts": s.restarts, "stalls": s.stalls,
                "lastStartAt": s.last_start_at, "lastStopAt": s.last_stop_at,
                "inbound": {"pending": in_pending, "done": in_done, "ignored": in_ignored},
                "outbox": {"pending": pending, "sent": sent, "failed": failed},
            }]),
        );
        if s.stalls > 0 {
            issues.push(json!({"channel": name, "accountId": "default", "kind": "runtime",
                "message": format!("the {} loop stalled {} time(s) and was restarted", ch.mode(), s.stalls)}));
        }
        if !s.connected {
            if let Some(e) = &s.last_error {
                issues.push(
                    json!({"channel": name, "accountId": "default", "kind": "runtime", "message": e}),
                );
            }
        }
    }
    json!({
        "ts": now_ms(), "channelOrder": order, "channelLabels": labels,
        "channelDetailLabels": detail_labels, "channelSystemImages": system_images,
        "channelMeta": meta,
        "channels": channels, "channelAccounts": accounts,
        "channelDefaultAccountId": default_accounts, "statusIssues": issues,
    })
}
