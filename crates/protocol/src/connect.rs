//! `connect` request params and their validation.

use crate::error::ErrorShape;
use crate::{CLIENT_IDS, CLIENT_MODES};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub mode: String,
    pub version: String,
    pub platform: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub device_family: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub model_identifier: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthParams {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub device_token: Option<String>,
    #[serde(default)]
    pub bootstrap_token: Option<String>,
}

impl AuthParams {
    /// Whether any credential was presented at all.
    pub fn is_empty(&self) -> bool {
        [
            &self.token,
            &self.password,
            &self.device_token,
            &self.bootstrap_token,
        ]
        .iter()
        .all(|v| v.as_deref().is_none_or(str::is_empty))
    }

    /// The token the device signature covers: `token ?? deviceToken ?? bootstrapToken`.
    pub fn signed_token(&self) -> &str {
        [&self.token, &self.device_token, &self.bootstrap_token]
            .iter()
            .find_map(|v| v.as_deref().filter(|s| !s.is_empty()))
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceParams {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub client: ClientInfo,
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub auth: AuthParams,
    #[serde(default)]
    pub device: Option<DeviceParams>,
}

impl ConnectParams {
    /// Parses and checks the params; the error is the `invalid connect params: …` reply.
    pub fn parse(params: &Value) -> Result<ConnectParams, ErrorShape> {
        let bad = |what: String| ErrorShape::invalid(format!("invalid connect params: {what}"));
        if !params.is_object() {
            return Err(bad("at root: must be object".into()));
        }
        let p: ConnectParams =
            serde_json::from_value(params.clone()).map_err(|e| bad(e.to_string()))?;
        if !CLIENT_IDS.contains(&p.client.id.as_str()) {
            return Err(bad(
                "at /client/id: must be equal to one of the allowed values".into(),
            ));
        }
        if !CLIENT_MODES.contains(&p.client.mode.as_str()) {
            return Err(bad(
                "at /client/mode: must be equal to one of the allowed values".into(),
            ));
        }
        if p.client.version.is_empty() || p.client.platform.is_empty() {
            return Err(bad(
                "at /client: version and platform must be non-empty".into()
            ));
        }
        if p.min_protocol == 0 || p.max_protocol == 0 || p.scopes.len() > 64 {
            return Err(bad(
                "at root: protocol versions must be ≥ 1 and scopes at most 64".into(),
            ));
        }
        Ok(p)
    }

    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// Whether this client's range covers v4 (probe clients may also send `3..4`).
    pub fn protocol_ok(&self) -> bool {
        self.min_protocol <= crate::PROTOCOL_VERSION && self.max_protocol >= crate::PROTOCOL_VERSION
    }

    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cli(min: u64, max: u64, mode: &str) -> Value {
        json!({"minProtocol":min,"maxProtocol":max,"client":{"id":"cli","version":"1","platform":"linux","mode":mode}})
    }

    #[test]
    fn protocol_negotiation() {
        assert!(ConnectParams::parse(&cli(4, 4, "cli"))
            .unwrap()
            .protocol_ok());
        assert!(ConnectParams::parse(&cli(3, 4, "probe"))
            .unwrap()
            .protocol_ok());
        assert!(ConnectParams::parse(&cli(3, 5, "cli"))
            .unwrap()
            .protocol_ok());
        assert!(!ConnectParams::parse(&cli(99, 99, "cli"))
            .unwrap()
            .protocol_ok());
        assert!(!ConnectParams::parse(&cli(3, 3, "cli"))
            .unwrap()
            .protocol_ok());
    }

    #[test]
    fn unknown_client_id_is_rejected() {
        let mut v = cli(4, 4, "cli");
        v["client"]["id"] = json!("evil");
        let e = ConnectParams::parse(&v).unwrap_err();
        assert_eq!(
            e.message,
            "invalid connect params: at /client/id: must be equal to one of the allowed values"
        );
    }

    #[test]
    fn signed_token_order() {
        let a = AuthParams {
            token: None,
            password: Some("p".into()),
            device_token: Some("d".into()),
            bootstrap_token: Some("b".into()),
        };
        assert_eq!(a.signed_token(), "d");
        assert!(!a.is_empty());
        assert!(AuthParams::default().is_empty());
    }
}
