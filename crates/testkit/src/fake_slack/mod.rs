//! A fake Slack on one loopback port, for end-to-end tests that run the real gateway
//! against it. It plays all three sides of Slack an app meets:
//!
//! - the **Web API** at `{api_root}/<method>` (`api_root` = `http://127.0.0.1:PORT/api`):
//!   `auth.test`, `chat.postMessage`, `chat.update`, `conversations.open`,
//!   `conversations.info`, `conversations.replies`, `users.info`, `reactions.add`,
//!   `reactions.remove`, `apps.connections.open`; JSON, form and query
//!   parameters; `Authorization: Bearer` (or a `token` form field) with `not_authed`,
//!   `invalid_auth`, `not_allowed_token_type`; HTTP 200 `{"ok":false,"error":…}` for
//!   app errors; injectable [`Fault`]s (429 + `Retry-After`, error codes, 5xx, hangs, resets);
//! - the **Events API sender** that POSTs signed `event_callback` envelopes to the app's
//!   Request URL, performs `url_verification`, and retries failed deliveries with
//!   `X-Slack-Retry-Num` / `X-Slack-Retry-Reason` (delays configurable);
//! - the **Socket Mode server** at `ws://127.0.0.1:PORT/link/?ticket=…` with single-use
//!   tickets from `apps.connections.open`, `hello`, `events_api` envelopes redelivered
//!   with `retry_attempt + 1` when not acked in time, `disconnect` on demand, and
//!   half-open / reset connections.
//!
//! Events go to the Request URL when one is set ([`FakeSlack::set_request_url`] or
//! [`FakeSlack::verify_url`]), else over Socket Mode (queued until a connection is open).

mod api;
mod events;
mod server;
mod socket;
mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use state::{is_id, lock, Shared};

pub use events::{form_body, sign, Tamper};

/// Default credentials and identities of a fake workspace.
pub const DEFAULT_BOT_TOKEN: &str = "xoxb-1111111111-2222222222222-FakeBotTokenValue";
pub const DEFAULT_APP_TOKEN: &str = "xapp-1-A0001-3333333333-FakeAppTokenValue";
pub const DEFAULT_SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// How a fake workspace is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSlackConfig {
    /// The bot token (`xoxb-…`) accepted by the Web API methods.
    pub bot_token: String,
    /// The app-level token (`xapp-…`) accepted by `apps.connections.open` only.
    pub app_token: String,
    /// Signs every Events API request.
    pub signing_secret: String,
    /// The deprecated verification token carried in event bodies.
    pub verification_token: String,
    pub team_id: String,
    pub team_name: String,
    pub team_domain: String,
    pub app_id: String,
    /// The bot's user id (`auth.test` `user_id`, `<@…>` mentions).
    pub bot_user_id: String,
    pub bot_id: String,
    pub bot_name: String,
    /// `msg_too_long` above this many characters of `text` (Slack documents 40,000).
    pub max_text_chars: usize,
    /// Unknown well-formed channel ids get `channel_not_found` instead of being accepted.
    pub strict_channels: bool,
    /// After each `chat.postMessage` / `chat.update`, deliver the post back as a `message`
    /// event (with `bot_id`) / a `message_changed` event, as Slack does when the app
    /// subscribes to the conversation's messages.
    pub echo_bot_messages: bool,
    /// Where Events API requests go (None: events use Socket Mode).
    pub request_url: Option<String>,
    /// Slack gives up on an Events API request after 3 s.
    pub event_timeout: Duration,
    /// Delays before retries 1, 2, 3 (Slack: nearly immediately, ~1 min, ~5 min).
    pub event_retry_delays: Vec<Duration>,
    /// An envelope not acked within this time is redelivered (Slack: 3 s).
    pub socket_ack_timeout: Duration,
    /// Redeliveries of one envelope before the fake gives up.
    pub socket_max_retries: u32,
    /// After a `refresh_requested` / `warning` disconnect, the socket is closed this much later.
    pub disconnect_close_after: Duration,
    /// When set, the server sends a WebSocket ping this often on every connection (Slack's
    /// servers ping their Socket Mode clients; the exact interval is not documented).
    pub server_ping_interval: Option<Duration>,
    /// Emulated `chat.postMessage` rate limit: one post per channel per interval.
    pub post_message_interval: Option<Duration>,
}

impl Default for FakeSlackConfig {
    fn default() -> Self {
        FakeSlackConfig {
            bot_token: DEFAULT_BOT_TOKEN.to_string(),
            app_token: DEFAULT_APP_TOKEN.to_string(),
            signing_secret: DEFAULT_SIGNING_SECRET.to_string(),
            verification_token: "Jhj5dZrVaK7ZwHHjRyZWjbDl".to_string(),
            team_id: "T0001".to_string(),
            team_name: "Claw Test Workspace".to_string(),
            team_domain: "clawtest".to_string(),
            app_id: "A0001".to_string(),
            bot_user_id: "U0BOT".to_string(),
            bot_id: "B0BOT".to_string(),
            bot_name: "clawbot".to_string(),
            max_text_chars: 40_000,
            strict_channels: false,
            echo_bot_messages: false,
            request_url: None,
            event_timeout: Duration::from_secs(3),
            event_retry_delays: vec![
                Duration::ZERO,
                Duration::from_secs(60),
                Duration::from_secs(300),
            ],
            socket_ack_timeout: Duration::from_secs(3),
            socket_max_retries: 3,
            disconnect_close_after: Duration::from_secs(10),
            server_ping_interval: Some(Duration::from_secs(10)),
            post_message_interval: None,
        }
    }
}

impl FakeSlackConfig {
    /// Test-friendly timings: event retries after 50/100/150 ms, 500 ms ack timeouts.
    pub fn fast() -> FakeSlackConfig {
        FakeSlackConfig {
            event_timeout: Duration::from_millis(500),
            event_retry_delays: vec![
                Duration::from_millis(50),
                Duration::from_millis(100),
                Duration::from_millis(150),
            ],
            socket_ack_timeout: Duration::from_millis(500),
            disconnect_close_after: Duration::from_millis(500),
            ..FakeSlackConfig::default()
        }
    }
}

/// A message the bot posted (`chat.postMessage`) or edited (`chat.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The conversation it landed in (a `D…` id when posted to a user id).
    pub channel: String,
    /// The `channel` argument as given.
    pub requested_channel: String,
    pub text: String,
    pub thread_ts: Option<String>,
    pub ts: String,
    /// `mrkdwn` as sent (Slack's default is true).
    pub mrkdwn: bool,
    pub blocks: Option<Value>,
    pub reply_broadcast: bool,
    pub at: Instant,
}

/// One Web API request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method name as in the path (`chat.postMessage`).
    pub method: String,
    /// Query and body parameters merged; form values stay strings.
    pub params: Value,
    /// The token used (header or form field), if any.
    pub token: Option<String>,
    pub content_type: String,
    pub at: Instant,
    /// The HTTP status answered; 0 while pending, or when it hung or was reset.
    pub status: u16,
    /// The `error` of an `ok:false` answer.
    pub error: Option<String>,
}

/// A one-shot failure for the next call of a method (see [`FakeSlack::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, `Retry-After: N`, body `{"ok":false,"error":"ratelimited"}`.
    RateLimited(u64),
    /// HTTP 200 `{"ok":false,"error":CODE}` (e.g. `internal_error`, `fatal_error`).
    Error(String),
    /// This HTTP status (e.g. 500, 503) with `{"ok":false,"error":"internal_error"}`
    /// for 5xx, else `{"ok":false}`.
    Status(u16),
    /// Holds the request this long, then answers normally.
    Stall(Duration),
    /// Never answers; the connection stays open until the client gives up.
    Hang,
    /// Aborts the connection (TCP RST) without answering.
    ResetConnection,
}

/// One POST of the Events API sender to the Request URL.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub url: String,
    /// The `event_id` of an `event_callback` (empty for other bodies).
    pub event_id: String,
    /// `X-Slack-Retry-Num` (0 on the first delivery, which has no retry headers).
    pub retry_num: u32,
    /// `X-Slack-Retry-Reason` sent with this attempt (empty on the first).
    pub retry_reason: String,
    pub timestamp: String,
    pub signature: String,
    /// The exact bytes sent.
    pub body: Vec<u8>,
    /// The app's status; None when it did not answer in time or the connection failed.
    pub status: Option<u16>,
    pub response_body: String,
    /// Response headers, names lowercase.
    pub response_headers: Vec<(String, String)>,
    /// Why this attempt failed in Slack's words (`http_timeout`, `http_error`,
    /// `connection_failed`, `unknown_error`), or empty on a 2xx.
    pub failure: String,
    pub at: Instant,
}

impl DeliveryAttempt {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to one Socket Mode connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    pub id: u64,
    pub ticket: String,
    pub opened_at: Instant,
    pub closed_at: Option<Instant>,
    /// The `disconnect` reason sent, if any.
    pub disconnect_sent: Option<String>,
    /// Made half-open by [`FakeSlack::freeze_connection`].
    pub frozen: bool,
    pub pings_received: usize,
    pub pongs_received: usize,
}

/// One envelope written to a Socket Mode connection.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeDelivery {
    pub envelope_id: String,
    pub event_id: String,
    pub retry_attempt: u32,
    pub conn: u64,
    pub at: Instant,
}

/// An acknowledgement received over Socket Mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub envelope_id: String,
    pub conn: u64,
    /// The event it acknowledged (None when the envelope id is unknown).
    pub event_id: Option<String>,
    /// The frame as received.
    pub raw: Value,
    pub at: Instant,
}

/// An events_api envelope not yet acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEnvelope {
    pub event_id: String,
    /// The latest envelope id (None before the first send).
    pub envelope_id: Option<String>,
    pub retry_attempt: u32,
}

/// The running fake server. It stops when dropped.
pub struct FakeSlack {
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeSlack {
    /// Binds `127.0.0.1:0` with the default config and serves on the current runtime.
    pub async fn start() -> FakeSlack {
        FakeSlack::start_with(FakeSlackConfig::default()).await
    }

    pub async fn start_with(cfg: FakeSlackConfig) -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Slack: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake Slack: local_addr");
        let shared = Arc::new(Shared::new(cfg, addr));
        let server = tokio::spawn(server::accept_loop(listener, shared.clone()));
        let dispatcher = tokio::spawn(socket::dispatcher(shared.clone()));
        FakeSlack {
            shared,
            tasks: vec![server.abort_handle(), dispatcher.abort_handle()],
            runtime: None,
        }
    }

    /// For synchronous tests: serves from its own background runtime thread.
    /// Must not be called from inside an async context.
    pub fn start_blocking() -> FakeSlack {
        FakeSlack::start_blocking_with(FakeSlackConfig::default())
    }

    pub fn start_blocking_with(cfg: FakeSlackConfig) -> FakeSlack {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-slack")
            .enable_all()
            .build()
            .expect("fake Slack: build runtime");
        let mut fake = rt.block_on(FakeSlack::start_with(cfg));
        fake.runtime = Some(rt);
        fake
    }

    /// Runs `f` inside the fake's runtime context when it has its own (blocking
    /// constructors), so methods that spawn deliveries work from sync tests.
    fn in_rt<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.runtime {
            Some(rt) => {
                let _guard = rt.enter();
                f()
            }
            None => f(),
        }
    }

    pub fn config(&self) -> &FakeSlackConfig {
        &self.shared.cfg
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT/api` (what the app's `apiRoot` should be).
    pub fn api_root(&self) -> String {
        format!("http://{}/api", self.shared.addr)
    }

    pub fn bot_token(&self) -> &str {
        &self.shared.cfg.bot_token
    }

    pub fn app_token(&self) -> &str {
        &self.shared.cfg.app_token
    }

    pub fn signing_secret(&self) -> &str {
        &self.shared.cfg.signing_secret
    }

    pub fn bot_user_id(&self) -> &str {
        &self.shared.cfg.bot_user_id
    }

    pub fn bot_id(&self) -> &str {
        &self.shared.cfg.bot_id
    }

    pub fn team_id(&self) -> &str {
        &self.shared.cfg.team_id
    }

    // ---- workspace set-up ----

    /// Declares a conversation; `member: false` makes posts answer `not_in_channel`.
    pub fn add_channel(&self, id: &str, member: bool) {
        let mut st = lock(&self.shared.state);
        st.gone.remove(id);
        st.channels.entry(id.to_string()).or_default().member = member;
    }

    /// Makes the bot leave (`not_in_channel`) or join a channel.
    pub fn set_member(&self, id: &str, member: bool) {
        self.add_channel(id, member);
    }

    /// Posts to an archived channel answer `is_archived`.
    pub fn archive_channel(&self, id: &str) {
        lock(&self.shared.state)
            .channels
            .entry(id.to_string())
            .or_default()
            .archived = true;
    }

    /// The conversation no longer exists: `channel_not_found`.
    pub fn delete_channel(&self, id: &str) {
        let mut st = lock(&self.shared.state);
        st.channels.remove(id);
        st.gone.insert(id.to_string());
    }

    /// Revokes the bot token: every call with it answers `token_revoked`.
    pub fn revoke_bot_token(&self) {
        lock(&self.shared.state).bot_token_revoked = true;
    }

    /// Emulates Slack's `chat.postMessage` limit of about one post per channel per
    /// `interval` (None turns it off): a faster post gets 429 with `Retry-After`.
    pub fn set_post_message_interval(&self, interval: Option<Duration>) {
        lock(&self.shared.state).post_interval = interval;
    }

    /// The DM channel id with `user` (opened if needed), as `conversations.open` gives.
    pub fn dm_channel(&self, user: &str) -> String {
        lock(&self.shared.state).dm(user).0
    }

    // ---- Web API inspection and faults ----

    /// Successful `chat.postMessage` calls, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).sent.clone()
    }

    /// Successful `chat.update` calls, oldest first.
    pub fn updated_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).updates.clone()
    }

    /// `(channel, timestamp, name)` of successful `reactions.add` calls.
    pub fn reactions(&self) -> Vec<(String, String, String)> {
        lock(&self.shared.state).reaction_log.clone()
    }

    /// Reactions the bot currently has on messages (after removals).
    pub fn current_reactions(&self) -> Vec<(String, String, String)> {
        lock(&self.shared.state).reactions.clone()
    }

    /// A stored message (the bot's or a delivered user message).
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        lock(&self.shared.state).message(channel, ts).cloned()
    }

    /// Waits (on a condition, not a sleep) until at least `n` messages were posted or
    /// `timeout` passes; returns all posted.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        self.wait_until(timeout, || {
            let sent = self.sent_messages();
            (sent.len() >= n).then_some(sent)
        })
        .await
        .unwrap_or_else(|| self.sent_messages())
    }

    /// Every Web API request so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// Requests of this method (`chat.postMessage`).
    pub fn call_count(&self, method: &str) -> usize {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// Makes the next call of `method` fail with `fault` (`"*"`: the next call of any
    /// method); faults queue up.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        lock(&self.shared.faults)
            .entry(method.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Waits until `f` returns `Some` (re-checked on every change) or `timeout` passes.
    pub async fn wait_until<T>(&self, timeout: Duration, f: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f() {
                return Some(v);
            }
            // The bound also covers changes no notification reports (e.g. clock-based).
            let step = (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
            if tokio::time::timeout_at(step, notified).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return f();
            }
        }
    }

    // ---- building events ----

    /// A new `"<unix>.<6 digits>"` timestamp, strictly greater than any before.
    pub fn next_ts(&self) -> String {
        lock(&self.shared.state).alloc_ts()
    }

    /// `"<@BOT_USER_ID> text"`.
    pub fn mention(&self, text: &str) -> String {
        format!("<@{}> {text}", self.shared.cfg.bot_user_id)
    }

    /// A user's `message` event in their DM with the bot (`channel_type: im`).
    pub fn dm_message(&self, user: &str, text: &str) -> Value {
        let channel = self.dm_channel(user);
        self.user_message(&channel, "im", user, text, None)
    }

    /// A user's top-level message in a channel (`channel_type` `channel` for `C…`,
    /// `group` for `G…`, `mpim` for an MPIM opened here, `im` for `D…`).
    pub fn channel_message(&self, channel: &str, user: &str, text: &str) -> Value {
        let kind = self.channel_type(channel);
        self.user_message(channel, kind, user, text, None)
    }

    /// A user's reply in the thread whose parent has `thread_ts` (`parent_user_id` set
    /// when the parent is known).
    pub fn thread_reply(&self, channel: &str, user: &str, text: &str, thread_ts: &str) -> Value {
        let kind = self.channel_type(channel);
        let mut msg = self.user_message(channel, kind, user, text, Some(thread_ts));
        if let Some(parent) = self.message(channel, thread_ts) {
            if let Some(u) = parent["user"].as_str() {
                msg["parent_user_id"] = json!(u);
            }
        }
        msg
    }

    /// Another app's bot message (modern shape: `bot_id`, `app_id`, `bot_profile`, no subtype).
    pub fn bot_message(&self, channel: &str, bot_id: &str, bot_user: &str, text: &str) -> Value {
        let ts = self.next_ts();
        json!({
            "type": "message",
            "channel": channel,
            "user": bot_user,
            "bot_id": bot_id,
            "app_id": "A0OTHER",
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.shared.cfg.team_id,
            "channel_type": self.channel_type(channel),
            "bot_profile": {"id": bot_id, "app_id": "A0OTHER", "name": "otherbot",
                            "deleted": false, "team_id": self.shared.cfg.team_id},
        })
    }

    /// A legacy bot post (`subtype: bot_message`, no `user`).
    pub fn legacy_bot_message(&self, channel: &str, bot_id: &str, text: &str) -> Value {
        let ts = self.next_ts();
        json!({
            "type": "message",
            "subtype": "bot_message",
            "channel": channel,
            "bot_id": bot_id,
            "username": "legacybot",
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": self.channel_type(channel),
        })
    }

    /// This app's own post as Slack echoes it back (`user` = bot user, `bot_id`, `app_id`).
    pub fn own_bot_message(&self, channel: &str, text: &str, thread_ts: Option<&str>) -> Value {
        let ts = self.next_ts();
        let kind = self.channel_type(channel);
        events::bot_echo(&self.shared, channel, kind, &ts, text, thread_ts)
    }

    /// A `message_changed` event for the stored message `ts` (its text becomes `new_text`).
    pub fn message_changed(&self, channel: &str, ts: &str, new_text: &str) -> Value {
        let previous = self
            .message(channel, ts)
            .unwrap_or_else(|| json!({"type": "message", "user": "U0USER", "text": "", "ts": ts}));
        let event_ts = self.next_ts();
        let mut message = previous.clone();
        message["text"] = json!(new_text);
        message["edited"] = json!({"user": previous["user"], "ts": event_ts});
        for key in ["channel", "event_ts", "channel_type"] {
            if let Some(obj) = message.as_object_mut() {
                obj.remove(key);
            }
        }
        json!({
            "type": "message",
            "subtype": "message_changed",
            "hidden": true,
            "channel": channel,
            "message": message,
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": self.channel_type(channel),
        })
    }

    /// A `message_deleted` event for `ts`.
    pub fn message_deleted(&self, channel: &str, ts: &str) -> Value {
        let event_ts = self.next_ts();
        let mut ev = json!({
            "type": "message",
            "subtype": "message_deleted",
            "hidden": true,
            "channel": channel,
            "deleted_ts": ts,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": self.channel_type(channel),
        });
        if let Some(prev) = self.message(channel, ts) {
            ev["previous_message"] = prev;
        }
        ev
    }

    /// Stores a file and returns its `file` object; `url_private` (and
    /// `url_private_download`) serve the bytes only with the bot token in
    /// `Authorization: Bearer`, and Slack's HTML sign-in page otherwise.
    pub fn add_file(&self, name: &str, mimetype: &str, bytes: &[u8]) -> Value {
        let mut st = lock(&self.shared.state);
        st.next_file += 1;
        let id = format!("F0FAKE{:04}", st.next_file);
        let team = &self.shared.cfg.team_id;
        let path = format!("/files-pri/{team}-{id}/{name}");
        let download = format!("/files-pri/{team}-{id}/download/{name}");
        st.files
            .insert(path.clone(), (mimetype.to_string(), bytes.to_vec()));
        let base = format!("http://{}", self.shared.addr);
        json!({
            "id": id,
            "created": state::unix_now(),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit_once('.').map(|(_, e)| e).unwrap_or("binary"),
            "user_team": team,
            "mode": "hosted",
            "is_external": false,
            "is_public": false,
            "size": bytes.len(),
            "url_private": format!("{base}{path}"),
            "url_private_download": format!("{base}{download}"),
        })
    }

    /// A user's message sharing `files` (objects from [`FakeSlack::add_file`]):
    /// `subtype: file_share`, as Slack sends an upload with a comment.
    pub fn file_share_message(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        files: Vec<Value>,
    ) -> Value {
        let mut msg = self.channel_message(channel, user, text);
        msg["subtype"] = json!("file_share");
        msg["files"] = Value::Array(files);
        msg["upload"] = json!(false);
        msg["display_as_bot"] = json!(false);
        msg
    }

    /// A message with another `subtype` (`channel_join`, `thread_broadcast`, `file_share`, …).
    pub fn subtype_message(&self, channel: &str, user: &str, subtype: &str, text: &str) -> Value {
        let mut msg = self.channel_message(channel, user, text);
        msg["subtype"] = json!(subtype);
        msg
    }

    fn channel_type(&self, channel: &str) -> &'static str {
        lock(&self.shared.state).channel_type(channel)
    }

    fn user_message(
        &self,
        channel: &str,
        kind: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Value {
        let ts = self.next_ts();
        let mut msg = json!({
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.shared.cfg.team_id,
            "client_msg_id": uuid::Uuid::new_v4().to_string(),
            "blocks": rich_text_blocks(text),
            "channel_type": kind,
        });
        if let Some(t) = thread_ts {
            msg["thread_ts"] = json!(t);
        }
        msg
    }

    // ---- delivering events ----

    /// Where Events API requests go; events use Socket Mode while it is unset.
    pub fn set_request_url(&self, url: Option<&str>) {
        lock(&self.shared.state).request_url = url.map(str::to_string);
    }

    pub fn request_url(&self) -> Option<String> {
        lock(&self.shared.state).request_url.clone()
    }

    /// Wraps `event` in an `event_callback` envelope (new `event_id`) and delivers it
    /// (Request URL with retries, else Socket Mode). A message event is stored so the
    /// bot can react to it, reply in its thread, and so on. Returns the `event_id`.
    pub fn deliver_event(&self, event: Value) -> String {
        let (envelope, event_id) = self.envelope(event);
        self.deliver_envelope(envelope);
        event_id
    }

    /// Delivers a user message as Slack does: the `message` event, and when its text
    /// mentions the bot outside a DM, also an `app_mention` event (another `event_id`,
    /// the same `channel` and `ts`). Returns the event ids.
    pub fn deliver_message(&self, message: Value) -> Vec<String> {
        let mut ids = vec![self.deliver_event(message.clone())];
        let mentioned = message["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("<@{}>", self.shared.cfg.bot_user_id)));
        let is_dm = message["channel_type"] == "im";
        if mentioned && !is_dm && message.get("subtype").is_none() {
            let mut mention = json!({"type": "app_mention"});
            for key in [
                "user",
                "text",
                "ts",
                "thread_ts",
                "channel",
                "event_ts",
                "team",
                "client_msg_id",
                "blocks",
                "parent_user_id",
            ] {
                if let Some(v) = message.get(key) {
                    mention[key] = v.clone();
                }
            }
            ids.push(self.deliver_event(mention));
        }
        ids
    }

    /// Delivers a complete body (an `event_callback` or anything else) as it is.
    pub fn deliver_envelope(&self, envelope: Value) {
        let ev = &envelope["event"];
        if ev["type"] == "message" && ev.get("subtype").is_none() {
            if let Some(ch) = ev["channel"].as_str() {
                lock(&self.shared.state).store_message(ch, ev);
            }
        }
        self.in_rt(|| events::dispatch(&self.shared, envelope));
    }

    /// The `event_callback` envelope Slack would wrap `event` in, and its `event_id`.
    pub fn envelope(&self, event: Value) -> (Value, String) {
        events::envelope(&self.shared, event)
    }

    /// Performs the `url_verification` handshake with `url`: a signed challenge that the
    /// app must echo (plain text, `challenge=` form or `{"challenge":…}` JSON). On success
    /// the URL becomes the Request URL. Errors carry Slack's complaint and the reply.
    pub async fn verify_url(&self, url: &str) -> Result<(), String> {
        events::verify_url(&self.shared, url).await?;
        self.set_request_url(Some(url));
        Ok(())
    }

    /// Sends one signed POST of `event` (wrapped in a new envelope) to the Request URL,
    /// spoiled as `tamper` says, with no retries; returns the attempt (also recorded).
    pub async fn send_tampered(&self, event: Value, tamper: Tamper) -> DeliveryAttempt {
        let (envelope, _) = self.envelope(event);
        let body = envelope.to_string().into_bytes();
        self.post_signed(&body, "application/json", tamper).await
    }

    /// One POST of `body` to the Request URL signed with the fake's secret (or spoiled as
    /// `tamper` says), no retries. For slash commands use a form body and
    /// `application/x-www-form-urlencoded`.
    pub async fn post_signed(
        &self,
        body: &[u8],
        content_type: &str,
        tamper: Tamper,
    ) -> DeliveryAttempt {
        let url = self
            .request_url()
            .expect("fake Slack: post_signed needs a Request URL");
        events::post_once(&self.shared, &url, body, content_type, &tamper).await
    }

    /// Every Events API POST so far (handshakes and tampered ones included), oldest first.
    pub fn delivery_attempts(&self) -> Vec<DeliveryAttempt> {
        lock(&self.shared.attempts).clone()
    }

    /// The attempts for one event, oldest first.
    pub fn attempts_for(&self, event_id: &str) -> Vec<DeliveryAttempt> {
        lock(&self.shared.attempts)
            .iter()
            .filter(|a| a.event_id == event_id)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` delivery attempts were recorded; returns all of them.
    pub async fn wait_for_attempts(&self, n: usize, timeout: Duration) -> Vec<DeliveryAttempt> {
        self.wait_until(timeout, || {
            let a = self.delivery_attempts();
            (a.len() >= n).then_some(a)
        })
        .await
        .unwrap_or_else(|| self.delivery_attempts())
    }

    // ---- Socket Mode ----

    /// Sockets open and eligible for envelopes (not frozen, no `disconnect` sent).
    pub fn open_connections(&self) -> usize {
        let sock = lock(&self.shared.socket);
        sock.conns.values().filter(|c| c.routable()).count()
    }

    /// Every connection ever accepted, oldest first.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let sock = lock(&self.shared.socket);
        sock.conns.values().map(|c| c.info.clone()).collect()
    }

    /// Waits until at least `n` connections are open (routable).
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, || (self.open_connections() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Tickets handed out by `apps.connections.open` so far.
    pub fn tickets_issued(&self) -> usize {
        lock(&self.shared.socket).tickets.len()
    }

    /// Acks received, oldest first.
    pub fn acks(&self) -> Vec<Ack> {
        lock(&self.shared.socket).acks.clone()
    }

    pub async fn wait_for_acks(&self, n: usize, timeout: Duration) -> Vec<Ack> {
        self.wait_until(timeout, || {
            let a = self.acks();
            (a.len() >= n).then_some(a)
        })
        .await
        .unwrap_or_else(|| self.acks())
    }

    /// Envelopes written to sockets (each redelivery separately), oldest first.
    pub fn envelopes_sent(&self) -> Vec<EnvelopeDelivery> {
        lock(&self.shared.socket).sent.clone()
    }

    /// Events sent or queued over Socket Mode and not acknowledged yet.
    pub fn pending_envelopes(&self) -> Vec<PendingEnvelope> {
        let sock = lock(&self.shared.socket);
        sock.pending
            .iter()
            .filter(|p| !p.acked)
            .map(|p| PendingEnvelope {
                event_id: p.event_id.clone(),
                envelope_id: p.envelope_ids.last().cloned(),
                retry_attempt: p.retry_attempt,
            })
            .collect()
    }

    /// Events the fake stopped redelivering after `socket_max_retries`.
    pub fn given_up_events(&self) -> Vec<String> {
        lock(&self.shared.socket).given_up.clone()
    }

    /// Text frames other than acks that the app sent.
    pub fn other_frames(&self) -> Vec<(u64, String)> {
        lock(&self.shared.socket).other_frames.clone()
    }

    /// Queues a Socket Mode envelope of another `kind` (`slash_commands`, `interactive`)
    /// with `accepts_response_payload: true`; it is sent once (no redelivery) and its ack
    /// (which may carry a `payload`) shows up in [`FakeSlack::acks`].
    pub fn deliver_socket_envelope(&self, kind: &str, payload: Value) {
        socket::enqueue(&self.shared, kind, payload);
    }

    /// A slash command's form fields as Slack sends them (HTTP body or Socket Mode payload).
    pub fn slash_command(&self, channel: &str, user: &str, command: &str, text: &str) -> Value {
        let cfg = &self.shared.cfg;
        let trigger = format!("{}.{}", self.next_ts().replace('.', ""), "fake");
        json!({
            "token": cfg.verification_token,
            "team_id": cfg.team_id,
            "team_domain": cfg.team_domain,
            "channel_id": channel,
            "channel_name": format!("chan-{}", channel.to_ascii_lowercase()),
            "user_id": user,
            "user_name": format!("user-{}", user.to_ascii_lowercase()),
            "command": command,
            "text": text,
            "api_app_id": cfg.app_id,
            "is_enterprise_install": "false",
            "response_url": format!("http://{}/commands/{}/{trigger}", self.shared.addr, cfg.team_id),
            "trigger_id": trigger,
        })
    }

    /// Sends `{"type":"disconnect","reason":REASON,"debug_info":{…}}` on every open
    /// connection (no new envelopes go there); `refresh_requested` and `warning` close
    /// the socket `disconnect_close_after` later, `link_disabled` right away.
    pub fn send_disconnect(&self, reason: &str) {
        let ids: Vec<u64> = {
            let sock = lock(&self.shared.socket);
            sock.conns
                .iter()
                .filter(|(_, c)| c.routable())
                .map(|(id, _)| *id)
                .collect()
        };
        for id in ids {
            self.send_disconnect_to(id, reason);
        }
    }

    /// The same on one connection.
    pub fn send_disconnect_to(&self, conn: u64, reason: &str) {
        let close_after = if reason == "link_disabled" {
            Duration::ZERO
        } else {
            self.shared.cfg.disconnect_close_after
        };
        socket::command(
            &self.shared,
            conn,
            state::ConnCmd::Disconnect {
                reason: reason.to_string(),
                close_after,
            },
        );
    }

    /// Closes a connection with a close frame (1000).
    pub fn close_connection(&self, conn: u64) {
        socket::command(&self.shared, conn, state::ConnCmd::Close);
    }

    /// Makes a connection half-open: the fake stops reading, writing and answering
    /// pings, but keeps the TCP socket open (no FIN, no close frame). Its envelopes
    /// are redelivered elsewhere after the ack timeout.
    pub fn freeze_connection(&self, conn: u64) {
        socket::command(&self.shared, conn, state::ConnCmd::Freeze);
    }

    /// Aborts a connection's TCP socket (RST, no close frame).
    pub fn reset_connection(&self, conn: u64) {
        socket::command(&self.shared, conn, state::ConnCmd::Reset);
    }

    /// The id of the newest routable connection.
    pub fn latest_connection(&self) -> Option<u64> {
        let sock = lock(&self.shared.socket);
        sock.conns
            .iter()
            .rev()
            .find(|(_, c)| c.routable())
            .map(|(id, _)| *id)
    }
}

/// The `rich_text` block a Slack client attaches to a typed message.
fn rich_text_blocks(text: &str) -> Value {
    let mut elements = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let id = &rest[start + 2..start + len];
        if !is_id(id, &['U', 'W']) {
            break;
        }
        if start > 0 {
            elements.push(json!({"type": "text", "text": &rest[..start]}));
        }
        elements.push(json!({"type": "user", "user_id": id}));
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        elements.push(json!({"type": "text", "text": rest}));
    }
    json!([{
        "type": "rich_text",
        "block_id": "fake1",
        "elements": [{"type": "rich_text_section", "elements": elements}],
    }])
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
