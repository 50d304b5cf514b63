//! Budget for WebSocket connections that have not finished `connect`: a global cap and a
//! per-address cap, held by an RAII slot released when the handshake ends either way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Handshakes in progress at once, in total and from one address.
pub const MAX_TOTAL: usize = 256;
pub const MAX_PER_IP: usize = 32;

#[derive(Default)]
pub struct PreauthSlots {
    inner: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub struct Slot {
    slots: Arc<PreauthSlots>,
    ip: IpAddr,
}

impl PreauthSlots {
    /// A slot for `ip`, or `None` when either cap is reached.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let per_ip = g.1.get(&ip).copied().unwrap_or(0);
        if g.0 >= MAX_TOTAL || per_ip >= MAX_PER_IP {
            return None;
        }
        g.0 += 1;
        *g.1.entry(ip).or_default() += 1;
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_cap_and_release() {
        let s = Arc::new(PreauthSlots::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<Slot> = (0..MAX_PER_IP).map(|_| s.acquire(a).unwrap()).collect();
        assert!(s.acquire(a).is_none());
        assert!(s.acquire(b).is_some(), "other addresses are unaffected");
        drop(held);
        assert!(s.acquire(a).is_some());
    }
}
