//! clawgate's own small browser UI (files under `crates/gateway/ui/`, compiled in), served
//! when no Control UI root is configured.
//!
//! * `GET /` with `Accept: text/html` (a browser navigating) → `index.html`; other clients
//!   keep the JSON pointer (the caller answers those).
//! * `GET /__clawgate__/ui/<file>` → one of the compiled-in assets, with a strong `ETag`
//!   (SHA-256 of the bytes) and `Cache-Control: no-cache` so a new binary is picked up at once
//!   while an unchanged file costs a 304. Any other name under that prefix is a 404.
//!
//! Every response carries the shared security headers and a strict CSP: no inline script or
//! style at all, scripts/styles/images only from the gateway itself, WebSocket connections
//! only to the host the page was loaded from, no framing.

use crate::state::Gateway;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// URL prefix of the assets (kept out of the way of the gateway's own routes).
pub const ASSET_PREFIX: &str = "/__clawgate__/ui/";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The files of the UI. `index.html` is served at `/` only.
const FILES: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../ui/icon.svg"),
    },
];

/// `"<hex>"` strong ETags, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| format!("\"{}\"", &hex::encode(Sha256::digest(f.bytes))[..32]))
        .collect()
});

/// Total size of the compiled-in files (the budget is ~300 KB).
pub fn total_bytes() -> usize {
    FILES.iter().map(|f| f.bytes.len()).sum()
}

/// `None` when the request is not for the embedded UI.
pub fn serve(_gw: &Gateway, req: &Request) -> Option<Response> {
    let path = req.uri().path();
    let index = if path == "/" {
        if !super::wants_html(req.headers()) {
            return None;
        }
        0
    } else if let Some(name) = path.strip_prefix(ASSET_PREFIX) {
        match FILES
            .iter()
            .position(|f| f.name == name && name != "index.html")
        {
            Some(i) => i,
            None => return Some(not_found(req.headers())),
        }
    } else {
        return None;
    };
    Some(file_response(index, req.headers()))
}

fn file_response(i: usize, headers: &HeaderMap) -> Response {
    let f = &FILES[i];
    let etag = &ETAGS[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(f.bytes));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(f.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    super::security_headers(&mut resp, Some(&csp(headers)));
    resp
}

fn not_found(headers: &HeaderMap) -> Response {
    let mut resp = Response::new(Body::from("not found\n"));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    super::security_headers(&mut resp, Some(&csp(headers)));
    resp
}

/// The page's Content-Security-Policy. WebSocket connections are limited to the host the
/// page came from (the Host header already passed the gateway's allowlist; it is only
/// echoed when it consists of host/port characters).
pub fn csp(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let ws = match host {
        Some(h) => format!("ws://{h} wss://{h}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_names_only_the_host_and_no_inline() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:18789"));
        let c = csp(&h);
        assert!(c.contains("connect-src 'self' ws://127.0.0.1:18789 wss://127.0.0.1:18789;"));
        assert!(!c.contains("unsafe"));
        h.insert(header::HOST, HeaderValue::from_static("a b;script-src *"));
        assert!(csp(&h).contains("connect-src 'self' 'self';"));
    }

    #[test]
    fn files_fit_the_budget() {
        assert!(total_bytes() < 300 * 1024, "{}", total_bytes());
        assert_eq!(ETAGS.len(), FILES.len());
    }
}
