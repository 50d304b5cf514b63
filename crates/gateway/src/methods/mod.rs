//! RPC methods. Each is one small unit: parse params, (scope already checked), work against
//! shared state, return a result or a typed error. The table below is the dispatcher.

mod agents;
mod channels;
mod chat;
mod config;
mod controlui;
mod devices;
mod health;
mod logs;
pub mod sessions;
mod status;
mod system;

use crate::auth::Peer;
use crate::conns::Outlet;
use crate::state::Gateway;
use crate::ws::Session;
use clawgate_protocol::error::ErrorShape;
use clawgate_protocol::frame::{self, Request};
use clawgate_protocol::scopes;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a method sees of its connection.
pub struct Ctx {
    pub gw: Arc<Gateway>,
    pub session: Session,
    pub outlet: Outlet,
    pub peer: Peer,
}

pub type MethodResult = Result<Value, ErrorShape>;
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = MethodResult> + Send + 'a>>;
pub type Handler = for<'a> fn(&'a Ctx, Value) -> BoxFuture<'a>;

/// The dispatch table: method name → handler. Scopes live in `clawgate_protocol::scopes`.
const METHODS: &[(&str, Handler)] = &[
    ("health", health::health),
    ("status", status::status),
    ("system-presence", status::system_presence),
    ("last-heartbeat", status::last_heartbeat),
    ("logs.tail", logs::tail),
    ("config.get", config::get),
    ("config.schema", config::schema),
    ("config.apply", config::apply),
    ("gateway.reload", config::reload),
    ("device.pair.list", devices::list),
    ("device.pair.approve", devices::approve),
    ("device.pair.reject", devices::reject),
    ("device.pair.remove", devices::remove),
    ("chat.history", chat::history),
    ("chat.startup", chat::history),
    ("chat.abort", chat::abort),
    ("chat.inject", chat::inject),
    ("agent.wait", chat::wait),
    ("agents.list", agents::agents_list),
    ("models.list", agents::models_list),
    ("sessions.list", sessions::list),
    ("sessions.describe", sessions::describe),
    ("sessions.get", sessions::get),
    ("sessions.patch", sessions::patch),
    ("sessions.reset", sessions::reset),
    ("sessions.delete", sessions::delete),
    ("sessions.subscribe", sessions::subscribe),
    ("sessions.unsubscribe", sessions::unsubscribe),
    ("sessions.messages.subscribe", sessions::messages_subscribe),
    (
        "sessions.messages.unsubscribe",
        sessions::messages_unsubscribe,
    ),
    ("chat.metadata", agents::chat_metadata),
    ("models.authStatus", agents::models_auth_status),
    ("agent.identity.get", agents::identity),
    ("commands.list", agents::commands_list),
    ("question.list", agents::questions),
    ("tasks.list", agents::tasks),
    ("exec.approval.list", agents::empty_list),
    ("plugin.approval.list", agents::empty_list),
    ("cron.list", agents::cron_list),
    ("cron.status", agents::cron_status),
    ("update.status", agents::update_status),
    ("node.list", agents::node_list),
    ("channels.status", channels::status),
    ("send", channels::send),
    ("message.action", channels::message_action),
    ("pairing.list", channels::pairing_list),
    ("pairing.approve", channels::pairing_approve),
    ("pairing.reject", channels::pairing_reject),
    ("pairing.approved", channels::pairing_approved),
    ("channels.pairing.list", channels::channels_pairing_list),
    (
        "channels.pairing.approve",
        channels::channels_pairing_approve,
    ),
    (
        "channels.pairing.dismiss",
        channels::channels_pairing_dismiss,
    ),
    ("sessions.create", sessions::create),
    ("wake", system::wake),
    ("system.info", system::info),
    ("gateway.identity.get", system::identity),
    ("openclaw.approval.list", system::approval_list),
    // What the stock Control UI calls when it loads (protocol.md §12.4).
    ("plugins.controlUi.list", controlui::plugins_list),
    ("plugin.surface.refresh", controlui::surface_refresh),
    (
        "sessions.observer.visibility",
        controlui::observer_visibility,
    ),
    ("users.prefs.get", controlui::prefs_get),
    ("board.get", controlui::board_get),
    ("sessions.viewers.set", controlui::viewers_set),
    ("projects.list", controlui::projects_list),
    ("talk.catalog", controlui::talk_catalog),
    ("sessions.groups.list", controlui::groups_list),
    ("sessions.groups.defaults", controlui::groups_defaults),
    ("mentions.list", controlui::mentions_list),
    ("taskSuggestions.list", controlui::task_suggestions),
    ("sessions.branches.list", controlui::branches_list),
    ("session.discussion.info", controlui::discussion_info),
    ("sessions.companion.state", controlui::companion_state),
    (
        "controlUi.sessionPullRequests.subscribe",
        controlui::pull_requests_subscribe,
    ),
    ("sessions.catalog.list", controlui::catalog_list),
    ("progressCard.get", controlui::progress_card),
    ("sessions.github.options", controlui::github_options),
    ("session.members.listEvidence", controlui::members_evidence),
];

/// Methods that send their own replies (possibly more than one, like `agent`).
pub type DeferredHandler =
    for<'a> fn(&'a Ctx, String, Value) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

const DEFERRED: &[(&str, DeferredHandler)] =
    &[("agent", chat::agent), ("chat.send", chat::send_deferred)];

/// Method names advertised in `hello-ok.features.methods`.
pub fn names() -> Vec<&'static str> {
    METHODS
        .iter()
        .map(|(n, _)| *n)
        .chain(DEFERRED.iter().map(|(n, _)| *n))
        .collect()
}

fn find(method: &str) -> Option<Handler> {
    METHODS.iter().find(|(n, _)| *n == method).map(|(_, h)| *h)
}

/// What a method name resolves to.
enum Target {
    Deferred(DeferredHandler),
    Plain(Handler),
}

pub async fn dispatch(ctx: &Ctx, req: Request) {
    // Look the method up first: a method this gateway does not implement is "unknown method"
    // for every authenticated client. Checking scopes first would answer `missing scope:
    // operator.admin` to a read-only client for methods OpenClaw classifies as read (e.g.
    // `skills.status`), which clients take for a permission problem instead of a missing
    // feature. Scopes are then checked for the methods that exist.
    let target = match DEFERRED.iter().find(|(n, _)| *n == req.method) {
        Some((_, h)) => Target::Deferred(*h),
        None => match find(&req.method) {
            Some(h) => Target::Plain(h),
            None => {
                ctx.outlet.send(frame::response_err(
                    &req.id,
                    &ErrorShape::unknown_method(&req.method),
                    None,
                ));
                return;
            }
        },
    };
    let granted = &ctx.session.grant.scopes;
    if let Err(missing) = scopes::authorize(&req.method, granted) {
        ctx.outlet.send(frame::response_err(
            &req.id,
            &ErrorShape::missing_scope(missing),
            None,
        ));
        return;
    }
    let handler = match target {
        Target::Deferred(h) => return h(ctx, req.id, req.params).await,
        Target::Plain(h) => h,
    };
    let text = match handler(ctx, req.params).await {
        Ok(payload) => frame::response_ok(&req.id, &payload),
        Err(e) => frame::response_err(&req.id, &e, None),
    };
    ctx.outlet.send(text);
}

/// `params` as an object; absent or null is `{}`, anything else is an error.
pub fn object(method: &str, params: Value) -> Result<serde_json::Map<String, Value>, ErrorShape> {
    match params {
        Value::Null => Ok(serde_json::Map::new()),
        Value::Object(m) => Ok(m),
        _ => Err(ErrorShape::invalid_params(method, "must be object")),
    }
}

/// An optional non-negative integer param within a range.
pub fn opt_u64(
    method: &str,
    p: &serde_json::Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ErrorShape> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ErrorShape::invalid_params(
                method,
                format!("at /{key}: must be an integer between {min} and {max}"),
            )),
        },
    }
}

/// A required non-empty string param.
pub fn req_str<'a>(
    method: &str,
    p: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a str, ErrorShape> {
    match p.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ErrorShape::invalid_params(
            method,
            format!("must have required property '{key}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_classified_scope() {
        // Anything that falls through to admin by accident would be a silent privilege bump.
        const ADMIN_ON_PURPOSE: &[&str] = &[
            "sessions.reset",
            "sessions.delete",
            "chat.inject",
            "config.apply",
            "gateway.reload",
        ];
        for name in names() {
            let req = scopes::required_for(name);
            let is_admin = req == scopes::Requirement::Scope(scopes::ADMIN);
            assert_eq!(
                is_admin,
                ADMIN_ON_PURPOSE.contains(&name),
                "{name}: unexpected scope {req:?}"
            );
        }
    }
}
