//! Property tests for the Telegram webhook path after the secret check: raw body bytes →
//! JSON → `update_id` → `parse_update`. Arbitrary input never panics, memory stays within a
//! multiple of the body, and what the parser accepts is consistent with the update.

#[path = "../../protocol/tests/support/peak_alloc.rs"]
mod peak_alloc;

use clawgate_channels::telegram::parse::{parse_update, update_id, utf16_slice, BotIdentity};
use clawgate_channels::telegram::verify_secret;
use proptest::prelude::*;
use serde_json::{json, Value};

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

const AMPLIFICATION: usize = 40;
const SLACK: usize = 64 * 1024;

fn bot() -> BotIdentity {
    BotIdentity {
        id: 7_000_000_001,
        username: "my_bot".into(),
    }
}

/// The whole webhook step after verification, as the gateway runs it.
fn ingest(body: &[u8]) -> Option<(Option<i64>, Option<clawgate_channels::InboundMessage>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some((update_id(&v), parse_update(&v, "default", &bot())))
}

fn anyish() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn entity() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!("mention")),
            Just(json!("bot_command")),
            Just(json!("text_mention")),
            anyish()
        ],
        prop_oneof![(0u64..40).prop_map(Value::from), anyish()],
        prop_oneof![(0u64..40).prop_map(Value::from), anyish()],
        prop_oneof![Just(json!({"id": 7_000_000_001i64})), anyish()],
    )
        .prop_map(|(t, o, l, u)| json!({"type": t, "offset": o, "length": l, "user": u}))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,60}", "(👋|@my_bot|/start@my_bot|@MY_BOT|é| |x){0,12}",]
}

/// Updates in Telegram's shape, with each field possibly missing or of the wrong type.
fn update() -> impl Strategy<Value = Value> {
    (
        prop_oneof![any::<i64>().prop_map(Value::from), anyish()],
        prop_oneof![text().prop_map(Value::String), anyish()],
        any::<bool>(),
        prop_oneof![
            Just(json!("private")),
            Just(json!("group")),
            Just(json!("supergroup")),
            Just(json!("channel")),
            anyish()
        ],
        prop_oneof![any::<i64>().prop_map(Value::from), anyish()],
        prop_oneof![Just(json!(false)), Just(json!(true)), anyish()],
        prop::collection::vec(entity(), 0..4),
        prop::option::of(prop_oneof![Just(json!(7_000_000_001i64)), anyish()]),
    )
        .prop_map(
            |(uid, text, as_caption, ctype, from_id, is_bot, ents, reply_from)| {
                let (tk, ek) = if as_caption {
                    ("caption", "caption_entities")
                } else {
                    ("text", "entities")
                };
                let mut msg = json!({
                    "message_id": 1, "date": 1_767_225_600,
                    "from": {"id": from_id, "is_bot": is_bot, "first_name": "A"},
                    "chat": {"id": -100, "type": ctype},
                });
                msg[tk] = text;
                msg[ek] = Value::Array(ents);
                if let Some(r) = reply_from {
                    msg["reply_to_message"] = json!({"from": {"id": r}});
                }
                json!({"update_id": uid, "message": msg})
            },
        )
}

fn check_bytes(body: &[u8]) {
    let (_, peak) = peak_alloc::peak_bytes(|| ingest(body));
    assert!(
        peak <= AMPLIFICATION * body.len() + SLACK,
        "{} bytes of body held {peak} bytes",
        body.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_bytes(&body);
    }

    #[test]
    fn telegram_shaped_updates(u in update()) {
        let body = serde_json::to_vec(&u).unwrap();
        check_bytes(&body);
        let (uid, parsed) = ingest(&body).unwrap();
        prop_assert_eq!(uid, u["update_id"].as_i64());
        if let Some(m) = parsed {
            let msg = &u["message"];
            let text = msg["text"].as_str().or(msg["caption"].as_str()).unwrap();
            prop_assert_eq!(&m.text, text);
            prop_assert_eq!(m.sender_id, msg["from"]["id"].as_i64().unwrap().to_string());
            prop_assert!(msg["from"]["is_bot"].as_bool() != Some(true), "bots are ignored");
            prop_assert_eq!(m.chat_id, "-100");
        }
    }

    #[test]
    fn truncated_bodies_never_panic(u in update(), cut in 1usize..80) {
        let body = serde_json::to_vec(&u).unwrap();
        let end = body.len().saturating_sub(cut);
        check_bytes(&body[..end]);
    }

    #[test]
    fn utf16_slices_are_in_bounds(t in ".{0,40}", off in 0usize..100, len in 0usize..100) {
        let units: Vec<u16> = t.encode_utf16().collect();
        let end = off + len;
        // Out of bounds, or a cut through a surrogate pair (half an emoji), gives None.
        let cuts_pair = end <= units.len()
            && len > 0
            && ((0xDC00..0xE000).contains(&units[off]) || (0xD800..0xDC00).contains(&units[end - 1]));
        match utf16_slice(&t, off, len) {
            Some(s) => prop_assert!(end <= units.len() && !cuts_pair && s.encode_utf16().count() == len),
            None => prop_assert!(end > units.len() || cuts_pair),
        }
    }

    #[test]
    fn secret_check_accepts_only_the_exact_secret(a in ".{0,40}", b in prop::collection::vec(any::<u8>(), 0..48)) {
        prop_assert_eq!(verify_secret(&a, Some(&b)), a.as_bytes() == b.as_slice());
        prop_assert!(verify_secret(&a, Some(a.as_bytes())));
        prop_assert!(!verify_secret(&a, None));
    }
}

#[test]
fn many_entities_over_a_long_text_stay_bounded() {
    // A hostile (but correctly signed) update: a long text and many entities.
    let text = "👋 @my_bot ".repeat(20_000);
    let entities: Vec<Value> = (0..20_000)
        .map(|i| json!({"type": "mention", "offset": i * 11 + 3, "length": 7}))
        .collect();
    let u = json!({"update_id": 1, "message": {"message_id": 1, "from": {"id": 5, "is_bot": false},
        "chat": {"id": 5, "type": "private"}, "text": text, "entities": entities}});
    let body = serde_json::to_vec(&u).unwrap();
    check_bytes(&body);
    assert!(ingest(&body).unwrap().1.unwrap().mentioned);
}
