//! Start-up behaviour of the real binary: first run, strict config, the exposure guardrail,
//! and a port that is already taken.

use clawgate_testkit::gateway::{run_to_exit, write_config, Options};
use clawgate_testkit::GatewayProcess;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn refused(config: &str) -> (i32, String, u16) {
    let h = home();
    let port = free_port();
    write_config(h.path(), &config.replace("PORT", &port.to_string()));
    let (status, out, err) = run_to_exit(
        bin(),
        h.path(),
        &Options::default(),
        &port.to_string(),
        Duration::from_secs(10),
    );
    assert!(!out.contains("listening"), "it listened: {out}");
    (status.code().unwrap_or(-1), err, port)
}

fn nothing_listens_on(port: u16) -> bool {
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        if std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200))
            .is_ok()
        {
            return false;
        }
    }
    // And no socket of any address family listens on the port (only listeners: a parallel
    // test's client socket may have it as its ephemeral port).
    let suffix = format!(":{port:04X}");
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let table = std::fs::read_to_string(f).unwrap_or_default();
        let listening = table.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&suffix) && cols[3] == "0A"
        });
        if listening {
            return false;
        }
    }
    true
}

#[test]
fn first_run_writes_private_config_and_token() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let home = gw.home_path();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.join("config.yaml")), 0o600);
    assert_eq!(mode(&home.join("credentials")), 0o700);
    assert_eq!(mode(&home.join("credentials/gateway-token")), 0o600);
    let token = gw.token();
    assert_eq!(token.len(), 43, "32 random bytes, base64url");
    let config = std::fs::read_to_string(home.join("config.yaml")).unwrap();
    assert!(
        config.contains("host: 127.0.0.1") && config.contains("# "),
        "commented default"
    );
    // The log says where the token is, never what it is. The banner reaches stderr just
    // after the listening line reaches stdout: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw.stderr_text().contains("credentials/gateway-token") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.stderr_text());
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = gw.stderr_text();
    assert!(!err.contains(&token));
    assert!(gw.addr.ip().is_loopback());
    drop(gw);
    let log = std::fs::read_to_string(home.join("logs/gateway.log")).unwrap_or_default();
    assert!(!log.contains(&token));
}

#[test]
fn unknown_key_stops_startup_with_line_and_col() {
    let (code, err, port) = refused("gateway:\n  port: PORT\n  prot: 1\n");
    assert_eq!(code, 78);
    assert!(
        err.contains("config.yaml:3:3: gateway.prot: unknown key (did you mean `gateway.port`?)"),
        "{err}"
    );
    assert!(nothing_listens_on(port));
}

#[test]
fn wrong_type_and_bad_value_stop_startup() {
    let (code, err, _) = refused("gateway:\n  port: lots\n");
    assert_eq!(code, 78);
    assert!(
        err.contains("config.yaml:2:9: gateway.port: expected a whole number, found `lots`"),
        "{err}"
    );
    let (code, err, _) = refused("gateway:\n  auth:\n    mode: nobody\n");
    assert_eq!(code, 78);
    assert!(
        err.contains("gateway.auth.mode: `nobody` is not one of"),
        "{err}"
    );
}

#[test]
fn non_loopback_without_auth_is_refused_before_any_socket() {
    for host in ["0.0.0.0", "\"::\"", "10.11.12.13", "\"::ffff:0.0.0.0\""] {
        let (code, err, port) = refused(&format!(
            "gateway:\n  host: {host}\n  port: PORT\n  auth:\n    mode: none\n"
        ));
        assert_eq!(code, 78, "{host}: {err}");
        assert!(err.contains("gateway.host"), "{err}");
        assert!(err.contains("gateway.auth.mode is `none`"), "{err}");
        // The hints use the port being bound, not the default.
        assert!(
            err.contains(&format!("ssh -N -L {port}:127.0.0.1:{port}")),
            "{err}"
        );
        assert!(
            err.contains(&format!("127.0.0.1:{port}:{port}")),
            "docker hint: {err}"
        );
        assert!(nothing_listens_on(port), "{host} left a socket");
    }
}

#[test]
fn non_loopback_with_a_weak_token_is_refused() {
    let (code, err, port) =
        refused("gateway:\n  host: 0.0.0.0\n  port: PORT\n  auth:\n    token: changeme\n");
    assert_eq!(code, 78);
    assert!(err.contains("gateway.auth.token is too weak"), "{err}");
    assert!(
        !err.contains("changeme"),
        "the secret itself is never printed"
    );
    assert!(nothing_listens_on(port));
}

#[test]
fn non_loopback_flag_override_is_guarded_too() {
    let h = home();
    write_config(h.path(), "gateway:\n  auth:\n    mode: none\n");
    let port = free_port();
    let opts = Options {
        args: vec!["--host".into(), "0.0.0.0".into()],
        ..Options::default()
    };
    let (status, _, err) = run_to_exit(
        bin(),
        h.path(),
        &opts,
        &port.to_string(),
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(78), "{err}");
    assert!(nothing_listens_on(port));
}

#[test]
fn world_writable_config_is_refused() {
    let h = home();
    write_config(h.path(), "gateway: {}\n");
    std::fs::set_permissions(
        h.path().join("config.yaml"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let (status, _, err) = run_to_exit(
        bin(),
        h.path(),
        &Options::default(),
        "0",
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(78));
    assert!(err.contains("writable by group or others"), "{err}");
}

#[test]
fn missing_env_var_in_config_is_an_error() {
    let (code, err, _) = refused("gateway:\n  auth:\n    token: ${CLAWGATE_TEST_UNSET_VAR}\n");
    assert_eq!(code, 78);
    assert!(
        err.contains("environment variable CLAWGATE_TEST_UNSET_VAR is not set"),
        "{err}"
    );
}

#[test]
fn port_in_use_names_the_address_and_the_other_gateway() {
    let first = GatewayProcess::start(bin(), Options::default());
    let h = home();
    let port = first.port().to_string();
    let (status, out, err) = run_to_exit(
        bin(),
        h.path(),
        &Options::default(),
        &port,
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(!out.contains("listening"));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("address already in use"), "{err}");
    assert!(
        err.contains("another clawgate or OpenClaw gateway"),
        "{err}"
    );
    assert!(err.contains("--port"), "{err}");
    // Something that is not a gateway is named as such.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = other.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for s in other.incoming().flatten() {
            drop(s);
        }
    });
    let (status, _, err) = run_to_exit(
        bin(),
        h.path(),
        &Options::default(),
        &busy,
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("does not answer /healthz like a gateway"),
        "{err}"
    );
}
