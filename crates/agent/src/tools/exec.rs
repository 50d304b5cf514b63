//! `exec {command, args?}`: runs an allowlisted program directly (never through a shell),
//! in the workspace, with a scrubbed environment, confined by Landlock (see `sandbox`), a
//! timeout that kills its whole process group, and stdout/stderr captured up to the output
//! cap. Escape hatches (shells, `env`, interpreters, ...) are refused unless the config
//! says `dangerouslyAllowEscapeHatches`.

use super::{capped, parse_args, Tool, ToolContext, ToolFuture, ToolOutput};
use crate::types::ToolSpec;
use clawgate_config::{ExecConfig, ExecMode, ExecSandbox};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

/// Directories a bare allowlisted name is looked up in, in order.
const SEARCH_DIRS: [&str; 2] = ["/usr/bin", "/bin"];
/// How long to wait for pipes to close after the group was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

pub struct Exec {
    cfg: ExecConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecArgs {
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

/// Kills the child's process group when dropped while armed (timeout, or the run being
/// cancelled). Disarmed once the leader is reaped and the pipes are closed, so a reused
/// group id is never signalled.
struct GroupKill {
    pgid: Option<i32>,
}

impl GroupKill {
    fn kill(&self) {
        if let Some(pgid) = self.pgid.filter(|p| *p > 1) {
            // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names the
            // process group this tool created with process_group(0).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What was read from one pipe: the first `max` bytes, and how many bytes there were.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    total: u64,
}

impl Exec {
    pub fn new(cfg: ExecConfig) -> Self {
        Exec { cfg }
    }

    /// The program to run for `command`, if the allowlist has it verbatim.
    fn program(&self, command: &str) -> Result<PathBuf, String> {
        if !self.cfg.allowlist.iter().any(|entry| entry == command) {
            return Err(format!(
                "refused: `{command}` is not in tools.exec.allowlist"
            ));
        }
        if command.starts_with('/') {
            return Ok(PathBuf::from(command));
        }
        if command.contains('/') || command == "." || command == ".." {
            return Err(format!(
                "refused: allowlist entry `{command}` must be an absolute path or a bare name"
            ));
        }
        SEARCH_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(command))
            .find(|path| path.is_file())
            .ok_or_else(|| format!("`{command}` was not found in /usr/bin or /bin"))
    }

    /// Refuses an escape hatch (also checked when the config is loaded; checked again here
    /// because what a name resolves to can change on disk).
    fn check_escape(&self, command: &str) -> Result<(), String> {
        if self.cfg.dangerously_allow_escape_hatches {
            return Ok(());
        }
        match clawgate_config::escape::escape_hatch(command) {
            Some(why) => Err(format!(
                "refused: {why}; allowlisting it needs tools.exec.{}: true",
                clawgate_config::DANGEROUS_EXEC_KEY
            )),
            None => Ok(()),
        }
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> ToolOutput {
        if self.cfg.mode == ExecMode::Deny {
            return ToolOutput::error("exec is disabled (tools.exec.mode: deny)");
        }
        let args: ExecArgs = match parse_args(args) {
            Ok(a) => a,
            Err(out) => return out,
        };
        if args.command.is_empty() {
            return ToolOutput::error("invalid arguments: command must not be empty");
        }
        if args.command.contains('\0') || args.args.iter().any(|a| a.contains('\0')) {
            return ToolOutput::error("invalid arguments: NUL bytes are not allowed");
        }
        let program = match self
            .program(&args.command)
            .and_then(|p| self.check_escape(&args.command).map(|()| p))
        {
            Ok(p) => p,
            Err(msg) => return ToolOutput::error(msg),
        };
        let confinement = match self.cfg.sandbox {
            ExecSandbox::None => None,
            ExecSandbox::Landlock => {
                let workspace = ctx.workspace.clone();
                let protected: Vec<PathBuf> = std::iter::once(ctx.state_dir.clone())
                    .chain(ctx.config_file.clone())
                    .collect();
                let prepared = tokio::task::spawn_blocking(move || {
                    super::sandbox::prepare(&workspace, &protected)
                })
                .await;
                match prepared {
                    Ok(Ok(fd)) => Some(fd),
                    Ok(Err(msg)) => {
                        return ToolOutput::error(format!(
                            "exec refused: the sandbox could not be set up: {msg}"
                        ))
                    }
                    Err(_) => return ToolOutput::error("exec refused: the sandbox setup failed"),
                }
            }
        };
        run_program(
            &program,
            &args,
            ctx,
            Duration::from_millis(self.cfg.timeout_ms),
            confinement,
        )
        .await
    }
}

async fn run_program(
    program: &Path,
    args: &ExecArgs,
    ctx: &ToolContext,
    limit: Duration,
    confinement: Option<std::os::fd::OwnedFd>,
) -> ToolOutput {
    use std::os::fd::AsRawFd;
    let max = ctx.max_output_bytes;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args.args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &ctx.workspace)
        .env("LANG", "C.UTF-8")
        .current_dir(&ctx.workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(fd) = &confinement {
        let raw = fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe system calls (prctl, landlock_restrict_self), allocating nothing.
        unsafe {
            cmd.pre_exec(move || super::sandbox::enter(raw));
        }
    }
    let deadline = Instant::now() + limit;
    let spawned = cmd.spawn();
    // The child holds its own copy (or has failed): the parent's ruleset fd goes now.
    drop(confinement);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return ToolOutput::error(format!(
                "could not start `{}`: {}",
                args.command,
                super::fs_guard::plain_io(&e)
            ))
        }
    };
    let mut group = GroupKill {
        pgid: child.id().and_then(|id| i32::try_from(id).ok()),
    };
    let mut out_task = child
        .stdout
        .take()
        .map(|p| tokio::spawn(read_capped(p, max)));
    let mut err_task = child
        .stderr
        .take()
        .map(|p| tokio::spawn(read_capped(p, max)));

    let mut timed_out = false;
    let status: Option<ExitStatus> = match timeout_at(deadline, child.wait()).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(_)) => None,
        Err(_) => {
            timed_out = true;
            group.kill();
            child.wait().await.ok()
        }
    };
    // Children left behind may hold the pipes open: they get until the deadline.
    let drain_until = if timed_out {
        Instant::now() + DRAIN_GRACE
    } else {
        deadline
    };
    let (mut stdout, mut stderr) = (Captured::default(), Captured::default());
    for (task, slot) in [(&mut out_task, &mut stdout), (&mut err_task, &mut stderr)] {
        let Some(handle) = task.as_mut() else {
            continue;
        };
        if let Some(c) = join_by(handle, drain_until).await {
            *slot = c;
            continue;
        }
        timed_out = true;
        group.kill();
        if let Some(c) = join_by(handle, Instant::now() + DRAIN_GRACE).await {
            *slot = c;
        } else {
            handle.abort();
        }
    }
    // Leader reaped and pipes closed (or abandoned): never signal this group id again.
    group.pgid = None;
    format_result(
        &args.command,
        status,
        timed_out,
        limit,
        &stdout,
        &stderr,
        max,
        ctx,
    )
}

async fn join_by(handle: &mut JoinHandle<Captured>, until: Instant) -> Option<Captured> {
    match timeout_at(until, handle).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

/// Reads a pipe to its end, keeping only the first `max` bytes (the rest is drained so the
/// child never blocks on a full pipe).
async fn read_capped<R: AsyncRead + Unpin>(mut pipe: R, max: usize) -> Captured {
    let mut cap = Captured::default();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                cap.total += n as u64;
                let room = max.saturating_sub(cap.bytes.len());
                cap.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    cap
}

#[allow(clippy::too_many_arguments)]
fn format_result(
    command: &str,
    status: Option<ExitStatus>,
    timed_out: bool,
    limit: Duration,
    stdout: &Captured,
    stderr: &Captured,
    max: usize,
    ctx: &ToolContext,
) -> ToolOutput {
    use std::os::unix::process::ExitStatusExt;
    let mut text = String::new();
    if timed_out {
        text.push_str(&format!(
            "exec timed out after {} ms; the process group was killed\n",
            limit.as_millis()
        ));
    }
    match status {
        Some(s) if s.code().is_some() => {
            text.push_str(&format!("exit code: {}\n", s.code().unwrap_or(-1)));
        }
        Some(s) => text.push_str(&format!("killed by signal {}\n", s.signal().unwrap_or(0))),
        None => text.push_str(&format!("`{command}`: exit status unavailable\n")),
    }
    for (label, cap) in [("stdout", stdout), ("stderr", stderr)] {
        text.push_str(&format!("--- {label} ---\n"));
        text.push_str(&String::from_utf8_lossy(&cap.bytes));
        if cap.total > cap.bytes.len() as u64 {
            text.push_str(&format!(
                "\n[{label} truncated at {max} bytes of {}]",
                cap.total
            ));
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let ok = !timed_out && status.is_some_and(|s| s.success());
    let out = if ok {
        ToolOutput::ok(text)
    } else {
        ToolOutput::error(text)
    };
    capped(out, ctx)
}

impl Tool for Exec {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "exec".into(),
            description: "Run an allowlisted program (no shell) in the workspace and return its exit code and output.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "Program name or absolute path, exactly as allowlisted."},
                    "args": {"type": "array", "items": {"type": "string"}, "description": "Arguments, passed as-is."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        Box::pin(self.execute(args, ctx))
    }
}
