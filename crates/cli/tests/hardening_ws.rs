//! Issue 7, WebSocket layer: pre-auth memory and capacity, protocol violations, and
//! concurrent requests on one connection. Real binary, real sockets.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{cli_params, connect_cli, RawWs};
use clawgate_testkit::{FakeLlm, GatewayProcess};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SECS5: Duration = Duration::from_secs(5);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn start_env(env: &[(&str, &str)]) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        },
    )
}

use clawgate_testkit::rss_kib;

/// A WebSocket spoken byte by byte: arbitrary (even invalid) frames, and no reading unless asked.
struct Wire {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// What a raw upgrade attempt got.
enum Upgrade {
    Open(Wire),
    Status(u16),
}

impl Wire {
    /// TCP from `src` (any 127.x address), then the HTTP upgrade.
    async fn open_from(addr: SocketAddr, src: IpAddr) -> Upgrade {
        let sock = TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::new(src, 0)).expect("bind source");
        let mut tcp = sock.connect(addr).await.expect("tcp connect");
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.expect("send upgrade");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tcp.read(&mut chunk).await.expect("read upgrade response");
            assert!(n > 0, "closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        if status != 101 {
            return Upgrade::Status(status);
        }
        Upgrade::Open(Wire {
            tcp,
            buf: buf[end..].to_vec(),
        })
    }

    async fn open(addr: SocketAddr) -> Wire {
        match Self::open_from(addr, "127.0.0.1".parse().unwrap()).await {
            Upgrade::Open(w) => w,
            Upgrade::Status(s) => panic!("upgrade refused with {s}"),
        }
    }

    /// Encodes one frame: `first` is the whole first header byte (FIN, RSV, opcode).
    fn encode(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![first];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n < 65536 => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// A masked, final text frame.
    async fn send_text(&mut self, text: &str) {
        let f = Self::encode(0x81, text.as_bytes(), Some([1, 2, 3, 4]));
        self.send_raw(&f).await.expect("send text");
    }

    /// Next server frame: (opcode, payload), or `None` at EOF/reset/deadline.
    async fn read_frame(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.buf.len() >= 2 {
                let op = self.buf[0] & 0x0f;
                let len7 = (self.buf[1] & 0x7f) as usize;
                let (hdr, len) = match len7 {
                    126 if self.buf.len() >= 4 => {
                        (4, u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize)
                    }
                    127 if self.buf.len() >= 10 => (
                        10,
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (2, n),
                };
                if hdr != usize::MAX && self.buf.len() >= hdr + len {
                    let payload = self.buf[hdr..hdr + len].to_vec();
                    self.buf.drain(..hdr + len);
                    return Some((op, payload));
                }
            }
            let mut chunk = [0u8; 65536];
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return None,
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Next text frame as JSON (pings/pongs skipped).
    async fn recv_json(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let (op, p) = self.read_frame(timeout).await?;
            if op == 1 {
                return serde_json::from_slice(&p).ok();
            }
            if op == 8 {
                return None;
            }
        }
    }

    /// Reads until a close frame; its code (1005 for none, 1006 for a dropped socket).
    async fn expect_close(&mut self, timeout: Duration) -> u16 {
        loop {
            match self.read_frame(timeout).await {
                Some((8, p)) if p.len() >= 2 => return u16::from_be_bytes([p[0], p[1]]),
                Some((8, _)) => return 1005,
                Some(_) => continue,
                None => return 1006,
            }
        }
    }

    /// Reads the challenge and completes `connect` as the CLI.
    async fn handshake(&mut self, token: &str) {
        let ch = self.recv_json(SECS5).await.expect("challenge");
        assert_eq!(ch["event"], "connect.challenge", "{ch}");
        let req = json!({"type":"req","id":"c1","method":"connect",
            "params": cli_params(token, &["operator.read"])});
        self.send_text(&req.to_string()).await;
        loop {
            let v = self.recv_json(SECS5).await.expect("hello-ok");
            if v["id"] == "c1" {
                assert_eq!(v["ok"], true, "{v}");
                return;
            }
        }
    }
}

// ---------------------------------------------------------------- item 11: protocol (T28)

#[tokio::test]
async fn t28_unmasked_client_frame_closes_1002() {
    let gw = start_env(&[]);
    // Before connect.
    let mut w = Wire::open(gw.addr).await;
    w.recv_json(SECS5).await.expect("challenge");
    let req = json!({"type":"req","id":"c1","method":"connect",
        "params": cli_params(&gw.token(), &["operator.read"])});
    w.send_raw(&Wire::encode(0x81, req.to_string().as_bytes(), None))
        .await
        .unwrap();
    assert_eq!(w.expect_close(SECS5).await, 1002, "pre-auth unmasked text");
    // After connect.
    let mut w = Wire::open(gw.addr).await;
    w.handshake(&gw.token()).await;
    let health = json!({"type":"req","id":"h","method":"health"}).to_string();
    w.send_raw(&Wire::encode(0x81, health.as_bytes(), None))
        .await
        .unwrap();
    assert_eq!(w.expect_close(SECS5).await, 1002, "unmasked text");
    // An unmasked ping too.
    let mut w = Wire::open(gw.addr).await;
    w.handshake(&gw.token()).await;
    w.send_raw(&Wire::encode(0x89, b"hi", None)).await.unwrap();
    assert_eq!(w.expect_close(SECS5).await, 1002, "unmasked ping");
    // The gateway is fine.
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
}

#[tokio::test]
async fn t28_protocol_violations_close_1002() {
    let gw = start_env(&[]);
    let k = Some([9, 8, 7, 6]);
    let health = json!({"type":"req","id":"h","method":"health"}).to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("RSV1 set", Wire::encode(0xC1, health.as_bytes(), k)),
        ("RSV3 set", Wire::encode(0x91, health.as_bytes(), k)),
        ("reserved data opcode 0x3", Wire::encode(0x83, b"x", k)),
        ("reserved control opcode 0xB", Wire::encode(0x8B, b"x", k)),
        ("ping over 125 bytes", Wire::encode(0x89, &[b'p'; 126], k)),
        ("pong over 125 bytes", Wire::encode(0x8A, &[b'p'; 126], k)),
        ("close over 125 bytes", {
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend_from_slice(&[b'r'; 124]);
            Wire::encode(0x88, &p, k)
        }),
        ("fragmented ping", Wire::encode(0x09, b"hi", k)),
        ("continuation without a start", Wire::encode(0x80, b"x", k)),
        ("one-byte close payload", Wire::encode(0x88, b"x", k)),
        ("new text inside a fragmented message", {
            let mut v = Wire::encode(0x01, b"{\"a\":", k);
            v.extend(Wire::encode(0x81, b"1}", k));
            v
        }),
    ];
    for (name, bytes) in &cases {
        for authed in [false, true] {
            let mut w = Wire::open(gw.addr).await;
            if authed {
                w.handshake(&gw.token()).await;
            } else {
                w.recv_json(SECS5).await.expect("challenge");
            }
            w.send_raw(bytes).await.unwrap();
            assert_eq!(
                w.expect_close(SECS5).await,
                1002,
                "{name} (authenticated: {authed})"
            );
        }
    }
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
}

// ------------------------------------------------------- item 1: pre-auth ping flood (T28)

/// Floods masked pings without ever reading until the gateway drops the socket (`true`) or
/// `cap` bytes were sent (`false`).
async fn ping_flood(mut w: Wire, cap: usize, deadline: Instant) -> bool {
    let ping = Wire::encode(0x89, &[b'x'; 125], Some([1, 2, 3, 4]));
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 256)
        .collect();
    let mut sent = 0;
    while sent < cap && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, w.send_raw(&batch)).await {
            Ok(Ok(())) => sent += batch.len(),
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn t28_preauth_ping_flood_is_closed_and_memory_bounded() {
    let gw = start_env(&[]);
    let pid = gw.child.id();
    let base = rss_kib(pid);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut floods = Vec::new();
    // As in the attack run: 32 connections from one address.
    for _ in 0..32 {
        let src: IpAddr = "127.0.1.1".parse().unwrap();
        let Upgrade::Open(w) = Wire::open_from(gw.addr, src).await else {
            panic!("flood socket refused");
        };
        floods.push(tokio::spawn(ping_flood(w, 32 << 20, deadline)));
    }
    // Sample RSS while the flood runs; a legitimate client is served meanwhile.
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
    // A pre-auth client that pings and reads its pongs is served as before.
    let mut polite = Wire::open(gw.addr).await;
    polite.recv_json(SECS5).await.expect("challenge");
    for i in 0..100u8 {
        polite
            .send_raw(&Wire::encode(0x89, &[i; 100], Some([1, 2, 3, 4])))
            .await
            .unwrap();
        let (op, p) = polite.read_frame(SECS5).await.expect("pong");
        assert_eq!((op, p), (0x0A, vec![i; 100]));
    }
    let req = json!({"type":"req","id":"c1","method":"connect",
        "params": cli_params(&gw.token(), &["operator.read"])});
    polite.send_text(&req.to_string()).await;
    let hello = polite.recv_json(SECS5).await.expect("hello-ok");
    assert_eq!(hello["ok"], true, "{hello}");
    let mut closed = 0;
    for f in floods {
        if f.await.unwrap() {
            closed += 1;
        }
    }
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("RSS: start {base} KiB, peak {peak} KiB");
    // A pre-auth peer may have a few KiB of pongs queued; 32 of them must not pin more
    // than a few MiB beyond the start-up footprint, at the peak or afterwards.
    assert!(
        peak < base + 32 * 1024,
        "RSS peaked at {peak} KiB from {base} KiB"
    );
    assert_eq!(closed, 32, "every flooding socket is closed by the gateway");
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
}

/// Whether some process still owns the gateway's end of the TCP connection to `peer_port`
/// (an entry in /proc/net/tcp with a non-zero inode; orphaned or gone otherwise).
fn server_end_owned(gw_port: u16, peer_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 9 && port(f[1]) == Some(gw_port) && port(f[2]) == Some(peer_port) && f[9] != "0"
    })
}

#[tokio::test]
async fn t31_non_reading_slow_consumer_is_released() {
    // An authenticated peer that never reads is closed as a slow consumer; its queued output
    // and socket must not stay pinned after that (the writer used to wait on it forever).
    // The bound is 1 MiB and the requests are paced, so the queue overflows only once the
    // kernel buffers are full and the writer is stuck.
    let gw = start_env(&[("CLAWGATE_MAX_BUFFERED_BYTES", "1048576")]);
    let mut w = Wire::open(gw.addr).await;
    w.handshake(&gw.token()).await;
    let peer_port = w.tcp.local_addr().unwrap().port();
    assert!(server_end_owned(gw.port(), peer_port));
    let req = json!({"type":"req","id":"p","method":"system-presence"}).to_string();
    let frame = Wire::encode(0x81, req.as_bytes(), Some([5, 6, 7, 8]));
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 16)
        .collect();
    // Pipeline until the gateway stops reading us (or drops us), never reading a reply.
    for _ in 0..40_000 {
        match tokio::time::timeout(Duration::from_secs(2), w.send_raw(&batch)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
        // Paced, so the writer keeps up until the kernel buffers are full.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server_end_owned(gw.port(), peer_port) {
        assert!(
            Instant::now() < deadline,
            "the gateway still holds the socket of a peer it closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    assert_eq!(ws.call("health", json!({})).await["ok"], true);
    drop(w);
}

// ------------------------------------------------------ item 5: pre-auth capacity (T29/T30)

#[tokio::test]
async fn t30_burst_of_200_local_connects_all_succeed() {
    let gw = start_env(&[]);
    let token = gw.token();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let addr = gw.addr;
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = match RawWs::connect_with(addr, &[]).await {
                Ok(ws) => ws,
                Err(status) => return Err(format!("upgrade refused: {status}")),
            };
            ws.challenge().await;
            let res = ws.connect_req(cli_params(&token, &["operator.read"])).await;
            if res["ok"] != true {
                return Err(format!("connect refused: {res}"));
            }
            let h = ws.call("health", json!({})).await;
            if h["ok"] != true {
                return Err(format!("health failed: {h}"));
            }
            Ok(ws)
        }));
    }
    let mut failures = Vec::new();
    let mut open = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(ws) => open.push(ws),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}

#[tokio::test]
async fn t29_idle_preauth_flood_does_not_lock_out_the_cli() {
    // Long enough that the normal deadline plays no part until the very end.
    let gw = start_env(&[("CLAWGATE_HANDSHAKE_TIMEOUT_MS", "12000")]);
    let started = Instant::now();
    // 320 idle upgrades from 8 loopback addresses that never send connect.
    let mut idle = Vec::new();
    let mut refused = 0;
    for i in 0..320u32 {
        let src: IpAddr = format!("127.0.2.{}", i % 8 + 1).parse().unwrap();
        match Wire::open_from(gw.addr, src).await {
            Upgrade::Open(w) => idle.push(w),
            Upgrade::Status(503) => refused += 1,
            Upgrade::Status(s) => panic!("unexpected status {s}"),
        }
    }
    assert!(idle.len() >= 256, "only {} idle sockets opened", idle.len());
    // The local CLI, from the address the attack did not use, and a fresh raw client from
    // one the attack did use, both connect promptly.
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking({
        let mut cmd = gw.cli(bin());
        move || cmd.args(["health", "--json"]).output().expect("run cli")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "CLI failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match Wire::open_from(gw.addr, "127.0.2.1".parse().unwrap()).await {
        Upgrade::Open(mut w) => w.handshake(&gw.token()).await,
        Upgrade::Status(s) => panic!("fresh client refused with {s}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "connecting took {:?}",
        t0.elapsed()
    );
    // Every slowloris socket is closed by the gateway: evicted under pressure (1013) or at
    // the handshake deadline (1008).
    let mut open = 0;
    let mut evicted = 0;
    for mut w in idle {
        let left = (started + Duration::from_secs(25)).saturating_duration_since(Instant::now());
        let code = w.expect_close(left.max(Duration::from_millis(1))).await;
        if code == 1013 {
            evicted += 1;
        }
        if code == 1006 && started.elapsed() >= Duration::from_secs(25) {
            open += 1;
        }
    }
    assert_eq!(open, 0, "slowloris sockets still open ({refused} refused)");
    assert!(evicted > 0, "no idle handshake was evicted");
}

// ---------------------------------------------------------- review: head-of-line blocking

#[tokio::test]
async fn i7_hol_slow_request_does_not_block_others_on_the_connection() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Hang { ms: 20_000 });
    let config = format!(
        "models:\n  providers:\n    fake:\n      api: openai-completions\n      baseUrl: {}\n      apiKey: sk-x\n      models: [fake-model]\n      maxRetries: 0\n\
agents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    );
    let (mut ws, _) = connect_cli(
        gw.addr,
        &gw.token(),
        &["operator.read", "operator.write", "operator.admin"],
    )
    .await;
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": "hol", "message": "hang", "idempotencyKey": "run-hol"}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(fake.wait_for_requests(1, SECS5).await, "run started");
    // A wait that will not finish soon, then a health on the same socket.
    ws.send_json(&json!({"type":"req","id":"w","method":"agent.wait",
        "params": {"runId": "run-hol", "timeoutMs": 15000}}))
        .await;
    let t0 = Instant::now();
    ws.send_json(&json!({"type":"req","id":"h","method":"health"}))
        .await;
    let h = ws
        .recv_until(Duration::from_secs(10), |v| v["type"] == "res")
        .await;
    assert_eq!(h["id"], "h", "health answered first: {h}");
    assert_eq!(h["ok"], true);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Pings are answered while the wait is pending.
    futures_util::SinkExt::send(
        &mut ws.ws,
        tokio_tungstenite::tungstenite::Message::Ping(b"p".to_vec().into()),
    )
    .await
    .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match futures_util::StreamExt::next(&mut ws.ws).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Pong(p))) => return p.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("pong while agent.wait is pending");
    assert_eq!(pong, b"p");
    // Aborting the run releases the wait, whose reply carries its own id.
    let mut other = connect_cli(gw.addr, &gw.token(), &["operator.write"])
        .await
        .0;
    let a = other
        .call(
            "chat.abort",
            json!({"sessionKey": "hol", "runId": "run-hol"}),
        )
        .await;
    assert_eq!(a["ok"], true, "{a}");
    let w = ws
        .recv_until(Duration::from_secs(10), |v| v["id"] == "w")
        .await;
    assert_eq!(w["ok"], true, "{w}");
}

#[tokio::test]
async fn i7_hol_in_flight_requests_are_bounded_per_connection() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Hang { ms: 20_000 });
    let config = format!(
        "models:\n  providers:\n    fake:\n      api: openai-completions\n      baseUrl: {}\n      apiKey: sk-x\n      models: [fake-model]\n      maxRetries: 0\n\
agents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    );
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read", "operator.write"]).await;
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": "cap", "message": "hang", "idempotencyKey": "run-cap"}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(fake.wait_for_requests(1, SECS5).await, "run started");
    let wait = |i: usize| {
        json!({"type":"req","id": format!("w{i}"),"method":"agent.wait",
            "params": {"runId": "run-cap", "timeoutMs": 3000}})
    };
    // 31 pending waits leave room: health is answered before any of them.
    for i in 0..31 {
        ws.send_json(&wait(i)).await;
    }
    ws.send_json(&json!({"type":"req","id":"h1","method":"health"}))
        .await;
    let first = ws
        .recv_until(Duration::from_secs(10), |v| v["type"] == "res")
        .await;
    assert_eq!(first["id"], "h1", "{first}");
    // The 32nd fills the connection: the next request waits until one of them ends.
    ws.send_json(&wait(31)).await;
    ws.send_json(&json!({"type":"req","id":"h2","method":"health"}))
        .await;
    let next = ws
        .recv_until(Duration::from_secs(10), |v| v["type"] == "res")
        .await;
    assert!(
        next["id"].as_str().unwrap_or("").starts_with('w'),
        "h2 overtook the in-flight cap: {next}"
    );
    ws.recv_until(Duration::from_secs(10), |v| v["id"] == "h2")
        .await;
}
