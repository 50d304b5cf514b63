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

    /// Both strength estimates (see [`assess`]).
    pub fn strength(&self) -> Strength {
        assess(&self.value)
    }

    /// Whether the secret is strong enough for a non-loopback bind (see [`Strength::is_strong`]).
    pub fn is_strong(&self) -> bool {
        self.strength().is_strong()
    }
}

/// The bar for a non-loopback bind, in both estimators.
pub const MIN_STRENGTH_BITS: f64 = 256.0;
/// zxcvbn counts guesses in a `u64` (at most ≈10^19.27), so on a whole secret it cannot tell
/// 64 bits from 256; what it can tell is structure. The whole secret must leave it nothing
/// cheaper than ≈10^19 guesses: every 32-random-byte token reaches the ceiling, while a
/// repeat of anything (`password`×8, `0123456789abcdef`×4) falls far below it.
pub const MIN_GUESSES_LOG10: f64 = 19.0;
/// Rated in pieces of [`CHUNK_CHARS`] characters (each far below the `u64` ceiling), the
/// sum of the pieces' log10 guesses must reach this. zxcvbn credits a random character with
/// only 10 guesses, so 43 random base64url characters (32 bytes) score ≈10^43 (the lowest of
/// 2,000 draws: 10^39; 64 hex characters: ≥10^56), while concatenated patterns such as
/// keyboard rows and alphabets score in the 10^10s–10^20s.
pub const MIN_CHUNKED_GUESSES_LOG10: f64 = 32.0;
const CHUNK_CHARS: usize = 16;

/// What the strength estimators say about a secret. Holds no part of the secret.
#[derive(Debug, Clone)]
pub struct Strength {
    /// Length × alphabet estimate ([`strength_bits`]).
    pub bits: f64,
    /// zxcvbn's estimate of the guesses an attacker needs for the whole secret (log10,
    /// at most ≈19.27; zxcvbn examines the first 100 characters).
    pub guesses_log10: f64,
    /// The sum of zxcvbn's log10 guesses over 16-character pieces.
    pub chunked_guesses_log10: f64,
    /// zxcvbn's score, 0–4.
    pub score: u8,
    /// zxcvbn's generic warning (a fixed sentence such as "Repeats like \"abcabcabc\" are
    /// only slightly harder to guess than \"abc\"."), if any.
    pub warning: Option<String>,
}

impl Strength {
    /// 256 bits by length and alphabet, AND zxcvbn score 4 with ≥10^19 guesses for the whole
    /// secret, AND ≥10^32 guesses summed over its pieces.
    pub fn is_strong(&self) -> bool {
        self.bits >= MIN_STRENGTH_BITS
            && self.score >= 4
            && self.guesses_log10 >= MIN_GUESSES_LOG10
            && self.chunked_guesses_log10 >= MIN_CHUNKED_GUESSES_LOG10
    }

    /// Why it is weak, in words that quote nothing of the secret.
    pub fn reason(&self) -> String {
        if self.bits < MIN_STRENGTH_BITS {
            return format!(
                "≈{:.0} bits by length and alphabet; need 32 random bytes' worth, 256 bits",
                self.bits
            );
        }
        let mut r = format!(
            "it follows a pattern a password guesser tries early (zxcvbn: ≈10^{:.0} guesses, ≈10^{:.0} piecewise)",
            self.guesses_log10.max(0.0),
            self.chunked_guesses_log10.max(0.0)
        );
        if let Some(w) = &self.warning {
            r.push_str(": ");
            r.push_str(w.trim_end_matches('.'));
        }
        r
    }
}

/// Rates `s` with both estimators.
pub fn assess(s: &str) -> Strength {
    let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    let bits = strength_bits(s);
    let z = zxcvbn::zxcvbn(s, &[]);
    let chars: Vec<char> = s.chars().collect();
    let chunked = chars
        .chunks(CHUNK_CHARS)
        .map(|c| finite(zxcvbn::zxcvbn(&c.iter().collect::<String>(), &[]).guesses_log10()))
        .sum();
    Strength {
        bits,
        guesses_log10: finite(z.guesses_log10()),
        chunked_guesses_log10: chunked,
        score: z.score() as u8,
        warning: z
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string()),
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

    #[test]
    fn patterned_secrets_are_weak_even_when_long() {
        for weak in [
            "password".repeat(8),
            "0123456789abcdef".repeat(4),
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_string(),
            "Tr0ub4dor&3".repeat(6),
            "qwertyuiopasdfghjklzxcvbnm1234567890QWERTYUIOPASDFGHJKLZXCVBNM".to_string(),
        ] {
            let s = Secret::new(weak.clone());
            assert!(
                s.strength_bits() >= 256.0,
                "the old estimate passed it: {weak}"
            );
            assert!(!s.is_strong(), "{weak}: {:?}", s.strength());
            assert!(!s.strength().reason().contains(&weak));
        }
    }

    #[test]
    fn random_tokens_are_strong() {
        use base64::Engine;
        // (About 1 draw in 1,000 of base64url lacks a digit or `-`/`_` and falls short of 256
        // bits by the alphabet estimate; generate_token draws again. zxcvbn never objects.)
        for _ in 0..100 {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).unwrap();
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let a = assess(&b64);
            assert!(
                a.score == 4 && a.guesses_log10 >= MIN_GUESSES_LOG10,
                "{b64}: {a:?}"
            );
            assert!(
                a.chunked_guesses_log10 >= MIN_CHUNKED_GUESSES_LOG10,
                "{b64}: {a:?}"
            );
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            assert!(
                Secret::new(hex.clone()).is_strong(),
                "{hex}: {:?}",
                assess(&hex)
            );
        }
        for _ in 0..1000 {
            let t = crate::paths::generate_token().unwrap();
            // Never read as a command-line option (`--token -x…`).
            assert!(!t.starts_with('-'), "{t}");
            assert!(Secret::new(t).is_strong());
        }
    }
}
