//! Secrets as a type: never printed, compared only in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret (gateway token or password). `Debug` prints `[redacted]`; there is
/// no `Display`, `Serialize` or `PartialEq`, so it cannot leak by accident.
#[derive(Clone)]
pub struct Secret {
    value: String,
    digest: [u8; 32],
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let digest = Sha256::digest(value.as_bytes()).into();
        Secret { value, digest }
    }

    /// Compares a candidate in constant time (over fixed-length digests, so the
    /// candidate's length leaks nothing either).
    pub fn verify(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        bool::from(self.digest.ct_eq(&d))
    }

    /// The raw value, for the few places that must hand it on (a client sending it,
    /// the dashboard URL, the log redactor).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Estimated strength in bits: length × log2(alphabet of the character classes used),
    /// capped by a distinct-character check so `aaaa…` does not pass.
    pub fn strength_bits(&self) -> f64 {
        strength_bits(&self.value)
    }

    /// Whether the secret carries at least 32 random bytes' worth (256 bits).
    pub fn is_strong(&self) -> bool {
        self.strength_bits() >= 256.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

pub fn strength_bits(s: &str) -> f64 {
    let len = s.chars().count() as f64;
    if len == 0.0 {
        return 0.0;
    }
    let has = |f: fn(char) -> bool| s.chars().any(f);
    let per_char = if s
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        4.0 // lowercase hex
    } else {
        let mut alphabet = 0u32;
        if has(|c| c.is_ascii_lowercase()) {
            alphabet += 26;
        }
        if has(|c| c.is_ascii_uppercase()) {
            alphabet += 26;
        }
        if has(|c| c.is_ascii_digit()) {
            alphabet += 10;
        }
        if has(|c| c == '-' || c == '_') {
            alphabet += 2;
        }
        if has(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '_') {
            alphabet += 32;
        }
        f64::from(alphabet).log2()
    };
    // A secret drawn from few distinct symbols is far weaker than its length says.
    let mut distinct: Vec<char> = s.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let distinct_bits = (distinct.len() as f64).log2() * 2.0;
    len * per_char.min(distinct_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_is_exact() {
        let s = Secret::new("abc");
        assert!(s.verify("abc"));
        assert!(!s.verify("abd"));
        assert!(!s.verify("ab"));
        assert!(!s.verify(""));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }

    #[test]
    fn strength() {
        // 32 random bytes, base64url: strong.
        assert!(Secret::new("Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg").is_strong());
        // 64 hex characters: 256 bits.
        assert!(
            Secret::new("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .is_strong()
        );
        assert!(!Secret::new("changeme").is_strong());
        assert!(!Secret::new("testtoken123").is_strong());
        assert!(!Secret::new("a".repeat(200)).is_strong());
        assert!(
            !Secret::new("abababababababababababababababababababababababababababab").is_strong()
        );
    }
}
