//! The retention sweep: every `CLAWGATE_PRUNE_INTERVAL_MS` (an hour by default), finished rows
//! older than `store.retention` are deleted in small batches, so other store calls interleave.

use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_store::{PruneCounts, Retention};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Rows per table per store call.
const BATCH: usize = 500;

pub fn retention(gw: &Gateway) -> Retention {
    let r = gw.live_config().store.retention;
    let ms = |n: u64, unit: u64| i64::try_from(n.saturating_mul(unit)).unwrap_or(i64::MAX);
    Retention {
        inbound_ms: ms(r.inbound_days, 86_400_000),
        outbox_ms: ms(r.outbox_days, 86_400_000),
        idempotency_ms: ms(r.idempotency_hours, 3_600_000),
    }
}

/// One sweep: batches until every table is below its cutoff.
pub async fn sweep(gw: &Gateway) -> Result<PruneCounts, clawgate_store::StoreError> {
    let r = retention(gw);
    let now = now_ms();
    let mut total = PruneCounts::default();
    loop {
        let n = gw
            .chat
            .store
            .call(move |s| s.prune_batch(&r, now, BATCH))
            .await?;
        total.inbound += n.inbound;
        total.outbox += n.outbox;
        total.idempotency += n.idempotency;
        if n.inbound < BATCH && n.outbox < BATCH && n.idempotency < BATCH {
            return Ok(total);
        }
    }
}

/// Sweeps shortly after start-up (so restarts alone still prune, without competing with the
/// start-up work), then every interval, until the gateway stops.
pub fn spawn(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        let period = Duration::from_millis(gw.timings.prune_interval_ms);
        let first = tokio::time::Instant::now() + period.min(Duration::from_secs(30));
        let mut iv = tokio::time::interval_at(first, period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            if gw.is_shutting_down() {
                return;
            }
            match sweep(&gw).await {
                Ok(n) if n.total() > 0 => info!(
                    inbound = n.inbound,
                    outbox = n.outbox,
                    idempotency = n.idempotency,
                    "pruned expired rows from the state database"
                ),
                Ok(_) => {}
                Err(e) => warn!("cannot prune the state database: {e}"),
            }
        }
    });
}
