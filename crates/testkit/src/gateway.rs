//! A real gateway process in a throwaway state directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct GatewayProcess {
    pub child: Child,
    pub home: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
    pub stderr: Arc<Mutex<String>>,
    pub stdout: Arc<Mutex<String>>,
}

/// How to start it.
#[derive(Default, Clone)]
pub struct Options {
    /// Written to `$CLAWGATE_HOME/config.yaml` (0600) when set.
    pub config: Option<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

fn pump(stream: impl std::io::Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.push_str(&line);
            s.push('\n');
        }
    });
}

pub fn write_config(home: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(home.join("config.yaml"))
        .expect("write config");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write config");
}

/// Spawns `bin gateway run` with `CLAWGATE_HOME=home` and returns without waiting.
pub fn spawn(
    bin: &Path,
    home: &Path,
    opts: &Options,
    port: &str,
) -> (Child, Arc<Mutex<String>>, Arc<Mutex<String>>) {
    let mut cmd = Command::new(bin);
    cmd.arg("gateway").arg("run").arg("--port").arg(port);
    cmd.args(&opts.args);
    cmd.env("CLAWGATE_HOME", home)
        .env_remove("CLAWGATE_CONFIG")
        .env_remove("CLAWGATE_GATEWAY_TOKEN")
        .env_remove("CLAWGATE_GATEWAY_PASSWORD")
        .env("CLAWGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn clawgate");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    pump(child.stdout.take().expect("stdout"), stdout.clone());
    pump(child.stderr.take().expect("stderr"), stderr.clone());
    (child, stdout, stderr)
}

impl GatewayProcess {
    /// Starts the gateway on an ephemeral loopback port and waits until it listens.
    pub fn start(bin: &Path, opts: Options) -> GatewayProcess {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        if let Some(cfg) = &opts.config {
            write_config(home.path(), cfg);
        }
        Self::start_in(bin, home, opts)
    }

    /// Starts it in an existing state directory (e.g. to restart over the same state).
    pub fn start_in(bin: &Path, home: tempfile::TempDir, opts: Options) -> GatewayProcess {
        let (mut child, stdout, stderr) = spawn(bin, home.path(), &opts, "0");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let line = stdout.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(rest) = line
                .lines()
                .find_map(|l| l.strip_prefix("clawgate listening on "))
            {
                break rest.trim().parse().expect("listening address");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "gateway exited early ({status}); stderr:\n{}",
                    stderr.lock().unwrap_or_else(|p| p.into_inner())
                );
            }
            assert!(Instant::now() < deadline, "gateway did not start in time");
            std::thread::sleep(Duration::from_millis(5));
        };
        GatewayProcess {
            child,
            home,
            addr,
            stderr,
            stdout,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn home_path(&self) -> PathBuf {
        self.home.path().to_path_buf()
    }

    /// `bin` as a CLI aimed at this gateway: its state directory (so the token file is found)
    /// and its WebSocket URL, with no token override from the environment.
    pub fn cli(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.env("CLAWGATE_HOME", self.home.path())
            .env("CLAWGATE_GATEWAY_URL", self.ws_url())
            .env_remove("CLAWGATE_GATEWAY_TOKEN")
            .env_remove("CLAWGATE_CONFIG");
        c
    }

    /// The generated token from `credentials/gateway-token`.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.home.path().join("credentials/gateway-token"))
            .expect("token file")
            .trim()
            .to_string()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the process and hands back its state directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.home, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with a deadline: (exit status, stdout, stderr).
pub fn run_to_exit(
    bin: &Path,
    home: &Path,
    opts: &Options,
    port: &str,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let (mut child, stdout, stderr) = spawn(bin, home, opts, port);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "process did not exit in time; stderr:\n{}",
                stderr.lock().unwrap_or_else(|p| p.into_inner())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Let the pump threads drain the pipes.
    std::thread::sleep(Duration::from_millis(50));
    let out = stdout.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let err = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (status, out, err)
}
