//! Slack request verification (HTTP mode): `X-Slack-Signature` is `v0=` + hex
//! HMAC-SHA256(signing secret, `v0:{X-Slack-Request-Timestamp}:{raw body}`), compared in
//! constant time, and the timestamp must be within 300 s of now (replay window).

use clawgate_config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Present on redeliveries (`1`..`3`); the `event_id` is the same as the first delivery.
pub const RETRY_NUM_HEADER: &str = "x-slack-retry-num";
pub const RETRY_REASON_HEADER: &str = "x-slack-retry-reason";
/// Response header asking Slack not to retry a failed (non-2xx) delivery.
pub const NO_RETRY_HEADER: &str = "x-slack-no-retry";
/// Requests whose timestamp is more than this far from now (either way) are refused.
pub const MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused. Every kind means "401, do nothing".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("X-Slack-Request-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("X-Slack-Request-Timestamp is more than 300 s away from now (replay window)")]
    Stale,
    #[error("X-Slack-Signature does not match the body")]
    BadSignature,
}

/// Holds the signing secret; build once, verify every request.
pub struct Verifier {
    secret: Secret,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier([redacted])")
    }
}

impl Verifier {
    /// Refuses an empty secret (every request would be forgeable by anyone who guesses it).
    pub fn new(signing_secret: Secret) -> Result<Verifier, &'static str> {
        if signing_secret.expose().is_empty() {
            return Err("the Slack signing secret is empty");
        }
        Ok(Verifier {
            secret: signing_secret,
        })
    }

    fn mac(&self, timestamp: &[u8], body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac = HmacSha256::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"v0:");
        mac.update(timestamp);
        mac.update(b":");
        mac.update(body);
        mac
    }

    /// The `X-Slack-Signature` value Slack would send (for fakes and tests).
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let tag = self.mac(timestamp.as_bytes(), body).finalize().into_bytes();
        format!("v0={}", hex::encode(tag))
    }

    /// Checks one request: the two header values as received (raw bytes, `None` when absent),
    /// the raw body bytes (before any parsing) and the current Unix time. The timestamp window
    /// is checked before the signature; the signature compare is constant time.
    pub fn verify(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let ts_raw = timestamp.ok_or(VerifyError::MissingTimestamp)?;
        let sig_raw = signature.ok_or(VerifyError::MissingSignature)?;
        let ts = parse_timestamp(ts_raw).ok_or(VerifyError::BadTimestamp)?;
        if now_unix.abs_diff(ts) > MAX_SKEW_SECS as u64 {
            return Err(VerifyError::Stale);
        }
        let sig_raw = trim_ascii(sig_raw);
        let hex_part = sig_raw
            .strip_prefix(b"v0=")
            .ok_or(VerifyError::BadSignature)?;
        let tag = hex::decode(hex_part).map_err(|_| VerifyError::BadSignature)?;
        self.mac(trim_ascii(ts_raw), body)
            .verify_slice(&tag)
            .map_err(|_| VerifyError::BadSignature)
    }
}

impl Verifier {
    /// [`Verifier::verify`] against the system clock.
    pub fn verify_now(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.verify(timestamp, signature, body, now)
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Decimal seconds only (no sign, no fraction), at most 12 digits.
fn parse_timestamp(raw: &[u8]) -> Option<i64> {
    let t = trim_ascii(raw);
    if t.is_empty() || t.len() > 12 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example (spec §8.1).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1531420618;

    fn v() -> Verifier {
        Verifier::new(Secret::new(SECRET)).unwrap()
    }

    fn check(ts: Option<&str>, sig: Option<&str>, body: &str, now: i64) -> Result<(), VerifyError> {
        v().verify(
            ts.map(str::as_bytes),
            sig.map(str::as_bytes),
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn official_vector_signs_and_verifies() {
        assert_eq!(v().sign(TS, BODY.as_bytes()), SIG);
        assert_eq!(check(Some(TS), Some(SIG), BODY, NOW), Ok(()));
    }

    #[test]
    fn altered_body_is_refused() {
        let body = format!("{BODY}------");
        assert_eq!(
            check(Some(TS), Some(SIG), &body, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn wrong_secret_is_refused() {
        let other = Verifier::new(Secret::new("8f742231b10e8888abcd99yyyzzz85a6")).unwrap();
        assert_eq!(
            other.verify(
                Some(TS.as_bytes()),
                Some(SIG.as_bytes()),
                BODY.as_bytes(),
                NOW
            ),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn replay_window_is_300_seconds_each_way() {
        assert_eq!(check(Some(TS), Some(SIG), BODY, NOW + 300), Ok(()));
        assert_eq!(check(Some(TS), Some(SIG), BODY, NOW - 300), Ok(()));
        assert_eq!(
            check(Some(TS), Some(SIG), BODY, NOW + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            check(Some(TS), Some(SIG), BODY, NOW - 301),
            Err(VerifyError::Stale)
        );
        // The real present: long expired.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(
            check(Some(TS), Some(SIG), BODY, now),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn stale_is_reported_even_with_a_valid_signature_for_a_fresh_body() {
        // A correctly signed but six-minute-old request (a replay) is refused as stale.
        let ts = (NOW - 360).to_string();
        let sig = v().sign(&ts, b"{}");
        assert_eq!(
            check(Some(&ts), Some(&sig), "{}", NOW),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn missing_headers_have_distinct_kinds() {
        assert_eq!(
            check(None, Some(SIG), BODY, NOW),
            Err(VerifyError::MissingTimestamp)
        );
        assert_eq!(
            check(Some(TS), None, BODY, NOW),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            check(None, None, BODY, NOW),
            Err(VerifyError::MissingTimestamp)
        );
    }

    #[test]
    fn malformed_timestamps_and_signatures() {
        for ts in [
            "",
            "abc",
            "-1531420618",
            "1531420618.5",
            "+1531420618",
            "9999999999999",
        ] {
            assert_eq!(
                check(Some(ts), Some(SIG), BODY, NOW),
                Err(VerifyError::BadTimestamp),
                "{ts:?}"
            );
        }
        let upper = SIG.to_uppercase().replacen("V0=", "v0=", 1);
        for sig in [
            "",
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=zz",
            "v0=",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b5",
            &SIG[..SIG.len() - 2],
        ] {
            assert_eq!(
                check(Some(TS), Some(sig), BODY, NOW),
                Err(VerifyError::BadSignature),
                "{sig:?}"
            );
        }
        // Hex case does not matter for the tag bytes.
        assert_eq!(check(Some(TS), Some(&upper), BODY, NOW), Ok(()));
    }

    #[test]
    fn signature_covers_the_timestamp() {
        // Same body and signature with another (fresh) timestamp: refused.
        let ts = (NOW + 10).to_string();
        assert_eq!(
            check(Some(&ts), Some(SIG), BODY, NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_is_refused_and_debug_hides_it() {
        assert!(Verifier::new(Secret::new("")).is_err());
        assert!(!format!("{:?}", v()).contains(SECRET));
    }
}
