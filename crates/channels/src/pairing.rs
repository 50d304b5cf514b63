//! Pairing codes for unknown DM senders: 8 characters from an alphabet without look-alikes,
//! valid for an hour, at most three pending per channel account.

/// No `0 O 1 I`.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;
pub const TTL_MS: i64 = 60 * 60 * 1000;
pub const MAX_PENDING: usize = 3;

/// A code from the OS CSPRNG (rejection sampling keeps the distribution uniform).
pub fn generate_code() -> String {
    let mut out = String::with_capacity(CODE_LEN);
    while out.len() < CODE_LEN {
        let mut b = [0u8; 16];
        if getrandom::fill(&mut b).is_err() {
            continue;
        }
        for x in b {
            // 256 = 8 × 32: every byte maps uniformly.
            out.push(ALPHABET[(x % 32) as usize] as char);
            if out.len() == CODE_LEN {
                break;
            }
        }
    }
    out
}

/// The one reply an unknown sender gets.
pub fn reply_text(channel: &str, id_line: &str, code: &str) -> String {
    format!(
        "clawgate: access not configured.\n\n{id_line}\n\nPairing code: {code}\n\nAsk the bot owner to approve with:\nclawgate pairing approve {channel} {code}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet() {
        for _ in 0..200 {
            let c = generate_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
        }
        assert_ne!(generate_code(), generate_code());
    }

    #[test]
    fn reply_names_the_command() {
        let t = reply_text("telegram", "Your Telegram user id: 42", "K7QX2MPA");
        assert!(t.contains("Pairing code: K7QX2MPA"));
        assert!(t.contains("clawgate pairing approve telegram K7QX2MPA"));
    }
}
