//! Budget for WebSocket connections that have not finished `connect`.
//!
//! At most [`MAX_TOTAL`] handshakes run at once, held by RAII slots released when the
//! handshake ends either way. There is no fixed per-address cap (a burst of legitimate local
//! connects from one address must all get through); instead, when every slot is taken:
//! - an *idle* handshake (no frame from the client yet) older than [`EVICT_AFTER`] is evicted
//!   for the newcomer, taken from the address that holds the most slots, oldest first: under
//!   pressure the handshake deadline of idle sockets shrinks to `EVICT_AFTER`;
//! - when nothing can be evicted yet, the upgrade waits up to [`QUEUE_WAIT`] for a slot
//!   ([`MAX_WAITING`] waiters at most, [`MAX_WAITING_PER_ADDR`] per address), then gets 503.
//!
//! A client that sends its `connect` promptly is never evicted, so a slowloris holding every
//! slot delays a legitimate client by at most `EVICT_AFTER`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Handshakes in progress at once.
pub const MAX_TOTAL: usize = 256;
/// Under pressure, an idle handshake this old may be evicted for a newcomer.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);
/// How long an upgrade waits for a slot before it is refused with 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Upgrades waiting for a slot, in total and from one address.
pub const MAX_WAITING: usize = 256;
pub const MAX_WAITING_PER_ADDR: usize = 64;
/// Pre-auth connections that may linger at once after their handshake failed (delivering the
/// close frame); beyond this they are dropped at once.
pub const MAX_LINGERING: usize = 256;

/// The address bucket a handshake counts against: IPv4 exact, IPv6 by /64 (one host
/// usually owns a whole /64).
fn group_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

struct Entry {
    group: IpAddr,
    started: Instant,
    /// The client has sent a frame: it is handshaking, not idling.
    busy: AtomicBool,
    evict: Notify,
}

#[derive(Default)]
struct State {
    next_id: u64,
    entries: HashMap<u64, Arc<Entry>>,
    per_group: HashMap<IpAddr, usize>,
    waiting: usize,
    waiting_per_group: HashMap<IpAddr, usize>,
}

impl State {
    fn forget(&mut self, id: u64) -> bool {
        let Some(e) = self.entries.remove(&id) else {
            return false;
        };
        dec(&mut self.per_group, e.group);
        true
    }
}

fn dec(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

pub struct PreauthSlots {
    inner: Mutex<State>,
    freed: Notify,
    lingering: Arc<tokio::sync::Semaphore>,
}

impl Default for PreauthSlots {
    fn default() -> Self {
        PreauthSlots {
            inner: Mutex::default(),
            freed: Notify::new(),
            lingering: Arc::new(tokio::sync::Semaphore::new(MAX_LINGERING)),
        }
    }
}

/// One handshake's place; dropping it frees the place.
pub struct Slot {
    slots: Arc<PreauthSlots>,
    id: u64,
    entry: Arc<Entry>,
}

impl Slot {
    /// The client sent a frame: from now on the slot is not evicted.
    pub fn mark_busy(&self) {
        self.entry.busy.store(true, Ordering::Release);
    }

    /// A permit to linger after a failed handshake, if fewer than [`MAX_LINGERING`] do.
    pub fn linger_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.lingering.clone().try_acquire_owned().ok()
    }

    /// Resolves when the slot was taken away for a newcomer.
    pub async fn evicted(&self) {
        self.entry.evict.notified().await;
    }
}

/// Why no slot was granted right away.
enum Busy {
    /// An idle handshake becomes evictable after this long.
    RetryIn(Duration),
    /// Every slot is held by a client that is handshaking; wait for a release.
    Full,
}

impl PreauthSlots {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Busy> {
        let group = group_of(ip);
        let mut g = self.lock();
        if g.entries.len() >= MAX_TOTAL {
            let now = Instant::now();
            let mut victim: Option<(usize, Duration, u64)> = None;
            let mut soonest: Option<Duration> = None;
            for (id, e) in &g.entries {
                if e.busy.load(Ordering::Acquire) {
                    continue;
                }
                let age = now.saturating_duration_since(e.started);
                if age < EVICT_AFTER {
                    let left = EVICT_AFTER - age;
                    soonest = Some(soonest.map_or(left, |s| s.min(left)));
                    continue;
                }
                let key = (g.per_group.get(&e.group).copied().unwrap_or(0), age, *id);
                if victim.is_none_or(|v| (key.0, key.1) > (v.0, v.1)) {
                    victim = Some(key);
                }
            }
            let Some((_, _, id)) = victim else {
                return Err(soonest.map_or(Busy::Full, Busy::RetryIn));
            };
            if let Some(e) = g.entries.get(&id).cloned() {
                g.forget(id);
                e.evict.notify_one();
            }
        }
        g.next_id += 1;
        let id = g.next_id;
        let entry = Arc::new(Entry {
            group,
            started: Instant::now(),
            busy: AtomicBool::new(false),
            evict: Notify::new(),
        });
        g.entries.insert(id, entry.clone());
        *g.per_group.entry(group).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            id,
            entry,
        })
    }

    /// A slot for `ip`: at once, by evicting an idle handshake, or after waiting up to
    /// [`QUEUE_WAIT`]. `None` means the upgrade should be refused (503).
    pub async fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if let Ok(slot) = self.try_acquire(ip) {
            return Some(slot);
        }
        let group = group_of(ip);
        {
            let mut g = self.lock();
            let mine = g.waiting_per_group.get(&group).copied().unwrap_or(0);
            if g.waiting >= MAX_WAITING || mine >= MAX_WAITING_PER_ADDR {
                return None;
            }
            g.waiting += 1;
            *g.waiting_per_group.entry(group).or_default() += 1;
        }
        let _waiter = Waiter {
            slots: self.as_ref(),
            group,
        };
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // A release may have happened between the last attempt and `enable`.
            let busy = match self.try_acquire(ip) {
                Ok(slot) => return Some(slot),
                Err(b) => b,
            };
            let wake = match busy {
                Busy::RetryIn(d) => (tokio::time::Instant::now() + d).min(deadline),
                Busy::Full => deadline,
            };
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return self.try_acquire(ip).ok();
            }
        }
    }

    /// Handshakes in progress.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Unregisters a waiting upgrade however its wait ends.
struct Waiter<'a> {
    slots: &'a PreauthSlots,
    group: IpAddr,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut g = self.slots.lock();
        g.waiting = g.waiting.saturating_sub(1);
        dec(&mut g.waiting_per_group, self.group);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let freed = self.slots.lock().forget(self.id);
        if freed {
            self.slots.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn one_address_may_use_every_slot() {
        let s = Arc::new(PreauthSlots::default());
        let held: Vec<Slot> = (0..MAX_TOTAL)
            .map(|_| s.try_acquire(ip("127.0.0.1")).ok().unwrap())
            .collect();
        assert_eq!(s.len(), MAX_TOTAL);
        drop(held);
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn full_table_evicts_the_oldest_idle_of_the_heaviest_address() {
        let s = Arc::new(PreauthSlots::default());
        let mut held = Vec::new();
        // One busy legitimate handshake, then the rest from two attacking addresses.
        let legit = s.try_acquire(ip("127.0.0.1")).ok().unwrap();
        legit.mark_busy();
        for i in 0..MAX_TOTAL - 1 {
            let a = if i % 3 == 0 { "127.0.0.2" } else { "127.0.0.3" };
            held.push(s.try_acquire(ip(a)).ok().unwrap());
        }
        // Nothing is old enough yet: the newcomer would have to wait.
        assert!(matches!(
            s.try_acquire(ip("127.0.0.9")),
            Err(Busy::RetryIn(_))
        ));
        std::thread::sleep(EVICT_AFTER);
        let newcomer = s.try_acquire(ip("127.0.0.9")).ok().unwrap();
        // The victim is the first socket of the heavier address 127.0.0.3 (index 1).
        let evicted: Vec<usize> = held
            .iter()
            .enumerate()
            .filter(|(_, sl)| !s.lock().entries.contains_key(&sl.id))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(evicted, vec![1]);
        assert!(s.lock().entries.contains_key(&legit.id));
        drop(newcomer);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_released_slot() {
        let s = Arc::new(PreauthSlots::default());
        let held: Vec<Slot> = (0..MAX_TOTAL)
            .map(|_| {
                let sl = s.try_acquire(ip("127.0.0.2")).ok().unwrap();
                sl.mark_busy();
                sl
            })
            .collect();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.acquire(ip("127.0.0.1")).await.is_some() });
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
