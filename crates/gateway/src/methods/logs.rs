use super::{object, opt_u64, BoxFuture, Ctx};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};

/// `logs.tail` (read): lines of the gateway's own log file from a byte cursor, or the last
/// `limit` lines when no cursor is given.
pub fn tail(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("logs.tail", params)?;
        let cursor = opt_u64("logs.tail", &p, "cursor", 0, u64::MAX)?;
        let limit = opt_u64("logs.tail", &p, "limit", 1, 5000)?.unwrap_or(200) as usize;
        let max_bytes = opt_u64("logs.tail", &p, "maxBytes", 1, 1_000_000)?.unwrap_or(250_000);
        let path = ctx.gw.log_path.clone();
        let out = tokio::task::spawn_blocking(move || read_tail(&path, cursor, limit, max_bytes))
            .await
            .map_err(|e| clawgate_protocol::error::ErrorShape::unavailable(e.to_string()))?;
        Ok(out)
    })
}

fn read_tail(path: &std::path::Path, cursor: Option<u64>, limit: usize, max_bytes: u64) -> Value {
    let file_name = path.display().to_string();
    let Ok(mut f) = std::fs::File::open(path) else {
        return json!({"file": file_name, "cursor": 0, "size": 0, "lines": [], "truncated": false, "reset": false});
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let (start, reset) = match cursor {
        Some(c) if c <= size => (c, false),
        Some(_) => (0, true),
        None => (size.saturating_sub(max_bytes), false),
    };
    let end = size.min(start + max_bytes);
    let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut buf).is_err() {
        buf.clear();
    }
    // Only whole lines: drop a partial first line when we started mid-file without a cursor,
    // and stop at the last newline so the cursor points at a line start.
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    let mut consumed = buf.len() as u64;
    if let Some(last_nl) = text.rfind('\n') {
        consumed = last_nl as u64 + 1;
        text.truncate(last_nl);
    } else if end < size || !text.is_empty() {
        consumed = 0;
        text.clear();
    }
    let mut lines: Vec<&str> = text.lines().collect();
    if cursor.is_none() && start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let truncated = lines.len() > limit || end < size;
    if lines.len() > limit {
        lines.drain(..lines.len() - limit);
    }
    json!({
        "file": file_name,
        "cursor": start + consumed,
        "size": size,
        "lines": lines,
        "truncated": truncated,
        "reset": reset,
    })
}
