//! Browser tests: Node 26 runs a test's ES module that drives Debian's headless Chromium
//! through puppeteer-core (from the npm registry, installed into the compat cache once).
//! The module imports the harness from `CLAWGATE_BROWSER_JS` (crates/testkit/js/browser.mjs).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const PUPPETEER: &str = "puppeteer-core@24";

/// Debian's Chromium (`CLAWGATE_CHROMIUM` overrides). Panics with the install hint.
pub fn chromium() -> PathBuf {
    let p = std::env::var_os("CLAWGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "browser tests need Chromium at {} (apt-get install chromium; scripts/test.sh does it)",
        p.display()
    );
    p
}

/// The harness module the scripts import.
pub fn harness_js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js/browser.mjs")
}

/// Runs the ES module `script` with Node 26, the harness and Chromium available, and `env`
/// added. Returns the JSON object printed on its last stdout line. Panics with the script's
/// output when it fails or runs past `timeout`.
pub fn run_script(script: &Path, env: &[(&str, &str)], timeout: Duration) -> Value {
    let tc = crate::npm::toolchain();
    let pup = crate::npm::package(
        "puppeteer",
        PUPPETEER,
        "node_modules/puppeteer-core/package.json",
    );
    let chromium = chromium();
    let out_dir = tempfile::tempdir().unwrap();
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut cmd = Command::new(tc.node());
    cmd.arg(script)
        .env("CLAWGATE_BROWSER_JS", harness_js())
        .env("CLAWGATE_PUPPETEER_DIR", &pup)
        .env("CLAWGATE_CHROMIUM", &chromium)
        .env("PATH", crate::npm::path_with(&tc.node_bin_dir))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait node") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "browser script {} ran past {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            script.display()
        );
    };
    assert!(
        status.success(),
        "browser script {} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display()
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("browser script printed no JSON result ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}")
    })
}
