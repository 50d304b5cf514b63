//! Telegram in the gateway: the polling receiver under a supervisor with a liveness
//! watchdog, the webhook route, and the [`Port`] the router uses.

use super::router::{inbound_loop, outbox_loop, Port, PortFuture};
use super::StatusCell;
use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_channels::access::Policy;
use clawgate_channels::telegram::api::Api;
use clawgate_channels::telegram::parse::{parse_update, update_id, BotIdentity};
use clawgate_channels::{InboundMessage, SendError};
use clawgate_config::{TelegramConfig, TelegramMode};
use clawgate_store::{NewInbound, OutboxRow};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn};

pub struct TelegramRuntime {
    pub cfg: TelegramConfig,
    pub api: Api,
    bot: RwLock<BotIdentity>,
    pub status: StatusCell,
    inbound_wake: Notify,
    outbox_wake: Notify,
}

const OFFSET_KEY: &str = "telegram:default:offset";

impl TelegramRuntime {
    pub fn new(cfg: TelegramConfig) -> Result<TelegramRuntime, String> {
        let token = cfg
            .bot_token
            .clone()
            .ok_or("channels.telegram.botToken is not set")?;
        let api = Api::new(&cfg.api_root, token)?;
        Ok(TelegramRuntime {
            cfg,
            api,
            bot: RwLock::new(BotIdentity::default()),
            status: StatusCell::default(),
            inbound_wake: Notify::new(),
            outbox_wake: Notify::new(),
        })
    }

    pub fn mode_name(&self) -> &'static str {
        match self.cfg.mode {
            TelegramMode::Polling => "polling",
            TelegramMode::Webhook => "webhook",
        }
    }

    fn identity(&self) -> BotIdentity {
        self.bot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `getMe`: the bot's id and username, needed to recognise mentions.
    async fn identify(&self) -> Result<(), String> {
        let me = self.api.get_me().await.map_err(|e| {
            if e.code == 401 {
                "the bot token was refused (401 Unauthorized): check channels.telegram.botToken"
                    .to_string()
            } else {
                format!("getMe failed: {e}")
            }
        })?;
        let id = me["id"].as_i64().unwrap_or(0);
        let username = me["username"].as_str().unwrap_or("").to_string();
        self.status
            .update(|s| s.bot_username = Some(username.clone()));
        *self.bot.write().unwrap_or_else(|p| p.into_inner()) = BotIdentity { id, username };
        Ok(())
    }

    /// Stores a webhook update (dedupe on `update_id`) before it is acknowledged.
    /// `Ok(true)` when new, `Ok(false)` for a redelivery.
    pub async fn ingest(&self, gw: &Gateway, update: &Value) -> Result<bool, String> {
        let id = update_id(update).ok_or("update without update_id")?;
        let key = id.to_string();
        let (payload, now) = (update.clone(), now_ms());
        let stored = gw
            .chat
            .store
            .call(move |s| {
                s.insert_inbound(&NewInbound {
                    channel: "telegram",
                    account: "default",
                    dedupe_key: &key,
                    payload: &payload,
                    received_at: now,
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        self.status.polled();
        if stored.is_some() {
            self.inbound_wake.notify_one();
        }
        Ok(stored.is_some())
    }
}

impl Port for TelegramRuntime {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn parse(&self, raw: &Value) -> Option<InboundMessage> {
        parse_update(raw, "default", &self.identity())
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            dm_policy: self.cfg.dm_policy,
            allow_from: &self.cfg.allow_from,
            groups: &self.cfg.groups,
        }
    }

    fn id_line(&self, sender_id: &str) -> String {
        format!("Your Telegram user id: {sender_id}")
    }

    fn chunk_limit(&self) -> usize {
        self.cfg.text_chunk_limit
    }

    fn typing<'a>(&'a self, chat_id: &'a str, thread_id: Option<&'a str>) -> PortFuture<'a, ()> {
        Box::pin(async move {
            // Best effort: a lost typing indicator is harmless.
            let _ = self.api.send_chat_action(chat_id, thread_id).await;
        })
    }

    fn send<'a>(&'a self, row: &'a OutboxRow) -> PortFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            match self
                .api
                .send_message(
                    &row.chat_id,
                    row.thread_id.as_deref(),
                    row.reply_to.as_deref(),
                    &row.text,
                )
                .await
            {
                Ok(m) => Ok(m["message_id"].as_i64().map(|i| i.to_string())),
                Err(e) => Err(e.classify()),
            }
        })
    }

    fn ready(&self) -> bool {
        self.identity().id != 0
    }

    fn inbound_wake(&self) -> &Notify {
        &self.inbound_wake
    }

    fn outbox_wake(&self) -> &Notify {
        &self.outbox_wake
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }
}

/// One run of the long-poll loop; returns when it fails (the supervisor restarts it).
async fn poll_loop(gw: Arc<Gateway>, tg: Arc<TelegramRuntime>) -> String {
    if let Err(e) = tg.identify().await {
        return e;
    }
    // A leftover webhook would make getUpdates fail with 409.
    if let Err(e) = tg.api.delete_webhook().await {
        if e.code == 401 {
            return format!("deleteWebhook refused: {e}");
        }
    }
    tg.status.polled();
    loop {
        let offset = gw
            .chat
            .store
            .call(|s| s.get_state(OFFSET_KEY))
            .await
            .ok()
            .flatten()
            .and_then(|s| s.parse::<i64>().ok());
        match tg.api.get_updates(offset, tg.cfg.poll_timeout_secs).await {
            Ok(updates) => {
                let items: Vec<(String, Value)> = updates
                    .into_iter()
                    .filter_map(|u| update_id(&u).map(|id| (id.to_string(), u)))
                    .collect();
                let next = items
                    .iter()
                    .filter_map(|(k, _)| k.parse::<i64>().ok())
                    .max()
                    .map(|m| m + 1);
                if let Some(next) = next {
                    let now = now_ms();
                    let next_s = next.to_string();
                    // Stored and the offset advanced in one transaction: nothing is confirmed
                    // to Telegram before it is on disk.
                    let stored = gw
                        .chat
                        .store
                        .call(move |s| {
                            let rows: Vec<NewInbound> = items
                                .iter()
                                .map(|(k, u)| NewInbound {
                                    channel: "telegram",
                                    account: "default",
                                    dedupe_key: k,
                                    payload: u,
                                    received_at: now,
                                })
                                .collect();
                            s.insert_inbound_batch(&rows, Some((OFFSET_KEY, &next_s)))
                        })
                        .await;
                    if let Err(e) = stored {
                        return format!("cannot store updates: {e}");
                    }
                    tg.inbound_wake.notify_one();
                }
                tg.status.polled();
            }
            Err(e) if e.code == 409 => {
                tg.status.update(|s| {
                    s.last_error = Some(format!(
                        "getUpdates conflict (another poller or a webhook): {e}"
                    ))
                });
                let _ = tg.api.delete_webhook().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) if e.code == 429 => {
                tokio::time::sleep(Duration::from_secs(e.retry_after.unwrap_or(1))).await;
            }
            Err(e) => return format!("getUpdates failed: {e}"),
        }
    }
}

/// Runs the receiver under a supervisor: restarts it with backoff when it fails, and when it
/// stalls (no completed `getUpdates` for `stallTimeoutSeconds`) even though sending works.
async fn supervise(gw: Arc<Gateway>, tg: Arc<TelegramRuntime>) {
    let stall = Duration::from_secs(tg.cfg.stall_timeout_secs);
    let mut failures: u32 = 0;
    loop {
        if gw.is_shutting_down() {
            return;
        }
        tg.status.update(|s| {
            s.running = true;
            s.last_poll_instant = Some(std::time::Instant::now());
        });
        let mut task = tokio::spawn(poll_loop(gw.clone(), tg.clone()));
        let started = std::time::Instant::now();
        let reason = loop {
            tokio::select! {
                r = &mut task => break r.unwrap_or_else(|e| format!("poll task ended: {e}")),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let last = tg.status.get().last_poll_instant;
                    if last.is_some_and(|t| t.elapsed() > stall) {
                        task.abort();
                        tg.status.update(|s| s.stalls += 1);
                        break format!("the polling loop stalled (no completed getUpdates for {}s); restarted", stall.as_secs());
                    }
                }
            }
        };
        warn!(channel = "telegram", "{reason}");
        tg.status.update(|s| {
            s.connected = false;
            s.restarts += 1;
            s.last_error = Some(reason);
        });
        // A receiver that ran fine for a while starts over with a short delay.
        if started.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        failures += 1;
        let delay = Duration::from_millis((500u64 << failures.min(6)).min(30_000));
        tokio::time::sleep(delay).await;
    }
}

/// Webhook mode: learn the bot's identity and register the webhook when a public URL is set.
async fn webhook_setup(tg: Arc<TelegramRuntime>) {
    let mut failures = 0u32;
    loop {
        match tg.identify().await {
            Ok(()) => break,
            Err(e) => {
                tg.status.update(|s| s.last_error = Some(e));
                failures += 1;
                tokio::time::sleep(Duration::from_millis(
                    (500u64 << failures.min(6)).min(30_000),
                ))
                .await;
            }
        }
    }
    if let (Some(url), Some(secret)) = (&tg.cfg.webhook_url, &tg.cfg.webhook_secret) {
        match tg.api.set_webhook(url, secret.expose()).await {
            Ok(_) => info!(channel = "telegram", "webhook registered"),
            Err(e) => tg
                .status
                .update(|s| s.last_error = Some(format!("setWebhook failed: {e}"))),
        }
    }
    tg.status.update(|s| {
        s.running = true;
        s.connected = true;
    });
}

/// Starts every Telegram task.
pub fn spawn(gw: &Arc<Gateway>, tg: Arc<TelegramRuntime>) {
    let port: Arc<dyn Port> = tg.clone();
    tokio::spawn(inbound_loop(gw.clone(), port.clone()));
    tokio::spawn(outbox_loop(gw.clone(), port));
    match tg.cfg.mode {
        TelegramMode::Polling => {
            tokio::spawn(supervise(gw.clone(), tg));
        }
        TelegramMode::Webhook => {
            tokio::spawn(webhook_setup(tg));
        }
    }
}
