//! The state every connection and method shares.

use crate::conns::Registry;
use crate::devices::{now_ms, DeviceStore};
use crate::ratelimit::AuthRateLimiter;
use clawgate_config::{AuthMode, Config, GatewayConfig, Secret};
use clawgate_protocol::frame::StateVersion;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::watch;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The shared secret the gateway checks, per `gateway.auth.mode`.
pub struct AuthSettings {
    pub mode: AuthMode,
    pub secret: Option<Secret>,
}

/// Timings that tests may shorten through the environment.
#[derive(Clone, Copy)]
pub struct Timings {
    pub tick_interval_ms: u64,
    pub handshake_timeout_ms: u64,
    pub health_refresh_ms: u64,
    /// Outbound bytes queued per connection before it is closed as a slow consumer.
    pub max_buffered_bytes: usize,
    /// How often expired store rows are pruned (`store.retention`).
    pub prune_interval_ms: u64,
}

impl Timings {
    pub fn from_env() -> Self {
        let get = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Timings {
            tick_interval_ms: get(
                "CLAWGATE_TICK_INTERVAL_MS",
                clawgate_protocol::TICK_INTERVAL_MS,
            ),
            handshake_timeout_ms: get(
                "CLAWGATE_HANDSHAKE_TIMEOUT_MS",
                clawgate_protocol::HANDSHAKE_TIMEOUT_MS,
            ),
            health_refresh_ms: get("CLAWGATE_HEALTH_REFRESH_MS", 60_000),
            max_buffered_bytes: usize::try_from(get(
                "CLAWGATE_MAX_BUFFERED_BYTES",
                clawgate_protocol::MAX_BUFFERED_BYTES as u64,
            ))
            .unwrap_or(clawgate_protocol::MAX_BUFFERED_BYTES),
            prune_interval_ms: get("CLAWGATE_PRUNE_INTERVAL_MS", 3_600_000),
        }
    }
}

/// A system event queued by `wake` for a session's next agent turn.
#[derive(Clone, Debug)]
pub struct SystemEvent {
    pub session_key: String,
    pub text: String,
    pub ts: i64,
}

/// One UI/TUI/webchat client in the presence list.
#[derive(Clone)]
pub struct PresenceEntry {
    pub conn_id: u64,
    pub value: Value,
}

/// The browser-facing allowlists (`gateway.allowedOrigins`, `gateway.allowedHosts` and the
/// loopback defaults); a config reload replaces them whole.
pub struct Allowlists {
    /// The three loopback origins of this port first, then the configured ones.
    pub origins: Vec<String>,
    pub hosts: Vec<String>,
}

impl Allowlists {
    pub fn new(cfg: &GatewayConfig, port: u16) -> Allowlists {
        let mut origins = vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
            format!("http://[::1]:{port}"),
        ];
        origins.extend(cfg.allowed_origins.iter().cloned());
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()];
        hosts.push(bracket_host(&cfg.host));
        hosts.extend(cfg.allowed_hosts.iter().cloned());
        // Kept for compatibility: the host names of allowed origins are allowed hosts too.
        for o in &cfg.allowed_origins {
            if let Some(h) = origin_host(o) {
                hosts.push(h);
            }
        }
        hosts.sort();
        hosts.dedup();
        Allowlists { origins, hosts }
    }
}

pub struct Gateway {
    /// The config as the gateway started. Keys that need a restart (host, port, auth, channel
    /// credentials, controlUi, …) are read here; keys a reload applies live are read from
    /// [`Gateway::live_config`].
    pub config: Config,
    /// The config in force: `config` plus what reloads applied (see `crate::reload`).
    live_config: RwLock<Arc<Config>>,
    /// Serialises reloads; holds the text of the file last applied (to list changed keys).
    pub reload: tokio::sync::Mutex<crate::reload::Applied>,
    pub auth: AuthSettings,
    pub home: PathBuf,
    pub log_path: PathBuf,
    pub token_file: Option<PathBuf>,
    pub port: u16,
    pub boot_id: String,
    pub started: Instant,
    pub started_ms: i64,
    pub hostname: String,
    pub timings: Timings,
    pub conns: Registry,
    pub limiter: AuthRateLimiter,
    pub devices: DeviceStore,
    pub trusted_proxies: Vec<IpNet>,
    allowlists: RwLock<Arc<Allowlists>>,
    presence: Mutex<Vec<PresenceEntry>>,
    state_version: Mutex<StateVersion>,
    pub shutdown: watch::Sender<bool>,
    pub last_heartbeat: Mutex<Option<Value>>,
    /// System events queued by `wake`, oldest first, until a turn in their session takes them.
    pub system_events: Mutex<Vec<SystemEvent>>,
    pub chat: crate::chat::ChatRuntime,
    /// The running channels, in registry order.
    pub channels: Vec<crate::channels::Running>,
    /// The session count and most recent sessions for the health snapshot, read from the
    /// store by [`Gateway::refresh_sessions`] (when, count, recent).
    sessions_summary: Mutex<(Option<Instant>, u64, Vec<Value>)>,
}

/// Sessions listed in the health snapshot's `recent`.
const HEALTH_RECENT_SESSIONS: usize = 5;

/// How old the session summary may be before `health`/`status` read the store again. Every
/// session change made through the gateway also marks it stale at once
/// ([`Gateway::sessions_summary_stale`]), so this only bounds changes made elsewhere, while a
/// health RPC under load costs no store round trip.
pub const SESSIONS_SUMMARY_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a health refresh waits for the store before using the last summary (the store
/// thread may be waiting on another process's write lock).
const HEALTH_STORE_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

pub struct GatewayParts {
    pub config: Config,
    pub auth: AuthSettings,
    pub home: PathBuf,
    pub log_path: PathBuf,
    pub token_file: Option<PathBuf>,
    pub port: u16,
    pub devices: DeviceStore,
    pub chat: crate::chat::ChatRuntime,
    /// The running channels, in registry order.
    pub channels: Vec<crate::channels::Running>,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Gateway {
        let cfg = &parts.config.gateway;
        let port = parts.port;
        let allowlists = Allowlists::new(cfg, port);
        let (shutdown, _) = watch::channel(false);
        let conns = Registry::new(cfg.max_connections, cfg.max_buffered_bytes_total);
        Gateway {
            limiter: AuthRateLimiter::new(cfg.auth.rate_limit),
            trusted_proxies: cfg.trusted_proxies.clone(),
            allowlists: RwLock::new(Arc::new(allowlists)),
            live_config: RwLock::new(Arc::new(parts.config.clone())),
            reload: tokio::sync::Mutex::new(crate::reload::Applied::read(&parts.config.path)),
            config: parts.config,
            auth: parts.auth,
            home: parts.home,
            log_path: parts.log_path,
            token_file: parts.token_file,
            port,
            boot_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            started_ms: now_ms(),
            hostname: hostname(),
            timings: Timings::from_env(),
            conns,
            devices: parts.devices,
            presence: Mutex::new(Vec::new()),
            state_version: Mutex::new(StateVersion {
                presence: 1,
                health: 1,
            }),
            shutdown,
            last_heartbeat: Mutex::new(None),
            system_events: Mutex::new(Vec::new()),
            chat: parts.chat,
            channels: parts.channels,
            sessions_summary: Mutex::new((None, 0, Vec::new())),
        }
    }

    /// A session was created, changed or deleted: the next health/status reads the store.
    pub fn sessions_summary_stale(&self) {
        self.sessions_summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0 = None;
    }

    /// Re-reads the session count and the most recent sessions from the store unless the
    /// summary is younger than `max_age`. One COUNT and one small indexed page; when the store
    /// does not answer within a short wait, the previous summary stays.
    pub async fn refresh_sessions(&self, max_age: std::time::Duration) {
        let fresh = self
            .sessions_summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .is_some_and(|t| t.elapsed() < max_age);
        if fresh {
            return;
        }
        let read = self
            .chat
            .store
            .call(|s| s.list_sessions(HEALTH_RECENT_SESSIONS, 0));
        let Ok(Ok((rows, total))) = tokio::time::timeout(HEALTH_STORE_WAIT, read).await else {
            return;
        };
        let now = now_ms();
        let recent = rows
            .iter()
            .map(|r| {
                json!({"key": r.key, "updatedAt": r.updated_at,
                       "age": now.saturating_sub(r.updated_at).max(0)})
            })
            .collect();
        *self
            .sessions_summary
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), total as u64, recent);
    }

    /// The config in force now (start-up config plus the keys reloads applied live).
    pub fn live_config(&self) -> Arc<Config> {
        self.live_config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The browser-facing allowlists in force now.
    pub fn allowlists(&self) -> Arc<Allowlists> {
        self.allowlists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs a reloaded config (see `crate::reload`): the caller has already kept the
    /// running values of the keys that need a restart.
    pub fn set_live_config(&self, config: Config) {
        let lists = Allowlists::new(&config.gateway, self.port);
        *self.allowlists.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(lists);
        *self.live_config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// Removes and returns the system events queued for `session_key`, oldest first.
    pub fn take_system_events(&self, session_key: &str) -> Vec<SystemEvent> {
        let mut q = self.system_events.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest): (Vec<_>, Vec<_>) =
            q.drain(..).partition(|e| e.session_key == session_key);
        *q = rest;
        mine
    }

    /// The texts of the queued system events, oldest first (`status.queuedSystemEvents`).
    pub fn queued_system_events(&self) -> Vec<String> {
        self.system_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| e.text.clone())
            .collect()
    }

    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn state_version(&self) -> StateVersion {
        *self.state_version.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, presence: bool) -> StateVersion {
        let mut sv = self.state_version.lock().unwrap_or_else(|p| p.into_inner());
        if presence {
            sv.presence += 1;
        } else {
            sv.health += 1;
        }
        *sv
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The gateway's own presence entry (always first).
    pub fn self_presence(&self) -> Value {
        let ip = if clawgate_config::is_loopback_ip(
            self.config
                .gateway
                .host
                .parse()
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
        ) {
            "127.0.0.1".to_string()
        } else {
            self.config.gateway.host.clone()
        };
        let platform = format!("linux {}", kernel_release());
        json!({
            "host": self.hostname, "ip": ip, "version": VERSION, "platform": platform,
            "deviceFamily": "Linux", "mode": "gateway", "reason": "self",
            "instanceId": self.boot_id,
            "text": format!("Gateway: {} ({ip}) · app {VERSION} · mode gateway · reason self", self.hostname),
            "ts": now_ms(),
        })
    }

    pub fn presence_list(&self) -> Vec<Value> {
        let mut out = vec![self.self_presence()];
        out.extend(
            self.presence
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|e| e.value.clone()),
        );
        out
    }

    pub fn add_presence(&self, conn_id: u64, value: Value) {
        self.presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PresenceEntry { conn_id, value });
        self.broadcast_presence();
    }

    pub fn remove_presence(&self, conn_id: u64) {
        let removed = {
            let mut p = self.presence.lock().unwrap_or_else(|p| p.into_inner());
            let before = p.len();
            p.retain(|e| e.conn_id != conn_id);
            before != p.len()
        };
        if removed {
            self.broadcast_presence();
        }
    }

    fn broadcast_presence(&self) {
        let sv = self.bump(true);
        let payload = json!({"presence": self.presence_list()});
        self.conns.broadcast("presence", &payload, Some(&sv));
    }

    /// The health snapshot (the `health` method result, event payload and `snapshot.health`).
    pub fn health_snapshot(&self) -> Value {
        let started = Instant::now();
        // The session database itself (OpenClaw reports its sessions file here).
        let state_path = self.chat.store.path().map_or_else(
            || self.home.display().to_string(),
            |p| p.display().to_string(),
        );
        let (count, recent) = {
            let s = self
                .sessions_summary
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (s.1, s.2.clone())
        };
        let sessions = json!({"path": state_path, "count": count, "recent": recent});
        json!({
            "ok": true,
            "ts": now_ms(),
            "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            "channels": {}, "channelOrder": [], "channelLabels": {},
            "heartbeatSeconds": 0,
            "defaultAgentId": "main",
            "agents": [{
                "agentId": "main", "isDefault": true,
                // No heartbeat runner exists: disabled, with no prompt, no delivery target
                // ("none") and no acknowledgement budget.
                "heartbeat": {"enabled": false, "every": "disabled", "everyMs": null,
                              "prompt": "", "target": "none", "ackMaxChars": 0},
                "sessions": sessions,
            }],
            "sessions": sessions,
        })
    }

    pub async fn broadcast_health(&self) {
        self.refresh_sessions(SESSIONS_SUMMARY_MAX_AGE).await;
        let sv = self.bump(false);
        self.conns
            .broadcast("health", &self.health_snapshot(), Some(&sv));
    }

    /// Whether `ip` is one of `gateway.trustedProxies`.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = crate::ratelimit::canonical_ip(ip);
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// The host part of a normalized origin (`scheme://host[:port]`), bracketed for IPv6.
fn origin_host(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| format!("[{h}]"));
    }
    Some(rest.split(':').next()?.to_string())
}

fn bracket_host(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]")
    } else {
        h
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
