//! Test kit: start the real `clawgate` binary on an ephemeral port, and speak raw
//! WebSocket/HTTP to it. Everything goes over real loopback sockets.

pub mod browser;
pub mod fake_llm;
pub mod fake_npm;
pub mod fake_slack;
pub mod fake_telegram;
pub mod fake_whatsapp;
pub mod gateway;
pub mod nginx;
pub mod npm;
mod resettable;
pub mod ws;

pub use fake_llm::FakeLlm;
pub use fake_slack::FakeSlack;
pub use fake_telegram::FakeTelegram;
pub use fake_whatsapp::FakeWhatsApp;
pub use gateway::GatewayProcess;
pub use ws::RawWs;

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some` or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
