use super::{BoxFuture, Ctx};
use serde_json::Value;

/// `health` (no scope): the health snapshot.
pub fn health(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        ctx.gw.refresh_sessions(std::time::Duration::ZERO).await;
        Ok(ctx.gw.health_snapshot())
    })
}
