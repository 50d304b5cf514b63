//! Property tests for the config loader: arbitrary text never panics, every error carries a
//! position inside the file, memory stays within a multiple of the file size, and hostile
//! shapes (deep nesting, huge files, many keys) are refused cleanly.

#[path = "../../protocol/tests/support/peak_alloc.rs"]
mod peak_alloc;

use clawgate_config::{Config, MAX_CONFIG_BYTES};
use proptest::prelude::*;
use std::path::Path;

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// Bytes held while loading, per byte of file, plus a constant (the YAML scanner's tokens,
/// the positioned tree and the error list are each linear in the input).
const AMPLIFICATION: usize = 64;
const SLACK: usize = 256 * 1024;

const KEYS: &[&str] = &[
    "gateway",
    "host",
    "port",
    "auth",
    "mode",
    "token",
    "password",
    "rateLimit",
    "maxAttempts",
    "allowedOrigins",
    "trustedProxies",
    "models",
    "providers",
    "baseUrl",
    "apiKey",
    "agents",
    "defaults",
    "model",
    "tools",
    "exec",
    "channels",
    "telegram",
    "botToken",
    "allowFrom",
    "dmPolicy",
    "groups",
    "session",
    "dmScope",
    "unknownKey",
    "gateway.port",
];

const SCALARS: &[&str] = &[
    "127.0.0.1",
    "0.0.0.0",
    "18789",
    "-1",
    "99999999999999999999",
    "token",
    "none",
    "true",
    "~",
    "\"${HOME}\"",
    "${UNSET_VAR_FOR_PROP}",
    "\"\\u0000\"",
    "[]",
    "{}",
    "'x'",
    "0x10",
    ".nan",
    "1e999",
    "\"*\"",
    "[127.0.0.1, \"::1\"]",
];

fn env(name: &str) -> Option<String> {
    (name == "HOME").then(|| "/home/prop".to_string())
}

/// YAML built from the real key names at random depths, with random scalars.
fn yaml_like() -> impl Strategy<Value = String> {
    let line = (0usize..4, 0..KEYS.len(), prop::option::of(0..SCALARS.len()));
    prop::collection::vec(line, 0..40).prop_map(|lines| {
        let mut out = String::new();
        for (depth, k, v) in lines {
            out.push_str(&"  ".repeat(depth));
            out.push_str(KEYS[k]);
            out.push(':');
            if let Some(v) = v {
                out.push(' ');
                out.push_str(SCALARS[v]);
            }
            out.push('\n');
        }
        out
    })
}

fn check(text: &str) {
    let (res, peak) = peak_alloc::peak_bytes(|| {
        Config::parse_with_env(text, Path::new("config.yaml"), &env).map(|_| ())
    });
    assert!(
        peak <= AMPLIFICATION * text.len() + SLACK,
        "loading {} bytes held {peak} bytes",
        text.len()
    );
    if let Err(errors) = res {
        assert!(!errors.is_empty(), "an error result must say what is wrong");
        let lines = text.matches(['\n', '\r']).count() + 2;
        for e in errors {
            let shown = e.to_string();
            assert!(shown.starts_with("config.yaml"), "{shown}");
            if let Some(p) = e.pos {
                assert!(
                    p.line >= 1 && p.line <= lines,
                    "{shown} is outside the file"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in yaml_like()) {
        check(&text);
    }

    #[test]
    fn yaml_with_noise_never_panics(text in yaml_like(), at in any::<prop::sample::Index>(),
                                    noise in "[\\[\\]{}:,&*!|>'\"#%@`\\t -]{1,6}") {
        let mut cut = at.index(text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut t = text.clone();
        t.insert_str(cut, &noise);
        check(&t);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [1_000usize, 100_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let text = format!("gateway: {}1{}\n", open.repeat(depth), close.repeat(depth));
            let errors = Config::parse(&text, Path::new("config.yaml")).unwrap_err();
            assert!(!errors.is_empty());
        }
        let block: String = (0..depth.min(20_000))
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(Config::parse(&block, Path::new("config.yaml")).is_err());
    }
}

#[test]
fn too_many_entries_are_refused() {
    // A config has a few hundred entries; 50,000 is an attack on the loader, refused whole.
    let text: String = (0..50_000).map(|i| format!("k{i}: 1\n")).collect();
    let errors = Config::parse(&text, Path::new("config.yaml")).unwrap_err();
    assert!(errors[0].to_string().contains("too many"), "{}", errors[0]);
}

#[test]
fn oversized_files_are_refused_before_reading_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let mut text = String::from("gateway:\n  port: 18789\n");
    text.push_str(&"# padding\n".repeat(MAX_CONFIG_BYTES / 10 + 1));
    std::fs::write(&path, &text).unwrap();
    let errors = Config::load(&path).unwrap_err();
    let shown = errors[0].to_string();
    assert!(shown.contains("larger than"), "{shown}");

    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "gateway:\n  port: 18789\n").unwrap();
    assert_eq!(Config::load(&ok).unwrap().gateway.port, 18789);
}
