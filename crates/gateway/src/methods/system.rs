//! Host and gateway facts (`system.info`, `gateway.identity.get`), system events (`wake`) and
//! the system-agent approval list (`openclaw.approval.list`).

use super::{object, BoxFuture, Ctx};
use crate::devices::now_ms;
use crate::keys::{self, DEFAULT_AGENT, MAIN_KEY};
use crate::state::{Gateway, SystemEvent};
use clawgate_protocol::device;
use clawgate_protocol::error::ErrorShape;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Mutex;

/// At most this many queued system events per session (the oldest is dropped).
pub const MAX_EVENTS_PER_SESSION: usize = 20;

/// Node's names for the machine architecture (`os.arch()`), which clients display.
fn node_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "arm" => "arm",
        other => other,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `(total, available)` bytes from `/proc/meminfo` (available as Node reports free memory).
fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let total = field("MemTotal:").unwrap_or(0);
    let free = field("MemAvailable:")
        .or_else(|| field("MemFree:"))
        .unwrap_or(0);
    (total, free)
}

fn load_average() -> Option<[f64; 3]> {
    let text = read_trimmed("/proc/loadavg");
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `(total, available)` bytes of the file system holding `path`.
#[allow(clippy::unnecessary_cast)] // the statvfs field types differ between targets
fn disk(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((
        (st.f_blocks as u64).saturating_mul(frsize),
        (st.f_bavail as u64).saturating_mul(frsize),
    ))
}

/// `system.info` (read): the gateway host and process, from the kernel's own figures.
pub fn info(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("system.info", params)?;
        if let Some(k) = p.keys().next() {
            return Err(ErrorShape::invalid_params(
                "system.info",
                format!("must NOT have additional properties ({k})"),
            ));
        }
        let gw = &ctx.gw;
        let release = read_trimmed("/proc/sys/kernel/osrelease");
        let (mem_total, mem_free) = memory();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut v = json!({
            "machineName": gw.hostname, "hostname": gw.hostname,
            "platform": std::env::consts::OS, "release": release, "arch": node_arch(),
            "osLabel": format!("Linux {release}"), "port": gw.port,
            // Not a Node process: the field is required, so it is empty rather than made up.
            "nodeVersion": "",
            "pid": std::process::id(), "processInstanceId": gw.boot_id,
            "uptimeMs": gw.uptime_ms(), "cpuCount": cpus,
            "memoryTotalBytes": mem_total, "memoryFreeBytes": mem_free,
        });
        if let Some(m) = cpu_model() {
            v["cpuModel"] = json!(m);
        }
        if let Some(l) = load_average().filter(|l| l.iter().any(|x| *x != 0.0)) {
            v["loadAverage"] = json!(l);
        }
        if let Some((total, avail)) = disk(&gw.home).filter(|(t, _)| *t > 0) {
            let path = gw.home.display().to_string();
            v["disks"] = json!([{"path": path, "totalBytes": total, "availableBytes": avail}]);
            v["diskTotalBytes"] = json!(total);
            v["diskAvailableBytes"] = json!(avail);
            v["diskPath"] = json!(path);
        }
        Ok(v)
    })
}

/// The gateway's own Ed25519 device identity: created once (32 random bytes, mode 0600 under
/// `$CLAWGATE_HOME/identity/`), then read back.
fn gateway_public_key(home: &Path) -> Result<[u8; 32], String> {
    static CREATE: Mutex<()> = Mutex::new(());
    let _guard = CREATE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = home.join("identity");
    let path = dir.join("gateway-device.key");
    let seed: [u8; 32] = match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{} is not a 32-byte hex key", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
            clawgate_config::paths::ensure_private_dir(&dir).map_err(|e| e.to_string())?;
            clawgate_config::paths::write_private_atomic(&path, hex::encode(seed).as_bytes())
                .map_err(|e| e.to_string())?;
            seed
        }
        Err(e) => return Err(e.to_string()),
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok(key.verifying_key().to_bytes())
}

/// `gateway.identity.get` (read): `{deviceId, publicKey}` of the gateway's device identity
/// (`deviceId` = hex SHA-256 of the raw public key, `publicKey` base64url, as for clients).
pub fn identity(ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let home = ctx.gw.home.clone();
        let pk = tokio::task::spawn_blocking(move || gateway_public_key(&home))
            .await
            .map_err(|e| ErrorShape::unavailable(e.to_string()))?
            .map_err(|e| ErrorShape::unavailable(format!("gateway identity unavailable: {e}")))?;
        Ok(json!({"deviceId": device::device_id(&pk), "publicKey": device::b64url(&pk)}))
    })
}

fn opt_nonempty<'a>(
    p: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ErrorShape> {
    match p.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim())),
        Some(_) => Err(ErrorShape::invalid_params(
            "wake",
            format!("at /{key}: must be a non-empty string"),
        )),
    }
}

/// `wake` (write) `{mode, text, sessionKey?, agentId?}`: queues `text` as a system event for
/// the session (default: the agent's main session). The next agent turn in that session sees
/// the queued events before the user's message. This gateway runs no heartbeats, so
/// `mode:"now"` does not start a turn by itself.
pub fn wake(ctx: &Ctx, params: Value) -> BoxFuture<'_> {
    Box::pin(async move {
        let p = object("wake", params)?;
        match p.get("mode").and_then(Value::as_str) {
            Some("now" | "next-heartbeat") => {}
            Some(_) => {
                return Err(ErrorShape::invalid_params(
                    "wake",
                    "at /mode: must be equal to one of the allowed values",
                ))
            }
            None => {
                return Err(ErrorShape::invalid_params(
                    "wake",
                    "must have required property 'mode'",
                ))
            }
        }
        let text = match p.get("text").and_then(Value::as_str) {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                return Err(ErrorShape::invalid_params(
                    "wake",
                    "must have required property 'text'",
                ))
            }
        };
        let agent = opt_nonempty(&p, "agentId")?.map(str::to_ascii_lowercase);
        let key = match opt_nonempty(&p, "sessionKey")? {
            Some(k) => keys::canonical(k).map_err(|e| ErrorShape::invalid_params("wake", e))?,
            None => match agent.as_deref() {
                None | Some(DEFAULT_AGENT) => MAIN_KEY.to_string(),
                Some(a) => format!("agent:{a}:main"),
            },
        };
        let owner = keys::agent_of(&key);
        if agent.as_deref().is_some_and(|a| a != owner) {
            return Err(ErrorShape::invalid(
                "wake agentId contradicts the agent that owns sessionKey; pass a single canonical wake target",
            ));
        }
        if owner != DEFAULT_AGENT {
            return Err(ErrorShape::invalid(format!("unknown agent id \"{owner}\"")));
        }
        enqueue(&ctx.gw, &key, text);
        Ok(json!({"ok": true}))
    })
}

/// Queues a system event; a repeat of the session's last queued text is dropped.
pub fn enqueue(gw: &Gateway, key: &str, text: String) {
    let mut q = gw.system_events.lock().unwrap_or_else(|p| p.into_inner());
    if q.iter()
        .rev()
        .find(|e| e.session_key == key)
        .is_some_and(|e| e.text == text)
    {
        return;
    }
    if q.iter().filter(|e| e.session_key == key).count() >= MAX_EVENTS_PER_SESSION {
        if let Some(i) = q.iter().position(|e| e.session_key == key) {
            q.remove(i);
        }
    }
    q.push(SystemEvent {
        session_key: key.to_string(),
        text,
        ts: now_ms(),
    });
}

/// `openclaw.approval.list` (approvals): pending system-agent approvals. This gateway has no
/// system agent, so there are never any.
pub fn approval_list(_ctx: &Ctx, _params: Value) -> BoxFuture<'_> {
    Box::pin(async move { Ok(json!([])) })
}
