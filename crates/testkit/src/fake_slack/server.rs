//! The hyper server on the fake's one port: `/api/<method>` (Web API) and `/link/`
//! (Socket Mode WebSocket upgrade).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::state::{lock, Shared};

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(crate) type Body = Full<Bytes>;

/// A connection's socket; when `reset` is set it closes with an RST instead of a FIN.
pub(crate) struct ConnIo {
    pub stream: TcpStream,
    pub reset: Arc<AtomicBool>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Zero linger makes close() abort the connection.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let reset = Arc::new(AtomicBool::new(false));
            let io = ConnIo {
                stream,
                reset: reset.clone(),
            };
            let svc =
                hyper::service::service_fn(move |req| handle(shared.clone(), reset.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades()
                .await;
        });
    }
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
