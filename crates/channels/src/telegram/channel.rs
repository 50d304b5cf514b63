//! Telegram as a running channel: the long-poll receiver, the webhook verifier and parser,
//! the sender, and the plugin entry of the registry.

use super::api::Api;
use super::config::{Parser, TelegramConfig, TelegramMode};
use super::parse::{parse_update, update_id, BotIdentity};
use crate::access::{LivePolicy, PolicySet};
use crate::plugin::{
    BoxFuture, Channel, ChannelPlugin, Egress, Host, OutChunk, Rejected, RestartNeeded, Webhook,
    WebhookEvent,
};
use crate::status::StatusCell;
use crate::{InboundMessage, SendError};
use clawgate_config::yaml::Node;
use clawgate_config::{ChannelConfigParser, ChannelEntry, ChannelSection, Ctx};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::info;

/// The registry entry.
pub struct Plugin;

impl ChannelConfigParser for Plugin {
    fn name(&self) -> &'static str {
        Parser.name()
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        Parser.parse_section(ctx, node)
    }
}

impl ChannelPlugin for Plugin {
    fn label(&self) -> &'static str {
        "Telegram"
    }

    fn detail_label(&self) -> &'static str {
        "Telegram Bot"
    }

    fn system_image(&self) -> Option<&'static str> {
        Some("paperplane")
    }

    fn doctor(&self, entry: &ChannelEntry, gateway_port: u16) -> Vec<crate::plugin::DoctorCheck> {
        entry
            .get::<TelegramConfig>()
            .map(|c| super::doctor::checks(c, gateway_port))
            .unwrap_or_default()
    }

    fn setup_hint(&self) -> String {
        "Set channels.telegram.botToken (or TELEGRAM_BOT_TOKEN) in config.yaml and restart the gateway.".into()
    }

    fn build(&self, entry: &ChannelEntry, host: Arc<dyn Host>) -> Result<Arc<dyn Channel>, String> {
        let cfg = entry
            .get::<TelegramConfig>()
            .ok_or("channels.telegram: unexpected section type")?;
        Ok(Arc::new(Telegram::new(cfg.clone(), host)?))
    }
}

pub struct Telegram {
    pub cfg: TelegramConfig,
    pub api: Api,
    bot: RwLock<BotIdentity>,
    status: StatusCell,
    host: Arc<dyn Host>,
    /// `dmPolicy`, `allowFrom`, `groups` as running (a reload replaces them).
    policy: LivePolicy,
}

fn policy_of(cfg: &TelegramConfig) -> PolicySet {
    PolicySet {
        dm_policy: cfg.dm_policy,
        allow_from: cfg.allow_from.clone(),
        groups: cfg.groups.clone(),
    }
}

const OFFSET_KEY: &str = "telegram:default:offset";

impl Telegram {
    pub fn new(cfg: TelegramConfig, host: Arc<dyn Host>) -> Result<Telegram, String> {
        let token = cfg
            .bot_token
            .clone()
            .ok_or("channels.telegram.botToken is not set")?;
        let api = Api::new(&cfg.api_root, token)?;
        Ok(Telegram {
            policy: LivePolicy::new(policy_of(&cfg)),
            cfg,
            api,
            bot: RwLock::new(BotIdentity::default()),
            status: StatusCell::default(),
            host,
        })
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

    /// One run of the long-poll loop; returns when it fails (the gateway restarts it).
    async fn poll_loop(self: Arc<Self>) -> String {
        if let Err(e) = self.identify().await {
            return e;
        }
        // A leftover webhook would make getUpdates fail with 409.
        if let Err(e) = self.api.delete_webhook().await {
            if e.code == 401 {
                return format!("deleteWebhook refused: {e}");
            }
        }
        self.status.polled();
        loop {
            let offset = self
                .host
                .get_state(OFFSET_KEY.into())
                .await
                .ok()
                .flatten()
                .and_then(|s| s.parse::<i64>().ok());
            match self
                .api
                .get_updates(offset, self.cfg.poll_timeout_secs)
                .await
            {
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
                        // Stored and the offset advanced in one transaction: nothing is
                        // confirmed to Telegram before it is on disk.
                        let stored = self
                            .host
                            .ingest(items, Some((OFFSET_KEY.into(), next.to_string())))
                            .await;
                        if let Err(e) = stored {
                            return format!("cannot store updates: {e}");
                        }
                    }
                    self.status.polled();
                }
                Err(e) if e.code == 409 => {
                    // Not receiving until a poll succeeds again (which clears the error).
                    self.status.update(|s| {
                        s.connected = false;
                        s.last_error = Some(format!(
                            "getUpdates conflict (another poller or a webhook): {e}"
                        ))
                    });
                    let _ = self.api.delete_webhook().await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) if e.code == 429 => {
                    tokio::time::sleep(Duration::from_secs(e.retry_after.unwrap_or(1))).await;
                }
                Err(e) => return format!("getUpdates failed: {e}"),
            }
        }
    }

    /// Webhook mode: learn the bot's identity and register the webhook when a public URL is set.
    async fn webhook_setup(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            match self.identify().await {
                Ok(()) => break,
                Err(e) => {
                    self.status.update(|s| s.last_error = Some(e));
                    tokio::time::sleep(clawgate_retry::Backoff::API.delay(failures)).await;
                    failures += 1;
                }
            }
        }
        if let (Some(url), Some(secret)) = (&self.cfg.webhook_url, &self.cfg.webhook_secret) {
            match self.api.set_webhook(url, secret.expose()).await {
                Ok(_) => info!(channel = "telegram", "webhook registered"),
                Err(e) => self
                    .status
                    .update(|s| s.last_error = Some(format!("setWebhook failed: {e}"))),
            }
        }
        self.status.update(|s| {
            s.running = true;
            s.connected = true;
        });
    }
}

impl Webhook for Telegram {
    fn path(&self) -> &str {
        &self.cfg.webhook_path
    }

    /// Telegram signs nothing and sends no timestamp: the secret header is the check (before
    /// the body is read) and `update_id` dedupe stands in for a replay window.
    fn verify_headers(&self, headers: &HeaderMap) -> Result<(), Rejected> {
        let secret = self
            .cfg
            .webhook_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or("");
        let presented = headers.get(super::SECRET_HEADER).map(|v| v.as_bytes());
        if secret.is_empty() || !super::verify_secret(secret, presented) {
            return Err(Rejected::new(
                "unauthorized",
                "missing or wrong X-Telegram-Bot-Api-Secret-Token",
            ));
        }
        Ok(())
    }

    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, Rejected> {
        let update: Value = serde_json::from_slice(body)
            .map_err(|_| Rejected::new("bad_json", "body is not a JSON update"))?;
        let id = update_id(&update)
            .ok_or_else(|| Rejected::new("bad_update", "update without update_id"))?;
        Ok(WebhookEvent::Store {
            key: id.to_string(),
            payload: update,
        })
    }
}

impl Egress for Telegram {
    fn chunk_limit(&self) -> usize {
        self.cfg.text_chunk_limit
    }

    fn send<'a>(&'a self, c: OutChunk<'a>) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            match self
                .api
                .send_message(c.chat_id, c.thread_id, c.reply_to, c.text)
                .await
            {
                Ok(m) => Ok(m["message_id"].as_i64().map(|i| i.to_string())),
                Err(e) => Err(e.classify()),
            }
        })
    }

    fn typing<'a>(&'a self, chat_id: &'a str, thread_id: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Best effort: a lost typing indicator is harmless.
            let _ = self.api.send_chat_action(chat_id, thread_id).await;
        })
    }

    /// `editMessageText`.
    fn edit<'a>(
        &'a self,
        chat_id: &'a str,
        message_id: &'a str,
        text: &'a str,
    ) -> Option<BoxFuture<'a, Result<(), SendError>>> {
        Some(Box::pin(async move {
            self.api
                .edit_message_text(chat_id, message_id, text)
                .await
                .map_err(|e| e.classify())
        }))
    }
}

impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn label(&self) -> &'static str {
        "Telegram"
    }

    fn mode(&self) -> &'static str {
        match self.cfg.mode {
            TelegramMode::Polling => "polling",
            TelegramMode::Webhook => "webhook",
        }
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }

    fn webhook(&self) -> Option<&dyn Webhook> {
        (self.cfg.mode == TelegramMode::Webhook).then_some(self as &dyn Webhook)
    }

    fn receiver(self: Arc<Self>) -> Option<BoxFuture<'static, String>> {
        (self.cfg.mode == TelegramMode::Polling).then(|| Box::pin(self.poll_loop()) as _)
    }

    fn stall_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.cfg.stall_timeout_secs))
    }

    fn setup(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        (self.cfg.mode == TelegramMode::Webhook).then(|| Box::pin(self.webhook_setup()) as _)
    }

    fn ready(&self) -> bool {
        self.identity().id != 0
    }

    fn parse(&self, raw: &Value) -> Option<InboundMessage> {
        parse_update(raw, "default", &self.identity())
    }

    fn policy(&self) -> Arc<PolicySet> {
        self.policy.get()
    }

    fn live_keys(&self) -> &'static [&'static str] {
        &["dmPolicy", "allowFrom", "groups"]
    }

    fn reconfigure(&self, entry: &ChannelEntry) -> Result<bool, RestartNeeded> {
        let cfg = entry.get::<TelegramConfig>().ok_or(RestartNeeded)?;
        Ok(self.policy.set(policy_of(cfg)))
    }

    fn id_line(&self, sender_id: &str) -> String {
        format!("Your Telegram user id: {sender_id}")
    }

    fn egress(&self) -> &dyn Egress {
        self
    }

    fn parse_target(&self, to: &str) -> Result<String, String> {
        let chat = to.trim().strip_prefix("telegram:").unwrap_or(to.trim());
        if chat.parse::<i64>().is_err() && !chat.starts_with('@') {
            return Err(format!("`{to}` is not a Telegram chat id"));
        }
        Ok(chat.to_string())
    }
}
