//! Running clawgate as a service: `gateway install|uninstall` (a systemd unit, or a launchd
//! plist on macOS) and `gateway healthcheck` (the container HEALTHCHECK; slim images have no
//! curl).

use clawgate_config::paths::clawgate_home;
use std::path::{Path, PathBuf};

/// Which service manager, and for whom.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// `systemctl --user`: the invoking user's manager, unit in ~/.config/systemd/user.
    User,
    /// The system manager, unit in /etc/systemd/system.
    System,
}

pub struct InstallArgs {
    pub scope: Scope,
    pub print: bool,
    pub launchd: bool,
    /// Write the unit here instead of the standard directory (packaging, tests).
    pub unit_dir: Option<PathBuf>,
}

const UNIT_NAME: &str = "clawgate.service";
const LAUNCHD_LABEL: &str = "ai.clawgate.gateway";
/// Exit code of a configuration error (EX_CONFIG): restarting would not help.
const EXIT_CONFIG: u8 = 78;

/// Who the service runs as and where its state lives.
struct Plan {
    exe: PathBuf,
    config: Option<PathBuf>,
    /// `CLAWGATE_HOME` of the service.
    home: PathBuf,
    /// Extra writable paths (a workspace outside the state directory).
    writable: Vec<PathBuf>,
    /// System scope: the account (`None`: a DynamicUser with StateDirectory=clawgate).
    user: Option<String>,
    scope: Scope,
    /// The config file exists but does not load: the service would stop with exit code 78.
    config_problem: Option<String>,
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Name and home directory of `uid`'s account, from the password database.
fn account_of_uid(uid: u32) -> Option<(String, PathBuf)> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy out at once.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy();
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir).to_string_lossy();
        Some((name.into_owned(), PathBuf::from(dir.into_owned())))
    }
}

fn account_by_name(name: &str) -> Option<(u32, u32, PathBuf)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: as above; the CString outlives the call.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir).to_string_lossy();
        Some(((*pw).pw_uid, (*pw).pw_gid, PathBuf::from(dir.into_owned())))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn plan(config_flag: Option<&Path>, scope: Scope) -> Result<Plan, String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot find this program's own path: {e}"))?;
    let config = config_flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CLAWGATE_CONFIG").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| absolute(&p));
    let explicit_home = std::env::var_os("CLAWGATE_HOME")
        .filter(|h| !h.is_empty())
        .map(|h| absolute(Path::new(&h)));
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let (user, home) = match scope {
        Scope::User => (None, explicit_home.unwrap_or_else(clawgate_home)),
        Scope::System => {
            // Under sudo, the service runs as the person who asked for it; as plain root,
            // as a dynamic system account with its state in /var/lib/clawgate.
            let sudo_user = std::env::var("SUDO_USER")
                .ok()
                .filter(|u| !u.is_empty() && u != "root");
            let name = sudo_user.or_else(|| {
                (euid != 0)
                    .then(|| account_of_uid(euid).map(|(n, _)| n))
                    .flatten()
            });
            match name {
                Some(name) => {
                    let (_, _, dir) = account_by_name(&name)
                        .ok_or_else(|| format!("no account named `{name}` on this system"))?;
                    let home = explicit_home.unwrap_or_else(|| dir.join(".clawgate"));
                    (Some(name), home)
                }
                None => (
                    None,
                    explicit_home.unwrap_or_else(|| PathBuf::from("/var/lib/clawgate")),
                ),
            }
        }
    };
    let mut writable = Vec::new();
    let mut config_problem = None;
    let cfg_path = clawgate_config::paths::config_path(config.as_deref());
    if cfg_path.exists() {
        match clawgate_config::Config::load_with(&cfg_path, &clawgate_channels::config_parsers()) {
            Ok(cfg) => {
                if let Some(ws) = &cfg.agent.workspace {
                    let ws = absolute(ws);
                    if !ws.starts_with(&home) {
                        writable.push(ws);
                    }
                }
            }
            Err(errs) => {
                let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                config_problem = Some(lines.join("\n  "));
            }
        }
    }
    Ok(Plan {
        exe,
        config,
        home,
        writable,
        user,
        scope,
        config_problem,
    })
}

/// One systemd word: quoted when it holds anything but plain characters, `%` doubled
/// (systemd's specifier escape).
fn sd_word(s: &str) -> String {
    let s = s.replace('%', "%%");
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        return s;
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn sd_path(p: &Path) -> String {
    sd_word(&p.to_string_lossy())
}

/// Whether `p` lies under a directory that ProtectHome= hides.
fn under_home_dirs(p: &Path) -> bool {
    ["/home", "/root", "/run/user"]
        .iter()
        .any(|h| p.starts_with(h))
}

fn systemd_unit(p: &Plan) -> String {
    let mut exec = format!("{} gateway run", sd_path(&p.exe));
    if let Some(c) = &p.config {
        exec.push_str(&format!(" --config {}", sd_path(c)));
    }
    let dynamic = p.scope == Scope::System && p.user.is_none();
    let mut s = String::new();
    s.push_str(
        "# Written by `clawgate gateway install`; remove with `clawgate gateway uninstall`.\n",
    );
    s.push_str("[Unit]\n");
    s.push_str("Description=clawgate, the OpenClaw gateway\n");
    s.push_str("After=network-online.target\nWants=network-online.target\n\n");
    s.push_str("[Service]\n");
    s.push_str("Type=notify\nNotifyAccess=main\n");
    s.push_str(&format!("ExecStart={exec}\n"));
    // `systemctl reload clawgate` re-reads config.yaml (live keys apply, see docs).
    s.push_str("ExecReload=/bin/kill -HUP $MAINPID\n");
    s.push_str(&format!(
        "Environment={}\n",
        sd_word(&format!("CLAWGATE_HOME={}", p.home.display()))
    ));
    match (&p.user, dynamic) {
        (Some(u), _) => s.push_str(&format!("User={}\n", sd_word(u))),
        (None, true) => {
            s.push_str("DynamicUser=yes\n");
            // /var/lib/clawgate, owned by the dynamic account, kept across restarts.
            if p.home == Path::new("/var/lib/clawgate") {
                s.push_str("StateDirectory=clawgate\nStateDirectoryMode=0700\n");
            }
        }
        (None, false) => {}
    }
    s.push_str("Restart=on-failure\nRestartSec=2s\n");
    s.push_str(&format!(
        "# Exit code {EXIT_CONFIG} is a configuration error: fix config.yaml, restarting would not help.\n"
    ));
    s.push_str(&format!("RestartPreventExitStatus={EXIT_CONFIG}\n"));
    s.push_str("TimeoutStopSec=30s\n");
    s.push_str("UMask=0077\nLimitNOFILE=65536\n");
    s.push_str("# Hardening: the gateway writes only its state directory (and the workspace).\n");
    s.push_str("NoNewPrivileges=yes\nProtectSystem=strict\n");
    s.push_str(if under_home_dirs(&p.home) {
        "ProtectHome=read-only\n"
    } else {
        "ProtectHome=yes\n"
    });
    let mut rw = vec![sd_path(&p.home)];
    rw.extend(p.writable.iter().map(|w| sd_path(w)));
    s.push_str(&format!("ReadWritePaths={}\n", rw.join(" ")));
    s.push_str("PrivateTmp=yes\nPrivateDevices=yes\n");
    s.push_str("ProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectKernelLogs=yes\nProtectControlGroups=yes\nProtectClock=yes\n");
    s.push_str("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n");
    s.push_str("RestrictRealtime=yes\nRestrictSUIDSGID=yes\nLockPersonality=yes\n\n");
    s.push_str("[Install]\n");
    s.push_str(match p.scope {
        Scope::User => "WantedBy=default.target\n",
        Scope::System => "WantedBy=multi-user.target\n",
    });
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn launchd_plist(p: &Plan) -> String {
    let mut args = vec![p.exe.display().to_string(), "gateway".into(), "run".into()];
    if let Some(c) = &p.config {
        args.push("--config".into());
        args.push(c.display().to_string());
    }
    let args: String = args
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml_escape(a)))
        .collect();
    let home = xml_escape(&p.home.display().to_string());
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by clawgate gateway install (launchd). -->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
{args}  </array>
  <key>EnvironmentVariables</key>
  <dict>
    <key>CLAWGATE_HOME</key>
    <string>{home}</string>
  </dict>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>5</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>Umask</key>
  <integer>63</integer>
  <key>StandardOutPath</key>
  <string>{home}/logs/launchd.out.log</string>
  <key>StandardErrorPath</key>
  <string>{home}/logs/launchd.err.log</string>
</dict>
</plist>
"#
    )
}

/// Where the unit (or plist) goes.
fn unit_path(args_scope: Scope, launchd: bool, unit_dir: Option<&Path>) -> Result<PathBuf, String> {
    let file = if launchd {
        format!("{LAUNCHD_LABEL}.plist")
    } else {
        UNIT_NAME.to_string()
    };
    if let Some(d) = unit_dir {
        return Ok(absolute(d).join(file));
    }
    if launchd {
        let home = home_dir().ok_or("HOME is not set")?;
        return Ok(match args_scope {
            Scope::User => home.join("Library/LaunchAgents").join(file),
            Scope::System => PathBuf::from("/Library/LaunchDaemons").join(file),
        });
    }
    Ok(match args_scope {
        Scope::User => {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| home_dir().map(|h| h.join(".config")))
                .ok_or("neither XDG_CONFIG_HOME nor HOME is set")?;
            base.join("systemd/user").join(file)
        }
        Scope::System => PathBuf::from("/etc/systemd/system").join(file),
    })
}

fn systemctl(scope: Scope) -> &'static str {
    match scope {
        Scope::User => "systemctl --user",
        Scope::System => "systemctl",
    }
}

/// Writes `text` to `path` (0644) through a temporary file and a rename.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Creates the state directory (0700) so ReadWritePaths= finds it at the first start; for a
/// system unit run as another account, hands it to that account.
fn prepare_state_dir(p: &Plan) -> Result<(), String> {
    if p.scope == Scope::System && p.user.is_none() {
        return Ok(()); // StateDirectory= creates it with the dynamic owner.
    }
    let existed = p.home.exists();
    clawgate_config::paths::ensure_private_dir(&p.home).map_err(|e| {
        format!(
            "{}: cannot create the state directory: {e}",
            p.home.display()
        )
    })?;
    if let (false, Some(user)) = (existed, &p.user) {
        if let Some((uid, gid, _)) = account_by_name(user) {
            std::os::unix::fs::chown(&p.home, Some(uid), Some(gid))
                .map_err(|e| format!("{}: cannot give it to `{user}`: {e}", p.home.display()))?;
        }
    }
    Ok(())
}

pub fn install(config: Option<PathBuf>, a: InstallArgs) -> u8 {
    let plan = match plan(config.as_deref(), a.scope) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let text = if a.launchd {
        launchd_plist(&plan)
    } else {
        systemd_unit(&plan)
    };
    if let Some(p) = &plan.config_problem {
        eprintln!("warning: the config does not load, so the service would stop at once (exit code {EXIT_CONFIG}) until it is fixed:\n  {p}");
    }
    if a.print {
        print!("{text}");
        return 0;
    }
    let path = match unit_path(a.scope, a.launchd, a.unit_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Err(e) = prepare_state_dir(&plan) {
        eprintln!("error: {e}");
        return 1;
    }
    let replaced = path.exists();
    if let Err(e) = write_file(&path, &text) {
        eprintln!("error: cannot write {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied && a.scope == Scope::System {
            eprintln!("hint: a system unit needs root: `sudo clawgate gateway install --system`, or `clawgate gateway install --user`");
        }
        return 1;
    }
    println!(
        "{} {}",
        if replaced { "Replaced" } else { "Wrote" },
        path.display()
    );
    println!("  runs: {} gateway run", plan.exe.display());
    println!("  state: {}", plan.home.display());
    if a.launchd {
        let domain = match a.scope {
            Scope::User => "gui/$(id -u)",
            Scope::System => "system",
        };
        println!("Next: launchctl bootstrap {domain} {}", path.display());
        return 0;
    }
    let sc = systemctl(a.scope);
    println!("Next: {sc} daemon-reload && {sc} enable --now clawgate");
    println!(
        "Then: {sc} status clawgate   (logs: journalctl {}-u clawgate -f, or clawgate logs)",
        if a.scope == Scope::User {
            "--user "
        } else {
            ""
        }
    );
    if a.scope == Scope::User {
        println!("To keep it running after you log out: loginctl enable-linger $USER");
    }
    0
}

pub fn uninstall(scope: Scope, launchd: bool, unit_dir: Option<PathBuf>) -> u8 {
    let path = match unit_path(scope, launchd, unit_dir.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {
            println!("Removed {}", path.display());
            if launchd {
                println!("If it is loaded: launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}");
            } else {
                let sc = systemctl(scope);
                println!("If it is running: {sc} disable --now clawgate && {sc} daemon-reload");
            }
            println!("The state directory (config, token, state.db) is left as it was.");
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: nothing to remove: {} does not exist",
                path.display()
            );
            let other = if scope == Scope::User {
                "--system"
            } else {
                "--user"
            };
            eprintln!("hint: was it installed with {other}?");
            1
        }
        Err(e) => {
            eprintln!("error: cannot remove {}: {e}", path.display());
            1
        }
    }
}

/// `gateway healthcheck`: GET /healthz on this machine's loopback; exit 0 when it answers
/// 200 with `"ok": true`. Quiet on success, one line on failure.
pub async fn healthcheck(config: Option<PathBuf>, port: Option<u16>) -> u8 {
    let port = match port {
        Some(p) => p,
        None => {
            let path = clawgate_config::paths::config_path(config.as_deref());
            if path.exists() {
                match clawgate_config::Config::load_with(
                    &path,
                    &clawgate_channels::config_parsers(),
                ) {
                    Ok(c) => c.gateway.port,
                    Err(errs) => {
                        eprintln!("unhealthy: {} is invalid: {}", path.display(), errs[0]);
                        return 1;
                    }
                }
            } else {
                clawgate_config::Config::default().gateway.port
            }
        }
    };
    let hp = format!("127.0.0.1:{port}");
    match crate::client::http_get(&hp, "/healthz").await {
        Ok((200, body)) if body.contains("\"ok\":true") => 0,
        Ok((status, _)) => {
            eprintln!("unhealthy: http://{hp}/healthz answered {status}");
            1
        }
        Err(e) => {
            eprintln!("unhealthy: http://{hp}/healthz: {e}");
            1
        }
    }
}
