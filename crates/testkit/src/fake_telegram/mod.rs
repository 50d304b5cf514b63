//! A fake Telegram Bot API server on one loopback port, for end-to-end tests that run the
//! real gateway against it (`{api_root}/bot<TOKEN>/<method>`).
//!
//! It keeps one bot's state the way Telegram does: an update queue with monotonically
//! increasing `update_id`s served by `getUpdates` (offset confirmation, long polling,
//! 409 for a superseded poll or while a webhook is set) or pushed to a webhook by a
//! background worker (secret header, retry with backoff, `getWebhookInfo` errors); chats
//! with per-chat `message_id`s from 1000; `sendMessage` with HTML / MarkdownV2 entity
//! parsing and Telegram's error descriptions. Tests drive it through [`FakeTelegram`]'s
//! methods (inject updates, inspect sent messages and calls, queue [`Fault`]s).
//!
//! Parameters may come as JSON, `application/x-www-form-urlencoded` or
//! `multipart/form-data` bodies, or the query string; method names are case-insensitive.
//! Supported methods: getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo,
//! sendMessage, sendChatAction, editMessageText, deleteMessage, setMessageReaction,
//! setMyCommands, getMyCommands, deleteMyCommands, answerCallbackQuery; others → 404.

pub(crate) mod client;
mod entities;
mod markdown;
mod messages;
mod methods;
pub(crate) mod params;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use state::{chat_json, command_entities, lock, unix_now, user_json, Shared};

pub use server::MAX_BODY_BYTES;
pub use webhook::{post_update, INITIAL_BACKOFF, MAX_BACKOFF};

/// The token a default fake accepts.
pub const DEFAULT_TOKEN: &str = "123456:TEST-TOKEN";
/// The first `update_id` a default fake assigns.
pub const DEFAULT_FIRST_UPDATE_ID: i64 = 811_752_000;

/// How a fake bot is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTelegramConfig {
    /// The only token accepted; the bot id is its numeric prefix.
    pub token: String,
    pub username: String,
    pub first_name: String,
    pub first_update_id: i64,
    /// How long the webhook worker waits for one delivery.
    pub webhook_timeout: Duration,
}

impl Default for FakeTelegramConfig {
    fn default() -> Self {
        FakeTelegramConfig {
            token: DEFAULT_TOKEN.to_string(),
            username: "claw_test_bot".to_string(),
            first_name: "Claw".to_string(),
            first_update_id: DEFAULT_FIRST_UPDATE_ID,
            webhook_timeout: Duration::from_secs(10),
        }
    }
}

/// A message the bot sent (`sendMessage`) or edited (`editMessageText`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    /// The text as Telegram stores it: markup removed, entities decoded.
    pub text: String,
    pub parse_mode: Option<String>,
    pub message_thread_id: Option<i64>,
    /// Set only when the replied-to message exists.
    pub reply_to_message_id: Option<i64>,
    pub message_id: i64,
    pub at: Instant,
    /// The `text` parameter exactly as sent.
    pub raw_text: String,
    /// The parsed entities (a JSON array, empty without markup).
    pub entities: Value,
}

/// One API request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Lowercase method name (empty when the path is not `/bot<token>/<method>`).
    pub method: String,
    /// Query and body parameters merged; form values stay strings.
    pub params: Value,
    pub at: Instant,
    /// The HTTP status answered; 0 while pending, or when it hung or was reset.
    pub status: u16,
}

/// A one-shot failure for the next call of a method (see [`FakeTelegram::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 `Too Many Requests: retry after N`, `parameters.retry_after` and `Retry-After`.
    RetryAfter(u64),
    /// This status and description in the usual error envelope.
    Status(u16, String),
    /// This status (e.g. 502) with an nginx-style HTML body.
    HtmlError(u16),
    /// Holds the request this long, then answers normally.
    Stall(Duration),
    /// Holds the request this long, then answers 429 with this `retry_after` (seconds).
    StallThenRetryAfter(Duration, u64),
    /// Never answers; the connection stays open until the client gives up.
    Hang,
    /// Aborts the connection (TCP RST) without answering.
    ResetConnection,
}

/// The running fake server. It stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    /// Set by the blocking constructors: the runtime the server lives on.
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeTelegram {
    /// Binds `127.0.0.1:0` with the default config and serves on the current runtime.
    pub async fn start() -> FakeTelegram {
        FakeTelegram::start_with(FakeTelegramConfig::default()).await
    }

    pub async fn start_with(cfg: FakeTelegramConfig) -> FakeTelegram {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Telegram: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Telegram: local_addr");
        let shared = Arc::new(Shared::new(cfg));
        let server = tokio::spawn(server::accept_loop(listener, shared.clone()));
        let worker = tokio::spawn(webhook::delivery_worker(shared.clone()));
        FakeTelegram {
            addr,
            shared,
            tasks: vec![server.abort_handle(), worker.abort_handle()],
            runtime: None,
        }
    }

    /// For synchronous tests: serves from its own background runtime thread.
    /// Must not be called from inside an async context.
    pub fn start_blocking() -> FakeTelegram {
        FakeTelegram::start_blocking_with(FakeTelegramConfig::default())
    }

    pub fn start_blocking_with(cfg: FakeTelegramConfig) -> FakeTelegram {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-telegram")
            .enable_all()
            .build()
            .expect("fake Telegram: build runtime");
        let mut fake = rt.block_on(FakeTelegram::start_with(cfg));
        fake.runtime = Some(rt);
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (methods live under `/bot<token>/`).
    pub fn api_root(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.cfg.token
    }

    /// The numeric prefix of the token.
    pub fn bot_id(&self) -> i64 {
        self.shared.bot_id
    }

    pub fn username(&self) -> &str {
        &self.shared.cfg.username
    }

    /// Queues an update under the next `update_id` (written into it) and wakes pollers
    /// and the webhook worker. A `message` with a `chat.id` but no `message_id`/`date`
    /// gets them, and is remembered so the bot can reply to it.
    pub fn inject_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut st = lock(&self.shared.state);
            for key in [
                "message",
                "edited_message",
                "channel_post",
                "edited_channel_post",
            ] {
                let Some(chat) = update[key]["chat"]["id"].as_i64() else {
                    continue;
                };
                if update[key].get("message_id").is_none() {
                    update[key]["message_id"] = json!(st.alloc_message_id(chat));
                }
                if update[key].get("date").is_none() {
                    update[key]["date"] = json!(unix_now());
                }
            }
            st.push_update(update, false)
        };
        self.shared.changed.notify_waiters();
        id
    }

    /// Queues an update keeping its own `update_id` (e.g. one already delivered, to test
    /// redelivery). It is returned by the next `getUpdates` even if its id is below the
    /// offset, and confirmed by the offset only after that.
    pub fn inject_raw_update(&self, update: Value) {
        lock(&self.shared.state).push_update(update, true);
        self.shared.changed.notify_waiters();
    }

    /// A private-chat text message from `user_id` (chat id = user id). Text starting with
    /// `/` gets a `bot_command` entity. Returns the `update_id`.
    pub fn inject_private_text(&self, user_id: i64, text: &str) -> i64 {
        let msg = self.user_message(user_id, user_id, text, Value::Null, false);
        self.inject_update(json!({ "message": msg }))
    }

    /// A group text message. `entities` (a JSON array) is attached as given; `Null` means
    /// none (or a `bot_command` entity for `/` text). With `reply_to_bot` the message
    /// replies to the bot's last message in that chat (invented if it sent none).
    pub fn inject_group_text(
        &self,
        chat_id: i64,
        user_id: i64,
        text: &str,
        entities: Value,
        reply_to_bot: bool,
    ) -> i64 {
        let msg = self.user_message(chat_id, user_id, text, entities, reply_to_bot);
        self.inject_update(json!({ "message": msg }))
    }

    fn user_message(
        &self,
        chat_id: i64,
        user_id: i64,
        text: &str,
        entities: Value,
        reply_to_bot: bool,
    ) -> Value {
        let mut st = lock(&self.shared.state);
        let reply = reply_to_bot.then(|| {
            let bot_id = self.shared.bot_id;
            let last = st.chats.get(&chat_id).and_then(|c| {
                let mut msgs = c.messages.values().rev();
                msgs.find(|m| m["from"]["id"].as_i64() == Some(bot_id))
                    .cloned()
            });
            last.unwrap_or_else(|| {
                let earlier = json!({
                    "message_id": st.alloc_message_id(chat_id),
                    "from": self.shared.bot_user(),
                    "chat": chat_json(chat_id),
                    "date": unix_now(),
                    "text": "Earlier bot message",
                });
                st.store_message(&earlier);
                earlier
            })
        });
        let mut msg = json!({
            "message_id": st.alloc_message_id(chat_id),
            "from": user_json(user_id),
            "chat": chat_json(chat_id),
            "date": unix_now(),
            "text": text,
        });
        match entities {
            Value::Array(list) if !list.is_empty() => msg["entities"] = Value::Array(list),
            Value::Null => {
                if let Some(e) = command_entities(text) {
                    msg["entities"] = e;
                }
            }
            _ => {}
        }
        if let Some(r) = reply {
            msg["reply_to_message"] = r;
        }
        msg
    }

    /// Updates still queued (not yet confirmed or acknowledged).
    pub fn pending_update_count(&self) -> usize {
        lock(&self.shared.state).queue.len()
    }

    /// Successful `sendMessage` calls, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).sent.clone()
    }

    /// Waits until at least `n` messages were sent or `timeout` passes; returns all sent.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.sent_messages();
            if sent.len() >= n || Instant::now() >= deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Successful `editMessageText` calls, oldest first.
    pub fn edited_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).edits.clone()
    }

    /// `(chat_id, message_id)` of successful `deleteMessage` calls.
    pub fn deleted_messages(&self) -> Vec<(i64, i64)> {
        lock(&self.shared.state).deleted.clone()
    }

    /// `(chat_id, message_id, reaction array)` of successful `setMessageReaction` calls.
    pub fn reactions(&self) -> Vec<(i64, i64, Value)> {
        lock(&self.shared.state).reactions.clone()
    }

    /// `(chat_id, action, when)` of successful `sendChatAction` calls.
    pub fn chat_actions(&self) -> Vec<(i64, String, Instant)> {
        lock(&self.shared.state).actions.clone()
    }

    /// A stored message (the bot's or an injected one) as a `Message` object.
    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<Value> {
        lock(&self.shared.state)
            .message(chat_id, message_id)
            .cloned()
    }

    /// The commands last set with `setMyCommands`.
    pub fn my_commands(&self) -> Value {
        lock(&self.shared.state).commands.clone()
    }

    /// Every API request so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// Requests of this method (any case).
    pub fn call_count(&self, method: &str) -> usize {
        let method = method.to_ascii_lowercase();
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// Makes the next call of `method` (any case) fail with `fault`; faults queue up.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        lock(&self.shared.faults)
            .entry(method.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Sends to this chat answer 403 (blocked by the user / kicked from the group).
    pub fn set_blocked_chat(&self, chat_id: i64) {
        lock(&self.shared.state).blocked.insert(chat_id);
    }

    pub fn unblock_chat(&self, chat_id: i64) {
        lock(&self.shared.state).blocked.remove(&chat_id);
    }

    /// What `getWebhookInfo` would answer now.
    pub fn webhook_info(&self) -> Value {
        lock(&self.shared.state).webhook_info()
    }

    /// Pauses (`false`) or resumes (`true`) webhook delivery; updates keep queueing.
    pub fn set_webhook_delivery(&self, enabled: bool) {
        lock(&self.shared.state).delivery_paused = !enabled;
        self.shared.changed.notify_waiters();
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        for task in &self.tasks {
            task.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
