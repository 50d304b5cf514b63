//! `clawgate-bench soak`: the gateway under an hour (by default) of mixed load, with its RSS
//! sampled every minute. The load, all at once, all on loopback:
//! - RPC: 8 authenticated connections sending `health` every 5 ms each;
//! - chat: a turn every 200 ms against the fake OpenAI-compatible LLM, over 50 sessions;
//! - Telegram: a DM from an allowed user every 500 ms through a fake Bot API (long polling),
//!   each answered through the outbox;
//! - hostile: every second 20 pre-auth sockets that flood pings and never read (dropped after
//!   5 s), one pre-auth frame over the 64 KiB cap, one HTTP request that stalls in its headers,
//!   one oversized HTTP body; every 10 s a `connect` with a wrong token (below the lockout).
//!
//! The verdict compares the RSS of the last sample with the sample at one third of the run
//! (after warm-up): "flat" when it grew by less than 10 % and less than 8 MB.

use crate::{chat_turn, connect, connect_rw, rss_kb, start_gateway_with, Ws};
use anyhow::{anyhow, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Counters {
    rpc_ok: AtomicU64,
    rpc_err: AtomicU64,
    chat_ok: AtomicU64,
    chat_err: AtomicU64,
    telegram_sent: AtomicU64,
    hostile: AtomicU64,
    hostile_refused: AtomicU64,
}

const TELEGRAM_USER: i64 = 4242;

pub async fn soak(bin: &Path, minutes: u64) -> Result<()> {
    let llm = clawgate_testkit::FakeLlm::start().await;
    let tg = clawgate_testkit::FakeTelegram::start().await;
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [\"{TELEGRAM_USER}\"]\n",
        llm.openai_base_url(),
        tg.token(),
        tg.api_root()
    );
    let (gw, _) = start_gateway_with(bin, Some(&cfg))?;
    let pid = gw.child.id();
    let addr = gw.addr;
    let total = Duration::from_secs(minutes * 60);
    let deadline = Instant::now() + total;
    let c = Arc::new(Counters::default());
    println!("soak: {minutes} min of mixed load; RSS sampled every minute");
    println!("minute  rss_mb  hwm_mb  fds  rpc_ok  chat_ok  telegram_replies  hostile_conns");
    let sample = |m: u64, c: &Counters| -> Result<f64> {
        let rss = rss_kb(pid)? as f64 / 1024.0;
        println!(
            "{m:>6}  {rss:>6.1}  {:>6.1}  {:>3}  {:>6}  {:>7}  {:>16}  {:>13}",
            hwm_kb(pid)? as f64 / 1024.0,
            std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
            c.rpc_ok.load(Relaxed),
            c.chat_ok.load(Relaxed),
            c.telegram_sent.load(Relaxed),
            c.hostile.load(Relaxed),
        );
        Ok(rss)
    };
    let mut samples = vec![sample(0, &c)?];

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ws = connect(addr, &gw.token).await?;
        tasks.push(tokio::spawn(rpc_loop(ws, deadline, c.clone())));
    }
    let ws = connect_rw(addr, &gw.token).await?;
    tasks.push(tokio::spawn(chat_loop(ws, deadline, c.clone())));
    tasks.push(tokio::spawn(hostile_loop(addr, deadline, c.clone())));
    let token_len = gw.token.len();
    tasks.push(tokio::spawn(wrong_token_loop(
        addr,
        token_len,
        deadline,
        c.clone(),
    )));

    let mut injected = 0u64;
    let mut next_minute = Instant::now() + Duration::from_secs(60);
    let mut minute = 0;
    while Instant::now() < deadline {
        tg.inject_private_text(TELEGRAM_USER, &format!("soak message {injected}"));
        injected += 1;
        c.telegram_sent
            .store(tg.sent_messages().len() as u64, Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        if Instant::now() >= next_minute {
            minute += 1;
            next_minute += Duration::from_secs(60);
            samples.push(sample(minute, &c)?);
        }
    }
    for t in tasks {
        t.await??;
    }
    // Let the last Telegram messages be answered, then count.
    let replies = tg
        .wait_for_sent(injected as usize, Duration::from_secs(30))
        .await
        .len() as u64;
    c.telegram_sent.store(replies, Relaxed);
    let last = sample(minute + 1, &c)?;
    samples.push(last);

    let base = samples[samples.len() / 3];
    let max = samples.iter().cloned().fold(0.0, f64::max);
    let growth = last - base;
    let flat = growth < base * 0.10 && growth < 8.0;
    println!(
        "totals: {} health RPCs ({} failed), {} chat turns ({} failed), {} Telegram messages → {} replies, {} hostile connections ({} refused or closed by the gateway)",
        c.rpc_ok.load(Relaxed),
        c.rpc_err.load(Relaxed),
        c.chat_ok.load(Relaxed),
        c.chat_err.load(Relaxed),
        injected,
        replies,
        c.hostile.load(Relaxed),
        c.hostile_refused.load(Relaxed),
    );
    println!(
        "RSS: start {:.1} MB, at 1/3 {:.1} MB, end {:.1} MB, max {:.1} MB → {} ({:+.1} MB over the last two thirds)",
        samples[0],
        base,
        last,
        max,
        if flat { "flat" } else { "GROWING" },
        growth
    );
    Ok(())
}

fn hwm_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM"))
}

async fn rpc_loop(mut ws: Ws, deadline: Instant, c: Arc<Counters>) -> Result<()> {
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let req = json!({"type":"req","id":n.to_string(),"method":"health"});
        ws.send(Message::text(req.to_string())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"res""#) => {
                    if t.as_str().contains(r#""ok":true"#) {
                        c.rpc_ok.fetch_add(1, Relaxed);
                    } else {
                        c.rpc_err.fetch_add(1, Relaxed);
                    }
                    break;
                }
                Some(Ok(_)) => continue,
                other => return Err(anyhow!("RPC connection lost: {other:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn chat_loop(mut ws: Ws, deadline: Instant, c: Arc<Counters>) -> Result<()> {
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        match chat_turn(
            &mut ws,
            &format!("soak-{}", n % 50),
            &format!("soak-run-{n}"),
        )
        .await
        {
            Ok(_) => c.chat_ok.fetch_add(1, Relaxed),
            Err(_) => c.chat_err.fetch_add(1, Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Hostile traffic; each connection is counted, and counted as refused when the gateway
/// closed or refused it before we did.
async fn hostile_loop(addr: SocketAddr, deadline: Instant, c: Arc<Counters>) -> Result<()> {
    while Instant::now() < deadline {
        let t0 = Instant::now();
        // Ping floods that never read, each for up to 5 s.
        for _ in 0..20 {
            let c = c.clone();
            c.hostile.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                if ping_flood(addr, Duration::from_secs(5))
                    .await
                    .unwrap_or(true)
                {
                    c.hostile_refused.fetch_add(1, Relaxed);
                }
            });
        }
        // One pre-auth frame over the cap, one stalled header, one oversized body.
        for probe in [
            oversized_frame(addr).await,
            stalled_headers(addr).await,
            big_body(addr).await,
        ] {
            c.hostile.fetch_add(1, Relaxed);
            if probe.unwrap_or(false) {
                c.hostile_refused.fetch_add(1, Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed())).await;
    }
    Ok(())
}

const WS_UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame header for `len` payload bytes (mask key 0, so the payload is as is).
fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len < 65536 {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// Upgrades, then sends pings without ever reading, for `hold`; true when the gateway
/// closed the connection first (a write failed).
async fn ping_flood(addr: SocketAddr, hold: Duration) -> Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(WS_UPGRADE.as_bytes()).await?;
    let mut ping = frame_header(0x9, 125);
    ping.extend_from_slice(&[b'p'; 125]);
    let burst: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 64).collect();
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.write_all(&burst)).await {
            Ok(Ok(())) => tokio::task::yield_now().await,
            Ok(Err(_)) => return Ok(true),
            // Blocked: the gateway stopped reading us (back-pressure).
            Err(_) => break,
        }
    }
    Ok(false)
}

/// Reads until EOF or 3 s; true when the gateway closed the connection.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn oversized_frame(addr: SocketAddr) -> Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(WS_UPGRADE.as_bytes()).await?;
    let len = 64 * 1024 + 1;
    let mut f = frame_header(0x1, len);
    f.resize(f.len() + len, b'x');
    let _ = s.write_all(&f).await;
    Ok(closed_by_peer(&mut s).await)
}

async fn stalled_headers(addr: SocketAddr) -> Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await?;
    // Dropped after a short wait: what matters is that it costs the gateway nothing lasting.
    Ok(closed_by_peer(&mut s).await)
}

async fn big_body(addr: SocketAddr) -> Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    let head = "POST /telegram/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n";
    s.write_all(head.as_bytes()).await?;
    let _ = tokio::time::timeout(Duration::from_millis(50), s.write_all(&[b'{'; 256 * 1024])).await;
    Ok(closed_by_peer(&mut s).await)
}

async fn wrong_token_loop(
    addr: SocketAddr,
    len: usize,
    deadline: Instant,
    c: Arc<Counters>,
) -> Result<()> {
    while Instant::now() < deadline {
        c.hostile.fetch_add(1, Relaxed);
        if connect(addr, &"x".repeat(len)).await.is_err() {
            c.hostile_refused.fetch_add(1, Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    Ok(())
}
