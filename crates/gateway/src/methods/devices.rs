use super::{object, req_str, BoxFuture, Ctx};
use crate::devices::{now_ms, pending_json, redacted};
use clawgate_protocol::error::ErrorShape;
use serde_json::{json, Value};

/// `device.pair.list` (pairing): pending requests and paired devices, tokens redacted.
pub fn list(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(ctx.gw.devices.list()) })
}

/// `device.pair.approve` (pairing) `{requestId}`.
pub fn approve(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.approve", params)?;
        let id = req_str("device.pair.approve", &p, "requestId")?;
        let dev = ctx
            .gw
            .devices
            .approve(id)
            .map_err(ErrorShape::unavailable)?
            .ok_or_else(|| ErrorShape::invalid("unknown requestId"))?;
        ctx.gw.conns.broadcast(
            "device.pair.resolved",
            &json!({"requestId": id, "deviceId": dev.device_id, "decision": "approved", "ts": now_ms()}),
            None,
        );
        Ok(json!({"requestId": id, "device": redacted(&dev)}))
    })
}

/// `device.pair.reject` (pairing) `{requestId}`.
pub fn reject(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.reject", params)?;
        let id = req_str("device.pair.reject", &p, "requestId")?;
        let req = ctx
            .gw
            .devices
            .reject(id)
            .map_err(ErrorShape::unavailable)?
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

/// `device.pair.remove` (pairing) `{deviceId}`.
pub fn remove(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("device.pair.remove", params)?;
        let id = req_str("device.pair.remove", &p, "deviceId")?;
        let dev = ctx
            .gw
            .devices
            .remove(id)
            .map_err(ErrorShape::unavailable)?
            .ok_or_else(|| ErrorShape::invalid("unknown deviceId"))?;
        // Its credentials are gone: so are its live sessions.
        let closed = ctx
            .gw
            .conns
            .close_device(&dev.device_id, 4001, "device removed");
        Ok(json!({"deviceId": dev.device_id, "removed": true, "closedConnections": closed}))
    })
}
