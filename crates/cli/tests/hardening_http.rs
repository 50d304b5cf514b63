//! Issue 7, the HTTP side, against the real binary over real sockets: webhook secrets checked
//! before the body and bodies read under a deadline, HTTP connection caps, the exposure
//! guardrail's strength estimate, the failed-auth limiter's buckets and global budget, and
//! the exact `Host` allowlist.

use clawgate_testkit::gateway::{run_to_exit, write_config, Options};
use clawgate_testkit::ws::{cli_params, connect_cli};
use clawgate_testkit::{wait_for, FakeTelegram, GatewayProcess};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const SECS5: Duration = Duration::from_secs(5);
const HOOK_SECRET: &str = "hook-secret_0123456789";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn start_with(config: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config.to_string()),
            ..Options::default()
        },
    )
}

/// 32 random bytes, base64url: what `credentials/gateway-token` holds (which, like this,
/// draws again the rare token without a digit).
fn random_token() -> String {
    use base64::Engine;
    loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        if t.chars().any(|c| c.is_ascii_digit()) {
            return t;
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection to `dst` from the local address `src` (any port).
async fn tcp_from(src: IpAddr, dst: SocketAddr) -> TcpStream {
    let sock = if src.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .unwrap();
    sock.bind(SocketAddr::new(src, 0)).unwrap();
    sock.connect(dst).await.unwrap()
}

/// Reads until the server closes (or `timeout`); returns (status, text). Status 0 when
/// nothing that looks like a response arrived.
async fn read_reply(s: &mut TcpStream, timeout: Duration) -> (u16, String) {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// One raw HTTP/1.1 exchange from `src` to `dst`.
async fn http_from(src: IpAddr, dst: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = tcp_from(src, dst).await;
    s.write_all(raw).await.unwrap();
    read_reply(&mut s, SECS5).await
}

fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// WebSocket `connect` from `src` to `dst` with the given token and extra upgrade headers;
/// returns the `res` frame.
async fn ws_connect_from(
    src: IpAddr,
    dst: SocketAddr,
    token: &str,
    headers: &[(&str, &str)],
) -> Value {
    let tcp = tcp_from(src, dst).await;
    let mut req = format!("ws://{dst}/").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("upgrade");
    let challenge = next_json(&mut ws).await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let frame = json!({"type": "req", "id": "c1", "method": "connect",
                       "params": cli_params(token, &["operator.read"])});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let v = next_json(&mut ws).await;
        if v["type"] == "res" && v["id"] == "c1" {
            return v;
        }
    }
}

async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    panic!("socket closed before the expected frame")
                }
                Some(Ok(_)) => continue,
            }
        }
    };
    tokio::time::timeout(SECS5, fut)
        .await
        .expect("frame in time")
}

fn rate_limited(res: &Value) -> bool {
    res["ok"] == false && res["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
}

// ---------------------------------------------------------------------------------------
// Item 8: the Host allowlist matches exact loopback literals only.

#[tokio::test]
async fn t18_host_lookalikes_of_loopback_get_421() {
    let gw = start_with("gateway: {}\n");
    let port = gw.port();
    let lo = ip("127.0.0.1");
    for host in [
        "127.0.0.1.evil.com".to_string(),
        format!("127.0.0.1.evil.com:{port}"),
        "127.evil.com".to_string(),
        "127.0.0.1.nip.io".to_string(),
        "localhost.evil.com".to_string(),
        format!("[::1].evil.com:{port}"),
        "127.1".to_string(),
        format!("127.0.0.1:{port}x"),
    ] {
        let (status, body) = http_from(lo, gw.addr, &get("/healthz", &host)).await;
        assert_eq!(status, 421, "Host {host}: {body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.2:{port}"),
        format!("127.255.255.254:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = http_from(lo, gw.addr, &get("/healthz", &host)).await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
    // The WebSocket upgrade is guarded the same way.
    let upgrade = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1.evil.com:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (status, _) = http_from(lo, gw.addr, upgrade.as_bytes()).await;
    assert_eq!(status, 421);
}

#[tokio::test]
async fn i7_8_models_list_calls_only_real_loopback_urls_local() {
    let gw = start_with(
        "models:\n  providers:\n\
         \x20   evil:\n      baseUrl: http://127.0.0.1.evil.com/v1\n      models: [m]\n\
         \x20   evil2:\n      baseUrl: http://127.evil.com:8080/v1\n      models: [m]\n\
         \x20   lan:\n      baseUrl: http://192.168.1.5:11434/v1\n      models: [m]\n\
         \x20   local:\n      baseUrl: http://127.0.0.1:11434/v1\n      models: [m]\n\
         \x20   named:\n      baseUrl: http://localhost:1234/v1\n      models: [m]\n\
         \x20   v6:\n      baseUrl: http://[::1]:8080/v1\n      models: [m]\n",
    );
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let res = ws.call("models.list", json!({})).await;
    let models = res["payload"]["models"].as_array().expect("models").clone();
    let local = |provider: &str| {
        models
            .iter()
            .find(|m| m["provider"] == provider)
            .unwrap_or_else(|| panic!("{provider} missing: {res}"))["local"]
            .clone()
    };
    for p in ["evil", "evil2", "lan"] {
        assert_eq!(local(p), false, "{p}");
    }
    for p in ["local", "named", "v6"] {
        assert_eq!(local(p), true, "{p}");
    }
}

// ---------------------------------------------------------------------------------------
// Item 6: weak secrets on a non-loopback bind.

fn home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// No socket of any address family listens on `port` (other tests' client sockets may
/// use it as their ephemeral port; only listeners count).
fn port_is_free(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().all(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .all(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                !(cols.len() > 3 && cols[1].ends_with(&suffix) && cols[3] == "0A")
            })
    })
}

#[test]
fn t04_weak_secrets_on_a_wildcard_bind_exit_78_before_any_socket() {
    let weak = [
        ("token", "password".repeat(8)),
        ("token", "0123456789abcdef".repeat(4)),
        (
            "token",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
        ),
        ("token", "Tr0ub4dor&3".repeat(6)),
        (
            "token",
            "qwertyuiopasdfghjklzxcvbnm1234567890QWERTYUIOPASDFGHJKLZXCVBNM".into(),
        ),
        ("password", "password".repeat(8)),
    ];
    for (key, secret) in weak {
        let h = home();
        let port = free_port();
        let mode = if key == "password" {
            "password"
        } else {
            "token"
        };
        write_config(
            h.path(),
            &format!(
                "gateway:\n  host: 0.0.0.0\n  auth:\n    mode: {mode}\n    {key}: \"{secret}\"\n"
            ),
        );
        let (status, out, err) = run_to_exit(
            bin(),
            h.path(),
            &Options::default(),
            &port.to_string(),
            Duration::from_secs(10),
        );
        assert_eq!(status.code(), Some(78), "{secret}: it started: {out}{err}");
        assert!(!out.contains("listening"), "{out}");
        assert!(
            err.contains(&format!("gateway.auth.{key} is too weak")),
            "{secret}: {err}"
        );
        assert!(err.contains("256-bit token"), "the recommended path: {err}");
        assert!(!err.contains(&secret), "the secret itself is never printed");
        assert!(port_is_free(port), "a socket was opened");
    }
}

#[tokio::test]
async fn t04_a_generated_like_random_token_starts_on_a_wildcard_bind() {
    for token in [random_token(), {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        hex::encode(b)
    }] {
        let gw = start_with(&format!(
            "gateway:\n  host: 0.0.0.0\n  auth:\n    token: \"{token}\"\n"
        ));
        assert!(gw.addr.ip().is_unspecified(), "{}", gw.addr);
        let lo: SocketAddr = format!("127.0.0.1:{}", gw.port()).parse().unwrap();
        let (mut ws, _) = connect_cli(lo, &token, &["operator.read"]).await;
        assert_eq!(ws.call("health", json!({})).await["ok"], true);
    }
}

// ---------------------------------------------------------------------------------------
// Item 7: the failed-auth limiter cannot be evaded by rotating addresses.

const LIMIT_3: &str = "rateLimit: { maxAttempts: 3, windowMs: 60000, lockoutMs: 60000 }";

#[tokio::test]
async fn t10_rotating_loopback_sources_share_one_lockout() {
    let gw = start_with(&format!("gateway:\n  auth:\n    {LIMIT_3}\n"));
    for i in 2..5 {
        let res = ws_connect_from(ip(&format!("127.0.0.{i}")), gw.addr, "wrong", &[]).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "{res}"
        );
    }
    // Every loopback source is the same client machine: locked out, even with the right token.
    for src in ["127.0.0.5", "127.0.0.1", "127.1.2.3"] {
        let res = ws_connect_from(ip(src), gw.addr, &gw.token(), &[]).await;
        assert!(rate_limited(&res), "{src}: {res}");
        assert!(res["error"]["retryAfterMs"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn t10_ipv6_and_ipv4_loopback_share_one_lockout() {
    let token = random_token();
    // `::` is dual-stack: 127.0.0.1 arrives as ::ffff:127.0.0.1, ::1 as itself.
    let gw = start_with(&format!(
        "gateway:\n  host: \"::\"\n  auth:\n    token: \"{token}\"\n    {LIMIT_3}\n"
    ));
    let v6: SocketAddr = format!("[::1]:{}", gw.port()).parse().unwrap();
    let v4: SocketAddr = format!("127.0.0.1:{}", gw.port()).parse().unwrap();
    for _ in 0..3 {
        let res = ws_connect_from(ip("::1"), v6, "wrong", &[]).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "{res}"
        );
    }
    let res = ws_connect_from(ip("127.0.0.1"), v4, &token, &[]).await;
    assert!(rate_limited(&res), "{res}");
    let res = ws_connect_from(ip("::1"), v6, &token, &[]).await;
    assert!(rate_limited(&res), "{res}");
}

#[tokio::test]
async fn i7_7_rotating_forwarded_for_trips_the_global_budget() {
    // Default limits: 10 failures per client, 100 across all remote clients.
    let gw = start_with("gateway:\n  trustedProxies: [127.0.0.1]\n");
    let lo = ip("127.0.0.1");
    // A different forwarded client each time: no single bucket fills up.
    for i in 1..=100 {
        let xff = format!("203.0.113.{i}");
        let res = ws_connect_from(lo, gw.addr, "wrong", &[("x-forwarded-for", &xff)]).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "{i}: {res}"
        );
    }
    // The global budget is spent: a fresh forwarded address is refused, right token or not.
    let res = ws_connect_from(
        lo,
        gw.addr,
        &gw.token(),
        &[("x-forwarded-for", "198.51.100.77")],
    )
    .await;
    assert!(rate_limited(&res), "{res}");
    // Direct loopback clients (the local CLI) are exempt from the global budget.
    let res = ws_connect_from(lo, gw.addr, &gw.token(), &[]).await;
    assert_eq!(res["ok"], true, "{res}");
}

#[tokio::test]
async fn i7_7_global_budget_is_configurable() {
    let gw = start_with(
        "gateway:\n  trustedProxies: [127.0.0.1]\n  auth:\n    \
         rateLimit: { maxAttempts: 3, windowMs: 60000, lockoutMs: 60000, globalMaxAttempts: 5 }\n",
    );
    let lo = ip("127.0.0.1");
    for i in 1..=5 {
        let xff = format!("203.0.113.{i}");
        let res = ws_connect_from(lo, gw.addr, "wrong", &[("x-forwarded-for", &xff)]).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH",
            "{res}"
        );
    }
    let res = ws_connect_from(
        lo,
        gw.addr,
        &gw.token(),
        &[("x-forwarded-for", "2001:db8::7")],
    )
    .await;
    assert!(rate_limited(&res), "{res}");
}

// ---------------------------------------------------------------------------------------
// Item 2: webhooks.

async fn start_webhook(tg: &FakeTelegram, gateway_extra: &str) -> GatewayProcess {
    let gateway = if gateway_extra.is_empty() {
        "gateway: {}\n".to_string()
    } else {
        format!("gateway:\n  auth:\n    {gateway_extra}\n")
    };
    start_with(&format!(
        "{gateway}\
         channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    mode: webhook\n    webhookSecret: \"{HOOK_SECRET}\"\n    allowFrom: [\"42\"]\n",
        tg.token(),
        tg.api_root()
    ))
}

fn webhook_head(port: u16, secret: Option<&str>, content_length: usize) -> String {
    let secret = secret
        .map(|s| format!("X-Telegram-Bot-Api-Secret-Token: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /webhook/telegram HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{secret}Content-Type: application/json\r\n\
         Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    )
}

fn update_body(update_id: i64) -> String {
    json!({"update_id": update_id, "message": {"message_id": 11, "date": 1767225600,
        "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "chat": {"id": 42, "type": "private"}, "text": "hi"}})
    .to_string()
}

#[tokio::test]
async fn t43_webhook_secret_is_checked_before_the_body_is_read() {
    let tg = FakeTelegram::start().await;
    let gw = start_webhook(&tg, "").await;
    for secret in [Some("wrong-secret"), None] {
        // Headers announce a 1 MB body that never comes: the answer must not wait for it.
        let mut s = tcp_from(ip("127.0.0.1"), gw.addr).await;
        s.write_all(webhook_head(gw.port(), secret, 1_000_000).as_bytes())
            .await
            .unwrap();
        let started = Instant::now();
        let (status, text) = read_reply(&mut s, Duration::from_secs(3)).await;
        assert_eq!(status, 401, "{secret:?}: {text}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // `Expect: 100-continue` with a wrong secret: refused without inviting the body.
    let mut s = tcp_from(ip("127.0.0.1"), gw.addr).await;
    let head = webhook_head(gw.port(), Some("nope"), 1_000_000)
        .replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = read_reply(&mut s, Duration::from_secs(3)).await;
    assert_eq!(status, 401, "{text}");
    // The right secret with a real body is still accepted.
    let body = update_body(9001);
    let mut raw = webhook_head(gw.port(), Some(HOOK_SECRET), body.len()).into_bytes();
    raw.extend_from_slice(body.as_bytes());
    let (status, text) = http_from(ip("127.0.0.1"), gw.addr, &raw).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn t43_webhook_slow_body_gets_408_at_the_read_deadline() {
    let tg = FakeTelegram::start().await;
    let gw = start_webhook(&tg, "").await;
    let s = tcp_from(ip("127.0.0.1"), gw.addr).await;
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(webhook_head(gw.port(), Some(HOOK_SECRET), 400).as_bytes())
        .await
        .unwrap();
    // 10 bytes a second: 40 s for the whole body.
    let drip = tokio::spawn(async move {
        loop {
            if wr.write_all(b"          ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(12), rd.read_to_end(&mut buf)).await;
    drip.abort();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "no 408 in time: {text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    // A body over the cap is refused with 413 (announced, or streamed in chunks).
    let (status, _) = http_from(
        ip("127.0.0.1"),
        gw.addr,
        webhook_head(gw.port(), Some(HOOK_SECRET), 2 * 1024 * 1024).as_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    let mut s = tcp_from(ip("127.0.0.1"), gw.addr).await;
    let head = format!(
        "POST /webhook/telegram HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Telegram-Bot-Api-Secret-Token: {HOOK_SECRET}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        gw.port()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    let (mut rd, mut wr) = s.into_split();
    let feed = tokio::spawn(async move {
        for _ in 0..64 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(SECS5, rd.read_to_end(&mut buf)).await;
    feed.abort();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
}

#[tokio::test]
async fn t43_webhook_secret_failures_are_throttled_429_and_shared_with_logins() {
    let tg = FakeTelegram::start().await;
    let gw = start_webhook(&tg, LIMIT_3).await;
    // Three wrong secrets from three loopback sources.
    for i in 1..=3 {
        let src = ip(&format!("127.0.0.{i}"));
        let (status, text) = http_from(
            src,
            gw.addr,
            webhook_head(gw.port(), Some("wrong"), 0).as_bytes(),
        )
        .await;
        assert_eq!(status, 401, "{text}");
    }
    let (status, text) = http_from(
        ip("127.0.0.9"),
        gw.addr,
        webhook_head(gw.port(), Some("wrong"), 0).as_bytes(),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    let retry: u64 = header(&text, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 60, "{retry}");
    // No oracle: the right secret is refused too while the lockout lasts.
    let body = update_body(9002);
    let mut raw = webhook_head(gw.port(), Some(HOOK_SECRET), body.len()).into_bytes();
    raw.extend_from_slice(body.as_bytes());
    let (status, _) = http_from(ip("127.0.0.1"), gw.addr, &raw).await;
    assert_eq!(status, 429);
    // One limiter: the WebSocket login from the same machine is locked out as well.
    let res = ws_connect_from(ip("127.0.0.1"), gw.addr, &gw.token(), &[]).await;
    assert!(rate_limited(&res), "{res}");
}

// ---------------------------------------------------------------------------------------
// Item 2: HTTP connection caps and the header deadline.

/// Holds a connection in the request head (a partial request line).
async fn idle_conn(src: IpAddr, dst: SocketAddr) -> TcpStream {
    let mut s = tcp_from(src, dst).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    s
}

/// Whether a fresh connection is refused at once with 503 (read before sending anything).
async fn refused_busy(src: IpAddr, dst: SocketAddr) -> bool {
    let mut s = tcp_from(src, dst).await;
    let (status, _) = read_reply(&mut s, Duration::from_secs(2)).await;
    status == 503
}

#[tokio::test]
async fn i7_2_http_connections_are_capped_in_total() {
    let gw = start_with("gateway:\n  maxHttpConnections: 8\n");
    let lo = ip("127.0.0.1");
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(idle_conn(ip(&format!("127.0.0.{}", i + 1)), gw.addr).await);
    }
    // Let the gateway accept them all before counting on the cap.
    let host = format!("127.0.0.1:{}", gw.port());
    wait_for("the cap to be reached", SECS5, || async {
        refused_busy(lo, gw.addr).await.then_some(())
    })
    .await;
    drop(held);
    // Slots come back when the connections close.
    wait_for("a slot to come back", SECS5, || {
        let req = get("/healthz", &host);
        async move { (http_from(lo, gw.addr, &req).await.0 == 200).then_some(()) }
    })
    .await;
}

/// The "remote" peer of the per-address tests: an address that exists only on `lo` of a
/// private network namespace (see [`in_netns`]), so no traffic can leave the machine.
const REMOTE_V4: &str = "198.18.0.2";

/// Runs test `name` of this binary again inside a fresh network namespace (`unshare -rn`)
/// whose `lo` is up and also carries [`REMOTE_V4`]. Returns true in that inner run (the
/// caller then runs its body); in the outer run it waits for the inner one and asserts that
/// it passed, then returns false.
fn in_netns(name: &str) -> bool {
    if std::env::var_os("CLAWGATE_TEST_IN_NETNS").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "ip link set lo up && ip addr add {REMOTE_V4}/32 dev lo && exec \"$0\" --exact \"$1\" --nocapture"
    );
    let out = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", &script])
        .arg(&exe)
        .arg(name)
        .env("CLAWGATE_TEST_IN_NETNS", "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are needed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in a network namespace failed:\n{text}"
    );
    false
}

#[tokio::test]
async fn i7_2_http_connections_are_capped_per_remote_address_but_not_for_loopback() {
    if !in_netns("i7_2_http_connections_are_capped_per_remote_address_but_not_for_loopback") {
        return;
    }
    let token = random_token();
    // Default cap: 64 open HTTP connections per non-loopback address.
    let gw = start_with(&format!(
        "gateway:\n  host: 0.0.0.0\n  auth:\n    token: \"{token}\"\n"
    ));
    let lan = ip(REMOTE_V4);
    let remote: SocketAddr = SocketAddr::new(lan, gw.port());
    let lo = ip("127.0.0.1");
    let local: SocketAddr = format!("127.0.0.1:{}", gw.port()).parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(idle_conn(lan, remote).await);
    }
    wait_for("the per-address cap", SECS5, || async {
        refused_busy(lan, remote).await.then_some(())
    })
    .await;
    // Loopback is one client machine with many local clients: not held to that cap.
    let mut local_held = Vec::new();
    for _ in 0..80 {
        local_held.push(idle_conn(lo, local).await);
    }
    let host = format!("127.0.0.1:{}", gw.port());
    let (status, body) = http_from(lo, local, &get("/healthz", &host)).await;
    assert_eq!(status, 200, "{body}");
    drop(held);
    wait_for("the remote slots to come back", SECS5, || async {
        let mut s = tcp_from(lan, remote).await;
        s.write_all(&get("/healthz", &host)).await.ok()?;
        (read_reply(&mut s, SECS5).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn i7_2_per_address_cap_is_configurable() {
    if !in_netns("i7_2_per_address_cap_is_configurable") {
        return;
    }
    let token = random_token();
    let gw = start_with(&format!(
        "gateway:\n  host: 0.0.0.0\n  maxHttpConnectionsPerAddress: 3\n  auth:\n    token: \"{token}\"\n"
    ));
    let lan = ip(REMOTE_V4);
    let remote: SocketAddr = SocketAddr::new(lan, gw.port());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(idle_conn(lan, remote).await);
    }
    wait_for("the per-address cap", SECS5, || async {
        refused_busy(lan, remote).await.then_some(())
    })
    .await;
}

#[tokio::test]
async fn t29_slow_headers_are_cut_at_the_header_deadline() {
    let gw = start_with("gateway: {}\n");
    let s = tcp_from(ip("127.0.0.1"), gw.addr).await;
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    drip.abort();
    assert!(closed.is_ok(), "a slow head was never cut off");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Meanwhile (and after) the gateway answers.
    let host = format!("127.0.0.1:{}", gw.port());
    let (status, _) = http_from(ip("127.0.0.1"), gw.addr, &get("/healthz", &host)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn i7_2_a_burst_of_200_local_connections_is_not_refused_by_the_caps() {
    let gw = start_with("gateway: {}\n");
    let host = format!("127.0.0.1:{}", gw.port());
    // All 200 open before any is answered: none is turned away by the HTTP caps.
    let mut socks = Vec::new();
    for i in 0..200u32 {
        let src = ip(&format!("127.0.{}.{}", i / 250, i % 250 + 1));
        socks.push(tcp_from(src, gw.addr).await);
    }
    let mut tasks = Vec::new();
    for mut s in socks {
        let req = get("/healthz", &host);
        tasks.push(tokio::spawn(async move {
            s.write_all(&req).await.unwrap();
            read_reply(&mut s, Duration::from_secs(10)).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}
