//! Running as a service: `gateway install|uninstall` (systemd unit checked by
//! `systemd-analyze verify`, launchd plist parsed by Python's plistlib), `gateway healthcheck`,
//! and sd_notify readiness (READY=1 once the port accepts, STOPPING=1 on SIGTERM) against the
//! real binary. systemctl is never run.

use clawgate_testkit::GatewayProcess;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn private_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// A CLI whose HOME, XDG_CONFIG_HOME and CLAWGATE_HOME are all under `root`.
fn cli(root: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("HOME", root)
        .env("XDG_CONFIG_HOME", root.join("xdg"))
        .env("CLAWGATE_HOME", root.join("state"))
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("SUDO_USER")
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> (i32, String, String) {
    let out = c.output().expect("run clawgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `systemd-analyze verify`: it exits 0 even for unknown or malformed directives and only
/// complains on stderr, so any output at all is a failure.
fn verify_unit(path: &Path, user: bool) {
    let runtime = private_dir();
    let mut c = Command::new("systemd-analyze");
    if user {
        c.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let out = c
        .arg("verify")
        .arg(path)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {}: {}\n{stderr}\n---\n{}",
        path.display(),
        out.status,
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn exe() -> PathBuf {
    bin().canonicalize().unwrap()
}

#[test]
fn the_verifier_catches_a_broken_unit() {
    // The check above can fail: a typo'd directive is reported.
    let d = private_dir();
    let (code, unit, _) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install", "--print"]);
        c
    });
    assert_eq!(code, 0);
    let bad = d.path().join("clawgate.service");
    std::fs::write(
        &bad,
        unit.replace("ProtectSystem=strict", "ProtectSystem=strickt"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("strickt"),
        "{out:?}"
    );
}

#[test]
fn user_install_writes_a_verified_unit_and_uninstall_removes_it() {
    let d = private_dir();
    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install", "--user"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let unit_path = d.path().join("xdg/systemd/user/clawgate.service");
    assert!(
        out.contains(&format!("Wrote {}", unit_path.display())),
        "{out}"
    );
    assert!(
        out.contains("systemctl --user daemon-reload && systemctl --user enable --now clawgate"),
        "{out}"
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let state = d.path().join("state");
    for want in [
        "Type=notify".to_string(),
        format!("ExecStart={} gateway run\n", exe().display()),
        format!("Environment=CLAWGATE_HOME={}\n", state.display()),
        "ExecReload=/bin/kill -HUP $MAINPID".into(),
        "Restart=on-failure".into(),
        "RestartPreventExitStatus=78".into(),
        "NoNewPrivileges=yes".into(),
        "ProtectSystem=strict".into(),
        format!("ReadWritePaths={}\n", state.display()),
        "PrivateTmp=yes".into(),
        "WantedBy=default.target".into(),
    ] {
        assert!(unit.contains(&want), "missing {want:?} in\n{unit}");
    }
    // The state directory exists (ReadWritePaths= needs it at the first start), private.
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    verify_unit(&unit_path, false);
    verify_unit(&unit_path, true);

    // Installing again replaces it.
    let (code, out, _) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install"]);
        c
    });
    assert_eq!(code, 0);
    assert!(out.contains("Replaced"), "{out}");

    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "uninstall", "--user"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(!unit_path.exists());
    assert!(
        out.contains("systemctl --user disable --now clawgate"),
        "{out}"
    );
    assert!(state.exists(), "the state is kept");

    let (code, _, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "uninstall"]);
        c
    });
    assert_eq!(code, 1);
    assert!(err.contains("nothing to remove"), "{err}");
}

#[test]
fn config_flag_and_a_home_with_spaces_are_quoted_for_systemd() {
    let d = private_dir();
    let home = d.path().join("my state %h");
    let cfg = d.path().join("conf dir/config.yaml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "gateway:\n  port: 18790\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.env("CLAWGATE_HOME", &home)
            .arg("--config")
            .arg(&cfg)
            .args(["gateway", "install", "--unit-dir"])
            .arg(d.path().join("units"));
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let unit_path = d.path().join("units/clawgate.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(
        unit.contains(&format!("gateway run --config \"{}\"\n", cfg.display())),
        "{unit}"
    );
    assert!(unit.contains("my state %%h"), "{unit}");
    verify_unit(&unit_path, false);
}

#[test]
fn print_writes_nothing() {
    let d = private_dir();
    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install", "--print"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("# Written by `clawgate gateway install`"),
        "{out}"
    );
    assert!(out.contains("[Service]\nType=notify\n"), "{out}");
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "--print wrote {left:?}");
}

#[test]
fn system_unit_runs_as_the_sudo_user_or_a_dynamic_account() {
    let d = private_dir();
    // Under sudo: the invoking account.
    let (code, unit, err) = run({
        let mut c = cli(d.path());
        c.env("SUDO_USER", "www-data")
            .args(["gateway", "install", "--system", "--print"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(unit.contains("\nUser=www-data\n"), "{unit}");
    assert!(unit.contains("WantedBy=multi-user.target"), "{unit}");
    let p = d.path().join("sudo.service");
    std::fs::write(&p, &unit).unwrap();
    verify_unit(&p, false);

    // As plain root without CLAWGATE_HOME: a dynamic account, state in /var/lib/clawgate.
    if unsafe { libc::geteuid() } == 0 {
        let (code, unit, err) = run({
            let mut c = cli(d.path());
            c.env_remove("CLAWGATE_HOME")
                .args(["gateway", "install", "--system", "--print"]);
            c
        });
        assert_eq!(code, 0, "{err}");
        for want in [
            "DynamicUser=yes",
            "StateDirectory=clawgate",
            "Environment=CLAWGATE_HOME=/var/lib/clawgate",
            "ReadWritePaths=/var/lib/clawgate",
        ] {
            assert!(unit.contains(want), "missing {want} in\n{unit}");
        }
        let p = d.path().join("dynamic.service");
        std::fs::write(&p, &unit).unwrap();
        verify_unit(&p, false);
    }
    // Writing it goes to --unit-dir (never /etc here).
    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.env("SUDO_USER", "www-data")
            .args(["gateway", "install", "--system", "--unit-dir"])
            .arg(d.path().join("etc"));
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Next: systemctl daemon-reload && systemctl enable --now clawgate"),
        "{out}"
    );
    assert!(d.path().join("etc/clawgate.service").exists());
}

#[test]
fn launchd_plist_parses_and_runs_the_gateway() {
    let d = private_dir();
    let (code, plist, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install", "--print", "--launchd"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    let p = d.path().join("p.plist");
    std::fs::write(&p, &plist).unwrap();
    let script =
        "import json, plistlib, sys\nprint(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&p)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}\n{plist}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Label"], "ai.clawgate.gateway");
    assert_eq!(
        v["ProgramArguments"],
        serde_json::json!([exe().display().to_string(), "gateway", "run"])
    );
    assert_eq!(
        v["EnvironmentVariables"]["CLAWGATE_HOME"],
        d.path().join("state").display().to_string()
    );
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    assert!(
        std::fs::read_dir(d.path()).unwrap().count() == 1,
        "--print wrote files"
    );
}

#[test]
fn healthcheck_exits_0_for_a_live_gateway_and_1_otherwise() {
    let gw = GatewayProcess::start(bin(), Default::default());
    let port = gw.port().to_string();
    let d = private_dir();
    let check = || {
        let mut c = cli(d.path());
        c.args(["gateway", "healthcheck", "--port", &port]);
        run(c)
    };
    let (code, _, err) = check();
    assert_eq!(code, 0, "{err}");
    drop(gw);
    let (code, _, err) = check();
    assert_eq!(code, 1);
    assert!(err.contains("unhealthy: http://127.0.0.1:"), "{err}");
}

/// Receives one datagram, waiting up to `timeout`.
fn recv(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn notify_roundtrip(sock: UnixDatagram, notify_socket: &str) {
    let home = private_dir();
    let mut child = Command::new(bin())
        .args(["gateway", "run", "--port", "0"])
        .env("CLAWGATE_HOME", home.path())
        .env("NOTIFY_SOCKET", notify_socket)
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = recv(&sock, Duration::from_secs(20));
    let ready = match ready {
        Some(r) => r,
        None => {
            let _ = child.kill();
            panic!("no READY=1 within 20 s");
        }
    };
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    let addr: std::net::SocketAddr = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=listening on "))
        .unwrap_or_else(|| panic!("no STATUS in {ready:?}"))
        .parse()
        .unwrap();
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    // Ready means the port accepts now: no retry loop.
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("READY=1 came before the port accepted connections");
    // SIGTERM: STOPPING=1, then a clean exit.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let stopping = recv(&sock, Duration::from_secs(20)).expect("no STOPPING=1 after SIGTERM");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn sd_notify_ready_after_bind_and_stopping_on_sigterm() {
    let d = private_dir();
    let path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    notify_roundtrip(sock, path.to_str().unwrap());
}

#[test]
fn sd_notify_to_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("clawgate-test-{}-{}", std::process::id(), line!());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    notify_roundtrip(sock, &format!("@{name}"));
}

#[test]
fn without_notify_socket_nothing_changes() {
    // The common case (no systemd): starts and answers as always.
    let gw = GatewayProcess::start(bin(), Default::default());
    assert!(std::net::TcpStream::connect(gw.addr).is_ok());
}

#[test]
fn install_warns_when_the_config_does_not_load() {
    let d = private_dir();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("config.yaml"), "gateway:\n  prot: 1\n").unwrap();
    std::fs::set_permissions(
        state.join("config.yaml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (code, out, err) = run({
        let mut c = cli(d.path());
        c.args(["gateway", "install", "--print"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Type=notify"));
    assert!(
        err.contains("warning: the config does not load")
            && err.contains("config.yaml:2:3: gateway.prot: unknown key"),
        "{err}"
    );
}
