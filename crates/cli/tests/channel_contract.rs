//! Issue 8 §1: the channel contract. One set of scenarios, parametrised over a
//! [`ChannelFixture`] (a platform and its fake); every channel runs all of them.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::fake_slack::{Fault as SlackFault, Tamper};
use clawgate_testkit::fake_telegram::{post_update, Fault};
use clawgate_testkit::gateway::Options;
use clawgate_testkit::{wait_for, FakeLlm, FakeSlack, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const LLM_TEXT: &str = "Hello from the fake LLM!";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// How the platform delivers events to the gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The gateway fetches them (long poll, socket).
    Receiver,
    /// The platform posts them to the gateway's webhook route.
    Webhook,
}

/// A platform and its fake, seen by the contract scenarios.
trait ChannelFixture: Sized {
    /// The config section and `channel` name (`telegram`).
    const NAME: &'static str;
    async fn start(mode: Mode) -> Self;
    /// The `channels.<name>` section (indented two spaces), allowing the `allow` senders and
    /// listing the fixture's group (mention required).
    fn section(&self, allow: &[&str]) -> String;
    /// A sender id (`n` picks a different user).
    fn sender(&self, n: u32) -> String;
    /// Called once the gateway listens (webhook mode posts to it).
    fn attach(&mut self, gateway_port: u16);
    /// A direct message; returns the event so it can be delivered again.
    async fn dm(&self, sender: &str, text: &str) -> Value;
    /// Delivers the same event again (a platform retry).
    async fn redeliver(&self, event: &Value);
    /// A message in the fixture's group, with or without the bot's mention.
    async fn group_message(&self, sender: &str, text: &str, mention: bool);
    /// Webhook mode: posts the event with a forged and with a missing signature/secret;
    /// the HTTP statuses.
    async fn forge(&self, event: &Value) -> Vec<u16>;
    /// The platform answers the next send with 429 and this retry hint.
    fn rate_limit_next_send(&self, secs: u64);
    /// Every reply the bot sent: (chat, text).
    fn replies(&self) -> Vec<(String, String)>;
    /// Every send attempt: (HTTP status, when).
    fn send_attempts(&self) -> Vec<(u16, Instant)>;
}

fn config<F: ChannelFixture>(llm: &FakeLlm, fx: &F, allow: &[&str]) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\nchannels:\n{}",
        llm.openai_base_url(),
        fx.section(allow)
    )
}

fn start_gateway<F: ChannelFixture>(llm: &FakeLlm, fx: &mut F, allow: &[&str]) -> GatewayProcess {
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(llm, fx, allow)),
            ..Options::default()
        },
    );
    fx.attach(gw.port());
    gw
}

/// This channel's account in `channels.status`, through the real CLI.
fn status<F: ChannelFixture>(gw: &GatewayProcess) -> Value {
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["channelAccounts"][F::NAME][0].clone()
}

async fn until_status<F: ChannelFixture>(
    gw: &GatewayProcess,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, T, || {
        let s = status::<F>(gw);
        let ok = pred(&s);
        async move { ok.then_some(s) }
    })
    .await
}

async fn until_replies<F: ChannelFixture>(fx: &F, n: usize) -> Vec<(String, String)> {
    wait_for(&format!("{n} replies"), T, || {
        let r = fx.replies();
        async move { (r.len() >= n).then_some(r) }
    })
    .await
}

async fn allowed_dm_gets_exactly_one_reply<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(mode).await;
    let user = fx.sender(1);
    let gw = start_gateway(&llm, &mut fx, &[&user]);
    fx.dm(&user, "hello").await;
    let r = until_replies(&fx, 1).await;
    assert_eq!(r[0].1, LLM_TEXT);
    until_status::<F>(&gw, "the message to settle", |s| {
        s["inbound"]["done"] == 1 && s["outbox"]["sent"] == 1
    })
    .await;
    assert_eq!(fx.replies().len(), 1);
    assert_eq!(llm.request_count(), 1);
}

async fn unknown_sender_pairs_then_is_answered<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(mode).await;
    let stranger = fx.sender(2);
    let gw = start_gateway(&llm, &mut fx, &[]);
    fx.dm(&stranger, "hi there").await;
    let r = until_replies(&fx, 1).await;
    let code = r[0]
        .1
        .split("Pairing code: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no pairing code in {:?}", r[0].1))
        .to_string();
    assert_eq!(
        llm.request_count(),
        0,
        "the agent must not run for a stranger"
    );
    let out = gw
        .cli(bin())
        .args(["pairing", "approve", F::NAME, &code])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The approved sender is told so on its platform, in its own chat, then answered.
    let r = until_replies(&fx, 2).await;
    assert_eq!(
        r[1].1,
        "✅ Access approved. Send a message to start chatting."
    );
    assert_eq!(r[1].0, r[0].0, "the notice goes where the code went");
    fx.dm(&stranger, "now?").await;
    let r = until_replies(&fx, 3).await;
    assert_eq!(r[2].1, LLM_TEXT);
    assert_eq!(llm.request_count(), 1);
}

async fn the_same_event_twice_gets_one_reply<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(mode).await;
    let user = fx.sender(1);
    let gw = start_gateway(&llm, &mut fx, &[&user]);
    let ev = fx.dm(&user, "hello").await;
    until_replies(&fx, 1).await;
    fx.redeliver(&ev).await;
    // A later message is processed after the redelivery: once it is answered, the
    // redelivery has been seen.
    fx.dm(&user, "second").await;
    until_replies(&fx, 2).await;
    until_status::<F>(&gw, "both messages to settle", |s| {
        s["inbound"]["done"] == 2 && s["outbox"]["sent"] == 2
    })
    .await;
    assert_eq!(fx.replies().len(), 2);
    assert_eq!(llm.request_count(), 2);
}

async fn forged_or_missing_signature_is_401<F: ChannelFixture>(_mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(Mode::Webhook).await;
    let user = fx.sender(1);
    let gw = start_gateway(&llm, &mut fx, &[&user]);
    // A well-formed event that was never sent through the real path.
    let ev = fx.dm(&user, "genuine").await;
    until_replies(&fx, 1).await;
    let statuses = fx.forge(&ev).await;
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let s = status::<F>(&gw);
    assert_eq!(s["inbound"]["done"], 1, "{s}");
    assert_eq!(s["inbound"]["pending"], 0, "{s}");
    assert_eq!(llm.request_count(), 1, "no agent call for a forged event");
}

async fn platform_429_is_delivered_later<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(mode).await;
    fx.rate_limit_next_send(1);
    let user = fx.sender(1);
    let _gw = start_gateway(&llm, &mut fx, &[&user]);
    fx.dm(&user, "hello").await;
    let r = until_replies(&fx, 1).await;
    assert_eq!(r.len(), 1);
    let attempts = fx.send_attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].0, 429);
    assert_eq!(attempts[1].0, 200);
    assert!(attempts[1].1.duration_since(attempts[0].1) >= Duration::from_millis(950));
}

async fn sigkill_between_acceptance_and_reply_gives_one_reply<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    llm.push(Step::Text {
        chunks: vec!["slow".into(), " answer".into()],
        delay_ms: 3000,
    });
    let mut fx = F::start(mode).await;
    let user = fx.sender(1);
    let gw = start_gateway(&llm, &mut fx, &[&user]);
    fx.dm(&user, "hello").await;
    assert!(llm.wait_for_requests(1, T).await, "the agent never started");
    let home = gw.stop();
    assert!(fx.replies().is_empty());
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    fx.attach(gw.port());
    until_replies(&fx, 1).await;
    until_status::<F>(&gw, "the reply to settle", |s| {
        s["inbound"]["done"] == 1 && s["outbox"]["sent"] == 1 && s["outbox"]["pending"] == 0
    })
    .await;
    assert_eq!(fx.replies().len(), 1, "exactly one reply");
}

async fn group_message_without_mention_is_ignored<F: ChannelFixture>(mode: Mode) {
    let llm = FakeLlm::start().await;
    let mut fx = F::start(mode).await;
    let user = fx.sender(1);
    let gw = start_gateway(&llm, &mut fx, &[&user]);
    fx.group_message(&user, "hello everyone", false).await;
    until_status::<F>(&gw, "the unmentioned message to be ignored", |s| {
        s["inbound"]["ignored"] == 1
    })
    .await;
    assert_eq!(llm.request_count(), 0);
    fx.group_message(&user, "what is up", true).await;
    let r = until_replies(&fx, 1).await;
    assert_eq!(r[0].1, LLM_TEXT);
    // Every delivery of the mention was acknowledged: one stored message, one reply.
    until_status::<F>(&gw, "the mention to settle", |s| {
        s["inbound"]["done"] == 1 && s["inbound"]["pending"] == 0 && s["outbox"]["sent"] == 1
    })
    .await;
    assert_eq!(fx.replies().len(), 1);
    assert_eq!(llm.request_count(), 1);
}

/// Runs every scenario for a fixture, with the platform delivering in `$mode` (the signature
/// scenario always uses the webhook). Without a mode: the receiver (poll/socket), or the only
/// mode a webhook-only fixture has.
macro_rules! contract {
    ($fixture:ty, $module:ident) => {
        contract!($fixture, $module, Mode::Receiver);
    };
    ($fixture:ty, $module:ident, $mode:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn allowed_dm_gets_exactly_one_reply() {
                super::allowed_dm_gets_exactly_one_reply::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn unknown_sender_pairs_then_is_answered() {
                super::unknown_sender_pairs_then_is_answered::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn the_same_event_twice_gets_one_reply() {
                super::the_same_event_twice_gets_one_reply::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn forged_or_missing_signature_is_401() {
                super::forged_or_missing_signature_is_401::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn platform_429_is_delivered_later() {
                super::platform_429_is_delivered_later::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn sigkill_between_acceptance_and_reply_gives_one_reply() {
                super::sigkill_between_acceptance_and_reply_gives_one_reply::<$fixture>($mode).await
            }

            #[tokio::test]
            async fn group_message_without_mention_is_ignored() {
                super::group_message_without_mention_is_ignored::<$fixture>($mode).await
            }
        }
    };
}

// ---- Telegram: long polling and the webhook ----

const TG_SECRET: &str = "hook-secret_0123456789";
const TG_GROUP: i64 = -100555;

struct TelegramFixture {
    tg: FakeTelegram,
    mode: Mode,
    webhook_url: Option<String>,
    next_id: AtomicI64,
}

impl TelegramFixture {
    fn message(&self, chat: Value, sender: &str, text: &str, entities: Value) -> Value {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let uid: i64 = sender.parse().unwrap();
        json!({"message_id": n, "date": 1767225600,
            "from": {"id": uid, "is_bot": false, "first_name": "Ada"},
            "chat": chat, "text": text, "entities": entities})
    }

    /// Delivers an update the way the mode does; returns it with its `update_id`.
    async fn deliver(&self, message: Value) -> Value {
        match self.mode {
            Mode::Receiver => {
                let mut update = json!({ "message": message });
                let id = self.tg.inject_update(update.clone());
                update["update_id"] = json!(id);
                update
            }
            Mode::Webhook => {
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                let update = json!({"update_id": id, "message": message});
                let url = self.webhook_url.as_deref().expect("attached");
                let (status, body) = post_update(url, Some(TG_SECRET), &update).await;
                assert_eq!(status, 200, "{body}");
                update
            }
        }
    }
}

impl ChannelFixture for TelegramFixture {
    const NAME: &'static str = "telegram";

    async fn start(mode: Mode) -> Self {
        TelegramFixture {
            tg: FakeTelegram::start().await,
            mode,
            webhook_url: None,
            next_id: AtomicI64::new(1000),
        }
    }

    fn section(&self, allow: &[&str]) -> String {
        let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
        let mode = match self.mode {
            Mode::Receiver => String::new(),
            Mode::Webhook => format!("    mode: webhook\n    webhookSecret: \"{TG_SECRET}\"\n"),
        };
        format!(
            "  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [{}]\n    groups:\n      \"{TG_GROUP}\": {{}}\n{mode}",
            self.tg.token(),
            self.tg.api_root(),
            allow.join(", ")
        )
    }

    fn sender(&self, n: u32) -> String {
        (41 + i64::from(n)).to_string()
    }

    fn attach(&mut self, gateway_port: u16) {
        self.webhook_url = Some(format!("http://127.0.0.1:{gateway_port}/webhook/telegram"));
    }

    async fn dm(&self, sender: &str, text: &str) -> Value {
        let chat =
            json!({"id": sender.parse::<i64>().unwrap(), "type": "private", "first_name": "Ada"});
        let m = self.message(chat, sender, text, json!([]));
        self.deliver(m).await
    }

    async fn redeliver(&self, event: &Value) {
        match self.mode {
            Mode::Receiver => self.tg.inject_raw_update(event.clone()),
            Mode::Webhook => {
                let url = self.webhook_url.as_deref().expect("attached");
                let (status, _) = post_update(url, Some(TG_SECRET), event).await;
                assert_eq!(status, 200);
            }
        }
    }

    async fn group_message(&self, sender: &str, text: &str, mention: bool) {
        let chat = json!({"id": TG_GROUP, "type": "supergroup", "title": "Team"});
        let (text, entities) = if mention {
            let at = format!("@{}", self.tg.username());
            let len = at.encode_utf16().count();
            (
                format!("{at} {text}"),
                json!([{"type": "mention", "offset": 0, "length": len}]),
            )
        } else {
            (text.to_string(), json!([]))
        };
        let m = self.message(chat, sender, &text, entities);
        self.deliver(m).await;
    }

    async fn forge(&self, event: &Value) -> Vec<u16> {
        let url = self.webhook_url.as_deref().expect("attached");
        let mut forged = event.clone();
        forged["update_id"] = json!(event["update_id"].as_i64().unwrap_or(0) + 10_000);
        let (wrong, _) = post_update(url, Some("wrong-secret"), &forged).await;
        let (missing, _) = post_update(url, None, &forged).await;
        vec![wrong, missing]
    }

    fn rate_limit_next_send(&self, secs: u64) {
        self.tg.fail_next("sendmessage", Fault::RetryAfter(secs));
    }

    fn replies(&self) -> Vec<(String, String)> {
        self.tg
            .sent_messages()
            .into_iter()
            .map(|m| (m.chat_id.to_string(), m.text))
            .collect()
    }

    fn send_attempts(&self) -> Vec<(u16, Instant)> {
        self.tg
            .calls()
            .into_iter()
            .filter(|c| c.method == "sendmessage")
            .map(|c| (c.status, c.at))
            .collect()
    }
}

contract!(TelegramFixture, telegram);
contract!(TelegramFixture, telegram_webhook, Mode::Webhook);

// ---- Slack: Socket Mode and the HTTP Events API (signed requests to the gateway's own
// port) ----

const SLACK_GROUP: &str = "C0TEAM";

struct SlackFixture {
    slack: FakeSlack,
    mode: Mode,
}

impl SlackFixture {
    /// Waits until the gateway acknowledged `event_id` (more than `before` times).
    async fn wait_acked(&self, event_id: &str, before: usize) {
        let id = event_id.to_string();
        let ok = self
            .slack
            .wait_until(T, || {
                let n = self.acks_for(&id);
                (n > before).then_some(())
            })
            .await;
        assert!(ok.is_some(), "event {event_id} was not acknowledged");
    }

    /// Acknowledgements of `event_id`: 2xx answers (HTTP) or acks (Socket Mode).
    fn acks_for(&self, event_id: &str) -> usize {
        match self.mode {
            Mode::Webhook => self
                .slack
                .attempts_for(event_id)
                .iter()
                .filter(|a| a.ok())
                .count(),
            Mode::Receiver => self
                .slack
                .acks()
                .iter()
                .filter(|a| a.event_id.as_deref() == Some(event_id))
                .count(),
        }
    }

    /// Delivers an envelope and waits until the gateway acknowledged it.
    async fn deliver_and_wait(&self, envelope: Value, event_id: &str) {
        if self.mode == Mode::Receiver {
            let before = self.acks_for(event_id);
            self.slack.deliver_envelope(envelope);
            return self.wait_acked(event_id, before).await;
        }
        let before = self.slack.attempts_for(event_id).len();
        self.slack.deliver_envelope(envelope);
        let id = event_id.to_string();
        let ok = self
            .slack
            .wait_until(T, || {
                let a = self.slack.attempts_for(&id);
                (a.len() > before && a.last().is_some_and(|x| x.status.is_some())).then_some(())
            })
            .await;
        assert!(ok.is_some(), "event {event_id} was not answered");
        let last = self.slack.attempts_for(event_id).pop().unwrap();
        assert!(last.ok(), "{last:?}");
    }
}

impl ChannelFixture for SlackFixture {
    const NAME: &'static str = "slack";

    async fn start(mode: Mode) -> Self {
        let slack = FakeSlack::start().await;
        slack.add_channel(SLACK_GROUP, true);
        SlackFixture { slack, mode }
    }

    fn section(&self, allow: &[&str]) -> String {
        let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
        let mode = match self.mode {
            Mode::Receiver => format!(
                "    mode: socket\n    appToken: \"{}\"\n",
                self.slack.app_token()
            ),
            Mode::Webhook => format!(
                "    mode: http\n    signingSecret: \"{}\"\n",
                self.slack.signing_secret()
            ),
        };
        format!(
            "  slack:\n{mode}    botToken: \"{}\"\n    apiRoot: {}\n    allowFrom: [{}]\n    channels:\n      {SLACK_GROUP}: {{}}\n",
            self.slack.bot_token(),
            self.slack.api_root(),
            allow.join(", ")
        )
    }

    fn sender(&self, n: u32) -> String {
        format!("U{n:07}")
    }

    fn attach(&mut self, gateway_port: u16) {
        if self.mode == Mode::Receiver {
            return;
        }
        self.slack.set_request_url(Some(&format!(
            "http://127.0.0.1:{gateway_port}/slack/events"
        )));
    }

    async fn dm(&self, sender: &str, text: &str) -> Value {
        let msg = self.slack.dm_message(sender, text);
        let (envelope, id) = self.slack.envelope(msg);
        self.deliver_and_wait(envelope.clone(), &id).await;
        envelope
    }

    async fn redeliver(&self, event: &Value) {
        let id = event["event_id"].as_str().unwrap().to_string();
        self.deliver_and_wait(event.clone(), &id).await;
    }

    async fn group_message(&self, sender: &str, text: &str, mention: bool) {
        let text = if mention {
            self.slack.mention(text)
        } else {
            text.to_string()
        };
        let msg = self.slack.channel_message(SLACK_GROUP, sender, &text);
        // With a mention Slack sends both `message` and `app_mention`: one reply expected.
        for id in self.slack.deliver_message(msg) {
            self.wait_acked(&id, 0).await;
        }
    }

    async fn forge(&self, event: &Value) -> Vec<u16> {
        let inner = event["event"].clone();
        let mut out = Vec::new();
        for t in [
            Tamper::WrongSecret,
            Tamper::MissingSignature,
            Tamper::StaleTimestamp,
            Tamper::AlteredBody,
        ] {
            let a = self.slack.send_tampered(inner.clone(), t).await;
            out.push(a.status.unwrap_or(0));
        }
        out
    }

    fn rate_limit_next_send(&self, secs: u64) {
        self.slack
            .fail_next("chat.postMessage", SlackFault::RateLimited(secs));
    }

    fn replies(&self) -> Vec<(String, String)> {
        self.slack
            .sent_messages()
            .into_iter()
            .map(|m| (m.channel, m.text))
            .collect()
    }

    fn send_attempts(&self) -> Vec<(u16, Instant)> {
        self.slack
            .calls()
            .into_iter()
            .filter(|c| c.method == "chat.postMessage")
            .map(|c| (c.status, c.at))
            .collect()
    }
}

contract!(SlackFixture, slack);
contract!(SlackFixture, slack_http, Mode::Webhook);

// ---- WhatsApp (Cloud API): Meta posts signed webhooks to the gateway's own port; replies go
// through the Graph `messages` endpoint. The channel has no other ingress, so both modes are
// the webhook ----

const WA_GROUP: &str = "Y2FwaV9ncm91cDoxNjUwNTU1MDAwMA==";

struct WhatsAppFixture {
    wa: clawgate_testkit::FakeWhatsApp,
}

impl WhatsAppFixture {
    /// Delivers like Meta (retrying until a 2xx) and checks the gateway accepted it.
    async fn deliver(&self, payload: &Value) {
        let attempts = self.wa.deliver(payload, T).await;
        let last = attempts.last().expect("one attempt");
        assert_eq!(last.status, 200, "{}", last.response);
    }
}

impl ChannelFixture for WhatsAppFixture {
    const NAME: &'static str = "whatsapp";

    async fn start(_mode: Mode) -> Self {
        WhatsAppFixture {
            wa: clawgate_testkit::FakeWhatsApp::start().await,
        }
    }

    fn section(&self, allow: &[&str]) -> String {
        let allow: Vec<String> = allow.iter().map(|a| format!("\"+{a}\"")).collect();
        format!(
            "  whatsapp:\n    phoneNumberId: \"{}\"\n    accessToken: \"{}\"\n    appSecret: \"{}\"\n    verifyToken: \"{}\"\n    graphBaseUrl: {}\n    allowFrom: [{}]\n    groups:\n      \"{WA_GROUP}\": {{}}\n",
            self.wa.phone_number_id(),
            self.wa.token(),
            self.wa.app_secret(),
            self.wa.verify_token(),
            self.wa.graph_base_url(),
            allow.join(", ")
        )
    }

    /// A `wa_id`: digits, no `+`.
    fn sender(&self, n: u32) -> String {
        format!("1650555{:04}", 1230 + n)
    }

    fn attach(&mut self, gateway_port: u16) {
        self.wa.set_webhook_url(Some(&format!(
            "http://127.0.0.1:{gateway_port}/whatsapp/webhook"
        )));
    }

    async fn dm(&self, sender: &str, text: &str) -> Value {
        let payload = self.wa.envelope_of(&[self.wa.text_message(sender, text)]);
        self.deliver(&payload).await;
        payload
    }

    async fn redeliver(&self, event: &Value) {
        self.deliver(event).await;
    }

    async fn group_message(&self, sender: &str, text: &str, mention: bool) {
        let text = if mention {
            format!("@{} {text}", self.wa.display_number())
        } else {
            text.to_string()
        };
        let m = self.wa.group_text_message(sender, WA_GROUP, &text);
        self.deliver(&self.wa.envelope_of(&[m])).await;
    }

    async fn forge(&self, event: &Value) -> Vec<u16> {
        use clawgate_testkit::fake_whatsapp::Tamper;
        // A new message (a new wamid), so an accepted forgery would show as a stored message.
        let from = event["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
            .as_str()
            .unwrap()
            .to_string();
        let forged = self
            .wa
            .envelope_of(&[self.wa.text_message(&from, "forged 😮")]);
        let mut out = Vec::new();
        for t in [
            Tamper::WrongSecret,
            Tamper::MissingSignature,
            Tamper::AlteredBody,
            Tamper::ReserialisedUtf8,
        ] {
            out.push(self.wa.post_tampered(&forged, t).await.status);
        }
        out
    }

    /// Meta sends no retry hint: 130429 (throughput) is backed off by the gateway itself.
    fn rate_limit_next_send(&self, _secs: u64) {
        use clawgate_testkit::fake_whatsapp::{Fault as WaFault, Kind};
        self.wa.fail_next(Kind::Text, WaFault::Code(130429));
    }

    fn replies(&self) -> Vec<(String, String)> {
        self.wa
            .sent_messages()
            .into_iter()
            .map(|m| (m.to, m.text))
            .collect()
    }

    fn send_attempts(&self) -> Vec<(u16, Instant)> {
        use clawgate_testkit::fake_whatsapp::Kind;
        self.wa
            .calls_of(Kind::Text)
            .into_iter()
            .map(|c| (c.status, c.at))
            .collect()
    }
}

contract!(WhatsAppFixture, whatsapp, Mode::Webhook);
