use super::{BoxFuture, Ctx};
use serde_json::{json, Value};

/// `status` (read): gateway summary as `openclaw status` renders it.
pub fn status(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let gw = &ctx.gw;
        let (running, waiting, kept) = gw.chat.run_counts();
        gw.refresh_sessions(crate::state::SESSIONS_SUMMARY_MAX_AGE)
            .await;
        let health = gw.health_snapshot();
        let (count, recent) = (&health["sessions"]["count"], &health["sessions"]["recent"]);
        Ok(json!({
            "runtimeVersion": crate::state::VERSION,
            "gateway": {
                "host": gw.config.gateway.host, "port": gw.port,
                "authMode": gw.auth.mode.as_str(), "uptimeMs": gw.uptime_ms(),
                "connections": gw.conns.len(),
            },
            "heartbeat": {"defaultAgentId": "main", "agents": [{"agentId": "main", "enabled": false, "every": "disabled", "everyMs": null}]},
            "channelSummary": [],
            "queuedSystemEvents": gw.queued_system_events(),
            "sessions": {"paths": [], "count": count, "defaults": {"model": null, "contextTokens": null}, "recent": recent, "byAgent": [{"agentId": "main", "path": "[redacted]", "count": count, "recent": recent}]},
            "processMemory": {"rssBytes": rss_bytes()},
            "agentRuns": {
                "running": running, "waiting": waiting, "maxConcurrent": gw.chat.max_concurrent,
                "waiters": kept,
            },
        }))
    })
}

/// `system-presence` (read): the presence list, gateway first.
pub fn system_presence(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(Value::Array(ctx.gw.presence_list())) })
}

/// `last-heartbeat` (read): `null` until a heartbeat has run.
pub fn last_heartbeat(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        Ok(ctx
            .gw
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or(Value::Null))
    })
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
