//! Issue 7 item 1, whole-process memory bound: a cap on authenticated connections, a global
//! budget of queued outbound bytes, and bounded JSON parse amplification. Real binary, real
//! sockets.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{cli_params, connect_cli, RawWs};
use clawgate_testkit::GatewayProcess;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SECS5: Duration = Duration::from_secs(5);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn start_config(config: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config.to_string()),
            ..Options::default()
        },
    )
}

use clawgate_testkit::rss_kib;

/// Samples the gateway's RSS every 5 ms on a thread until dropped; `peak()` is the maximum.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kib) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssPeak { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ------------------------------------------------- item 1: cap on authenticated connections

#[tokio::test]
async fn i7_1_max_connections_refuses_beyond_the_cap() {
    let gw = start_config("gateway:\n  maxConnections: 5\n");
    let token = gw.token();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_cli(gw.addr, &token, &["operator.read"]).await.0);
    }
    // The sixth is refused with a clear error and 1013 "try again later".
    let mut sixth = RawWs::connect(gw.addr).await;
    sixth.challenge().await;
    let res = sixth
        .connect_req(cli_params(&token, &["operator.read"]))
        .await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("too many connections"),
        "{res}"
    );
    let closed = sixth.expect_close(SECS5).await;
    assert_eq!(closed.code, 1013, "{closed:?}");
    assert!(closed.reason.contains("too many connections"), "{closed:?}");
    // The first five still work.
    for ws in held.iter_mut() {
        assert_eq!(ws.call("health", json!({})).await["ok"], true);
    }
    // A slot freed by a closing client is available again.
    let mut first = held.remove(0);
    first.ws.close(None).await.expect("close");
    first.expect_close(SECS5).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ws = RawWs::connect(gw.addr).await;
        ws.challenge().await;
        let res = ws.connect_req(cli_params(&token, &["operator.read"])).await;
        if res["ok"] == true {
            assert_eq!(ws.call("health", json!({})).await["ok"], true);
            break;
        }
        assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------- item 1: global budget of outbound bytes

/// Pipelines `n` copies of `req` without reading; stops early when the gateway stops reading
/// us (or drops us). Returns how many were sent.
async fn pipeline(ws: &mut RawWs, req: &str, n: usize) -> usize {
    for i in 0..n {
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            ws.ws.send(Message::text(req.to_string())),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return i;
        }
    }
    n
}

#[tokio::test]
async fn i7_1_global_outbound_budget_closes_slow_readers() {
    // `config.get` answers with the config file: a 256 KiB comment makes every reply big.
    let filler = "x".repeat(256 * 1024);
    let config = format!("# {filler}\ngateway:\n  maxBufferedBytesTotal: 8388608\n");
    let gw = start_config(&config);
    let token = gw.token();
    let pid = gw.child.id();
    let (mut reader, _) = connect_cli(gw.addr, &token, &["operator.read"]).await;
    let one = reader.call("config.get", json!({})).await;
    assert_eq!(one["ok"], true, "{one}");
    let base = rss_kib(pid);
    let rss = RssPeak::start(pid);
    // Six authenticated slow readers, each asking for ~50 MiB of replies (under the 50 MiB
    // per-connection bound once the kernel buffers hold their share) and reading none.
    let req = json!({"type":"req","id":"g","method":"config.get"}).to_string();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (mut ws, _) = connect_cli(gw.addr, &token, &["operator.read"]).await;
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            pipeline(&mut ws, &req, 200).await;
            ws
        }));
    }
    // Meanwhile a client that reads keeps being served.
    for _ in 0..20 {
        let h = reader.call("health", json!({})).await;
        assert_eq!(h["ok"], true, "{h}");
    }
    let mut slow = Vec::new();
    for t in tasks {
        slow.push(t.await.unwrap());
    }
    // Reading now, each slow reader finds its stream ending in 1008 "slow consumer".
    let mut closes = Vec::new();
    for mut ws in slow {
        closes.push(tokio::spawn(async move {
            ws.expect_close(Duration::from_secs(30)).await
        }));
    }
    for c in closes {
        let closed = c.await.unwrap();
        assert_eq!(closed.code, 1008, "{closed:?}");
        assert_eq!(closed.reason, "slow consumer");
    }
    let peak = rss.peak();
    eprintln!("RSS: start {base} KiB, peak {peak} KiB");
    // 6 × 50 MiB could be queued without the global budget; with 8 MiB, the peak stays far
    // below (replies being built and written, allocator slack aside).
    assert!(
        peak < base + 64 * 1024,
        "RSS peaked at {peak} KiB from {base} KiB"
    );
    let h = reader.call("config.get", json!({})).await;
    assert_eq!(h["ok"], true, "{h}");
}

// ----------------------------------------------------- item 1: parse amplification

/// A request whose `params.x` is `len` bytes of JSON built by `fill`.
fn big_request(id: &str, fill: &str, len: usize) -> String {
    let mut s = format!(r#"{{"type":"req","id":"{id}","method":"health","params":{{"x":"#);
    s.reserve(len + 8);
    s.push_str(fill);
    s.push('}');
    s.push('}');
    s
}

#[tokio::test]
async fn i7_1_many_small_json_values_are_refused_without_amplification() {
    let gw = start_config("");
    let pid = gw.child.id();
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let base = rss_kib(pid);
    let rss = RssPeak::start(pid);
    // 20 MiB of `[0,0,0,…]`: ~10 million JSON values, ~33× its size once parsed.
    let n = 10 * 1024 * 1024;
    let mut zeros = String::with_capacity(2 * n + 2);
    zeros.push('[');
    for i in 0..n {
        if i > 0 {
            zeros.push(',');
        }
        zeros.push('0');
    }
    zeros.push(']');
    let text = big_request("zeros", &zeros, zeros.len());
    drop(zeros);
    ws.send_text(text).await;
    let res = ws
        .recv_until(Duration::from_secs(30), |v| v["id"] == "zeros")
        .await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(
        res["error"]["message"], "frame has too many JSON values",
        "{res}"
    );
    let peak = rss.peak();
    drop(rss);
    eprintln!("RSS: start {base} KiB, peak {peak} KiB");
    // The frame is held by the socket reader and its reassembly (2 × 20 MiB); parsing it into
    // values would have cost ~660 MiB more.
    assert!(
        peak < base + 160 * 1024,
        "RSS peaked at {peak} KiB from {base} KiB"
    );
    // The connection stays open; a 20 MiB base64 string (few values, large) still parses.
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
    let b64: String = "QUJD".repeat(5 * 1024 * 1024);
    let text = big_request("b64", &format!("\"{b64}\""), b64.len());
    ws.send_text(text).await;
    let res: Value = ws
        .recv_until(Duration::from_secs(30), |v| v["id"] == "b64")
        .await;
    assert_eq!(res["ok"], true, "{res}");
}
