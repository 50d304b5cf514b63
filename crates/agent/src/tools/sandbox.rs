//! Landlock confinement for `exec` children.
//!
//! The ruleset is built in the gateway before the fork (opening every granted path there);
//! the child only calls `prctl(PR_SET_NO_NEW_PRIVS)` and `landlock_restrict_self(fd)` between
//! fork and exec, both async-signal-safe. The child, and everything it starts, may then:
//! - read, write, create and delete in the workspace (but not execute files there);
//! - read and execute the system program and library directories (/usr, /bin, /lib*, ...);
//! - read a short list of /etc files programs need (loader cache, passwd, locale, TLS roots),
//!   and use /dev/null, /dev/zero, /dev/urandom (not /proc: the gateway's environment is
//!   readable there even from inside the sandbox);
//! - nothing else: no other file, no TCP bind or connect (ABI 4+), no signals to or abstract
//!   sockets of processes outside the sandbox (ABI 6+).
//!
//! The gateway's state directory and the active config file are never granted, wherever they
//! are: a granted directory that contains one is not granted whole; its entries are granted one
//! by one (symlinks skipped), down to the protected path, which is left out.

use clawgate_config::{ExecMode, ExecSandbox, ToolsConfig};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
    Scope, ABI,
};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The newest ABI whose rights are asked for; older kernels get what they support.
const TARGET: ABI = ABI::V6;

/// Upper bound on rules for one child (granting a split directory entry by entry).
const MAX_RULES: usize = 4096;

/// Read-only and executable: where programs and their libraries live.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Read-only: what common programs read under /etc (no secrets).
const ETC_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/locale.alias",
    "/etc/mime.types",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/terminfo",
    "/etc/inputrc",
    "/etc/os-release",
];

/// Read-only data directories. Not /proc: a sandboxed child can still read the environment
/// of its (unsandboxed) parent there, and the gateway's may hold secrets.
const READ_DIRS: &[&str] = &["/sys/devices/system/cpu"];

/// Device files usable for reading and writing.
const RW_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];
const R_DEVICES: &[&str] = &["/dev/random", "/dev/urandom"];

/// The running kernel's Landlock ABI version; 0 when Landlock is missing or disabled.
pub fn landlock_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the ABI version; it takes no pointer it would dereference.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// Whether the model is offered a working `exec` (mode allowlist, and not filtered out by
/// `tools.allow`/`tools.deny`).
pub fn exec_enabled(tools: &ToolsConfig) -> bool {
    let offered = (tools.allow.is_empty() || tools.allow.iter().any(|t| t == "exec"))
        && !tools.deny.iter().any(|t| t == "exec");
    offered && tools.exec.mode == ExecMode::Allowlist
}

/// The start-up check for `tools.exec`: `Err` refuses to start (exec enabled, the Landlock
/// sandbox asked for, and no Landlock in this kernel); `Ok(Some(note))` is worth a warning.
pub fn check_exec_sandbox(tools: &ToolsConfig) -> Result<Option<String>, String> {
    if !exec_enabled(tools) {
        return Ok(None);
    }
    describe(tools.exec.sandbox, landlock_abi())
}

fn describe(sandbox: ExecSandbox, abi: i32) -> Result<Option<String>, String> {
    match (sandbox, abi) {
        (ExecSandbox::None, _) => Ok(Some(
            "tools.exec.sandbox is `none`: exec children are not confined; they can read and \
             write whatever this user can, the gateway token included"
                .into(),
        )),
        (ExecSandbox::Landlock, 0) => Err(
            "tools.exec: exec is enabled but this kernel has no Landlock (Linux 5.13+ with \
             Landlock enabled), so exec children cannot be confined; set tools.exec.mode: deny, \
             or tools.exec.sandbox: none to run them unconfined"
                .into(),
        ),
        (ExecSandbox::Landlock, 1..=3) => Ok(Some(format!(
            "tools.exec: Landlock ABI {abi} confines files but not TCP (needs ABI 4, Linux 6.7+)"
        ))),
        (ExecSandbox::Landlock, _) => Ok(None),
    }
}

/// A protected path (state directory or config file): its physical path and identity.
struct Protected {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

struct Builder {
    protected: Vec<Protected>,
    rules: Vec<(OwnedFd, BitFlags<AccessFs>)>,
}

/// The ruleset fd for one exec child: `workspace` granted read/write, `protected` paths
/// never. Runs blocking file-system calls.
pub(crate) fn prepare(workspace: &Path, protected: &[PathBuf]) -> Result<OwnedFd, String> {
    let all = AccessFs::from_all(TARGET);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let read_exec = read | AccessFs::Execute;
    let mut b = Builder {
        protected: protected.iter().map(|p| identify(p)).collect(),
        rules: Vec::new(),
    };
    let ws = workspace
        .canonicalize()
        .map_err(|e| format!("workspace is not accessible: {e}"))?;
    b.grant_top(&ws, all & !AccessFs::Execute, true)?;
    for dir in SYSTEM_DIRS {
        b.grant_top(Path::new(dir), read_exec, false)?;
    }
    for path in ETC_FILES.iter().chain(READ_DIRS) {
        b.grant_top(Path::new(path), read, false)?;
    }
    let rw_file = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
    for dev in RW_DEVICES {
        b.grant_top(Path::new(dev), rw_file, false)?;
    }
    for dev in R_DEVICES {
        b.grant_top(Path::new(dev), AccessFs::ReadFile.into(), false)?;
    }
    let err = |e: landlock::RulesetError| format!("Landlock: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(err)?
        .handle_access(AccessNet::from_all(TARGET))
        .map_err(err)?
        .scope(Scope::from_all(TARGET))
        .map_err(err)?
        .create()
        .map_err(err)?;
    for (fd, access) in b.rules {
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
    }
    let fd: Option<OwnedFd> = ruleset.into();
    fd.ok_or_else(|| "Landlock is not available in this kernel".to_string())
}

/// Confines the calling process with the ruleset `fd`. Called in the child between fork and
/// exec: only async-signal-safe system calls, no allocation.
pub(crate) fn enter(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system calls on integers; `fd` stays open in the child until exec
    // (the ruleset fd is close-on-exec).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The physical path (made absolute, symlinks resolved where it exists) and (dev, ino).
fn identify(path: &Path) -> Protected {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let real = abs.canonicalize().unwrap_or(abs);
    let id = std::fs::metadata(&real).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    });
    Protected { path: real, id }
}

fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: `st` is a plain C struct filled by fstat on a valid descriptor.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

fn open_at(dir: RawFd, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: a valid NUL-terminated name; the returned descriptor is owned by us.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

impl Builder {
    fn is_protected(&self, path: &Path, st: &libc::stat) -> bool {
        self.protected
            .iter()
            .any(|p| p.path == path || p.id == Some((st.st_dev, st.st_ino)))
    }

    fn push(&mut self, fd: OwnedFd, access: BitFlags<AccessFs>) {
        if !access.is_empty() {
            self.rules.push((fd, access));
        }
    }

    /// A protected path lies strictly below `path`.
    fn holds_protected(&self, path: &Path) -> bool {
        self.protected
            .iter()
            .any(|p| p.path != path && p.path.starts_with(path))
    }

    /// Grants a path chosen by the gateway (symlinks followed); a missing one is skipped.
    /// Only the workspace may lie inside a protected directory (the default workspace is
    /// `$CLAWGATE_HOME/workspace`).
    fn grant_top(
        &mut self,
        path: &Path,
        access: BitFlags<AccessFs>,
        workspace: bool,
    ) -> Result<(), String> {
        let Ok(real) = path.canonicalize() else {
            return Ok(());
        };
        if !workspace && self.protected.iter().any(|p| real.starts_with(&p.path)) {
            return Ok(());
        }
        let c = CString::new(real.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let fd = match open_at(libc::AT_FDCWD, &c, libc::O_PATH) {
            Ok(fd) => fd,
            Err(_) => return Ok(()),
        };
        self.grant(fd, real, access)
    }

    /// Grants `fd` (at physical path `path`) whole, or entry by entry when it holds a
    /// protected path.
    fn grant(
        &mut self,
        fd: OwnedFd,
        path: PathBuf,
        access: BitFlags<AccessFs>,
    ) -> Result<(), String> {
        let st = fstat(&fd).map_err(|e| format!("{}: {e}", path.display()))?;
        if self.is_protected(&path, &st) {
            return Ok(());
        }
        if self.rules.len() >= MAX_RULES {
            return Err(format!(
                "more than {MAX_RULES} entries to grant beside the protected files; move the \
                 config file and the state directory out of the workspace"
            ));
        }
        if !is_dir(&st) {
            self.push(fd, access & AccessFs::from_file(TARGET));
            return Ok(());
        }
        if !self.holds_protected(&path) {
            self.push(fd, access);
            return Ok(());
        }
        // Listing stays possible; everything else is granted per entry.
        let list = open_at(fd.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let names = list_names(list).map_err(|e| format!("{}: {e}", path.display()))?;
        // (Listing is granted below too, so the protected directory's entry names show.)
        self.push(
            fd.try_clone().map_err(|e| e.to_string())?,
            access & AccessFs::ReadDir,
        );
        for name in names {
            let c = CString::new(name.as_bytes()).map_err(|e| e.to_string())?;
            // O_NOFOLLOW with O_PATH opens a symlink itself: it is skipped, so a link planted
            // here cannot widen the grant.
            let Ok(child) = open_at(fd.as_fd().as_raw_fd(), &c, libc::O_PATH | libc::O_NOFOLLOW)
            else {
                continue;
            };
            let cst = fstat(&child).map_err(|e| e.to_string())?;
            if cst.st_mode & libc::S_IFMT == libc::S_IFLNK {
                continue;
            }
            self.grant(child, path.join(&name), access)?;
        }
        Ok(())
    }
}

/// The names in a directory (without `.` and `..`).
fn list_names(dir: OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    use cap_std::fs::Dir;
    let dir = Dir::from_std_file(std::fs::File::from(dir));
    let mut names = Vec::new();
    for entry in dir.entries()? {
        let name = entry?.file_name();
        names.push(name);
        if names.len() > MAX_RULES {
            break;
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_policy() {
        assert!(describe(ExecSandbox::Landlock, 0)
            .unwrap_err()
            .contains("tools.exec.sandbox: none"));
        assert!(describe(ExecSandbox::Landlock, 3).unwrap().is_some());
        assert_eq!(describe(ExecSandbox::Landlock, 7).unwrap(), None);
        assert!(describe(ExecSandbox::None, 7)
            .unwrap()
            .unwrap()
            .contains("not confined"));
        let mut tools = ToolsConfig::default();
        assert!(!exec_enabled(&tools));
        tools.exec.mode = ExecMode::Allowlist;
        assert!(exec_enabled(&tools));
        tools.deny = vec!["exec".into()];
        assert!(!exec_enabled(&tools));
        tools.deny.clear();
        tools.allow = vec!["read".into()];
        assert!(!exec_enabled(&tools));
        assert_eq!(check_exec_sandbox(&tools).unwrap(), None);
    }
}
