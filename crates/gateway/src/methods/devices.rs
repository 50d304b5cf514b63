use super::{object, req_str, BoxFuture, Ctx};
use crate::devices::{now_ms, pending_json, redacted, Approval, Removal};
use clawgate_protocol::error::{code, ErrorShape};
use serde_json::{json, Value};

/// Runs blocking device-store work off the async workers.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&crate::devices::DeviceStore) -> Result<T, String> + Send + 'static,
) -> Result<T, ErrorShape> {
    let gw = ctx.gw.clone();
    tokio::task::spawn_blocking(move || f(&gw.devices))
        .await
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?
        .map_err(ErrorShape::unavailable)
}

/// `device.pair.list` (pairing): pending requests and paired devices, tokens redacted.
pub fn list(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { blocking(ctx, |d| d.list()).await })
}

/// `device.pair.approve` (pairing) `{requestId}`. The approver may grant only scopes it holds
/// itself; a request asking for more stays pending.
pub fn approve(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.approve", params)?;
        let id = req_str("device.pair.approve", &p, "requestId")?.to_string();
        let approver = ctx.session.grant.scopes.clone();
        let rid = id.clone();
        let (dev, tokens) = match blocking(ctx, move |d| d.approve(&rid, &approver)).await? {
            Approval::Approved(dev, tokens) => (dev, tokens),
            Approval::Unknown => return Err(ErrorShape::invalid("unknown requestId")),
            Approval::Forbidden { missing } => {
                return Err(ErrorShape::new(
                    code::FORBIDDEN,
                    format!(
                        "cannot approve scopes this connection does not hold: {} (the request stays pending; approve it with a connection that holds them, e.g. operator.admin)",
                        missing.join(", ")
                    ),
                )
                .with_detail_code(
                    "MISSING_SCOPE",
                    &[("missingScopes", json!(missing)), ("requestId", json!(id))],
                ))
            }
        };
        ctx.gw.conns.broadcast(
            "device.pair.resolved",
            &json!({"requestId": id, "deviceId": dev.device_id, "decision": "approved", "ts": now_ms()}),
            None,
        );
        Ok(json!({"requestId": id, "device": redacted(&dev, &tokens)}))
    })
}

/// `device.pair.reject` (pairing) `{requestId}`.
pub fn reject(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.reject", params)?;
        let id = req_str("device.pair.reject", &p, "requestId")?.to_string();
        let rid = id.clone();
        let req = blocking(ctx, move |d| d.reject(&rid))
            .await?
            .ok_or_else(|| ErrorShape::invalid("unknown requestId"))?;
        ctx.gw.conns.broadcast(
            "device.pair.resolved",
            &json!({"requestId": id, "deviceId": req.device_id, "decision": "rejected", "ts": now_ms()}),
            None,
        );
        let mut out = pending_json(&req);
        out["requestId"] = json!(id);
        Ok(out)
    })
}

/// `device.pair.remove` (pairing) `{deviceId}`. The remover must hold every scope the device
/// holds.
pub fn remove(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.remove", params)?;
        let id = req_str("device.pair.remove", &p, "deviceId")?.to_string();
        let remover = ctx.session.grant.scopes.clone();
        let did = id.clone();
        let dev = match blocking(ctx, move |d| d.remove(&did, &remover)).await? {
            Removal::Removed(dev) => dev,
            Removal::Unknown => return Err(ErrorShape::invalid("unknown deviceId")),
            Removal::Forbidden { missing } => {
                return Err(ErrorShape::new(
                    code::FORBIDDEN,
                    format!(
                        "cannot remove a device holding scopes this connection does not hold: {}",
                        missing.join(", ")
                    ),
                )
                .with_detail_code(
                    "MISSING_SCOPE",
                    &[("missingScopes", json!(missing)), ("deviceId", json!(id))],
                ))
            }
        };
        // Its credentials are gone: so are its live sessions.
        let closed = ctx
            .gw
            .conns
            .close_device(&dev.device_id, 4001, "device removed");
        Ok(json!({"deviceId": dev.device_id, "removed": true, "closedConnections": closed}))
    })
}
