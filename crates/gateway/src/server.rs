//! Start-up (config, secrets, exposure guard, bind), the accept loop, and shutdown.

use crate::devices::DeviceStore;
use crate::http::{self, AppState, PeerAddr};
use crate::logging::{self, Redactor};
use crate::state::{AuthSettings, Gateway, GatewayParts};
use crate::{exposure, EXIT_CONFIG};
use clawgate_config::paths::{self, clawgate_home};
use clawgate_config::{AuthMode, Config, Secret, DEFAULT_CONFIG_YAML};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, info, warn};

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--host` / `--port` override the file.
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// Why the gateway did not start: the exit code and one clear message.
#[derive(Debug)]
pub struct StartError {
    pub code: i32,
    pub message: String,
}

impl StartError {
    fn config(message: impl Into<String>) -> Self {
        StartError {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }
}

/// Loads the config, creating the default file and token on first run.
pub fn load_config(flag: Option<&std::path::Path>) -> Result<(Config, PathBuf, bool), StartError> {
    let home = clawgate_home();
    let path = paths::config_path(flag);
    let mut created = false;
    if !path.exists() {
        let is_default = flag.is_none() && std::env::var_os("CLAWGATE_CONFIG").is_none();
        if !is_default {
            return Err(StartError::config(format!(
                "{}: config file not found (omit --config/CLAWGATE_CONFIG to use {})",
                path.display(),
                home.join("config.yaml").display()
            )));
        }
        paths::ensure_private_dir(&home).map_err(|e| {
            StartError::config(format!(
                "{}: cannot create state directory: {e}",
                home.display()
            ))
        })?;
        paths::write_private_atomic(&path, DEFAULT_CONFIG_YAML.as_bytes()).map_err(|e| {
            StartError::config(format!(
                "{}: cannot write default config: {e}",
                path.display()
            ))
        })?;
        created = true;
    }
    if let Some(mode) = paths::mode_of(&path) {
        if mode & 0o022 != 0 {
            return Err(StartError::config(format!(
                "{}: config file is writable by group or others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    let config =
        Config::load_with(&path, &clawgate_channels::config_parsers()).map_err(|errs| {
            StartError::config(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    Ok((config, home, created))
}

/// Resolves the shared secret the gateway checks. Token mode without a configured token
/// uses (and on first run creates) `credentials/gateway-token`.
pub fn resolve_secret(
    config: &Config,
    home: &std::path::Path,
) -> Result<(Option<Secret>, Option<PathBuf>), StartError> {
    let auth = &config.gateway.auth;
    match auth.mode {
        AuthMode::None => Ok((None, None)),
        AuthMode::Password => {
            let env = std::env::var("CLAWGATE_GATEWAY_PASSWORD")
                .ok()
                .filter(|v| !v.is_empty());
            match env.map(Secret::new).or_else(|| auth.password.clone()) {
                Some(s) => Ok((Some(s), None)),
                None => Err(StartError::config(format!(
                    "{}: gateway.auth.password: required when gateway.auth.mode is `password` (or set CLAWGATE_GATEWAY_PASSWORD)",
                    config.path.display()
                ))),
            }
        }
        AuthMode::Token => {
            if let Some(env) = std::env::var("CLAWGATE_GATEWAY_TOKEN")
                .ok()
                .filter(|v| !v.is_empty())
            {
                return Ok((Some(Secret::new(env)), None));
            }
            if let Some(t) = &auth.token {
                return Ok((Some(t.clone()), None));
            }
            let file = paths::token_path(home);
            let existing = paths::read_token_file(&file)
                .map_err(|e| StartError::config(format!("{}: {e}", file.display())))?;
            let token = match existing {
                Some(t) => t,
                None => {
                    let dir = file.parent().unwrap_or(home);
                    paths::ensure_private_dir(home)
                        .and_then(|_| paths::ensure_private_dir(dir))
                        .map_err(|e| StartError::config(format!("{}: {e}", dir.display())))?;
                    let t = paths::generate_token()
                        .map_err(|e| StartError::config(format!("cannot generate a token: {e}")))?;
                    paths::write_private_atomic(&file, format!("{t}\n").as_bytes())
                        .map_err(|e| StartError::config(format!("{}: {e}", file.display())))?;
                    t
                }
            };
            Ok((Some(Secret::new(token)), Some(file)))
        }
    }
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(opts: RunOptions) -> Result<(), StartError> {
    let (mut config, home, created) = load_config(opts.config.as_deref())?;
    if let Some(h) = &opts.host {
        config.gateway.host = h.clone();
    }
    let port = opts.port.unwrap_or(config.gateway.port);
    let (secret, token_file) = resolve_secret(&config, &home)?;

    // The guardrail runs before any socket exists.
    let addrs = exposure::resolve(&config.gateway.host, port).map_err(StartError::config)?;
    let host_source = if opts.host.is_some() {
        "--host"
    } else {
        "gateway.host"
    };
    if let Some(msg) = exposure::check(
        &config.gateway.host,
        host_source,
        &addrs,
        config.gateway.auth.mode,
        secret.as_ref(),
    ) {
        return Err(StartError::config(msg));
    }

    paths::ensure_private_dir(&home)
        .map_err(|e| StartError::config(format!("{}: {e}", home.display())))?;
    let log_path = home.join("logs").join("gateway.log");
    let redactor = Redactor::default();
    if let Some(s) = &secret {
        redactor.add(s.expose());
    }
    for s in config.secret_values() {
        redactor.add(s);
    }
    logging::init(Some(&log_path), &redactor, &config.logging)
        .map_err(|e| StartError::config(format!("{}: {e}", log_path.display())))?;
    if created {
        info!(path = %config.path.display(), "wrote a default config file");
    }
    if let Some(w) = config.exposed_secrets_warning() {
        warn!("{w}");
    }
    for w in config.warnings() {
        warn!("{w}");
    }

    raise_nofile_limit();
    let listener = bind(&addrs).await?;
    let local = listener.local_addr().map_err(|e| StartError {
        code: 1,
        message: e.to_string(),
    })?;
    let chat = build_chat(&config, &home)?;
    // Device auth runs on the blocking pool (connects with a device identity, the
    // device.pair.* methods) with its own connection to state.db; WAL lets it read while the
    // store thread writes, and busy_timeout orders the rare concurrent writes.
    let db = home.join("state.db");
    let device_db = clawgate_store::Store::open(&db).map_err(|e| {
        StartError::config(format!(
            "{}: cannot open the state database: {e}",
            db.display()
        ))
    })?;
    let device_home = home.clone();
    let devices =
        tokio::task::spawn_blocking(move || DeviceStore::open(Arc::new(device_db), &device_home))
            .await
            .map_err(|e| StartError::config(e.to_string()))?
            .map_err(StartError::config)?;
    let channels = crate::channels::build(&config, &chat.store).map_err(StartError::config)?;
    let mode = config.gateway.auth.mode;
    let gw = Arc::new(Gateway::new(GatewayParts {
        config,
        auth: AuthSettings { mode, secret },
        home: home.clone(),
        log_path,
        token_file: token_file.clone(),
        port: local.port(),
        devices,
        chat,
        channels,
    }));
    // Handlers first, then the line that tells scripts we are up: a SIGTERM/SIGINT sent right
    // after it must reach the clean shutdown, not the default action.
    let signals = tokio::spawn(wait_for_signal(install_signals()));
    crate::reload::spawn_sighup(gw.clone());
    banner(&gw, local, token_file.as_deref());
    // Under systemd (Type=notify): ready once the listener is bound and the banner is out.
    if let Err(e) = crate::sdnotify::notify(&format!(
        "READY=1\nSTATUS=listening on {local}\nMAINPID={}",
        std::process::id()
    )) {
        warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
    }

    let preauth = Arc::new(crate::preauth::PreauthSlots::default());
    let app = http::router(AppState {
        gw: gw.clone(),
        preauth,
    });
    spawn_periodic(gw.clone());
    crate::chat::prune::spawn(gw.clone());
    crate::channels::spawn_all(&gw);

    let http_conns = Arc::new(crate::connlimit::HttpConns::new(
        gw.config.gateway.max_http_connections,
        gw.config.gateway.max_http_connections_per_address,
    ));
    let mut shutdown_rx = gw.shutdown.subscribe();
    tokio::pin!(signals);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, addr) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let slot = match http_conns.try_acquire(peer_class(&gw, addr)) {
                    Ok(slot) => slot,
                    Err(why) => {
                        // Refused before reading a byte: say so without waiting, then close.
                        debug!(peer = %addr, ?why, "connection refused: too many open HTTP connections");
                        let _ = stream.try_write(crate::connlimit::BUSY_RESPONSE);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(PeerAddr(addr));
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
            _ = &mut signals => break,
            _ = shutdown_rx.changed() => break,
        }
    }
    let _ = crate::sdnotify::notify("STOPPING=1\nSTATUS=shutting down");
    shutdown(&gw).await;
    Ok(())
}

/// Time to send a request head (and to start the next one on a kept-alive connection):
/// a slowloris on headers is cut off here.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the accept loop's connection caps see a peer.
fn peer_class(gw: &Gateway, addr: SocketAddr) -> crate::connlimit::PeerClass {
    use crate::connlimit::PeerClass;
    let ip = crate::ratelimit::canonical_ip(addr.ip());
    if clawgate_config::is_loopback_ip(ip) {
        PeerClass::Loopback
    } else if gw.is_trusted_proxy(ip) {
        PeerClass::TrustedProxy
    } else {
        PeerClass::Remote(crate::ratelimit::bucket(ip))
    }
}

/// The agent runtime: the SQLite store, the providers, the tools and the workspace.
fn build_chat(
    config: &Config,
    home: &std::path::Path,
) -> Result<crate::chat::ChatRuntime, StartError> {
    let db = home.join("state.db");
    let store = clawgate_store::Store::open(&db).map_err(|e| {
        StartError::config(format!(
            "{}: cannot open the state database: {e}",
            db.display()
        ))
    })?;
    match store.mark_interrupted_runs(crate::devices::now_ms()) {
        Ok(n) if n > 0 => warn!("{n} run(s) were interrupted by the previous shutdown"),
        Ok(_) => {}
        Err(e) => warn!("cannot mark interrupted runs: {e}"),
    }
    let mut providers = std::collections::HashMap::new();
    for p in &config.providers {
        let provider =
            clawgate_agent::providers::Provider::new(p.clone()).map_err(StartError::config)?;
        providers.insert(p.id.clone(), Arc::new(provider));
    }
    let workspace = config
        .agent
        .workspace
        .clone()
        .unwrap_or_else(|| home.join("workspace"));
    paths::ensure_private_dir(&workspace).map_err(|e| {
        StartError::config(format!(
            "{}: cannot create the workspace: {e}",
            workspace.display()
        ))
    })?;
    match clawgate_agent::tools::check_exec_sandbox(&config.tools) {
        Ok(Some(note)) => warn!("{note}"),
        Ok(None) => {}
        Err(msg) => {
            return Err(StartError::config(format!(
                "{}: {msg}",
                config.path.display()
            )))
        }
    }
    let tools = clawgate_agent::tools::build_tools(&config.tools);
    if config.agent.model.is_none() {
        warn!("no model configured (agents.defaults.model): chats will answer with setup instructions");
    }
    let store = clawgate_store::StoreHandle::spawn(store, clawgate_store::DEFAULT_QUEUE)
        .map_err(|e| StartError::config(format!("cannot start the store thread: {e}")))?;
    Ok(crate::chat::ChatRuntime::new(
        store,
        providers,
        Arc::new(tools),
        workspace,
        home.to_path_buf(),
        config.agent.clone(),
        config.tools.max_output_bytes,
    )
    .with_config_file(std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone())))
}

/// Many idle clients each hold a descriptor: lift the soft limit to the hard one.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn bind(addrs: &[SocketAddr]) -> Result<TcpListener, StartError> {
    let mut last = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        return Err(StartError::config("gateway.host: nothing to bind"));
    };
    if e.kind() == std::io::ErrorKind::AddrInUse {
        let who = match probe_healthz(*addr).await {
            Some(true) => "It answers /healthz like a gateway: another clawgate or OpenClaw gateway is already running there \
                           (check with `clawgate gateway status`).",
            Some(false) => "Something else is listening there (it does not answer /healthz like a gateway).",
            None => "Another program holds it (it did not answer HTTP within 2 s, so it is not a gateway).",
        };
        let port = addr.port();
        let free = match free_port_after(*addr) {
            Some(p) => format!("`clawgate gateway run --port {p}` (free now)"),
            None => "`clawgate gateway run --port <another port>`".to_string(),
        };
        return Err(StartError {
            code: 1,
            message: format!(
                "cannot listen on {addr}: address already in use. {who}\n\
                 Pick another port with {free} or gateway.port in config.yaml, \
                 or stop the other process (`ss -ltnp 'sport = :{port}'` shows it)."
            ),
        });
    }
    Err(StartError {
        code: 1,
        message: format!("cannot listen on {addr}: {e}"),
    })
}

/// The first port after `addr`'s that can be bound on the same address right now.
fn free_port_after(addr: SocketAddr) -> Option<u16> {
    (1..=50u16).find_map(|i| {
        let port = addr.port().checked_add(i)?;
        std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port))
            .ok()
            .map(|_| port)
    })
}

/// `Some(true)` when something answers `GET /healthz` like a gateway.
async fn probe_healthz(addr: SocketAddr) -> Option<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let _ = s.take(64 * 1024).read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        Some(text.starts_with("HTTP/1.1 200") && text.contains("\"ok\":true"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
}

fn banner(gw: &Gateway, local: SocketAddr, token_file: Option<&std::path::Path>) {
    let loopback = clawgate_config::is_loopback_ip(local.ip());
    info!(
        "clawgate {} listening on http://{local} (WebSocket ws://{local}/), auth mode {}",
        crate::state::VERSION,
        gw.auth.mode.as_str()
    );
    if let Some(f) = token_file {
        info!(
            "gateway token: {} (readable only by you; `clawgate dashboard` prints a browser link)",
            f.display()
        );
    }
    if gw.auth.mode == AuthMode::None {
        warn!("gateway.auth.mode is `none`: any local process or browser page on this machine's loopback origins can command the agent");
    }
    if !loopback {
        warn!("==================================================================");
        warn!("gateway is listening on {local}, reachable from other machines.");
        warn!(
            "Only the {} guards it. Prefer 127.0.0.1 + an SSH tunnel or a reverse proxy.",
            gw.auth.mode.as_str()
        );
        warn!("==================================================================");
    }
    // One stable line on stdout for scripts and tests.
    println!("clawgate listening on {local}");
}

fn spawn_periodic(gw: Arc<Gateway>) {
    let tick_gw = gw.clone();
    tokio::spawn(async move {
        let period = Duration::from_millis(tick_gw.timings.tick_interval_ms);
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            iv.tick().await;
            if tick_gw.is_shutting_down() {
                return;
            }
            tick_gw
                .conns
                .broadcast("tick", &json!({"ts": crate::devices::now_ms()}), None);
        }
    });
    tokio::spawn(async move {
        let period = Duration::from_millis(gw.timings.health_refresh_ms);
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            iv.tick().await;
            if gw.is_shutting_down() {
                return;
            }
            gw.broadcast_health().await;
        }
    });
}

type Signals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

/// Registers the SIGTERM and SIGINT handlers now (synchronously).
fn install_signals() -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    Some((
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::interrupt()).ok()?,
    ))
}

async fn wait_for_signal(signals: Signals) {
    let Some((mut term, mut int)) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// `shutdown` event to everyone, close 1012, and wait (bounded) for the writers to drain.
async fn shutdown(gw: &Gateway) {
    info!("shutting down: closing {} connection(s)", gw.conns.len());
    gw.chat.abort_all();
    gw.conns
        .broadcast("shutdown", &json!({"reason": "gateway stopping"}), None);
    gw.conns
        .close_all(clawgate_protocol::close::SERVICE_RESTART, "service restart");
    let _ = gw.shutdown.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while !gw.conns.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    info!("shutdown complete");
}
