//! Failed-auth throttling, one limiter for WebSocket logins and webhook secrets. The check
//! runs before any comparison, and a locked-out client is refused even with the right secret
//! until the lockout ends.
//!
//! Buckets: all of loopback is one client machine (127.0.0.0/8, `::1` and their mapped forms
//! share one bucket); an IPv6 client is its /64 (one host usually holds the whole prefix);
//! an IPv4 client is its address. On top of the buckets a global budget caps failures from
//! non-loopback clients across all addresses: past `globalMaxAttempts` in `windowMs`, every
//! non-loopback bucket without a recent success is locked out for `lockoutMs`. Loopback is
//! exempt from the global budget (it has its own bucket, and the local CLI must keep working
//! while a remote botnet guesses), and so are buckets that authenticated successfully within
//! [`KNOWN_GOOD`]. The map is bounded: when full, expired entries go first, then the
//! least recently touched ones, locked or not (the global budget covers what eviction frees).

use clawgate_config::{is_loopback_ip, RateLimit};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound on tracked buckets.
pub const MAX_ENTRIES: usize = 10_000;
/// How long a successful authentication exempts its bucket from the global budget.
pub const KNOWN_GOOD: Duration = Duration::from_secs(24 * 3600);

struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    good_until: Option<Instant>,
    touched: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry {
            failures: VecDeque::new(),
            locked_until: None,
            good_until: None,
            touched: now,
        }
    }

    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|u| *u > now)
    }

    fn good(&self, now: Instant) -> bool {
        self.good_until.is_some_and(|u| u > now)
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<IpAddr, Entry>,
    /// Recent failures from non-loopback buckets (at most `global_max_attempts`).
    global: VecDeque<Instant>,
    global_locked_until: Option<Instant>,
}

pub struct AuthRateLimiter {
    policy: RateLimit,
    state: Mutex<State>,
}

/// IPv4-mapped IPv6 addresses share a bucket with their IPv4 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The bucket an address counts against: `127.0.0.1` for any loopback address, the /64
/// network address for IPv6, the address itself for IPv4.
pub fn bucket(ip: IpAddr) -> IpAddr {
    let ip = canonical_ip(ip);
    if is_loopback_ip(ip) {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    }
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn is_loopback_bucket(key: IpAddr) -> bool {
    key == IpAddr::V4(Ipv4Addr::LOCALHOST)
}

impl AuthRateLimiter {
    pub fn new(policy: RateLimit) -> Self {
        AuthRateLimiter {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.policy.window_ms)
    }

    /// `Err(retry_after_ms)` while the client's bucket, or (for non-loopback clients without
    /// a recent success) the global budget, is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let key = bucket(ip);
        let st = self.lock();
        let entry = st.entries.get(&key);
        if let Some(until) = entry.and_then(|e| e.locked(now)) {
            return Err(ms(until - now));
        }
        if is_loopback_bucket(key) || entry.is_some_and(|e| e.good(now)) {
            return Ok(());
        }
        match st.global_locked_until {
            Some(until) if until > now => Err(ms(until - now)),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns the lockout length when this failure started one.
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let window = self.window();
        let lockout = Duration::from_millis(self.policy.lockout_ms);
        let key = bucket(ip);
        let mut st = self.lock();
        if !is_loopback_bucket(key) {
            let global_max = self.policy.global_max_attempts.max(1) as usize;
            while st.global.front().is_some_and(|t| now - *t > window) {
                st.global.pop_front();
            }
            st.global.push_back(now);
            if st.global.len() >= global_max {
                st.global.clear();
                st.global_locked_until = Some(now + lockout);
                tracing::warn!(
                    "{global_max} failed authentications from many addresses within {} ms: \
                     refusing every remote client without a recent success for {} ms",
                    self.policy.window_ms,
                    self.policy.lockout_ms
                );
            }
        }
        if !st.entries.contains_key(&key) && st.entries.len() >= MAX_ENTRIES {
            make_room(&mut st.entries, now, window);
        }
        let entry = st.entries.entry(key).or_insert_with(|| Entry::new(now));
        entry.touched = now;
        while entry.failures.front().is_some_and(|t| now - *t > window) {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= self.policy.max_attempts as usize {
            entry.failures.clear();
            entry.locked_until = Some(now + lockout);
            return Some(self.policy.lockout_ms);
        }
        None
    }

    /// A successful authentication clears the bucket's failure history (not a running
    /// lockout) and exempts it from the global budget for [`KNOWN_GOOD`].
    pub fn record_success(&self, ip: IpAddr) {
        let now = Instant::now();
        let key = bucket(ip);
        let mut st = self.lock();
        if !st.entries.contains_key(&key) && st.entries.len() >= MAX_ENTRIES {
            make_room(&mut st.entries, now, self.window());
        }
        let entry = st.entries.entry(key).or_insert_with(|| Entry::new(now));
        entry.touched = now;
        if entry.locked(now).is_none() {
            entry.failures.clear();
            entry.locked_until = None;
        }
        entry.good_until = Some(now + KNOWN_GOOD);
    }

    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Drops what no longer matters, then (still full) the least recently touched tenth,
/// lockouts included: tracking new clients matters more than the oldest lockout.
fn make_room(map: &mut HashMap<IpAddr, Entry>, now: Instant, window: Duration) {
    map.retain(|_, e| {
        let recent = e.failures.back().is_some_and(|t| now - *t <= window);
        e.locked(now).is_some() || recent || e.good(now)
    });
    if map.len() >= MAX_ENTRIES {
        let mut by_age: Vec<(IpAddr, Instant)> = map.iter().map(|(k, e)| (*k, e.touched)).collect();
        by_age.sort_by_key(|(_, t)| *t);
        for (k, _) in by_age.into_iter().take(MAX_ENTRIES / 10) {
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
        limiter_global(max, 1_000_000)
    }

    fn limiter_global(max: u32, global: u32) -> AuthRateLimiter {
        AuthRateLimiter::new(RateLimit {
            max_attempts: max,
            window_ms: 60_000,
            lockout_ms: 60_000,
            global_max_attempts: global,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_after_max_failures() {
        let l = limiter(3);
        let a = ip("10.0.0.1");
        assert!(l.check(a).is_ok());
        assert_eq!(l.record_failure(a), None);
        assert_eq!(l.record_failure(a), None);
        assert_eq!(l.record_failure(a), Some(60_000));
        assert!(l.check(a).is_err());
        // A success during the lockout does not lift it.
        l.record_success(a);
        assert!(l.check(a).is_err());
        // Other addresses are unaffected.
        assert!(l.check(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn mapped_addresses_share_a_bucket() {
        let l = limiter(2);
        l.record_failure(ip("1.2.3.4"));
        l.record_failure(ip("::ffff:1.2.3.4"));
        assert!(l.check(ip("1.2.3.4")).is_err());
    }

    #[test]
    fn all_loopback_is_one_bucket() {
        let l = limiter(3);
        l.record_failure(ip("127.0.0.2"));
        l.record_failure(ip("::1"));
        l.record_failure(ip("::ffff:127.9.9.9"));
        for a in ["127.0.0.1", "127.255.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(l.check(ip(a)).is_err(), "{a}");
        }
        assert!(l.check(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn ipv6_is_bucketed_by_64() {
        let l = limiter(2);
        l.record_failure(ip("2001:db8:1:2::1"));
        l.record_failure(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(l.check(ip("2001:db8:1:2::abcd")).is_err());
        assert!(l.check(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn success_resets_history() {
        let l = limiter(2);
        let a = ip("10.0.0.1");
        l.record_failure(a);
        l.record_success(a);
        assert_eq!(l.record_failure(a), None);
        assert!(l.check(a).is_ok());
    }

    #[test]
    fn global_budget_spares_loopback_and_known_good() {
        let l = limiter_global(100, 10);
        let good = ip("192.0.2.1");
        l.record_success(good);
        for i in 0..10u32 {
            l.record_failure(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(
            l.check(ip("198.51.100.1")).is_err(),
            "fresh address refused"
        );
        assert!(l.check(ip("2001:db8::1")).is_err());
        assert!(l.check(ip("127.0.0.1")).is_ok(), "loopback exempt");
        assert!(l.check(good).is_ok(), "known-good exempt");
        // Loopback failures do not feed the global budget.
        let l = limiter_global(1000, 5);
        for _ in 0..20 {
            l.record_failure(ip("127.0.0.1"));
        }
        assert!(l.check(ip("198.51.100.1")).is_ok());
    }

    #[test]
    fn a_full_map_evicts_instead_of_failing_open() {
        let l = limiter_global(1, u32::MAX);
        // Fill the map with live lockouts (one failure each locks with max_attempts 1).
        for i in 0..MAX_ENTRIES as u32 {
            l.record_failure(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert_eq!(l.tracked(), MAX_ENTRIES);
        let newcomer = ip("203.0.113.5");
        assert_eq!(l.record_failure(newcomer), Some(60_000), "still tracked");
        assert!(l.check(newcomer).is_err());
        assert!(l.tracked() <= MAX_ENTRIES);
    }
}
