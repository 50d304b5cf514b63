//! clawgate benchmarks: start-up time to `/readyz`, idle RSS, `health` RPC throughput and
//! latency over N connections, and RSS with many idle authenticated connections.
//!
//!   cargo build --release -p clawgate -p clawgate-bench
//!   target/release/clawgate-bench all --gateway target/release/clawgate
//!   target/release/clawgate-bench soak --minutes 60 --gateway target/release/clawgate
//!
//! Every figure comes from a gateway this program starts itself in a throwaway state
//! directory on an ephemeral loopback port.

mod soak;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

struct Gateway {
    child: Child,
    _home: tempfile::TempDir,
    addr: SocketAddr,
    token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Starts the gateway and returns once it printed its listening line, with the elapsed time.
fn start_gateway(bin: &Path) -> Result<(Gateway, Duration)> {
    start_gateway_with(bin, None)
}

fn start_gateway_with(bin: &Path, config: Option<&str>) -> Result<(Gateway, Duration)> {
    let home = tempfile::tempdir()?;
    if let Some(c) = config {
        std::fs::write(home.path().join("config.yaml"), c)?;
    }
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["gateway", "run", "--port", "0"])
        .env("CLAWGATE_HOME", home.path())
        .env("CLAWGATE_LOG", "warn")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("clawgate listening on ")
        .ok_or_else(|| anyhow!("unexpected first line: {line:?}"))?
        .parse()?;
    let token = std::fs::read_to_string(home.path().join("credentials/gateway-token"))?
        .trim()
        .to_string();
    Ok((
        Gateway {
            child,
            _home: home,
            addr,
            token,
        },
        started.elapsed(),
    ))
}

/// Time from spawn until `GET /readyz` answers 200.
fn time_to_ready(bin: &Path) -> Result<Duration> {
    use std::io::{Read, Write};
    let home = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["gateway", "run", "--port", &port.to_string()])
        .env("CLAWGATE_HOME", home.path())
        .env("CLAWGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = loop {
        if t0.elapsed() > Duration::from_secs(10) {
            break Err(anyhow!("not ready within 10 s"));
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let req = format!(
                "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    break Ok(t0.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr, token: &str) -> Result<Ws> {
    connect_scoped(addr, token, &["operator.read"]).await
}

async fn connect_scoped(addr: SocketAddr, token: &str, scopes: &[&str]) -> Result<Ws> {
    connect_caps(addr, token, scopes, &[]).await
}

async fn connect_caps(addr: SocketAddr, token: &str, scopes: &[&str], caps: &[&str]) -> Result<Ws> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await?;
    let _challenge = ws.next().await.ok_or_else(|| anyhow!("no challenge"))??;
    let connect = json!({"type":"req","id":"1","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
        "role":"operator","scopes":scopes,"caps":caps,"auth":{"token":token}}});
    ws.send(Message::text(connect.to_string())).await?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("closed during handshake"))??;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "res" {
                if v["ok"] != true {
                    bail!("connect refused: {v}");
                }
                return Ok(ws);
            }
        }
    }
}

struct RpcStats {
    requests: u64,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Each connection sends `health`, waits for its reply, repeats (closed loop).
async fn rpc_load(
    addr: SocketAddr,
    token: &str,
    conns: usize,
    duration: Duration,
) -> Result<RpcStats> {
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        sockets.push(connect(addr, token).await?);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                let id = format!("{i}:{n}");
                let req = format!(r#"{{"type":"req","id":"{id}","method":"health"}}"#);
                let t = Instant::now();
                ws.send(Message::text(req)).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"res""#) => {
                            break
                        }
                        Some(Ok(_)) => continue,
                        _ => bail!("connection lost"),
                    }
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                n += 1;
            }
            let _ = ws.close(None).await;
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        u64::from(all[idx])
    };
    Ok(RpcStats {
        requests: all.len() as u64,
        elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: all.last().copied().map(u64::from).unwrap_or(0),
    })
}

/// Opens `n` authenticated connections and keeps them idle; returns the gateway's RSS.
async fn idle_connections(gw: &Gateway, n: usize) -> Result<(u64, u64)> {
    let before = rss_kb(gw.child.id())?;
    let mut held = Vec::with_capacity(n);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let addr = gw.addr;
        let token = gw.token.clone();
        tasks.push(tokio::spawn(async move {
            let ws = connect(addr, &token).await;
            drop(permit);
            ws
        }));
    }
    for t in tasks {
        held.push(t.await??);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kb(gw.child.id())?;
    drop(held);
    Ok((before, after))
}

/// Sends `chat.send` on `ws` and waits for the run's final `chat` event; returns the
/// latency and the time the gateway spent waiting on the LLM (`llmMs` of the run's end).
async fn chat_turn(ws: &mut Ws, session: &str, run: &str) -> Result<(Duration, Duration)> {
    let req = json!({"type":"req","id":run,"method":"chat.send","params":{"sessionKey":session,"message":"hello","idempotencyKey":run}});
    let t0 = Instant::now();
    ws.send(Message::text(req.to_string())).await?;
    let mut llm = Duration::ZERO;
    loop {
        let msg = ws.next().await.ok_or_else(|| anyhow!("closed"))??;
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str())?;
        if v["payload"]["runId"] != run {
            continue;
        }
        if let Some(ms) = v["payload"]["data"]["llmMs"].as_f64() {
            llm = Duration::from_secs_f64(ms / 1e3);
        }
        if v["event"] == "chat" {
            match v["payload"]["state"].as_str() {
                Some("final") => return Ok((t0.elapsed(), llm)),
                Some("error") | Some("aborted") => bail!("run failed: {v}"),
                _ => {}
            }
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The fake LLM's own time for one streamed completion, measured directly.
async fn llm_direct(base: &str, n: usize) -> Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let body = json!({"model":"fake-model","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}).to_string();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(&addr).await?;
        let req = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        out.push(t0.elapsed());
    }
    out.sort();
    Ok(out)
}

async fn chat_bench(bin: &Path, turns: usize, concurrent: usize) -> Result<()> {
    let fake = clawgate_testkit::FakeLlm::start().await;
    // All the streaming sessions run at once (the default agents.defaults.maxConcurrent is 4).
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n    maxConcurrent: {}\n",
        fake.openai_base_url(),
        concurrent.clamp(1, 256)
    );
    let (gw, _) = start_gateway_with(bin, Some(&cfg))?;
    // Sequential turns with an instant LLM: the gateway's own overhead.
    let mut ws = connect_rw(gw.addr, &gw.token).await?;
    for i in 0..20 {
        chat_turn(&mut ws, "warm", &format!("warm-{i}")).await?;
    }
    let mut lat = Vec::with_capacity(turns);
    let mut overhead = Vec::with_capacity(turns);
    let mut llm_times = Vec::with_capacity(turns);
    for i in 0..turns {
        let (total, llm) = chat_turn(&mut ws, &format!("s{i}"), &format!("t-{i}")).await?;
        lat.push(total);
        llm_times.push(llm);
        overhead.push(total.saturating_sub(llm));
    }
    lat.sort();
    overhead.sort();
    llm_times.sort();
    let direct = llm_direct(&fake.openai_base_url(), turns.min(500)).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "chat turn, instant fake LLM, {turns} turns: chat.send → final p50 {:.2} ms, p99 {:.2} ms; waiting on the LLM (measured in the gateway) p50 {:.2} ms, p99 {:.2} ms; gateway overhead per turn p50 {:.2} ms, p99 {:.2} ms (the fake alone, direct: p50 {:.2} ms)",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(pct(&llm_times, 0.5)),
        ms(pct(&llm_times, 0.99)),
        ms(pct(&overhead, 0.5)),
        ms(pct(&overhead, 0.99)),
        ms(pct(&direct, 0.5))
    );
    // Many sessions streaming at once (the fake streams 40 words, 50 ms apart).
    let mut tasks = Vec::new();
    // Connect first (the gateway admits at most 256 handshakes at once), then start
    // every stream at the same moment.
    let mut sockets = Vec::with_capacity(concurrent);
    for _ in 0..concurrent {
        // Like a client that follows its own session: session-scoped events only.
        sockets.push(
            connect_caps(
                gw.addr,
                &gw.token,
                &["operator.read", "operator.write"],
                &["session-scoped-events"],
            )
            .await?,
        );
    }
    let t0 = Instant::now();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let sub = json!({"type":"req","id":"s","method":"sessions.messages.subscribe","params":{"key":format!("c{i}")}});
            ws.send(Message::text(sub.to_string())).await?;
            let req = json!({"type":"req","id":"x","method":"chat.send","params":{"sessionKey":format!("c{i}"),"message":"SLOWTEST stream","idempotencyKey":format!("c-{i}")}});
            ws.send(Message::text(req.to_string())).await?;
            let run = format!("c-{i}");
            let mut last = Instant::now();
            let mut max_gap = Duration::ZERO;
            loop {
                let msg = ws.next().await.ok_or_else(|| anyhow!("closed"))??;
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["event"] != "chat" || v["payload"]["runId"] != run.as_str() {
                    continue;
                }
                let now = Instant::now();
                max_gap = max_gap.max(now - last);
                last = now;
                match v["payload"]["state"].as_str() {
                    Some("final") => return Ok::<_, anyhow::Error>(max_gap),
                    Some("error") | Some("aborted") => bail!("run failed: {v}"),
                    _ => {}
                }
            }
        }));
    }
    let mut gaps = Vec::new();
    for t in tasks {
        gaps.push(t.await??);
    }
    gaps.sort();
    println!(
        "{concurrent} sessions streaming at once (40 deltas each, 50 ms apart): all finished in {:.2} s; longest gap between deltas p50 {:.0} ms, max {:.0} ms",
        t0.elapsed().as_secs_f64(),
        ms(pct(&gaps, 0.5)),
        ms(*gaps.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "gateway RSS after the chat load: {:.1} MB",
        rss_kb(gw.child.id())? as f64 / 1024.0
    );
    Ok(())
}

async fn connect_rw(addr: SocketAddr, token: &str) -> Result<Ws> {
    connect_scoped(addr, token, &["operator.read", "operator.write"]).await
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    raise_nofile();
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_else(|| "all".into());
    let bin =
        PathBuf::from(arg(&args, "--gateway").unwrap_or_else(|| "target/release/clawgate".into()));
    let conns: usize = arg(&args, "--conns")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let secs: u64 = arg(&args, "--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let idle: usize = arg(&args, "--idle")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p clawgate`",
            bin.display()
        );
    }
    println!("# clawgate bench ({mode}), gateway {}", bin.display());
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if mode == "all" || mode == "startup" {
        let mut ready = Vec::new();
        for _ in 0..10 {
            ready.push(time_to_ready(&bin)?);
        }
        let best = *ready.iter().min().unwrap_or(&Duration::ZERO);
        println!(
            "startup → /readyz 200: median {:.1} ms, best {:.1} ms (10 runs)",
            median(ready).as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e3
        );
        let (gw, _) = start_gateway(&bin)?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        println!(
            "idle RSS after 1 s: {:.1} MB",
            rss_kb(gw.child.id())? as f64 / 1024.0
        );
    }
    if mode == "all" || mode == "rpc" {
        let (gw, _) = start_gateway(&bin)?;
        let s = rpc_load(gw.addr, &gw.token, conns, Duration::from_secs(secs)).await?;
        println!(
            "health RPC over {conns} connections for {:.1} s: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            s.elapsed.as_secs_f64(),
            s.requests,
            s.requests as f64 / s.elapsed.as_secs_f64(),
            s.p50_us as f64 / 1e3,
            s.p99_us as f64 / 1e3,
            s.max_us as f64 / 1e3
        );
        println!(
            "gateway RSS after the load: {:.1} MB",
            rss_kb(gw.child.id())? as f64 / 1024.0
        );
    }
    if mode == "all" || mode == "chat" {
        let turns: usize = arg(&args, "--turns")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let concurrent: usize = arg(&args, "--sessions")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        chat_bench(&bin, turns, concurrent).await?;
    }
    if mode == "soak" {
        let minutes: u64 = arg(&args, "--minutes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        soak::soak(&bin, minutes).await?;
    }
    if mode == "all" || mode == "idle" {
        let (gw, _) = start_gateway(&bin)?;
        let (before, after) = idle_connections(&gw, idle).await?;
        println!(
            "{idle} idle authenticated connections: gateway RSS {:.1} MB (was {:.1} MB), {:.1} KB per connection",
            after as f64 / 1024.0,
            before as f64 / 1024.0,
            (after.saturating_sub(before)) as f64 / idle as f64
        );
    }
    Ok(())
}
