//! Live WebSocket connections: each has an outbound queue bounded in bytes, its own event
//! `seq`, and the scopes that decide which broadcasts it receives.

use clawgate_protocol::frame::StateVersion;
use clawgate_protocol::scopes;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// What the writer task of a connection sends.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Pong(Vec<u8>),
    /// A ping whose pong someone waits for (see [`Outlet::round_trip`]).
    Ping(Vec<u8>),
    /// Close with this code and reason; code 1005 sends a close frame with no status.
    Close(u16, String),
}

impl Outbound {
    /// Bytes this message counts for against the outbound bounds.
    fn weight(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Pong(p) | Outbound::Ping(p) => p.len() + crate::ws::io::PONG_OVERHEAD,
            Outbound::Close(..) => 0,
        }
    }
}

/// The outbound queues of every connection together: bytes queued (or being written) across
/// the process are kept under `max` (`gateway.maxBufferedBytesTotal`). A message that would
/// pass it makes room by closing the authenticated connection with the largest queue as a
/// slow consumer, whose queue is dropped at once; when the sender itself holds the largest
/// queue (or no room can be made) the sender is closed instead.
pub struct Budget {
    max: usize,
    queued: AtomicUsize,
    /// Authenticated connections, which may be closed to make room.
    members: Mutex<HashMap<u64, Arc<Shared>>>,
}

/// How many connections one send may close to make room before closing its own.
const MAX_SHED_PER_SEND: usize = 4;

impl Budget {
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            max,
            queued: AtomicUsize::new(0),
            members: Mutex::new(HashMap::new()),
        })
    }

    /// Outbound bytes queued or being written across all connections.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Shared>>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `outlet` (an authenticated connection) a candidate for shedding.
    pub fn join(&self, id: u64, outlet: &Outlet) {
        self.members().insert(id, outlet.inner.shared.clone());
    }

    pub fn leave(&self, id: u64) {
        self.members().remove(&id);
    }

    /// Called when the total passed `max` while `me` queued a message: sheds the largest
    /// queues until the total is back under `max`. `false` means `me` must go instead.
    fn make_room(&self, me: &Arc<Shared>) -> bool {
        let mut tried: Vec<*const Shared> = Vec::new();
        for _ in 0..MAX_SHED_PER_SEND {
            let victim = {
                let members = self.members();
                members
                    .values()
                    .filter(|m| !tried.contains(&Arc::as_ptr(m)))
                    .max_by_key(|m| m.queued.load(Ordering::Acquire))
                    .cloned()
            };
            let Some(victim) = victim else {
                return false;
            };
            if Arc::ptr_eq(&victim, me) || victim.queued.load(Ordering::Acquire) == 0 {
                return false;
            }
            tried.push(Arc::as_ptr(&victim));
            victim.shed();
            if self.queued.load(Ordering::Acquire) <= self.max {
                return true;
            }
        }
        false
    }
}

struct Queue {
    items: VecDeque<Outbound>,
    /// The writer is gone: nothing more is accepted.
    dead: bool,
}

/// State shared by a connection's outlets and its writer.
struct Shared {
    queue: Mutex<Queue>,
    ready: Notify,
    /// Bytes queued or being written for this connection.
    queued: AtomicUsize,
    closed: AtomicBool,
    /// Set when the connection was closed because its queue passed a bound.
    overflowed: AtomicBool,
    /// Every outlet was dropped.
    senders_gone: AtomicBool,
    budget: Arc<Budget>,
    /// Pings sent by [`Outlet::round_trip`] still waiting for their pong, oldest first.
    pings: Mutex<VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>>,
    next_ping: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases `n` bytes from this connection's count and the total.
    fn release(&self, n: usize) {
        if n > 0 {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.budget.queued.fetch_sub(n, Ordering::AcqRel);
        }
    }

    fn close(&self, code: u16, reason: &str) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // A closing connection answers no more pings.
            self.pings.lock().unwrap_or_else(|p| p.into_inner()).clear();
            let mut q = self.lock();
            if !q.dead {
                q.items.push_back(Outbound::Close(code, reason.to_string()));
            }
            drop(q);
            self.ready.notify_one();
        }
    }

    /// Closes the connection as a slow consumer and drops what it has queued (the frame
    /// being written, if any, is finished first; the close frame follows it).
    fn shed(&self) {
        self.overflowed.store(true, Ordering::Release);
        self.close(clawgate_protocol::close::POLICY, "slow consumer");
        let dropped = {
            let mut q = self.lock();
            let items = std::mem::take(&mut q.items);
            let (close, dropped): (VecDeque<_>, VecDeque<_>) = items
                .into_iter()
                .partition(|m| matches!(m, Outbound::Close(..)));
            q.items = close;
            dropped
        };
        self.release(dropped.iter().map(Outbound::weight).sum());
    }
}

/// Drops with the last outlet: tells the writer nothing more will come.
struct Sender {
    shared: Arc<Shared>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.senders_gone.store(true, Ordering::Release);
        self.shared.ready.notify_one();
    }
}

/// The sending side of one connection. Cloned into the registry and the reader task.
#[derive(Clone)]
pub struct Outlet {
    inner: Arc<Sender>,
    max_buffered: usize,
}

/// The writer's end of a connection's queue. Whatever is still queued (or being written)
/// when it is dropped, even by an abort, is released from the counts.
pub struct WriterQueue {
    shared: Arc<Shared>,
    in_progress: usize,
}

impl WriterQueue {
    /// The next message (its bytes stay counted until [`WriterQueue::done`]); `None` once
    /// every outlet is gone and the queue is empty.
    pub async fn next(&mut self) -> Option<Outbound> {
        loop {
            if let Some(m) = self.try_next() {
                return Some(m);
            }
            if self.shared.senders_gone.load(Ordering::Acquire) {
                // Re-check: a message may have been queued just before the last outlet went.
                return self.try_next();
            }
            self.shared.ready.notified().await;
        }
    }

    pub fn try_next(&mut self) -> Option<Outbound> {
        self.done();
        let m = self.shared.lock().items.pop_front()?;
        self.in_progress = m.weight();
        Some(m)
    }

    /// The message taken last was written (or failed): release its bytes.
    pub fn done(&mut self) {
        self.shared.release(std::mem::take(&mut self.in_progress));
    }
}

impl Drop for WriterQueue {
    fn drop(&mut self) {
        // No pong can come any more: whoever waits for one stops waiting.
        self.shared
            .pings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let items = {
            let mut q = self.shared.lock();
            q.dead = true;
            std::mem::take(&mut q.items)
        };
        let left: usize = items.iter().map(Outbound::weight).sum();
        self.shared
            .release(left + std::mem::take(&mut self.in_progress));
    }
}

impl Outlet {
    pub fn new(max_buffered: usize, budget: Arc<Budget>) -> (Outlet, WriterQueue) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                dead: false,
            }),
            ready: Notify::new(),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            senders_gone: AtomicBool::new(false),
            budget,
            pings: Mutex::new(VecDeque::new()),
            next_ping: AtomicU64::new(1),
        });
        (
            Outlet {
                inner: Arc::new(Sender {
                    shared: shared.clone(),
                }),
                max_buffered,
            },
            WriterQueue {
                shared,
                in_progress: 0,
            },
        )
    }

    /// Queues a text frame. A connection whose queue would pass the bound is closed with
    /// 1008 "slow consumer" instead; `false` means the frame was not queued.
    pub fn send(&self, text: String) -> bool {
        let len = text.len();
        self.enqueue(len, Outbound::Text(text))
    }

    /// Queues a ping after everything queued so far; the receiver completes when the peer's
    /// pong for it (or for a later ping) arrives, i.e. once the peer has read every frame
    /// queued before it. `None` when the connection is closing or has too many pings out.
    pub fn round_trip(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        const MAX_PINGS_OUT: usize = 16;
        let s = &self.inner.shared;
        let n = s.next_ping.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut pings = s.pings.lock().unwrap_or_else(|p| p.into_inner());
            pings.retain(|(_, tx)| !tx.is_closed());
            if pings.len() >= MAX_PINGS_OUT {
                return None;
            }
            pings.push_back((n, tx));
        }
        let payload = format!("cg{n}").into_bytes();
        let len = payload.len() + crate::ws::io::PONG_OVERHEAD;
        if !self.enqueue(len, Outbound::Ping(payload)) {
            return None;
        }
        Some(rx)
    }

    /// A pong arrived: completes the round trip of its ping and of every older one (a peer
    /// may answer only the latest of several pings). Unsolicited pongs change nothing.
    pub fn pong_received(&self, payload: &[u8]) {
        let Some(n) = std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.strip_prefix("cg"))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return;
        };
        let s = &self.inner.shared;
        let mut pings = s.pings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = pings.iter().position(|(m, _)| *m == n) else {
            return;
        };
        for (_, tx) in pings.drain(..=at) {
            let _ = tx.send(());
        }
    }

    /// Queues a pong, counted against the same bound as text.
    pub fn pong(&self, payload: Vec<u8>) -> bool {
        let len = payload.len() + crate::ws::io::PONG_OVERHEAD;
        self.enqueue(len, Outbound::Pong(payload))
    }

    /// Counts `len` bytes against this connection's bound and the process-wide budget, then
    /// queues; over either the connection is closed as a slow consumer instead (for the
    /// budget, only when it holds the largest queue or no room can be made).
    fn enqueue(&self, len: usize, msg: Outbound) -> bool {
        let s = &self.inner.shared;
        if s.closed.load(Ordering::Acquire) {
            return false;
        }
        let before = s.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_buffered {
            s.queued.fetch_sub(len, Ordering::AcqRel);
            s.shed();
            return false;
        }
        let budget = &s.budget;
        let total = budget.queued.fetch_add(len, Ordering::AcqRel) + len;
        if total > budget.max && !budget.make_room(s) {
            s.release(len);
            s.shed();
            return false;
        }
        let mut q = s.lock();
        if q.dead {
            drop(q);
            s.release(len);
            return false;
        }
        q.items.push_back(msg);
        drop(q);
        s.ready.notify_one();
        true
    }

    /// Queues a close frame (once); later sends are dropped.
    pub fn close(&self, code: u16, reason: &str) {
        self.inner.shared.close(code, reason);
    }

    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.load(Ordering::Acquire)
    }

    /// Whether the connection was closed as a slow consumer.
    pub fn overflowed(&self) -> bool {
        self.inner.shared.overflowed.load(Ordering::Acquire)
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

pub struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Authenticated connections alive (from `connect` until their socket is released).
    slots: Arc<AtomicUsize>,
    /// `gateway.maxConnections`.
    max_slots: usize,
    /// `gateway.maxBufferedBytesTotal`, shared by every outlet.
    pub budget: Arc<Budget>,
}

/// One of the `gateway.maxConnections` places, held by an authenticated connection.
pub struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Registry {
    pub fn new(max_connections: usize, max_buffered_total: usize) -> Registry {
        Registry {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            slots: Arc::new(AtomicUsize::new(0)),
            max_slots: max_connections,
            budget: Budget::new(max_buffered_total),
        }
    }

    /// A place for one more authenticated connection, or `None` at `gateway.maxConnections`.
    pub fn try_slot(&self) -> Option<ConnSlot> {
        let before = self.slots.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_slots {
            self.slots.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnSlot(self.slots.clone()))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_payload(q: &mut WriterQueue) -> Vec<u8> {
        match q.try_next() {
            Some(Outbound::Ping(p)) => p,
            other => panic!("expected a ping, got {other:?}"),
        }
    }

    #[test]
    fn a_round_trip_completes_on_its_pong_or_a_later_one_and_ends_with_the_connection() {
        let budget = Budget::new(1 << 20);
        let (o, mut q) = Outlet::new(10_000, budget.clone());
        assert!(o.send("ack".into()));
        let mut first = o.round_trip().expect("ping queued");
        let mut second = o.round_trip().expect("ping queued");
        assert!(matches!(q.try_next(), Some(Outbound::Text(t)) if t == "ack"));
        let p1 = ping_payload(&mut q);
        let p2 = ping_payload(&mut q);
        // Unsolicited or foreign pongs change nothing.
        o.pong_received(b"hello");
        o.pong_received(b"cg999999");
        assert!(first.try_recv().is_err() && second.try_recv().is_err());
        // The pong of the second ping completes both (a peer may answer only the latest).
        assert_ne!(p1, p2);
        o.pong_received(&p2);
        assert!(first.try_recv().is_ok());
        assert!(second.try_recv().is_ok());
        // A connection that closes completes (with an error) whoever still waits.
        let mut third = o.round_trip().expect("ping queued");
        o.close(1000, "bye");
        assert!(matches!(
            third.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        ));
        assert!(o.round_trip().is_none(), "no pings on a closing connection");
        drop(q);
        assert_eq!(budget.queued(), 0);
    }

    #[test]
    fn the_largest_queue_is_shed_to_make_room_and_counts_return_to_zero() {
        let budget = Budget::new(1000);
        let (slow, slow_q) = Outlet::new(10_000, budget.clone());
        let (fast, fast_q) = Outlet::new(10_000, budget.clone());
        budget.join(1, &slow);
        budget.join(2, &fast);
        for _ in 0..9 {
            assert!(slow.send("x".repeat(100)));
        }
        assert_eq!(budget.queued(), 900);
        // Passing the total sheds the slow reader, whose queue is dropped at once.
        assert!(fast.send("y".repeat(200)));
        assert!(slow.overflowed() && slow.is_closed());
        assert!(!fast.is_closed());
        assert_eq!(budget.queued(), 200);
        // The sender holding the largest queue is the one closed.
        assert!(!fast.send("z".repeat(900)));
        assert!(fast.overflowed());
        assert_eq!(budget.queued(), 0, "its own queue is dropped too");
        drop((slow_q, fast_q));
        assert_eq!(budget.queued(), 0);
        // Nothing is accepted once the writer is gone.
        let (o, q) = Outlet::new(10_000, budget.clone());
        drop(q);
        assert!(!o.send("late".into()));
        assert_eq!(budget.queued(), 0);
    }

    #[test]
    fn a_shed_queue_keeps_its_close_frame() {
        let budget = Budget::new(1 << 20);
        let (o, mut q) = Outlet::new(250, budget.clone());
        assert!(o.send("a".repeat(200)));
        assert!(!o.send("b".repeat(100)));
        match q.try_next() {
            Some(Outbound::Close(1008, reason)) => assert_eq!(reason, "slow consumer"),
            other => panic!("expected the close frame, got {other:?}"),
        }
        q.done();
        assert_eq!(budget.queued(), 0);
    }
}
