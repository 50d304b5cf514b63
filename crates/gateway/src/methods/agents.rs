//! `agents.list`, `models.list`, and the small helpers the TUI and Control UI call at start-up
//! (well-formed empty results where this gateway has nothing to offer).

use super::{BoxFuture, Ctx};
use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_protocol::error::ErrorShape;
use serde_json::{json, Value};

fn thinking() -> (Value, Value, Value) {
    (
        json!([{"id": "off", "label": "off"}]),
        json!(["off"]),
        json!("off"),
    )
}

pub fn agents_list(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let gw = &ctx.gw;
        let (levels, options, default) = thinking();
        let mut agent = json!({
            "id": "main", "name": "Assistant", "kind": "agent",
            "workspace": gw.chat.workspace.display().to_string(),
            "thinkingLevels": levels, "thinkingOptions": options, "thinkingDefault": default,
        });
        let settings = gw.chat.settings();
        if let Some(m) = &settings.cfg.model {
            agent["model"] = json!({"primary": m, "fallbacks": settings.cfg.fallbacks});
        }
        Ok(json!({
            "defaultId": "main", "mainKey": "main", "scope": "per-sender", "ownership": "sole",
            "selectionRequired": false, "agents": [agent],
        }))
    })
}

/// Whether a provider URL points at this machine: its host is a loopback literal
/// (`localhost`, 127.0.0.0/8, `[::1]`), not merely a name that starts like one.
fn is_local_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    clawgate_config::split_host_port(authority)
        .is_some_and(|(host, _)| clawgate_config::is_loopback_host(&host))
}

pub fn model_entries(gw: &Gateway) -> Vec<Value> {
    let settings = gw.chat.settings();
    let default = settings.cfg.model.as_deref().unwrap_or("");
    let (levels, _, tdefault) = thinking();
    let mut out = Vec::new();
    for p in settings.providers.values() {
        for m in &p.cfg.models {
            let full = format!("{}/{}", p.cfg.id, m.id);
            let mut tags = Vec::new();
            if full == default {
                tags.push("default");
            }
            out.push(json!({
                "id": m.id, "name": m.name.clone().unwrap_or_else(|| m.id.clone()), "provider": p.cfg.id,
                "contextWindow": m.context_window, "input": ["text"], "reasoning": false, "available": true,
                "local": is_local_url(&p.cfg.base_url), "tags": tags,
                "thinkingLevels": levels, "thinkingDefault": tdefault,
            }));
        }
    }
    out.sort_by(|a, b| {
        (a["provider"].as_str(), a["id"].as_str()).cmp(&(b["provider"].as_str(), b["id"].as_str()))
    });
    out
}

/// Views a client may ask `models.list` for. This gateway's catalog is exactly the configured
/// providers' models, so every view is that list.
const MODEL_VIEWS: &[&str] = &["default", "configured", "provider-config", "all"];

/// `models.list` (read): the published model catalog, built from `models.providers.*`.
/// `provider` narrows it to one provider id; `view` must be one OpenClaw defines.
pub fn models_list(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "models.list";
        let p = super::object(M, params)?;
        let bad =
            |what: String| -> super::MethodResult { Err(ErrorShape::invalid_params(M, what)) };
        if let Some(v) = p.get("view").filter(|v| !v.is_null()) {
            if !v.as_str().is_some_and(|s| MODEL_VIEWS.contains(&s)) {
                return bad(format!(
                    "at /view: must be one of {}",
                    MODEL_VIEWS.join(", ")
                ));
            }
        }
        let provider = match p.get("provider") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_ascii_lowercase()),
            Some(_) => return bad("at /provider: must be a non-empty string".into()),
        };
        for key in [
            "includeDetails",
            "includeProviderCapabilities",
            "includeDefaultModels",
            "preparedOnly",
            "refresh",
        ] {
            if p.get(key).is_some_and(|v| !v.is_boolean() && !v.is_null()) {
                return bad(format!("at /{key}: must be boolean"));
            }
        }
        let models: Vec<Value> = model_entries(&ctx.gw)
            .into_iter()
            .filter(|m| {
                provider.as_deref().is_none_or(|want| {
                    m["provider"]
                        .as_str()
                        .is_some_and(|p| p.eq_ignore_ascii_case(want))
                })
            })
            .collect();
        Ok(json!({"models": models}))
    })
}

pub fn chat_metadata(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"models": model_entries(&ctx.gw), "commands": []})) })
}

pub fn models_auth_status(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let providers: Vec<Value> = ctx
            .gw
            .chat
            .settings()
            .providers
            .values()
            .map(|p| {
                json!({"provider": p.cfg.id, "authProvider": p.cfg.id, "displayName": p.cfg.id, "status": "static",
                       "profiles": [], "apiKey": {"source": if p.cfg.api_key.is_some() { "config" } else { "none" }}})
            })
            .collect();
        Ok(json!({"ts": now_ms(), "providers": providers, "providerCapabilities": []}))
    })
}

pub fn identity(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        Ok(json!({"agentId": "main", "name": "Assistant", "nameSource": "default", "avatar": "A"}))
    })
}

pub fn commands_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"commands": []})) })
}

pub fn questions(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"questions": []})) })
}

pub fn tasks(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"tasks": []})) })
}

pub fn empty_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!([])) })
}

/// The revision of an empty cron inventory: a hash of its (empty) job list, so it is stable
/// and changes the day jobs exist.
fn empty_cron_revision() -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(b"[]");
    format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// `cron.list` (read): one page of the cron inventory. Cron is not built yet, so the
/// inventory is empty; the page is still complete and consistent (snapshot revision, the
/// requested offset and limit echoed, no next page), as OpenClaw's clients check it.
pub fn cron_list(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "cron.list";
        let p = super::object(M, params)?;
        let limit = super::opt_u64(M, &p, "limit", 1, 200)?.unwrap_or(50);
        let offset = super::opt_u64(M, &p, "offset", 0, i64::MAX as u64)?.unwrap_or(0);
        Ok(json!({
            "jobs": [], "snapshotRevision": empty_cron_revision(), "total": 0,
            "offset": offset, "limit": limit, "hasMore": false, "nextOffset": null,
        }))
    })
}

/// `cron.status` (read): the scheduler is not built, so it is reported disabled with no jobs.
pub fn cron_status(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"enabled": false, "jobs": 0, "nextWakeAtMs": null})) })
}

pub fn update_status(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"sentinel": null, "updateAvailable": null})) })
}

pub fn node_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"ts": now_ms(), "nodes": []})) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_urls_are_exact_loopback_literals() {
        for u in [
            "http://127.0.0.1:11434/v1",
            "http://localhost/v1",
            "http://[::1]:8080/v1",
            "http://user:pw@127.0.0.2/v1",
        ] {
            assert!(super::is_local_url(u), "{u}");
        }
        for u in [
            "http://127.0.0.1.evil.com/v1",
            "http://127.evil.com:8080/v1",
            "https://api.openai.com/v1",
            "http://[::1].evil.com/v1",
            "http://evil.com/?x=127.0.0.1",
            "http://evil.com/#[::1]",
        ] {
            assert!(!super::is_local_url(u), "{u}");
        }
    }
}
