//! Caps on open HTTP connections, taken in the accept loop before any byte is read. A slot
//! is held from accept until hyper is done with the connection: the request/response
//! exchanges, or the upgrade (a WebSocket then counts against the pre-auth budget until
//! `connect`, and against nothing here).
//!
//! - In total: `gateway.maxHttpConnections`.
//! - Non-loopback peers together may hold at most three quarters of that, so a flood from
//!   many remote addresses cannot take the last slots from the local CLI.
//! - One non-loopback address (an IPv6 /64) that is not a trusted proxy:
//!   `gateway.maxHttpConnectionsPerAddress`. Loopback has no per-address cap: it is one
//!   client machine whose many local clients (CLI, TUI, a same-host reverse proxy carrying
//!   everyone's traffic) would all share it; a trusted proxy likewise.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Where a connection comes from, as far as the caps are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClass {
    Loopback,
    /// A non-loopback trusted proxy: remote share, no per-address cap.
    TrustedProxy,
    /// Any other peer, by its rate-limit bucket (IPv4 address or IPv6 /64).
    Remote(IpAddr),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    RemoteShare,
    PerAddress,
}

#[derive(Default)]
struct Counts {
    total: usize,
    remote: usize,
    per: HashMap<IpAddr, usize>,
}

pub struct HttpConns {
    max_total: usize,
    max_remote: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

/// Released on drop.
pub struct ConnSlot {
    conns: Arc<HttpConns>,
    class: PeerClass,
}

impl HttpConns {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        let max_total = max_total.max(1);
        HttpConns {
            max_total,
            max_remote: (max_total - max_total / 4).max(1),
            max_per_address: max_per_address.max(1),
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn try_acquire(self: &Arc<Self>, class: PeerClass) -> Result<ConnSlot, Refused> {
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(Refused::Total);
        }
        if class != PeerClass::Loopback && c.remote >= self.max_remote {
            return Err(Refused::RemoteShare);
        }
        if let PeerClass::Remote(key) = class {
            let n = c.per.entry(key).or_default();
            if *n >= self.max_per_address {
                return Err(Refused::PerAddress);
            }
            *n += 1;
        }
        c.total += 1;
        if class != PeerClass::Loopback {
            c.remote += 1;
        }
        Ok(ConnSlot {
            conns: self.clone(),
            class,
        })
    }

    /// (total, non-loopback) connections open now.
    pub fn open(&self) -> (usize, usize) {
        let c = self.lock();
        (c.total, c.remote)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.conns.lock();
        c.total = c.total.saturating_sub(1);
        if self.class != PeerClass::Loopback {
            c.remote = c.remote.saturating_sub(1);
        }
        if let PeerClass::Remote(key) = self.class {
            if let Some(n) = c.per.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per.remove(&key);
                }
            }
        }
    }
}

/// What a refused connection is told (written without waiting, then the socket is closed).
pub const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\ncache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 63\r\n\r\n{\"error\":{\"code\":\"busy\",\"message\":\"too many open connections\"}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn busy_response_length_is_right() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body.len(), 63);
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }

    #[test]
    fn caps_total_share_and_per_address() {
        let c = Arc::new(HttpConns::new(8, 2));
        let a = PeerClass::Remote(ip("10.0.0.1"));
        let s1 = c.try_acquire(a).unwrap();
        let _s2 = c.try_acquire(a).unwrap();
        assert_eq!(c.try_acquire(a).err(), Some(Refused::PerAddress));
        drop(s1);
        let _s3 = c.try_acquire(a).unwrap();
        let mut held = Vec::new();
        for i in 2..6 {
            held.push(c.try_acquire(PeerClass::Remote(ip(&format!("10.0.0.{i}")))));
        }
        // 6 remote = 8 - 8/4: the remote share is full, loopback still gets in.
        assert_eq!(
            c.try_acquire(PeerClass::TrustedProxy).err(),
            Some(Refused::RemoteShare)
        );
        let _l1 = c.try_acquire(PeerClass::Loopback).unwrap();
        let _l2 = c.try_acquire(PeerClass::Loopback).unwrap();
        assert_eq!(
            c.try_acquire(PeerClass::Loopback).err(),
            Some(Refused::Total)
        );
        drop(held);
        assert_eq!(c.open(), (4, 2));
    }
}
