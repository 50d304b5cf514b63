//! Chat runs: one at a time per session (a lane), queued follow-ups or interrupts, aborts,
//! waiters, and the events clients render.

pub mod events;
pub mod exec;
pub mod prune;
pub mod transcript;

use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_agent::providers::Provider;
use clawgate_agent::tools::Tool;
use clawgate_config::{AgentDefaults, QueueMode};
use clawgate_store::StoreHandle;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Follow-up messages waiting behind a running one, per session.
pub const MAX_QUEUED_PER_SESSION: usize = 32;
/// Finished run summaries kept in memory for `agent.wait` (older ones are answered from the
/// store). `CLAWGATE_MAX_FINISHED_RUNS` overrides it for tests.
const MAX_FINISHED: usize = 1024;
/// Runs accepted but not started yet, over all sessions (queued behind their session's run or
/// waiting for one of the `agents.defaults.maxConcurrent` slots). Beyond it new runs are refused.
/// `CLAWGATE_MAX_WAITING_RUNS` overrides it for tests.
pub const MAX_WAITING_RUNS: usize = 256;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    /// `ok`, `error` or `timeout` (aborted runs are `timeout` with a stop reason).
    pub status: &'static str,
    pub text: String,
    pub stop_reason: String,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: (u64, u64),
    pub started_at: i64,
    pub ended_at: i64,
}

/// A run waiting for its turn or running.
#[derive(Clone)]
pub struct RunRequest {
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    pub user_text: String,
    /// The connection that started it (it also gets the tool-call stream).
    pub initiator: Option<u64>,
    /// Opened once the starter has seen its acknowledgement (see `chat.send`); the run emits
    /// nothing before (for at most [`START_GATE_MAX`]).
    pub start_gate: StartGate,
}

/// The longest a run waits for its [`RunRequest::start_gate`].
pub const START_GATE_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// A one-shot gate a run waits on before its first event; cloning shares it.
#[derive(Clone, Default)]
pub struct StartGate(Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>);

impl StartGate {
    pub fn new(rx: tokio::sync::oneshot::Receiver<()>) -> StartGate {
        StartGate(Arc::new(std::sync::Mutex::new(Some(rx))))
    }

    /// Waits until the gate opens (or its sender is gone, or [`START_GATE_MAX`] passed).
    pub async fn wait(&self) {
        let rx = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            let _ = tokio::time::timeout(START_GATE_MAX, rx).await;
        }
    }
}

struct ActiveRun {
    session_key: String,
    abort: watch::Sender<Option<&'static str>>,
}

#[derive(Default)]
struct Lane {
    running: Option<String>,
    queue: VecDeque<RunRequest>,
}

/// What a config reload may replace while runs go on: a run takes one snapshot when it
/// starts and keeps it to its end.
pub struct AgentSettings {
    pub providers: HashMap<String, Arc<Provider>>,
    pub tools: Arc<Vec<Box<dyn Tool>>>,
    /// `agents.defaults` (its `workspace` and `maxConcurrent` are fixed at start-up).
    pub cfg: AgentDefaults,
    pub max_output_bytes: usize,
}

pub struct ChatRuntime {
    pub store: StoreHandle,
    settings: std::sync::RwLock<Arc<AgentSettings>>,
    pub workspace: PathBuf,
    pub state_dir: PathBuf,
    /// The active config file: the agent's tools never touch it.
    pub config_file: Option<PathBuf>,
    /// `agents.defaults.maxConcurrent` as started (the size of `slots`).
    pub max_concurrent: usize,
    lanes: Mutex<HashMap<String, Lane>>,
    active: Mutex<HashMap<String, ActiveRun>>,
    done: Mutex<HashMap<String, watch::Sender<Option<RunSummary>>>>,
    finished_order: Mutex<VecDeque<String>>,
    /// One permit per run executing at once (`agents.defaults.maxConcurrent`).
    slots: Arc<tokio::sync::Semaphore>,
    /// Accepted runs that have not started (lane queues plus runs waiting for a slot).
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    max_finished: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub enum Submitted {
    Started,
    Queued,
}

/// A place among the runs waiting to start; see [`ChatRuntime::reserve`].
pub struct Reservation<'a> {
    rt: &'a ChatRuntime,
    used: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.rt
                .waiting
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl ChatRuntime {
    pub fn new(
        store: StoreHandle,
        providers: HashMap<String, Arc<Provider>>,
        tools: Arc<Vec<Box<dyn Tool>>>,
        workspace: PathBuf,
        state_dir: PathBuf,
        cfg: AgentDefaults,
        max_output_bytes: usize,
    ) -> ChatRuntime {
        ChatRuntime {
            store,
            workspace,
            state_dir,
            config_file: None,
            max_concurrent: cfg.max_concurrent.max(1),
            lanes: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
            finished_order: Mutex::new(VecDeque::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent.max(1))),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: env_usize("CLAWGATE_MAX_WAITING_RUNS", MAX_WAITING_RUNS),
            max_finished: env_usize("CLAWGATE_MAX_FINISHED_RUNS", MAX_FINISHED),
            settings: std::sync::RwLock::new(Arc::new(AgentSettings {
                providers,
                tools,
                cfg,
                max_output_bytes,
            })),
        }
    }

    /// The providers, tools and agent defaults in force now.
    pub fn settings(&self) -> Arc<AgentSettings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces them (a config reload); runs already started keep their snapshot.
    pub fn set_settings(&self, s: AgentSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
    }

    /// Names the active config file, which the tools must never touch.
    pub fn with_config_file(mut self, path: PathBuf) -> ChatRuntime {
        self.config_file = Some(path);
        self
    }

    /// (running, accepted but not started, waiters: runs whose end `agent.wait` can still
    /// await or read, bounded by the finished runs kept).
    pub fn run_counts(&self) -> (usize, usize, usize) {
        let running = self
            .max_concurrent
            .saturating_sub(self.slots.available_permits());
        let waiting = self.waiting.load(std::sync::atomic::Ordering::Relaxed);
        (running, waiting, lock(&self.done).len())
    }

    /// `"<provider>/<model>"` of the default model, when one is configured.
    pub fn default_model(&self) -> Option<String> {
        self.settings().cfg.model.clone()
    }

    /// Reserves a place among the runs waiting to start (checked before anything is stored,
    /// so a refused run leaves no trace). Dropping the reservation unused gives it back.
    pub fn reserve(&self, session_key: &str) -> Result<Reservation<'_>, String> {
        use std::sync::atomic::Ordering;
        if lock(&self.lanes)
            .get(session_key)
            .is_some_and(|l| l.queue.len() >= MAX_QUEUED_PER_SESSION)
        {
            return Err(format!(
                "this session already has {MAX_QUEUED_PER_SESSION} messages waiting; wait for the current run or abort it"
            ));
        }
        let max = self.max_waiting;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(format!(
                "the gateway is busy: {max} runs are already waiting to start \
                 (agents.defaults.maxConcurrent = {}); try again later",
                self.max_concurrent
            ));
        }
        Ok(Reservation {
            rt: self,
            used: false,
        })
    }

    /// Queues or starts a run in its session's lane, using a reservation from [`reserve`].
    pub fn submit(
        &self,
        gw: &Arc<Gateway>,
        mut slot: Reservation<'_>,
        req: RunRequest,
    ) -> Result<Submitted, String> {
        use std::sync::atomic::Ordering;
        slot.used = true;
        let (tx, _) = watch::channel(None);
        lock(&self.done).insert(req.run_id.clone(), tx);
        let mut lanes = lock(&self.lanes);
        let lane = lanes.entry(req.session_key.clone()).or_default();
        if lane.running.is_none() {
            lane.running = Some(req.run_id.clone());
            drop(lanes);
            self.spawn(gw, req);
            return Ok(Submitted::Started);
        }
        if lane.queue.len() >= MAX_QUEUED_PER_SESSION {
            lock(&self.done).remove(&req.run_id);
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(format!(
                "this session already has {MAX_QUEUED_PER_SESSION} messages waiting; wait for the current run or abort it"
            ));
        }
        let running = lane.running.clone();
        lane.queue.push_back(req);
        drop(lanes);
        if self.settings().cfg.queue_mode == QueueMode::Interrupt {
            if let Some(r) = running {
                self.signal_abort(&r, "interrupt");
            }
        }
        Ok(Submitted::Queued)
    }

    fn spawn(&self, gw: &Arc<Gateway>, req: RunRequest) {
        let (abort_tx, abort_rx) = watch::channel(None);
        lock(&self.active).insert(
            req.run_id.clone(),
            ActiveRun {
                session_key: req.session_key.clone(),
                abort: abort_tx,
            },
        );
        let gw = gw.clone();
        let slots = self.slots.clone();
        tokio::spawn(async move {
            let mut abort_rx = abort_rx;
            // A run takes one of the maxConcurrent slots before it starts; aborted while
            // waiting, it ends without ever starting.
            let permit = tokio::select! {
                p = slots.acquire_owned() => p.ok(),
                _ = abort_rx.wait_for(|a| a.is_some()) => None,
            };
            gw.chat
                .waiting
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            let aborted = abort_rx.borrow().is_some();
            let summary = match permit {
                Some(_) if !aborted => {
                    let s = exec::execute(&gw, &req, abort_rx).await;
                    drop(permit);
                    s
                }
                _ => exec::aborted_before_start(&gw, &req).await,
            };
            gw.chat.finish(&gw, summary);
        });
    }

    /// Publishes a finished run's summary to its waiters and bounds how many are kept.
    fn record_finished(&self, summary: &RunSummary) {
        if let Some(tx) = lock(&self.done).get(&summary.run_id) {
            tx.send_replace(Some(summary.clone()));
        }
        let mut order = lock(&self.finished_order);
        order.push_back(summary.run_id.clone());
        while order.len() > self.max_finished {
            if let Some(old) = order.pop_front() {
                lock(&self.done).remove(&old);
            }
        }
    }

    /// Records the end of a run and starts the next one in its lane.
    fn finish(&self, gw: &Arc<Gateway>, summary: RunSummary) {
        lock(&self.active).remove(&summary.run_id);
        self.record_finished(&summary);
        let next = {
            let mut lanes = lock(&self.lanes);
            let Some(lane) = lanes.get_mut(&summary.session_key) else {
                return;
            };
            lane.running = None;
            match lane.queue.pop_front() {
                Some(next) => {
                    lane.running = Some(next.run_id.clone());
                    Some(next)
                }
                None => {
                    lanes.remove(&summary.session_key);
                    None
                }
            }
        };
        if let Some(next) = next {
            self.spawn(gw, next);
        }
    }

    fn signal_abort(&self, run_id: &str, reason: &'static str) -> bool {
        match lock(&self.active).get(run_id) {
            Some(a) => {
                a.abort.send_replace(Some(reason));
                true
            }
            None => false,
        }
    }

    /// Aborts the session's running run (or just `run_id`) and drops matching queued runs.
    /// Waits (bounded) for the aborted runs to emit their final events.
    pub async fn abort(
        &self,
        gw: &Arc<Gateway>,
        session_key: &str,
        run_id: Option<&str>,
    ) -> Vec<String> {
        let matches = |id: &str| run_id.is_none_or(|r| r == id);
        let mut ids = Vec::new();
        let dropped: Vec<RunRequest> = {
            let mut lanes = lock(&self.lanes);
            match lanes.get_mut(session_key) {
                Some(lane) => {
                    let (drop, keep): (Vec<_>, Vec<_>) =
                        lane.queue.drain(..).partition(|q| matches(&q.run_id));
                    lane.queue = keep.into();
                    drop
                }
                None => Vec::new(),
            }
        };
        let mut waits = Vec::new();
        {
            let active = lock(&self.active);
            for (id, a) in active.iter() {
                if a.session_key == session_key && matches(id) {
                    a.abort.send_replace(Some("rpc"));
                    ids.push(id.clone());
                    if let Some(tx) = lock(&self.done).get(id) {
                        waits.push(tx.subscribe());
                    }
                }
            }
        }
        for q in dropped {
            ids.push(q.run_id.clone());
            self.waiting
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            let summary = exec::aborted_before_start(gw, &q).await;
            // Like any finished run: its waiters get the summary, and it counts against the
            // bound of kept summaries (it used to stay in `done` forever).
            self.record_finished(&summary);
        }
        for mut w in waits {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                w.wait_for(|s| s.is_some()),
            )
            .await;
        }
        ids
    }

    /// Waits until the run ends or `timeout` passes; `None` when unknown or still running.
    pub async fn wait(&self, run_id: &str, timeout: std::time::Duration) -> Option<RunSummary> {
        let rx = lock(&self.done).get(run_id).map(|tx| tx.subscribe());
        let mut rx = rx?;
        let res = tokio::time::timeout(timeout, rx.wait_for(|s| s.is_some())).await;
        match res {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
    }

    /// Whether the run is queued or running.
    pub fn is_active(&self, run_id: &str) -> bool {
        if lock(&self.active).contains_key(run_id) {
            return true;
        }
        lock(&self.lanes)
            .values()
            .any(|l| l.queue.iter().any(|q| q.run_id == run_id))
    }

    pub fn active_runs_of(&self, session_key: &str) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.active)
            .iter()
            .filter(|(_, a)| a.session_key == session_key)
            .map(|(id, _)| id.clone())
            .collect();
        if let Some(l) = lock(&self.lanes).get(session_key) {
            ids.extend(l.queue.iter().map(|q| q.run_id.clone()));
        }
        ids
    }

    /// Aborts everything (gateway shutdown).
    pub fn abort_all(&self) {
        for a in lock(&self.active).values() {
            a.abort.send_replace(Some("shutdown"));
        }
    }

    pub fn now() -> i64 {
        now_ms()
    }
}

/// Why a turn could not be started.
#[derive(Debug)]
pub enum TurnError {
    Store(String),
    Busy(String),
}

/// Stores the user message durably, records the run, and queues it in the session's lane.
/// Shared by `chat.send`, `agent` and the channels. One store round trip.
pub async fn start_turn(
    gw: &Arc<Gateway>,
    key: &str,
    run_id: &str,
    text: &str,
    initiator: Option<u64>,
) -> Result<(), TurnError> {
    start_claimed_turn(gw, key, run_id, text, initiator, None, StartGate::default())
        .await
        .map(|_| ())
}

/// [`start_turn`] that first claims `run_id` as the idempotency key of `method` (when given),
/// in the same store round trip. A key already claimed starts nothing and returns
/// [`Claim::Existing`](clawgate_store::Claim::Existing).
pub async fn start_claimed_turn(
    gw: &Arc<Gateway>,
    key: &str,
    run_id: &str,
    text: &str,
    initiator: Option<u64>,
    method: Option<&'static str>,
    start_gate: StartGate,
) -> Result<clawgate_store::Claim, TurnError> {
    use crate::chat::events::{session_message, sessions_changed};
    use clawgate_store::Claim;
    let slot = match gw.chat.reserve(key) {
        Ok(slot) => slot,
        Err(busy) => {
            // A retry of a key already claimed still gets its run, even when busy.
            if let Some(m) = method {
                let rid = run_id.to_string();
                let existing = gw
                    .chat
                    .store
                    .call(move |s| s.idempotency_run(m, &rid))
                    .await
                    .map_err(|e| TurnError::Store(e.to_string()))?;
                if let Some(run_id) = existing {
                    return Ok(Claim::Existing { run_id });
                }
            }
            return Err(TurnError::Busy(busy));
        }
    };
    let now = now_ms();
    let content = transcript::user_message(text, now);
    let (k, rid) = (key.to_string(), run_id.to_string());
    let started = gw
        .chat
        .store
        .call(move |store| {
            if let Some(m) = method {
                if let Claim::Existing { run_id } = store.claim_idempotency(&rid, m, &rid, now)? {
                    return Ok(Err(run_id));
                }
            }
            let session = store.ensure_session(&k, crate::keys::agent_of(&k), now)?;
            let user_key = format!("{rid}:user");
            let row = store.append_entry(&clawgate_store::NewEntry {
                session_key: &k,
                role: "user",
                content: &content,
                run_id: Some(&rid),
                idempotency_key: Some(&user_key),
                usage: None,
                meta: None,
                ts: now,
            })?;
            store.insert_run(&rid, &k, &session.session_id, now)?;
            Ok(Ok((session, row)))
        })
        .await
        .map_err(|e| TurnError::Store(e.to_string()))?;
    let (session, row) = match started {
        Ok(x) => x,
        Err(run_id) => return Ok(Claim::Existing { run_id }),
    };
    session_message(gw, key, &transcript::wire(&row), &row.id, row.seq);
    sessions_changed(
        gw,
        key,
        "send",
        Some(crate::methods::sessions::row_json(gw, &session)),
    );
    let submitted = gw.chat.submit(
        gw,
        slot,
        RunRequest {
            run_id: run_id.to_string(),
            session_key: key.to_string(),
            session_id: session.session_id,
            user_text: with_system_events(gw, key, text),
            initiator,
            start_gate,
        },
    );
    if let Err(e) = submitted {
        // Lost a race for the session's queue after storing: end the run record and free
        // the key, so a retry with the same key starts afresh.
        let (rid, msg, ended) = (run_id.to_string(), e.clone(), now_ms());
        let _ = gw
            .chat
            .store
            .call(move |s| {
                s.finish_run(&rid, "error", Some("error"), Some(&msg), ended, None)?;
                if let Some(m) = method {
                    s.forget_idempotency(m, &rid)?;
                }
                Ok(())
            })
            .await;
        return Err(TurnError::Busy(e));
    }
    Ok(Claim::New)
}

/// The model's view of the user's message: the system events `wake` queued for the session
/// (taken now, so each is seen once), one `System:` line each, before the message itself.
/// The stored transcript keeps the message as the user wrote it.
fn with_system_events(gw: &Gateway, key: &str, text: &str) -> String {
    let events = gw.take_system_events(key);
    if events.is_empty() {
        return text.to_string();
    }
    let mut out = String::new();
    for e in events {
        out.push_str("System: ");
        out.push_str(&e.text);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(text);
    out
}

/// A stored run as the `agent.wait` / idempotent-retry status.
pub fn stored_status(row: &clawgate_store::RunRow) -> Value {
    serde_json::json!({
        "runId": row.run_id,
        "status": match row.status.as_str() { "running" => "in_flight", s => s },
        "endedAt": row.ended_at,
        "stopReason": row.stop_reason,
    })
}
