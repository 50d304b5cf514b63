//! The browser side of the port: OpenClaw's Control UI served from a directory
//! (`gateway.controlUi.root`), or clawgate's own small UI compiled into the binary when no
//! root is set. Both get the same security headers.

use crate::state::Gateway;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use std::sync::Arc;

pub mod control;
pub mod embedded;

/// Answers a plain (non-upgrade) GET/HEAD that belongs to a browser UI, or `None` when the
/// request is not the UI's (the caller then answers as before: JSON pointer or 404). The
/// answer may still be reading files: await it. `gateway.controlUi.enabled: false` serves no
/// UI at all.
pub fn serve(gw: &Arc<Gateway>, req: &Request) -> Option<control::Pending> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    if !gw.config.gateway.control_ui.enabled {
        return None;
    }
    if let Some(pending) = control::serve(gw, req) {
        return Some(pending);
    }
    embedded::serve(gw, req).map(|r| Box::pin(std::future::ready(r)) as control::Pending)
}

/// Whether the client asked for HTML (a browser navigating) rather than JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("text/html")
}

/// Headers every UI response carries. `csp` is the Content-Security-Policy for this
/// response (HTML pages pass one that allows exactly their inline scripts).
pub fn security_headers(resp: &mut Response, csp: Option<&str>) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(csp) = csp.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
}
