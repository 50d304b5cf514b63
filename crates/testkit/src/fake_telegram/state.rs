//! Shared state of one fake bot, and the JSON shapes of users, chats and messages.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{Call, FakeTelegramConfig, Fault, SentMessage};

/// The first `message_id` allocated in every chat.
pub(crate) const FIRST_MESSAGE_ID: i64 = 1000;

/// Update kinds Telegram leaves out unless `allowed_updates` names them.
const OPT_IN_KINDS: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

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

pub(crate) struct Shared {
    pub cfg: FakeTelegramConfig,
    /// The numeric prefix of the token.
    pub bot_id: i64,
    pub state: Mutex<State>,
    /// Woken (`notify_waiters`) on every change pollers or the webhook worker care about.
    pub changed: Notify,
    /// Pending faults by lowercase method name.
    pub faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub calls: Mutex<Vec<Call>>,
}

impl Shared {
    pub fn new(cfg: FakeTelegramConfig) -> Shared {
        let bot_id = cfg
            .token
            .split(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let state = State {
            next_update_id: cfg.first_update_id,
            commands: json!([]),
            ..State::default()
        };
        Shared {
            cfg,
            bot_id,
            state: Mutex::new(state),
            changed: Notify::new(),
            faults: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// The bot as a `User` (what `from` of its messages holds).
    pub fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": self.cfg.first_name,
            "username": self.cfg.username,
        })
    }

    /// The `getMe` result.
    pub fn me(&self) -> Value {
        let mut me = self.bot_user();
        me["can_join_groups"] = json!(true);
        me["can_read_all_group_messages"] = json!(false);
        me["supports_inline_queries"] = json!(false);
        me
    }
}

/// One update waiting in the bot's queue.
pub(crate) struct Queued {
    /// Identity within the queue (update ids may repeat after `inject_raw_update`).
    pub seq: u64,
    pub id: i64,
    pub update: Value,
    /// Queued by `inject_raw_update`: exempt from offset confirmation until returned once.
    pub raw: bool,
    /// Returned by `getUpdates` at least once.
    pub delivered: bool,
}

impl Queued {
    /// The update's type: its first key other than `update_id`.
    fn kind(&self) -> Option<&str> {
        let obj = self.update.as_object()?;
        obj.keys().map(String::as_str).find(|k| *k != "update_id")
    }

    /// Still to be returned even when its id is below the poll's offset.
    pub fn forced(&self) -> bool {
        self.raw && !self.delivered
    }
}

pub(crate) struct Webhook {
    pub url: String,
    pub secret: Option<String>,
    pub max_connections: i64,
    pub last_error: Option<(i64, String)>,
}

/// Messages of one chat, by id, as full `Message` objects.
pub(crate) struct ChatLog {
    pub next_id: i64,
    pub messages: BTreeMap<i64, Value>,
}

#[derive(Default)]
pub(crate) struct State {
    pub next_update_id: i64,
    pub next_seq: u64,
    /// In insertion order; readers sort by update id.
    pub queue: Vec<Queued>,
    pub allowed_updates: Option<Vec<String>>,
    pub poll_seq: u64,
    /// The `getUpdates` request currently allowed to answer.
    pub active_poll: Option<u64>,
    pub webhook: Option<Webhook>,
    pub delivery_paused: bool,
    pub chats: HashMap<i64, ChatLog>,
    pub blocked: HashSet<i64>,
    pub sent: Vec<SentMessage>,
    pub edits: Vec<SentMessage>,
    pub deleted: Vec<(i64, i64)>,
    pub reactions: Vec<(i64, i64, Value)>,
    pub actions: Vec<(i64, String, Instant)>,
    pub commands: Value,
}

impl State {
    /// Queues `update`; a non-raw one gets the next `update_id` written into it.
    pub fn push_update(&mut self, mut update: Value, raw: bool) -> i64 {
        if !update.is_object() {
            update = json!({ "unknown": update });
        }
        let id = if raw {
            let id = update["update_id"].as_i64().unwrap_or(self.next_update_id);
            self.next_update_id = self.next_update_id.max(id + 1);
            id
        } else {
            let id = self.next_update_id;
            self.next_update_id += 1;
            id
        };
        update["update_id"] = json!(id);
        for key in [
            "message",
            "edited_message",
            "channel_post",
            "edited_channel_post",
        ] {
            if let Some(msg) = update.get(key).cloned() {
                self.store_message(&msg);
            }
        }
        self.next_seq += 1;
        self.queue.push(Queued {
            seq: self.next_seq,
            id,
            update,
            raw,
            delivered: false,
        });
        id
    }

    /// Whether the current `allowed_updates` lets this update through.
    pub fn allowed(&self, q: &Queued) -> bool {
        let Some(kind) = q.kind() else { return true };
        match &self.allowed_updates {
            Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
            _ => !OPT_IN_KINDS.contains(&kind),
        }
    }

    /// `getUpdates` confirmation: forgets updates below `offset`, or all but the last `-offset`.
    pub fn confirm(&mut self, offset: i64) {
        if offset > 0 {
            self.queue.retain(|q| q.id >= offset || q.forced());
        } else if offset < 0 {
            self.queue.sort_by_key(|q| q.id);
            let keep = offset.unsigned_abs().min(self.queue.len() as u64) as usize;
            let drop = self.queue.len() - keep;
            self.queue.drain(..drop);
        }
    }

    /// Updates a poll with this offset may return now, lowest id first.
    pub fn ready(&self, offset: i64, limit: usize) -> Vec<u64> {
        let mut ready: Vec<&Queued> = self
            .queue
            .iter()
            .filter(|q| q.id >= offset || q.forced())
            .filter(|q| self.allowed(q))
            .collect();
        ready.sort_by_key(|q| (q.id, q.seq));
        ready.into_iter().take(limit).map(|q| q.seq).collect()
    }

    pub fn chat(&mut self, chat_id: i64) -> &mut ChatLog {
        self.chats.entry(chat_id).or_insert_with(|| ChatLog {
            next_id: FIRST_MESSAGE_ID,
            messages: BTreeMap::new(),
        })
    }

    pub fn alloc_message_id(&mut self, chat_id: i64) -> i64 {
        let chat = self.chat(chat_id);
        let id = chat.next_id;
        chat.next_id += 1;
        id
    }

    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<&Value> {
        self.chats.get(&chat_id)?.messages.get(&message_id)
    }

    /// Remembers a message (found by its `chat.id` and `message_id`) so replies can find it.
    pub fn store_message(&mut self, msg: &Value) {
        let (Some(chat_id), Some(id)) = (msg["chat"]["id"].as_i64(), msg["message_id"].as_i64())
        else {
            return;
        };
        let mut stored = msg.clone();
        if let Some(obj) = stored.as_object_mut() {
            obj.remove("reply_to_message");
        }
        let chat = self.chat(chat_id);
        chat.next_id = chat.next_id.max(id + 1);
        chat.messages.insert(id, stored);
    }

    /// The `getWebhookInfo` result.
    pub fn webhook_info(&self) -> Value {
        let pending = self.queue.iter().filter(|q| self.allowed(q)).count();
        let mut info = json!({
            "url": "",
            "has_custom_certificate": false,
            "pending_update_count": pending,
        });
        if let Some(wh) = &self.webhook {
            info["url"] = json!(wh.url);
            info["ip_address"] = json!("127.0.0.1");
            info["max_connections"] = json!(wh.max_connections);
            if let Some((date, msg)) = &wh.last_error {
                info["last_error_date"] = json!(date);
                info["last_error_message"] = json!(msg);
            }
            if let Some(list) = &self.allowed_updates {
                info["allowed_updates"] = json!(list);
            }
        }
        info
    }
}

/// A user as the fake invents them: `Tester<id>` / `tester<id>`.
pub(crate) fn user_json(id: i64) -> Value {
    json!({
        "id": id,
        "is_bot": false,
        "first_name": format!("Tester{id}"),
        "username": format!("tester{id}"),
        "language_code": "en",
    })
}

/// A chat: private for positive ids, a supergroup for negative ones.
pub(crate) fn chat_json(id: i64) -> Value {
    if id >= 0 {
        json!({
            "id": id,
            "first_name": format!("Tester{id}"),
            "username": format!("tester{id}"),
            "type": "private",
        })
    } else {
        json!({"id": id, "title": "Test Group", "type": "supergroup"})
    }
}

/// Length in UTF-16 code units, the unit of entity offsets.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A `bot_command` entity when `text` starts with `/`.
pub(crate) fn command_entities(text: &str) -> Option<Value> {
    if !text.starts_with('/') {
        return None;
    }
    let cmd = text.split(char::is_whitespace).next().unwrap_or(text);
    Some(json!([{"offset": 0, "length": utf16_len(cmd), "type": "bot_command"}]))
}
