//! `clawgate ui install`: puts OpenClaw's own Control UI (the `dist/control-ui/` build of
//! the `openclaw` npm package, MIT licensed) under `$CLAWGATE_HOME/control-ui/<version>/`
//! and points `gateway.controlUi.root` at it. From the npm registry the tarball's published
//! `dist.integrity` (sha512) is checked before anything is extracted, only
//! `package/dist/control-ui/` is extracted (absolute paths, `..` and links refused), and every
//! file the build's `asset-manifest.json` lists is checked against its size and sha256.
//! `--from DIR` copies an existing install (a package directory or its `dist/control-ui`).

use base64::Engine;
use clawgate_config::{paths, Config};
use futures_util::StreamExt;
use sha2::{Digest, Sha256, Sha512};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// The openclaw release clawgate speaks the protocol of.
pub const DEFAULT_VERSION: &str = "2026.9.6";
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";

/// Largest registry document read (the abbreviated packument of a busy package is a few MiB).
const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;
/// Largest tarball downloaded.
const MAX_TARBALL_BYTES: u64 = 512 * 1024 * 1024;
/// Largest total extracted, and largest single file.
const MAX_EXTRACTED_BYTES: u64 = 1024 * 1024 * 1024;
const MAX_ENTRY_BYTES: u64 = 128 * 1024 * 1024;
/// Files in one build (the real one has ~1,800).
const MAX_FILES: usize = 50_000;

const PREFIX: &str = "package/dist/control-ui/";

fn fail(msg: &str, hint: Option<&str>) -> u8 {
    eprintln!("error: {msg}");
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    1
}

pub async fn install(
    config_flag: Option<PathBuf>,
    version: Option<String>,
    registry: Option<String>,
    from: Option<PathBuf>,
) -> u8 {
    let home = paths::clawgate_home();
    let config_path = paths::config_path(config_flag.as_deref());
    let base = home.join("control-ui");
    if let Err(e) = paths::ensure_private_dir(&home).and_then(|_| std::fs::create_dir_all(&base)) {
        return fail(&format!("cannot create {}: {e}", base.display()), None);
    }
    let staging = base.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = match from {
        Some(dir) => install_from_dir(&dir, &staging).await,
        None => {
            let version = version.unwrap_or_else(|| DEFAULT_VERSION.to_string());
            let registry = registry
                .unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
                .trim_end_matches('/')
                .to_string();
            install_from_registry(&registry, &version, &base, &staging)
                .await
                .map(|()| version)
        }
    };
    let version = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return fail(&e, None);
        }
    };
    if !safe_dir_name(&version) {
        let _ = std::fs::remove_dir_all(&staging);
        return fail(&format!("unusable version `{version}`"), None);
    }
    let dest = base.join(&version);
    if dest.exists() {
        let old = base.join(format!(".old-{}", std::process::id()));
        if let Err(e) = std::fs::rename(&dest, &old) {
            let _ = std::fs::remove_dir_all(&staging);
            return fail(&format!("cannot replace {}: {e}", dest.display()), None);
        }
        let _ = std::fs::remove_dir_all(&old);
    }
    if let Err(e) = std::fs::rename(&staging, &dest) {
        let _ = std::fs::remove_dir_all(&staging);
        return fail(
            &format!("cannot move the build into {}: {e}", dest.display()),
            None,
        );
    }
    println!(
        "Installed the OpenClaw Control UI {version} in {}",
        dest.display()
    );
    match set_root_in_config(&config_path, &dest) {
        Ok(change) => {
            println!("{change}");
            println!("Restart the gateway, then open it with `clawgate dashboard`.");
            0
        }
        Err(e) => fail(
            &format!("could not update {}: {e}", config_path.display()),
            Some(&format!(
                "set it by hand:\n  gateway:\n    controlUi:\n      root: {}",
                dest.display()
            )),
        ),
    }
}

fn safe_dir_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 100
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
}

async fn install_from_registry(
    registry: &str,
    version: &str,
    base: &Path,
    staging: &Path,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .user_agent(concat!("clawgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let meta_url = format!("{registry}/openclaw");
    eprintln!("Fetching {meta_url}");
    let resp = client
        .get(&meta_url)
        .header(
            "Accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
        )
        .send()
        .await
        .map_err(|e| format!("cannot reach the registry ({meta_url}): {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{meta_url}: HTTP {}", resp.status()));
    }
    let meta = read_capped(resp, MAX_METADATA_BYTES as u64, None).await?;
    let meta: serde_json::Value = serde_json::from_slice(&meta)
        .map_err(|e| format!("{meta_url}: not registry metadata ({e})"))?;
    let dist = &meta["versions"][version]["dist"];
    if dist.is_null() {
        return Err(format!(
            "openclaw {version} is not published on {registry} (try --version)"
        ));
    }
    let tarball = dist["tarball"]
        .as_str()
        .ok_or("the registry metadata has no dist.tarball")?;
    let integrity = dist["integrity"].as_str().ok_or(
        "the registry metadata has no dist.integrity (sha512); refusing an unverifiable download",
    )?;
    let expected = sha512_of_integrity(integrity)
        .ok_or_else(|| format!("dist.integrity `{integrity}` has no sha512 hash; refusing"))?;
    if !(tarball.starts_with("https://") || tarball.starts_with("http://")) {
        return Err(format!("dist.tarball `{tarball}` is not an http(s) URL"));
    }

    eprintln!("Downloading {tarball}");
    let resp = client
        .get(tarball)
        .send()
        .await
        .map_err(|e| format!("download failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{tarball}: HTTP {}", resp.status()));
    }
    let total = resp.content_length();
    let bytes = read_capped(resp, MAX_TARBALL_BYTES, Some(total)).await?;
    let got: [u8; 64] = Sha512::digest(&bytes).into();
    if got != expected {
        return Err(format!(
            "the tarball's sha512 does not match the published dist.integrity ({integrity}); nothing was installed"
        ));
    }
    eprintln!("Integrity verified (sha512).");
    let staging = staging.to_path_buf();
    let _ = base;
    tokio::task::spawn_blocking(move || {
        extract_control_ui(&bytes, &staging)?;
        verify_manifest(&staging)
    })
    .await
    .map_err(|e| format!("extract: {e}"))?
}

/// The raw sha512 digest of an SRI string (`sha512-<base64>`, possibly among others).
fn sha512_of_integrity(sri: &str) -> Option<[u8; 64]> {
    sri.split_whitespace().find_map(|part| {
        let b64 = part.strip_prefix("sha512-")?;
        let b64 = b64.split('?').next()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        raw.try_into().ok()
    })
}

/// Reads a body up to `cap` bytes, showing progress on stderr when `total` is given.
async fn read_capped(
    resp: reqwest::Response,
    cap: u64,
    progress: Option<Option<u64>>,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(format!("response larger than {} MiB; refusing", cap >> 20));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut shown = 0u64;
    let step = 1u64 << 20;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("download interrupted: {e}"))?;
        if out.len() as u64 + chunk.len() as u64 > cap {
            return Err(format!("response larger than {} MiB; refusing", cap >> 20));
        }
        out.extend_from_slice(&chunk);
        if let Some(total) = progress {
            let n = out.len() as u64;
            if n - shown >= step || total == Some(n) {
                shown = n;
                let mib = |b: u64| b as f64 / 1048576.0;
                let line = match total {
                    Some(t) if t > 0 => {
                        format!("  {:.1} / {:.1} MiB ({}%)", mib(n), mib(t), n * 100 / t)
                    }
                    _ => format!("  {:.1} MiB", mib(n)),
                };
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{line}");
                let _ = err.flush();
            }
        }
    }
    if progress.is_some() {
        eprintln!("\r  {:.1} MiB downloaded", out.len() as f64 / 1048576.0);
    }
    Ok(out)
}

/// Whether a relative path (with `/` separators) stays below its base: no absolute path, no
/// `..`, no empty or `.` trickery that could name something else.
fn safe_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Extracts `package/dist/control-ui/**` from the gzipped tarball into `dest`. Any entry
/// with an absolute path, a `..`, or a link is refused (the whole install fails).
fn extract_control_ui(tgz: &[u8], dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let gz = flate2::read::GzDecoder::new(tgz);
    let mut archive = tar::Archive::new(gz);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tarball: {e}"))?;
    let (mut files, mut total) = (0usize, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tarball: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let shown = path.display().to_string();
        if path.is_absolute() || !safe_relative(&path) {
            return Err(format!(
                "refusing the tarball: entry `{shown}` has an absolute path or `..`"
            ));
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(format!("refusing the tarball: entry `{shown}` is a link"));
        }
        let Ok(rel) = path.strip_prefix(PREFIX.trim_end_matches('/')) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| format!("{shown}: {e}"))?;
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "refusing the tarball: entry `{shown}` is not a regular file"
            ));
        }
        files += 1;
        let size = entry.header().size().unwrap_or(u64::MAX);
        total = total.saturating_add(size);
        if files > MAX_FILES || size > MAX_ENTRY_BYTES || total > MAX_EXTRACTED_BYTES {
            return Err("refusing the tarball: too many or too large files".into());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{shown}: {e}"))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| format!("{shown}: {e}"))?;
        let copied = std::io::copy(&mut (&mut entry).take(MAX_ENTRY_BYTES + 1), &mut out)
            .map_err(|e| format!("{shown}: {e}"))?;
        if copied > MAX_ENTRY_BYTES {
            return Err(format!("refusing the tarball: `{shown}` is too large"));
        }
    }
    if files == 0 || !dest.join("index.html").is_file() {
        return Err(format!(
            "the package has no {PREFIX}index.html (is this the openclaw package?)"
        ));
    }
    Ok(())
}

/// Every file `asset-manifest.json` lists is present with its size and sha256, and no file
/// in `assets/` is missing from it.
fn verify_manifest(root: &Path) -> Result<(), String> {
    let path = root.join("asset-manifest.json");
    let text = std::fs::read(&path)
        .map_err(|_| "the build has no asset-manifest.json; cannot check its files".to_string())?;
    let manifest: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("asset-manifest.json is not JSON: {e}"))?;
    let assets = manifest["assets"]
        .as_array()
        .ok_or("asset-manifest.json has no `assets` list")?;
    let mut listed = std::collections::HashSet::new();
    for a in assets {
        let (Some(rel), Some(sha), Some(size)) =
            (a["path"].as_str(), a["sha256"].as_str(), a["size"].as_u64())
        else {
            return Err(format!("asset-manifest.json: malformed entry {a}"));
        };
        let relp = Path::new(rel);
        if !safe_relative(relp) {
            return Err(format!("asset-manifest.json: unsafe path `{rel}`"));
        }
        let file = root.join(relp);
        let meta = std::fs::symlink_metadata(&file)
            .map_err(|_| format!("{rel}: listed in asset-manifest.json but missing"))?;
        if !meta.is_file() {
            return Err(format!("{rel}: not a regular file"));
        }
        if meta.len() != size {
            return Err(format!(
                "{rel}: {} bytes, asset-manifest.json says {size}; refusing a modified build",
                meta.len()
            ));
        }
        let mut h = Sha256::new();
        let mut f = std::fs::File::open(&file).map_err(|e| format!("{rel}: {e}"))?;
        std::io::copy(&mut f, &mut h).map_err(|e| format!("{rel}: {e}"))?;
        if hex_lower(&h.finalize()) != sha.to_ascii_lowercase() {
            return Err(format!(
                "{rel}: sha256 differs from asset-manifest.json; refusing a modified build"
            ));
        }
        listed.insert(rel.to_string());
    }
    if let Ok(rd) = std::fs::read_dir(root.join("assets")) {
        for e in rd.flatten() {
            let name = format!("assets/{}", e.file_name().to_string_lossy());
            if !listed.contains(&name) {
                return Err(format!(
                    "{name}: not in asset-manifest.json; refusing a modified build"
                ));
            }
        }
    }
    eprintln!(
        "Checked {} files against asset-manifest.json.",
        listed.len()
    );
    Ok(())
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `--from DIR`: an openclaw package directory (holding `dist/control-ui/`) or the
/// `control-ui` directory itself. Copies regular files only (links out of it are refused),
/// then checks the manifest like a download. Returns the version (from `package.json`).
async fn install_from_dir(dir: &Path, staging: &Path) -> Result<String, String> {
    let dir = dir.to_path_buf();
    let staging = staging.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let src = if dir.join("dist/control-ui/index.html").is_file() {
            dir.join("dist/control-ui")
        } else if dir.join("index.html").is_file() {
            dir.clone()
        } else {
            return Err(format!(
                "{} holds no Control UI build (expected dist/control-ui/index.html or index.html)",
                dir.display()
            ));
        };
        let src = std::fs::canonicalize(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let version = [src.join("../../package.json"), src.join("package.json")]
            .iter()
            .find_map(|p| {
                let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
                (v["name"] == "openclaw").then(|| v["version"].as_str().map(str::to_string))?
            })
            .unwrap_or_else(|| "local".to_string());
        let mut count = 0usize;
        copy_tree(&src, &src, &staging, &mut count)?;
        verify_manifest(&staging)?;
        Ok(version)
    })
    .await
    .map_err(|e| format!("copy: {e}"))?
}

fn copy_tree(root: &Path, from: &Path, to: &Path, count: &mut usize) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let rd = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("{}: {e}", from.display()))?;
        let p = e.path();
        let real = std::fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if !real.starts_with(root) {
            return Err(format!(
                "{} points outside the Control UI directory; refusing",
                p.display()
            ));
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", p.display()))?;
        let dest = to.join(e.file_name());
        if meta.is_dir() {
            copy_tree(root, &real, &dest, count)?;
        } else if meta.is_file() {
            *count += 1;
            if *count > MAX_FILES {
                return Err("too many files".into());
            }
            std::fs::copy(&real, &dest).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// Sets `gateway.controlUi.root` in the config file, editing the text so comments and
/// layout stay; creates the file (from the commented default) when there is none. Returns a
/// line saying what changed.
fn set_root_in_config(config_path: &Path, root: &Path) -> Result<String, String> {
    let existed = config_path.exists();
    let text = if existed {
        std::fs::read_to_string(config_path).map_err(|e| e.to_string())?
    } else {
        clawgate_config::DEFAULT_CONFIG_YAML.to_string()
    };
    let value = serde_json::to_string(&root.display().to_string()).map_err(|e| e.to_string())?;
    let (new_text, old) = edit_control_ui_root(&text, &value)?;
    let parsers = clawgate_channels::config_parsers();
    if let Err(errs) =
        Config::parse_with(&new_text, config_path, &|n| std::env::var(n).ok(), &parsers)
    {
        let was_valid =
            Config::parse_with(&text, config_path, &|n| std::env::var(n).ok(), &parsers).is_ok();
        if was_valid {
            return Err(format!(
                "the edited config would not load: {}",
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    if let Some(dir) = config_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    paths::write_private_atomic(config_path, new_text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(match old {
        Some(old) => format!(
            "{}: gateway.controlUi.root: {old} → {value}",
            config_path.display()
        ),
        None if existed => format!(
            "{}: set gateway.controlUi.root: {value}",
            config_path.display()
        ),
        None => format!(
            "{}: created with gateway.controlUi.root: {value}",
            config_path.display()
        ),
    })
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// `key:` at the start of the line (after its indentation), with nothing but an optional
/// comment after it: the start of a block mapping. `Some(false)` when the key has an inline
/// value.
fn block_key(line: &str, key: &str) -> Option<bool> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    let rest = rest.trim();
    Some(rest.is_empty() || rest.starts_with('#'))
}

/// The end (exclusive line index) of the block that starts at `start` with indentation
/// `indent`: the first later non-blank, non-comment line indented as much or less.
fn block_end(lines: &[String], start: usize, indent: usize) -> usize {
    (start + 1..lines.len())
        .find(|&i| !is_blank_or_comment(&lines[i]) && indent_of(&lines[i]) <= indent)
        .unwrap_or(lines.len())
}

/// Text edit of `gateway.controlUi.root` (block-style YAML). Returns the new text and the old
/// value when there was one.
fn edit_control_ui_root(text: &str, value: &str) -> Result<(String, Option<String>), String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let flow = "uses flow style ({ … }); edit gateway.controlUi.root by hand";
    let gw = lines
        .iter()
        .position(|l| indent_of(l) == 0 && block_key(l, "gateway").is_some());
    let Some(gw) = gw else {
        if !lines.last().is_none_or(|l| l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push("gateway:".into());
        lines.push("  controlUi:".into());
        lines.push(format!("    root: {value}"));
        return Ok((lines.join("\n") + "\n", None));
    };
    if block_key(&lines[gw], "gateway") == Some(false) {
        return Err(format!("`gateway:` {flow}"));
    }
    let gw_end = block_end(&lines, gw, 0);
    let child = (gw + 1..gw_end)
        .find(|&i| !is_blank_or_comment(&lines[i]))
        .map(|i| indent_of(&lines[i]))
        .unwrap_or(2);
    let cu = (gw + 1..gw_end).find(|&i| {
        indent_of(&lines[i]) == child
            && !is_blank_or_comment(&lines[i])
            && block_key(&lines[i], "controlUi").is_some()
    });
    let Some(cu) = cu else {
        let pad = " ".repeat(child);
        lines.insert(gw + 1, format!("{pad}controlUi:"));
        lines.insert(gw + 2, format!("{pad}{pad}root: {value}"));
        return Ok((lines.join("\n") + "\n", None));
    };
    if block_key(&lines[cu], "controlUi") == Some(false) {
        return Err(format!("`gateway.controlUi:` {flow}"));
    }
    let cu_end = block_end(&lines, cu, child);
    let grand = (cu + 1..cu_end)
        .find(|&i| !is_blank_or_comment(&lines[i]))
        .map(|i| indent_of(&lines[i]))
        .unwrap_or(child * 2);
    let root_line = (cu + 1..cu_end)
        .find(|&i| indent_of(&lines[i]) == grand && lines[i].trim_start().starts_with("root:"));
    let pad = " ".repeat(grand);
    match root_line {
        Some(i) => {
            let old = lines[i].trim_start()["root:".len()..].trim().to_string();
            lines[i] = format!("{pad}root: {value}");
            Ok((lines.join("\n") + "\n", Some(old)))
        }
        None => {
            lines.insert(cu + 1, format!("{pad}root: {value}"));
            Ok((lines.join("\n") + "\n", None))
        }
    }
}

/// `clawgate dashboard`: the URL with the token in the fragment; opens it unless told not to.
pub fn open_in_browser(url: &str) {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty());
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let candidates: Vec<String> = match browser {
        Some(b) => b.split(':').map(str::to_string).collect(),
        None if has_display => vec!["xdg-open".into()],
        None => {
            eprintln!("(no display and no $BROWSER: open the URL above in your browser)");
            return;
        }
    };
    for prog in candidates {
        let spawned = std::process::Command::new(&prog)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            eprintln!("Opened it with {prog}.");
            return;
        }
    }
    eprintln!("(no browser opener found; open the URL above yourself)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_layout() {
        let v = "\"/h/control-ui/1\"";
        let (t, old) = edit_control_ui_root(clawgate_config::DEFAULT_CONFIG_YAML, v).unwrap();
        assert!(old.is_none());
        assert!(
            t.contains("gateway:\n  controlUi:\n    root: \"/h/control-ui/1\"\n  # Keep"),
            "{t}"
        );
        assert!(t.contains("# Reverse proxies"));
        let src = "# top\ngateway:\n  port: 1 # p\n  controlUi:\n    # the build\n    basePath: /x\n    root: /old\nmodels: {}\n";
        let (t, old) = edit_control_ui_root(src, v).unwrap();
        assert_eq!(old.as_deref(), Some("/old"));
        assert_eq!(t, src.replace("root: /old", &format!("root: {v}")));
        let src = "gateway:\n    controlUi:\n        enabled: true\n";
        let (t, _) = edit_control_ui_root(src, v).unwrap();
        assert_eq!(
            t,
            format!("gateway:\n    controlUi:\n        root: {v}\n        enabled: true\n")
        );
        let (t, _) = edit_control_ui_root("models: {}\n", v).unwrap();
        assert_eq!(
            t,
            format!("models: {{}}\n\ngateway:\n  controlUi:\n    root: {v}\n")
        );
        assert!(edit_control_ui_root("gateway: {port: 1}\n", v).is_err());
        assert!(edit_control_ui_root("gateway:\n  controlUi: {enabled: true}\n", v).is_err());
    }

    #[test]
    fn integrity_strings() {
        let d = Sha512::digest(b"x");
        let sri = format!(
            "sha1-abc sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(d)
        );
        assert_eq!(sha512_of_integrity(&sri).unwrap()[..], d[..]);
        assert!(sha512_of_integrity("sha1-abc").is_none());
    }

    #[test]
    fn relative_paths() {
        assert!(safe_relative(Path::new("package/dist/a.js")));
        assert!(!safe_relative(Path::new("/etc/passwd")));
        assert!(!safe_relative(Path::new("package/../../x")));
    }
}
