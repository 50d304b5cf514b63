//! Issue 10 §1, the HTTP side: OpenClaw's Control UI served from `gateway.controlUi.root`
//! by the real binary over real sockets — a fixture directory made here, and the real
//! `dist/control-ui/` of the installed openclaw package. Index rewriting, CSP hashes, SPA
//! fallback, caching, precompressed assets, the bootstrap config behind a bearer token,
//! traversal/encoded-slash/symlink refusals, the base path, `enabled: false`, and CSWSH.

use base64::Engine;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::RawWs;
use clawgate_testkit::GatewayProcess;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "ui-control-token_0123456789abcdef";
const BUILD: &str = "test-build 1";
const SCRIPT_A: &str = "\n      window.__a = 1;\n    ";
const SCRIPT_B: &str = "window.__b = 2;";
const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request written byte for byte (the path is sent exactly as given, so
/// `..` and percent-escapes reach the server unnormalised).
async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    http(port, "GET", path, headers).await
}

const HTML: &[(&str, &str)] = &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")];

fn sha(s: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
    )
}

/// A small Control UI build: index.html with two inline scripts and the build id, an
/// asset with precompressed siblings, versioned public files, a symlink out of the root.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let root = dir.path().join("ui");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::create_dir_all(root.join("fonts")).unwrap();
    let index = format!(
        "<!doctype html>\n<html data-openclaw-control-ui-build-id=\"{BUILD}\" lang=\"en\">\n<head>\n\
         <link rel=\"icon\" href=\"./favicon.svg\" />\n<link rel=\"manifest\" href=\"./manifest.webmanifest\" />\n\
         <script>{SCRIPT_A}</script>\n\
         <script type=\"module\" crossorigin src=\"./assets/app-abc.js\"></script>\n\
         <link rel=\"stylesheet\" href=\"./assets/app-abc.css\">\n</head>\n<body><main>fixture ui</main>\n\
         <script data-x=\"1\">{SCRIPT_B}</script>\n</body>\n</html>\n"
    );
    std::fs::write(root.join("index.html"), index).unwrap();
    std::fs::write(root.join("assets/app-abc.js"), "console.log('plain');").unwrap();
    std::fs::write(root.join("assets/app-abc.js.br"), b"BROTLI-BYTES").unwrap();
    std::fs::write(root.join("assets/app-abc.js.gz"), b"GZIP-BYTES").unwrap();
    std::fs::write(root.join("assets/app-abc.css"), "body{}").unwrap();
    std::fs::write(root.join("assets/logo.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(root.join("fonts/sans.css"), "@font-face{}").unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("sw.js"), "self.x=1;").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink("../../secret.txt", root.join("assets/leak.js")).unwrap();
    std::os::unix::fs::symlink("app-abc.css", root.join("assets/alias.css")).unwrap();
    (dir, root)
}

fn start(root: &Path, extra: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "gateway:\n  auth:\n    token: {TOKEN}\n{extra}  controlUi:\n    root: {}\n",
                root.display()
            )),
            ..Options::default()
        },
    )
}

fn assert_security_headers(r: &Resp, what: &str) {
    assert_eq!(r.h("x-frame-options"), "DENY", "{what}");
    assert_eq!(r.h("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(r.h("referrer-policy"), "no-referrer", "{what}");
    assert!(
        r.h("content-security-policy")
            .contains("frame-ancestors 'none'"),
        "{what}"
    );
}

#[tokio::test]
async fn index_is_rewritten_with_a_csp_hashing_exactly_its_inline_scripts() {
    let (_dir, root) = fixture();
    let gw = start(&root, "");
    let p = gw.port();
    let r = get(p, "/", HTML).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-type"), "text/html; charset=utf-8");
    assert_eq!(r.h("cache-control"), "no-cache");
    assert_security_headers(&r, "index");
    let html = r.text();
    assert!(html.contains(&format!(
        "<html data-openclaw-control-ui-base-path=\"\" data-openclaw-terminal-enabled=\"false\" data-openclaw-control-ui-build-id=\"{BUILD}\" lang=\"en\">"
    )), "{html}");
    assert_eq!(html.matches("data-openclaw-control-ui-build-id").count(), 1);
    assert!(html.contains("src=\"/assets/app-abc.js\""), "{html}");
    assert!(html.contains("href=\"/assets/app-abc.css\""));
    assert!(
        html.contains("href=\"/favicon.svg?v=test-build%201\""),
        "{html}"
    );
    let csp = r.h("content-security-policy");
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src "))
        .unwrap();
    assert_eq!(
        script_src,
        format!("script-src 'self' {} {}", sha(SCRIPT_A), sha(SCRIPT_B)),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-eval") && !script_src.contains("unsafe-inline"));
    assert!(csp.contains("connect-src 'self' ws: wss:"), "{csp}");

    // HEAD: the same headers, no body.
    let r = http(p, "HEAD", "/", HTML).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.h("cache-control"), "no-cache");

    // JSON clients keep the pointer at /.
    let r = get(p, "/", &[("Accept", "application/json")]).await;
    assert_eq!(r.json()["websocket"], "/");

    // A changed index.html is picked up (and re-hashed).
    std::fs::write(
        root.join("index.html"),
        "<html><head><script>window.__c=3;</script></head></html>",
    )
    .unwrap();
    let r = get(p, "/", HTML).await;
    assert!(r.text().contains("window.__c=3"));
    assert!(r
        .h("content-security-policy")
        .contains(&sha("window.__c=3;")));
}

#[tokio::test]
async fn spa_fallback_missing_files_caching_and_precompressed_assets() {
    let (_dir, root) = fixture();
    let gw = start(&root, "");
    let p = gw.port();
    // Non-asset routes are the SPA's.
    for route in ["/chat/main", "/settings", "/agents/main/sessions/"] {
        let r = get(p, route, HTML).await;
        assert_eq!(r.status, 200, "{route}");
        assert!(r.text().contains("fixture ui"), "{route}");
        assert_eq!(r.h("cache-control"), "no-cache");
    }
    // Missing static files are 404, not the page.
    for missing in [
        "/nope.js",
        "/assets/gone-123.css",
        "/img/x.png",
        "/favicon.ico",
    ] {
        let r = get(p, missing, HTML).await;
        assert_eq!(r.status, 404, "{missing}");
        assert!(!r.text().contains("fixture ui"), "{missing}");
        assert_security_headers(&r, missing);
    }
    // Fingerprinted assets: immutable, and the precompressed sibling by Accept-Encoding.
    let r = get(
        p,
        "/assets/app-abc.js",
        &[("Accept-Encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"BROTLI-BYTES");
    assert_eq!(r.h("content-encoding"), "br");
    assert_eq!(r.h("vary"), "Accept-Encoding");
    assert_eq!(r.h("cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(r.h("content-type"), "application/javascript; charset=utf-8");
    assert_security_headers(&r, "asset");
    assert!(!r.h("content-security-policy").contains("sha256-"));
    let r = get(p, "/assets/app-abc.js", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(
        (r.body.as_slice(), r.h("content-encoding")),
        (&b"GZIP-BYTES"[..], "gzip")
    );
    let r = get(
        p,
        "/assets/app-abc.js",
        &[("Accept-Encoding", "br;q=0, gzip;q=0")],
    )
    .await;
    assert_eq!(r.body, b"console.log('plain');");
    assert_eq!(r.h("content-encoding"), "");
    let r = get(p, "/assets/app-abc.js", &[]).await;
    assert_eq!(r.body, b"console.log('plain');");
    // No compressed sibling: served as is.
    let r = get(p, "/assets/app-abc.css", &[("Accept-Encoding", "br")]).await;
    assert_eq!(
        (r.body.as_slice(), r.h("content-encoding")),
        (&b"body{}"[..], "")
    );
    let r = get(p, "/assets/logo.png", &[("Accept-Encoding", "br")]).await;
    assert_eq!(r.h("content-type"), "image/png");
    // A symlink that stays inside the root is fine.
    let r = get(p, "/assets/alias.css", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]));
    // Deep links load ./assets/ relative to the route.
    let r = get(p, "/chat/assets/app-abc.js", &[]).await;
    assert_eq!(r.body, b"console.log('plain');");

    // Public files: immutable only with the current build id.
    let r = get(p, "/fonts/sans.css?v=test-build%201", &[]).await;
    assert_eq!(r.h("cache-control"), "public, max-age=31536000, immutable");
    let r = get(p, "/fonts/sans.css", &[]).await;
    assert_eq!(r.h("cache-control"), "no-cache");
    let r = get(p, "/fonts/sans.css?v=old", &[]).await;
    assert_eq!(r.h("cache-control"), "no-cache");
    let r = get(p, "/sw.js?v=test-build%201", &[]).await;
    assert_eq!(r.h("cache-control"), "no-cache");
    let r = get(p, "/__openclaw__/favicon.svg", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<svg/>"[..]));
    // Revalidation.
    let lm = get(p, "/sw.js", &[]).await.h("last-modified").to_string();
    assert!(!lm.is_empty());
    let r = get(p, "/sw.js", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status, 304);
}

#[tokio::test]
async fn traversal_encoded_slashes_nul_and_symlinks_out_of_the_root_are_refused() {
    let (_dir, root) = fixture();
    let gw = start(&root, "");
    let p = gw.port();
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/assets/%5c..%5c..%5csecret.txt",
        "/secret.txt%00.js",
        "/%00",
        "/leak.txt",
        "/assets/leak.js",
        "/__openclaw__/../secret.txt",
    ] {
        for accept in [HTML, &[][..]] {
            let r = get(p, path, accept).await;
            assert!(
                r.status == 404 || r.status == 400,
                "{path}: {} {}",
                r.status,
                r.text()
            );
            assert!(!r.text().contains(SECRET), "{path} leaked the file");
            assert!(
                !r.text().contains("fixture ui"),
                "{path} fell back to the page"
            );
        }
    }
}

/// A device with a paired token: connect once as the TUI from loopback (auto-paired).
async fn device_token(gw: &GatewayProcess) -> String {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let key = SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pk = b64.encode(key.verifying_key().as_bytes());
    let id = hex::encode(Sha256::digest(key.verifying_key().as_bytes()));
    let mut ws = RawWs::connect(gw.addr).await;
    let (nonce, ts) = ws.challenge().await;
    let scopes = "operator.admin,operator.read,operator.write";
    let payload =
        format!("v3|{id}|openclaw-tui|ui|operator|{scopes}|{ts}|{TOKEN}|{nonce}|linux|linux");
    let sig = b64.encode(key.sign(payload.as_bytes()).to_bytes());
    let res = ws
        .connect_req(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux", "mode": "ui"},
            "role": "operator", "scopes": scopes.split(',').collect::<Vec<_>>(), "auth": {"token": TOKEN},
            "device": {"id": id, "publicKey": pk, "signature": sig, "signedAt": ts, "nonce": nonce},
        }))
        .await;
    res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no device token: {res}"))
        .to_string()
}

#[tokio::test]
async fn bootstrap_config_needs_the_shared_token_or_a_device_token() {
    let (_dir, root) = fixture();
    let gw = start(&root, "");
    let p = gw.port();
    let unauthorized = json!({"error": {"message": "Unauthorized", "type": "unauthorized"}});
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        "/control-ui-config.json",
        "/__openclaw__/control-ui-config.json",
        "/__openclaw/control-ui-config.json",
    ] {
        let r = get(p, path, &[]).await;
        assert_eq!((r.status, r.json()), (401, unauthorized.clone()), "{path}");
        assert_security_headers(&r, path);
        let r = get(p, path, &[("Authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.h("cache-control"), "no-cache");
        let v = r.json();
        assert_eq!(v["basePath"], "");
        assert_eq!(v["assistantAgentId"], "main");
        assert!(v["assistantName"].is_string() && v["serverVersion"].is_string());
        assert_eq!(v["terminalEnabled"], false);
        assert!(v["pluginFrameGrants"].is_array());
    }
    let r = get(
        p,
        "/control-ui-config.json",
        &[("Authorization", "Bearer wrong-token")],
    )
    .await;
    assert_eq!((r.status, r.json()), (401, unauthorized.clone()));
    let r = get(p, "/control-ui-config.json", &[("Authorization", TOKEN)]).await;
    assert_eq!(r.status, 401, "the scheme is required");

    let dt = device_token(&gw).await;
    assert_ne!(dt, TOKEN);
    let r = get(
        p,
        "/control-ui-config.json",
        &[("Authorization", &format!("Bearer {dt}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut tampered = dt.clone();
    tampered.pop();
    tampered.push(if dt.ends_with('A') { 'B' } else { 'A' });
    let r = get(
        p,
        "/control-ui-config.json",
        &[("Authorization", &format!("Bearer {tampered}"))],
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn failed_bootstrap_tokens_count_in_the_login_limiter() {
    let (_dir, root) = fixture();
    let gw = start(
        &root,
        "    rateLimit: { maxAttempts: 3, windowMs: 60000, lockoutMs: 60000 }\n",
    );
    let p = gw.port();
    for _ in 0..3 {
        let r = get(
            p,
            "/control-ui-config.json",
            &[("Authorization", "Bearer nope")],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let bearer = format!("Bearer {TOKEN}");
    let r = get(p, "/control-ui-config.json", &[("Authorization", &bearer)]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.h("retry-after").parse::<u64>().unwrap() >= 1);
    // The WebSocket login shares the lockout.
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let res = ws
        .connect_req(clawgate_testkit::ws::cli_params(TOKEN, &["operator.read"]))
        .await;
    assert_eq!(res["ok"], false, "{res}");
}

#[tokio::test]
async fn base_path_mounts_the_ui_and_its_websocket() {
    let (_dir, root) = fixture();
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "gateway:\n  auth:\n    token: {TOKEN}\n  controlUi:\n    root: {}\n    basePath: openclaw/\n",
                root.display()
            )),
            ..Options::default()
        },
    );
    let p = gw.port();
    let r = get(p, "/openclaw?x=1", HTML).await;
    assert_eq!((r.status, r.h("location")), (302, "/openclaw/?x=1"));
    let r = get(p, "/openclaw/", HTML).await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(
        html.contains("data-openclaw-control-ui-base-path=\"/openclaw\""),
        "{html}"
    );
    assert!(html.contains("src=\"/openclaw/assets/app-abc.js\""));
    assert!(html.contains("href=\"/openclaw/favicon.svg?v="));
    let r = get(p, "/openclaw/chat/main", HTML).await;
    assert!(r.text().contains("fixture ui"));
    let r = get(p, "/openclaw/assets/app-abc.js", &[]).await;
    assert_eq!(r.body, b"console.log('plain');");
    let bearer = format!("Bearer {TOKEN}");
    let r = get(
        p,
        "/openclaw/control-ui-config.json",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(r.json()["basePath"], "/openclaw");
    // Outside the base path it is not the UI.
    let r = get(p, "/", HTML).await;
    assert!(!r.text().contains("fixture ui"));
    let r = get(p, "/chat/main", HTML).await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("fixture ui"));
    // The UI derives its WebSocket URL from the mount point.
    let url = format!("ws://127.0.0.1:{p}/openclaw");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws at the base path");
    use futures_util::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.to_text().unwrap().contains("connect.challenge"));
}

#[tokio::test]
async fn disabled_means_no_ui_at_all() {
    let (_dir, root) = fixture();
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "gateway:\n  auth:\n    token: {TOKEN}\n  controlUi:\n    enabled: false\n    root: {}\n",
                root.display()
            )),
            ..Options::default()
        },
    );
    let p = gw.port();
    let r = get(p, "/", HTML).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("fixture ui") && !r.text().contains("<html"));
    assert_eq!(r.json()["websocket"], "/");
    for path in [
        "/assets/app-abc.js",
        "/chat/main",
        "/control-ui-config.json",
    ] {
        let r = get(p, path, &[("Authorization", &format!("Bearer {TOKEN}"))]).await;
        assert_eq!(r.status, 404, "{path}");
    }
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_open_the_websocket() {
    let (_dir, root) = fixture();
    let gw = start(&root, "");
    let p = gw.port();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", key),
    ];
    let mut evil = upgrade.to_vec();
    evil.push(("Origin", "http://evil.example"));
    let r = http(p, "GET", "/", &evil).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The UI's own origin may (the request is otherwise identical).
    let own = format!("http://127.0.0.1:{p}");
    let mut ok = upgrade.to_vec();
    ok.push(("Origin", &own));
    let mut s = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    let mut req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n");
    for (k, v) in &ok {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
}

/// The stock build from the openclaw npm package.
fn real_root() -> PathBuf {
    let root = clawgate_testkit::npm::toolchain()
        .openclaw_pkg
        .join("dist/control-ui");
    assert!(root.join("index.html").is_file(), "{}", root.display());
    root
}

#[tokio::test]
async fn the_real_control_ui_build_is_served_like_openclaw_serves_it() {
    let root = tokio::task::spawn_blocking(real_root).await.unwrap();
    let gw = start(&root, "");
    let p = gw.port();
    let r = get(p, "/", HTML).await;
    assert_eq!(r.status, 200);
    let csp = r.h("content-security-policy").to_string();
    // The hashes OpenClaw's own gateway sent for this build (control-ui.http.jsonl).
    for h in [
        "'sha256-g30CWRMlZumMHvjOkMce6NnzY9k1/zZU+9vzyMq8ETQ='",
        "'sha256-L6xeA4XnuquPxjSq0zkDDAXzWgCngcLdAr9Hgdf/GYU='",
    ] {
        assert!(csp.contains(h), "{csp}");
    }
    let html = r.text();
    assert!(html.contains("data-openclaw-control-ui-base-path=\"\""));
    assert!(html.contains("data-openclaw-terminal-enabled=\"false\""));
    assert!(!html.contains("\"./assets/"), "relative asset URLs left");
    // Every asset the page references is there, precompressed where the build has it.
    let mut n = 0;
    for cap in html.split("\"/assets/").skip(1) {
        let name = cap.split('"').next().unwrap();
        let r = get(
            p,
            &format!("/assets/{name}"),
            &[("Accept-Encoding", "gzip, br")],
        )
        .await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.h("cache-control"), "public, max-age=31536000, immutable");
        let plain = std::fs::read(root.join("assets").join(name)).unwrap();
        if root.join("assets").join(format!("{name}.br")).exists() {
            assert_eq!(r.h("content-encoding"), "br", "{name}");
            assert_ne!(r.body, plain);
        }
        n += 1;
    }
    assert!(n >= 5, "{n} assets referenced");
    let build = html
        .split("data-openclaw-control-ui-build-id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = get(p, &format!("/favicon.svg?v={build}"), &[]).await;
    assert_eq!(
        (r.status, r.h("cache-control")),
        (200, "public, max-age=31536000, immutable")
    );
    let r = get(p, "/sw.js", &[]).await;
    assert_eq!((r.status, r.h("cache-control")), (200, "no-cache"));
    let r = get(p, "/chat/main", HTML).await;
    assert!(r.text().contains("openclaw-app"));
    let r = get(p, "/assets/does-not-exist-123.js", &[]).await;
    assert_eq!(r.status, 404);
}
