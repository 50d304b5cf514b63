//! The embedded UI in Debian's headless Chromium (puppeteer-core) against the real binary,
//! the fake LLM and the fake Telegram Bot API: chat with a streamed reply, history after a
//! reload on the stored device token, a Telegram pairing approved from the UI, the status
//! view, a phone-width layout, the error states (no token, wrong token), and a page from
//! another origin that must not get a WebSocket (CSWSH). Scripts: tests/browser/*.mjs.
//!
//! Screenshots go to $CLAWGATE_SCREENSHOTS when set (docs/screenshots/ is made this way).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate_testkit::fake_llm::{split_words, Step};
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::RawWs;
use clawgate_testkit::{browser, FakeLlm, FakeTelegram, GatewayProcess};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
const REPLY: &str = "Streaming reply from the fake model, one word at a time.";
const SLOW: &str =
    "This reply is slow and will be stopped long before it ends, word after word after word.";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(name)
}

async fn run(name: &str, env: Vec<(String, String)>) -> Value {
    let path = script(name);
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        browser::run_script(&path, &env, SCRIPT_TIMEOUT)
    })
    .await
    .unwrap()
}

fn start(llm: &FakeLlm, tg: &FakeTelegram) -> GatewayProcess {
    let config = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    dmPolicy: pairing\n",
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

/// A TUI-like client behind a proxy (so not local: the gateway wants its device approved).
struct RemoteDevice {
    key: SigningKey,
}

impl RemoteDevice {
    fn new() -> RemoteDevice {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        RemoteDevice {
            key: SigningKey::from_bytes(&seed),
        }
    }

    fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().as_bytes()))
    }

    /// Connects with the shared token and a v3 signature; returns the connect reply.
    async fn connect(&self, gw: &GatewayProcess) -> Value {
        let mut ws = RawWs::connect_with(gw.addr, &[("x-forwarded-for", "203.0.113.9")])
            .await
            .expect("upgrade");
        let (nonce, ts) = ws.challenge().await;
        let scopes = ["operator.read", "operator.write"];
        let token = gw.token();
        let payload = format!(
            "v3|{}|openclaw-tui|ui|operator|{}|{ts}|{token}|{nonce}|linux|linux",
            self.id(),
            scopes.join(",")
        );
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes());
        ws.connect_req(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "displayName": "phone-tui", "version": "2026.9.6",
                       "platform": "linux", "deviceFamily": "Linux", "mode": "ui"},
            "role": "operator", "scopes": scopes, "auth": {"token": token},
            "device": {"id": self.id(), "publicKey": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
                       "signature": sig, "signedAt": ts, "nonce": nonce},
        }))
        .await
    }
}

/// Console lines that are failures on the gateway's own pages.
fn console_problems(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| {
            l.starts_with("error:")
                || l.starts_with("pageerror:")
                || l.contains("Content Security Policy")
        })
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_ui_chats_reloads_on_the_device_token_and_approves_a_telegram_sender() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg);
    // The browser's chat turn streams slowly enough to be seen in pieces.
    llm.push(Step::Text {
        chunks: split_words(REPLY),
        delay_ms: 150,
    });
    // The second turn (in a new session) is slow and gets stopped from the UI.
    llm.push(Step::Text {
        chunks: split_words(SLOW),
        delay_ms: 1000,
    });
    // A stranger writes to the bot first: pending pairing, no agent run.
    tg.inject_private_text(777, "hi there");
    let sent = tg.wait_for_sent(1, T).await;
    assert!(sent[0].text.contains("Pairing code: "), "{}", sent[0].text);
    assert_eq!(llm.request_count(), 0);
    // A device connecting through a proxy waits for approval.
    let remote = RemoteDevice::new();
    let res = remote.connect(&gw).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");

    let token = gw.token();
    let res = run(
        "embedded_chat.mjs",
        vec![
            (
                "CLAWGATE_URL".into(),
                format!("http://127.0.0.1:{}/", gw.addr.port()),
            ),
            ("CLAWGATE_TOKEN".into(), token.clone()),
            ("CLAWGATE_REPLY".into(), REPLY.into()),
            ("CLAWGATE_SENDER".into(), "777".into()),
            ("CLAWGATE_DEVICE".into(), remote.id()),
        ],
    )
    .await;

    // The page connected with the fragment token, which left the address bar and the page.
    assert_eq!(
        res["addressAfterLoad"],
        format!("http://127.0.0.1:{}/", gw.addr.port())
    );
    assert_eq!(res["tokenInPage"], false, "{res}");
    assert_eq!(res["tokenInStorage"], false, "{res}");
    assert_eq!(res["firstAuthMethod"], "token", "{res}");
    // Streaming: a proper prefix of the reply was on screen before the final text.
    let partial = res["partial"].as_str().unwrap();
    assert!(
        !partial.is_empty() && partial.len() < REPLY.len() && REPLY.starts_with(partial),
        "partial {partial:?}"
    );
    assert_eq!(res["final"], REPLY);
    // After the reload: no token in the URL, the stored device token signed in, history shown.
    assert_eq!(res["reloadAuthMethod"], "device-token", "{res}");
    assert_eq!(
        res["historyAfterReload"],
        serde_json::json!(["hello from the browser", REPLY])
    );
    // Status view.
    assert!(res["status"].as_str().unwrap().contains("healthy"), "{res}");
    assert!(
        res["channels"].as_str().unwrap().contains("Telegram"),
        "{res}"
    );
    assert!(
        res["clients"]
            .as_str()
            .unwrap()
            .contains("openclaw-control-ui"),
        "{res}"
    );
    // Phone width: nothing wider than the screen.
    assert!(
        res["phoneOverflow"].as_i64().unwrap() <= 0,
        "horizontal overflow at phone width: {res}"
    );
    // Logs view: lines arrive, the token is not among them.
    assert_eq!(res["tokenInLogs"], false, "{res}");
    // New session + Stop: the slow run ends as aborted with part of its text; back in the
    // main session the picker shows its history again.
    assert!(
        res["newKey"].as_str().unwrap().starts_with("agent:main:"),
        "{res}"
    );
    let aborted = res["aborted"].as_str().unwrap();
    assert!(
        aborted.contains("Stopped.") && aborted.contains("This"),
        "{aborted}"
    );
    assert!(
        !aborted.contains("word after word after word."),
        "{aborted}"
    );
    assert_eq!(
        res["mainAgain"],
        serde_json::json!(["hello from the browser", REPLY])
    );
    assert_eq!(res["csp"], serde_json::json!([]), "CSP violations: {res}");
    assert_eq!(console_problems(&res["console"]), Vec::<String>::new());

    // The device approved from the UI now connects.
    let res = remote.connect(&gw).await;
    assert_eq!(res["ok"], true, "after approval in the UI: {res}");

    // The approved sender now gets an agent reply.
    // It was told so (the UI approves with notify), then gets an agent reply.
    let sent = tg.wait_for_sent(2, T).await;
    assert_eq!(sent[1].chat_id, 777);
    assert_eq!(
        sent[1].text,
        "✅ Access approved. Send a message to start chatting."
    );
    tg.inject_private_text(777, "now?");
    let sent = tg.wait_for_sent(3, T).await;
    assert_eq!(sent[2].chat_id, 777);
    assert_eq!(sent[2].text, "Hello from the fake LLM!");
    assert_eq!(llm.request_count(), 3);

    // The token never reached the gateway's log.
    assert!(
        !gw.stderr_text().contains(&token),
        "token in the gateway log"
    );
}

/// A one-page HTTP server on another loopback port: the attacker's page.
fn serve_attacker_page(html: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let (status, body) = if buf.starts_with(b"GET / ") {
                ("200 OK", html.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_cannot_open_the_websocket_and_bad_tokens_are_explained() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let gw = start(&llm, &tg);
    let port = gw.addr.port();
    let page = format!(
        "<!doctype html><title>elsewhere</title><p id=r>pending</p><script>\n\
         const ws = new WebSocket('ws://127.0.0.1:{port}/');\n\
         const r = document.getElementById('r');\n\
         ws.onopen = () => {{ r.textContent = 'open'; }};\n\
         ws.onerror = () => {{ if (r.textContent === 'pending') r.textContent = 'error'; }};\n\
         ws.onclose = (e) => {{ r.dataset.close = String(e.code); }};\n\
         </script>"
    );
    let evil = serve_attacker_page(page);
    let res = run(
        "embedded_cswsh.mjs",
        vec![
            ("CLAWGATE_URL".into(), format!("http://127.0.0.1:{port}/")),
            (
                "CLAWGATE_EVIL_URL".into(),
                format!("http://127.0.0.1:{evil}/"),
            ),
            ("CLAWGATE_TOKEN".into(), gw.token()),
            ("CLAWGATE_BIN".into(), bin().display().to_string()),
            ("CLAWGATE_HOME".into(), gw.home_path().display().to_string()),
            ("CLAWGATE_GATEWAY_URL".into(), gw.ws_url()),
        ],
    )
    .await;
    // The other origin's socket failed; the same code from the gateway's own page opens.
    assert_eq!(res["evil"], "error", "{res}");
    assert_eq!(res["evilClose"], "1006", "{res}");
    assert_eq!(res["sameOrigin"], "open", "{res}");
    // The refusal is the gateway's Origin check.
    let log = gw.stderr_text();
    assert!(
        log.contains("browser origin refused") && log.contains(&format!("127.0.0.1:{evil}")),
        "{log}"
    );
    // No token: the page asks for one. A wrong one: a clear message, the form again.
    assert!(
        res["noTokenPrompt"]
            .as_str()
            .unwrap()
            .contains("Connect to this gateway"),
        "{res}"
    );
    assert!(
        res["wrongTokenError"]
            .as_str()
            .unwrap()
            .contains("refused the token"),
        "{res}"
    );
    // Device removed while connected: closed, reconnect attempted, the device token refused,
    // a clear message and the prompt; the token pairs the browser again.
    let history: Vec<&str> = res["connHistory"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        history
            .iter()
            .any(|h| h.starts_with("closed: Disconnected")),
        "{history:?}"
    );
    assert!(
        res["removedMessage"]
            .as_str()
            .unwrap()
            .contains("device token is no longer accepted"),
        "{res}"
    );
    assert_eq!(res["pairedAgain"], 1, "{res}");
    // Without WebCrypto Ed25519 the token-only fallback is tried and explained.
    assert!(
        res["noDeviceError"]
            .as_str()
            .unwrap()
            .contains("cannot create a device identity"),
        "{res}"
    );
    assert_eq!(res["csp"], serde_json::json!([]), "CSP violations: {res}");
    assert_eq!(console_problems(&res["console"]), Vec::<String>::new());
    assert_eq!(llm.request_count(), 0);
}
