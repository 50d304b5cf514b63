//! The embedded browser UI over plain HTTP against the real binary: HTML for browsers, the
//! JSON pointer for everyone else, the security headers and CSP, the assets with ETags and
//! 304s, 404 for unknown assets, and the size budget of the compiled-in files.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::GatewayProcess;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`; the reply read to the end (bounded).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        addr.port()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.take(4 * 1024 * 1024).read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn start() -> GatewayProcess {
    GatewayProcess::start(bin(), Options::default())
}

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn assert_security_headers(r: &Reply, port: u16) {
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{}",
        r.head
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{}", r.head);
    assert_eq!(
        r.header("referrer-policy"),
        Some("no-referrer"),
        "{}",
        r.head
    );
    let csp = r.header("content-security-policy").expect("CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(
        csp.contains(&format!(
            "connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port}"
        )),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(!csp.contains('*'), "no wildcard sources: {csp}");
}

#[test]
fn browsers_get_the_page_other_clients_keep_the_json() {
    let gw = start();
    let port = gw.addr.port();
    // A browser navigating.
    let r = http(gw.addr, "GET", "/", &[("Accept", BROWSER_ACCEPT)]);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_security_headers(&r, port);
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("src=\"/__clawgate__/ui/app.js\""));
    // No inline script anywhere (the CSP would block it anyway).
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("style="), "no inline styles");
    assert!(!html.contains("onclick") && !html.contains("javascript:"));

    // JSON for API clients and for clients that say nothing.
    for accept in [Some("application/json"), None, Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = http(gw.addr, "GET", "/", &headers);
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{accept:?}: {}",
            r.head
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["service"], "clawgate", "{accept:?}");
        assert_eq!(v["websocket"], "/");
    }

    // HEAD for the page: headers, no body.
    let r = http(gw.addr, "HEAD", "/", &[("Accept", BROWSER_ACCEPT)]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_security_headers(&r, port);
}

#[test]
fn assets_are_served_with_etags_and_unknown_ones_are_404() {
    let gw = start();
    let port = gw.addr.port();
    let mut total = 0usize;
    for (name, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let path = format!("/__clawgate__/ui/{name}");
        let r = http(gw.addr, "GET", &path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_security_headers(&r, port);
        let on_disk = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../gateway/ui/{name}")),
        )
        .unwrap();
        assert_eq!(r.body, on_disk, "{path} is the compiled-in file");
        total += r.body.len();
        let etag = r.header("etag").expect("ETag").to_string();
        assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
        // Revalidation: unchanged → 304 without a body.
        let r2 = http(gw.addr, "GET", &path, &[("If-None-Match", &etag)]);
        assert_eq!(r2.status, 304, "{}", r2.head);
        assert!(r2.body.is_empty());
        assert_eq!(r2.header("etag"), Some(etag.as_str()));
        let r3 = http(gw.addr, "GET", &path, &[("If-None-Match", "\"other\"")]);
        assert_eq!(r3.status, 200);
    }
    // index.html is only served at `/`.
    let html = http(gw.addr, "GET", "/", &[("Accept", "text/html")]);
    total += html.body.len();
    for bad in [
        "/__clawgate__/ui/index.html",
        "/__clawgate__/ui/nope.js",
        "/__clawgate__/ui/../ui/app.js",
        "/__clawgate__/ui/%2e%2e/app.js",
        "/__clawgate__/ui/",
        "/__clawgate__/ui/app.js/x",
    ] {
        let r = http(gw.addr, "GET", bad, &[("Accept", BROWSER_ACCEPT)]);
        assert_eq!(r.status, 404, "{bad}: {}", r.head);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    // Other unknown paths stay the gateway's JSON 404.
    let r = http(gw.addr, "GET", "/nope", &[]);
    assert_eq!(r.status, 404);

    // The whole UI (every file in crates/gateway/ui) stays small.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/ui");
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk < 300 * 1024, "crates/gateway/ui is {on_disk} bytes");
    assert_eq!(
        total as u64, on_disk,
        "every file in crates/gateway/ui is served"
    );
}

#[test]
fn the_ui_refuses_methods_other_than_get_and_head() {
    let gw = start();
    let r = http(
        gw.addr,
        "POST",
        "/__clawgate__/ui/app.js",
        &[("Content-Length", "0")],
    );
    assert_ne!(r.status, 200, "{}", r.head);
    let r = http(
        gw.addr,
        "POST",
        "/",
        &[("Content-Length", "0"), ("Accept", "text/html")],
    );
    assert_eq!(r.status, 405, "{}", r.head);
}
