//! Health of one channel account, for `channels.status` and `clawgate doctor`.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub struct ChannelStatus {
    pub running: bool,
    pub connected: bool,
    pub last_error: Option<String>,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    /// Last completed receive cycle (a long poll, a webhook delivery).
    pub last_poll_at: Option<i64>,
    pub last_poll_instant: Option<Instant>,
    pub restarts: u64,
    pub stalls: u64,
    /// When the receiver last started / last stopped (failed, stalled) — ms since the epoch.
    pub last_start_at: Option<i64>,
    pub last_stop_at: Option<i64>,
    pub bot_username: Option<String>,
}

pub struct StatusCell(Mutex<ChannelStatus>);

impl Default for StatusCell {
    fn default() -> Self {
        StatusCell(Mutex::new(ChannelStatus::default()))
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl StatusCell {
    pub fn update(&self, f: impl FnOnce(&mut ChannelStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn get(&self) -> ChannelStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A receive cycle completed: the receiver is alive and connected. The error that
    /// took it down before is history now (it stays in the log), not its current state.
    pub fn polled(&self) {
        self.update(|s| {
            if !s.connected {
                s.last_error = None;
            }
            s.last_poll_at = Some(now_ms());
            s.last_poll_instant = Some(Instant::now());
            s.connected = true;
        });
    }
}
