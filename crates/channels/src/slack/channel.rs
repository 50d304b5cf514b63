//! Slack as a running channel: HTTP Events API on the shared webhook gate (signature, 300 s
//! window, `url_verification`, one stored row per user message), outbound through
//! `chat.postMessage` with mrkdwn and threads, and the registry entry.

use super::api::SlackApi;
use super::config::{ReplyToMode, SlackConfig, SlackMode};
use super::events::{self, BotIdentity, EventsBody, ParseOptions};
use super::verify::{Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::access::Policy;
use crate::plugin::{
    BoxFuture, Channel, ChannelPlugin, Egress, Host, OutChunk, Rejected, Webhook, WebhookEvent,
};
use crate::status::StatusCell;
use crate::{InboundMessage, SendError};
use clawgate_config::yaml::Node;
use clawgate_config::{ChannelConfigParser, ChannelEntry, ChannelSection, Ctx, GroupConfig};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct Plugin;

impl ChannelConfigParser for Plugin {
    fn name(&self) -> &'static str {
        super::section::Parser.name()
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        super::section::Parser.parse_section(ctx, node)
    }
}

impl ChannelPlugin for Plugin {
    fn label(&self) -> &'static str {
        "Slack"
    }

    fn setup_hint(&self) -> String {
        "Set channels.slack.botToken (and appToken for socket mode, or mode: http with signingSecret) in config.yaml and restart the gateway.".into()
    }

    fn build(&self, entry: &ChannelEntry, host: Arc<dyn Host>) -> Result<Arc<dyn Channel>, String> {
        let cfg = entry
            .get::<SlackConfig>()
            .ok_or("channels.slack: unexpected section type")?;
        Ok(Arc::new(Slack::new(cfg.clone(), host)?))
    }
}

pub struct Slack {
    pub cfg: SlackConfig,
    api: SlackApi,
    verifier: Option<Verifier>,
    bot: RwLock<BotIdentity>,
    allow_from: Vec<String>,
    groups: Vec<(String, GroupConfig)>,
    status: StatusCell,
    #[allow(dead_code)]
    host: Arc<dyn Host>,
}

impl Slack {
    pub fn new(cfg: SlackConfig, host: Arc<dyn Host>) -> Result<Slack, String> {
        if cfg.mode == SlackMode::Socket {
            return Err(
                "channels.slack.mode: socket mode is not available yet in clawgate; use mode: http (the Events API)"
                    .into(),
            );
        }
        let token = cfg
            .bot_token
            .clone()
            .ok_or("channels.slack.botToken is not set")?;
        let api = SlackApi::new(&cfg.api_root, token)?;
        let verifier = match &cfg.signing_secret {
            Some(s) => Some(
                Verifier::new(s.clone())
                    .map_err(|e| format!("channels.slack.signingSecret: {e}"))?,
            ),
            None => None,
        };
        Ok(Slack {
            allow_from: cfg.effective_allow_from(),
            groups: cfg.access_groups(),
            cfg,
            api,
            verifier,
            bot: RwLock::new(BotIdentity::default()),
            status: StatusCell::default(),
            host,
        })
    }

    fn identity(&self) -> BotIdentity {
        self.bot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `auth.test` until it answers: the bot's user id and bot id, for self-filtering and
    /// mentions. A refused token is shown in the status and retried with backoff.
    async fn identify(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            match self.api.auth_test().await {
                Ok(info) => {
                    let me = info.identity();
                    self.status.update(|s| {
                        s.bot_username = Some(info.user.clone());
                        s.running = true;
                        s.connected = true;
                        s.last_error = None;
                    });
                    *self.bot.write().unwrap_or_else(|p| p.into_inner()) = me;
                    return;
                }
                Err(e) => {
                    let msg = if e.is_auth() {
                        format!("the bot token was refused ({e}): check channels.slack.botToken")
                    } else {
                        format!("auth.test failed: {e}")
                    };
                    self.status.update(|s| s.last_error = Some(msg));
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(
                        (500u64 << failures.min(6)).min(30_000),
                    ))
                    .await;
                }
            }
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(|v| v.as_bytes())
}

impl Webhook for Slack {
    fn path(&self) -> &str {
        &self.cfg.webhook_path
    }

    /// `X-Slack-Signature` v0 over `v0:TIMESTAMP:BODY`, constant time; timestamps more than
    /// 300 s away are refused (the replay window).
    fn verify_body(&self, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), Rejected> {
        let Some(v) = &self.verifier else {
            return Err(Rejected::new(
                "unauthorized",
                "no signing secret configured",
            ));
        };
        v.verify(
            header(headers, TIMESTAMP_HEADER),
            header(headers, SIGNATURE_HEADER),
            body,
            now_secs,
        )
        .map_err(|e| Rejected::new("unauthorized", format!("slack signature: {e}")))
    }

    /// One stored row per user message: the key is `(team, channel, ts)` for message events,
    /// so Slack's retries (same `event_id`) and the `message` + `app_mention` pair of one
    /// mention both collapse into one; other events dedupe on `event_id`.
    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, Rejected> {
        let parsed =
            events::parse_body(body).map_err(|e| Rejected::new("bad_event", e.to_string()))?;
        match parsed {
            EventsBody::UrlVerification { challenge } => {
                Ok(WebhookEvent::Respond(json!({ "challenge": challenge })))
            }
            EventsBody::EventCallback(cb) => {
                if cb.event_type != "message" && cb.event_type != "app_mention" {
                    return Ok(WebhookEvent::Ignore);
                }
                let e = &cb.event;
                let key = match (e["channel"].as_str(), e["ts"].as_str()) {
                    (Some(c), Some(ts)) => events::dedupe_key(&cb.team_id, c, ts),
                    _ => cb.event_id.clone(),
                };
                let payload: Value = serde_json::from_slice(body)
                    .map_err(|_| Rejected::new("bad_json", "body is not JSON"))?;
                Ok(WebhookEvent::Store { key, payload })
            }
            EventsBody::Other { .. } => Ok(WebhookEvent::Ignore),
        }
    }
}

impl Egress for Slack {
    fn chunk_limit(&self) -> usize {
        self.cfg.text_chunk_limit
    }

    fn send<'a>(&'a self, c: OutChunk<'a>) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let thread = c.thread_id.or(match self.cfg.reply_to_mode {
                ReplyToMode::Off => None,
                _ => c.reply_to,
            });
            let text = super::format::to_mrkdwn(c.text);
            let mut channel = c.chat_id.to_string();
            if super::config::is_user_id(&channel) {
                channel = self
                    .api
                    .open_conversation(&channel)
                    .await
                    .map_err(|e| e.classify())?;
            }
            match self.api.post_message(&channel, &text, thread).await {
                Ok(p) => Ok(Some(p.ts)),
                Err(e) => {
                    if e.is_fatal() {
                        self.status
                            .update(|s| s.last_error = Some(format!("chat.postMessage: {e}")));
                    }
                    Err(e.classify())
                }
            }
        })
    }
}

impl Channel for Slack {
    fn name(&self) -> &'static str {
        events::CHANNEL
    }

    fn label(&self) -> &'static str {
        "Slack"
    }

    fn mode(&self) -> &'static str {
        match self.cfg.mode {
            SlackMode::Socket => "socket",
            SlackMode::Http => "http",
        }
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }

    fn webhook(&self) -> Option<&dyn Webhook> {
        (self.cfg.mode == SlackMode::Http).then_some(self as &dyn Webhook)
    }

    fn setup(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(self.identify()))
    }

    fn ready(&self) -> bool {
        !self.identity().user_id.is_empty()
    }

    fn parse(&self, raw: &Value) -> Option<InboundMessage> {
        let EventsBody::EventCallback(cb) = events::parse_value(raw).ok()? else {
            return None;
        };
        let opts = ParseOptions {
            account: "default".into(),
            allow_bots: self.cfg.allow_bots,
        };
        events::to_inbound(&cb, &self.identity(), &opts)
            .ok()
            .map(|s| s.msg)
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            dm_policy: self.cfg.dm_policy,
            allow_from: &self.allow_from,
            groups: &self.groups,
        }
    }

    fn id_line(&self, sender_id: &str) -> String {
        format!("Your Slack user id: {sender_id}")
    }

    fn egress(&self) -> &dyn Egress {
        self
    }

    fn parse_target(&self, to: &str) -> Result<String, String> {
        let t = to.trim();
        let t = t.strip_prefix("slack:").unwrap_or(t);
        let t = t
            .strip_prefix("channel:")
            .or_else(|| t.strip_prefix("user:"))
            .unwrap_or(t);
        if super::config::is_conversation_id(t) || super::config::is_user_id(t) {
            Ok(t.to_string())
        } else {
            Err(format!(
                "`{to}` is not a Slack channel (C…/G…/D…) or user (U…) id"
            ))
        }
    }
}
