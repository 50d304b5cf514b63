//! The three frame kinds: `req` (client → server), `res` and `event` (server → client).

use crate::error::ErrorShape;
use serde::Serialize;
use serde_json::Value;

/// Why an inbound text frame is not a usable request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not a `{"type":"req","id":…,"method":…}` object.
    NotRequest,
    /// Values that would take more than [`MAX_VALUES_WEIGHT`] once parsed: refused before
    /// parsing.
    TooManyValues,
}

/// Most memory the JSON values of one frame may take once parsed (beyond its text), as
/// estimated by [`values_weight`]: 16 MiB. Without it `[0,0,…]` parses into ~16× its size
/// and `[{"a":0},…]` into ~80× (a B-tree node per object). Large payloads (attachments,
/// file contents) are strings: one value each, whatever their size.
pub const MAX_VALUES_WEIGHT: usize = 16 * 1024 * 1024;
/// Estimated bytes per value after a `,` (a 32-byte `Value`, twice that while its
/// container's `Vec` doubles, or an object member with its key and B-tree share).
const COMMA_WEIGHT: usize = 128;
/// Per `[`: the array's first value plus its first `Vec` allocation.
const ARRAY_WEIGHT: usize = 256;
/// Per `{`: the object's first member plus a whole B-tree leaf (11 slots).
const OBJECT_WEIGHT: usize = 896;

/// An upper bound on the memory the values of `text` take once parsed (checked against the
/// allocator in `tests/prop_frames.rs`): every value but the first follows a `[`, `{` or `,`
/// outside strings, each weighed as above. Stops once it passes `limit`. Strings are skipped
/// with `memchr`, so a large base64 string costs little to scan.
pub fn values_weight(text: &str, limit: usize) -> usize {
    let b = text.as_bytes();
    let mut w = COMMA_WEIGHT;
    let mut i = 0;
    while i < b.len() {
        let add = match b[i] {
            b'"' => {
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or(&[])) {
                        Some(j) if b[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                        // Unterminated: not JSON, the parser says so.
                        None => return w,
                    }
                }
                continue;
            }
            b',' => COMMA_WEIGHT,
            b'[' => ARRAY_WEIGHT,
            b'{' => OBJECT_WEIGHT,
            _ => 0,
        };
        w += add;
        if w > limit {
            return w;
        }
        i += 1;
    }
    w
}

/// The string `id` of a frame without building its other values (to answer a frame that is
/// refused), or `None`.
pub fn request_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow, default)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    // Objects only (a derived struct would also accept an array).
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<IdOnly>(text)
        .ok()?
        .id
        .map(|id| id.into_owned())
}

/// A parsed request. `params` is `Value::Null` when absent.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub method: String,
    pub params: Value,
}

impl Request {
    /// Parses one text frame leniently: unknown top-level keys are ignored, `params` may be absent.
    pub fn parse(text: &str) -> Result<Request, FrameError> {
        Self::parse_weighed(text).map(|(r, _)| r)
    }

    /// Like [`Request::parse`], also returning what the parsed request may hold in memory:
    /// its text length plus [`values_weight`]. Frames whose values would take more than
    /// [`MAX_VALUES_WEIGHT`] are refused before parsing.
    pub fn parse_weighed(text: &str) -> Result<(Request, usize), FrameError> {
        let values = values_weight(text, MAX_VALUES_WEIGHT);
        if values > MAX_VALUES_WEIGHT {
            return Err(FrameError::TooManyValues);
        }
        let weight = text.len() + values;
        let value: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
        let Value::Object(mut obj) = value else {
            return Err(FrameError::NotRequest);
        };
        if obj.get("type").and_then(Value::as_str) != Some("req") {
            return Err(FrameError::NotRequest);
        }
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            _ => return Err(FrameError::NotRequest),
        };
        let method = match obj.get("method") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            _ => return Err(FrameError::NotRequest),
        };
        let params = obj.remove("params").unwrap_or(Value::Null);
        Ok((Request { id, method, params }, weight))
    }

    /// `params` as an object (absent or null ⇒ empty object).
    pub fn params_object(&self) -> Option<serde_json::Map<String, Value>> {
        match &self.params {
            Value::Null => Some(serde_json::Map::new()),
            Value::Object(m) => Some(m.clone()),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct ResOk<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    ok: bool,
    payload: &'a P,
}

#[derive(Serialize)]
struct ResErr<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a Value>,
    error: &'a ErrorShape,
}

/// Serializes a successful response frame.
pub fn response_ok<P: Serialize>(id: &str, payload: &P) -> String {
    serde_json::to_string(&ResOk {
        kind: "res",
        id,
        ok: true,
        payload,
    })
    .unwrap_or_else(|_| String::from("{}"))
}

/// Serializes an error response frame (optionally with a payload, as `agent` failures carry).
pub fn response_err(id: &str, error: &ErrorShape, payload: Option<&Value>) -> String {
    serde_json::to_string(&ResErr {
        kind: "res",
        id,
        ok: false,
        payload,
        error,
    })
    .unwrap_or_else(|_| String::from("{}"))
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a str,
    payload: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(rename = "stateVersion", skip_serializing_if = "Option::is_none")]
    state_version: Option<&'a StateVersion>,
}

/// `{presence, health}` counters attached to presence/health events and the snapshot.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// Serializes an event frame. `seq` is `None` for direct sends such as `connect.challenge`.
pub fn event(name: &str, payload: &Value, seq: Option<u64>, sv: Option<&StateVersion>) -> String {
    serde_json::to_string(&Event {
        kind: "event",
        event: name,
        payload,
        seq,
        state_version: sv,
    })
    .unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_without_params() {
        let r = Request::parse(r#"{"type":"req","id":"2:x","method":"health"}"#).unwrap();
        assert_eq!(r.id, "2:x");
        assert_eq!(r.method, "health");
        assert!(r.params.is_null());
        assert_eq!(r.params_object().unwrap().len(), 0);
    }

    #[test]
    fn rejects_non_requests() {
        assert_eq!(Request::parse("{nope").unwrap_err(), FrameError::NotJson);
        assert_eq!(
            Request::parse(r#"{"type":"event","id":"1","method":"x"}"#).unwrap_err(),
            FrameError::NotRequest
        );
        assert_eq!(
            Request::parse(r#"{"type":"req","id":{},"method":"x"}"#).unwrap_err(),
            FrameError::NotRequest
        );
        assert_eq!(
            Request::parse(r#"{"type":"req","id":"1","method":""}"#).unwrap_err(),
            FrameError::NotRequest
        );
    }

    #[test]
    fn error_frame_carries_details() {
        let e = ErrorShape::missing_scope("operator.read");
        let s = response_err("7", &e, None);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "FORBIDDEN");
        assert_eq!(v["error"]["details"]["code"], "MISSING_SCOPE");
        assert_eq!(v["error"]["details"]["requiredScopes"][0], "operator.read");
        assert!(v.get("payload").is_none());
    }

    #[test]
    fn event_without_seq_omits_it() {
        let s = event(
            "connect.challenge",
            &serde_json::json!({"nonce":"n"}),
            None,
            None,
        );
        assert!(!s.contains("seq"));
        let s = event("tick", &serde_json::json!({"ts":1}), Some(3), None);
        assert!(s.contains(r#""seq":3"#));
    }
}
