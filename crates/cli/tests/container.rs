//! The container, as far as it can be tested without a Docker engine: the Dockerfile's own
//! ENTRYPOINT/CMD/ENV and HEALTHCHECK run against the real binary in a fresh network namespace
//! (loopback plus a veth pair, like a container's eth0) where `--host 0.0.0.0` serves with a
//! strong token (from the environment or `gateway.auth.tokenFile`) and refuses to start
//! without one; the compose example's config and nginx.conf run for real (nginx forwarding
//! /webhook/* only); the Dockerfile is checked against the rules we care about (hadolint has
//! no Debian package) and compose.yaml is parsed.

use clawgate_config::yaml::{self, Node, Value};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------
// The Dockerfile

/// Instructions with continuation lines joined and comments dropped: (KEYWORD, rest).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (kw, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("not exec form (JSON array): {rest}: {e}"))
}

struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
    healthcheck: Vec<String>,
}

fn image() -> Image {
    let ins = instructions(&read("Dockerfile"));
    // Only the last stage is the image.
    let last_from = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let stage = &ins[last_from..];
    let get = |kw: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == kw)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no {kw} in the final stage"))
    };
    let env = stage
        .iter()
        .filter(|(k, _)| k == "ENV")
        .map(|(_, r)| {
            let (k, v) = r.split_once('=').expect("ENV KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let hc = get("HEALTHCHECK");
    let hc = hc.split_once("CMD ").expect("HEALTHCHECK … CMD [..]").1;
    Image {
        entrypoint: exec_form(&get("ENTRYPOINT")),
        cmd: exec_form(&get("CMD")),
        env,
        healthcheck: exec_form(hc),
    }
}

#[test]
fn dockerfile_follows_the_rules() {
    let ins = instructions(&read("Dockerfile"));
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, r)| r)
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected: {froms:?}");
    for f in &froms {
        let image = f.split_whitespace().next().unwrap();
        let tag = image.split_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            image.contains('@') || (!tag.is_empty() && tag != "latest"),
            "base image must be pinned to a tag or digest: {f}"
        );
    }
    assert!(
        froms[0].starts_with("rust:"),
        "build stage uses the Rust toolchain image: {}",
        froms[0]
    );
    let last = froms.last().unwrap();
    assert!(
        last.starts_with("debian:") && last.contains("slim") || last.contains("distroless/cc"),
        "runtime on a slim Debian or distroless/cc: {last}"
    );
    for (k, r) in &ins {
        assert!(
            !(k == "ADD" && (r.contains("://") || r.contains("git@"))),
            "ADD of a URL: {r}"
        );
        assert_ne!(k, "MAINTAINER", "deprecated");
        if k == "RUN" {
            assert!(
                !r.contains("curl ") && !r.contains("wget "),
                "no downloads at build time: {r}"
            );
            if r.contains("apt-get install") {
                assert!(
                    r.contains("--no-install-recommends") && r.contains("-y"),
                    "{r}"
                );
                assert!(
                    r.contains("rm -rf /var/lib/apt/lists"),
                    "clean apt lists: {r}"
                );
            }
        }
    }
    let last_from = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let stage = &ins[last_from..];
    let user = stage
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, r)| r.as_str())
        .expect("USER in the final stage");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "non-root USER: {user}");
    // USER comes after every RUN of the final stage and before ENTRYPOINT/CMD.
    let user_at = stage.iter().rposition(|(k, _)| k == "USER").unwrap();
    assert!(stage[user_at..].iter().all(|(k, _)| k != "RUN"));
    let has = |kw: &str, want: &str| stage.iter().any(|(k, r)| k == kw && r.contains(want));
    assert!(has("EXPOSE", "18789"));
    assert!(has("ENV", "CLAWGATE_HOME=/data"));
    assert!(has("VOLUME", "/data"));
    let img = image();
    assert_eq!(img.entrypoint, ["clawgate"]);
    assert_eq!(img.cmd, ["gateway", "run", "--host", "0.0.0.0"]);
    assert_eq!(img.healthcheck, ["clawgate", "gateway", "healthcheck"]);
    // The build context leaves out the build output, the caches and secrets.
    let ignore = read(".dockerignore");
    for want in ["target/", ".git/", ".cache/", "deploy/secrets/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == want),
            ".dockerignore lacks {want}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// compose.yaml, nginx.conf, config.yaml

fn get<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
    let mut n = node;
    for key in path {
        n = match &n.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, v)| v)
                .unwrap_or_else(|| panic!("compose.yaml: no `{key}` in {path:?}")),
            _ => panic!("compose.yaml: `{key}` of {path:?} is not under a mapping"),
        };
    }
    n
}

fn scalar(n: &Node) -> &str {
    match &n.value {
        Value::Scalar(s, _) => s,
        _ => panic!("not a scalar at {}:{}", n.pos.line, n.pos.col),
    }
}

fn seq(n: &Node) -> Vec<&Node> {
    match &n.value {
        Value::Seq(v) => v.iter().collect(),
        _ => panic!("not a list at {}:{}", n.pos.line, n.pos.col),
    }
}

#[test]
fn compose_publishes_the_gateway_on_loopback_only_and_nginx_forwards_webhooks() {
    let doc = yaml::parse(&read("deploy/compose.yaml"))
        .expect("compose.yaml parses")
        .expect("not empty");
    let services = get(&doc, &["services"]);
    let ports: Vec<&str> = seq(get(services, &["gateway", "ports"]))
        .into_iter()
        .map(scalar)
        .collect();
    assert!(!ports.is_empty());
    for p in &ports {
        assert!(
            p.starts_with("127.0.0.1:") || p.starts_with("[::1]:"),
            "the gateway must be published on the host's loopback only: {p}"
        );
    }
    assert_eq!(ports, ["127.0.0.1:18789:18789"]);
    assert_eq!(
        scalar(get(services, &["gateway", "build", "dockerfile"])),
        "Dockerfile"
    );
    assert_eq!(
        scalar(get(
            services,
            &["gateway", "environment", "CLAWGATE_CONFIG"]
        )),
        "/etc/clawgate/config.yaml"
    );
    let secrets: Vec<&str> = seq(get(services, &["gateway", "secrets"]))
        .into_iter()
        .map(scalar)
        .collect();
    assert_eq!(secrets, ["clawgate_token"]);
    let proxy_image = scalar(get(services, &["proxy", "image"]));
    assert!(
        proxy_image.starts_with("nginx:") && !proxy_image.ends_with(":latest"),
        "{proxy_image}"
    );
    let proxy_ip = scalar(get(
        services,
        &["proxy", "networks", "clawnet", "ipv4_address"],
    ));
    assert_eq!(
        scalar(get(
            services,
            &["proxy", "depends_on", "gateway", "condition"]
        )),
        "service_healthy"
    );
    let mounts: Vec<&str> = seq(get(services, &["proxy", "volumes"]))
        .into_iter()
        .map(scalar)
        .collect();
    assert!(
        mounts.contains(&"./nginx.conf:/etc/nginx/nginx.conf:ro"),
        "{mounts:?}"
    );
    let mounts: Vec<&str> = seq(get(services, &["gateway", "volumes"]))
        .into_iter()
        .map(scalar)
        .collect();
    assert!(
        mounts.contains(&"./config.yaml:/etc/clawgate/config.yaml:ro"),
        "{mounts:?}"
    );
    assert!(mounts.iter().any(|m| m.ends_with(":/data")), "{mounts:?}");

    // nginx: /webhook/ goes to the gateway by its service name, everything else is 404.
    let nginx = read("deploy/nginx.conf");
    assert!(nginx.contains("server gateway:18789;"), "{nginx}");
    let webhook = nginx
        .split("location /webhook/ {")
        .nth(1)
        .expect("location /webhook/");
    let webhook = webhook.split('}').next().unwrap();
    assert!(webhook.contains("proxy_pass http://clawgate;"), "{webhook}");
    assert!(
        webhook.contains("proxy_set_header X-Forwarded-For $remote_addr;"),
        "{webhook}"
    );
    let root = nginx.split("location / {").nth(1).expect("location /");
    assert!(root.split('}').next().unwrap().contains("return 404;"));

    // config.yaml trusts exactly the proxy and reads the token from the compose secret.
    let cfg = read("deploy/config.yaml");
    assert!(
        cfg.contains(&format!("trustedProxies: [{proxy_ip}]")),
        "{cfg}"
    );
    assert!(
        cfg.contains("tokenFile: /run/secrets/clawgate_token"),
        "{cfg}"
    );
}

// ---------------------------------------------------------------------------------------
// The bind rules in a network namespace

/// The gateway's address on the "container's eth0" and the proxy's (the veth peer).
const GW_IP: &str = "10.77.0.1";
const PROXY_IP: &str = "10.77.0.2";

/// Runs test `name` again inside a fresh network namespace with `lo` up and a veth pair
/// (veth0 = GW_IP, veth1 = PROXY_IP). True in the inner run.
fn in_netns(name: &str) -> bool {
    if std::env::var_os("CLAWGATE_TEST_IN_NETNS").is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "set -e; ip link set lo up; ip link add veth0 type veth peer name veth1; \
         ip addr add {GW_IP}/24 dev veth0; ip addr add {PROXY_IP}/24 dev veth1; \
         ip link set veth0 up; ip link set veth1 up; exec \"$0\" --exact \"$1\" --nocapture --test-threads 1"
    );
    let out = Command::new("unshare")
        .args(["-rn", "sh", "-c", &script])
        .arg(&exe)
        .arg(name)
        .env("CLAWGATE_TEST_IN_NETNS", "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are needed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in a network namespace failed:\n{text}"
    );
    false
}

fn private_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn strong_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// The image's process: ENTRYPOINT + CMD with the image's ENV, `/data` replaced by `data`.
struct Container {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Container {
    fn run(data: &Path, env: &[(&str, &str)]) -> Container {
        let img = image();
        let args: Vec<String> = img.entrypoint[1..]
            .iter()
            .chain(&img.cmd)
            .cloned()
            .collect();
        let mut c = Command::new(bin());
        c.args(&args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &img.env {
            let v = if v == "/data" {
                data.display().to_string()
            } else {
                v.clone()
            };
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        for (stream, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
                out.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), err.clone()),
        ] {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Container { child, out, err }
    }

    /// Waits for the listening line; panics with stderr if it exits first.
    fn wait_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self
                .out
                .lock()
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("clawgate listening on "))
            {
                return l.trim().to_string();
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("exited ({s}): {}", self.err.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit: (code, stderr).
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the pumps drain
                return (s.code(), self.err.lock().unwrap().clone());
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CLI on "the host": an empty state directory, so nothing is found implicitly.
fn host_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let home = private_dir();
    let mut c = Command::new(bin());
    c.args(args)
        .env("CLAWGATE_HOME", home.path())
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("CLAWGATE_GATEWAY_URL")
        .env_remove("CLAWGATE_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One HTTP/1.1 GET: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bot.example.com\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.take(1 << 20).read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `docker run -p 127.0.0.1:PORT:18789`: a TCP forwarder on the host's loopback whose
/// connections reach the container from the bridge address (here the veth peer), as
/// docker-proxy's do. Returns the loopback port.
fn publish_on_loopback() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in l.incoming().map_while(Result::ok) {
            let sock = socket2_like_connect();
            let Some(up) = sock else { continue };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            let (mut c1, mut u1) = (client, up);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// A TCP connection to the gateway's 18789 from PROXY_IP (bind before connect, with libc:
/// std has no bind-then-connect for TcpStream).
fn socket2_like_connect() -> Option<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = PROXY_IP.parse().unwrap();
    let dst: std::net::Ipv4Addr = GW_IP.parse().unwrap();
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr structs outlive them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let a = sin(src, 0);
        if libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) != 0 {
            return None;
        }
        let b = sin(dst, 18789);
        if libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len) != 0 {
            return None;
        }
        Some(stream)
    }
}

#[test]
fn the_image_cmd_binds_all_interfaces_only_with_a_strong_token() {
    if !in_netns("the_image_cmd_binds_all_interfaces_only_with_a_strong_token") {
        return;
    }
    let url = format!("ws://{PROXY_IP}:18789");

    // 1. Token from the environment: serves on 0.0.0.0:18789.
    let data = private_dir();
    let token = strong_token();
    let mut c = Container::run(data.path(), &[("CLAWGATE_GATEWAY_TOKEN", &token)]);
    assert_eq!(c.wait_listening(), "0.0.0.0:18789");
    // The HEALTHCHECK, as the image runs it.
    let img = image();
    let hc = Command::new(bin())
        .args(&img.healthcheck[1..])
        .env("CLAWGATE_HOME", data.path())
        .output()
        .unwrap();
    assert!(hc.status.success(), "{hc:?}");
    // The host's CLI over the published port: its connection reaches the container from the
    // bridge side (not loopback); with the token it is served.
    let published = format!("ws://127.0.0.1:{}", publish_on_loopback());
    let (code, out, err) = host_cli(&["health", "--url", &published, "--token", &token], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Gateway: healthy"), "{out}");
    // By the container's address, the Host check (DNS rebinding) refuses, and says why.
    let (code, _, err) = host_cli(&["health", "--url", &url, "--token", &token], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("421"), "{err}");
    assert!(err.contains("gateway.allowedHosts"), "{err}");
    assert!(!err.contains("is the gateway running"), "{err}");
    let url = published.clone();
    let (code, out, err) = host_cli(&["health", "--url", &url, "--token", &token], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Gateway: healthy"), "{out}");
    let (code, out, err) = host_cli(
        &["health", "--url", &url],
        &[("CLAWGATE_GATEWAY_TOKEN", &token)],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Without the token: what it needs, not a bare "device identity required".
    let (code, _, err) = host_cli(&["health", "--url", &url], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "device identity required: no credential was sent (this connection comes from {PROXY_IP}, not this machine's loopback)"
        )),
        "{err}"
    );
    assert!(err.contains("CLAWGATE_GATEWAY_TOKEN"), "{err}");
    assert!(err.contains("pairing approved"), "{err}");
    assert!(err.contains("hint: this CLI sent no token"), "{err}");
    // A token-only client off loopback has no scopes beyond health: the hint says where to run.
    let (code, _, err) = host_cli(&["status", "--url", &url, "--token", &token], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing scope"), "{err}");
    assert!(err.contains("docker exec <container> clawgate"), "{err}");
    // The CLI inside the container (loopback, the generated-or-given token) has them all.
    let (code, out, err) = host_cli(
        &["status", "--url", "ws://127.0.0.1:18789", "--token", &token],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    drop(c);

    // 2. Refused before any socket: a weak token, auth none, a missing token file.
    let (code, err) =
        Container::run(data.path(), &[("CLAWGATE_GATEWAY_TOKEN", "changeme123")]).wait_exit();
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("--host is `0.0.0.0`"), "{err}");
    assert!(err.contains("too weak"), "{err}");
    assert!(
        err.contains("gateway.auth.tokenFile") && err.contains("docs/service.md"),
        "{err}"
    );
    let cfg_dir = private_dir();
    let cfg = cfg_dir.path().join("config.yaml");
    std::fs::write(&cfg, "gateway:\n  auth:\n    mode: none\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg_s = cfg.display().to_string();
    let (code, err) = Container::run(data.path(), &[("CLAWGATE_CONFIG", &cfg_s)]).wait_exit();
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("gateway.auth.mode is `none`"), "{err}");
    std::fs::write(
        &cfg,
        "gateway:\n  auth:\n    tokenFile: /nonexistent/clawgate_token\n",
    )
    .unwrap();
    let (code, err) = Container::run(data.path(), &[("CLAWGATE_CONFIG", &cfg_s)]).wait_exit();
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains(&format!(
            "{cfg_s}:3:16: gateway.auth.tokenFile: `/nonexistent/clawgate_token` does not exist"
        )),
        "{err}"
    );
    assert!(
        std::net::TcpStream::connect(format!("{GW_IP}:18789")).is_err(),
        "nothing listens"
    );

    // 3. The compose example: deploy/config.yaml (token from the secret file, the proxy
    //    trusted) behind deploy/nginx.conf, with the compose addresses swapped for the veth's.
    let secret = cfg_dir.path().join("clawgate_token");
    std::fs::write(&secret, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let compose_cfg = read("deploy/config.yaml")
        .replace("/run/secrets/clawgate_token", &secret.display().to_string())
        .replace("172.28.0.10", PROXY_IP);
    std::fs::write(&cfg, compose_cfg).unwrap();
    let mut c = Container::run(data.path(), &[("CLAWGATE_CONFIG", &cfg_s)]);
    assert_eq!(c.wait_listening(), "0.0.0.0:18789");
    let url = format!("ws://127.0.0.1:{}", publish_on_loopback());
    let (code, out, err) = host_cli(&["health", "--url", &url, "--token", &token], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = host_cli(&["health", "--url", &url, "--token", &strong_token()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("token mismatch"), "{err}");

    let nginx_dir = private_dir();
    let d = nginx_dir.path().display().to_string();
    let conf = read("deploy/nginx.conf")
        .replace("server gateway:18789;", &format!("server {GW_IP}:18789;"))
        .replace("pid /tmp/nginx.pid;", &format!("pid {d}/nginx.pid;"))
        .replace(
            "proxy_pass http://clawgate;",
            &format!("proxy_pass http://clawgate;\n            proxy_bind {PROXY_IP};"),
        )
        .replace(
            "access_log /dev/stdout;",
            &format!("access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"),
        )
        .replace("error_log /dev/stderr warn;", &format!("error_log {d}/error.log warn;"));
    std::fs::write(nginx_dir.path().join("nginx.conf"), conf).unwrap();
    let nginx = if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let _ngx = Killed(
        Command::new(nginx)
            .args([
                "-p",
                &d,
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
            ])
            .args(["-g", "daemon off; master_process off; user root;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test.sh installs it)"),
    );
    let front = format!("{PROXY_IP}:8080");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&front).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // /webhook/* reaches the gateway: for a channel that is not configured here it is an
    // ordinary route, so the gateway's own JSON answer (its Host check, as the direct request
    // gets) comes back through nginx…
    let direct = http_get(&format!("{GW_IP}:18789"), "/webhook/telegram");
    assert_eq!(direct.0, 421, "{}", direct.1);
    assert!(direct.1.contains("\"host_not_allowed\""), "{}", direct.1);
    assert_eq!(http_get(&front, "/webhook/telegram"), direct);
    // …and nothing else does: the WebSocket, the UI and health stay private.
    for path in ["/", "/healthz", "/ws"] {
        let (status, body) = http_get(&front, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("<html>"),
            "nginx's own 404 for {path}: {body}"
        );
    }
    drop(c);
}

/// A child killed when dropped (also when an assertion fails first).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
