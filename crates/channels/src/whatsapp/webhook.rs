//! The Cloud API webhook: the verification GET (`hub.*`), the `X-Hub-Signature-256`
//! signature on the exact received bytes, and the batched payload → one stored item per
//! message (deduped on its `wamid`) plus the status reports.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a query string (first occurrence, decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == name).then(|| form_decode(v))
    })
}

/// Equal in constant time (over digests, so the length leaks nothing).
pub fn secret_eq(expected: &str, presented: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// The verification GET: `Ok(challenge)` when `hub.mode=subscribe` and the verify token
/// matches; `Err(why)` otherwise.
pub fn verify_subscription(verify_token: &str, query: &str) -> Result<String, &'static str> {
    if query_param(query, "hub.mode").as_deref() != Some("subscribe") {
        return Err("hub.mode must be subscribe");
    }
    let token = query_param(query, "hub.verify_token").unwrap_or_default();
    if verify_token.is_empty() || !secret_eq(verify_token, &token) {
        return Err("wrong hub.verify_token");
    }
    query_param(query, "hub.challenge")
        .filter(|c| !c.is_empty())
        .ok_or("missing hub.challenge")
}

/// `sha256=<hex>` of the body with the app secret.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `X-Hub-Signature-256` over the exact bytes received, in constant time.
pub fn verify_signature(
    app_secret: &str,
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), &'static str> {
    let Some(h) = header else {
        return Err("missing X-Hub-Signature-256");
    };
    let Some(hex_sig) = h.strip_prefix(b"sha256=") else {
        return Err("X-Hub-Signature-256 is not sha256=<hex>");
    };
    let Ok(presented) = hex::decode(hex_sig.to_ascii_lowercase()) else {
        return Err("X-Hub-Signature-256 is not sha256=<hex>");
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&presented)
        .map_err(|_| "X-Hub-Signature-256 does not match the body")
}

/// One status report (`statuses[]`) for an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub id: String,
    pub status: String,
    pub recipient: String,
    /// `failed`: `(code, "title: details")`.
    pub error: Option<(i64, String)>,
}

/// What one delivery carries.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// `(wamid, {"message", "contact", "metadata"})` per message, in order.
    pub messages: Vec<(String, Value)>,
    pub statuses: Vec<StatusReport>,
    /// `value.errors[]` (asynchronous error reports): `(code, text)`.
    pub errors: Vec<(i64, String)>,
}

fn error_text(e: &Value) -> String {
    let title = e["title"]
        .as_str()
        .or(e["message"].as_str())
        .unwrap_or("error");
    match e["error_data"]["details"].as_str() {
        Some(d) if d != title => format!("{title}: {d}"),
        _ => title.to_string(),
    }
}

/// Walks every entry, change, message and status of a verified body. `Err` when the body is
/// not a WhatsApp Business Account payload.
pub fn parse_batch(body: &[u8]) -> Result<Batch, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_string())?;
    if v["object"] != "whatsapp_business_account" {
        return Err(format!("unexpected object {}", v["object"]));
    }
    let mut b = Batch::default();
    for entry in v["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            if change["field"] != "messages" {
                continue;
            }
            let value = &change["value"];
            let contacts = value["contacts"].as_array();
            for m in value["messages"].as_array().into_iter().flatten() {
                let Some(id) = m["id"].as_str().filter(|s| !s.is_empty()) else {
                    continue;
                };
                let from = m["from"].as_str().unwrap_or_default();
                let contact = contacts
                    .into_iter()
                    .flatten()
                    .find(|c| c["wa_id"].as_str() == Some(from))
                    .cloned()
                    .unwrap_or(Value::Null);
                b.messages.push((
                    id.to_string(),
                    json!({"message": m, "contact": contact, "metadata": value["metadata"]}),
                ));
            }
            for s in value["statuses"].as_array().into_iter().flatten() {
                let (Some(id), Some(status)) = (s["id"].as_str(), s["status"].as_str()) else {
                    continue;
                };
                let error = s["errors"]
                    .as_array()
                    .and_then(|e| e.first())
                    .map(|e| (e["code"].as_i64().unwrap_or(0), error_text(e)));
                b.statuses.push(StatusReport {
                    id: id.to_string(),
                    status: status.to_string(),
                    recipient: s["recipient_id"].as_str().unwrap_or_default().to_string(),
                    error,
                });
            }
            for e in value["errors"].as_array().into_iter().flatten() {
                b.errors
                    .push((e["code"].as_i64().unwrap_or(0), error_text(e)));
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_vector_from_the_spec() {
        // channels spec §8.2.
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let sig = "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756";
        assert_eq!(sign("test_app_secret", body), sig);
        assert_eq!(
            verify_signature("test_app_secret", Some(sig.as_bytes()), body),
            Ok(())
        );
        let upper = sig.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(
            verify_signature("test_app_secret", Some(upper.as_bytes()), body),
            Ok(())
        );
        let mut altered = body.to_vec();
        altered.push(b' ');
        assert!(verify_signature("test_app_secret", Some(sig.as_bytes()), &altered).is_err());
        assert!(verify_signature("other", Some(sig.as_bytes()), body).is_err());
        assert!(verify_signature("test_app_secret", None, body).is_err());
        assert!(verify_signature("test_app_secret", Some(b"sha1=abc"), body).is_err());
        assert_eq!(
            sign("secret", b"test"),
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
    }

    #[test]
    fn escaped_bytes_verify_and_reserialised_ones_do_not() {
        let escaped = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.X","type":"text","text":{"body":"\ud83d\ude2e"}}]}}]}]}"#;
        let sig = sign("s", escaped);
        assert_eq!(verify_signature("s", Some(sig.as_bytes()), escaped), Ok(()));
        let v: Value = serde_json::from_slice(escaped).unwrap();
        assert!(verify_signature("s", Some(sig.as_bytes()), v.to_string().as_bytes()).is_err());
        let b = parse_batch(escaped).unwrap();
        assert_eq!(b.messages[0].1["message"]["text"]["body"], "😮");
    }

    #[test]
    fn verification_get() {
        let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my%20token";
        assert_eq!(verify_subscription("my token", q), Ok("1158201444".into()));
        assert!(verify_subscription("other", q).is_err());
        assert!(verify_subscription(
            "my token",
            "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=my+token"
        )
        .is_err());
        assert!(
            verify_subscription("my token", "hub.mode=subscribe&hub.verify_token=my+token")
                .is_err()
        );
        assert!(
            verify_subscription("", "hub.mode=subscribe&hub.challenge=1&hub.verify_token=")
                .is_err()
        );
    }

    #[test]
    fn batches_are_walked_completely() {
        let body = json!({"object": "whatsapp_business_account", "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": {
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106"},
                "contacts": [{"profile": {"name": "A"}, "wa_id": "111"}, {"profile": {"name": "B"}, "wa_id": "222"}],
                "messages": [
                    {"from": "111", "id": "wamid.1", "timestamp": "1", "type": "text", "text": {"body": "a"}},
                    {"from": "222", "id": "wamid.2", "timestamp": "1", "type": "text", "text": {"body": "b"}}],
                "statuses": [{"id": "wamid.out", "status": "failed", "recipient_id": "111",
                    "errors": [{"code": 131026, "title": "Message undeliverable", "error_data": {"details": "not on WhatsApp"}}]}]}}]},
            {"id": "2", "changes": [
                {"field": "account_update", "value": {}},
                {"field": "messages", "value": {"messages": [
                    {"from": "333", "id": "wamid.3", "timestamp": "1", "type": "reaction", "reaction": {"message_id": "wamid.out", "emoji": "👍"}}]}}]}]});
        let b = parse_batch(body.to_string().as_bytes()).unwrap();
        let ids: Vec<&str> = b.messages.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ids, ["wamid.1", "wamid.2", "wamid.3"]);
        assert_eq!(b.messages[1].1["contact"]["profile"]["name"], "B");
        assert_eq!(b.statuses[0].status, "failed");
        assert_eq!(
            b.statuses[0].error,
            Some((131026, "Message undeliverable: not on WhatsApp".into()))
        );
        assert!(parse_batch(b"{\"object\":\"page\"}").is_err());
        assert!(parse_batch(b"nope").is_err());
    }
}
