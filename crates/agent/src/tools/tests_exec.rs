//! exec with real processes.

use super::*;
use clawgate_config::{ExecConfig, ExecMode};
use serde_json::json;
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn allow(list: &[&str], timeout_ms: u64) -> Exec {
    Exec::new(ExecConfig {
        mode: ExecMode::Allowlist,
        allowlist: list.iter().map(|s| s.to_string()).collect(),
        timeout_ms,
        ..ExecConfig::default()
    })
}

/// An allowlist that may name escape hatches (still sandboxed).
fn allow_dangerously(list: &[&str], timeout_ms: u64) -> Exec {
    Exec::new(ExecConfig {
        mode: ExecMode::Allowlist,
        allowlist: list.iter().map(|s| s.to_string()).collect(),
        timeout_ms,
        dangerously_allow_escape_hatches: true,
        ..ExecConfig::default()
    })
}

fn ctx(max: usize) -> (TempDir, ToolContext) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ctx = ToolContext {
        workspace: tmp.path().to_path_buf(),
        state_dir: tmp.path().join("state"),
        config_file: None,
        max_output_bytes: max,
    };
    (tmp, ctx)
}

#[tokio::test]
async fn deny_is_the_default() {
    let (_tmp, ctx) = ctx(4096);
    let exec = Exec::new(clawgate_config::ToolsConfig::default().exec);
    let out = exec
        .run(json!({"command": "/bin/echo", "args": ["hi"]}), &ctx)
        .await;
    assert_eq!(
        out,
        ToolOutput::error("exec is disabled (tools.exec.mode: deny)")
    );
}

#[tokio::test]
async fn allowlisted_programs_run_with_argv_as_is() {
    let (_tmp, ctx) = ctx(4096);
    let exec = allow(&["/bin/echo", "echo"], 5_000);
    let out = exec
        .run(json!({"command": "/bin/echo", "args": ["hi"]}), &ctx)
        .await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\nhi\n--- stderr ---\n")
    );
    // No shell: metacharacters reach the program untouched.
    let out = exec
        .run(
            json!({"command": "echo", "args": ["$HOME", "a;b", "`id`"]}),
            &ctx,
        )
        .await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\n$HOME a;b `id`\n--- stderr ---\n")
    );
}

#[tokio::test]
async fn commands_not_allowlisted_are_refused() {
    let (tmp, ctx) = ctx(4096);
    let marker = tmp.path().join("pwned");
    let exec = allow(&["/bin/echo", "echo", "./echo"], 5_000);
    let cases = [
        (
            json!({"command": "sh"}),
            "refused: `sh` is not in tools.exec.allowlist",
        ),
        (
            json!({"command": "/bin/sh", "args": ["-c", format!("touch {}", marker.display())]}),
            "refused: `/bin/sh` is not in tools.exec.allowlist",
        ),
        (
            json!({"command": "ls"}),
            "refused: `ls` is not in tools.exec.allowlist",
        ),
        (
            json!({"command": "/bin/echo hi"}),
            "refused: `/bin/echo hi` is not in tools.exec.allowlist",
        ),
        (
            json!({"command": "/usr/bin/echo"}),
            "refused: `/usr/bin/echo` is not in tools.exec.allowlist",
        ),
        (
            json!({"command": "./echo"}),
            "refused: allowlist entry `./echo` must be an absolute path or a bare name",
        ),
    ];
    for (args, want) in cases {
        let out = exec.run(args.clone(), &ctx).await;
        assert_eq!(out, ToolOutput::error(want), "{args}");
    }
    assert!(!marker.exists());
    for args in [
        json!({}),
        json!({"command": "echo", "args": "hi"}),
        json!({"command": "echo", "x": 1}),
        json!({"command": ""}),
    ] {
        let out = exec.run(args.clone(), &ctx).await;
        assert!(
            out.is_error && out.content.starts_with("invalid arguments:"),
            "{args}: {out:?}"
        );
    }
}

#[tokio::test]
async fn environment_is_scrubbed_and_cwd_is_the_workspace() {
    let (_tmp, ctx) = ctx(4096);
    // Edition 2021: set_var is safe; the canary name is unique to this test.
    std::env::set_var("CLAWGATE_SECRET_CANARY", "leaked-value");
    // `env` is an escape hatch now (`env sh -c ...`): `printenv` shows the same.
    let exec = allow(&["printenv", "pwd"], 5_000);
    let out = exec.run(json!({"command": "printenv"}), &ctx).await;
    assert!(!out.is_error, "{out:?}");
    assert!(
        !out.content.contains("CLAWGATE_SECRET_CANARY") && !out.content.contains("leaked-value")
    );
    let stdout = out
        .content
        .split("--- stdout ---\n")
        .nth(1)
        .unwrap_or_default();
    let stdout = stdout.split("--- stderr ---").next().unwrap_or_default();
    let mut vars: Vec<&str> = stdout.lines().collect();
    vars.sort();
    let home = format!("HOME={}", ctx.workspace.display());
    assert_eq!(vars, [home.as_str(), "LANG=C.UTF-8", "PATH=/usr/bin:/bin"]);

    let out = exec.run(json!({"command": "pwd"}), &ctx).await;
    let real = ctx.workspace.canonicalize().unwrap();
    assert_eq!(
        out,
        ToolOutput::ok(format!(
            "exit code: 0\n--- stdout ---\n{}\n--- stderr ---\n",
            real.display()
        ))
    );
}

#[tokio::test]
async fn stdin_is_null_and_exit_codes_are_reported() {
    let (_tmp, ctx) = ctx(4096);
    let exec = allow(&["cat", "false", "ls"], 5_000);
    // `cat` with no arguments reads stdin: null means it ends at once.
    let out = exec.run(json!({"command": "cat"}), &ctx).await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\n--- stderr ---\n")
    );
    let out = exec.run(json!({"command": "false"}), &ctx).await;
    assert_eq!(
        out,
        ToolOutput::error("exit code: 1\n--- stdout ---\n--- stderr ---\n")
    );
    let out = exec
        .run(json!({"command": "ls", "args": ["no-such-file"]}), &ctx)
        .await;
    assert!(
        out.is_error && out.content.starts_with("exit code: 2\n"),
        "{out:?}"
    );
    assert!(out.content.contains("no-such-file"));
}

#[tokio::test]
async fn timeout_kills_the_process() {
    let (_tmp, ctx) = ctx(4096);
    let exec = allow(&["sleep"], 200);
    let started = Instant::now();
    let out = exec
        .run(json!({"command": "sleep", "args": ["5"]}), &ctx)
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(out.is_error);
    assert!(
        out.content.starts_with(
            "exec timed out after 200 ms; the process group was killed\nkilled by signal 9\n"
        ),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let (_tmp, ctx) = ctx(4096);
    let exec = allow_dangerously(&["sh"], 300);
    let args = json!({"command": "sh", "args": ["-c", "sleep 30 & echo $!; wait"]});
    let started = Instant::now();
    let out = exec.run(args, &ctx).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(out.is_error && out.content.contains("timed out"), "{out:?}");
    let pid: u32 = out
        .content
        .split("--- stdout ---\n")
        .nth(1)
        .and_then(|s| s.lines().next())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no background pid in {}", out.content));
    // The grandchild is gone (or a zombie awaiting its reaper), not sleeping on.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        assert_eq!(state, Some("Z"), "background sleep still alive: {stat}");
    }
}

#[tokio::test]
async fn output_is_captured_up_to_the_cap() {
    let (_tmp, ctx) = ctx(1000);
    let exec = allow(&["seq", "yes"], 5_000);
    let out = exec
        .run(json!({"command": "seq", "args": ["1", "200000"]}), &ctx)
        .await;
    assert!(!out.is_error);
    assert!(out
        .content
        .starts_with("exit code: 0\n--- stdout ---\n1\n2\n3\n"));
    assert!(
        out.content.ends_with("\n[output truncated at 1000 bytes]"),
        "{}",
        out.content
    );
    assert!(out.content.len() <= 1000 + "\n[output truncated at 1000 bytes]".len());

    // Endless output: capped memory, drained pipe, stopped by the timeout.
    let exec = allow(&["yes"], 300);
    let out = exec.run(json!({"command": "yes"}), &ctx).await;
    assert!(
        out.is_error && out.content.starts_with("exec timed out after 300 ms"),
        "{out:?}"
    );
    assert!(out.content.contains("y\ny\n"));
}

/// A gateway-like layout: home/{workspace, credentials/gateway-token, config.yaml}, and a
/// canary directory outside everything.
struct Home {
    tmp: TempDir,
    ctx: ToolContext,
}

const TOKEN: &str = "TOKEN-CANARY-3141592653";

fn home(config_in_workspace: bool) -> Home {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("workspace/sub")).unwrap();
    std::fs::create_dir_all(home.join("credentials")).unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    std::fs::write(home.join("credentials/gateway-token"), TOKEN).unwrap();
    let config = if config_in_workspace {
        home.join("workspace/config.yaml")
    } else {
        home.join("config.yaml")
    };
    std::fs::write(&config, format!("gateway:\n  auth:\n    token: {TOKEN}\n")).unwrap();
    std::fs::write(home.join("workspace/notes.txt"), "plain notes\n").unwrap();
    let ctx = ToolContext {
        workspace: home.join("workspace"),
        state_dir: home.clone(),
        config_file: Some(config),
        max_output_bytes: 64 * 1024,
    };
    Home { tmp, ctx }
}

fn assert_denied(out: &ToolOutput, what: &str) {
    assert!(out.is_error, "{what}: {out:?}");
    assert!(
        !out.content.contains(TOKEN),
        "{what} leaked the token: {out:?}"
    );
}

#[tokio::test]
async fn escape_hatches_are_refused_without_the_dangerous_key() {
    let (tmp, ctx) = ctx(4096);
    let marker = tmp.path().join("pwned");
    let exec = allow(&["env", "find", "sh", "/bin/sh", "python3", "xargs"], 5_000);
    for (cmd, args) in [
        (
            "env",
            json!(["sh", "-c", format!("touch {}", marker.display())]),
        ),
        (
            "find",
            json!([".", "-exec", "touch", marker.display().to_string(), ";"]),
        ),
        ("sh", json!(["-c", "id"])),
        ("/bin/sh", json!(["-c", "id"])),
        ("xargs", json!(["touch"])),
    ] {
        let out = exec.run(json!({"command": cmd, "args": args}), &ctx).await;
        assert!(
            out.is_error
                && out.content.starts_with("refused: ")
                && out
                    .content
                    .contains("tools.exec.dangerouslyAllowEscapeHatches"),
            "{cmd}: {out:?}"
        );
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn t45_landlock_keeps_exec_out_of_the_state_dir() {
    let h = home(false);
    let exec = allow(&["cat", "ls", "cp", "touch"], 5_000);
    let token = h.ctx.state_dir.join("credentials/gateway-token");
    let config = h.ctx.config_file.clone().unwrap();
    for args in [
        json!(["../credentials/gateway-token"]),
        json!([token.display().to_string()]),
        json!([config.display().to_string()]),
        json!(["../config.yaml"]),
        json!([format!("/proc/self/root{}", token.display())]),
    ] {
        let out = exec
            .run(json!({"command": "cat", "args": args}), &h.ctx)
            .await;
        assert_denied(&out, &args.to_string());
        assert!(out.content.contains("Permission denied"), "{out:?}");
    }
    let out = exec
        .run(json!({"command": "ls", "args": [h.ctx.state_dir.join("credentials").display().to_string()]}), &h.ctx)
        .await;
    assert_denied(&out, "ls credentials");
    // Writing outside the workspace fails; inside it works.
    let canary = h.tmp.path().join("outside/canary");
    let out = exec
        .run(
            json!({"command": "touch", "args": [canary.display().to_string()]}),
            &h.ctx,
        )
        .await;
    assert!(out.is_error, "{out:?}");
    assert!(!canary.exists());
    let out = exec
        .run(
            json!({"command": "cp", "args": ["notes.txt", "../credentials/gateway-token"]}),
            &h.ctx,
        )
        .await;
    assert!(out.is_error, "{out:?}");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), TOKEN);
    let out = exec
        .run(
            json!({"command": "cp", "args": ["notes.txt", "sub/copy.txt"]}),
            &h.ctx,
        )
        .await;
    assert!(!out.is_error, "{out:?}");
    let out = exec
        .run(json!({"command": "cat", "args": ["sub/copy.txt"]}), &h.ctx)
        .await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\nplain notes\n--- stderr ---\n")
    );
}

#[tokio::test]
async fn t51_escape_hatches_allowed_dangerously_stay_sandboxed() {
    let h = home(false);
    let exec = allow_dangerously(&["env", "sh", "bash", "cat"], 5_000);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = std::process::id();
    let scripts = [
        "cat $HOME/../credentials/gateway-token".to_string(),
        format!(
            "cat {}/credentials/gateway-token",
            h.ctx.state_dir.display()
        ),
        "cd .. && cat credentials/gateway-token".to_string(),
        format!("cat /proc/{me}/environ"),
        format!("ls /proc/{me}/cwd/"),
        format!("kill -0 {me}"),
        format!("echo x > {}/outside/canary", h.tmp.path().display()),
    ];
    let mut leaks = Vec::new();
    for script in &scripts {
        let out = exec
            .run(
                json!({"command": "env", "args": ["sh", "-c", script]}),
                &h.ctx,
            )
            .await;
        if !out.is_error || out.content.contains(TOKEN) {
            leaks.push(format!(
                "{script}: {}",
                out.content.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    let out = exec
        .run(
            json!({"command": "bash", "args": ["-c", format!("echo hi > /dev/tcp/127.0.0.1/{port}")]}),
            &h.ctx,
        )
        .await;
    assert!(out.is_error, "{out:?}");
    assert!(
        listener.accept().is_err(),
        "the exec child connected over TCP"
    );
    assert!(!h.tmp.path().join("outside/canary").exists());
    // Files written in the workspace cannot be executed.
    let out = exec
        .run(
            json!({"command": "sh", "args": ["-c", "printf '#!/bin/sh\\necho ran\\n' > s && chmod +x s && ./s"]}),
            &h.ctx,
        )
        .await;
    assert!(out.is_error && !out.content.contains("ran\n"), "{out:?}");
    assert!(out.content.contains("Permission denied"), "{out:?}");
    // The same shell works inside the workspace.
    let out = exec
        .run(
            json!({"command": "sh", "args": ["-c", "echo made > new.txt && cat new.txt"]}),
            &h.ctx,
        )
        .await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\nmade\n--- stderr ---\n")
    );
}

#[tokio::test]
async fn config_inside_the_workspace_is_out_of_reach_of_exec() {
    let h = home(true);
    let exec = allow_dangerously(&["cat", "sh", "ls"], 5_000);
    let config = h.ctx.config_file.clone().unwrap();
    let before = std::fs::read(&config).unwrap();
    for script in [
        "cat config.yaml",
        "echo 'gateway: {auth: {mode: none}}' > config.yaml",
        "mv config.yaml sub/c.yaml",
        "rm config.yaml",
        "ln config.yaml sub/hard.yaml",
    ] {
        let out = exec
            .run(json!({"command": "sh", "args": ["-c", script]}), &h.ctx)
            .await;
        assert_denied(&out, script);
    }
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // The rest of the workspace stays usable: listing, reading, writing below it.
    let out = exec.run(json!({"command": "ls"}), &h.ctx).await;
    assert!(
        !out.is_error && out.content.contains("notes.txt"),
        "{out:?}"
    );
    let out = exec
        .run(json!({"command": "sh", "args": ["-c", "cat notes.txt && echo y > sub/y && cat sub/y"]}), &h.ctx)
        .await;
    assert_eq!(
        out,
        ToolOutput::ok("exit code: 0\n--- stdout ---\nplain notes\ny\n--- stderr ---\n")
    );
}
