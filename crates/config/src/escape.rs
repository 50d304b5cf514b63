//! Programs that turn an exec allowlist entry into "run anything": shells, programs whose job
//! is to run another program (`env`, `xargs`, `nice`, ...), programs with an option or command
//! that runs one (`find -exec`, `sort --compress-program`, `git -c alias.x=!sh`, `sed e`, ...),
//! and interpreters and compilers. Allowlisting one needs
//! `tools.exec.dangerouslyAllowEscapeHatches: true`. The list cannot be complete: the Landlock
//! sandbox, not this list, is what keeps exec children away from the gateway's secrets.

use std::path::{Path, PathBuf};

#[rustfmt::skip]
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "fish", "ksh", "ksh93", "mksh", "pdksh", "oksh", "csh", "tcsh",
    "ash", "rbash", "yash", "elvish", "nu", "xonsh", "busybox", "toybox", "pwsh", "powershell",
];

#[rustfmt::skip]
const RUNNERS: &[&str] = &[
    "env", "xargs", "find", "nice", "nohup", "timeout", "time", "stdbuf", "script", "sudo",
    "su", "doas", "pkexec", "runuser", "setpriv", "setsid", "chroot", "nsenter", "unshare",
    "flock", "ionice", "chrt", "taskset", "prlimit", "setarch", "linux32", "linux64", "numactl",
    "watch", "parallel", "strace", "ltrace", "gdb", "valgrind", "perf", "catchsegv",
    "systemd-run", "run-parts", "start-stop-daemon", "xdg-open", "at", "batch", "crontab",
    "capsh", "firejail", "bwrap", "expect", "tmux", "screen", "dbus-launch", "ssh-agent", "sg",
    "newgrp", "cpulimit", "ldd", "ld.so", "fakeroot", "proot", "torsocks", "proxychains",
    "eatmydata",
];

#[rustfmt::skip]
const OPTION_RUNNERS: &[&str] = &[
    "sort", "split", "tar", "zip", "rsync", "git", "ssh", "scp", "sftp", "make", "gmake",
    "cmake", "ninja", "meson", "m4", "dc", "ed", "ex", "vi", "vim", "view", "nvim", "emacs",
    "less", "more", "most", "man", "pager", "editor", "sensible-editor", "sensible-pager",
    "sqlite3", "psql", "mysql", "awk", "gawk", "mawk", "nawk", "sed", "nc", "ncat", "netcat",
    "socat", "dpkg", "apt", "apt-get", "npm", "npx", "yarn", "pnpm", "cargo", "go", "docker",
    "podman", "kubectl", "mail", "mutt", "journalctl", "systemctl", "tclsh", "wish", "rg",
    "patch", "install", "cpio", "pandoc",
];

/// Families matched with any version suffix (`python3.11`, `perl5.36`, `gcc-12`, `lua5.4`).
#[rustfmt::skip]
const INTERPRETERS: &[&str] = &[
    "python", "pypy", "perl", "ruby", "irb", "php", "lua", "luajit", "node", "nodejs", "deno",
    "bun", "tclsh", "wish", "guile", "R", "Rscript", "julia", "racket", "sbcl", "clisp",
    "ocaml", "ghc", "ghci", "runghc", "erl", "escript", "elixir", "iex", "java", "jshell",
    "groovy", "scala", "kotlin", "dotnet", "mono", "swift", "gcc", "g++", "cc", "c++", "clang",
    "clang++", "tcc", "rustc", "pip", "ld-linux", "vim", "nvim", "emacs", "busybox",
];

/// Why `name` (a file name) is an escape hatch, if it is one.
fn classify(name: &str) -> Option<&'static str> {
    // `x86_64-linux-gnu-gcc-12` is gcc.
    let name = name
        .rsplit_once("-linux-gnu-")
        .map_or(name, |(_, rest)| rest);
    if SHELLS.contains(&name) {
        return Some("it is a shell");
    }
    if RUNNERS.contains(&name) {
        return Some("it runs the program given as an argument");
    }
    if OPTION_RUNNERS.contains(&name) {
        return Some("an option or command of it runs other programs");
    }
    let versioned = INTERPRETERS.iter().any(|family| {
        name.strip_prefix(family).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        })
    });
    versioned.then_some("it is an interpreter or compiler")
}

/// The program an allowlist entry runs: an absolute path as written, or a bare name found in
/// /usr/bin or /bin (the exec tool's lookup).
fn locate(entry: &str) -> Option<PathBuf> {
    if entry.starts_with('/') {
        return Some(PathBuf::from(entry));
    }
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(entry))
        .find(|p| p.is_file())
}

/// Why the allowlist entry `entry` is an escape hatch, if it is one: by its own name, and by
/// the name of the file it resolves to (`/bin/sh` → `dash`, `awk` → `mawk`, `pager` → `less`).
pub fn escape_hatch(entry: &str) -> Option<String> {
    let own = Path::new(entry)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| entry.to_string());
    if let Some(why) = classify(&own) {
        return Some(format!("`{own}`: {why}"));
    }
    let real = locate(entry).and_then(|p| p.canonicalize().ok())?;
    let real_name = real.file_name()?.to_string_lossy().into_owned();
    classify(&real_name).map(|why| format!("`{entry}` is {}: {why}", real.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hatches_and_plain_tools() {
        for e in [
            "sh",
            "/bin/sh",
            "/usr/bin/bash",
            "env",
            "/usr/bin/env",
            "find",
            "xargs",
            "python3",
            "python3.11",
            "perl",
            "perl5.36",
            "node",
            "awk",
            "gawk",
            "sed",
            "git",
            "make",
            "busybox",
            "nice",
            "timeout",
            "sudo",
            "gcc-12",
            "x86_64-linux-gnu-gcc-12",
            "ld-linux-x86-64.so.2",
            "sort",
            "tar",
            "vim",
        ] {
            assert!(escape_hatch(e).is_some(), "{e} passed");
        }
        for e in [
            "cat",
            "ls",
            "echo",
            "/bin/echo",
            "printenv",
            "grep",
            "wc",
            "head",
            "touch",
            "pythonic",
            "nodes",
        ] {
            assert_eq!(escape_hatch(e), None, "{e}");
        }
    }
}
