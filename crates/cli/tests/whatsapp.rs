//! Issue 9: WhatsApp through the Cloud API, end to end with the real binary against the fake
//! Graph API and the fake Meta webhook sender (beyond the contract suite in
//! channel_contract.rs): the verification GET, signatures over Meta's `\u`-escaped bytes,
//! wamid dedupe in batches, the 24-hour window, Graph errors, status webhooks, mark-read +
//! typing, nginx in front, `message send` and `channels status`.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::fake_whatsapp::{Fault, Kind, StatusPlan, Tamper, WINDOW_SECS};
use clawgate_testkit::gateway::Options;
use clawgate_testkit::nginx::start_nginx;
use clawgate_testkit::{wait_for, FakeLlm, FakeWhatsApp, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

// The tests run on a multi-threaded runtime: the CLI calls block their thread while the fake
// Graph API and the fake Meta sender (on the same runtime) keep answering the gateway.
const USER: &str = "16505551234";
const LLM_TEXT: &str = "Hello from the fake LLM!";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn config(llm: &FakeLlm, wa: &FakeWhatsApp, extra: &str) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\nchannels:\n  whatsapp:\n    phoneNumberId: \"{}\"\n    accessToken: \"{}\"\n    appSecret: \"{}\"\n    verifyToken: \"{}\"\n    graphBaseUrl: {}\n{extra}",
        llm.openai_base_url(),
        wa.phone_number_id(),
        wa.token(),
        wa.app_secret(),
        wa.verify_token(),
        wa.graph_base_url(),
    )
}

/// A gateway allowing `+16505551234`, with the fake's webhook pointed at it.
fn start(llm: &FakeLlm, wa: &FakeWhatsApp, extra: &str) -> GatewayProcess {
    let extra = format!("    allowFrom: [\"+{USER}\"]\n{extra}");
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(llm, wa, &extra)),
            ..Options::default()
        },
    );
    wa.set_webhook_url(Some(&format!(
        "http://127.0.0.1:{}/whatsapp/webhook",
        gw.port()
    )));
    gw
}

fn status_all(gw: &GatewayProcess) -> Value {
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status(gw: &GatewayProcess) -> Value {
    status_all(gw)["channelAccounts"]["whatsapp"][0].clone()
}

async fn until_status(gw: &GatewayProcess, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, T, || {
        let s = status(gw);
        let ok = pred(&s);
        async move { ok.then_some(s) }
    })
    .await
}

async fn until_sent(
    wa: &FakeWhatsApp,
    n: usize,
) -> Vec<clawgate_testkit::fake_whatsapp::SentMessage> {
    wait_for(&format!("{n} sent messages"), T, || {
        let s = wa.sent_messages();
        async move { (s.len() >= n).then_some(s) }
    })
    .await
}

fn random_challenge() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    (u64::from_le_bytes(b) % 10_000_000_000).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_verification_get_answers_the_challenge_only_for_the_right_token() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    let url = wa.webhook_url().unwrap();
    let challenge = random_challenge();
    assert_eq!(
        wa.verify_webhook(&url, None, &challenge).await,
        (200, challenge.clone())
    );
    let (status, _) = wa
        .verify_webhook(&url, Some("not-the-token"), &challenge)
        .await;
    assert_eq!(status, 403);
    // A POST-only platform route still refuses GET; WhatsApp's is the handshake.
    assert_eq!(status_all(&gw)["channelOrder"], json!(["whatsapp"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_bad_signature_is_401_and_never_reaches_the_agent() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    for t in [
        Tamper::WrongSecret,
        Tamper::MissingSignature,
        Tamper::AlteredBody,
        Tamper::ReserialisedUtf8,
    ] {
        let payload = wa.envelope_of(&[wa.text_message(USER, "forged ☕")]);
        assert_eq!(wa.post_tampered(&payload, t).await.status, 401, "{t:?}");
    }
    // A genuine message afterwards is the only one stored and answered.
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "genuine")]), T)
        .await;
    until_sent(&wa, 1).await;
    let s = until_status(&gw, "the message to settle", |s| s["inbound"]["done"] == 1).await;
    assert_eq!(s["inbound"]["pending"], 0, "{s}");
    assert_eq!(s["inbound"]["ignored"], 0, "{s}");
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_emoji_message_verifies_and_reaches_the_agent_intact() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let _gw = start(&llm, &wa, "");
    let payload = wa.envelope_of(&[wa.text_message(USER, "Hi 😮 café")]);
    let attempts = wa.deliver(&payload, T).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, 200, "{}", attempts[0].response);
    let body = String::from_utf8(attempts[0].body.clone()).unwrap();
    assert!(body.contains(r"Hi \ud83d\ude2e caf\u00e9"), "{body}");
    let sent = until_sent(&wa, 1).await;
    assert_eq!(sent[0].text, LLM_TEXT);
    // Replies go to the wa_id exactly as the webhook gave it.
    assert_eq!(sent[0].to, USER);
    let req = llm.requests().pop().unwrap();
    assert!(req.body.to_string().contains("Hi 😮 café"), "{}", req.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_duplicates_and_batches_give_one_reply_per_wamid() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let other = "447700900123";
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(
                &llm,
                &wa,
                &format!("    allowFrom: [\"+{USER}\", \"+{other}\"]\n"),
            )),
            ..Options::default()
        },
    );
    wa.set_webhook_url(Some(&format!(
        "http://127.0.0.1:{}/whatsapp/webhook",
        gw.port()
    )));
    let a = wa.text_message(USER, "first");
    let b = wa.text_message(other, "second");
    // One POST: two entries, the first with both messages, the second repeating one of them.
    let batch = wa.envelope(&[
        wa.change_value(&[a.clone(), b.clone()], &[]),
        wa.change_value(std::slice::from_ref(&a), &[]),
    ]);
    wa.deliver(&batch, T).await;
    until_sent(&wa, 2).await;
    // Meta redelivers and duplicates.
    wa.deliver(&batch, T).await;
    wa.deliver(&wa.envelope_of(std::slice::from_ref(&b)), T)
        .await;
    // A later message is answered after the duplicates were seen.
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "third")]), T)
        .await;
    until_sent(&wa, 3).await;
    until_status(&gw, "three messages settled", |s| {
        s["inbound"]["done"] == 3 && s["outbox"]["sent"] == 3
    })
    .await;
    let mut to: Vec<String> = wa.sent_messages().into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, [USER, USER, other]);
    assert_eq!(llm.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_reply_outside_the_window_fails_clearly_after_exactly_one_graph_call() {
    let llm = FakeLlm::start().await;
    llm.push(Step::Text {
        chunks: vec!["late".into(), " answer".into()],
        delay_ms: 1500,
    });
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "hello")]), T)
        .await;
    assert!(llm.wait_for_requests(1, T).await);
    // The agent takes "more than a day" on Meta's clock.
    wa.advance_clock(WINDOW_SECS + 3600);
    let s = until_status(&gw, "the reply to fail", |s| s["outbox"]["failed"] == 1).await;
    let err = s["lastError"].as_str().unwrap_or_default();
    assert!(err.contains("24-hour customer-service window"), "{err}");
    assert!(err.contains("131047"), "{err}");
    // Not retried: one call, refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = wa.calls_of(Kind::Text);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].error_code, Some(131047));
    assert!(wa.sent_messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_a_reply_the_gateway_knows_is_outside_the_window_makes_no_call() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    // A message Meta redelivers 25 hours after the user wrote it.
    let mut m = wa.text_message(USER, "are you there?");
    m["timestamp"] = json!((wa.now() - WINDOW_SECS - 3600).to_string());
    wa.deliver(&wa.envelope_of(&[m]), T).await;
    let s = until_status(&gw, "the reply to fail", |s| s["outbox"]["failed"] == 1).await;
    let err = s["lastError"].as_str().unwrap_or_default();
    assert!(err.contains("24-hour customer-service window"), "{err}");
    assert!(err.contains("+16505551234"), "{err}");
    assert!(wa.calls_of(Kind::Text).is_empty());
}

/// The window outlives a restart: the newest inbound time of each chat is kept in the state
/// database, so after a restart a send to a chat known to be outside the window still makes no
/// Graph call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_the_window_is_still_known_after_a_restart() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    let mut m = wa.text_message(USER, "are you there?");
    m["timestamp"] = json!((wa.now() - WINDOW_SECS - 3600).to_string());
    wa.deliver(&wa.envelope_of(&[m]), T).await;
    until_status(&gw, "the reply to fail", |s| s["outbox"]["failed"] == 1).await;
    let home = gw.stop();
    let extra = format!("    allowFrom: [\"+{USER}\"]\n");
    let gw = GatewayProcess::start_in(
        bin(),
        home,
        Options {
            config: Some(config(&llm, &wa, &extra)),
            ..Options::default()
        },
    );
    let out = gw
        .cli(bin())
        .args([
            "message",
            "send",
            "--channel",
            "whatsapp",
            "--to",
            "+16505551234",
            "--text",
            "still there?",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("24-hour customer-service window"), "{err}");
    let calls = wa.calls_of(Kind::Text);
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_graph_errors_by_code_back_off_retry_or_mark_the_channel_unhealthy() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    // 131000 (something went wrong) and 2 (unavailable) are retried.
    wa.fail_next(Kind::Text, Fault::Code(131000));
    wa.fail_next(Kind::Text, Fault::Code(2));
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "one")]), T)
        .await;
    until_sent(&wa, 1).await;
    let codes: Vec<Option<i64>> = wa
        .calls_of(Kind::Text)
        .iter()
        .map(|c| c.error_code)
        .collect();
    assert_eq!(codes, [Some(131000), Some(2), None]);
    // 131056 (pair rate limit) backs off for seconds before the next attempt.
    wa.fail_next(Kind::Text, Fault::Code(131056));
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "two")]), T)
        .await;
    until_sent(&wa, 2).await;
    let calls = wa.calls_of(Kind::Text);
    let (limited, ok) = (&calls[3], &calls[4]);
    assert_eq!(limited.error_code, Some(131056));
    assert!(ok.at.duration_since(limited.at) >= Duration::from_millis(5900));
    // 190 (token expired): not retried, the channel shows as unhealthy with the fix.
    wa.expire_token();
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "three")]), T)
        .await;
    let s = until_status(&gw, "the token failure", |s| s["outbox"]["failed"] == 1).await;
    assert_eq!(s["connected"], false, "{s}");
    let v = status_all(&gw);
    let issues = v["statusIssues"].to_string();
    assert!(issues.contains("channels.whatsapp.accessToken"), "{issues}");
    let out = gw.cli(bin()).args(["channels", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("whatsapp (default): running, not connected, mode webhook"),
        "{text}"
    );
    assert!(text.contains("access token was refused"), "{text}");
    // `clawgate doctor` reports it with the fix.
    let out = gw.cli(bin()).args(["doctor"]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("✗ whatsapp"), "{text}");
    assert!(
        text.contains("the WhatsApp access token was refused"),
        "{text}"
    );
    assert!(text.contains("set channels.whatsapp.accessToken"), "{text}");
    assert_eq!(wa.calls_of(Kind::Text).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_status_webhooks_update_the_outbox_and_failures_show_in_status() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "hi")]), T)
        .await;
    let sent = until_sent(&wa, 1).await;
    let db = gw.home_path().join("state.db");
    let delivery = |wamid: &str| -> Option<String> {
        let c = rusqlite::Connection::open(&db).ok()?;
        c.query_row(
            "SELECT delivery_status FROM channel_outbox WHERE platform_message_id = ?1",
            [wamid],
            |r| r.get::<_, Option<String>>(0),
        )
        .ok()
        .flatten()
    };
    let wamid = sent[0].wamid.clone();
    wait_for("the read report", T, || {
        let d = delivery(&wamid);
        async move { (d.as_deref() == Some("read")).then_some(()) }
    })
    .await;
    // A failed report marks the row failed and is visible in channels.status.
    wa.set_status_plan(StatusPlan::Failed(131026));
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "again")]), T)
        .await;
    let s = until_status(&gw, "the failed report", |s| s["outbox"]["failed"] == 1).await;
    let err = s["lastError"].as_str().unwrap_or_default();
    assert!(err.contains("delivery to +16505551234 failed"), "{err}");
    assert!(err.contains("131026"), "{err}");
    assert_eq!(s["outbox"]["sent"], 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_mark_read_and_typing_never_delay_the_reply() {
    let llm = FakeLlm::start().await;
    llm.push(Step::Text {
        chunks: vec!["**done**".into(), " now".into()],
        delay_ms: 300,
    });
    let wa = FakeWhatsApp::start().await;
    let _gw = start(&llm, &wa, "");
    // The mark-read/typing call hangs for longer than the whole test.
    wa.fail_next(Kind::Typing, Fault::Stall(Duration::from_secs(60)));
    let m = wa.text_message(USER, "work on it");
    let started = Instant::now();
    wa.deliver(&wa.envelope_of(std::slice::from_ref(&m)), T)
        .await;
    let sent = until_sent(&wa, 1).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // Markdown became WhatsApp formatting.
    assert_eq!(sent[0].text, "*done* now");
    let typing = wa.calls_of(Kind::Typing);
    assert_eq!(typing.len(), 1, "{typing:?}");
    assert_eq!(typing[0].body["message_id"], m["id"]);
    assert_eq!(typing[0].body["typing_indicator"]["type"], "text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_without_read_receipts_no_mark_read_call() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let _gw = start(&llm, &wa, "    sendReadReceipts: false\n");
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "hi")]), T)
        .await;
    until_sent(&wa, 1).await;
    assert!(wa.calls_of(Kind::Typing).is_empty());
    assert!(wa.calls_of(Kind::Read).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_through_nginx_to_127_0_0_1() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    let nginx = start_nginx(gw.port(), &[("Host", "bot.example.com")]);
    let url = format!("http://127.0.0.1:{}/whatsapp/webhook", nginx.port);
    wa.set_webhook_url(Some(&url));
    let challenge = random_challenge();
    assert_eq!(
        wa.verify_webhook(&url, None, &challenge).await,
        (200, challenge.clone())
    );
    assert_eq!(
        wa.verify_webhook(&url, Some("nope"), &challenge).await.0,
        403
    );
    let bad = wa
        .post_tampered(
            &wa.envelope_of(&[wa.text_message(USER, "x")]),
            Tamper::WrongSecret,
        )
        .await;
    assert_eq!(bad.status, 401);
    let attempts = wa
        .deliver(
            &wa.envelope_of(&[wa.text_message(USER, "via the proxy 🚀")]),
            T,
        )
        .await;
    assert_eq!(attempts.last().unwrap().status, 200);
    let sent = until_sent(&wa, 1).await;
    assert_eq!(sent[0].text, LLM_TEXT);
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_unknown_sender_gets_the_whatsapp_id_line() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let _gw = start(&llm, &wa, "");
    wa.deliver(
        &wa.envelope_of(&[wa.text_message("447700900123", "hello")]),
        T,
    )
    .await;
    let sent = until_sent(&wa, 1).await;
    assert!(
        sent[0]
            .text
            .contains("Your WhatsApp phone number: +447700900123"),
        "{}",
        sent[0].text
    );
    assert!(
        sent[0].text.contains("pairing approve whatsapp "),
        "{}",
        sent[0].text
    );
    assert_eq!(sent[0].to, "447700900123");
    assert_eq!(llm.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_message_send_and_channels_status() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    wa.open_window(USER);
    let send = |to: &str, text: &str| {
        gw.cli(bin())
            .args([
                "message",
                "send",
                "--channel",
                "whatsapp",
                "--to",
                to,
                "--text",
                text,
            ])
            .output()
            .unwrap()
    };
    let out = send("+16505551234", "hi");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = until_sent(&wa, 1).await;
    assert_eq!(
        (sent[0].to.as_str(), sent[0].text.as_str()),
        ("+16505551234", "hi")
    );
    // A number that never wrote: Meta refuses (131047), the CLI says why, one call.
    let before = wa.calls_of(Kind::Text).len();
    let out = send("+447700900999", "hello?");
    assert_ne!(
        out.status.code(),
        Some(0),
        "{} {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.stderr_text()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("24-hour customer-service window"), "{err}");
    assert_eq!(wa.calls_of(Kind::Text).len(), before + 1);
    let out = send("not-a-number", "x");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E.164"));
    let out = gw.cli(bin()).args(["channels", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("whatsapp (default): connected, mode webhook"),
        "{text}"
    );
    let v = status_all(&gw);
    assert_eq!(v["channelLabels"]["whatsapp"], "WhatsApp");
}

#[test]
fn i9_a_missing_credential_refuses_to_start_naming_it() {
    for (key, line) in [
        ("appSecret", "    appSecret: s\n"),
        ("verifyToken", "    verifyToken: v\n"),
        ("accessToken", "    accessToken: t\n"),
        ("phoneNumberId", "    phoneNumberId: \"106540352242922\"\n"),
    ] {
        let all = "channels:\n  whatsapp:\n    phoneNumberId: \"106540352242922\"\n    accessToken: t\n    appSecret: s\n    verifyToken: v\n";
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        clawgate_testkit::gateway::write_config(home.path(), &all.replace(line, ""));
        let (status, _, err) = clawgate_testkit::gateway::run_to_exit(
            bin(),
            home.path(),
            &Options::default(),
            "0",
            Duration::from_secs(10),
        );
        assert_eq!(status.code(), Some(78), "{key}: {err}");
        assert!(
            err.contains(&format!("channels.whatsapp.{key}: required")),
            "{key}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_secrets_are_redacted_in_config_get_and_logs() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    wa.deliver(&wa.envelope_of(&[wa.text_message(USER, "hi")]), T)
        .await;
    until_sent(&wa, 1).await;
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let res = ws.call("config.get", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let text = res.to_string();
    for secret in [wa.token(), wa.app_secret(), wa.verify_token()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
        let logs =
            std::fs::read_to_string(gw.home_path().join("logs/gateway.log")).unwrap_or_default();
        assert!(!logs.contains(secret));
        assert!(!gw.stderr_text().contains(secret));
    }
    assert!(text.contains("__OPENCLAW_REDACTED__"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i9_media_get_a_placeholder_and_reactions_and_system_are_recorded_only() {
    let llm = FakeLlm::start().await;
    let wa = FakeWhatsApp::start().await;
    let gw = start(&llm, &wa, "");
    let first = wa.text_message(USER, "hi");
    wa.deliver(&wa.envelope_of(std::slice::from_ref(&first)), T)
        .await;
    until_sent(&wa, 1).await;
    let reaction = wa.message(
        USER,
        "reaction",
        json!({"reaction": {"message_id": first["id"], "emoji": "👍"}}),
    );
    let system = wa.message(
        USER,
        "system",
        json!({"system": {"body": "User changed number", "type": "user_changed_number"}}),
    );
    let image = wa.message(
        USER,
        "image",
        json!({"image": {"id": "1479537139650973", "mime_type": "image/jpeg", "sha256": "x", "caption": "my receipt"}}),
    );
    wa.deliver(&wa.envelope_of(&[reaction, system, image]), T)
        .await;
    until_sent(&wa, 2).await;
    let s = until_status(&gw, "the batch to settle", |s| {
        s["inbound"]["done"] == 2 && s["inbound"]["ignored"] == 2
    })
    .await;
    assert_eq!(s["inbound"]["pending"], 0, "{s}");
    assert_eq!(llm.request_count(), 2);
    let req = llm.requests().pop().unwrap().body.to_string();
    assert!(
        req.contains("an image with the caption: my receipt"),
        "{req}"
    );
}
