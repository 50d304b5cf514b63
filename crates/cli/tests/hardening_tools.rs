//! Issue 7, items 4 and 9, against the real binary: the exec tool's Landlock sandbox and
//! escape-hatch refusal, and the config file out of reach of the file tools. A fake LLM
//! scripts the hostile tool calls; the gateway token must never reach the transcript or
//! the model.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::gateway::{run_to_exit, write_config, Options};
use clawgate_testkit::ws::{cli_params, connect_cli, RawWs};
use clawgate_testkit::{FakeLlm, GatewayProcess};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const KEY: &str = "sk-fake-CANARY-9182";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn config(fake: &FakeLlm, extra: &str) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      api: openai-completions\n      baseUrl: {}\n      apiKey: {KEY}\n      models: [fake-model]\n      maxRetries: 0\n\
agents:\n  defaults:\n    model: fake/fake-model\n{extra}",
        fake.openai_base_url()
    )
}

fn exec_config(fake: &FakeLlm, allowlist: &str, more: &str) -> String {
    config(
        fake,
        &format!("tools:\n  exec:\n    mode: allowlist\n    allowlist: [{allowlist}]\n{more}"),
    )
}

fn start(config: String, env: Vec<(String, String)>) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            env,
            ..Options::default()
        },
    )
}

async fn client(gw: &GatewayProcess) -> RawWs {
    connect_cli(
        gw.addr,
        &gw.token(),
        &["operator.admin", "operator.read", "operator.write"],
    )
    .await
    .0
}

/// Runs one chat turn in which the fake model makes `calls`, then says "done"; returns the
/// tool results of the session's transcript.
async fn turn(
    gw: &GatewayProcess,
    fake: &FakeLlm,
    session: &str,
    calls: Vec<(String, String, Value)>,
) -> Vec<Value> {
    let n = calls.len();
    fake.push(Step::ToolCalls(calls));
    fake.push(Step::text("done"));
    let mut ws = client(gw).await;
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": "go", "idempotencyKey": format!("run-{session}")}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let ev = ws
        .recv_until(T, |v| {
            v["type"] == "event"
                && v["event"] == "chat"
                && matches!(
                    v["payload"]["state"].as_str(),
                    Some("final" | "error" | "aborted")
                )
        })
        .await;
    assert_eq!(ev["payload"]["state"], "final", "{ev}");
    let h = ws
        .call("chat.history", json!({"sessionKey": session}))
        .await;
    let results: Vec<Value> = h["payload"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "toolResult")
        .cloned()
        .collect();
    assert_eq!(results.len(), n, "{h}");
    results
}

fn exec_call(id: &str, command: &str, args: &[&str]) -> (String, String, Value) {
    (
        id.into(),
        "exec".into(),
        json!({"command": command, "args": args}),
    )
}

/// Every result is an error and `secret` appears in no tool result and no model request.
fn assert_all_refused(results: &[Value], fake: &FakeLlm, secret: &str) {
    for r in results {
        assert_eq!(r["isError"], true, "{r}");
        assert!(!r.to_string().contains(secret), "secret in {r}");
    }
    for req in fake.requests() {
        assert!(
            !req.body.to_string().contains(secret),
            "the secret reached the model"
        );
    }
}

fn text_of(r: &Value) -> String {
    r["content"][0]["text"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn t51_exec_cat_cannot_read_the_token_or_write_outside() {
    let fake = FakeLlm::start().await;
    let gw = start(exec_config(&fake, "cat, touch", ""), Vec::new());
    let home = gw.home_path();
    let token = gw.token();
    let abs_token = home.join("credentials/gateway-token");
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary");
    let abs = abs_token.display().to_string();
    let cfg = home.join("config.yaml").display().to_string();
    let canary_s = canary.display().to_string();
    let results = turn(
        &gw,
        &fake,
        "cat",
        vec![
            exec_call("c1", "cat", &["../credentials/gateway-token"]),
            exec_call("c2", "cat", &[&abs]),
            exec_call("c3", "cat", &[&cfg]),
            exec_call("c4", "touch", &[&canary_s]),
            exec_call("c5", "touch", &["../credentials/planted"]),
        ],
    )
    .await;
    assert_all_refused(&results, &fake, &token);
    assert_all_refused(&results, &fake, KEY);
    for r in &results[..3] {
        assert!(text_of(r).contains("Permission denied"), "{r}");
    }
    assert!(!canary.exists(), "exec wrote outside the workspace");
    assert!(!home.join("credentials/planted").exists());
    // The sandbox still lets allowed programs work in the workspace.
    std::fs::write(home.join("workspace/hello.txt"), "hello sandbox\n").unwrap();
    let ok = turn(
        &gw,
        &fake,
        "cat-ok",
        vec![exec_call("o1", "cat", &["hello.txt"])],
    )
    .await;
    assert_eq!(ok[0]["isError"], false, "{}", ok[0]);
    assert!(text_of(&ok[0]).contains("hello sandbox"));
}

#[test]
fn t51_escape_hatches_are_refused_at_start() {
    for entry in ["env", "sh", "find", "xargs", "/usr/bin/python3"] {
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        write_config(
            home.path(),
            &format!("tools:\n  exec:\n    mode: allowlist\n    allowlist: [{entry}]\n"),
        );
        let (status, out, err) = run_to_exit(
            bin(),
            home.path(),
            &Options::default(),
            "0",
            Duration::from_secs(10),
        );
        assert_eq!(status.code(), Some(78), "{entry}: {out}{err}");
        assert!(!out.contains("listening"), "{entry}: {out}");
        let want = "config.yaml:4:17: tools.exec.allowlist[0]: ";
        assert!(err.contains(want), "{entry}: {err}");
        assert!(
            err.contains("tools.exec.dangerouslyAllowEscapeHatches: true"),
            "{entry}: {err}"
        );
    }
}

#[tokio::test]
async fn t51_dangerously_allowed_hatches_still_cannot_reach_the_state_dir() {
    let fake = FakeLlm::start().await;
    let gw = start(
        exec_config(
            &fake,
            "env, sh, find",
            "    dangerouslyAllowEscapeHatches: true\n",
        ),
        Vec::new(),
    );
    let home = gw.home_path();
    let token = gw.token();
    let abs = home.join("credentials/gateway-token").display().to_string();
    let canary = tempfile::tempdir().unwrap();
    let canary_file = canary.path().join("canary").display().to_string();
    let gw_pid = gw.child.id().to_string();
    let s1 = "cat $HOME/../credentials/gateway-token".to_string();
    let s2 = format!("cat {abs}");
    let s3 = "cat ../config.yaml".to_string();
    let s4 = format!("echo pwned > {canary_file}");
    let s5 = format!("kill -9 {gw_pid}");
    let results = turn(
        &gw,
        &fake,
        "hatch",
        vec![
            exec_call("h1", "env", &["sh", "-c", &s1]),
            exec_call("h2", "sh", &["-c", &s2]),
            exec_call("h3", "env", &["sh", "-c", &s3]),
            exec_call(
                "h4",
                "find",
                &["..", "-name", "gateway-token", "-exec", "cat", "{}", ";"],
            ),
            exec_call("h5", "sh", &["-c", &s4]),
            exec_call("h6", "sh", &["-c", &s5]),
        ],
    )
    .await;
    // `find` may exit 1 (a directory it could not list) or 0; either way, no token.
    for (i, r) in results.iter().enumerate() {
        assert!(!r.to_string().contains(&token), "h{}: {r}", i + 1);
        if i != 3 {
            assert_eq!(r["isError"], true, "h{}: {r}", i + 1);
        }
    }
    assert_all_refused(&[], &fake, &token);
    assert!(!canary.path().join("canary").exists());
    // The gateway survived `kill -9` from inside the sandbox.
    let mut ws = client(&gw).await;
    let h = ws.call("health", json!({})).await;
    assert_eq!(h["ok"], true, "{h}");
}

#[tokio::test]
async fn t52_exec_children_get_a_minimal_environment() {
    let fake = FakeLlm::start().await;
    let env_canary = "ENV-CANARY-5551212";
    let gw = start(
        exec_config(&fake, "printenv, cat", ""),
        vec![
            ("OPENAI_API_KEY".into(), env_canary.into()),
            ("CLAWGATE_TEST_SECRET".into(), env_canary.into()),
            ("LD_PRELOAD".into(), String::new()),
        ],
    );
    let environ = format!("/proc/{}/environ", gw.child.id());
    let results = turn(
        &gw,
        &fake,
        "env",
        vec![
            exec_call("e1", "printenv", &[]),
            exec_call("e2", "cat", &["/proc/self/environ"]),
            exec_call("e3", "cat", &[&environ]),
        ],
    )
    .await;
    let vars: Vec<String> = text_of(&results[0])
        .split("--- stdout ---\n")
        .nth(1)
        .and_then(|s| s.split("--- stderr ---").next())
        .unwrap_or("")
        .lines()
        .map(|l| l.split('=').next().unwrap_or("").to_string())
        .collect();
    let mut sorted = vars.clone();
    sorted.sort();
    assert_eq!(sorted, ["HOME", "LANG", "PATH"], "{}", results[0]);
    // /proc is outside the sandbox: neither the child's nor the gateway's environment.
    assert_all_refused(&results[1..], &fake, env_canary);
    assert!(!results[0].to_string().contains(env_canary));
    assert!(!results.iter().any(|r| r.to_string().contains(&gw.token())));
}

#[tokio::test]
async fn i7_9_config_inside_the_workspace_is_out_of_reach() {
    let fake = FakeLlm::start().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let ws_dir = home.path().join("workspace");
    std::fs::create_dir(&ws_dir).unwrap();
    std::fs::set_permissions(&ws_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg_path = ws_dir.join("config.yaml");
    let cfg_text = format!(
        "gateway:\n  auth:\n    mode: token\n{}",
        exec_config(&fake, "cat", "")
    );
    std::fs::write(&cfg_path, &cfg_text).unwrap();
    std::fs::set_permissions(&cfg_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let opts = Options {
        args: vec!["--config".into(), cfg_path.display().to_string()],
        ..Options::default()
    };
    let gw = GatewayProcess::start_in(bin(), home, opts.clone());
    let edit = json!({"path": "config.yaml", "oldText": "mode: token", "newText": "mode: none"});
    let results = turn(
        &gw,
        &fake,
        "cfg",
        vec![
            ("f1".into(), "edit".into(), edit),
            (
                "f2".into(),
                "write".into(),
                json!({"path": "config.yaml", "content": "gateway:\n  auth:\n    mode: none\n"}),
            ),
            ("f3".into(), "read".into(), json!({"path": "config.yaml"})),
            ("f4".into(), "read".into(), json!({"path": "./config.yaml"})),
            exec_call("f5", "cat", &["config.yaml"]),
        ],
    )
    .await;
    assert_all_refused(&results, &fake, KEY);
    for r in &results[..4] {
        assert!(text_of(r).contains("config file"), "{r}");
    }
    assert_eq!(std::fs::read_to_string(&cfg_path).unwrap(), cfg_text);
    // Restarted on the same config, the gateway still requires auth.
    let home = gw.stop();
    let gw = GatewayProcess::start_in(bin(), home, opts);
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let mut params = cli_params("wrong-token", &["operator.admin"]);
    params["auth"] = json!({});
    let res = ws.connect_req(params).await;
    assert_eq!(res["ok"], false, "{res}");
}

#[test]
fn i7_4_doctor_warns_when_exec_runs_unconfined() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |cfg: &str| {
        write_config(home.path(), &format!("gateway:\n  port: {port}\n{cfg}"));
        let out = std::process::Command::new(bin())
            .arg("doctor")
            .env("CLAWGATE_HOME", home.path())
            .env_remove("CLAWGATE_CONFIG")
            .env_remove("CLAWGATE_GATEWAY_TOKEN")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let so = run("tools:\n  exec:\n    mode: allowlist\n    allowlist: [cat]\n    sandbox: none\n");
    assert!(
        so.contains("✗ exec-sandbox") && so.contains("not confined"),
        "{so}"
    );
    let so = run("tools:\n  exec:\n    mode: allowlist\n    allowlist: [cat]\n");
    assert!(
        so.contains("✓ exec-sandbox") && so.contains("Landlock"),
        "{so}"
    );
    let so = run("");
    assert!(!so.contains("exec-sandbox"), "{so}");
}

/// Runs `cmd` with Landlock made to look absent: a seccomp filter answers ENOSYS to
/// `landlock_create_ruleset` (syscall 444 on every architecture), as an old kernel would.
fn without_landlock(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    let filter = [
        // Load seccomp_data.nr.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: 444,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: between fork and exec only prctl runs; `filter` is copied into the child's
    // address space by fork and outlives the call.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn i7_4_without_landlock_exec_needs_an_explicit_sandbox_none() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let exec = "tools:\n  exec:\n    mode: allowlist\n    allowlist: [cat]\n";
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(args)
            .env("CLAWGATE_HOME", home.path())
            .env_remove("CLAWGATE_CONFIG")
            .env_remove("CLAWGATE_GATEWAY_TOKEN")
            .stdin(std::process::Stdio::null());
        without_landlock(&mut cmd);
        cmd
    };
    // Exec enabled, sandbox landlock (the default), no Landlock: start-up refused.
    write_config(home.path(), exec);
    let out = bounded(run(&["gateway", "run", "--port", "0"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("no Landlock") && err.contains("tools.exec.sandbox: none"),
        "{err}"
    );
    let so = String::from_utf8_lossy(&bounded(run(&["doctor"])).stdout).into_owned();
    assert!(
        so.contains("✗ exec-sandbox") && so.contains("no Landlock"),
        "{so}"
    );
    // Exec off: no Landlock needed, the gateway starts.
    write_config(home.path(), "");
    let mut child = run(&["gateway", "run", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listening = first_line_with(&mut child, "clawgate listening on");
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "exec off did not start without Landlock");
    // sandbox: none said explicitly: it starts (unconfined, and doctor flags it).
    write_config(home.path(), &format!("{exec}    sandbox: none\n"));
    let mut child = run(&["gateway", "run", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listening = first_line_with(&mut child, "clawgate listening on");
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "sandbox: none did not start");
}

/// Runs `cmd` to completion, killed (so the test fails instead of hanging) after 20 s.
fn bounded(mut cmd: std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(T).is_err() {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    out
}

/// Reads the child's stdout until a line contains `needle` (true) or the stream ends
/// (false); a watchdog kills the child after 20 s.
fn first_line_with(child: &mut std::process::Child, needle: &str) -> bool {
    use std::io::BufRead;
    let pid = child.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(T).is_err() {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let found = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains(needle));
    let _ = done_tx.send(());
    let _ = watchdog.join();
    found
}
