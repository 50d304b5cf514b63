//! The hyper server on the fake's one port: `/api/<method>` (Web API) and `/link/`
//! (Socket Mode WebSocket upgrade).

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::state::{lock, Shared};

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(crate) type Body = Full<Bytes>;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    crate::resettable::accept_loop(listener, true, move |reset, req| {
        handle(shared.clone(), reset, req)
    })
    .await
}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let path = req.uri().path().to_string();
    if path == "/link" || path == "/link/" {
        return Ok(super::socket::upgrade(shared, req));
    }
    if path.starts_with("/files-pri/") {
        return Ok(file_download(&shared, &req, &path));
    }
    let Some(method) = path.strip_prefix("/api/").map(str::to_string) else {
        return Ok(text_response(404, "text/plain", "Not Found".into()));
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(text_response(
                413,
                "text/plain",
                "Request Entity Too Large".into(),
            ))
        }
        Err(e) => return Err(io::Error::other(e)),
    };
    super::api::handle(&shared, &reset, &method, &parts, &body).await
}

/// `url_private` downloads: the bytes with the bot token, else Slack's sign-in page
/// (HTTP 200 HTML, the classic trap for clients that forget the token).
fn file_download(shared: &Shared, req: &Request<Incoming>, path: &str) -> Response<Body> {
    let authed = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.cfg.bot_token);
    let key = path.replacen("/download/", "/", 1);
    let file = lock(&shared.state).files.get(&key).cloned();
    match file {
        None => text_response(404, "text/plain", "Not Found".into()),
        Some(_) if !authed => text_response(
            200,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><head><title>Slack</title></head>\
             <body>Sign in to Slack</body></html>"
                .into(),
        ),
        Some((mimetype, bytes)) => {
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            if let Ok(v) = HeaderValue::from_str(&mimetype) {
                resp.headers_mut().insert(CONTENT_TYPE, v);
            }
            resp
        }
    }
}

pub(crate) fn text_response(code: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
