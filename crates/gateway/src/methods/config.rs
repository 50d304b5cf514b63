use super::{BoxFuture, Ctx};
use clawgate_protocol::error::ErrorShape;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// `config.get` (read): the config file and its effective values, secrets redacted.
pub fn get(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let gw = &ctx.gw;
        let live = gw.live_config();
        let path = gw.config.path.clone();
        let raw = std::fs::read_to_string(&path).ok();
        let redacted_raw = raw.as_deref().map(|r| redact_raw(r, gw));
        let hash = raw
            .as_deref()
            .map(|r| hex::encode(Sha256::digest(r.as_bytes())));
        let c = &live.gateway;
        let secret = |present: bool| {
            if present {
                json!(REDACTED)
            } else {
                Value::Null
            }
        };
        let gateway = json!({
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
        });
        // Every section of the file, secrets redacted; the gateway section also carries the
        // effective values (port, auth mode, rate limits) the file may leave to defaults.
        let secrets = live_secrets(gw);
        let mut parsed = raw
            .as_deref()
            .and_then(|r| clawgate_config::yaml::parse(r).ok().flatten())
            .map(|n| redacted_tree(&n, false, &secrets))
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let mut effective = parsed.clone();
        merge(&mut effective["gateway"], gateway);
        if parsed.get("gateway").is_none() {
            parsed["gateway"] = effective["gateway"].clone();
        }
        Ok(json!({
            "path": path.display().to_string(),
            "exists": raw.is_some(),
            "raw": redacted_raw,
            "parsed": parsed,
            "config": effective,
            "resolved": effective,
            "valid": true,
            "issues": [],
            "warnings": [],
            "hash": hash,
        }))
    })
}

/// `gateway.reload` (admin; clawgate's own, what `clawgate gateway reload` and SIGHUP do):
/// re-reads config.yaml and applies what is safe live. The result lists `changed`,
/// `applied` and `restartRequired` keys.
pub fn reload(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = super::object("gateway.reload", params)?;
        if let Some(k) = p.keys().next() {
            return Err(ErrorShape::invalid_params(
                "gateway.reload",
                format!("at root: unexpected property '{k}'"),
            ));
        }
        crate::reload::reload_file(&ctx.gw, "gateway.reload")
            .await
            .map(|r| r.to_json(&ctx.gw))
            .map_err(refused)
    })
}

/// `config.apply` (admin) `{raw, baseHash?, sessionKey?, note?, restartDelayMs?}`: validates
/// the full document `raw`, refuses when the file changed since `config.get` (`baseHash`),
/// writes it (0600, atomically) and applies it like a reload. Keys that need a restart are
/// listed under `restart`; the gateway does not restart itself.
pub fn apply(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = super::object("config.apply", params)?;
        if let Some(k) = p.keys().find(|k| {
            !["raw", "baseHash", "sessionKey", "note", "restartDelayMs"].contains(&k.as_str())
        }) {
            return Err(ErrorShape::invalid_params(
                "config.apply",
                format!("at root: unexpected property '{k}'"),
            ));
        }
        let Some(raw) = p.get("raw").and_then(Value::as_str) else {
            return Err(ErrorShape::invalid_params(
                "config.apply",
                "at root: must have required property 'raw'",
            ));
        };
        let base_hash = match p.get("baseHash") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "config.apply",
                    "at /baseHash: must be string",
                ))
            }
        };
        let r = crate::reload::apply_raw(&ctx.gw, raw, base_hash)
            .await
            .map_err(refused)?;
        let mut out = r.to_json(&ctx.gw);
        out["changedPaths"] = json!(r.changed);
        out["restart"] = json!({
            "required": !r.restart_required.is_empty(),
            "scheduled": false,
            "keys": r.restart_required,
        });
        Ok(out)
    })
}

fn refused(e: crate::reload::Refused) -> ErrorShape {
    let details = match &e {
        crate::reload::Refused::Invalid(errs) => json!({"errors": errs}),
        _ => json!({}),
    };
    ErrorShape::invalid(e.message()).with_details(details)
}

/// `config.schema` (read): the JSON Schema of clawgate's own `config.yaml`, generated from
/// the config model (with the channel sections this build knows), and per-path UI hints.
pub fn schema(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = super::object("config.schema", params)?;
        if let Some(k) = p.keys().next() {
            return Err(ErrorShape::invalid_params(
                "config.schema",
                format!("at root: unexpected property '{k}'"),
            ));
        }
        let channels: Vec<&str> = clawgate_channels::config_parsers()
            .iter()
            .map(|c| c.name())
            .collect();
        let schema = clawgate_config::schema::config_schema(&channels);
        let hints = clawgate_config::schema::ui_hints(&schema);
        Ok(json!({
            "schema": schema,
            "uiHints": hints,
            "version": crate::state::VERSION,
            "generatedAt": super::channels::iso_ms(ctx.gw.started_ms),
        }))
    })
}

/// Whether a YAML key names a secret (`token`, `botToken`, `apiKey`, `webhookSecret`, …).
fn is_secret_key(key: &str) -> bool {
    let k = key
        .trim()
        .trim_matches('"')
        .trim_matches('\'')
        .to_ascii_lowercase();
    [
        "token",
        "password",
        "secret",
        "apikey",
        "api_key",
        "authorization",
    ]
    .iter()
    .any(|s| k.ends_with(s))
}

/// Every secret value the gateway holds, so literal copies can be blanked anywhere in the text.
fn live_secrets(gw: &crate::state::Gateway) -> Vec<String> {
    // The start-up config and the one in force (a reload may have brought new provider keys).
    let live = gw.live_config();
    let mut secrets: Vec<&clawgate_config::Secret> = Vec::new();
    secrets.extend(&gw.auth.secret);
    for c in [&gw.config, &*live] {
        secrets.extend(&c.gateway.auth.token);
        secrets.extend(&c.gateway.auth.password);
        for p in &c.providers {
            secrets.extend(&p.api_key);
            secrets.extend(p.headers.iter().map(|(_, v)| v));
        }
        for ch in &c.channels {
            secrets.extend(ch.section.secrets());
        }
    }
    secrets
        .into_iter()
        .map(|s| s.expose().to_string())
        .filter(|s| s.len() >= 4)
        .collect()
}

/// Overlays `top` onto `base` (objects merged key by key, anything else replaced).
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, t) => *b = t,
    }
}

/// A YAML tree as JSON with the values of secret-named keys and of every header replaced
/// by [`REDACTED`] (a bare `${ENV}` reference is not a secret and stays), and any literal copy
/// of a live secret blanked wherever it stands.
fn redacted_tree(node: &clawgate_config::yaml::Node, secret: bool, live: &[String]) -> Value {
    use clawgate_config::yaml::Value as Y;
    match &node.value {
        _ if node.is_null() => Value::Null,
        Y::Scalar(s, quoted) => {
            let env_only = s.starts_with("${") && s.ends_with('}') && !s[2..].contains("${");
            if secret && !env_only {
                return json!(REDACTED);
            }
            if !quoted {
                if let Ok(b) = s.parse::<bool>() {
                    return json!(b);
                }
                if let Ok(n) = s.parse::<i64>() {
                    return json!(n);
                }
                if let Ok(f) = s.parse::<f64>() {
                    if f.is_finite() {
                        return json!(f);
                    }
                }
            }
            let mut out = s.clone();
            for l in live {
                if out.contains(l.as_str()) {
                    out = out.replace(l.as_str(), REDACTED);
                }
            }
            json!(out)
        }
        Y::Seq(items) => Value::Array(
            items
                .iter()
                .map(|n| redacted_tree(n, secret, live))
                .collect(),
        ),
        Y::Map(entries) => {
            let mut m = serde_json::Map::new();
            for (k, _, v) in entries {
                let hidden = secret || is_secret_key(k) || k.eq_ignore_ascii_case("headers");
                m.insert(k.clone(), redacted_tree(v, hidden, live));
            }
            Value::Object(m)
        }
    }
}

/// Blanks the values of secret-named keys (unless they only reference `${ENV}`), and any
/// literal occurrence of a live secret.
fn redact_raw(raw: &str, gw: &crate::state::Gateway) -> String {
    let mut out = String::with_capacity(raw.len());
    for line in raw.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let split = trimmed
            .split_once(':')
            .filter(|(k, _)| !k.contains(' ') && is_secret_key(k));
        match split {
            Some((key, value)) => {
                let value = value.trim();
                let bare = value.trim_matches('"').trim_matches('\'');
                let env_only = bare.starts_with("${") && bare.ends_with('}');
                if value.is_empty() || value.starts_with('#') || env_only {
                    out.push_str(line);
                } else {
                    let indent = &line[..line.len() - trimmed.len()];
                    out.push_str(&format!("{indent}{key}: \"{REDACTED}\""));
                    if line.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            None => out.push_str(line),
        }
    }
    for secret in live_secrets(gw) {
        out = out.replace(&secret, REDACTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_secret_key;

    #[test]
    fn secret_keys() {
        for k in [
            "token",
            "botToken",
            "apiKey",
            "webhookSecret",
            "password",
            "\"api_key\"",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["port", "host", "baseUrl", "models", "mode"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
