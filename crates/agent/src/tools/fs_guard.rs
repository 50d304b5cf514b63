//! Workspace confinement for the file tools.
//!
//! Every path is walked one component at a time from a capability handle on the workspace:
//! each step is an `openat(parent, name, O_NOFOLLOW)` through cap-std, symlinks are read and
//! spliced into the walk by hand (so `..` in a link pops our own stack and can never climb
//! above the workspace), and every directory entered is compared with the gateway's state
//! directory by (dev, ino) and by its path relative to the workspace; every entry is compared
//! with the active config file the same way (it may sit inside the workspace). Nothing here
//! canonicalizes a model-supplied path. Error texts name only the model's relative path.

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, MetadataExt, OpenOptions, OpenOptionsExt};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution before giving up (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// Largest file the file tools read (before the output cap applies).
pub(crate) const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// One step of a walk: a name to enter, or `..` (only ever from a symlink's target).
enum Part {
    Name(OsString),
    Up,
}

/// Validates a model-supplied path and returns its normal components.
/// Absolute paths, `..`, and NUL bytes are refused; `.` and repeated `/` are dropped.
pub(crate) fn parse_path(path: &str, allow_empty: bool) -> Result<Vec<OsString>, String> {
    if path.contains('\0') {
        return Err("refused: path contains a NUL byte".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "refused: `{path}` is an absolute path; use a path relative to the workspace"
        ));
    }
    let mut parts = Vec::new();
    for comp in Path::new(path).components() {
        match comp {
            Component::Normal(name) => parts.push(name.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "refused: `{path}` contains `..`; paths must stay inside the workspace"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "refused: `{path}` is an absolute path; use a path relative to the workspace"
                ));
            }
        }
    }
    if parts.is_empty() && !allow_empty {
        return Err("refused: empty path; name a file relative to the workspace".into());
    }
    Ok(parts)
}

/// What a walk ends on.
pub(crate) enum Resolved {
    /// A directory, already checked against the state directory.
    Dir { dir: Dir, rel: Vec<OsString> },
    /// A name inside a checked directory; it is not a symlink (when it exists).
    Entry { parent: Dir, name: OsString },
}

/// What the caller wants the path to name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Dir,
    /// A file; with `create_dirs`, missing parent directories are created.
    Entry {
        create_dirs: bool,
    },
}

/// The workspace handle plus what identifies the state directory.
pub(crate) struct Jail {
    root: Dir,
    /// (dev, ino) of the state directory, when it exists.
    state_id: Option<(u64, u64)>,
    /// The state directory's path below the workspace, when it lies inside it (even if it
    /// does not exist yet, so the agent cannot plant one).
    state_rel: Option<Vec<OsString>>,
    /// (dev, ino) of the active config file, when it exists.
    config_id: Option<(u64, u64)>,
    /// The config file's path below the workspace, when it lies inside it.
    config_rel: Option<Vec<OsString>>,
}

impl Jail {
    pub(crate) fn open(
        workspace: &Path,
        state_dir: &Path,
        config_file: Option<&Path>,
    ) -> Result<Jail, String> {
        let root = Dir::open_ambient_dir(workspace, ambient_authority())
            .map_err(|e| format!("workspace is not accessible: {}", plain_io(&e)))?;
        let state_id = std::fs::metadata(state_dir)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let config_id = config_file
            .and_then(|c| std::fs::metadata(c).ok())
            .map(|m| (m.dev(), m.ino()));
        let jail = Jail {
            root,
            state_id,
            state_rel: state_rel(workspace, state_dir),
            config_id,
            config_rel: config_file
                .and_then(|c| state_rel(workspace, c))
                .filter(|r| !r.is_empty()),
        };
        let root_meta = jail
            .root
            .dir_metadata()
            .map_err(|e| format!("workspace is not accessible: {}", plain_io(&e)))?;
        if jail.is_state_id(&root_meta) || jail.state_rel.as_ref().is_some_and(|r| r.is_empty()) {
            return Err("refused: the workspace is the gateway's state directory".into());
        }
        Ok(jail)
    }

    fn is_state_id(&self, meta: &cap_std::fs::Metadata) -> bool {
        self.state_id == Some((meta.dev(), meta.ino()))
    }

    fn is_config(&self, rel: &[OsString], meta: Option<&cap_std::fs::Metadata>) -> bool {
        self.config_rel.as_deref() == Some(rel)
            || meta.is_some_and(|m| !m.is_dir() && self.config_id == Some((m.dev(), m.ino())))
    }

    fn is_state_rel(&self, rel: &[OsString]) -> bool {
        self.state_rel
            .as_ref()
            .is_some_and(|s| !s.is_empty() && rel.starts_with(s))
    }

    /// Whether the entry `name` of the directory at `rel` is (or names) the state directory;
    /// `ls` uses it to leave that entry out.
    pub(crate) fn hides(
        &self,
        rel: &[OsString],
        name: &OsStr,
        meta: &cap_std::fs::Metadata,
    ) -> bool {
        let mut full = rel.to_vec();
        full.push(name.to_os_string());
        self.is_state_rel(&full)
            || (meta.is_dir() && self.is_state_id(meta))
            || self.is_config(&full, Some(meta))
    }

    /// Refuses `file` (opened from a resolved entry) unless it is a regular file with a
    /// single link; a second link could be a hard link to a file outside the workspace.
    pub(crate) fn check_file(&self, file: &File, shown: &str) -> Result<(), String> {
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot stat `{shown}`: {}", plain_io(&e)))?;
        if self.is_state_id(&meta) {
            return Err(state_refusal(shown));
        }
        if self.is_config(&[], Some(&meta)) {
            return Err(config_refusal(shown));
        }
        if meta.is_dir() {
            return Err(format!("`{shown}` is a directory"));
        }
        if !meta.is_file() {
            return Err(format!("refused: `{shown}` is not a regular file"));
        }
        if meta.nlink() > 1 {
            return Err(format!(
                "refused: `{shown}` has {} hard links; it may be a link to a file outside the workspace",
                meta.nlink()
            ));
        }
        Ok(())
    }

    /// Walks `parts` from the workspace root. `shown` is the model's path, for messages.
    pub(crate) fn resolve(
        &self,
        parts: Vec<OsString>,
        want: Want,
        shown: &str,
    ) -> Result<Resolved, String> {
        let io_err = |e: io::Error| format!("cannot access `{shown}`: {}", plain_io(&e));
        let mut dirs = vec![self.root.try_clone().map_err(io_err)?];
        // Physical path of `dirs.last()` below the root (symlinks already resolved).
        let mut rel: Vec<OsString> = Vec::new();
        let mut queue: VecDeque<Part> = parts.into_iter().map(Part::Name).collect();
        let mut links = 0usize;
        while let Some(part) = queue.pop_front() {
            let name = match part {
                Part::Up => {
                    if rel.pop().is_none() || dirs.len() < 2 {
                        return Err(escape_refusal(shown));
                    }
                    dirs.pop();
                    continue;
                }
                Part::Name(name) => name,
            };
            let last = queue.is_empty();
            let cur = dirs.last().ok_or_else(|| escape_refusal(shown))?;
            let meta = match cur.symlink_metadata(&name) {
                Ok(m) => Some(m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(e)),
            };
            if meta.as_ref().is_some_and(|m| m.is_symlink()) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!(
                        "refused: `{shown}` has too many levels of symbolic links"
                    ));
                }
                let target = cur.read_link_contents(&name).map_err(io_err)?;
                for p in link_parts(&target)
                    .ok_or_else(|| escape_refusal(shown))?
                    .into_iter()
                    .rev()
                {
                    queue.push_front(p);
                }
                continue;
            }
            rel.push(name.clone());
            if self.is_state_rel(&rel) {
                return Err(state_refusal(shown));
            }
            if self.is_config(&rel, meta.as_ref()) {
                return Err(config_refusal(shown));
            }
            if last && matches!(want, Want::Entry { .. }) {
                // Refuse devices, FIFOs and sockets before opening them (open itself can act).
                match &meta {
                    Some(m) if m.is_dir() => return Err(format!("`{shown}` is a directory")),
                    Some(m) if !m.is_file() => {
                        return Err(format!("refused: `{shown}` is not a regular file"))
                    }
                    _ => {}
                }
                let parent = dirs.pop().ok_or_else(|| escape_refusal(shown))?;
                return Ok(Resolved::Entry { parent, name });
            }
            let dir = match meta {
                Some(m) if m.is_dir() => open_dir_nofollow(cur, &name).map_err(io_err)?,
                Some(_) if last => return Err(format!("`{shown}` is not a directory")),
                Some(_) => return Err(format!("`{shown}`: a path component is not a directory")),
                None if want == (Want::Entry { create_dirs: true }) => {
                    match cur.create_dir(&name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err(e)),
                    }
                    open_dir_nofollow(cur, &name).map_err(io_err)?
                }
                None => return Err(format!("`{shown}` does not exist")),
            };
            let dmeta = dir.dir_metadata().map_err(io_err)?;
            if self.is_state_id(&dmeta) {
                return Err(state_refusal(shown));
            }
            dirs.push(dir);
        }
        // The walk ended on a directory (an empty path, or a link ending in `..`).
        match (want, dirs.pop()) {
            (Want::Dir, Some(dir)) => Ok(Resolved::Dir { dir, rel }),
            (Want::Dir, None) => Err(escape_refusal(shown)),
            (Want::Entry { .. }, _) => Err(format!("`{shown}` is a directory")),
        }
    }
}

/// Opens a file entry without following a symlink put there since it was checked.
pub(crate) fn open_entry(
    parent: &Dir,
    name: &OsStr,
    write: bool,
    create: bool,
) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    // No truncation here: the link count is checked before anything is changed.
    opts.read(true).write(write).create(write && create);
    // O_NONBLOCK: a FIFO swapped in must not hang the tool.
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    parent.open_with(name, &opts)
}

fn open_dir_nofollow(parent: &Dir, name: &OsStr) -> io::Result<Dir> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    opts.custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = parent.open_with(name, &opts)?;
    Ok(Dir::from_std_file(file.into_std()))
}

/// The steps of a symlink's target; `None` for an absolute target (always outside the jail).
fn link_parts(target: &Path) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    for comp in target.components() {
        match comp {
            Component::Normal(n) => parts.push(Part::Name(n.to_os_string())),
            Component::CurDir => {}
            Component::ParentDir => parts.push(Part::Up),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts)
}

/// The state directory's path relative to the workspace, if it lies inside it. Host paths
/// from the gateway's own config are canonicalized here; model paths never are.
fn state_rel(workspace: &Path, state_dir: &Path) -> Option<Vec<OsString>> {
    let ws = workspace.canonicalize().ok()?;
    let state = canonical_prefix(state_dir)?;
    let rest = state.strip_prefix(&ws).ok()?;
    Some(
        rest.components()
            .map(|c| c.as_os_str().to_os_string())
            .collect(),
    )
}

/// Canonicalizes the longest existing prefix of `path` and appends the rest as written.
fn canonical_prefix(path: &Path) -> Option<PathBuf> {
    let mut missing = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(real) = cur.canonicalize() {
            let mut out = real;
            for name in missing.iter().rev() {
                out.push(name);
            }
            return Some(out);
        }
        let name = cur.file_name()?.to_os_string();
        missing.push(name);
        if !cur.pop() {
            return None;
        }
    }
}

fn escape_refusal(shown: &str) -> String {
    format!("refused: `{shown}` resolves outside the workspace (via a symlink)")
}

fn config_refusal(shown: &str) -> String {
    format!("refused: `{shown}` is the gateway's config file")
}

fn state_refusal(shown: &str) -> String {
    format!("refused: `{shown}` is inside the gateway's state directory")
}

/// An io::Error's text without any path (std and cap-std messages carry none, but be sure).
pub(crate) fn plain_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symlink that changed while being opened".into(),
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None if e.kind() == io::ErrorKind::PermissionDenied => {
            "path leads outside the workspace".into()
        }
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (dev, ino) layer alone refuses the state dir, e.g. when it is reached through a
    /// bind mount the path comparison cannot see.
    #[test]
    fn state_dir_identity_check_stands_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("st");
        std::fs::create_dir_all(state.join("sub")).expect("mkdir");
        std::fs::write(state.join("sub/f"), "x").expect("write");
        let mut jail = Jail::open(tmp.path(), &state, None).expect("jail");
        jail.state_rel = None;
        for (path, want) in [
            ("st/sub/f", Want::Entry { create_dirs: false }),
            ("st", Want::Dir),
        ] {
            let parts = parse_path(path, false).expect("parse");
            match jail.resolve(parts, want, path) {
                Err(e) => assert_eq!(
                    e,
                    format!("refused: `{path}` is inside the gateway's state directory")
                ),
                Ok(_) => panic!("{path} resolved"),
            }
        }
        let parts = parse_path("other", false).expect("parse");
        assert!(jail
            .resolve(parts, Want::Entry { create_dirs: false }, "other")
            .is_ok());
    }
}
