//! WhatsApp (Cloud API) as a running channel: the webhook on the shared gate (verification
//! GET, signature on the raw bytes, one stored row per `wamid`), status reports applied to
//! the outbox, the Graph sender with the 24-hour window, mark-read + typing.

use super::api::{window_error, Graph, TOKEN_FIX, WINDOW_SECS};
use super::config::{to_e164, Parser, WhatsAppConfig};
use super::inbound::{self, CHANNEL};
use super::webhook::{self, StatusReport, SIGNATURE_HEADER};
use crate::access::{LivePolicy, PolicySet};
use crate::plugin::{
    BoxFuture, Channel, ChannelPlugin, Egress, Host, OutChunk, Rejected, RestartNeeded, Webhook,
    WebhookEvent,
};
use crate::status::{now_ms, StatusCell};
use crate::{InboundMessage, SendError};
use clawgate_config::yaml::Node;
use clawgate_config::{ChannelConfigParser, ChannelEntry, ChannelSection, Ctx};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// The registry entry.
pub struct Plugin;

impl ChannelConfigParser for Plugin {
    fn name(&self) -> &'static str {
        Parser.name()
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        Parser.parse_section(ctx, node)
    }
}

impl ChannelPlugin for Plugin {
    fn label(&self) -> &'static str {
        "WhatsApp"
    }

    fn setup_hint(&self) -> String {
        "Set channels.whatsapp (phoneNumberId, accessToken, appSecret, verifyToken from your Meta app) in config.yaml and restart the gateway; see docs/channels.md#whatsapp.".into()
    }

    fn build(&self, entry: &ChannelEntry, host: Arc<dyn Host>) -> Result<Arc<dyn Channel>, String> {
        let cfg = entry
            .get::<WhatsAppConfig>()
            .ok_or("channels.whatsapp: unexpected section type")?;
        Ok(Arc::new(WhatsApp::new(cfg.clone(), host)?))
    }
}

/// What the channel knows about a chat's last inbound message.
#[derive(Debug, Clone)]
struct LastInbound {
    /// Meta's timestamp (Unix seconds) of the newest message.
    at: i64,
    wamid: String,
}

/// How long a typing indicator lasts on WhatsApp is 25 s; it is re-sent after this.
const TYPING_EVERY: Duration = Duration::from_secs(20);
/// How long a status report waits for its outbox row (the send's result is recorded just
/// after Graph answers, and a fast report can overtake it).
const STATUS_WAIT: Duration = Duration::from_secs(30);

pub struct WhatsApp {
    pub cfg: WhatsAppConfig,
    graph: Arc<Graph>,
    status: StatusCell,
    host: Arc<dyn Host>,
    /// Newest inbound message per chat; also kept in the store's state (see
    /// [`last_inbound_key`]) so the window survives a restart.
    last_inbound: Arc<Mutex<HashMap<String, LastInbound>>>,
    /// chat → (when, message id) of the last mark-read/typing call.
    typing: Mutex<HashMap<String, (Instant, String)>>,
    reports: mpsc::Sender<StatusReport>,
    reports_rx: Mutex<Option<mpsc::Receiver<StatusReport>>>,
    /// `dmPolicy`, `allowFrom`, `groups` as running (a reload replaces them).
    policy: LivePolicy,
}

fn policy_of(cfg: &WhatsAppConfig) -> PolicySet {
    PolicySet {
        dm_policy: cfg.dm_policy,
        allow_from: cfg.allow_from.clone(),
        groups: cfg.groups.clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Status reports waiting to be applied; beyond this they are dropped with a warning (a report
/// only refines a row's delivery status).
const MAX_QUEUED_REPORTS: usize = 1024;
/// Reports being applied at once (each may wait up to [`STATUS_WAIT`] for its row).
const MAX_APPLYING_REPORTS: usize = 64;

/// The state key holding a chat's newest inbound time (Unix seconds).
fn last_inbound_key(chat: &str) -> String {
    format!("{CHANNEL}:default:last_inbound:{}", chat_key(chat))
}

/// `16505551234` and `+16505551234` are the same chat for the window.
fn chat_key(chat: &str) -> String {
    chat.strip_prefix('+').unwrap_or(chat).to_string()
}

fn is_individual(chat: &str) -> bool {
    let d = chat_key(chat);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

impl WhatsApp {
    pub fn new(cfg: WhatsAppConfig, host: Arc<dyn Host>) -> Result<WhatsApp, String> {
        let token = cfg
            .access_token
            .clone()
            .ok_or("channels.whatsapp.accessToken is not set")?;
        let graph = Graph::new(
            &cfg.graph_base_url,
            &cfg.graph_api_version,
            &cfg.phone_number_id,
            token,
        )?;
        let (tx, rx) = mpsc::channel(MAX_QUEUED_REPORTS);
        Ok(WhatsApp {
            policy: LivePolicy::new(policy_of(&cfg)),
            cfg,
            graph: Arc::new(graph),
            status: StatusCell::default(),
            host,
            last_inbound: Arc::default(),
            typing: Mutex::new(HashMap::new()),
            reports: tx,
            reports_rx: Mutex::new(Some(rx)),
        })
    }

    /// Remembers the newest inbound message of a chat (the window, the mark-read target).
    fn note_inbound(&self, stored: &Value) {
        let (Some(chat), Some(at)) = (inbound::chat_of(stored), inbound::timestamp(stored)) else {
            return;
        };
        let wamid = stored["message"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = chat_key(&chat);
        {
            let mut map = lock(&self.last_inbound);
            match map.get(&key) {
                Some(e) if e.at > at => return,
                Some(e) if e.at == at && e.wamid == wamid => return,
                _ => {}
            }
            map.insert(key.clone(), LastInbound { at, wamid });
        }
        // Persisted in the background; the task writes whatever is newest when it runs, so
        // writes that overtake each other still leave the newest time.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (host, map) = (self.host.clone(), self.last_inbound.clone());
        rt.spawn(async move {
            let Some(newest) = lock(&map).get(&key).map(|l| l.at) else {
                return;
            };
            if let Err(e) = host
                .set_state(last_inbound_key(&key), newest.to_string())
                .await
            {
                warn!(
                    channel = CHANNEL,
                    "cannot record the last inbound time (the 24-hour window is still checked by Meta): {e}"
                );
            }
        });
    }

    /// The chat's newest inbound time: remembered, or read back from the store after a
    /// restart.
    async fn last_inbound_at(&self, chat: &str) -> Option<i64> {
        let key = chat_key(chat);
        if let Some(l) = lock(&self.last_inbound).get(&key) {
            return Some(l.at);
        }
        let stored = match self.host.get_state(last_inbound_key(&key)).await {
            Ok(v) => v?.parse::<i64>().ok()?,
            Err(e) => {
                warn!(channel = CHANNEL, "cannot read the last inbound time: {e}");
                return None;
            }
        };
        let mut map = lock(&self.last_inbound);
        let e = map.entry(key).or_insert(LastInbound {
            at: stored,
            wamid: String::new(),
        });
        Some(e.at)
    }

    /// Applies status reports to the outbox until the gateway stops.
    async fn apply_reports(self: Arc<Self>) {
        self.status.update(|s| {
            s.running = true;
            s.connected = true;
        });
        let Some(mut rx) = lock(&self.reports_rx).take() else {
            return;
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_APPLYING_REPORTS));
        while let Some(r) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.apply(r).await;
                drop(permit);
            });
        }
    }

    async fn apply(&self, r: StatusReport) {
        let error = r
            .error
            .as_ref()
            .map(|(code, text)| format!("Graph error {code}: {text}"));
        // Shown in the status before the outbox row changes, so whoever sees the failed row
        // also sees why.
        if r.status == "failed" {
            let to = inbound::sender_e164(&r.recipient);
            let why = error.clone().unwrap_or_else(|| "no reason given".into());
            warn!(channel = CHANNEL, to = %to, "WhatsApp could not deliver a message: {why}");
            if matches!(r.error, Some((190, _)) | Some((0, _))) {
                self.unhealthy(&why);
            } else {
                self.status
                    .update(|s| s.last_error = Some(format!("delivery to {to} failed: {why}")));
            }
        }
        let deadline = Instant::now() + STATUS_WAIT;
        loop {
            match self
                .host
                .delivery_status(r.id.clone(), r.status.clone(), error.clone())
                .await
            {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(false) => {
                    debug!(channel = CHANNEL, id = %r.id, "status report for a message this gateway did not send");
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    debug!(
                        channel = CHANNEL,
                        "cannot record a delivery report yet (retrying): {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    warn!(channel = CHANNEL, "cannot record a delivery report: {e}");
                    break;
                }
            }
        }
    }

    /// The token was refused: shown in `channels.status` (and its issues) with the fix.
    fn unhealthy(&self, why: &str) {
        self.status.update(|s| {
            s.connected = false;
            s.last_error = Some(format!("{TOKEN_FIX} ({why})"));
        });
    }

    /// Marks the chat's last message read with the typing indicator, in the background: a
    /// slow or failing call never delays the reply.
    fn typing_now(&self, chat: &str) {
        if !self.cfg.send_read_receipts {
            return;
        }
        let Some(last) = lock(&self.last_inbound).get(&chat_key(chat)).cloned() else {
            return;
        };
        if last.wamid.is_empty() {
            return;
        }
        {
            let mut t = lock(&self.typing);
            if let Some((at, id)) = t.get(chat) {
                if *id == last.wamid && at.elapsed() < TYPING_EVERY {
                    return;
                }
            }
            t.insert(chat.to_string(), (Instant::now(), last.wamid.clone()));
        }
        let graph = self.graph.clone();
        tokio::spawn(async move {
            if let Err(e) = graph.mark_read(&last.wamid, true).await {
                info!(
                    channel = CHANNEL,
                    "mark-read/typing failed (ignored; the reply is not affected): {e}"
                );
            }
        });
    }
}

impl Webhook for WhatsApp {
    fn path(&self) -> &str {
        &self.cfg.webhook_path
    }

    /// `X-Hub-Signature-256` over the exact bytes received, before anything is parsed.
    fn verify_body(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now_secs: i64,
    ) -> Result<(), Rejected> {
        let secret = self
            .cfg
            .app_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or("");
        if secret.is_empty() {
            return Err(Rejected::new("unauthorized", "no app secret configured"));
        }
        let sig = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
        webhook::verify_signature(secret, sig, body)
            .map_err(|e| Rejected::new("unauthorized", format!("whatsapp signature: {e}")))
    }

    /// Every message of every entry and change, one row per `wamid` (Meta retries for days
    /// and sends duplicates); status reports go to the outbox.
    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, Rejected> {
        let batch = webhook::parse_batch(body).map_err(|e| Rejected::new("bad_event", e))?;
        for (code, text) in &batch.errors {
            warn!(
                channel = CHANNEL,
                "WhatsApp reported an error: {code} {text}"
            );
            if *code == 190 || *code == 0 {
                self.unhealthy(&format!("Graph error {code}: {text}"));
            } else {
                let msg = format!("WhatsApp reported error {code}: {text}");
                self.status.update(|s| s.last_error = Some(msg));
            }
        }
        for r in batch.statuses {
            if self.reports.try_send(r).is_err() {
                warn!(
                    channel = CHANNEL,
                    "too many delivery reports waiting; one was dropped"
                );
            }
        }
        for (_, stored) in &batch.messages {
            self.note_inbound(stored);
        }
        if batch.messages.is_empty() {
            return Ok(WebhookEvent::Ignore);
        }
        Ok(WebhookEvent::StoreMany(batch.messages))
    }

    fn verify_get(&self, query: &str) -> Option<Result<String, Rejected>> {
        let token = self
            .cfg
            .verify_token
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or("");
        Some(
            webhook::verify_subscription(token, query).map_err(|e| {
                Rejected::new("forbidden", format!("webhook verification refused: {e}"))
            }),
        )
    }
}

impl Egress for WhatsApp {
    fn chunk_limit(&self) -> usize {
        self.cfg.text_chunk_limit
    }

    fn send<'a>(&'a self, c: OutChunk<'a>) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let individual = is_individual(c.chat_id);
            if individual {
                let last = self.last_inbound_at(c.chat_id).await;
                let now = now_ms() / 1000;
                if let Some(at) = last.filter(|at| now - at > WINDOW_SECS) {
                    let hours = (now - at) / 3600;
                    let e = window_error(&format!(
                        "the last message from {} was {hours} hours ago, so the reply was not sent",
                        inbound::sender_e164(&chat_key(c.chat_id))
                    ));
                    return Err(SendError::Permanent(e));
                }
            }
            let text = super::format::to_whatsapp(c.text);
            match self
                .graph
                .send_text(c.chat_id, &text, c.reply_to, !individual)
                .await
            {
                Ok(id) => {
                    self.status.update(|s| {
                        if !s.connected
                            && s.last_error
                                .as_deref()
                                .is_some_and(|e| e.starts_with(TOKEN_FIX))
                        {
                            s.last_error = None;
                        }
                        s.connected = true;
                    });
                    Ok(Some(id).filter(|i| !i.is_empty()))
                }
                Err(e) => {
                    if e.is_auth() {
                        self.unhealthy(&e.to_string());
                    }
                    let classified = e.classify();
                    if let SendError::Permanent(m) = &classified {
                        info!(channel = CHANNEL, "reply not sent: {m}");
                    }
                    Err(classified)
                }
            }
        })
    }

    fn typing<'a>(&'a self, chat_id: &'a str, _thread_id: Option<&'a str>) -> BoxFuture<'a, ()> {
        self.typing_now(chat_id);
        Box::pin(async {})
    }
}

impl Channel for WhatsApp {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn label(&self) -> &'static str {
        "WhatsApp"
    }

    fn mode(&self) -> &'static str {
        "webhook"
    }

    fn status(&self) -> &StatusCell {
        &self.status
    }

    fn webhook(&self) -> Option<&dyn Webhook> {
        Some(self)
    }

    fn setup(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(self.apply_reports()))
    }

    fn ready(&self) -> bool {
        true
    }

    fn parse(&self, raw: &Value) -> Option<InboundMessage> {
        self.note_inbound(raw);
        inbound::to_inbound(raw, "default")
    }

    fn policy(&self) -> Arc<PolicySet> {
        self.policy.get()
    }

    fn live_keys(&self) -> &'static [&'static str] {
        &["dmPolicy", "allowFrom", "groups"]
    }

    fn reconfigure(&self, entry: &ChannelEntry) -> Result<bool, RestartNeeded> {
        let cfg = entry.get::<WhatsAppConfig>().ok_or(RestartNeeded)?;
        Ok(self.policy.set(policy_of(cfg)))
    }

    fn id_line(&self, sender_id: &str) -> String {
        format!("Your WhatsApp phone number: {sender_id}")
    }

    fn egress(&self) -> &dyn Egress {
        self
    }

    /// `+16505551234` (also `whatsapp:+1…`, spaces and dashes allowed), or `group:<id>`.
    fn parse_target(&self, to: &str) -> Result<String, String> {
        let t = to.trim();
        if let Some(g) = t.strip_prefix("group:").filter(|g| !g.trim().is_empty()) {
            return Ok(g.trim().to_string());
        }
        to_e164(t).ok_or_else(|| {
            format!("`{to}` is not a phone number in E.164 form (like +16505551234)")
        })
    }
}
