//! The CLI commands. Each returns the process exit code: 0 success, 1 failure (2 is clap's
//! usage error).

use crate::client::{http_get, ClientError, Connection, Target};
use crate::ConnArgs;
use clawgate_channels::{DoctorCheck, DoctorLevel};
use clawgate_config::paths::{self, clawgate_home};
use clawgate_config::{is_loopback_ip, AuthMode, Config};
use clawgate_gateway::{exposure, RunOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];

fn fail(msg: &str, hint: Option<&str>) -> u8 {
    eprintln!("error: {msg}");
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    1
}

/// The config if it exists and is valid; defaults otherwise (with the problem, if any).
fn local_config(flag: Option<&std::path::Path>) -> (Config, Option<String>) {
    let path = paths::config_path(flag);
    if !path.exists() {
        return (
            Config {
                path,
                ..Config::default()
            },
            None,
        );
    }
    match Config::load_with(&path, &clawgate_channels::config_parsers()) {
        Ok(c) => (c, None),
        Err(errs) => (
            Config {
                path,
                ..Config::default()
            },
            Some(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
    }
}

fn local_host(cfg: &Config) -> String {
    match cfg.gateway.host.parse::<std::net::IpAddr>() {
        Ok(ip) if is_loopback_ip(ip) && ip.is_ipv6() => format!("[{ip}]"),
        Ok(ip) if is_loopback_ip(ip) => ip.to_string(),
        _ => "127.0.0.1".to_string(),
    }
}

/// Where and how to connect: flags, then environment, then the local config and token file.
/// A config file that exists but does not load is an error here (printed, exit code 1),
/// never a silent fall-back to the defaults — unless `--url`/$CLAWGATE_GATEWAY_URL and a
/// credential are given, which need nothing from the file.
pub fn target(flag: Option<&std::path::Path>, conn: &ConnArgs) -> Result<Target, u8> {
    let (cfg, cfg_err) = local_config(flag);
    let env_url = std::env::var("CLAWGATE_GATEWAY_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let explicit_url = conn.url.clone().or(env_url);
    let explicit_secret = conn.token.is_some()
        || conn.password.is_some()
        || std::env::var("CLAWGATE_GATEWAY_TOKEN").is_ok_and(|v| !v.is_empty())
        || std::env::var("CLAWGATE_GATEWAY_PASSWORD").is_ok_and(|v| !v.is_empty());
    if let Some(err) = cfg_err {
        if explicit_url.is_none() || !explicit_secret {
            return Err(config_invalid(&cfg.path, &err));
        }
    }
    let url =
        explicit_url.unwrap_or_else(|| format!("ws://{}:{}", local_host(&cfg), cfg.gateway.port));
    let loopback_url = url_is_loopback(&url);
    let token = conn
        .token
        .clone()
        .or_else(|| {
            std::env::var("CLAWGATE_GATEWAY_TOKEN")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .or_else(|| {
            // Implicit credentials only go to a gateway on this machine.
            if !loopback_url || cfg.gateway.auth.mode != AuthMode::Token {
                return None;
            }
            cfg.gateway
                .auth
                .token
                .as_ref()
                .map(|s| s.expose().to_string())
                .or_else(|| {
                    paths::read_token_file(&paths::token_path(&clawgate_home()))
                        .ok()
                        .flatten()
                })
        });
    let password = conn
        .password
        .clone()
        .or_else(|| {
            std::env::var("CLAWGATE_GATEWAY_PASSWORD")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .or_else(|| {
            (loopback_url && cfg.gateway.auth.mode == AuthMode::Password)
                .then(|| {
                    cfg.gateway
                        .auth
                        .password
                        .as_ref()
                        .map(|s| s.expose().to_string())
                })
                .flatten()
        });
    Ok(Target {
        url,
        token,
        password,
        token_file: paths::token_path(&clawgate_home()),
    })
}

/// Prints why the config file cannot be used; returns exit code 1.
fn config_invalid(path: &std::path::Path, errors: &str) -> u8 {
    eprintln!("error: {} is invalid:", path.display());
    for line in errors.lines() {
        eprintln!("  {line}");
    }
    eprintln!("hint: fix the file (`clawgate doctor` lists every problem), or pass --url and --token to reach a gateway without it");
    1
}

fn url_is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    host == "localhost" || host.parse().is_ok_and(is_loopback_ip)
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

pub fn print_client_error(e: &ClientError, t: &Target) -> u8 {
    let hint = e.hint(t);
    fail(&e.to_string(), hint.as_deref())
}

pub async fn run_gateway(config: Option<PathBuf>, host: Option<String>, port: Option<u16>) -> u8 {
    match clawgate_gateway::run(RunOptions { config, host, port }).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.message);
            u8::try_from(e.code).unwrap_or(1)
        }
    }
}

pub(crate) async fn one_call(
    flag: Option<PathBuf>,
    conn: &ConnArgs,
    scopes: &[&str],
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, u8> {
    let t = target(flag.as_deref(), conn)?;
    let mut c = Connection::open(&t, scopes, "cli", timeout)
        .await
        .map_err(|e| print_client_error(&e, &t))?;
    let result = c.call(method, params, timeout).await;
    c.close().await;
    result.map_err(|e| match &e {
        ClientError::Rpc(rpc) if conn.json => {
            println!(
                "{}",
                json!({"ok": false, "error": {"code": rpc.code, "message": rpc.message, "details": rpc.details}})
            );
            1
        }
        _ => print_client_error(&e, &t),
    })
}

pub async fn call(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    method: &str,
    params: &str,
    timeout: u64,
) -> u8 {
    let params: Value = match serde_json::from_str(params) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: --params is not valid JSON: {e}");
            eprintln!("hint: quote it for the shell, e.g. --params '{{\"limit\":5}}'");
            return 2;
        }
    };
    match one_call(
        flag,
        &conn,
        ALL_SCOPES,
        method,
        params,
        Duration::from_secs(timeout.max(1)),
    )
    .await
    {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Err(code) => code,
    }
}

/// Calls `method` for a human-readable command; with `--json` the result is printed as is
/// and `Ok(None)` comes back.
pub(crate) async fn query(
    flag: Option<PathBuf>,
    conn: &ConnArgs,
    scopes: &[&str],
    method: &str,
    params: Value,
) -> Result<Option<Value>, u8> {
    let v = one_call(flag, conn, scopes, method, params, Duration::from_secs(15)).await?;
    if conn.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(None);
    }
    Ok(Some(v))
}

pub async fn health(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    match query(flag, &conn, &["operator.read"], "health", json!({})).await {
        Ok(None) => 0,
        Ok(Some(v)) => {
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            println!("Gateway: {}", if ok { "healthy" } else { "unhealthy" });
            println!(
                "Probe duration: {}ms",
                v.get("durationMs").and_then(Value::as_u64).unwrap_or(0)
            );
            println!("Agents: main (default)");
            print_sessions(&v["sessions"]);
            u8::from(!ok)
        }
        Err(code) => code,
    }
}

/// `Sessions: N (store …)` and the most recent keys, from a health/status `sessions` object.
fn print_sessions(s: &Value) {
    let count = s["count"].as_u64().unwrap_or(0);
    match s["path"].as_str() {
        Some(path) => println!("Sessions: {count} (store {path})"),
        None => println!("Sessions: {count}"),
    }
    for r in s["recent"].as_array().into_iter().flatten() {
        let age_s = r["age"].as_u64().unwrap_or(0) / 1000;
        println!("  {} ({age_s}s ago)", r["key"].as_str().unwrap_or("?"));
    }
}

pub async fn status(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    match query(flag, &conn, &["operator.read"], "status", json!({})).await {
        Ok(None) => 0,
        Ok(Some(v)) => {
            let g = &v["gateway"];
            println!("clawgate {}", v["runtimeVersion"].as_str().unwrap_or("?"));
            println!(
                "Listening: {}:{}",
                g["host"].as_str().unwrap_or("?"),
                g["port"]
            );
            println!("Auth mode: {}", g["authMode"].as_str().unwrap_or("?"));
            println!("Uptime: {}s", g["uptimeMs"].as_u64().unwrap_or(0) / 1000);
            println!("Connections: {}", g["connections"]);
            print_sessions(&v["sessions"]);
            println!(
                "Memory (RSS): {:.1} MB",
                v["processMemory"]["rssBytes"].as_u64().unwrap_or(0) as f64 / 1e6
            );
            0
        }
        Err(code) => code,
    }
}

/// One row of a check list: name, ok, detail, and the fix when it failed.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: Option<String>,
}

fn print_checks(checks: &[Check], json_out: bool) -> u8 {
    let all_ok = checks.iter().all(|c| c.ok);
    if json_out {
        let rows: Vec<Value> = checks
            .iter()
            .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix}))
            .collect();
        println!("{}", json!({"ok": all_ok, "checks": rows}));
    } else {
        for c in checks {
            println!(
                "{} {:<12} {}",
                if c.ok { "✓" } else { "✗" },
                c.name,
                c.detail
            );
            if let Some(f) = &c.fix {
                println!("    fix: {f}");
            }
        }
    }
    u8::from(!all_ok)
}

pub async fn gateway_status(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    let t = match target(flag.as_deref(), &conn) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let hp = host_port(&t.url);
    let mut checks = Vec::new();
    let running = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&hp))
        .await
        .is_ok_and(|r| r.is_ok());
    checks.push(Check {
        name: "running",
        ok: running,
        detail: if running {
            format!("something is listening on {hp}")
        } else {
            format!("nothing is listening on {hp}")
        },
        fix: (!running)
            .then(|| "start it: clawgate gateway run (or check --url / gateway.port)".to_string()),
    });
    if running {
        let health = http_get(&hp, "/healthz").await;
        let reachable = matches!(&health, Ok((200, body)) if body.contains("\"ok\":true"));
        checks.push(Check {
            name: "reachable",
            ok: reachable,
            detail: match &health {
                Ok((200, _)) if reachable => "GET /healthz answered 200".into(),
                Ok((code, _)) => format!("GET /healthz answered {code}: not a clawgate gateway?"),
                Err(e) => format!("GET /healthz failed: {e}"),
            },
            fix: (!reachable)
                .then(|| "another program owns this port; pick another with --port".to_string()),
        });
        if reachable {
            match Connection::open(&t, &["operator.read"], "cli", Duration::from_secs(5)).await {
                Ok(c) => {
                    let version = c.hello["server"]["version"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string();
                    let uptime = c.hello["snapshot"]["uptimeMs"].as_u64().unwrap_or(0);
                    c.close().await;
                    checks.push(Check {
                        name: "auth",
                        ok: true,
                        detail: format!("connected (server {version}, up {}s)", uptime / 1000),
                        fix: None,
                    });
                }
                Err(e) => {
                    let fix = e
                        .hint(&t)
                        .unwrap_or_else(|| "check the token or password".into());
                    checks.push(Check {
                        name: "auth",
                        ok: false,
                        detail: e.to_string(),
                        fix: Some(fix),
                    });
                }
            }
        }
    }
    print_checks(&checks, conn.json)
}

pub async fn doctor(flag: Option<PathBuf>) -> u8 {
    let mut checks = Vec::new();
    let home = clawgate_home();
    let path = paths::config_path(flag.as_deref());
    let (cfg, cfg_err) = local_config(flag.as_deref());
    checks.push(match (&cfg_err, path.exists()) {
        (Some(e), _) => Check {
            name: "config",
            ok: false,
            detail: e.clone(),
            fix: Some("fix the keys above and re-run `clawgate doctor`".into()),
        },
        (None, true) => Check {
            name: "config",
            ok: true,
            detail: format!("{} is valid", path.display()),
            fix: None,
        },
        (None, false) => Check {
            name: "config",
            ok: true,
            detail: format!(
                "{} does not exist yet (defaults; `clawgate gateway run` writes it)",
                path.display()
            ),
            fix: None,
        },
    });
    if let Some(mode) = paths::mode_of(&path) {
        let ok = mode & 0o022 == 0;
        checks.push(Check {
            name: "config-mode",
            ok,
            detail: format!("{} mode {mode:o}", path.display()),
            fix: (!ok).then(|| format!("chmod 600 {}", path.display())),
        });
        if cfg_err.is_none() {
            for w in cfg.warnings() {
                checks.push(Check {
                    name: "config-values",
                    ok: false,
                    detail: w,
                    fix: None,
                });
            }
            let warning = cfg.exposed_secrets_warning();
            checks.push(Check {
                name: "config-secrets",
                ok: warning.is_none(),
                detail: warning
                    .clone()
                    .unwrap_or_else(|| "no inline secret is readable by other users".into()),
                fix: warning.map(|_| format!("chmod 600 {}", path.display())),
            });
        }
    }
    match paths::mode_of(&home) {
        Some(mode) => {
            let ok = mode & 0o077 == 0;
            checks.push(Check {
                name: "state-dir",
                ok,
                detail: format!("{} mode {mode:o}", home.display()),
                fix: (!ok).then(|| format!("chmod 700 {}", home.display())),
            });
        }
        None => checks.push(Check {
            name: "state-dir",
            ok: true,
            detail: format!("{} does not exist yet", home.display()),
            fix: None,
        }),
    }
    let token_file = paths::token_path(&home);
    if let Some(mode) = paths::mode_of(&token_file) {
        let ok = mode & 0o077 == 0;
        checks.push(Check {
            name: "token-file",
            ok,
            detail: format!("{} mode {mode:o}", token_file.display()),
            fix: (!ok).then(|| format!("chmod 600 {}", token_file.display())),
        });
    }
    let secret = match cfg.gateway.auth.mode {
        AuthMode::None => None,
        AuthMode::Password => cfg.gateway.auth.password.clone(),
        AuthMode::Token => cfg.gateway.auth.token.clone().or_else(|| {
            paths::read_token_file(&token_file)
                .ok()
                .flatten()
                .map(clawgate_config::Secret::new)
        }),
    };
    match exposure::resolve(&cfg.gateway.host, cfg.gateway.port) {
        Ok(addrs) => {
            let refusal = exposure::check(
                &cfg.gateway.host,
                "gateway.host",
                &addrs,
                cfg.gateway.auth.mode,
                secret.as_ref(),
            );
            let loopback = exposure::all_loopback(&addrs);
            checks.push(Check {
                name: "bind",
                ok: refusal.is_none(),
                detail: match (&refusal, loopback) {
                    (Some(_), _) => format!("gateway.host {} is not loopback and auth is not strong: start-up would be refused", cfg.gateway.host),
                    (None, true) => format!("{} is loopback only", cfg.gateway.host),
                    (None, false) => format!("{} is reachable from other machines (auth {} is strong)", cfg.gateway.host, cfg.gateway.auth.mode.as_str()),
                },
                fix: refusal.map(|_| format!("keep gateway.host: 127.0.0.1 and use `ssh -N -L {p}:127.0.0.1:{p} user@host`, or a reverse proxy with auth", p = cfg.gateway.port)),
            });
        }
        Err(e) => checks.push(Check {
            name: "bind",
            ok: false,
            detail: e,
            fix: Some("set gateway.host to an IP address".into()),
        }),
    }
    if let Some(c) = exec_check(&cfg.tools) {
        checks.push(c);
    }
    // Each configured channel checks its own section; the loop names no platform.
    let mut channel_checks = Vec::new();
    for entry in &cfg.channels {
        if let Some(plugin) = clawgate_channels::plugin(entry.name) {
            for c in plugin.doctor(entry, cfg.gateway.port) {
                channel_checks.push((entry.name, c));
            }
        }
    }
    // With an invalid config the port and token are unknown: say so rather than probing
    // the defaults (which may be another gateway).
    let t = match cfg_err {
        Some(_) => None,
        None => target(flag.as_deref(), &ConnArgs::default()).ok(),
    };
    let Some(t) = t else {
        checks.push(Check {
            name: "gateway",
            ok: false,
            detail: "not checked: the port and token come from the invalid config above".into(),
            fix: None,
        });
        let code = print_checks(&checks, false);
        return code.max(print_channel_checks(&channel_checks));
    };
    let hp = host_port(&t.url);
    let listening =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&hp))
            .await
            .is_ok_and(|r| r.is_ok());
    if !listening {
        checks.push(Check {
            name: "port",
            ok: true,
            detail: format!("{hp} is free (gateway not running)"),
            fix: None,
        });
    } else {
        let ours =
            matches!(http_get(&hp, "/healthz").await, Ok((200, b)) if b.contains("\"ok\":true"));
        checks.push(Check {
            name: "port",
            ok: ours,
            detail: if ours {
                format!("{hp} is owned by a gateway")
            } else {
                format!("{hp} is taken by another program")
            },
            fix: (!ours).then(|| "pick another gateway.port or stop the other program".into()),
        });
        if ours {
            match Connection::open(&t, &["operator.read"], "cli", Duration::from_secs(5)).await {
                Ok(mut c) => {
                    let ok = c
                        .call("health", json!({}), Duration::from_secs(5))
                        .await
                        .is_ok();
                    if let Ok(v) = c
                        .call("channels.status", json!({}), Duration::from_secs(5))
                        .await
                    {
                        channel_checks.extend(live_channel_checks(&v));
                    }
                    c.close().await;
                    checks.push(Check {
                        name: "gateway",
                        ok,
                        detail: "reachable, authenticated, health answered".into(),
                        fix: None,
                    });
                }
                Err(e) => {
                    let fix = e.hint(&t);
                    checks.push(Check {
                        name: "gateway",
                        ok: false,
                        detail: e.to_string(),
                        fix,
                    });
                }
            }
        }
    }
    let code = print_checks(&checks, false);
    code.max(print_channel_checks(&channel_checks))
}

/// How recent a receiver failure makes doctor report the channel as restarting.
const RESTARTING_WINDOW_MS: i64 = 120_000;

/// The running gateway's view of each channel (from `channels.status`).
fn live_channel_checks(v: &Value) -> Vec<(&'static str, DoctorCheck)> {
    let mut out = Vec::new();
    for name in v["channelOrder"].as_array().cloned().unwrap_or_default() {
        let Some(name) = name.as_str() else { continue };
        // Names come from the registry; unknown ones (another gateway version) are skipped.
        let Some(plugin) = clawgate_channels::plugin(name) else {
            continue;
        };
        for a in v["channelAccounts"][name]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let mode = a["mode"].as_str().unwrap_or("?");
            // A receiver that failed within the last two minutes is restarting, whatever
            // its connected flag says this instant.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let recent_stop = a["lastStopAt"]
                .as_i64()
                .is_some_and(|t| now - t < RESTARTING_WINDOW_MS);
            let restarts = a["restarts"].as_u64().unwrap_or(0);
            let check = if recent_stop {
                let why = a["lastError"].as_str().unwrap_or("unknown error");
                DoctorCheck::fail(
                    format!("gateway: restarting ({mode}; {restarts} restart(s)): {why}"),
                    format!(
                        "see `clawgate logs` and `clawgate channels status`; {}",
                        plugin.setup_hint()
                    ),
                )
            } else if a["connected"] == true {
                match a["lastError"].as_str() {
                    Some(e) => DoctorCheck::warn(
                        format!("gateway: running, connected ({mode}), last error: {e}"),
                        "see `clawgate channels status`",
                    ),
                    None => DoctorCheck::ok(format!("gateway: running, connected ({mode})")),
                }
            } else {
                let why = a["lastError"].as_str().unwrap_or("not connected yet");
                DoctorCheck::fail(
                    format!("gateway: not connected ({mode}): {why}"),
                    format!(
                        "check the credentials and `clawgate channels status`; {}",
                        plugin.setup_hint()
                    ),
                )
            };
            out.push((plugin.name(), check));
        }
    }
    out
}

/// Per-channel lines: ✓ in order, ! works but needs attention, ✗ will not work. Exit code 1
/// when any failed.
fn print_channel_checks(checks: &[(&'static str, DoctorCheck)]) -> u8 {
    let mut failed = false;
    for (name, c) in checks {
        let (mark, label) = match c.level {
            DoctorLevel::Ok => ("✓", "note"),
            DoctorLevel::Warn => ("!", "fix"),
            DoctorLevel::Fail => {
                failed = true;
                ("✗", "fix")
            }
        };
        println!("{mark} {name:<12} {}", c.message);
        if let Some(f) = &c.fix {
            println!("    {label}: {f}");
        }
    }
    u8::from(failed)
}

/// Whether exec children would be confined (only when exec is enabled).
fn exec_check(tools: &clawgate_config::ToolsConfig) -> Option<Check> {
    use clawgate_agent::tools::{check_exec_sandbox, exec_enabled, landlock_abi};
    if !exec_enabled(tools) {
        return None;
    }
    let fix = Some(
        "use a kernel with Landlock (Linux 5.13+), or tools.exec.mode: deny; \
         tools.exec.sandbox: none runs exec children unconfined"
            .to_string(),
    );
    Some(match check_exec_sandbox(tools) {
        Ok(None) => Check {
            name: "exec-sandbox",
            ok: true,
            detail: format!(
                "exec children are confined by Landlock (ABI {})",
                landlock_abi()
            ),
            fix: None,
        },
        Ok(Some(note)) | Err(note) => Check {
            name: "exec-sandbox",
            ok: false,
            detail: note,
            fix,
        },
    })
}

pub fn dashboard(flag: Option<PathBuf>, no_open: bool) -> u8 {
    let (cfg, _) = local_config(flag.as_deref());
    let t = match target(flag.as_deref(), &ConnArgs::default()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let token_file = t.token_file.clone();
    let ui = &cfg.gateway.control_ui;
    let base = format!(
        "http://{}:{}{}/",
        local_host(&cfg),
        cfg.gateway.port,
        ui.base_path
    );
    let url = match (cfg.gateway.auth.mode, t.token, t.password) {
        (AuthMode::None, _, _) => base,
        (AuthMode::Token, Some(tok), _) => format!("{base}#token={}", fragment_escape(&tok)),
        (AuthMode::Password, _, Some(_)) => {
            eprintln!("note: password mode; enter the password in the Control UI settings");
            base
        }
        _ => {
            return fail(
                "no gateway token found",
                Some(&format!(
                    "run `clawgate gateway run` once to generate {}",
                    token_file.display()
                )),
            )
        }
    };
    println!("{url}");
    if !ui.enabled {
        eprintln!("note: gateway.controlUi.enabled is false; the gateway serves no browser UI");
    } else if ui.root.is_none() {
        eprintln!("note: this opens clawgate's built-in UI; `clawgate ui install` fetches OpenClaw's Control UI (gateway.controlUi.root)");
    }
    if !no_open {
        crate::ui::open_in_browser(&url);
    }
    0
}

/// Percent-escapes what may not stand in a URL fragment as is (all but RFC 3986's
/// unreserved characters).
fn fragment_escape(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const KEEP: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, KEEP).to_string()
}

pub async fn channels_status(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    let v = match query(
        flag,
        &conn,
        &["operator.read"],
        "channels.status",
        json!({}),
    )
    .await
    {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let order = v["channelOrder"].as_array().cloned().unwrap_or_default();
    if order.is_empty() {
        println!("No channels configured (add a channels.<name> section to config.yaml, see docs/channels.md).");
        return 0;
    }
    for ch in order {
        let ch = ch.as_str().unwrap_or("");
        for a in v["channelAccounts"][ch]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let state = if a["connected"] == true {
                "connected"
            } else if a["running"] == true {
                "running, not connected"
            } else {
                "stopped"
            };
            println!(
                "{ch} ({}): {state}, mode {}",
                a["accountId"].as_str().unwrap_or("default"),
                a["mode"].as_str().unwrap_or("?")
            );
            if let Some(u) = a["bot"]["username"].as_str() {
                println!("  bot: @{u}");
            }
            println!(
                "  inbound: {} pending, {} done, {} ignored; outbox: {} pending, {} sent, {} failed",
                a["inbound"]["pending"], a["inbound"]["done"], a["inbound"]["ignored"],
                a["outbox"]["pending"], a["outbox"]["sent"], a["outbox"]["failed"]
            );
            println!(
                "  restarts: {}, stalls detected: {}",
                a["restarts"], a["stalls"]
            );
            if let Some(e) = a["lastError"].as_str() {
                println!("  last error: {e}");
            }
        }
    }
    for issue in v["statusIssues"].as_array().cloned().unwrap_or_default() {
        println!(
            "! {}: {}",
            issue["channel"].as_str().unwrap_or(""),
            issue["message"].as_str().unwrap_or("")
        );
    }
    0
}

pub async fn pairing_list(flag: Option<PathBuf>, conn: ConnArgs, channel: Option<String>) -> u8 {
    let params = match &channel {
        Some(c) => json!({"channel": c}),
        None => json!({}),
    };
    let v = match query(flag, &conn, &["operator.pairing"], "pairing.list", params).await {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let reqs = v["requests"].as_array().cloned().unwrap_or_default();
    if reqs.is_empty() {
        println!("No pending pairing requests.");
    }
    for r in reqs {
        println!(
            "{} {} sender {} ({})",
            r["channel"].as_str().unwrap_or(""),
            r["code"].as_str().unwrap_or(""),
            r["senderId"].as_str().unwrap_or(""),
            r["meta"]["name"].as_str().unwrap_or("unknown")
        );
    }
    0
}

pub async fn pairing_approve(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    channel: &str,
    code: &str,
    notify: bool,
) -> u8 {
    let params = json!({"channel": channel, "code": code, "notify": notify});
    match one_call(
        flag,
        &conn,
        &["operator.pairing"],
        "pairing.approve",
        params,
        Duration::from_secs(10),
    )
    .await
    {
        Ok(v) => {
            println!(
                "Approved {} sender {}.",
                channel,
                v["senderId"].as_str().unwrap_or("?")
            );
            match v["notification"].as_str() {
                Some("queued") => println!("A notice to the sender is queued on {channel}."),
                Some("failed" | "unavailable") => {
                    println!("The notice to the sender could not be queued (see `clawgate logs`).")
                }
                _ => {}
            }
            0
        }
        Err(code) => code,
    }
}

pub async fn message_send(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    channel: &str,
    to: &str,
    text: &str,
) -> u8 {
    let key = uuid::Uuid::new_v4().to_string();
    let params = json!({"channel": channel, "to": to, "message": text, "idempotencyKey": key});
    match query(flag, &conn, &["operator.write"], "send", params).await {
        Ok(None) => 0,
        Ok(Some(v)) => {
            println!(
                "{} message to {}: {}",
                channel,
                v["chatId"].as_str().unwrap_or(to),
                v["status"].as_str().unwrap_or("queued")
            );
            0
        }
        Err(code) => code,
    }
}

/// `message.action` `edit`: replaces the text of a message the bot sent.
pub async fn message_edit(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    channel: &str,
    to: &str,
    message_id: &str,
    text: &str,
) -> u8 {
    let params = json!({"channel": channel, "action": "edit",
                        "params": {"to": to, "messageId": message_id, "message": text}});
    match query(flag, &conn, &["operator.write"], "message.action", params).await {
        Ok(None) => 0,
        Ok(Some(v)) => {
            println!(
                "{} message {} in {}: edited",
                channel,
                v["messageId"].as_str().unwrap_or(message_id),
                v["chatId"].as_str().unwrap_or(to)
            );
            0
        }
        Err(code) => code,
    }
}
