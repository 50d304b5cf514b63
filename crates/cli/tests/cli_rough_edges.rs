//! Rough edges a new user hit with the `clawgate` CLI (issue 11 §4), each against the real
//! binary: an invalid config is reported where it is wrong instead of silently replaced by
//! the defaults, errors are printed once, hints name the real wait, home and port.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeLlm, GatewayProcess};
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// The CLI with only `home` as its environment of note (no URL/token from the caller).
fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("CLAWGATE_HOME", home)
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("CLAWGATE_GATEWAY_URL")
        .env_remove("CLAWGATE_GATEWAY_PASSWORD")
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("NOPE_ROUGH_TOKEN")
        .output()
        .expect("run clawgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_invalid_config_is_reported_with_its_position_not_replaced_by_defaults() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        home.path().join("config.yaml"),
        format!("gateway:\n  port: {port}\n  auth:\n    token: ${{NOPE_ROUGH_TOKEN}}\n"),
    )
    .unwrap();
    for args in [
        &["health"][..],
        &["gateway", "status"],
        &["agent", "-m", "hi"],
    ] {
        let out = cli(home.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("config.yaml is invalid"), "{args:?}: {err}");
        assert!(
            err.contains("config.yaml:4:12: gateway.auth.token: environment variable NOPE_ROUGH_TOKEN is not set"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("cannot reach"), "no fall-back probe: {err}");
        assert!(!err.contains("18789"), "no default port: {err}");
    }
    // doctor lists the problem and does not probe a port it cannot know.
    let out = cli(home.path(), &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let so = text(&out.stdout);
    assert!(so.contains("NOPE_ROUGH_TOKEN is not set"), "{so}");
    assert!(so.contains("not checked"), "{so}");
    assert!(!so.contains("18789"), "{so}");
}

#[test]
fn an_invalid_local_config_does_not_block_an_explicit_target() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "gateway:\n  port: [oops]\n",
    )
    .unwrap();
    let url = gw.ws_url();
    let token = gw.token();
    let out = cli(
        home.path(),
        &[
            "gateway", "call", "health", "--url", &url, "--token", &token,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Without a credential the file would be needed: refused with the reason.
    let out = cli(home.path(), &["gateway", "call", "health", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config.yaml is invalid"));
}

#[test]
fn a_failed_agent_run_prints_its_error_once() {
    let fake = FakeLlm::start_blocking();
    fake.push(Step::status(401));
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-rough-edge\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    let out = gw
        .cli(bin())
        .args(["agent", "--message", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one error line: {err}");
    assert!(err.contains("refused the API key"), "{err}");
    assert!(!err.contains("sk-rough-edge"), "{err}");
}

#[test]
fn the_lockout_hint_names_the_servers_wait() {
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(
                "gateway:\n  auth:\n    rateLimit: { maxAttempts: 2, windowMs: 60000, lockoutMs: 90000 }\n"
                    .into(),
            ),
            ..Options::default()
        },
    );
    let url = gw.ws_url();
    let home = gw.home_path();
    let mut last = String::new();
    for _ in 0..3 {
        let out = cli(&home, &["health", "--url", &url, "--token", "wrong"]);
        assert_eq!(out.status.code(), Some(1));
        last = text(&out.stderr);
    }
    assert!(last.contains("too many failed attempts"), "{last}");
    let secs: u64 = last
        .split("wait ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in the hint: {last}"));
    assert!((60..=90).contains(&secs), "wait {secs} s: {last}");
}

#[test]
fn hints_name_the_real_home_and_port() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let url = gw.ws_url();
    let home = gw.home_path();
    let out = cli(&home, &["health", "--url", &url, "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let token_file = home.join("credentials/gateway-token");
    assert!(
        err.contains(&token_file.display().to_string()),
        "hint names {}: {err}",
        token_file.display()
    );
    assert!(!err.contains("~/.clawgate"), "{err}");

    let port = free_port();
    let out = cli(
        &home,
        &[
            "health",
            "--url",
            &format!("ws://127.0.0.1:{port}"),
            "--token",
            "t",
        ],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("ssh -N -L {port}:127.0.0.1:{port}")),
        "tunnel hint uses the port: {err}"
    );
    assert!(!err.contains("18789"), "{err}");
}

/// Runs `clawgate gateway run` with `args` until it exits (deadline 20 s); (code, stderr).
fn run_until_exit(home: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(["gateway", "run"])
        .args(args)
        .env("CLAWGATE_HOME", home)
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gateway run did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn port_in_use_by_a_silent_program_is_explained_and_a_free_port_proposed() {
    // A program that accepts connections and never answers.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = other.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in other.incoming().flatten() {
            held.push(s);
        }
    });
    let home = tempfile::tempdir().unwrap();
    let (code, err) = run_until_exit(home.path(), &["--port", &busy.to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("address already in use"), "{err}");
    assert!(err.contains("did not answer HTTP"), "explained: {err}");
    let proposed: u16 = err
        .split("--port ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a port is proposed: {err}"));
    assert_ne!(proposed, busy, "{err}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", proposed)).is_ok(),
        "the proposed port {proposed} is free"
    );
}

#[test]
fn a_refusal_caused_by_the_host_flag_names_the_flag_and_the_port() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.yaml"),
        "gateway:\n  auth:\n    mode: none\n",
    )
    .unwrap();
    let port = free_port();
    let (code, err) = run_until_exit(
        home.path(),
        &["--host", "0.0.0.0", "--port", &port.to_string()],
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("--host is `0.0.0.0`"), "{err}");
    assert!(!err.contains("gateway.host is"), "{err}");
    assert!(
        err.contains(&format!("ssh -N -L {port}:127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn inline_secrets_in_a_world_readable_config_are_warned_about_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let token = "c".repeat(64);
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "gateway:\n  port: {}\n  auth:\n    token: {token}\n",
            free_port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let home = gw.home_path();
    let cfg = home.join("config.yaml");
    let want = format!("run `chmod 600 {}`", cfg.display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.stderr_text().contains("secret(s) inline") {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning: {}",
            gw.stderr_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let err = gw.stderr_text();
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains(&token), "the warning never shows the secret");
    let out = cli(&home, &["doctor"]);
    let so = text(&out.stdout);
    assert!(so.contains("secret(s) inline"), "{so}");
    assert!(!so.contains(&token));

    // The same mode with the secret in an environment variable is fine.
    std::fs::write(&cfg, "gateway:\n  auth:\n    token: ${ROUGH_EDGE_TOKEN}\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(bin())
        .args(["doctor"])
        .env("CLAWGATE_HOME", &home)
        .env("ROUGH_EDGE_TOKEN", &token)
        .env_remove("CLAWGATE_CONFIG")
        .output()
        .unwrap();
    let so = text(&out.stdout);
    assert!(so.contains("no inline secret is readable"), "{so}");
}

/// `channels.status` account row of Telegram, through the real CLI.
fn telegram_account(gw: &GatewayProcess) -> serde_json::Value {
    let out = gw
        .cli(bin())
        .args(["channels", "status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["channelAccounts"]["telegram"][0].clone()
}

fn wait_account(
    gw: &GatewayProcess,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let a = telegram_account(gw);
        if pred(&a) {
            return a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {a}\n{}",
            gw.stderr_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn doctor_reports_a_restarting_channel_and_a_recovered_one_drops_its_old_error() {
    use clawgate_testkit::fake_telegram::Fault;
    use clawgate_testkit::FakeTelegram;
    let tg = FakeTelegram::start_blocking();
    let cfg = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
        tg.token(),
        tg.api_root()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    wait_account(&gw, "connected", |a| a["connected"] == true);
    // A conflict (another poller) is reported while it lasts, and gone once polls succeed.
    let polls = tg.call_count("getupdates");
    tg.fail_next(
        "getUpdates",
        Fault::Status(
            409,
            "Conflict: terminated by other getUpdates request".into(),
        ),
    );
    wait_account(&gw, "the conflict is reported", |a| {
        a["connected"] == false
            && a["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("conflict"))
    });
    let a = wait_account(&gw, "the conflict is over", |a| {
        tg.call_count("getupdates") >= polls + 3 && a["connected"] == true
    });
    assert!(a["lastError"].is_null(), "no stale conflict error: {a}");
    // A failure that ends the receiver: it restarts after its backoff and polls again.
    tg.fail_next("getUpdates", Fault::Status(401, "Unauthorized".into()));
    let a = wait_account(&gw, "recovered after a restart", |a| {
        a["restarts"].as_u64() >= Some(1)
            && a["connected"] == true
            && a["lastPollAt"].as_i64() > a["lastStartAt"].as_i64()
    });
    assert!(
        a["lastError"].is_null(),
        "a recovered channel shows no stale error: {a}"
    );
    assert!(a["lastStopAt"].as_i64().is_some(), "{a}");
    // Doctor does not call a channel that failed moments ago healthy.
    let out = gw.cli(bin()).args(["doctor"]).output().unwrap();
    let so = text(&out.stdout);
    assert!(so.contains("restarting"), "{so}");
    assert!(so.contains("1 restart(s)"), "{so}");
    assert_eq!(out.status.code(), Some(1), "{so}");
}

#[test]
fn the_log_names_runs_provider_errors_and_send_failures_not_every_connection() {
    use clawgate_testkit::fake_telegram::Fault;
    use clawgate_testkit::FakeTelegram;
    let fake = FakeLlm::start_blocking();
    let tg = FakeTelegram::start_blocking();
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-log-secret-123\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n\
channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    dmPolicy: open\n    allowFrom: [\"*\"]\n",
        fake.openai_base_url(),
        tg.token(),
        tg.api_root()
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    // One good turn and one the provider refuses, from the CLI.
    fake.push(Step::text("fine"));
    let out = gw
        .cli(bin())
        .args(["agent", "-m", "hi", "--session", "log-a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    fake.push(Step::status(401));
    let out = gw
        .cli(bin())
        .args(["agent", "-m", "hi", "--session", "log-b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // A Telegram reply whose first send fails transiently.
    tg.fail_next("sendMessage", Fault::HtmlError(502));
    fake.push(Step::text("hello telegram"));
    tg.inject_private_text(4242, "hi bot");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tg.sent_messages().is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stderr_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = gw.stderr_text();
    let line = |needle: &str, and: &str| {
        log.lines()
            .find(|l| l.contains(needle) && l.contains(and))
            .unwrap_or_else(|| panic!("no log line with `{needle}` and `{and}`:\n{log}"))
            .to_string()
    };
    assert!(line("agent run started", "log-a").contains(" INFO "));
    let done = line("agent run finished", "log-a");
    assert!(
        done.contains(" INFO ") && done.contains("fake/fake-model"),
        "{done}"
    );
    let failed = line("agent run failed", "log-b");
    assert!(
        failed.contains(" WARN ") && failed.contains("refused the API key"),
        "{failed}"
    );
    assert!(failed.contains("run="), "the run id is named: {failed}");
    let retry = line("reply not sent, retrying", "telegram");
    assert!(retry.contains(" WARN "), "{retry}");
    assert!(
        !log.contains("client connected"),
        "connection chatter is debug:\n{log}"
    );
    assert!(!log.contains("sk-log-secret-123"), "no secret in the log");
}

/// The tool names of the first request the fake LLM saw.
fn offered_tools(fake: &FakeLlm) -> Vec<String> {
    fake.requests()[0].body["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn exec_is_not_offered_to_the_model_when_its_mode_is_deny() {
    for (tools, offered) in [
        ("", false),
        ("tools:\n  exec:\n    mode: deny\n", false),
        (
            "tools:\n  exec:\n    mode: allowlist\n    allowlist: [ls]\n    sandbox: none\n",
            true,
        ),
    ] {
        let fake = FakeLlm::start_blocking();
        fake.push(Step::text("ok"));
        let cfg = format!(
            "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n{tools}",
            fake.openai_base_url()
        );
        let gw = GatewayProcess::start(
            bin(),
            Options {
                config: Some(cfg),
                ..Options::default()
            },
        );
        let out = gw.cli(bin()).args(["agent", "-m", "hi"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let names = offered_tools(&fake);
        assert!(names.contains(&"read".to_string()), "{names:?}");
        assert_eq!(
            names.contains(&"exec".to_string()),
            offered,
            "{tools}: {names:?}"
        );
    }
}

#[test]
fn an_openai_compatible_base_url_without_v1_is_warned_about() {
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(
                "models:\n  providers:\n    local:\n      baseUrl: http://127.0.0.1:11434\n      models: [llama3.1]\n    ok:\n      baseUrl: http://127.0.0.1:11434/v1\n      models: [llama3.1]\n"
                    .into(),
            ),
            ..Options::default()
        },
    );
    let want = "use http://127.0.0.1:11434/v1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw.stderr_text().contains(want) {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stderr_text());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let err = gw.stderr_text();
    assert!(err.contains("models.providers.local.baseUrl"), "{err}");
    assert!(!err.contains("models.providers.ok.baseUrl"), "{err}");
    let out = gw.cli(bin()).args(["doctor"]).output().unwrap();
    let so = text(&out.stdout);
    assert!(so.contains(want), "{so}");
}
