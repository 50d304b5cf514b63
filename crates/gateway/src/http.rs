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
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
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
    if let Some(tg) = &state.gw.telegram {
        if tg.cfg.mode == clawgate_config::TelegramMode::Webhook {
            r = r.route(&tg.cfg.webhook_path, any(telegram_webhook));
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

/// The host name of a `Host` header value, lower-cased, without the port.
fn host_name(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    if v.starts_with('[') {
        return v.split_once(']').map(|(h, _)| format!("{h}]")).unwrap_or(v);
    }
    v.split(':').next().unwrap_or("").to_string()
}

/// Runs before every route: Host allowlist (DNS rebinding), Origin allowlist for upgrades
/// and non-GET requests, body size cap.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let gw = &st.gw;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name);
    let host_ok = match &host {
        Some(h) => gw.allowed_hosts.iter().any(|a| a == h) || h.starts_with("127."),
        None => false,
    };
    if !host_ok {
        debug!(host = ?host, "request refused: Host not allowed");
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            "this gateway only answers requests addressed to localhost/127.0.0.1 or a configured host (gateway.allowedOrigins)",
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
            if !gw.allowed_origins.contains(&origin) {
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

/// Largest webhook body accepted (Telegram updates are a few KB).
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// The webhook gate for Telegram: size cap → secret check → parse → dedupe and store → ack.
/// Telegram signs nothing and sends no timestamp, so the secret header is the check and
/// `update_id` dedupe stands in for a replay window.
async fn telegram_webhook(State(st): State<AppState>, req: Request) -> Response {
    let Some(tg) = st.gw.telegram.clone() else {
        return not_found().await;
    };
    if req.method() != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        );
    }
    let presented = req
        .headers()
        .get(clawgate_channels::telegram::SECRET_HEADER)
        .map(|v| v.as_bytes().to_vec());
    let body = match axum::body::to_bytes(req.into_body(), MAX_WEBHOOK_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "webhook body too large",
            )
        }
    };
    let secret = tg
        .cfg
        .webhook_secret
        .as_ref()
        .map(|s| s.expose())
        .unwrap_or("");
    if secret.is_empty()
        || !clawgate_channels::telegram::verify_secret(secret, presented.as_deref())
    {
        warn!("telegram webhook: missing or wrong secret token");
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong X-Telegram-Bot-Api-Secret-Token",
        );
    }
    let update: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "body is not a JSON update",
            )
        }
    };
    match tg.ingest(&st.gw, &update).await {
        Ok(_) => {
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut().insert(
                "x-clawgate-delivery-accepted",
                HeaderValue::from_static("durable"),
            );
            resp
        }
        Err(e) if e.contains("update_id") => error(StatusCode::BAD_REQUEST, "bad_update", &e),
        Err(e) => {
            warn!("telegram webhook: cannot store the update: {e}");
            // Not acknowledged: Telegram will deliver it again.
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "cannot store the update",
            )
        }
    }
}

async fn not_found() -> Response {
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
    let Some(slot) = st.preauth.acquire(peer.client_ip) else {
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
