//! Where clawgate keeps its state, and how private files are created.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `$CLAWGATE_HOME`, else `~/.clawgate`.
pub fn clawgate_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CLAWGATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".clawgate")
}

/// `--config PATH`, else `$CLAWGATE_CONFIG`, else `$CLAWGATE_HOME/config.yaml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("CLAWGATE_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    clawgate_home().join("config.yaml")
}

pub fn token_path(home: &Path) -> PathBuf {
    home.join("credentials").join("gateway-token")
}

/// Creates `dir` (and parents) with mode 0700; tightens an existing one that is looser.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `contents` to `path` atomically: a 0600 temporary file beside it, then rename.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex_lower(&rnd)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mode bits of a path, if it exists.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

/// 32 random bytes, base64url without padding (43 characters). A draw that the alphabet
/// estimate would misjudge as weak (about 1 in 1,000 lacks a digit or `-`/`_`) is drawn
/// again, so a generated token always passes the non-loopback check. Only that cheap estimate
/// runs here: zxcvbn never objects to 32 random bytes (`random_tokens_are_strong` checks both),
/// and loading its dictionaries would cost a first start ~20 ms and ~8 MB of resident memory.
/// A draw starting with `-` (1 in 64) is drawn again too: `--token -x…` on a command line
/// reads as an option, not a value.
pub fn generate_token() -> io::Result<String> {
    use base64::Engine;
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !token.starts_with('-')
            && crate::secret::strength_bits(&token) >= crate::secret::MIN_STRENGTH_BITS
        {
            return Ok(token);
        }
    }
}

/// Reads the token file, trimmed. `Ok(None)` when it does not exist.
pub fn read_token_file(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim().to_string();
            Ok(if t.is_empty() { None } else { Some(t) })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
