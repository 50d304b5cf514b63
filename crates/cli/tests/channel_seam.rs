//! Issue 8 §1: webhook routes are authenticated by their secret, not by `Host` (a reverse
//! proxy forwarding the public name needs no extra key); browser routes keep the Host
//! allowlist under `gateway.allowedHosts`.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeLlm, FakeTelegram, GatewayProcess};
use std::io::{Read, Write};
use std::path::Path;

const SECRET: &str = "hook-secret_0123456789";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// One raw HTTP/1.1 request (so `Host` is exactly what a proxy would send); the status code.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn start(llm: &FakeLlm, tg: &FakeTelegram, gateway_extra: &str) -> GatewayProcess {
    let config = format!(
        "gateway:\n  trustedProxies: [127.0.0.1]\n{gateway_extra}models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    mode: webhook\n    webhookSecret: \"{SECRET}\"\n    allowFrom: [\"42\"]\n",
        llm.openai_base_url(),
        tg.token(),
        tg.api_root()
    );
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    )
}

#[tokio::test]
async fn i8_1_webhook_behind_a_proxy_forwarding_the_public_host_needs_no_extra_key() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "");
    let port = gw.port();
    let update = r#"{"update_id": 7001, "message": {"message_id": 1, "date": 1767225600, "from": {"id": 42, "is_bot": false, "first_name": "Ada"}, "chat": {"id": 42, "type": "private"}, "text": "hi"}}"#;
    let proxy = [
        ("Host", "bot.example.com"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "bot.example.com"),
    ];
    let with_secret: Vec<(&str, &str)> = proxy
        .iter()
        .copied()
        .chain([("X-Telegram-Bot-Api-Secret-Token", SECRET)])
        .collect();
    let p = port;
    let ok = tokio::task::spawn_blocking(move || {
        raw(p, "POST", "/webhook/telegram", &with_secret, update)
    })
    .await
    .unwrap();
    assert_eq!(ok, 200, "a proxied webhook with its secret is accepted");
    let sent = tg
        .wait_for_sent(1, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(sent[0].chat_id, 42);
    // The secret is still the check: without it, 401 (not 421).
    let bad =
        tokio::task::spawn_blocking(move || raw(p, "POST", "/webhook/telegram", &proxy, update))
            .await
            .unwrap();
    assert_eq!(bad, 401);
    // Browser-facing routes keep the Host allowlist.
    let probe = tokio::task::spawn_blocking(move || raw(p, "GET", "/healthz", &proxy, ""))
        .await
        .unwrap();
    assert_eq!(probe, 421);
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn i8_1_allowed_hosts_admits_a_public_name_on_browser_routes() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg, "  allowedHosts: [\"bot.example.com\"]\n");
    let p = gw.port();
    let codes = tokio::task::spawn_blocking(move || {
        (
            raw(p, "GET", "/healthz", &[("Host", "bot.example.com")], ""),
            raw(p, "GET", "/healthz", &[("Host", "BOT.example.com:443")], ""),
            raw(p, "GET", "/healthz", &[("Host", "evil.example.com")], ""),
        )
    })
    .await
    .unwrap();
    assert_eq!(codes, (200, 200, 421));
}
