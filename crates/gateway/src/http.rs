//! The HTTP surface on the gateway port: probes, the WebSocket upgrade, and the guards every
//! request passes first (Host allowlist against DNS rebinding, Origin allowlist, size caps).

use crate::auth::Peer;
use crate::state::Gateway;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use clawgate_channels::Host;
use futures_util::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// Largest request body any route accepts.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The TCP peer, inserted by the accept loop.
#[derive(Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

#[derive(Clone)]
pub struct AppState {
    pub gw: Arc<Gateway>,
    pub preauth: Arc<crate::preauth::PreauthSlots>,
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    for (i, rc) in state.gw.channels.iter().enumerate() {
        if let Some(hook) = rc.ch.webhook() {
            r = r.route(
                hook.path(),
                any(move |st: State<AppState>, req: Request| webhook_gate(st, i, req)),
            );
        }
    }
    r.route("/healthz", any(healthz))
        .route("/health", any(healthz))
        .route("/readyz", any(readyz))
        .route("/ready", any(readyz))
        .route("/", any(root))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn json_ok(status: StatusCode, value: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(value)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether a `Host` header value names this gateway: a loopback literal (`localhost`, an
/// IPv4 address in 127.0.0.0/8, `[::1]`) or a configured name, with an optional numeric
/// port. Look-alikes such as `127.0.0.1.evil.com` are refused (DNS rebinding).
pub fn host_allowed(gw: &Gateway, value: &str) -> bool {
    match clawgate_config::split_host_port(value) {
        Some((host, _)) => {
            clawgate_config::is_loopback_host(&host) || gw.allowlists().hosts.contains(&host)
        }
        None => false,
    }
}

/// Runs before every route: Host allowlist (DNS rebinding), Origin allowlist for upgrades
/// and non-GET requests, body size cap.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let gw = &st.gw;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| host_allowed(gw, h)) && !is_webhook_path(gw, req.uri().path()) {
        debug!(host = ?host.map(sanitize), "request refused: Host not allowed");
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this gateway only answers requests addressed to localhost/127.0.0.1 or a configured host (gateway.allowedHosts)",
        );
    }
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if is_upgrade || req.method() != Method::GET && req.method() != Method::HEAD {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            if !gw.allowlists().origins.contains(&origin) {
                warn!(origin = %sanitize(&origin), "browser origin refused");
                return error(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "origin not allowed (open the Control UI from the gateway host or add it to gateway.allowedOrigins)",
                );
            }
        }
    }
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if too_big {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body too large",
        );
    }
    next.run(req).await
}

fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn probe_method_ok(m: &Method) -> Option<Response> {
    if m == Method::GET || m == Method::HEAD {
        return None;
    }
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use GET or HEAD",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(resp)
}

async fn healthz(req: Request) -> Response {
    if let Some(r) = probe_method_ok(req.method()) {
        return r;
    }
    json_ok(
        StatusCode::OK,
        json!({"ok": true, "status": "live", "service": "clawgate"}),
    )
}

async fn readyz(State(st): State<AppState>, req: Request) -> Response {
    if let Some(r) = probe_method_ok(req.method()) {
        return r;
    }
    if st.gw.is_shutting_down() {
        return json_ok(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "failing": ["gateway-draining"]}),
        );
    }
    json_ok(
        StatusCode::OK,
        json!({"ready": true, "failing": [], "uptimeMs": st.gw.uptime_ms()}),
    )
}

/// Largest webhook body accepted (platform events are a few KB).
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// The whole webhook body must arrive within this, counted from the end of the headers.
pub const WEBHOOK_BODY_DEADLINE: Duration = Duration::from_secs(5);

enum BodyError {
    TooLarge,
    Broken,
}

/// Reads a body up to `cap` bytes; stops (without buffering more) as soon as it passes.
async fn read_capped(body: Body, cap: usize) -> Result<Vec<u8>, BodyError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if out.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// 429 with `Retry-After` (whole seconds, rounded up).
fn too_many_attempts(retry_after_ms: u64) -> Response {
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed attempts; retry later",
    );
    let secs = retry_after_ms.div_ceil(1000).max(1);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The one webhook gate, for every channel's webhook route: throttle → header checks (a
/// secret header is checked before a byte of the body is read) → body (capped, under a
/// deadline) → verify on the raw bytes (signature, replay window) → parse → durable insert
/// deduped on the platform's event id → ack. Failed checks feed the same limiter as logins.
/// Webhook routes are authenticated by their secret or signature, not by `Host`.
async fn webhook_gate(State(st): State<AppState>, index: usize, req: Request) -> Response {
    let Some(rc) = st.gw.channels.get(index).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", "not found");
    };
    let Some(hook) = rc.ch.webhook() else {
        return error(StatusCode::NOT_FOUND, "not_found", "not found");
    };
    let name = rc.ch.name();
    // A GET is the platform's subscription handshake, where it has one.
    let handshake = (req.method() == Method::GET)
        .then(|| hook.verify_get(req.uri().query().unwrap_or("")))
        .flatten();
    if req.method() != Method::POST && handshake.is_none() {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        );
    }
    let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>().copied() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "peer address unknown",
        );
    };
    let client_ip = Peer::from_parts(&st.gw, addr, req.headers()).client_ip;
    if let Err(retry) = st.gw.limiter.check(client_ip) {
        return too_many_attempts(retry);
    }
    if let Some(answer) = handshake {
        // The platform's subscription handshake (e.g. Meta's `hub.challenge`).
        return match answer {
            Ok(body) => {
                st.gw.limiter.record_success(client_ip);
                let mut resp = (StatusCode::OK, body).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            Err(r) => {
                if st.gw.limiter.record_failure(client_ip).is_some() {
                    warn!(client = %client_ip, channel = name, "webhook: repeated failed verification GETs; client locked out");
                }
                error(StatusCode::FORBIDDEN, r.code, &r.message)
            }
        };
    }
    let refused = |r: clawgate_channels::Rejected| {
        // One line per lockout, not per attempt: a flood of bad secrets must not flood the log.
        match st.gw.limiter.record_failure(client_ip) {
            Some(ms) => warn!(
                client = %client_ip, channel = name,
                "webhook: repeated failed verification ({}); client locked out for {ms} ms", r.message
            ),
            None => debug!(client = %client_ip, channel = name, "webhook: {}", r.message),
        }
        error(StatusCode::UNAUTHORIZED, r.code, &r.message)
    };
    if let Err(r) = hook.verify_headers(req.headers()) {
        return refused(r);
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(
        WEBHOOK_BODY_DEADLINE,
        read_capped(body, MAX_WEBHOOK_BODY),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "webhook body too large",
            )
        }
        Ok(Err(BodyError::Broken)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "webhook body could not be read",
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "webhook body not received in time",
            )
        }
    };
    let now_secs = crate::devices::now_ms() / 1000;
    if let Err(r) = hook.verify_body(&parts.headers, &body, now_secs) {
        return refused(r);
    }
    st.gw.limiter.record_success(client_ip);
    let event = match hook.parse(&parts.headers, &body) {
        Ok(e) => e,
        Err(r) => return error(StatusCode::BAD_REQUEST, r.code, &r.message),
    };
    let items = match event {
        clawgate_channels::WebhookEvent::Store { key, payload } => vec![(key, payload)],
        clawgate_channels::WebhookEvent::StoreMany(items) => items,
        clawgate_channels::WebhookEvent::Respond(v) => return json_ok(StatusCode::OK, v),
        clawgate_channels::WebhookEvent::Ignore => return StatusCode::OK.into_response(),
    };
    match rc.host.ingest(items, None).await {
        Ok(_) => {
            rc.ch.status().polled();
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut().insert(
                "x-clawgate-delivery-accepted",
                HeaderValue::from_static("durable"),
            );
            resp
        }
        Err(e) => {
            warn!(channel = name, "webhook: cannot store the delivery: {e}");
            // Not acknowledged: the platform will deliver it again.
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "cannot store the update",
            )
        }
    }
}

/// Whether `path` is a channel's webhook route (authenticated by its secret or signature,
/// so exempt from the Host allowlist).
fn is_webhook_path(gw: &Gateway, path: &str) -> bool {
    gw.channels
        .iter()
        .any(|rc| rc.ch.webhook().is_some_and(|h| h.path() == path))
}

async fn not_found(State(st): State<AppState>, req: Request) -> Response {
    if fastwebsockets::upgrade::is_upgrade_request(&req)
        && crate::ui::control::is_ws_path(&st.gw, req.uri().path())
    {
        // The Control UI mounted under a base path opens its WebSocket there.
        return root(State(st), req).await;
    }
    if let Some(resp) = crate::ui::serve(&st.gw, &req) {
        return resp.await;
    }
    error(StatusCode::NOT_FOUND, "not_found", "not found")
}

/// `/`: the WebSocket endpoint. Plain GETs get a short pointer instead.
async fn root(State(st): State<AppState>, mut req: Request) -> Response {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            );
        }
        if let Some(resp) = crate::ui::serve(&st.gw, &req) {
            return resp.await;
        }
        return json_ok(
            StatusCode::OK,
            json!({"service": "clawgate", "websocket": "/", "health": "/healthz"}),
        );
    }
    let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>().copied() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "peer address unknown",
        );
    };
    if st.gw.is_shutting_down() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "gateway stopping",
        );
    }
    let peer = Peer::from_parts(&st.gw, addr, req.headers());
    let Some(slot) = st.preauth.acquire(peer.client_ip).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many pending connections",
        );
    };
    let (resp, fut) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_upgrade", &e.to_string()),
    };
    let gw = st.gw.clone();
    tokio::spawn(async move {
        match fut.await {
            Ok(ws) => crate::ws::serve(gw, ws, peer, slot).await,
            Err(e) => debug!("websocket upgrade failed: {e}"),
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Body::empty())
}
