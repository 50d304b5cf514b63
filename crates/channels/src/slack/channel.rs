//! Slack as a running channel: HTTP Events API on the shared webhook gate (signature, 300 s
//! window, `url_verification`, one stored row per user message), outbound through
//! `chat.postMessage` with mrkdwn and threads, and the registry entry.

use super::api::SlackApi;
use super::config::{SlackConfig, SlackMode};
use super::events::{self, BotIdentity, EventsBody, ParseOptions};
use super::socket::{EndReason, EnvelopeKind, SocketEvent, SocketModeSession, SocketOptions};
use super::verify::{Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::access::{LivePolicy, PolicySet};
use crate::plugin::{
    BoxFuture, Channel, ChannelPlugin, Egress, Host, OutChunk, Rejected, ReplyRoute, RestartNeeded,
    Webhook, WebhookEvent,
};
use crate::status::StatusCell;
use crate::{InboundMessage, SendError};
use clawgate_config::yaml::Node;
use clawgate_config::{ChannelConfigParser, ChannelEntry, ChannelSection, Ctx, DmScope};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};

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

    fn detail_label(&self) -> &'static str {
        "Slack Bot"
    }

    fn system_image(&self) -> Option<&'static str> {
        Some("number")
    }

    fn doctor(&self, entry: &ChannelEntry, gateway_port: u16) -> Vec<crate::plugin::DoctorCheck> {
        entry
            .get::<SlackConfig>()
            .map(|c| super::doctor::checks(c, gateway_port))
            .unwrap_or_default()
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
    /// Built with the app token: `apps.connections.open` (Socket Mode only).
    app_api: Option<SlackApi>,
    verifier: Option<Verifier>,
    bot: RwLock<BotIdentity>,
    /// `dmPolicy`, `allowFrom`, `groupPolicy`, `channels` as running (a reload replaces them).
    policy: LivePolicy,
    status: StatusCell,
    host: Arc<dyn Host>,
}

fn policy_of(cfg: &SlackConfig) -> PolicySet {
    PolicySet {
        dm_policy: cfg.dm_policy,
        allow_from: cfg.effective_allow_from(),
        groups: cfg.access_groups(),
    }
}

impl Slack {
    pub fn new(cfg: SlackConfig, host: Arc<dyn Host>) -> Result<Slack, String> {
        let token = cfg
            .bot_token
            .clone()
            .ok_or("channels.slack.botToken is not set")?;
        let api = SlackApi::new(&cfg.api_root, token)?;
        let app_api = match (&cfg.mode, &cfg.app_token) {
            (SlackMode::Socket, Some(t)) => Some(SlackApi::new(&cfg.api_root, t.clone())?),
            (SlackMode::Socket, None) => return Err("channels.slack.appToken is not set".into()),
            _ => None,
        };
        let verifier = match &cfg.signing_secret {
            Some(s) => Some(
                Verifier::new(s.clone())
                    .map_err(|e| format!("channels.slack.signingSecret: {e}"))?,
            ),
            None => None,
        };
        Ok(Slack {
            policy: LivePolicy::new(policy_of(&cfg)),
            cfg,
            api,
            app_api,
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
                    tokio::time::sleep(clawgate_retry::Backoff::API.delay(failures)).await;
                    failures += 1;
                }
            }
        }
    }
}

/// The dedupe key of a stored event: `(team, channel, ts)` for message events, so Slack's
/// retries (same `event_id`) and the `message` + `app_mention` pair of one mention collapse
/// into one row; `None` for events the channel does not handle.
fn event_key(cb: &events::EventCallback) -> Option<String> {
    if cb.event_type != "message" && cb.event_type != "app_mention" {
        return None;
    }
    let e = &cb.event;
    Some(match (e["channel"].as_str(), e["ts"].as_str()) {
        (Some(c), Some(ts)) => events::dedupe_key(&cb.team_id, c, ts),
        _ => cb.event_id.clone(),
    })
}

impl Slack {
    /// A fresh single-use URL and a session on it.
    async fn open_session(&self) -> Result<SocketModeSession, String> {
        let app = self.app_api.as_ref().ok_or("no app token")?;
        let url = app.open_socket_connection().await.map_err(|e| {
            if e.is_auth() {
                format!("the app token was refused ({e}): check channels.slack.appToken")
            } else {
                format!("apps.connections.open failed: {e}")
            }
        })?;
        SocketModeSession::connect(&url, SocketOptions::default())
            .await
            .map_err(|e| e.to_string())
    }

    /// One Socket Mode run: envelopes are stored durably, then acked; `refresh_requested` /
    /// `warning` open the next connection before closing this one; `link_disabled` stops.
    async fn socket_loop(self: Arc<Self>) -> String {
        let mut session = match self.open_session().await {
            Ok(s) => s,
            Err(e) => return e,
        };
        self.status.polled();
        loop {
            match session.next_event().await {
                Some(SocketEvent::Envelope(env)) => {
                    if env.kind == EnvelopeKind::EventsApi {
                        if let Ok(EventsBody::EventCallback(cb)) = events::parse_value(&env.payload)
                        {
                            if let Some(key) = event_key(&cb) {
                                let stored = self
                                    .host
                                    .ingest(vec![(key, env.payload.clone())], None)
                                    .await;
                                if let Err(e) = stored {
                                    // Not acked: Slack redelivers it.
                                    return format!("cannot store an event: {e}");
                                }
                            }
                        }
                    }
                    if session.ack(&env.envelope_id).await.is_err() {
                        return "the Socket Mode connection ended while acking".into();
                    }
                    self.status.polled();
                }
                Some(SocketEvent::Disconnect(d)) if !d.reason.should_reconnect() => {
                    session.close().await;
                    self.status.update(|s| {
                        s.connected = false;
                        s.last_error = Some("Socket Mode was disabled for the app (link_disabled); enable it and restart the gateway".into());
                    });
                    return std::future::pending().await;
                }
                Some(SocketEvent::Disconnect(_)) => match self.open_session().await {
                    Ok(next) => std::mem::replace(&mut session, next).close().await,
                    Err(e) => return e,
                },
                Some(SocketEvent::Ended(EndReason::Dead)) => {
                    return "the Socket Mode connection stopped answering pings (half-open socket); reconnecting".into()
                }
                Some(SocketEvent::Ended(why)) => {
                    return format!("the Socket Mode connection ended: {why:?}")
                }
                None => return "the Socket Mode connection ended".into(),
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
                let Some(key) = event_key(&cb) else {
                    return Ok(WebhookEvent::Ignore);
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

    /// `chat.postMessage` in the chunk's thread (decided per `replyToMode` when the reply was
    /// queued, see [`Channel::reply_route`]). A fatal `ok:false` (`channel_not_found`,
    /// `not_in_channel`, `invalid_auth`, …) is shown in the status and not retried.
    fn send<'a>(&'a self, c: OutChunk<'a>) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let text = super::format::to_mrkdwn(c.text);
            let mut channel = c.chat_id.to_string();
            if super::config::is_user_id(&channel) {
                channel = self
                    .api
                    .open_conversation(&channel)
                    .await
                    .map_err(|e| self.failed("conversations.open", e))?;
            }
            match self.api.post_message(&channel, &text, c.thread_id).await {
                Ok(p) => Ok(Some(p.ts)),
                Err(e) => Err(self.failed("chat.postMessage", e)),
            }
        })
    }

    /// `chat.update` of one of the bot's messages (`message_id` is its `ts`).
    fn edit<'a>(
        &'a self,
        chat_id: &'a str,
        message_id: &'a str,
        text: &'a str,
    ) -> Option<BoxFuture<'a, Result<(), SendError>>> {
        Some(Box::pin(async move {
            let text = super::format::to_mrkdwn(text);
            let mut channel = chat_id.to_string();
            if super::config::is_user_id(&channel) {
                channel = self
                    .api
                    .open_conversation(&channel)
                    .await
                    .map_err(|e| self.failed("conversations.open", e))?;
            }
            // A wrong message id is the caller's error, not the channel's: only refused
            // credentials go into the status.
            self.api
                .update_message(&channel, message_id, &text)
                .await
                .map(|_| ())
                .map_err(|e| {
                    if e.is_auth() {
                        self.failed("chat.update", e)
                    } else {
                        e.classify()
                    }
                })
        }))
    }
}

impl Slack {
    /// Classifies a Web API failure for the outbox; a fatal one is also the channel's last
    /// error in `channels.status`.
    fn failed(&self, method: &str, e: super::api::ApiError) -> SendError {
        if e.is_fatal() {
            self.status
                .update(|s| s.last_error = Some(format!("{method}: {e}")));
        }
        e.classify()
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

    fn receiver(self: Arc<Self>) -> Option<BoxFuture<'static, String>> {
        (self.cfg.mode == SlackMode::Socket).then(|| Box::pin(self.socket_loop()) as _)
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

    fn policy(&self) -> Arc<PolicySet> {
        self.policy.get()
    }

    fn live_keys(&self) -> &'static [&'static str] {
        &["dmPolicy", "allowFrom", "groupPolicy", "channels"]
    }

    fn reconfigure(&self, entry: &ChannelEntry) -> Result<bool, RestartNeeded> {
        let cfg = entry.get::<SlackConfig>().ok_or(RestartNeeded)?;
        Ok(self.policy.set(policy_of(cfg)))
    }

    fn id_line(&self, sender_id: &str) -> String {
        format!("Your Slack user id: {sender_id}")
    }

    fn egress(&self) -> &dyn Egress {
        self
    }

    /// Channels `agent:main:slack:channel:<C>`, threads `…:thread:<thread_ts>`, group DMs
    /// `…:slack:group:<G>`, DMs by `dmScope` (see [`super::reply::session_key`]).
    fn session_key(&self, dm_scope: DmScope, msg: &InboundMessage) -> String {
        super::reply::session_key(dm_scope, msg, self.cfg.reply_to_mode)
    }

    /// A thread's messages are answered in it; otherwise per `replyToMode` (`first`: only
    /// the first chunk threads under the message).
    fn reply_route(&self, msg: &InboundMessage, chunk_index: usize) -> ReplyRoute {
        ReplyRoute {
            thread_id: super::reply::reply_thread_ts(self.cfg.reply_to_mode, msg, chunk_index),
            reply_to: None,
        }
    }

    fn parse_target(&self, to: &str) -> Result<String, String> {
        super::config::parse_target(to)
    }
}
