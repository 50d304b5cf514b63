//! Methods the stock Control UI calls when it loads (protocol.md §12.4). Each answers with
//! real data where clawgate has it (the workspace as a project, a session's transcript as its
//! one branch, who owns a session) and an honest empty result where the feature does not exist
//! here (boards, talk, task suggestions, plugin surfaces, …), shaped like OpenClaw's answers so
//! no panel shows an error banner.

use super::sessions::{key_param, store_err};
use super::{object, BoxFuture, Ctx};
use crate::devices::now_ms;
use clawgate_protocol::error::ErrorShape;
use clawgate_protocol::scopes;
use serde_json::{json, Map, Value};

/// OpenClaw's cap on `sessions.viewers.set` / pull-request subscription keys.
const MAX_VIEWER_KEYS: usize = 100;

/// The owner every session has here: the gateway's single operator.
fn owner() -> Value {
    json!({"type": "human", "id": "gateway-owner", "identity": {"type": "profile", "id": "gateway-owner"}})
}

const VISIBILITIES: &[&str] = &["shared", "read-only", "suggest", "draft"];

/// An optional `sessionKey` param, canonicalised; `None` when absent.
fn opt_session_key(method: &str, p: &Map<String, Value>) -> Result<Option<String>, ErrorShape> {
    match p.get("sessionKey") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => key_param(method, p, "sessionKey").map(Some),
    }
}

/// A list of session keys (`sessionKeys`), each canonical, at most [`MAX_VIEWER_KEYS`].
fn session_keys(method: &str, p: &Map<String, Value>) -> Result<Vec<String>, ErrorShape> {
    let bad = |what: &str| ErrorShape::invalid_params(method, what);
    let list = match p.get("sessionKeys") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("at /sessionKeys: must be array")),
    };
    if list.len() > MAX_VIEWER_KEYS {
        return Err(bad(&format!(
            "at /sessionKeys: must have at most {MAX_VIEWER_KEYS} items"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        let s = v
            .as_str()
            .ok_or_else(|| bad("at /sessionKeys: items must be strings"))?;
        let k = crate::keys::canonical(s).map_err(|e| ErrorShape::invalid_params(method, e))?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// `plugins.controlUi.list` (read): Control UI contributions of installed plugins. clawgate
/// has no plugins, so the list is empty; the revision is a hash of that (empty) list.
pub fn plugins_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        use sha2::{Digest, Sha256};
        let revision = hex::encode(Sha256::digest(b"[]"));
        Ok(json!({"revision": revision, "plugins": [], "diagnostics": []}))
    })
}

/// `plugin.surface.refresh` (read): refreshes a plugin surface URL (OpenClaw's canvas). No
/// surface is hosted here, so there is no URL to hand out.
pub fn surface_refresh(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "plugin.surface.refresh";
        let p = object(M, params)?;
        let surface = super::req_str(M, &p, "surface")?.to_string();
        Ok(json!({"surface": surface, "pluginSurfaceUrls": {}, "expiresAtMs": null}))
    })
}

/// `sessions.observer.visibility` (read): the UI reports whether its tab is visible. Nothing
/// here depends on it; the value is checked and acknowledged.
pub fn observer_visibility(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "sessions.observer.visibility";
        let p = object(M, params)?;
        if !p.get("visible").is_some_and(Value::is_boolean) {
            return Err(ErrorShape::invalid_params(
                M,
                "must have required property 'visible' (boolean)",
            ));
        }
        Ok(json!({"ok": true}))
    })
}

/// `users.prefs.get` (read): per-user UI preferences. None are stored here, so every asked
/// key is unset (the UI keeps its local defaults).
pub fn prefs_get(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "users.prefs.get";
        let p = object(M, params)?;
        match p.get("keys") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.len() <= 64 && a.iter().all(Value::is_string) => {}
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    M,
                    "at /keys: must be an array of at most 64 strings",
                ))
            }
        }
        Ok(json!({"status": "ok", "entries": {}}))
    })
}

/// `board.get` (read): a session's board (tabs and widgets). Boards do not exist here: an
/// empty board at revision 0.
pub fn board_get(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "board.get";
        let p = object(M, params)?;
        let key = key_param(M, &p, "sessionKey")?;
        Ok(json!({"sessionKey": key, "revision": 0, "tabs": [], "widgets": []}))
    })
}

/// `sessions.viewers.set` (read): which sessions this client is looking at. Acknowledged with
/// the normalised keys (nothing else here uses viewer presence).
pub fn viewers_set(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "sessions.viewers.set";
        let p = object(M, params)?;
        Ok(json!({"sessionKeys": session_keys(M, &p)?}))
    })
}

/// `projects.list` (read): the agent's workspace is its one project.
pub fn projects_list(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let ws = &ctx.gw.chat.workspace;
        let name = ws
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workspace".into());
        Ok(json!({
            "projects": [{"id": "workspace:main", "displayName": name, "repoRoot": ws.display().to_string(),
                          "source": "workspace", "agentId": "main"}],
            "recents": [],
        }))
    })
}

/// `talk.catalog` (read): voice modes and providers. Talk is not built here: no modes, no
/// providers, nothing ready.
pub fn talk_catalog(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        Ok(json!({
            "modes": [], "transports": [], "brains": [],
            "speech": {"ready": false, "providers": []},
            "transcription": {"ready": false, "providers": []},
            "realtime": {"ready": false, "providers": []},
        }))
    })
}

/// `sessions.groups.list` (read): sidebar groups. None exist here.
pub fn groups_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"groups": [], "sectionOrder": []})) })
}

/// `sessions.groups.defaults` (write in OpenClaw): default groups. None exist here.
pub fn groups_defaults(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"defaults": []})) })
}

/// `mentions.list` (read): mentions of the operator across sessions. Not tracked here.
pub fn mentions_list(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(
        async move { Ok(json!({"gatewayInstanceId": ctx.gw.boot_id, "revision": 0, "items": []})) },
    )
}

/// `taskSuggestions.list` (read): suggested follow-up tasks. Not built here.
pub fn task_suggestions(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"suggestions": []})) })
}

/// The first text of a message's content (a string or text blocks).
fn text_of(m: &Value) -> Option<String> {
    match &m["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .find(|b| b["type"] == "text" && b["text"].as_str().is_some_and(|t| !t.is_empty()))
            .and_then(|b| b["text"].as_str().map(str::to_string)),
        _ => None,
    }
}

/// `sessions.branches.list` (read): a session's transcript branches. Transcripts here are
/// linear, so a session with messages has exactly one branch, the active one, ending at its
/// latest entry.
pub fn branches_list(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "sessions.branches.list";
        let p = object(M, params)?;
        let key = key_param(M, &p, "sessionKey")?;
        let (last, total, row) = ctx
            .gw
            .chat
            .store
            .call(move |s| {
                Ok((
                    s.history(&key, 8)?,
                    s.count_entries(&key)?,
                    s.get_session(&key)?,
                ))
            })
            .await
            .map_err(store_err)?;
        let Some(leaf) = last.last() else {
            return Ok(json!({"branches": []}));
        };
        let headline = last
            .iter()
            .rev()
            .filter(|e| e.role == "assistant")
            .chain(last.iter().rev())
            .find_map(|e| text_of(&e.content))
            .unwrap_or_default();
        let headline: String = headline.chars().take(120).collect();
        let mut branch = json!({
            "leafEntryId": leaf.id, "headline": headline, "messageCount": total, "active": true,
        });
        if let Some(r) = row {
            branch["updatedAt"] = json!(super::channels::iso_ms(r.updated_at));
        }
        Ok(json!({"branches": [branch]}))
    })
}

/// `session.discussion.info` (read): side discussions of a session. Not built here.
pub fn discussion_info(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "session.discussion.info";
        let p = object(M, params)?;
        opt_session_key(M, &p)?;
        Ok(json!({"state": "none"}))
    })
}

/// `sessions.companion.state` (read): the companion side-chat of a session. Not built here.
pub fn companion_state(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "sessions.companion.state";
        let p = object(M, params)?;
        opt_session_key(M, &p)?;
        Ok(json!({"exchanges": []}))
    })
}

/// `controlUi.sessionPullRequests.subscribe` (read): pull-request updates for sessions. No
/// session has pull requests here; the subscription is on when keys were given, as OpenClaw
/// answers, and there is never anything to push.
pub fn pull_requests_subscribe(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "controlUi.sessionPullRequests.subscribe";
        let p = object(M, params)?;
        Ok(json!({"subscribed": !session_keys(M, &p)?.is_empty()}))
    })
}

/// `sessions.catalog.list` (read): sessions of external coding agents (OpenClaw lists Claude
/// Code's). None are catalogued here.
pub fn catalog_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!({"catalogs": []})) })
}

/// `progressCard.get` (read): a session's progress card. Not built here.
pub fn progress_card(_ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "progressCard.get";
        let p = object(M, params)?;
        key_param(M, &p, "sessionKey")?;
        Ok(json!({"card": null}))
    })
}

/// `sessions.github.options` (read): GitHub publishing identities. No GitHub integration
/// here: the personal identity is disconnected and there is no shared one.
pub fn github_options(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        Ok(json!({
            "personal": {"state": "disconnected", "generation": null, "account": null, "accessExpiresAtMs": null,
                         "refreshState": "not_applicable", "pending": null},
            "shared": null, "pendingPersonal": null, "latestShared": null,
        }))
    })
}

/// `session.members.listEvidence` (read): who may see a session. Every session here belongs
/// to the gateway owner and has no other members; the caller's role follows its scopes.
pub fn members_evidence(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        const M: &str = "session.members.listEvidence";
        let p = object(M, params)?;
        let key = key_param(M, &p, "sessionKey")?;
        let granted = &ctx.session.grant.scopes;
        let role = if scopes::satisfies(granted, scopes::ADMIN) {
            "admin"
        } else if scopes::satisfies(granted, scopes::WRITE) {
            "member"
        } else {
            "viewer"
        };
        let mut identity = owner();
        identity["label"] = json!("gateway-owner");
        Ok(json!({
            "sessionKey": key, "owner": owner(), "members": [], "identities": [identity],
            "role": role, "allowedVisibilities": VISIBILITIES,
        }))
    })
}

/// The `approvalReplay` of `sessions.messages.subscribe {includeApprovals: true}`: approvals
/// pending in the session. No approval flow exists here, so there are none.
pub fn approval_replay(key: &str) -> Value {
    json!({"sessionKey": key, "updatedAtMs": now_ms(), "approvals": [], "truncated": false})
}
