//! Error shapes: the top-level `error.code` set and the `details.code` values.

use serde::Serialize;
use serde_json::{Map, Value};

/// Top-level error codes (closed set, as the real gateway sends them).
pub mod code {
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const NOT_PAIRED: &str = "NOT_PAIRED";
}

/// An RPC error as carried in `res.error`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorShape {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_REQUEST, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(code::UNAVAILABLE, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds `details.code` (and any extra fields) to the error.
    pub fn with_detail_code(mut self, detail_code: &str, extra: &[(&str, Value)]) -> Self {
        let mut map = Map::new();
        map.insert("code".into(), Value::String(detail_code.into()));
        for (k, v) in extra {
            map.insert((*k).into(), v.clone());
        }
        self.details = Some(Value::Object(map));
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    pub fn unknown_method(method: &str) -> Self {
        Self::invalid(format!("unknown method: {method}"))
    }

    pub fn missing_scope(scope: &str) -> Self {
        Self::new(code::FORBIDDEN, format!("missing scope: {scope}")).with_detail_code(
            "MISSING_SCOPE",
            &[
                ("missingScope", Value::String(scope.into())),
                (
                    "requiredScopes",
                    Value::Array(vec![Value::String(scope.into())]),
                ),
            ],
        )
    }

    pub fn invalid_params(method: &str, what: impl std::fmt::Display) -> Self {
        Self::invalid(format!("invalid {method} params: {what}"))
    }

    /// The `details.code` value, if any.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}
