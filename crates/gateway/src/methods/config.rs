use super::{BoxFuture, Ctx};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// `config.get` (read): the config file and its effective values, secrets redacted.
pub fn get(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let gw = &ctx.gw;
        let path = gw.config.path.clone();
        let raw = std::fs::read_to_string(&path).ok();
        let redacted_raw = raw.as_deref().map(|r| redact_raw(r, gw));
        let hash = raw
            .as_deref()
            .map(|r| hex::encode(Sha256::digest(r.as_bytes())));
        let c = &gw.config.gateway;
        let secret = |present: bool| {
            if present {
                json!(REDACTED)
            } else {
                Value::Null
            }
        };
        let effective = json!({
            "gateway": {
                "host": c.host,
                "port": gw.port,
                "auth": {
                    "mode": c.auth.mode.as_str(),
                    "token": secret(c.auth.token.is_some() || gw.auth.secret.is_some() && c.auth.mode.as_str() == "token"),
                    "password": secret(c.auth.password.is_some()),
                    "rateLimit": {
                        "maxAttempts": c.auth.rate_limit.max_attempts,
                        "windowMs": c.auth.rate_limit.window_ms,
                        "lockoutMs": c.auth.rate_limit.lockout_ms,
                    },
                },
                "allowedOrigins": c.allowed_origins,
                "trustedProxies": c.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            }
        });
        Ok(json!({
            "path": path.display().to_string(),
            "exists": raw.is_some(),
            "raw": redacted_raw,
            "parsed": effective,
            "config": effective,
            "resolved": effective,
            "valid": true,
            "issues": [],
            "warnings": [],
            "hash": hash,
        }))
    })
}

/// Blanks the values of `token:`/`password:` keys (unless they only reference `${ENV}`),
/// and any literal occurrence of a live secret.
fn redact_raw(raw: &str, gw: &crate::state::Gateway) -> String {
    let mut out = String::with_capacity(raw.len());
    for line in raw.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let key = ["token:", "password:"]
            .iter()
            .find(|k| trimmed.starts_with(*k));
        match key {
            Some(k) => {
                let value = trimmed[k.len()..].trim();
                let env_only = value.trim_matches('"').trim_matches('\'').starts_with("${")
                    && value.trim_matches('"').trim_matches('\'').ends_with('}');
                if value.is_empty() || value.starts_with('#') || env_only {
                    out.push_str(line);
                } else {
                    let indent = &line[..line.len() - trimmed.len()];
                    out.push_str(&format!("{indent}{k} \"{REDACTED}\""));
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            None => out.push_str(line),
        }
    }
    for secret in [
        &gw.auth.secret,
        &gw.config.gateway.auth.token,
        &gw.config.gateway.auth.password,
    ]
    .into_iter()
    .flatten()
    {
        if !secret.expose().is_empty() {
            out = out.replace(secret.expose(), REDACTED);
        }
    }
    out
}
