//! A fake WhatsApp Cloud API (Meta Graph API) on one loopback port, and the Meta side of the
//! webhook: what the gateway's WhatsApp channel talks to in end-to-end tests.
//!
//! Graph side (`POST /{version}/{phoneNumberId}/messages`, Bearer token):
//! - text sends (`text.body` ≤ 4096) answered with `contacts[] + messages[{id: "wamid.…"}]`;
//! - `status: "read"` (optionally with `typing_indicator`) → `{"success":true}`, only for
//!   an inbound message id the fake delivered;
//! - the 24-hour customer-service window per recipient on a controllable clock → 131047;
//! - injectable Graph errors by code in Meta's envelope (`{"error":{message,type,code,
//!   error_data:{messaging_product,details},fbtrace_id}}`), e.g. 130429, 131056, 4, 80007,
//!   131000, 2, 190;
//! - after each accepted text send, `statuses` webhooks (`sent` → `delivered` → `read`, or
//!   `failed` with `errors[]`) POSTed to the gateway asynchronously.
//!
//! Meta side ([`FakeWhatsApp::verify_webhook`], [`FakeWhatsApp::deliver`], …): the
//! verification GET with a random challenge, POSTs signed `X-Hub-Signature-256:
//! sha256=<hex>` (HMAC-SHA256 with the app secret) over JSON whose non-ASCII characters are
//! escaped as `\uXXXX` the way Meta serialises them, batches of entries / messages /
//! statuses in one POST, redelivery on a non-2xx answer, and duplicates on purpose.

mod meta;
mod server;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

pub use meta::{meta_json, sign, Delivery};

pub const DEFAULT_TOKEN: &str = "EAAGfakeAccessToken0123456789";
pub const DEFAULT_PHONE_NUMBER_ID: &str = "106540352242922";
pub const DEFAULT_DISPLAY_NUMBER: &str = "15550783881";
pub const DEFAULT_WABA_ID: &str = "102290129340398";
pub const DEFAULT_APP_SECRET: &str = "fake-app-secret-3f9a";
pub const DEFAULT_VERIFY_TOKEN: &str = "fake-verify-token-7c21";
/// Meta's limit on `text.body`.
pub const MAX_TEXT_BODY: usize = 4096;
/// The customer-service window.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// What a Graph request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A `type: "text"` message.
    Text,
    /// `status: "read"` without a typing indicator.
    Read,
    /// `status: "read"` with `typing_indicator`.
    Typing,
    /// A `type: "reaction"` message.
    Reaction,
    /// Anything else (bad path, other types).
    Other,
}

/// One Graph request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub kind: Kind,
    pub path: String,
    pub body: Value,
    pub at: Instant,
    /// HTTP status answered (0 while pending or when it hung).
    pub status: u16,
    /// The Graph error code answered, if any.
    pub error_code: Option<i64>,
}

/// A text message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// `to` exactly as the client sent it.
    pub to: String,
    pub text: String,
    pub wamid: String,
    /// `context.message_id` (a quoted reply).
    pub reply_to: Option<String>,
    pub preview_url: bool,
}

/// A one-shot failure for the next request of a [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This Graph error code, with Meta's HTTP status and message for it.
    Code(i64),
    /// Holds the request this long, then answers normally.
    Stall(Duration),
    /// A 502 with an HTML body (a proxy in front of Graph).
    BadGateway,
}

/// The status webhooks the fake sends after each accepted text message.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusPlan {
    /// None.
    Off,
    /// `sent`, `delivered`, `read`, each its own POST.
    Delivered,
    /// `sent`, then `failed` with this error code.
    Failed(i64),
}

pub(crate) struct State {
    /// Seconds added to the real clock ([`FakeWhatsApp::advance_clock`]).
    pub clock_offset: i64,
    pub token_valid: bool,
    /// wa_id (digits) → Unix time of the user's last message to the business.
    pub last_inbound: HashMap<String, i64>,
    /// Message ids of inbound messages the fake delivered (mark-read targets).
    pub inbound_ids: HashSet<String>,
    pub calls: Vec<Call>,
    pub sent: Vec<SentMessage>,
    pub faults: HashMap<Kind, VecDeque<Fault>>,
    pub webhook_url: Option<String>,
    pub status_plan: StatusPlan,
    /// Every webhook POST the Meta side made.
    pub deliveries: Vec<Delivery>,
    pub next_id: u64,
}

pub(crate) struct Shared {
    pub token: String,
    pub phone_number_id: String,
    pub display_number: String,
    pub waba_id: String,
    pub app_secret: String,
    pub verify_token: String,
    pub state: Mutex<State>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Shared {
    /// The fake's clock (real time plus the offset).
    pub fn now(&self) -> i64 {
        real_now() + lock(&self.state).clock_offset
    }

    /// A fresh `wamid.…` (base64-looking, unique).
    pub fn wamid(&self) -> String {
        let mut st = lock(&self.state);
        st.next_id += 1;
        let raw = format!(
            "HBgL{:012}FQIAERgS{}",
            st.next_id,
            uuid::Uuid::new_v4().simple()
        );
        format!("wamid.{}=", raw.to_uppercase())
    }
}

/// The running fake. It stops when dropped.
pub struct FakeWhatsApp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
}

impl Drop for FakeWhatsApp {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeWhatsApp {
    /// Binds `127.0.0.1:0` and serves on the current runtime.
    pub async fn start() -> FakeWhatsApp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake WhatsApp: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake WhatsApp: local_addr");
        let shared = Arc::new(Shared {
            token: DEFAULT_TOKEN.into(),
            phone_number_id: DEFAULT_PHONE_NUMBER_ID.into(),
            display_number: DEFAULT_DISPLAY_NUMBER.into(),
            waba_id: DEFAULT_WABA_ID.into(),
            app_secret: DEFAULT_APP_SECRET.into(),
            verify_token: DEFAULT_VERIFY_TOKEN.into(),
            state: Mutex::new(State {
                clock_offset: 0,
                token_valid: true,
                last_inbound: HashMap::new(),
                inbound_ids: HashSet::new(),
                calls: Vec::new(),
                sent: Vec::new(),
                faults: HashMap::new(),
                webhook_url: None,
                status_plan: StatusPlan::Delivered,
                deliveries: Vec::new(),
                next_id: 0,
            }),
        });
        let server = tokio::spawn(server::accept_loop(listener, shared.clone()));
        FakeWhatsApp {
            addr,
            shared,
            tasks: vec![server.abort_handle()],
        }
    }

    /// `graphBaseUrl` for the gateway (`http://127.0.0.1:PORT`).
    pub fn graph_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    pub fn phone_number_id(&self) -> &str {
        &self.shared.phone_number_id
    }

    pub fn display_number(&self) -> &str {
        &self.shared.display_number
    }

    pub fn app_secret(&self) -> &str {
        &self.shared.app_secret
    }

    pub fn verify_token(&self) -> &str {
        &self.shared.verify_token
    }

    /// The fake's clock, Unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.now()
    }

    /// Moves the fake's clock (and so the 24-hour window) forward.
    pub fn advance_clock(&self, secs: i64) {
        lock(&self.shared.state).clock_offset += secs;
    }

    /// Marks the access token expired: every later call gets 190 (HTTP 401).
    pub fn expire_token(&self) {
        lock(&self.shared.state).token_valid = false;
    }

    /// Records that `wa_id` wrote to the business at the fake's `now` (opens the window)
    /// without delivering a webhook.
    pub fn open_window(&self, wa_id: &str) {
        let now = self.now();
        lock(&self.shared.state)
            .last_inbound
            .insert(digits(wa_id), now);
    }

    /// Where the Meta side POSTs webhooks (the callback URL of the App Dashboard).
    pub fn set_webhook_url(&self, url: Option<&str>) {
        lock(&self.shared.state).webhook_url = url.map(str::to_string);
    }

    pub fn webhook_url(&self) -> Option<String> {
        lock(&self.shared.state).webhook_url.clone()
    }

    /// The status webhooks sent after each accepted text message.
    pub fn set_status_plan(&self, plan: StatusPlan) {
        lock(&self.shared.state).status_plan = plan;
    }

    /// Queues a one-shot fault for the next request of `kind`.
    pub fn fail_next(&self, kind: Kind, fault: Fault) {
        lock(&self.shared.state)
            .faults
            .entry(kind)
            .or_default()
            .push_back(fault);
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.state).calls.clone()
    }

    pub fn calls_of(&self, kind: Kind) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.kind == kind)
            .collect()
    }

    pub fn sent_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).sent.clone()
    }

    /// Every webhook POST the Meta side made (statuses included), in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.state).deliveries.clone()
    }

    /// Polls `f` until it returns `Some` or `timeout` passes.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- Meta side: building webhook payloads ----

    /// A text message from `wa_id` (digits, no `+`), timestamped with the fake's clock.
    pub fn text_message(&self, wa_id: &str, body: &str) -> Value {
        self.message(wa_id, "text", json!({"text": {"body": body}}))
    }

    /// A text message from `wa_id` in a group (Cloud API groups add `group_id`).
    pub fn group_text_message(&self, wa_id: &str, group_id: &str, body: &str) -> Value {
        let mut m = self.text_message(wa_id, body);
        m["group_id"] = json!(group_id);
        m
    }

    /// A message of `kind` with the type-specific fields in `extra` (merged in).
    pub fn message(&self, wa_id: &str, kind: &str, extra: Value) -> Value {
        let mut m = json!({
            "from": wa_id, "id": self.shared.wamid(),
            "timestamp": self.now().to_string(), "type": kind,
        });
        if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
            m.extend(extra);
        }
        m
    }

    /// A `value` of a `messages` change carrying `messages` (with their senders' contacts)
    /// and `statuses`.
    pub fn change_value(&self, messages: &[Value], statuses: &[Value]) -> Value {
        let mut v = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.shared.display_number,
                         "phone_number_id": self.shared.phone_number_id},
        });
        if !messages.is_empty() {
            let mut seen = Vec::new();
            let contacts: Vec<Value> = messages
                .iter()
                .filter_map(|m| m["from"].as_str())
                .filter(|f| {
                    let new = !seen.contains(f);
                    seen.push(*f);
                    new
                })
                .map(|f| json!({"profile": {"name": "Sheena Nelson"}, "wa_id": f}))
                .collect();
            v["contacts"] = json!(contacts);
            v["messages"] = json!(messages);
        }
        if !statuses.is_empty() {
            v["statuses"] = json!(statuses);
        }
        v
    }

    /// The webhook envelope: one entry per element of `entries`, each with one `messages`
    /// change whose value is that element.
    pub fn envelope(&self, entries: &[Value]) -> Value {
        let entries: Vec<Value> = entries
            .iter()
            .map(|value| {
                json!({"id": self.shared.waba_id,
                       "changes": [{"field": "messages", "value": value}]})
            })
            .collect();
        json!({"object": "whatsapp_business_account", "entry": entries})
    }

    /// One envelope carrying these messages in one change.
    pub fn envelope_of(&self, messages: &[Value]) -> Value {
        self.envelope(&[self.change_value(messages, &[])])
    }

    // ---- Meta side: talking to the gateway ----

    /// The verification GET Meta sends when the callback URL is saved; returns (status,
    /// body). `token` defaults to the right verify token.
    pub async fn verify_webhook(
        &self,
        url: &str,
        token: Option<&str>,
        challenge: &str,
    ) -> (u16, String) {
        meta::verify_get(url, token.unwrap_or(&self.shared.verify_token), challenge).await
    }

    /// POSTs `payload` once, signed with the app secret over Meta's `\u`-escaped bytes; records
    /// the delivery. Registers the inbound messages first (window, mark-read targets).
    pub async fn post(&self, payload: &Value) -> Delivery {
        self.note_inbound(payload);
        let url = self
            .webhook_url()
            .expect("fake WhatsApp: no webhook URL set");
        meta::post_signed(&self.shared, &url, payload, meta::Signing::Good).await
    }

    /// POSTs `payload` with a tampered or missing signature.
    pub async fn post_tampered(&self, payload: &Value, t: Tamper) -> Delivery {
        let url = self
            .webhook_url()
            .expect("fake WhatsApp: no webhook URL set");
        let signing = match t {
            Tamper::WrongSecret => meta::Signing::WrongSecret,
            Tamper::MissingSignature => meta::Signing::Missing,
            Tamper::AlteredBody => meta::Signing::Altered,
            Tamper::ReserialisedUtf8 => meta::Signing::Utf8,
        };
        meta::post_signed(&self.shared, &url, payload, signing).await
    }

    /// Delivers like Meta: POSTs, and on a non-2xx answer (or no answer) retries with
    /// backoff until a 2xx or `timeout`. Returns every attempt.
    pub async fn deliver(&self, payload: &Value, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(100);
        let mut out = Vec::new();
        loop {
            let d = self.post(payload).await;
            let ok = (200..300).contains(&d.status);
            out.push(d);
            if ok || Instant::now() + backoff > deadline {
                return out;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn note_inbound(&self, payload: &Value) {
        let mut st = lock(&self.shared.state);
        for e in payload["entry"].as_array().into_iter().flatten() {
            for c in e["changes"].as_array().into_iter().flatten() {
                for m in c["value"]["messages"].as_array().into_iter().flatten() {
                    if let (Some(from), Some(id)) = (m["from"].as_str(), m["id"].as_str()) {
                        let ts = m["timestamp"]
                            .as_str()
                            .and_then(|t| t.parse::<i64>().ok())
                            .unwrap_or(0);
                        let e = st.last_inbound.entry(from.to_string()).or_insert(ts);
                        *e = (*e).max(ts);
                        st.inbound_ids.insert(id.to_string());
                    }
                }
            }
        }
    }

    /// A `statuses[]` element for an outbound message.
    pub fn status(&self, wamid: &str, recipient: &str, status: &str) -> Value {
        meta::status_json(&self.shared, wamid, recipient, status, None)
    }
}

/// How [`FakeWhatsApp::post_tampered`] breaks a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Signed with another secret.
    WrongSecret,
    /// No `X-Hub-Signature-256` header.
    MissingSignature,
    /// Signed, then one byte of the body changed.
    AlteredBody,
    /// Signed over the `\u`-escaped bytes but sent as raw UTF-8 (a re-serialised body).
    ReserialisedUtf8,
}

/// Digits only (`+1 650-555-1234` → `16505551234`).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}
