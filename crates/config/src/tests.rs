use super::*;
use std::path::Path;

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::parse_with_env(text, Path::new("config.yaml"), &|name| match name {
        "MY_TOKEN" => Some("from-env".into()),
        _ => None,
    })
}

fn first_error(text: &str) -> String {
    parse(text).unwrap_err()[0].to_string()
}

#[test]
fn defaults_when_empty() {
    let c = parse("").unwrap();
    assert_eq!(c.gateway.host, "127.0.0.1");
    assert_eq!(c.gateway.port, 18789);
    assert_eq!(c.gateway.auth.mode, AuthMode::Token);
    assert!(c.gateway.auth.token.is_none());
}

#[test]
fn the_default_file_is_valid() {
    let c = parse(DEFAULT_CONFIG_YAML).unwrap();
    assert_eq!(c.gateway.port, 18789);
    assert!(c.gateway.allowed_origins.is_empty());
}

#[test]
fn unknown_key_names_line_col_and_suggests() {
    let e = first_error("gateway:\n  prot: 5\n");
    assert_eq!(
        e,
        "config.yaml:2:3: gateway.prot: unknown key (did you mean `gateway.port`?)"
    );
}

#[test]
fn unknown_root_key() {
    let e = first_error("gateways:\n  port: 5\n");
    assert_eq!(
        e,
        "config.yaml:1:1: gateways: unknown key (did you mean `gateway`?)"
    );
}

#[test]
fn wrong_type() {
    let e = first_error("gateway:\n  port: \"abc\"\n");
    assert_eq!(
        e,
        "config.yaml:2:9: gateway.port: expected a whole number, found `abc`"
    );
    let e = first_error("gateway:\n  port: 70000\n");
    assert_eq!(
        e,
        "config.yaml:2:9: gateway.port: 70000 is out of range (1–65535)"
    );
    let e = first_error("gateway: 5\n");
    assert_eq!(
        e,
        "config.yaml:1:10: gateway: expected a mapping, found a scalar"
    );
}

#[test]
fn bad_enum_value() {
    let e = first_error("gateway:\n  auth:\n    mode: tokn\n");
    assert_eq!(
        e,
        "config.yaml:3:11: gateway.auth.mode: `tokn` is not one of `token`, `password`, `none` (did you mean `token`?)"
    );
}

#[test]
fn env_substitution() {
    let c = parse("gateway:\n  auth:\n    token: ${MY_TOKEN}\n").unwrap();
    assert!(c.gateway.auth.token.unwrap().verify("from-env"));
    let e = first_error("gateway:\n  auth:\n    token: ${NOPE_TOKEN}\n");
    assert_eq!(
        e,
        "config.yaml:3:12: gateway.auth.token: environment variable NOPE_TOKEN is not set"
    );
    let c = parse("gateway:\n  auth:\n    token: \"$${MY_TOKEN}x\"\n").unwrap();
    assert!(c.gateway.auth.token.unwrap().verify("${MY_TOKEN}x"));
}

#[test]
fn origins_and_proxies() {
    let c = parse(
        "gateway:\n  allowedOrigins: [\"HTTPS://UI.example.com:443/\"]\n  trustedProxies: [10.0.0.1, 192.168.0.0/16]\n",
    )
    .unwrap();
    assert_eq!(c.gateway.allowed_origins, vec!["https://ui.example.com"]);
    assert_eq!(c.gateway.trusted_proxies.len(), 2);
    let e = first_error("gateway:\n  allowedOrigins: [\"*\"]\n");
    assert!(e.contains("wildcards are not allowed"), "{e}");
    let e = first_error("gateway:\n  trustedProxies: [nope]\n");
    assert!(
        e.starts_with("config.yaml:2:20: gateway.trustedProxies[0]:"),
        "{e}"
    );
}

#[test]
fn all_errors_are_reported() {
    let errs = parse("gateway:\n  prot: 1\n  hots: x\n").unwrap_err();
    assert_eq!(errs.len(), 2);
}

#[test]
fn yaml_syntax_error_has_position() {
    let e = first_error("gateway:\n  port: [1, 2\n");
    assert!(e.starts_with("config.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn loopback_classification() {
    for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
        assert!(is_loopback_ip(ip.parse().unwrap()), "{ip}");
    }
    for ip in ["0.0.0.0", "::", "10.0.0.1", "::ffff:0.0.0.0", "192.168.1.2"] {
        assert!(!is_loopback_ip(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn exec_escape_hatches_need_the_dangerous_key() {
    let text = "tools:\n  exec:\n    mode: allowlist\n    allowlist: [cat, env, /bin/sh]\n";
    let errs = parse(text).unwrap_err();
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("config.yaml:4:22: tools.exec.allowlist[1]: `env`: it runs the program given as an argument"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("set tools.exec.dangerouslyAllowEscapeHatches: true to accept that"));
    assert!(
        lines[1].starts_with("config.yaml:4:27: tools.exec.allowlist[2]: `sh`"),
        "{}",
        lines[1]
    );

    let ok = parse(&format!("{text}    dangerouslyAllowEscapeHatches: true\n")).unwrap();
    assert!(ok.tools.exec.dangerously_allow_escape_hatches);
    assert_eq!(ok.tools.exec.allowlist, ["cat", "env", "/bin/sh"]);
    assert_eq!(ok.tools.exec.sandbox, ExecSandbox::Landlock);
}

#[test]
fn exec_sandbox_key() {
    let c = parse("tools:\n  exec:\n    sandbox: none\n").unwrap();
    assert_eq!(c.tools.exec.sandbox, ExecSandbox::None);
    assert_eq!(
        first_error("tools:\n  exec:\n    sandbox: landlok\n"),
        "config.yaml:3:14: tools.exec.sandbox: `landlok` is not one of `landlock`, `none` (did you mean `landlock`?)"
    );
    assert_eq!(
        first_error("tools:\n  exec:\n    dangerouslyAllowEscapeHatches: yes\n"),
        "config.yaml:3:36: tools.exec.dangerouslyAllowEscapeHatches: expected true or false, found `yes`"
    );
}

#[test]
fn loopback_hosts_are_exact_literals() {
    use crate::{is_loopback_host, split_host_port};
    for h in [
        "localhost",
        "LocalHost",
        "127.0.0.1",
        "127.1.2.3",
        "[::1]",
        "::1",
        "[::ffff:127.0.0.1]",
    ] {
        assert!(is_loopback_host(h), "{h}");
    }
    for h in [
        "127.0.0.1.evil.com",
        "127.evil.com",
        "127.1",
        "localhost.evil.com",
        "[::1].x",
        "0.0.0.0",
        "10.0.0.1",
        "",
    ] {
        assert!(!is_loopback_host(h), "{h}");
    }
    assert_eq!(
        split_host_port("127.0.0.1:18789"),
        Some(("127.0.0.1".into(), Some(18789)))
    );
    assert_eq!(
        split_host_port("[::1]:80"),
        Some(("[::1]".into(), Some(80)))
    );
    assert_eq!(
        split_host_port("Example.COM"),
        Some(("example.com".into(), None))
    );
    for bad in [
        "127.0.0.1:18789x",
        "[::1]x",
        "[::1]:",
        "127.0.0.1:",
        ":80",
        "a:1:2",
        "h:99999",
    ] {
        assert_eq!(split_host_port(bad), None, "{bad}");
    }
}

#[test]
fn store_retention_logging_and_max_concurrent() {
    let c = parse("").unwrap();
    assert_eq!(c.agent.max_concurrent, 4);
    assert_eq!(c.store.retention, RetentionConfig::default());
    assert_eq!(c.logging, LoggingConfig::default());
    let c = parse(
        "agents:\n  defaults:\n    maxConcurrent: 2\nstore:\n  retention:\n    inboundDays: 7\n    outboxDays: 0\n    idempotencyHours: 48\nlogging:\n  maxFileBytes: 65536\n  maxFiles: 3\n",
    )
    .unwrap();
    assert_eq!(c.agent.max_concurrent, 2);
    assert_eq!(
        c.store.retention,
        RetentionConfig {
            inbound_days: 7,
            outbox_days: 0,
            idempotency_hours: 48
        }
    );
    assert_eq!(c.logging.max_file_bytes, 65536);
    assert_eq!(c.logging.max_files, 3);
    assert_eq!(
        first_error("agents:\n  defaults:\n    maxConcurrent: 0\n"),
        "config.yaml:3:20: agents.defaults.maxConcurrent: 0 is out of range (1–256)"
    );
    assert_eq!(
        first_error("store:\n  retention:\n    inboundDay: 3\n"),
        "config.yaml:3:5: store.retention.inboundDay: unknown key (did you mean `store.retention.inboundDays`?)"
    );
    assert_eq!(
        first_error("logging:\n  maxFileBytes: 10\n"),
        "config.yaml:2:17: logging.maxFileBytes: 10 is out of range (4096–1099511627776)"
    );
}

#[test]
fn connection_and_outbound_limits() {
    let c = parse("").unwrap();
    assert_eq!(c.gateway.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        c.gateway.max_buffered_bytes_total,
        DEFAULT_MAX_BUFFERED_BYTES_TOTAL
    );
    let c = parse("gateway:\n  maxConnections: 5\n  maxBufferedBytesTotal: 8388608\n").unwrap();
    assert_eq!(c.gateway.max_connections, 5);
    assert_eq!(c.gateway.max_buffered_bytes_total, 8 << 20);
    assert!(first_error("gateway:\n  maxConnections: 0\n").contains("gateway.maxConnections"));
    assert!(first_error("gateway:\n  maxBufferedBytesTotal: 1000\n")
        .contains("gateway.maxBufferedBytesTotal"));
}

#[test]
fn allowed_hosts_are_host_names() {
    let c = parse("gateway:\n  allowedHosts: [\"Bot.Example.com\", \"[::1]\"]\n").unwrap();
    assert_eq!(c.gateway.allowed_hosts, vec!["bot.example.com", "[::1]"]);
    for bad in [
        "https://bot.example.com",
        "*.example.com",
        "bot.example.com:443",
        "",
    ] {
        let e = first_error(&format!("gateway:\n  allowedHosts: [\"{bad}\"]\n"));
        assert!(e.contains("gateway.allowedHosts[0]"), "{bad}: {e}");
    }
}

#[test]
fn control_ui_defaults_and_base_path() {
    let c = parse("").unwrap();
    assert!(c.gateway.control_ui.enabled);
    assert!(c.gateway.control_ui.root.is_none());
    assert_eq!(c.gateway.control_ui.base_path, "");
    let c = parse("gateway:\n  controlUi:\n    enabled: false\n    basePath: /ui/x/\n").unwrap();
    assert!(!c.gateway.control_ui.enabled);
    assert_eq!(c.gateway.control_ui.base_path, "/ui/x");
    for (raw, want) in [
        ("", ""),
        ("/", ""),
        ("openclaw", "/openclaw"),
        ("//a//", "/a"),
    ] {
        assert_eq!(normalize_base_path(raw).unwrap(), want, "{raw}");
    }
    let e = first_error("gateway:\n  controlUi:\n    basePath: \"/a/../b\"\n");
    assert!(
        e.starts_with(
            "config.yaml:3:15: gateway.controlUi.basePath: `/a/../b` is not a URL path prefix"
        ),
        "{e}"
    );
    let e = first_error("gateway:\n  controlUi:\n    basePath: \"/a?b\"\n");
    assert!(e.contains("`?` is not allowed"), "{e}");
}

#[test]
fn control_ui_root_must_hold_index_html() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let e = first_error(&format!("gateway:\n  controlUi:\n    root: {root}\n"));
    assert!(
        e.starts_with("config.yaml:3:11: gateway.controlUi.root: ")
            && e.contains("has no index.html"),
        "{e}"
    );
    let e = first_error(&format!(
        "gateway:\n  controlUi:\n    root: {root}/missing\n"
    ));
    assert!(e.contains("is not a directory"), "{e}");
    std::fs::write(dir.path().join("index.html"), "<html></html>").unwrap();
    let c = parse(&format!("gateway:\n  controlUi:\n    root: {root}\n")).unwrap();
    assert_eq!(c.gateway.control_ui.root.as_deref(), Some(dir.path()));
    // Relative to the config file's directory.
    let cfg = dir.path().join("config.yaml");
    let c =
        Config::parse_with_env("gateway:\n  controlUi:\n    root: .\n", &cfg, &|_| None).unwrap();
    assert_eq!(c.gateway.control_ui.root.unwrap(), dir.path().join("."));
}

fn token_file_config(dir: &Path, name: &str) -> Result<Config, Vec<ConfigError>> {
    let text = format!("gateway:\n  auth:\n    tokenFile: {name}\n");
    Config::parse_with_env(&text, &dir.join("config.yaml"), &|_| None)
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn token_file_is_read_relative_to_the_config_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    write_mode(&dir.path().join("tok"), "  abc-secret-token \n", 0o600);
    let c = token_file_config(dir.path(), "tok").unwrap();
    assert_eq!(
        c.gateway.auth.token.as_ref().unwrap().expose(),
        "abc-secret-token"
    );
    assert_eq!(
        c.gateway.auth.token_file.as_deref(),
        Some(dir.path().join("tok").as_path())
    );
    assert!(c.secret_values().contains(&"abc-secret-token"));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // Readable by everyone: accepted (Docker secrets often are), with a warning.
    write_mode(&dir.path().join("tok"), "abc-secret-token\n", 0o644);
    let c = token_file_config(dir.path(), "tok").unwrap();
    assert!(c.warnings()[0].contains("chmod 600"), "{:?}", c.warnings());
}

#[test]
fn token_file_errors_are_positioned_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let err = |name: &str| token_file_config(dir.path(), name).unwrap_err()[0].to_string();
    let e = err("missing");
    assert!(
        e.starts_with(&format!(
            "{d}/config.yaml:3:16: gateway.auth.tokenFile: `{d}/missing` does not exist"
        )),
        "{e}"
    );
    write_mode(&dir.path().join("empty"), " \n", 0o600);
    assert!(err("empty").contains("is empty"), "{}", err("empty"));
    write_mode(&dir.path().join("loose"), "tok\n", 0o666);
    assert!(
        err("loose").contains("writable by group or others (mode 666)"),
        "{}",
        err("loose")
    );
    write_mode(&dir.path().join("two"), "a\nb\n", 0o600);
    assert!(err("two").contains("more than one line"), "{}", err("two"));
    write_mode(&dir.path().join("big"), &"x".repeat(5000), 0o600);
    assert!(err("big").contains("at most 4096 bytes"), "{}", err("big"));
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    assert!(
        err("adir").contains("not a regular file"),
        "{}",
        err("adir")
    );
    let both = "gateway:\n  auth:\n    token: abc\n    tokenFile: /x\n";
    let e = Config::parse_with_env(both, &dir.path().join("config.yaml"), &|_| None).unwrap_err();
    assert!(
        e[0].to_string()
            .contains("4:16: gateway.auth.tokenFile: set either"),
        "{}",
        e[0]
    );
}
