//! Telegram Bot API: the HTTP client, the update parser (with UTF-16 mention offsets), the
//! webhook verifier and the Markdown → Telegram HTML renderer.

pub mod api;
pub mod channel;
pub mod config;
pub mod doctor;
pub mod format;
pub mod parse;

pub use channel::{Plugin, Telegram};
pub use config::{TelegramConfig, TelegramMode};

use subtle::ConstantTimeEq;

/// Header Telegram puts the webhook secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Checks the webhook secret header in constant time (over digests, so length leaks nothing).
pub fn verify_secret(expected: &str, presented: Option<&[u8]>) -> bool {
    use sha2::{Digest, Sha256};
    let Some(p) = presented else {
        return false;
    };
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(p);
    bool::from(a.ct_eq(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_check() {
        assert!(verify_secret("s3cr3t", Some(b"s3cr3t")));
        assert!(!verify_secret("s3cr3t", Some(b"s3cr3")));
        assert!(!verify_secret("s3cr3t", None));
        assert!(!verify_secret("s3cr3t", Some(b"")));
    }
}
