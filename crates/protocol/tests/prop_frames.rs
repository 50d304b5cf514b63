//! Property tests for the inbound frame parsers (`Request::parse`, `ConnectParams::parse`):
//! arbitrary input never panics, and parsing never holds more memory than a fixed multiple
//! of the frame it was given (frames themselves are capped by the WebSocket layer).

#[path = "support/peak_alloc.rs"]
mod peak_alloc;

use clawgate_protocol::connect::ConnectParams;
use clawgate_protocol::frame::Request;
use proptest::prelude::*;
use serde_json::{json, Value};

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Bytes held while parsing one frame, per byte of frame, plus a constant. serde_json's
/// `Value` is 32 bytes a node, so `[0,0,…]` (2 bytes a node) is the worst shape: 16× for the
/// nodes, twice that while the array's `Vec` doubles its capacity. docs/security.md uses
/// this figure for the memory bound.
const AMPLIFICATION: usize = 33;
const SLACK: usize = 16 * 1024;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Request-shaped objects with every field possibly of the wrong type or missing.
fn request_like() -> impl Strategy<Value = Value> {
    let field = || prop::option::of(json_value());
    (
        prop_oneof![Just(json!("req")), Just(json!("res")), json_value()],
        field(),
        field(),
        field(),
        field(),
    )
        .prop_map(|(kind, id, method, params, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("type".into(), kind);
            for (k, v) in [
                ("id", id),
                ("method", method),
                ("params", params),
                ("x", extra),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn connect_like() -> impl Strategy<Value = Value> {
    (
        json_value(),
        prop_oneof![
            Just(json!("cli")),
            Just(json!("openclaw-tui")),
            json_value()
        ],
        prop_oneof![Just(json!("cli")), Just(json!("probe")), json_value()],
        prop_oneof![Just(json!(3)), Just(json!(4)), json_value()],
        prop::option::of(json_value()),
        prop::option::of(prop::collection::vec(".{0,20}", 0..80)),
    )
        .prop_map(|(version, id, mode, proto, auth, scopes)| {
            let mut p = json!({
                "minProtocol": proto.clone(), "maxProtocol": proto,
                "client": {"id": id, "mode": mode, "version": version, "platform": "linux"},
            });
            if let Some(a) = auth {
                p["auth"] = a;
            }
            if let Some(s) = scopes {
                p["scopes"] = json!(s);
            }
            p
        })
}

fn check_request_text(text: &str) {
    let (parsed, peak) = peak_bytes_of(|| Request::parse(text).map(|r| (r.id, r.method)));
    assert!(
        peak <= AMPLIFICATION * text.len() + SLACK,
        "parsing {} bytes held {peak} bytes",
        text.len()
    );
    if let Ok((id, method)) = parsed {
        assert!(!id.is_empty() && id.len() <= 256);
        assert!(!method.is_empty() && method.len() <= 256);
    }
}

fn peak_bytes_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    peak_alloc::peak_bytes(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_request_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        check_request_text(&v.to_string());
    }

    #[test]
    fn request_shaped_frames(v in request_like()) {
        let text = v.to_string();
        check_request_text(&text);
        // A request is accepted only with a string id and method of 1..=256 bytes.
        let ok = v["type"] == "req"
            && v["id"].as_str().is_some_and(|s| (1..=256).contains(&s.len()))
            && v["method"].as_str().is_some_and(|s| (1..=256).contains(&s.len()));
        prop_assert_eq!(Request::parse(&text).is_ok(), ok);
    }

    #[test]
    fn connect_params_never_panic(v in connect_like()) {
        let (res, peak) = peak_bytes_of(|| ConnectParams::parse(&v));
        let size = v.to_string().len();
        prop_assert!(peak <= AMPLIFICATION * size + SLACK, "{size} bytes of params held {peak}");
        if let Ok(p) = res {
            prop_assert!(p.scopes.len() <= 64);
            prop_assert!(!p.client.version.is_empty());
        }
    }

    #[test]
    fn truncated_frames_are_errors(v in request_like(), cut in 1usize..64) {
        let text = v.to_string();
        let end = text.len().saturating_sub(cut);
        let mut end = end.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len() {
            prop_assert!(Request::parse(&text[..end]).is_err());
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    for depth in [10_000usize, 1_000_000] {
        let text = format!(
            r#"{{"type":"req","id":"1","method":"m","params":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(Request::parse(&text).is_err(), "depth {depth} accepted");
    }
}

#[test]
fn worst_case_shapes_stay_within_the_amplification_bound() {
    let n = 64 * 1024;
    let shapes = [
        format!(
            r#"{{"type":"req","id":"1","method":"m","params":[{}0]}}"#,
            "0,".repeat(n / 2)
        ),
        format!(
            r#"{{"type":"req","id":"1","method":"m","params":[{}[]]}}"#,
            "[],".repeat(n / 3)
        ),
        format!(
            r#"{{"type":"req","id":"1","method":"m","params":[{}{{}}]}}"#,
            "{},".repeat(n / 3)
        ),
        format!(
            r#"{{"type":"req","id":"1","method":"m","params":{{{}"z":0}}}}"#,
            (0..n / 10)
                .map(|i| format!(r#""{i:x}":0,"#))
                .collect::<String>()
        ),
    ];
    for text in shapes {
        check_request_text(&text);
    }
}
