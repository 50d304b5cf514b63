//! Reload without restart: SIGHUP, the `gateway.reload` method (`clawgate gateway reload`)
//! and `config.apply` re-read config.yaml. A valid file is compared key by key with what
//! runs; keys that are safe live (channel access policies, models, agent defaults, tools,
//! session scope, retention, log level, allowed origins/hosts) take effect at once without
//! touching a connection, keys that need a restart (host, port, auth, channel credentials and
//! modes, controlUi, connection caps, …) are listed and keep their running values. An invalid
//! file is refused with its `config.yaml:LINE:COL` errors and changes nothing.

use crate::chat::AgentSettings;
use crate::state::Gateway;
use clawgate_config::yaml::{self, Node, Value as Y};
use clawgate_config::{paths, Config, GatewayConfig, LoggingConfig, MAX_CONFIG_BYTES};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tracing::{info, warn};

/// The file texts a reload compares against: the one the gateway started with (keys that need
/// a restart still run with its values) and the one applied last.
pub struct Applied {
    boot: String,
    last: String,
}

impl Applied {
    /// Reads the file the gateway was built from (empty when it cannot be read).
    pub fn read(path: &Path) -> Applied {
        let text = read_bounded(path).unwrap_or_default();
        Applied {
            boot: text.clone(),
            last: text,
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys whose value differs from the file applied last.
    pub changed: Vec<String>,
    /// Of those, the ones now in force.
    pub applied: Vec<String>,
    /// Keys whose value in the file differs from the running one and that take effect only
    /// after a restart (they keep their running values until then).
    pub restart_required: Vec<String>,
    /// The SHA-256 of the file text (what `config.get` calls `hash`).
    pub hash: String,
}

impl Report {
    pub fn to_json(&self, gw: &Gateway) -> Value {
        json!({
            "ok": true,
            "path": gw.config.path.display().to_string(),
            "hash": self.hash,
            "noop": self.changed.is_empty(),
            "changed": self.changed,
            "applied": self.applied,
            "restartRequired": self.restart_required,
        })
    }
}

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The file (or the text given) is not a valid config: one `file:line:col: key: message`
    /// line per problem.
    Invalid(Vec<String>),
    /// `config.apply`: the file changed since the caller read it (or no `baseHash` was given).
    Conflict(String),
    /// The file cannot be read or written.
    Io(String),
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::Invalid(errs) => format!(
                "config not applied, the running config is unchanged:\n{}",
                errs.join("\n")
            ),
            Refused::Conflict(m) | Refused::Io(m) => m.clone(),
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let n = f
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if n > MAX_CONFIG_BYTES {
        return Err(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

pub fn hash_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Re-reads config.yaml and applies it (SIGHUP, `gateway.reload`).
pub async fn reload_file(gw: &Arc<Gateway>, trigger: &str) -> Result<Report, Refused> {
    let mut applied = gw.reload.lock().await;
    let path = gw.config.path.clone();
    let text = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(mode) = paths::mode_of(&path) {
                if mode & 0o022 != 0 {
                    return Err(Refused::Io(format!(
                        "{}: config file is writable by group or others (mode {mode:o}); run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    )));
                }
            }
            read_bounded(&path).map_err(Refused::Io)
        })
        .await
        .map_err(|e| Refused::Io(e.to_string()))??
    };
    let result = apply_text(gw, &mut applied, &text, None);
    log_outcome(trigger, &result);
    result
}

/// `config.apply`: validates `raw`, checks `base_hash` against the file, writes it (0600,
/// atomically) and applies it like a reload.
pub async fn apply_raw(
    gw: &Arc<Gateway>,
    raw: &str,
    base_hash: Option<&str>,
) -> Result<Report, Refused> {
    let mut applied = gw.reload.lock().await;
    let path = gw.config.path.clone();
    if path.exists() {
        let current = read_bounded(&path).map_err(Refused::Io)?;
        let current_hash = hash_of(&current);
        match base_hash {
            None => {
                return Err(Refused::Conflict(
                    "config base hash required; re-run config.get and retry".into(),
                ))
            }
            Some(h) if !constant_time_eq(h.as_bytes(), current_hash.as_bytes()) => {
                return Err(Refused::Conflict(
                    "config changed since last load; re-run config.get and retry".into(),
                ))
            }
            Some(_) => {}
        }
    }
    if raw.len() > MAX_CONFIG_BYTES {
        return Err(Refused::Invalid(vec![format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )]));
    }
    let result = apply_text(gw, &mut applied, raw, Some(&path));
    log_outcome("config.apply", &result);
    result
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn log_outcome(trigger: &str, result: &Result<Report, Refused>) {
    match result {
        Ok(r) if r.changed.is_empty() && r.restart_required.is_empty() => {
            info!("config reload ({trigger}): no change");
        }
        Ok(r) => info!(
            "config reload ({trigger}): changed [{}]; applied [{}]; needs a restart: [{}]",
            r.changed.join(", "),
            r.applied.join(", "),
            r.restart_required.join(", ")
        ),
        Err(e) => warn!("config reload ({trigger}) refused: {}", e.message()),
    }
}

/// Validates `text`, prepares everything that can fail, then (writing the file first when
/// `write` is given) swaps the live parts in.
fn apply_text(
    gw: &Arc<Gateway>,
    applied: &mut Applied,
    text: &str,
    write: Option<&Path>,
) -> Result<Report, Refused> {
    let path = &gw.config.path;
    let parsers = clawgate_channels::config_parsers();
    let new = Config::parse_with(text, path, &|name| std::env::var(name).ok(), &parsers)
        .map_err(|errs| Refused::Invalid(errs.iter().map(|e| e.to_string()).collect()))?;
    // New secrets are blanked in the logs before anything about this config is logged.
    for s in new.secret_values() {
        crate::logging::add_secret(s);
    }
    let new_tree = tree(text);
    let changed = diff_paths(&tree(&applied.last), &new_tree);
    let pending = diff_paths(&tree(&applied.boot), &new_tree);
    let mut restart_required: Vec<String> = pending
        .iter()
        .filter(|p| !is_live(gw, p))
        .map(|p| dotted(p))
        .collect();
    let live: Vec<&Vec<String>> = changed.iter().filter(|p| is_live(gw, p)).collect();
    let touches = |section: &str| live.iter().any(|p| p[0] == section);
    let old = gw.live_config();
    // Everything that can fail, before anything changes.
    let settings = if touches("models") || touches("agents") || touches("tools") {
        Some(agent_settings(&new, &old).map_err(|e| Refused::Invalid(vec![e]))?)
    } else {
        None
    };
    if let Some(p) = write {
        paths::write_private_atomic(p, text.as_bytes())
            .map_err(|e| Refused::Io(format!("{}: cannot write: {e}", p.display())))?;
    }
    // Channel policies: each running channel takes its new section's live keys.
    let mut applied_keys: Vec<String> = Vec::new();
    for running in &gw.channels {
        let name = running.ch.name();
        let mine: Vec<String> = live
            .iter()
            .filter(|p| p[0] == "channels" && p[1] == name)
            .map(|p| dotted(p))
            .collect();
        if mine.is_empty() {
            continue;
        }
        // A removed section stops the channel only at the next start.
        let taken = new
            .channel(name)
            .is_some_and(|entry| running.ch.reconfigure(entry).is_ok());
        if taken {
            applied_keys.extend(mine);
        } else {
            restart_required.extend(mine);
        }
    }
    if let Some(s) = settings {
        gw.chat.set_settings(s);
    }
    let level_changed = old.logging.level != new.logging.level;
    gw.set_live_config(effective(&gw.config, &new));
    if level_changed {
        match crate::logging::set_level(new.logging.level) {
            Ok(true) => {}
            Ok(false) => info!(
                "logging.level is now {}, but CLAWGATE_LOG decides the level",
                new.logging.level.as_str()
            ),
            Err(e) => warn!("{e}"),
        }
    }
    for p in &live {
        if p[0] != "channels" {
            applied_keys.push(dotted(p));
        }
    }
    applied.last = text.to_string();
    let mut changed: Vec<String> = changed.iter().map(|p| dotted(p)).collect();
    changed.sort();
    applied_keys.sort();
    restart_required.sort();
    restart_required.dedup();
    Ok(Report {
        changed,
        applied: applied_keys,
        restart_required,
        hash: hash_of(text),
    })
}

/// The providers and tools of `new`, checked like at start-up.
fn agent_settings(new: &Config, old: &Config) -> Result<AgentSettings, String> {
    let mut providers = HashMap::new();
    for p in &new.providers {
        let provider = clawgate_agent::providers::Provider::new(p.clone())
            .map_err(|e| format!("{}: models.providers.{}: {e}", new.path.display(), p.id))?;
        providers.insert(p.id.clone(), Arc::new(provider));
    }
    match clawgate_agent::tools::check_exec_sandbox(&new.tools) {
        Ok(Some(note)) => warn!("{note}"),
        Ok(None) => {}
        Err(msg) => return Err(format!("{}: {msg}", new.path.display())),
    }
    let mut cfg = new.agent.clone();
    cfg.workspace = old.agent.workspace.clone();
    cfg.max_concurrent = old.agent.max_concurrent;
    Ok(AgentSettings {
        providers,
        tools: Arc::new(clawgate_agent::tools::build_tools(&new.tools)),
        cfg,
        max_output_bytes: new.tools.max_output_bytes,
    })
}

/// `new` with every key that needs a restart kept as it runs (from `boot`).
fn effective(boot: &Config, new: &Config) -> Config {
    let mut eff = new.clone();
    eff.path = boot.path.clone();
    eff.gateway = GatewayConfig {
        allowed_origins: new.gateway.allowed_origins.clone(),
        allowed_hosts: new.gateway.allowed_hosts.clone(),
        ..boot.gateway.clone()
    };
    eff.agent.workspace = boot.agent.workspace.clone();
    eff.agent.max_concurrent = boot.agent.max_concurrent;
    eff.logging = LoggingConfig {
        level: new.logging.level,
        ..boot.logging
    };
    // The running channels keep their sections; their access policies live in the channels.
    eff.channels = boot.channels.clone();
    eff
}

/// Whether a change at `path` (key segments) takes effect live.
fn is_live(gw: &Gateway, path: &[String]) -> bool {
    let seg = |i: usize| path.get(i).map(String::as_str);
    match seg(0) {
        Some("gateway") => matches!(seg(1), Some("allowedOrigins" | "allowedHosts")),
        Some("models" | "tools" | "store") => true,
        Some("session") => seg(1) == Some("dmScope"),
        Some("agents") => {
            path.len() >= 3
                && !(seg(1) == Some("defaults")
                    && matches!(seg(2), Some("workspace" | "maxConcurrent")))
        }
        Some("logging") => seg(1) == Some("level"),
        Some("channels") => {
            let (Some(name), Some(key)) = (seg(1), seg(2)) else {
                return false;
            };
            gw.channels
                .iter()
                .find(|r| r.ch.name() == name)
                .is_some_and(|r| r.ch.live_keys().contains(&key))
        }
        _ => false,
    }
}

/// `a.b.c`.
fn dotted(path: &[String]) -> String {
    path.join(".")
}

/// The YAML tree of a text (`None` when empty or not YAML: everything in it then differs).
fn tree(text: &str) -> Option<Node> {
    yaml::parse(text).ok().flatten()
}

/// The key paths whose values differ between two trees. Mappings are compared key by key
/// (a missing or null mapping counts as empty); anything else as a whole.
pub fn diff_paths(old: &Option<Node>, new: &Option<Node>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    diff(old.as_ref(), new.as_ref(), &mut Vec::new(), &mut out);
    out
}

fn entries(n: Option<&Node>) -> Option<&[(String, yaml::Pos, Node)]> {
    match n {
        None => Some(&[]),
        Some(n) if n.is_null() => Some(&[]),
        Some(Node {
            value: Y::Map(m), ..
        }) => Some(m),
        Some(_) => None,
    }
}

fn diff(
    old: Option<&Node>,
    new: Option<&Node>,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let both_absent = |n: Option<&Node>| n.is_none_or(Node::is_null);
    if both_absent(old) && both_absent(new) {
        return;
    }
    let is_map = |n: Option<&Node>| {
        matches!(
            n,
            Some(Node {
                value: Y::Map(_),
                ..
            })
        )
    };
    if is_map(old) || is_map(new) {
        if let (Some(a), Some(b)) = (entries(old), entries(new)) {
            for (k, _, v) in a {
                path.push(k.clone());
                diff(
                    Some(v),
                    b.iter().find(|(k2, _, _)| k2 == k).map(|e| &e.2),
                    path,
                    out,
                );
                path.pop();
            }
            for (k, _, v) in b {
                if !a.iter().any(|(k2, _, _)| k2 == k) {
                    path.push(k.clone());
                    diff(None, Some(v), path, out);
                    path.pop();
                }
            }
            return;
        }
    }
    let same = match (old, new) {
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    };
    if !same {
        out.push(path.clone());
    }
}

/// Structural equality, positions ignored.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Y::Scalar(x, qx), Y::Scalar(y, qy)) => x == y && qx == qy,
        (Y::Seq(x), Y::Seq(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Y::Map(x), Y::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, _, v)| y.iter().any(|(k2, _, v2)| k2 == k && same(v, v2)))
        }
        _ => false,
    }
}

/// Reloads on SIGHUP. The handler is installed before this returns (a SIGHUP sent right
/// after start-up must not kill the process).
pub fn spawn_sighup(gw: Arc<Gateway>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot install the SIGHUP handler (reload with `clawgate gateway reload`): {e}");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if gw.is_shutting_down() {
                return;
            }
            let _ = reload_file(&gw, "SIGHUP").await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(a: &str, b: &str) -> Vec<String> {
        diff_paths(&tree(a), &tree(b))
            .iter()
            .map(|p| dotted(p))
            .collect()
    }

    #[test]
    fn diff_lists_changed_keys_only() {
        assert!(paths("gateway:\n  port: 1\n", "gateway:\n  port: 1 # same\n").is_empty());
        assert_eq!(
            paths(
                "gateway:\n  port: 1\n  host: a\n",
                "gateway:\n  host: a\n  port: 2\n"
            ),
            ["gateway.port"]
        );
        assert_eq!(
            paths(
                "channels:\n  telegram:\n    allowFrom: [\"1\"]\n",
                "channels:\n  telegram:\n    allowFrom: [\"1\", \"2\"]\n"
            ),
            ["channels.telegram.allowFrom"]
        );
        // A section added or removed lists its keys.
        assert_eq!(
            paths("", "agents:\n  defaults:\n    model: a/b\n"),
            ["agents.defaults.model"]
        );
        assert_eq!(
            paths("logging:\n  level: debug\n", "logging:\n"),
            ["logging.level"]
        );
        assert!(paths("agents:\n", "").is_empty());
    }

    #[test]
    fn hashes_compare_in_constant_time_shape() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
