//! Failed-auth throttling per client address. The check runs before any comparison, and a
//! locked-out address is refused even with the right secret until the lockout ends.

use clawgate_config::RateLimit;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound on tracked addresses; locked-out entries are never evicted to make room.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

pub struct AuthRateLimiter {
    policy: RateLimit,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// IPv4-mapped IPv6 addresses share a bucket with their IPv4 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl AuthRateLimiter {
    pub fn new(policy: RateLimit) -> Self {
        AuthRateLimiter {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after_ms)` while the address is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let map = self.lock();
        match map.get(&canonical_ip(ip)).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(ms(until - now)),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns the lockout length when this failure started one.
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let window = Duration::from_millis(self.policy.window_ms);
        let mut map = self.lock();
        let key = canonical_ip(ip);
        if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
            prune(&mut map, now, window);
        }
        if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
            // Still full of live lockouts: refuse to track more rather than evict one.
            return None;
        }
        let entry = map.entry(key).or_default();
        while entry.failures.front().is_some_and(|t| now - *t > window) {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= self.policy.max_attempts as usize {
            entry.failures.clear();
            entry.locked_until = Some(now + Duration::from_millis(self.policy.lockout_ms));
            return Some(self.policy.lockout_ms);
        }
        None
    }

    /// A successful login clears the address's failure history.
    pub fn record_success(&self, ip: IpAddr) {
        let mut map = self.lock();
        let key = canonical_ip(ip);
        if map.get(&key).is_some_and(|e| e.locked_until.is_none()) {
            map.remove(&key);
        }
    }

    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

fn prune(map: &mut HashMap<IpAddr, Entry>, now: Instant, window: Duration) {
    map.retain(|_, e| {
        let locked = e.locked_until.is_some_and(|u| u > now);
        let recent = e.failures.back().is_some_and(|t| now - *t <= window);
        locked || recent
    });
    if map.len() >= MAX_ENTRIES {
        // Drop the unlocked entries with the oldest last failure.
        let mut unlocked: Vec<(IpAddr, Instant)> = map
            .iter()
            .filter(|(_, e)| e.locked_until.is_none_or(|u| u <= now))
            .filter_map(|(k, e)| e.failures.back().map(|t| (*k, *t)))
            .collect();
        unlocked.sort_by_key(|(_, t)| *t);
        for (k, _) in unlocked.into_iter().take(MAX_ENTRIES / 10) {
            map.remove(&k);
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: u32) -> AuthRateLimiter {
        AuthRateLimiter::new(RateLimit {
            max_attempts: max,
            window_ms: 60_000,
            lockout_ms: 60_000,
        })
    }

    #[test]
    fn locks_after_max_failures() {
        let l = limiter(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.check(ip).is_ok());
        assert_eq!(l.record_failure(ip), None);
        assert_eq!(l.record_failure(ip), None);
        assert_eq!(l.record_failure(ip), Some(60_000));
        assert!(l.check(ip).is_err());
        // A success during the lockout does not lift it.
        l.record_success(ip);
        assert!(l.check(ip).is_err());
        // Other addresses are unaffected.
        assert!(l.check("127.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn mapped_addresses_share_a_bucket() {
        let l = limiter(2);
        l.record_failure("1.2.3.4".parse().unwrap());
        l.record_failure("::ffff:1.2.3.4".parse().unwrap());
        assert!(l.check("1.2.3.4".parse().unwrap()).is_err());
    }

    #[test]
    fn success_resets_history() {
        let l = limiter(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        l.record_failure(ip);
        l.record_success(ip);
        assert_eq!(l.record_failure(ip), None);
        assert!(l.check(ip).is_ok());
    }

    #[test]
    fn map_is_bounded() {
        let l = limiter(100);
        for i in 0..(MAX_ENTRIES as u32 + 500) {
            l.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(i + 1)));
        }
        assert!(l.tracked() <= MAX_ENTRIES);
    }
}
