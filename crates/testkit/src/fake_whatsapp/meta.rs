//! The Meta side of the webhook: Meta's JSON serialisation (non-ASCII as `\uXXXX`), the
//! `X-Hub-Signature-256` signature, the verification GET, signed POSTs and status webhooks.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{lock, Shared};
use crate::fake_telegram::client::{http_request, split_url};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One webhook POST (or verification GET) the Meta side made.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The exact bytes sent.
    pub body: Vec<u8>,
    /// `X-Hub-Signature-256`, when sent.
    pub signature: Option<String>,
    /// The gateway's answer; 0 when it did not answer.
    pub status: u16,
    pub response: String,
    pub at: Instant,
}

/// JSON the way Meta serialises webhook payloads: compact, with every non-ASCII character
/// escaped as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF).
pub fn meta_json(v: &Value) -> Vec<u8> {
    let compact = v.to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with the app secret.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn verify_get(url: &str, token: &str, challenge: &str) -> (u16, String) {
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!(
        "{url}{sep}hub.mode=subscribe&hub.challenge={}&hub.verify_token={}",
        query_escape(challenge),
        query_escape(token)
    );
    let Ok(target) = split_url(&full) else {
        return (0, "bad url".into());
    };
    match http_request(&target, "GET", &[], b"", TIMEOUT).await {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, e),
    }
}

pub(crate) enum Signing {
    Good,
    WrongSecret,
    Missing,
    Altered,
    Utf8,
}

pub(crate) async fn post_signed(
    shared: &Shared,
    url: &str,
    payload: &Value,
    s: Signing,
) -> Delivery {
    let escaped = meta_json(payload);
    let (body, signature) = match s {
        Signing::Good => (escaped.clone(), Some(sign(&shared.app_secret, &escaped))),
        Signing::WrongSecret => (escaped.clone(), Some(sign("not-the-app-secret", &escaped))),
        Signing::Missing => (escaped, None),
        Signing::Altered => {
            let sig = sign(&shared.app_secret, &escaped);
            let mut b = escaped;
            // Flip a digit inside the first message id / timestamp (still valid JSON).
            if let Some(p) = b.iter().rposition(u8::is_ascii_digit) {
                b[p] = if b[p] == b'9' { b'8' } else { b[p] + 1 };
            }
            (b, Some(sig))
        }
        Signing::Utf8 => {
            let sig = sign(&shared.app_secret, &escaped);
            (payload.to_string().into_bytes(), Some(sig))
        }
    };
    let d = send(url, &body, signature.as_deref()).await;
    lock(&shared.state).deliveries.push(d.clone());
    d
}

async fn send(url: &str, body: &[u8], signature: Option<&str>) -> Delivery {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("User-Agent", "facebookexternalua"),
    ];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    let at = Instant::now();
    let (status, response) = match split_url(url) {
        Ok(t) => match http_request(&t, "POST", &headers, body, TIMEOUT).await {
            Ok(r) => (r.status, r.text()),
            Err(e) => (0, e),
        },
        Err(e) => (0, e),
    };
    Delivery {
        body: body.to_vec(),
        signature: signature.map(str::to_string),
        status,
        response,
        at,
    }
}

/// A `statuses[]` element; `error` = (code, title) for `failed`.
pub(crate) fn status_json(
    shared: &Shared,
    wamid: &str,
    recipient: &str,
    status: &str,
    error: Option<(i64, &str)>,
) -> Value {
    let mut s = json!({
        "id": wamid, "status": status, "timestamp": shared.now().to_string(),
        "recipient_id": recipient,
    });
    if status != "failed" {
        s["conversation"] = json!({"id": "a75d17ad06104c51166f948319b03c6a",
                                    "origin": {"type": "service"}});
        s["pricing"] = json!({"billable": true, "pricing_model": "CBP", "category": "service"});
    }
    if let Some((code, title)) = error {
        s["errors"] = json!([{"code": code, "title": title, "message": title,
            "error_data": {"details": title},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]);
    }
    s
}

/// Sends the status webhooks for an accepted message, one POST each, retrying each until
/// it is accepted (bounded).
pub(crate) async fn send_statuses(
    shared: std::sync::Arc<Shared>,
    wamid: String,
    recipient: String,
) {
    let plan = lock(&shared.state).status_plan.clone();
    let steps: Vec<(&str, Option<(i64, &str)>)> = match plan {
        super::StatusPlan::Off => return,
        super::StatusPlan::Delivered => vec![("sent", None), ("delivered", None), ("read", None)],
        super::StatusPlan::Failed(code) => vec![
            ("sent", None),
            ("failed", Some((code, super::server::error_title(code)))),
        ],
    };
    for (status, error) in steps {
        let Some(url) = lock(&shared.state).webhook_url.clone() else {
            return;
        };
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": shared.display_number,
                         "phone_number_id": shared.phone_number_id},
            "statuses": [status_json(&shared, &wamid, &recipient, status, error)],
        });
        let payload = json!({"object": "whatsapp_business_account", "entry": [
            {"id": shared.waba_id, "changes": [{"field": "messages", "value": value}]}]});
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut backoff = Duration::from_millis(100);
        loop {
            let d = post_signed(&shared, &url, &payload, Signing::Good).await;
            if (200..300).contains(&d.status) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
