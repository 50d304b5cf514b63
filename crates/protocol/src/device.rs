//! Device identity: Ed25519 keys, `device.id`, and the v3/v2 signature payload strings.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// The SPKI DER prefix of an Ed25519 public key (stripped by the official clients).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Decodes base64 in either alphabet, with or without padding.
pub fn b64_any_decode(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    STANDARD_NO_PAD.decode(cleaned.as_bytes()).ok()
}

/// base64url without padding, as tokens and keys travel on the wire.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses a public key given as raw base64(url), SPKI base64, or PEM into its 32 raw bytes.
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let body: String = if s.contains("-----BEGIN") {
        s.lines().filter(|l| !l.starts_with("-----")).collect()
    } else {
        s.to_string()
    };
    let raw = b64_any_decode(&body)?;
    let raw = if raw.len() == 44 && raw[..12] == SPKI_PREFIX {
        raw[12..].to_vec()
    } else {
        raw
    };
    raw.try_into().ok()
}

/// `device.id`: lowercase hex SHA-256 of the raw public key.
pub fn device_id(raw_public_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(raw_public_key))
}

/// The fields a device signature covers.
pub struct SignedFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: i64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

fn norm(s: Option<&str>) -> String {
    s.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default()
}

impl SignedFields<'_> {
    fn base(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.device_id,
            self.client_id,
            self.client_mode,
            self.role,
            self.scopes.join(","),
            self.signed_at_ms,
            self.token,
            self.nonce
        )
    }

    /// `v3|…|<platform>|<deviceFamily>` (what 2026.9.x clients sign).
    pub fn payload_v3(&self) -> String {
        format!(
            "v3|{}|{}|{}",
            self.base(),
            norm(self.platform),
            norm(self.device_family)
        )
    }

    /// `v2|…` (legacy, still accepted).
    pub fn payload_v2(&self) -> String {
        format!("v2|{}", self.base())
    }
}

/// Verifies `signature` (base64 any alphabet) over the v3 payload, then the v2 payload.
pub fn verify_signature(public_key: &[u8; 32], signature_b64: &str, fields: &SignedFields) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Some(sig_bytes) = b64_any_decode(signature_b64) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig_bytes) else {
        return false;
    };
    vk.verify_strict(fields.payload_v3().as_bytes(), &sig)
        .is_ok()
        || vk
            .verify_strict(fields.payload_v2().as_bytes(), &sig)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_alphabets() {
        assert_eq!(
            b64_any_decode("-_8").unwrap(),
            b64_any_decode("+/8=").unwrap()
        );
    }

    #[test]
    fn payload_strings_match_the_captured_format() {
        let scopes = vec!["operator.admin".to_string(), "operator.read".to_string()];
        let f = SignedFields {
            device_id: "abc",
            client_id: "openclaw-tui",
            client_mode: "ui",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1795544158543,
            token: "testtoken",
            nonce: "n-1",
            platform: Some(" Linux "),
            device_family: None,
        };
        assert_eq!(
            f.payload_v3(),
            "v3|abc|openclaw-tui|ui|operator|operator.admin,operator.read|1795544158543|testtoken|n-1|linux|"
        );
        assert_eq!(
            f.payload_v2(),
            "v2|abc|openclaw-tui|ui|operator|operator.admin,operator.read|1795544158543|testtoken|n-1"
        );
    }

    #[test]
    fn spki_prefix_is_stripped() {
        let raw = [7u8; 32];
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&raw);
        assert_eq!(parse_public_key(&b64url(&spki)).unwrap(), raw);
        assert_eq!(parse_public_key(&b64url(&raw)).unwrap(), raw);
        assert!(parse_public_key("AAAA").is_none());
    }
}
