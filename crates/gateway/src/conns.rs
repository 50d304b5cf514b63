//! Live WebSocket connections: each has an outbound queue bounded in bytes, its own event
//! `seq`, and the scopes that decide which broadcasts it receives.

use clawgate_protocol::frame::StateVersion;
use clawgate_protocol::scopes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What the writer task of a connection sends.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Pong(Vec<u8>),
    /// Close with this code and reason; code 1005 sends a close frame with no status.
    Close(u16, String),
}

/// The sending side of one connection. Cloned into the registry and the reader task.
#[derive(Clone)]
pub struct Outlet {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    /// Set when the connection was closed because its queue passed the bound.
    overflowed: Arc<AtomicBool>,
    max_buffered: usize,
}

impl Outlet {
    pub fn new(
        max_buffered: usize,
    ) -> (Outlet, mpsc::UnboundedReceiver<Outbound>, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outlet {
                tx,
                queued: queued.clone(),
                closed: Arc::new(AtomicBool::new(false)),
                overflowed: Arc::new(AtomicBool::new(false)),
                max_buffered,
            },
            rx,
            queued,
        )
    }

    /// Queues a text frame. A connection whose queue would pass the bound is closed with
    /// 1008 "slow consumer" instead; `false` means the frame was not queued.
    pub fn send(&self, text: String) -> bool {
        let len = text.len();
        self.enqueue(len, Outbound::Text(text))
    }

    /// Queues a pong, counted against the same bound as text.
    pub fn pong(&self, payload: Vec<u8>) -> bool {
        let len = payload.len() + crate::ws::io::PONG_OVERHEAD;
        self.enqueue(len, Outbound::Pong(payload))
    }

    /// Counts `len` bytes against the bound, then queues; over the bound the connection is
    /// closed as a slow consumer instead.
    fn enqueue(&self, len: usize, msg: Outbound) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_buffered {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.overflowed.store(true, Ordering::Release);
            self.close(clawgate_protocol::close::POLICY, "slow consumer");
            return false;
        }
        if self.tx.send(msg).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Queues a close frame (once); later sends are dropped.
    pub fn close(&self, code: u16, reason: &str) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Outbound::Close(code, reason.to_string()));
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the connection was closed as a slow consumer.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Changes the bound (raised when `connect` succeeds). Takes `&mut self`: only the
    /// connection's own outlet, before any clone is handed out, may change it.
    pub fn set_max_buffered(&mut self, max: usize) {
        self.max_buffered = max;
    }
}

/// What a connection opted in to.
#[derive(Default)]
pub struct Subscriptions {
    /// `sessions.subscribe`: `sessions.changed` (and `session.message`) for every session.
    pub sessions: bool,
    /// `sessions.messages.subscribe {key}`: `session.message` for these sessions.
    pub message_keys: std::collections::HashSet<String>,
}

/// A registered (authenticated) connection.
pub struct Conn {
    pub outlet: Outlet,
    pub scopes: Vec<String>,
    /// The paired device this connection authenticated as, if any.
    pub device_id: Option<String>,
    pub caps: Vec<String>,
    pub subs: Mutex<Subscriptions>,
    seq: AtomicU64,
}

impl Conn {
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    pub fn subs(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(
        &self,
        id: u64,
        outlet: Outlet,
        scopes: Vec<String>,
        device_id: Option<String>,
        caps: Vec<String>,
    ) {
        self.lock().insert(
            id,
            Arc::new(Conn {
                outlet,
                scopes,
                device_id,
                caps,
                subs: Mutex::new(Subscriptions::default()),
                seq: AtomicU64::new(0),
            }),
        );
    }

    pub fn get(&self, id: u64) -> Option<Arc<Conn>> {
        self.lock().get(&id).cloned()
    }

    /// Closes the live connections of one device (its pairing was removed); returns how many.
    pub fn close_device(&self, device_id: &str, code: u16, reason: &str) -> usize {
        let conns = self.lock();
        let mut n = 0;
        for conn in conns
            .values()
            .filter(|c| c.device_id.as_deref() == Some(device_id))
        {
            conn.outlet.close(code, reason);
            n += 1;
        }
        n
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends an event to every connection allowed to receive it, each with its own next
    /// `seq`. The registry lock is held while sequencing so numbers stay in queue order.
    pub fn broadcast(&self, event: &str, payload: &Value, sv: Option<&StateVersion>) {
        self.broadcast_to(event, payload, sv, |_, _| true);
    }

    /// Like [`Registry::broadcast`], limited to connections for which `filter(id, conn)` holds.
    pub fn broadcast_to(
        &self,
        event: &str,
        payload: &Value,
        sv: Option<&StateVersion>,
        filter: impl Fn(u64, &Conn) -> bool,
    ) {
        let payload_text = serde_json::to_string(payload).unwrap_or_else(|_| "null".into());
        let sv_text = sv.map(|s| {
            format!(
                r#","stateVersion":{{"presence":{},"health":{}}}"#,
                s.presence, s.health
            )
        });
        let event_name = serde_json::to_string(event).unwrap_or_default();
        let conns = self.lock();
        for (id, conn) in conns.iter() {
            if !scopes::may_receive(event, &conn.scopes)
                || conn.outlet.is_closed()
                || !filter(*id, conn)
            {
                continue;
            }
            let seq = conn.seq.fetch_add(1, Ordering::AcqRel) + 1;
            let frame = format!(
                r#"{{"type":"event","event":{event_name},"payload":{payload_text},"seq":{seq}{}}}"#,
                sv_text.as_deref().unwrap_or("")
            );
            conn.outlet.send(frame);
        }
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for conn in self.lock().values() {
            conn.outlet.close(code, reason);
        }
    }
}
