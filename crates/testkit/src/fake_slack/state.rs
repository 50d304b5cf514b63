//! Shared state of one fake Slack workspace with one app installed in it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use super::{
    Ack, Call, ConnectionInfo, DeliveryAttempt, EnvelopeDelivery, FakeSlackConfig, Fault,
    SentMessage,
};

/// A poisoned lock only means a test thread panicked; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What a Socket Mode connection task is told to do.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// A text frame (an envelope).
    Text(String),
    /// A `disconnect` message, then a close frame after `close_after`.
    Disconnect {
        reason: String,
        close_after: Duration,
    },
    /// A close frame now.
    Close,
    /// Stop reading and writing but keep the socket open (half-open from the client's side).
    Freeze,
    /// Abort the TCP connection (RST, no close frame).
    Reset,
}

/// A Socket Mode connection as the dispatcher sees it.
pub(crate) struct Conn {
    pub tx: mpsc::Sender<ConnCmd>,
    pub info: ConnectionInfo,
}

impl Conn {
    /// Envelopes may be sent on it: open, not frozen, no `disconnect` sent.
    pub fn routable(&self) -> bool {
        self.info.closed_at.is_none() && !self.info.frozen && self.info.disconnect_sent.is_none()
    }
}

/// An events_api envelope waiting for its ack.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The envelope `type`: `events_api`, `slash_commands` or `interactive`.
    pub kind: String,
    /// The `event_id` of an `event_callback` (empty for other payloads).
    pub event_id: String,
    pub payload: Value,
    /// Every envelope id this event was sent under (a late ack of any of them counts).
    pub envelope_ids: Vec<String>,
    pub retry_attempt: u32,
    /// When the current attempt went out (None: not sent yet).
    pub sent_at: Option<Instant>,
    pub acked: bool,
}

/// State of the Socket Mode side.
#[derive(Default)]
pub(crate) struct Socket {
    /// Ticket → already used.
    pub tickets: HashMap<String, bool>,
    pub conns: BTreeMap<u64, Conn>,
    pub next_conn: u64,
    pub pending: Vec<Pending>,
    /// Events dropped after the last retry went unacknowledged.
    pub given_up: Vec<String>,
    pub sent: Vec<EnvelopeDelivery>,
    pub acks: Vec<Ack>,
    /// Other text frames the app sent (not acks).
    pub other_frames: Vec<(u64, String)>,
}

pub(crate) struct Shared {
    pub cfg: FakeSlackConfig,
    pub addr: SocketAddr,
    pub state: Mutex<State>,
    pub socket: Mutex<Socket>,
    /// Woken (`notify_waiters`) on every change a waiter or the dispatcher cares about.
    pub changed: Notify,
    pub faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub calls: Mutex<Vec<Call>>,
    pub attempts: Mutex<Vec<DeliveryAttempt>>,
    /// Tasks to abort when the fake is dropped (deliveries, WebSocket connections).
    pub tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    pub fn new(cfg: FakeSlackConfig, addr: SocketAddr) -> Shared {
        let state = State {
            request_url: cfg.request_url.clone(),
            post_interval: cfg.post_message_interval,
            ..State::default()
        };
        Shared {
            cfg,
            addr,
            state: Mutex::new(state),
            socket: Mutex::default(),
            changed: Notify::new(),
            faults: Mutex::default(),
            calls: Mutex::default(),
            attempts: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    pub fn track(&self, handle: AbortHandle) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// The `bot_profile` object on the bot's messages.
    pub fn bot_profile(&self) -> Value {
        json!({
            "id": self.cfg.bot_id,
            "app_id": self.cfg.app_id,
            "name": self.cfg.bot_name,
            "deleted": false,
            "team_id": self.cfg.team_id,
            "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
            "updated": 1_700_000_000,
        })
    }

    /// The `authorizations` array of an `event_callback` envelope.
    pub fn authorizations(&self) -> Value {
        json!([{
            "enterprise_id": null,
            "team_id": self.cfg.team_id,
            "user_id": self.cfg.bot_user_id,
            "is_bot": true,
            "is_enterprise_install": false,
        }])
    }
}

/// A conversation the workspace knows about.
#[derive(Debug, Clone, Default)]
pub(crate) struct Channel {
    pub member: bool,
    pub archived: bool,
}

#[derive(Default)]
pub(crate) struct State {
    /// The last `ts` handed out, in microseconds (every new one is strictly greater).
    pub last_ts: u64,
    pub next_event: u64,
    pub channels: HashMap<String, Channel>,
    /// Deleted conversations: `channel_not_found` even in lenient mode.
    pub gone: HashSet<String>,
    /// User id → DM channel id.
    pub dms: HashMap<String, String>,
    /// Sorted user list → MPIM channel id.
    pub mpims: HashMap<String, String>,
    /// Channel → ts → message object.
    pub messages: HashMap<String, BTreeMap<String, Value>>,
    /// `(channel, ts, name)` reactions the bot has added.
    pub reactions: Vec<(String, String, String)>,
    pub reaction_log: Vec<(String, String, String)>,
    pub sent: Vec<SentMessage>,
    pub updates: Vec<SentMessage>,
    pub bot_token_revoked: bool,
    pub request_url: Option<String>,
    /// Emulated `chat.postMessage` limit: one post per channel per interval.
    pub post_interval: Option<Duration>,
    pub last_post: HashMap<String, Instant>,
    /// `/files-pri/…` path → (mimetype, bytes).
    pub files: HashMap<String, (String, Vec<u8>)>,
    pub next_file: u64,
}

impl State {
    /// A new `"<unix>.<6 digits>"` timestamp, strictly greater than any before.
    pub fn alloc_ts(&mut self) -> String {
        let now = unix_micros();
        self.last_ts = now.max(self.last_ts + 1);
        format!(
            "{}.{:06}",
            self.last_ts / 1_000_000,
            self.last_ts % 1_000_000
        )
    }

    pub fn alloc_event_id(&mut self) -> String {
        self.next_event += 1;
        format!("Ev0FAKE{:06}", self.next_event)
    }

    /// The DM channel with `user`, opened if needed; `(id, already_open)`.
    pub fn dm(&mut self, user: &str) -> (String, bool) {
        if let Some(id) = self.dms.get(user) {
            return (id.clone(), true);
        }
        let id = format!("D0{}", user.trim_start_matches(['U', 'W']));
        self.dms.insert(user.to_string(), id.clone());
        self.channels.insert(
            id.clone(),
            Channel {
                member: true,
                archived: false,
            },
        );
        (id, false)
    }

    pub fn mpim(&mut self, users: &[String]) -> (String, bool) {
        let mut sorted = users.to_vec();
        sorted.sort();
        let key = sorted.join(",");
        if let Some(id) = self.mpims.get(&key) {
            return (id.clone(), true);
        }
        let id = format!("G0MPIM{:04}", self.mpims.len() + 1);
        self.mpims.insert(key, id.clone());
        self.channels.insert(
            id.clone(),
            Channel {
                member: true,
                archived: false,
            },
        );
        (id, false)
    }

    pub fn store_message(&mut self, channel: &str, msg: &Value) {
        let Some(ts) = msg["ts"].as_str() else { return };
        self.messages
            .entry(channel.to_string())
            .or_default()
            .insert(ts.to_string(), msg.clone());
    }

    /// The `channel_type` of events in this conversation.
    pub fn channel_type(&self, channel: &str) -> &'static str {
        if channel.starts_with('D') {
            "im"
        } else if self.mpims.values().any(|id| id == channel) {
            "mpim"
        } else if channel.starts_with('G') {
            "group"
        } else {
            "channel"
        }
    }

    pub fn message(&self, channel: &str, ts: &str) -> Option<&Value> {
        self.messages.get(channel)?.get(ts)
    }
}

/// Whether `id` looks like a Slack id of that kind: a prefix letter then uppercase
/// letters and digits.
pub(crate) fn is_id(id: &str, prefixes: &[char]) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && id.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}
