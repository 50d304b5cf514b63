//! The v0 signature, checked against Slack's documented example (spec channels.md §8.1).

use crate::fake_slack::sign;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TIMESTAMP: &str = "1531420618";
const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[test]
fn documented_vector_matches() {
    assert_eq!(sign(SECRET, TIMESTAMP, BODY.as_bytes()), EXPECTED);
}

#[test]
fn tampered_body_timestamp_or_secret_changes_the_signature() {
    let tampered = format!("{BODY}------");
    assert_ne!(sign(SECRET, TIMESTAMP, tampered.as_bytes()), EXPECTED);
    assert_ne!(sign(SECRET, "1531420619", BODY.as_bytes()), EXPECTED);
    assert_ne!(
        sign(
            "8f742231b10e8888abcd99yyyzzz85a6",
            TIMESTAMP,
            BODY.as_bytes()
        ),
        EXPECTED
    );
}

#[test]
fn signature_is_lowercase_hex_of_sha256() {
    let s = sign("secret", "1", b"{}");
    let hex = s.strip_prefix("v0=").expect("v0= prefix");
    assert_eq!(hex.len(), 64);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{s}"
    );
}
