use super::{BoxFuture, Ctx};
use serde_json::Value;

/// `health` (no scope): the health snapshot.
pub fn health(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        ctx.gw
            .refresh_sessions(crate::state::SESSIONS_SUMMARY_MAX_AGE)
            .await;
        Ok(ctx.gw.health_snapshot())
    })
}
