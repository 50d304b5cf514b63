//! Retry timing shared by every client that talks to the outside: the platform APIs
//! (Telegram, Slack, …), their receivers (poll loops, sockets), the outbox and the LLM
//! providers. Callers keep their own loops (what is retried, and when to give up, differs:
//! a durable outbox row stores its next attempt time, a provider stream must not repeat
//! output), but they all take their delays from a [`Backoff`] and read a platform's hint
//! with [`retry_after`], so the curve, the caps and the jitter are the same everywhere.

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` hint honoured: a platform asking for more than an hour is
/// treated as asking for an hour.
pub const MAX_HINT: Duration = Duration::from_secs(3600);

/// Exponential backoff: `base · 2^attempt`, capped at `max`, with an optional random part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (attempt 0).
    pub base: Duration,
    /// No delay is longer than this (before a platform's hint is applied).
    pub max: Duration,
    /// How much of each delay is random, in percent (0–100). With `p`, a delay `d` becomes a
    /// value in `[d·(1 − p/100), d]`, so callers that retry at the same time spread out.
    pub jitter_percent: u8,
}

impl Backoff {
    /// A curve without jitter.
    pub const fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            jitter_percent: 0,
        }
    }

    /// The same curve with `percent` of each delay random.
    pub const fn jitter(self, percent: u8) -> Backoff {
        Backoff {
            jitter_percent: if percent > 100 { 100 } else { percent },
            ..self
        }
    }

    /// Platform API calls and outbox retries: 0.5 s doubling to 30 s, half of it random.
    pub const API: Backoff =
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30)).jitter(50);

    /// Receivers that reconnect (sockets, long polls): 2 s doubling to 30 s, as OpenClaw
    /// restarts its channel monitors; a quarter random.
    pub const RECONNECT: Backoff =
        Backoff::new(Duration::from_secs(2), Duration::from_secs(30)).jitter(25);

    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        if self.jitter_percent == 0 {
            return full;
        }
        let span = full.as_millis() as u64 * u64::from(self.jitter_percent) / 100;
        let cut = if span == 0 {
            0
        } else {
            random_u64() % (span + 1)
        };
        full - Duration::from_millis(cut)
    }

    /// The delay before retry `attempt` when the platform may have said how long to wait:
    /// its hint wins when it is longer than the curve (capped at [`MAX_HINT`]).
    pub fn delay_with_hint(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let own = self.delay(attempt);
        match hint {
            Some(h) => h.min(MAX_HINT).max(own),
            None => own,
        }
    }
}

/// A `Retry-After` header (RFC 9110 §10.2.3): delay-seconds, or an HTTP date. Decimal
/// seconds (sent by some LLM APIs) are accepted; a date in the past is zero; anything beyond
/// [`MAX_HINT`] is capped; garbage is `None`.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(v, SystemTime::now())
}

/// [`retry_after`] on the header's text, relative to `now`.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(secs.min(MAX_HINT.as_secs_f64())));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Jitter only spreads retries; without randomness the full delay is used.
    if getrandom::fill(&mut b).is_err() {
        return 0;
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_curve_doubles_to_its_cap() {
        let b = Backoff::new(s(2), s(30));
        let d: Vec<u64> = (0..8).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(d, [2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(b.delay(u32::MAX), s(30));
    }

    #[test]
    fn jitter_stays_inside_its_band() {
        let b = Backoff::new(s(4), s(60)).jitter(50);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = b.delay(0);
            assert!(d >= s(2) && d <= s(4), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 1, "no randomness in the jitter");
        assert_eq!(Backoff::new(s(4), s(60)).jitter(250).jitter_percent, 100);
    }

    #[test]
    fn a_longer_hint_wins_and_is_capped() {
        let b = Backoff::new(s(1), s(30));
        assert_eq!(b.delay_with_hint(0, Some(s(7))), s(7));
        assert_eq!(b.delay_with_hint(5, Some(s(7))), s(30));
        assert_eq!(b.delay_with_hint(0, Some(s(99_999))), MAX_HINT);
        assert_eq!(b.delay_with_hint(0, None), s(1));
    }

    #[test]
    fn retry_after_seconds_dates_and_garbage() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(s(120)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_HINT));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(s(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-1", "NaN", "inf", "soon", "1e400"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(s(3)));
    }
}
