//! clawgate's configuration: the `config.yaml` model with its defaults, strict validation
//! that names `config.yaml:LINE:COL`, `${ENV}` substitution, and secrets as a type.

pub mod channel;
pub mod escape;
pub mod paths;
pub mod schema;
pub mod secret;
mod validate;
mod validate_agent;
mod validate_channels;
mod validate_store;
pub mod yaml;

use ipnet::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use channel::{ChannelConfigParser, ChannelEntry, ChannelSection};
pub use secret::Secret;
pub use validate::{describe, join, ConfigError, Ctx};
pub use validate_agent::DANGEROUS_EXEC_KEY;

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 18789;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Token,
    Password,
    None,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::None => "none",
        }
    }
}

/// Failed-auth throttling: `max_attempts` failures within `window_ms` lock the client
/// address out for `lockout_ms`; `global_max_attempts` failures within `window_ms` across
/// all non-loopback addresses lock out every non-loopback address that has not
/// authenticated recently, for `lockout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    pub global_max_attempts: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            global_max_attempts: 100,
        }
    }
}

/// HTTP connections open at once (from accept until the exchange ends or the connection
/// becomes a WebSocket), in total.
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 1024;
/// … and from one non-loopback address (IPv6: one /64) that is not a trusted proxy.
pub const DEFAULT_MAX_HTTP_CONNECTIONS_PER_ADDRESS: usize = 64;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// `gateway.auth.token` as written (after `${ENV}` substitution).
    pub token: Option<Secret>,
    /// `gateway.auth.tokenFile`: where `token` was read from (a Docker/systemd secret file).
    pub token_file: Option<std::path::PathBuf>,
    pub password: Option<Secret>,
    pub rate_limit: RateLimit,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub host: String,
    pub port: u16,
    pub auth: AuthConfig,
    pub allowed_origins: Vec<String>,
    /// `gateway.allowedHosts`: names accepted in `Host` on browser-facing routes (lowercase,
    /// no port), besides loopback names; host names of `allowedOrigins` are accepted too.
    pub allowed_hosts: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// `gateway.maxHttpConnections`.
    pub max_http_connections: usize,
    /// `gateway.maxHttpConnectionsPerAddress`.
    pub max_http_connections_per_address: usize,
    /// `gateway.maxConnections`: authenticated WebSocket connections at once.
    pub max_connections: usize,
    /// `gateway.maxBufferedBytesTotal`: outbound bytes queued across all connections.
    pub max_buffered_bytes_total: usize,
    /// `gateway.controlUi`: OpenClaw's browser Control UI served from a directory.
    pub control_ui: ControlUiConfig,
}

/// `gateway.controlUi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUiConfig {
    /// `enabled` (default true): `false` serves no browser UI at all.
    pub enabled: bool,
    /// `root`: a built Control UI directory (it holds `index.html`), absolute; relative
    /// paths in the file are taken from the config file's directory.
    pub root: Option<PathBuf>,
    /// `basePath`: the URL prefix the UI is mounted at, normalised to `""` or `/a/b`
    /// (leading slash, no trailing slash).
    pub base_path: String,
}

impl Default for ControlUiConfig {
    fn default() -> Self {
        ControlUiConfig {
            enabled: true,
            root: None,
            base_path: String::new(),
        }
    }
}

/// Normalises a Control UI base path: surrounding whitespace and slashes go, one leading
/// slash is added; `""` and `"/"` mean the root. `Err` for characters that cannot appear
/// in a URL path prefix as written (`?`, `#`, `%`, `\\`, whitespace, control characters, `.`/`..`
/// segments, empty segments).
pub fn normalize_base_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(format!(
                "`{raw}` is not a URL path prefix (empty, `.` or `..` segment)"
            ));
        }
        if let Some(c) = seg.chars().find(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '?' | '#' | '%' | '\\' | '"' | '<' | '>')
        }) {
            return Err(format!(
                "`{raw}` is not a URL path prefix (`{}` is not allowed)",
                c.escape_default()
            ));
        }
    }
    Ok(format!("/{trimmed}"))
}

/// Default `gateway.maxConnections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default `gateway.maxBufferedBytesTotal` (256 MiB).
pub const DEFAULT_MAX_BUFFERED_BYTES_TOTAL: usize = 256 * 1024 * 1024;

/// Which wire API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderApi {
    /// `POST {baseUrl}/chat/completions` (OpenAI, Ollama, LM Studio, llama.cpp, vLLM, OpenRouter).
    OpenAiCompletions,
    /// `POST {baseUrl}/v1/messages`.
    AnthropicMessages,
}

#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub id: String,
    pub name: Option<String>,
    pub context_window: u64,
    pub max_tokens: u32,
}

/// `models.providers.<id>`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub id: String,
    pub api: ProviderApi,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub models: Vec<ModelEntry>,
    /// Extra request headers; values may be secrets, so they are never printed.
    pub headers: Vec<(String, Secret)>,
    pub connect_timeout_ms: u64,
    pub first_token_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub max_retries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    /// A message arriving during a run waits for it.
    Followup,
    /// A message arriving during a run aborts it.
    Interrupt,
}

/// `agents.defaults`.
#[derive(Debug, Clone)]
pub struct AgentDefaults {
    /// `"<provider>/<model>"`.
    pub model: Option<String>,
    pub fallbacks: Vec<String>,
    /// `None` ⇒ `$CLAWGATE_HOME/workspace`.
    pub workspace: Option<PathBuf>,
    pub max_tool_iterations: u32,
    pub timeout_ms: u64,
    pub queue_mode: QueueMode,
    pub bootstrap_max_chars: usize,
    pub context_tokens: Option<u64>,
    /// Runs executing at once over all sessions (`agents.defaults.maxConcurrent`).
    pub max_concurrent: usize,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            model: None,
            fallbacks: Vec::new(),
            workspace: None,
            max_tool_iterations: 25,
            timeout_ms: 600_000,
            queue_mode: QueueMode::Followup,
            bootstrap_max_chars: 20_000,
            context_tokens: None,
            max_concurrent: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    Deny,
    Allowlist,
}

/// `tools.exec.sandbox`: how exec children are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecSandbox {
    /// Landlock: the workspace read/write, system directories read-only, no TCP, nothing of
    /// the state directory or the config file. Exec is refused where Landlock is missing.
    Landlock,
    /// No confinement beyond the allowlist (explicit opt-out, e.g. for kernels before 5.13).
    None,
}

#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub mode: ExecMode,
    /// Programs that may run in allowlist mode (absolute paths, or bare names looked up in /usr/bin:/bin).
    pub allowlist: Vec<String>,
    pub timeout_ms: u64,
    pub sandbox: ExecSandbox,
    /// `tools.exec.dangerouslyAllowEscapeHatches`: lets the allowlist name programs that run
    /// other programs or code (shells, `env`, `find`, interpreters, ...; see [`escape`]).
    pub dangerously_allow_escape_hatches: bool,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            mode: ExecMode::Deny,
            allowlist: Vec::new(),
            timeout_ms: 30_000,
            sandbox: ExecSandbox::Landlock,
            dangerously_allow_escape_hatches: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebFetchConfig {
    pub enabled: bool,
    pub max_response_bytes: usize,
    pub timeout_ms: u64,
    pub max_redirects: u32,
}

#[derive(Debug, Clone)]
pub struct ToolsConfig {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub exec: ExecConfig,
    pub web_fetch: WebFetchConfig,
    /// Largest tool output handed to the model (bytes).
    pub max_output_bytes: usize,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            exec: ExecConfig::default(),
            web_fetch: WebFetchConfig {
                enabled: true,
                max_response_bytes: 750_000,
                timeout_ms: 30_000,
                max_redirects: 3,
            },
            max_output_bytes: 64 * 1024,
        }
    }
}

/// `session.dmScope`: how direct messages map to sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmScope {
    Main,
    PerPeer,
    PerChannelPeer,
    PerAccountChannelPeer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPolicy {
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

/// A group/channel entry of a channel section (`channels.<name>.groups.<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub require_mention: bool,
    pub enabled: bool,
}

/// Plain data: the running gateway is built from it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (it may not exist: then every value is a default).
    pub path: PathBuf,
    pub gateway: GatewayConfig,
    pub providers: Vec<ProviderConfig>,
    pub agent: AgentDefaults,
    pub tools: ToolsConfig,
    pub dm_scope: DmScope,
    /// The configured `channels.<name>` sections, in file order.
    pub channels: Vec<ChannelEntry>,
    pub store: StoreConfig,
    pub logging: LoggingConfig,
}

/// `store.retention`: how long finished rows are kept before the periodic sweep deletes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Channel inbound messages already answered or ignored (`inboundDays`).
    pub inbound_days: u64,
    /// Reply chunks already sent or given up (`outboxDays`).
    pub outbox_days: u64,
    /// Idempotency keys of runs no longer running (`idempotencyHours`).
    pub idempotency_hours: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            inbound_days: 30,
            outbox_days: 30,
            idempotency_hours: 24,
        }
    }
}

/// `store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreConfig {
    pub retention: RetentionConfig,
}

/// `logging.level`: the least severe level written (stderr and the log file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const NAMES: [&'static str; 5] = ["error", "warn", "info", "debug", "trace"];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn from_name(s: &str) -> Option<LogLevel> {
        Some(match s {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }
}

/// `logging`: the gateway's own log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `level` (default `info`; `CLAWGATE_LOG` overrides it). Applied live on reload.
    pub level: LogLevel,
    /// The file is rotated when a write would take it past this size (`maxFileBytes`).
    pub max_file_bytes: u64,
    /// Rotated files kept (`gateway.log.1` … `.N`, `maxFiles`).
    pub max_files: u32,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: LogLevel::Info,
            max_file_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: PathBuf::from("config.yaml"),
            gateway: GatewayConfig {
                host: DEFAULT_HOST.into(),
                port: DEFAULT_PORT,
                auth: AuthConfig {
                    mode: AuthMode::Token,
                    token: None,
                    token_file: None,
                    password: None,
                    rate_limit: RateLimit::default(),
                },
                allowed_origins: Vec::new(),
                allowed_hosts: Vec::new(),
                trusted_proxies: Vec::new(),
                max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
                max_http_connections_per_address: DEFAULT_MAX_HTTP_CONNECTIONS_PER_ADDRESS,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_buffered_bytes_total: DEFAULT_MAX_BUFFERED_BYTES_TOTAL,
                control_ui: ControlUiConfig::default(),
            },
            providers: Vec::new(),
            agent: AgentDefaults::default(),
            tools: ToolsConfig::default(),
            dm_scope: DmScope::PerChannelPeer,
            channels: Vec::new(),
            store: StoreConfig::default(),
            logging: LoggingConfig::default(),
        }
    }
}

impl Config {
    /// Every secret value this config holds (gateway token/password, channel credentials,
    /// provider keys and headers), whatever their source.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = [&self.gateway.auth.token, &self.gateway.auth.password]
            .into_iter()
            .flatten()
            .map(|s| s.expose())
            .collect();
        for c in &self.channels {
            out.extend(c.section.secrets().into_iter().map(|s| s.expose()));
        }
        for p in &self.providers {
            out.extend(
                p.api_key
                    .iter()
                    .chain(p.headers.iter().map(|(_, v)| v))
                    .map(|s| s.expose()),
            );
        }
        out
    }

    /// How many secret values are written literally in `raw` (the config file's text),
    /// rather than referenced as `${VAR}` or kept in a token file.
    pub fn inline_secret_count(&self, raw: &str) -> usize {
        self.secret_values()
            .into_iter()
            .filter(|v| v.len() >= 4 && raw.contains(v))
            .count()
    }

    /// A warning when the file at `self.path` holds secrets inline and can be read by group
    /// or others, with the fix; `None` otherwise.
    pub fn exposed_secrets_warning(&self) -> Option<String> {
        let mode = paths::mode_of(&self.path)?;
        if mode & 0o044 == 0 {
            return None;
        }
        let raw = std::fs::read_to_string(&self.path).ok()?;
        let n = self.inline_secret_count(&raw);
        (n > 0).then(|| {
            format!(
                "{path} holds {n} secret(s) inline and is readable by group or others (mode {mode:o}): \
                 run `chmod 600 {path}`, or move them to environment variables (`token: ${{MY_TOKEN}}`)",
                path = self.path.display()
            )
        })
    }

    /// Settings that load but probably do not do what the user meant, one sentence each
    /// with the fix (logged at start-up, listed by `clawgate doctor`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.gateway.auth.token_file {
            if paths::mode_of(f).is_some_and(|m| m & 0o004 != 0) {
                out.push(format!(
                    "gateway.auth.tokenFile {} is readable by every user on this system; run `chmod 600 {}` \
                     (fine inside a container where only the gateway runs)",
                    f.display(),
                    f.display()
                ));
            }
        }
        for p in &self.providers {
            if p.api != ProviderApi::OpenAiCompletions {
                continue;
            }
            let rest = p.base_url.split_once("://").map_or("", |(_, r)| r);
            let path = rest.find('/').map_or("", |i| &rest[i..]);
            if path.trim_end_matches('/').is_empty() {
                let base = p.base_url.trim_end_matches('/');
                out.push(format!(
                    "models.providers.{}.baseUrl is `{}` with no path: requests would go to {base}/chat/completions, \
                     but OpenAI-compatible servers (Ollama, LM Studio, vLLM, llama.cpp) serve that under /v1; use {base}/v1",
                    p.id, p.base_url
                ));
            }
        }
        out
    }

    /// The section of channel `name`, when configured.
    pub fn channel(&self, name: &str) -> Option<&ChannelEntry> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// Parses and validates config text. `file_label` names the file in error messages.
    /// No channel is known: a `channels.<name>` section is an unknown key. The gateway and
    /// the CLI use [`Config::load_with`] with the channel registry.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        validate::parse(text, path, &|name| std::env::var(name).ok(), &[])
    }

    /// Parses with the given channel section parsers (`clawgate_channels::registry`).
    pub fn parse_with(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        channels: &[&dyn ChannelConfigParser],
    ) -> Result<Config, Vec<ConfigError>> {
        validate::parse(text, path, env, channels)
    }

    /// Same as [`Config::parse`] with an explicit environment (for tests).
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigError>> {
        validate::parse(text, path, env, &[])
    }

    /// Reads and validates the file at `path` (at most [`MAX_CONFIG_BYTES`]).
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        Config::load_with(path, &[])
    }

    /// [`Config::load`] with the channel section parsers.
    pub fn load_with(
        path: &Path,
        channels: &[&dyn ChannelConfigParser],
    ) -> Result<Config, Vec<ConfigError>> {
        use std::io::Read;
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|f| {
            f.take(MAX_CONFIG_BYTES as u64 + 1)
                .read_to_string(&mut text)
        });
        match read {
            Ok(n) if n > MAX_CONFIG_BYTES => Err(vec![ConfigError::too_large(path)]),
            Ok(_) => validate::parse(&text, path, &|name| std::env::var(name).ok(), channels),
            Err(e) => Err(vec![ConfigError::io(path, &e)]),
        }
    }
}

/// The largest config file clawgate reads (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Whether a bind host is a loopback address: 127.0.0.0/8, ::1, or an IPv4-mapped loopback.
/// The unspecified addresses (`0.0.0.0`, `::`) are never loopback.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether a host name (no port; IPv6 in brackets or bare) is a loopback literal:
/// `localhost`, a dotted-quad in 127.0.0.0/8, `::1`, or an IPv4-mapped loopback.
/// Names that merely start like one (`127.0.0.1.evil.com`) are not.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().to_ascii_lowercase();
    if h == "localhost" {
        return true;
    }
    let bare = h
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(&h);
    bare.parse::<IpAddr>().is_ok_and(is_loopback_ip)
}

/// Splits `host[:port]` (as in a `Host` header or a URL authority without user info) into
/// the lower-cased host (IPv6 kept in brackets) and the port. `None` when malformed: an
/// empty host, a port that is not a number, or junk after an IPv6 literal.
pub fn split_host_port(value: &str) -> Option<(String, Option<u16>)> {
    let v = value.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{h}]"), port)
    } else {
        match v.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (v.clone(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// The commented default written on first run.
pub const DEFAULT_CONFIG_YAML: &str = r#"# clawgate configuration (YAML). Every key is optional; unknown keys stop start-up.
# Reference: docs/configuration.md in the clawgate repository.

gateway:
  # Keep the gateway on loopback. To use it from another machine, tunnel over SSH:
  #   ssh -L 18789:127.0.0.1:18789 user@this-host
  # or put a reverse proxy with its own auth in front of it (docs/reverse-proxy.md).
  host: 127.0.0.1
  port: 18789

  auth:
    # token (default) | password | none (refused on any non-loopback host)
    mode: token
    # Without a token here, clawgate uses the one in credentials/gateway-token
    # next to this file (generated on first run, readable only by you).
    # token: ${MY_GATEWAY_TOKEN}
    # Failed logins per client address before a lockout (all of loopback is one address).
    # rateLimit: { maxAttempts: 10, windowMs: 60000, lockoutMs: 300000, globalMaxAttempts: 100 }

  # Browser origins allowed to open the WebSocket, besides the gateway's own
  # http://127.0.0.1:<port>, http://localhost:<port> and http://[::1]:<port>.
  # Exact matches only.
  allowedOrigins: []

  # Host names this gateway answers to on browser-facing routes (a DNS-rebinding guard),
  # besides localhost/127.0.0.1/[::1]. Channel webhook routes do not need them.
  # allowedHosts: ["claw.example.com"]

  # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed. Requests that
  # carry forwarded headers are never treated as local clients.
  trustedProxies: []
"#;

#[cfg(test)]
mod tests;
