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

/// Bytes held while parsing one small frame, per byte of frame, plus a constant (the
/// generated frames are small; `SLACK` covers a B-tree leaf or two). Large frames are bounded
/// by their weight instead (`frame::values_weight`, tests at the end): `[0,0,…]` parses into
/// ~16× its text (33× while a `Vec` doubles), `[{"a":0},…]` into ~80×, so a frame whose values
/// would take more than `MAX_VALUES_WEIGHT` is refused before parsing.
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

/// Frames whose values weigh about `fraction` of the cap, in the shapes that cost the most
/// per byte of text (each item with its estimated weight).
fn shapes_at(fraction: f64) -> Vec<(&'static str, String)> {
    use clawgate_protocol::frame::MAX_VALUES_WEIGHT;
    let n = |per: usize| (MAX_VALUES_WEIGHT as f64 * fraction) as usize / per;
    let wrap =
        |params: String| format!(r#"{{"type":"req","id":"1","method":"m","params":{params}}}"#);
    let list = |item: &str, per: usize| wrap(format!("[{}]", vec![item; n(per)].join(",")));
    vec![
        ("zeros", list("0", 128)),
        ("empty strings", list(r#""""#, 128)),
        ("empty arrays", list("[]", 384)),
        ("one-zero arrays", list("[0]", 384)),
        ("nested arrays", list("[[0]]", 640)),
        ("empty objects", list("{}", 1024)),
        ("one-member objects", list(r#"{"a":0}"#, 1024)),
        ("two-member objects", list(r#"{"a":0,"b":0}"#, 1152)),
        (
            "wide object",
            wrap(format!(
                "{{{}}}",
                (0..n(128))
                    .map(|i| format!(r#""{i:x}":0"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ),
    ]
}

#[test]
fn frames_over_the_weight_cap_are_refused_before_parsing() {
    use clawgate_protocol::frame::FrameError;
    for (name, text) in shapes_at(1.02) {
        let (res, peak) = peak_bytes_of(|| Request::parse(&text).err());
        assert_eq!(res, Some(FrameError::TooManyValues), "{name}");
        assert!(peak < 4096, "{name}: refusing held {peak} bytes");
    }
}

#[test]
fn frames_under_the_weight_cap_stay_within_their_weight() {
    for (name, text) in shapes_at(0.98) {
        let (res, peak) = peak_bytes_of(|| Request::parse_weighed(&text).map(|(_, w)| w));
        let weight = res.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        eprintln!(
            "{name}: {} bytes, weight {weight}, peak {peak} ({:.2} of weight)",
            text.len(),
            peak as f64 / weight as f64
        );
        assert!(
            peak <= weight,
            "{name}: {} bytes of text held {peak} bytes, weight {weight}",
            text.len()
        );
    }
}

#[test]
fn a_large_string_is_one_value() {
    let b64 = "QUJD".repeat(5 << 20);
    let text = format!(r#"{{"type":"req","id":"1","method":"m","params":{{"a":"{b64}"}}}}"#);
    let (req, weight) = Request::parse_weighed(&text).expect("a 20 MiB string parses");
    assert_eq!(req.params["a"].as_str().map(str::len), Some(b64.len()));
    assert!(weight < text.len() + 4096, "weight {weight}");
}
