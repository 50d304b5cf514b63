//! The Graph side: `POST /{version}/{phoneNumberId}/messages` with Meta's checks, errors and
//! the 24-hour window.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{digits, lock, Call, Fault, Kind, SentMessage, Shared, MAX_TEXT_BODY, WINDOW_SECS};

type Body = Full<Bytes>;

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    crate::resettable::accept_loop(listener, false, move |reset, req| {
        handle(shared.clone(), reset, req)
    })
    .await
}

/// Meta's HTTP status and message for a Graph error code.
pub(crate) fn error_meta(code: i64) -> (u16, &'static str, &'static str) {
    match code {
        190 => (401, "Error validating access token: Session has expired.", "The access token has expired."),
        0 => (401, "(#0) AuthException", "Authentication failed."),
        4 => (429, "(#4) Application request limit reached", "The app has reached its API call rate limit."),
        80007 => (400, "(#80007) Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        130429 => (429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
        131056 => (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit", "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time."),
        131047 => (400, "(#131047) Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number."),
        131000 => (500, "(#131000) Something went wrong", "Message failed to send due to an unknown error."),
        131026 => (400, "(#131026) Message undeliverable", "Unable to deliver message."),
        131048 => (400, "(#131048) Spam rate limit hit", "Message failed to send because there are restrictions on how many messages can be sent from this phone number."),
        2 => (503, "(#2) Service temporarily unavailable", "The service is temporarily unavailable."),
        100 => (400, "(#100) Invalid parameter", "Invalid parameter."),
        _ => (400, "(#1) An unknown error occurred", "An unknown error occurred."),
    }
}

pub(crate) fn error_title(code: i64) -> &'static str {
    error_meta(code).1
}

/// Meta's error envelope.
fn graph_error(code: i64, details: Option<&str>) -> (u16, Value) {
    let (status, message, default_details) = error_meta(code);
    let kind = "OAuthException";
    let body = json!({"error": {
        "message": message, "type": kind, "code": code,
        "error_data": {"messaging_product": "whatsapp",
                        "details": details.unwrap_or(default_details)},
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }});
    (status, body)
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn kind_of(body: &Value) -> Kind {
    if body["status"] == "read" {
        if body.get("typing_indicator").is_some() {
            Kind::Typing
        } else {
            Kind::Read
        }
    } else {
        match body["type"].as_str() {
            Some("text") => Kind::Text,
            Some("reaction") => Kind::Reaction,
            // `type` defaults to text when a text object is given.
            None if body.get("text").is_some() => Kind::Text,
            _ => Kind::Other,
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    _reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = match Limited::new(req.into_body(), 4 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(io::Error::other(e)),
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let kind = kind_of(&body);
    let idx = {
        let mut st = lock(&shared.state);
        st.calls.push(Call {
            kind,
            path: path.clone(),
            body: body.clone(),
            at: Instant::now(),
            status: 0,
            error_code: None,
        });
        st.calls.len() - 1
    };
    let fault = lock(&shared.state)
        .faults
        .get_mut(&kind)
        .and_then(|q| q.pop_front());
    let (status, out) = match fault {
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            graph(&shared, &method, &path, auth.as_deref(), &body, kind)
        }
        Some(Fault::BadGateway) => {
            lock(&shared.state).calls[idx].status = 502;
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
            )));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
        Some(Fault::Code(code)) => graph_error(code, None),
        None => graph(&shared, &method, &path, auth.as_deref(), &body, kind),
    };
    {
        let mut st = lock(&shared.state);
        let c = &mut st.calls[idx];
        c.status = status;
        c.error_code = out["error"]["code"].as_i64();
    }
    // Status webhooks follow an accepted text message, asynchronously.
    if status == 200 && kind == Kind::Text {
        if let (Some(wamid), Some(to)) = (
            out["messages"][0]["id"].as_str(),
            out["contacts"][0]["wa_id"].as_str(),
        ) {
            tokio::spawn(super::meta::send_statuses(
                shared.clone(),
                wamid.to_string(),
                to.to_string(),
            ));
        }
    }
    Ok(respond(status, &out))
}

fn graph(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    body: &Value,
    kind: Kind,
) -> (u16, Value) {
    let token_ok = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.token);
    if !token_ok {
        return graph_error(
            190,
            Some("Invalid OAuth access token - Cannot parse access token"),
        );
    }
    if !lock(&shared.state).token_valid {
        return graph_error(190, None);
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [version, phone_id, "messages"] = parts.as_slice() else {
        return graph_error(100, Some("Unknown path components"));
    };
    if !version.starts_with('v') || *method != Method::POST {
        return graph_error(100, Some("Unsupported request"));
    }
    if *phone_id != shared.phone_number_id {
        return graph_error(
            100,
            Some(&format!("Unsupported post request. Object with ID '{phone_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")),
        );
    }
    if body["messaging_product"] != "whatsapp" {
        return graph_error(100, Some("The parameter messaging_product is required."));
    }
    match kind {
        Kind::Read | Kind::Typing => {
            let id = body["message_id"].as_str().unwrap_or_default();
            if !lock(&shared.state).inbound_ids.contains(id) {
                return graph_error(100, Some("Invalid message_id: not an inbound message"));
            }
            (200, json!({"success": true}))
        }
        Kind::Text => send_text(shared, body),
        Kind::Reaction => (
            200,
            accepted(shared, body["to"].as_str().unwrap_or_default()),
        ),
        Kind::Other => graph_error(100, Some("Unsupported message type")),
    }
}

fn accepted(shared: &Shared, to: &str) -> Value {
    json!({"messaging_product": "whatsapp",
           "contacts": [{"input": to, "wa_id": digits(to)}],
           "messages": [{"id": shared.wamid()}]})
}

fn send_text(shared: &Arc<Shared>, body: &Value) -> (u16, Value) {
    let Some(to) = body["to"].as_str() else {
        return graph_error(131008, Some("The parameter to is required."));
    };
    let group = body["recipient_type"] == "group";
    let valid_to = group && !to.trim().is_empty() || {
        let t = to.strip_prefix('+').unwrap_or(to);
        (7..=15).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !valid_to {
        return graph_error(100, Some("Invalid parameter: to"));
    }
    let Some(text) = body["text"]["body"].as_str() else {
        return graph_error(131008, Some("The parameter text['body'] is required."));
    };
    if text.is_empty() || text.chars().count() > MAX_TEXT_BODY {
        return graph_error(
            100,
            Some("Param text['body'] must be at most 4096 characters long."),
        );
    }
    let now = shared.now();
    let last = lock(&shared.state).last_inbound.get(&digits(to)).copied();
    if !group && last.is_none_or(|t| now - t > WINDOW_SECS) {
        return graph_error(131047, None);
    }
    let out = accepted(shared, to);
    let wamid = out["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lock(&shared.state).sent.push(SentMessage {
        to: to.to_string(),
        text: text.to_string(),
        wamid,
        reply_to: body["context"]["message_id"].as_str().map(str::to_string),
        preview_url: body["text"]["preview_url"].as_bool().unwrap_or(false),
    });
    (200, out)
}
