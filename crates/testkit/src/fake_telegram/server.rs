//! The hyper server: routing `/bot<token>/<method>`, parameter extraction, faults, and
//! the Telegram response envelope.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::methods::{api_error, bad, dispatch, ApiError, ApiResult};
use super::params::{percent_decode, Params};
use super::state::{lock, Shared};
use super::{Call, Fault};

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

type Body = Full<Bytes>;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    crate::resettable::accept_loop(listener, false, move |reset, req| {
        handle(shared.clone(), reset, req)
    })
    .await
}

/// `/bot<token>/<method>` → `(token, lowercase method)`.
fn route(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/bot")?;
    let (token, method) = rest.split_once('/')?;
    if method.is_empty() || method.contains('/') {
        return None;
    }
    Some((percent_decode(token), method.to_ascii_lowercase()))
}

fn take_fault(shared: &Shared, method: &str) -> Option<Fault> {
    lock(&shared.faults).get_mut(method)?.pop_front()
}

/// Records the call and returns its index, so the status can be filled in later.
fn record(shared: &Shared, method: &str, params: Value) -> usize {
    let mut calls = lock(&shared.calls);
    calls.push(Call {
        method: method.to_string(),
        params,
        at: Instant::now(),
        status: 0,
    });
    calls.len() - 1
}

fn set_status(shared: &Shared, idx: usize, status: u16) {
    if let Some(call) = lock(&shared.calls).get_mut(idx) {
        call.status = status;
    }
}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let route = route(req.uri().path());
    let query = req.uri().query().map(str::to_string);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let method = route.as_ref().map(|r| r.1.clone()).unwrap_or_default();
    let too_large = || api_error(413, "Request Entity Too Large");
    let body = if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        Err(too_large())
    } else {
        match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Err(e) => return Err(io::Error::other(e)),
        }
    };
    let params = body.and_then(|b| Params::parse(query.as_deref(), &content_type, &b).map_err(bad));
    let recorded = params
        .as_ref()
        .map(Params::value)
        .unwrap_or_else(|_| json!({}));
    let idx = record(&shared, &method, recorded);

    let result: ApiResult = match route {
        None => Err(api_error(404, "Not Found")),
        Some((token, _)) if token != shared.cfg.token => Err(api_error(401, "Unauthorized")),
        Some(_) => match take_fault(&shared, &method) {
            Some(Fault::StallThenRetryAfter(d, secs)) => {
                tokio::time::sleep(d).await;
                Err(retry_after(secs))
            }
            Some(Fault::RetryAfter(secs)) => Err(retry_after(secs)),
            Some(Fault::Status(code, description)) => Err(api_error(code, description)),
            Some(Fault::HtmlError(code)) => {
                set_status(&shared, idx, code);
                return Ok(html_response(code));
            }
            Some(Fault::Hang) => std::future::pending().await,
            Some(Fault::ResetConnection) => {
                reset.store(true, Ordering::SeqCst);
                return Err(io::Error::other("fake Telegram: connection reset"));
            }
            Some(Fault::Stall(d)) => {
                tokio::time::sleep(d).await;
                run(&shared, &method, params).await
            }
            None => run(&shared, &method, params).await,
        },
    };
    let resp = envelope(result);
    set_status(&shared, idx, resp.status().as_u16());
    Ok(resp)
}

async fn run(shared: &Arc<Shared>, method: &str, params: Result<Params, ApiError>) -> ApiResult {
    dispatch(shared, method, &params?).await
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn response(code: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status_code(code);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,...}` with HTTP status N.
fn envelope(result: ApiResult) -> Response<Body> {
    match result {
        Ok(s) => {
            let mut body = json!({"ok": true, "result": s.result});
            if let Some(d) = s.description {
                body["description"] = json!(d);
            }
            response(200, "application/json", body.to_string())
        }
        Err(e) => {
            let mut body = json!({
                "ok": false,
                "error_code": e.code,
                "description": e.description,
            });
            let retry_after = e
                .parameters
                .as_ref()
                .and_then(|p| p["retry_after"].as_u64());
            if let Some(p) = e.parameters {
                body["parameters"] = p;
            }
            let mut resp = response(e.code, "application/json", body.to_string());
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
    }
}

/// What an nginx in front of Telegram answers when the backend is down.
fn html_response(code: u16) -> Response<Body> {
    let status = status_code(code);
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n\
         <center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    response(code, "text/html", body)
}

fn retry_after(secs: u64) -> ApiError {
    ApiError {
        code: 429,
        description: format!("Too Many Requests: retry after {secs}"),
        parameters: Some(json!({ "retry_after": secs })),
    }
}
