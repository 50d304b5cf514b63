//! Strict validation of the YAML tree into [`Config`]: unknown keys, wrong types and bad
//! values each become one `config.yaml:LINE:COL: key: what is wrong` line.

use crate::yaml::{self, Node, Pos, Value};
use crate::{AuthMode, Config, DmPolicy, GroupConfig, RateLimit, Secret};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: String,
    pub pos: Option<Pos>,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            pos: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }
    }

    pub fn too_large(path: &Path) -> Self {
        ConfigError {
            file: path.display().to_string(),
            pos: None,
            key: String::new(),
            message: format!(
                "larger than {} KiB; this is not a clawgate config file",
                crate::MAX_CONFIG_BYTES / 1024
            ),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: ", self.file, p.line, p.col)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The validation context a config section (the core's or a channel's) reports into: every
/// problem becomes one `config.yaml:LINE:COL: key: message` line.
pub struct Ctx<'a> {
    file: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    pub fn err(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            pos: Some(pos),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// The entries of a mapping node, reporting unknown keys (with a near-miss hint).
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        allowed: &[&str],
    ) -> Option<&'n [(String, Pos, Node)]> {
        if node.is_null() {
            return Some(&[]);
        }
        let Value::Map(entries) = &node.value else {
            let label = if key.is_empty() { "<root>" } else { key };
            self.err(
                node.pos,
                label,
                format!("expected a mapping, found {}", node.kind()),
            );
            return None;
        };
        for (k, pos, _) in entries {
            if !allowed.contains(&k.as_str()) {
                let full = join(key, k);
                let hint = match suggest(k, allowed) {
                    Some(s) => format!("unknown key (did you mean `{}`?)", join(key, s)),
                    None => format!(
                        "unknown key (known keys here: {})",
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.err(*pos, &full, hint);
            }
        }
        Some(entries)
    }

    /// A string scalar with `${ENV}` substituted.
    pub fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(s, _) if !node.is_null() => match substitute(s, self.env) {
                Ok(v) => Some(v),
                Err(msg) => {
                    self.err(node.pos, key, msg);
                    None
                }
            },
            _ => {
                self.err(
                    node.pos,
                    key,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node, key: &str, min: u64, max: u64) -> Option<u64> {
        match &node.value {
            Value::Scalar(s, false) if !node.is_null() => match s.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                Ok(n) => {
                    self.err(node.pos, key, format!("{n} is out of range ({min}–{max})"));
                    None
                }
                Err(_) => {
                    self.err(
                        node.pos,
                        key,
                        format!("expected a whole number, found `{s}`"),
                    );
                    None
                }
            },
            _ => {
                self.err(
                    node.pos,
                    key,
                    format!("expected a whole number, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// A string that must be one of `allowed` (with a near-miss hint).
    pub fn one_of(&mut self, node: &Node, key: &str, allowed: &[&str]) -> Option<String> {
        let v = self.string(node, key)?;
        if allowed.contains(&v.as_str()) {
            return Some(v);
        }
        let hint = suggest(&v, allowed)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let list = allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err(node.pos, key, format!("`{v}` is not one of {list}{hint}"));
        None
    }

    /// A channel's `dmPolicy`: `pairing` | `allowlist` | `open` | `disabled`.
    pub fn dm_policy(&mut self, node: &Node, key: &str) -> Option<DmPolicy> {
        let s = self.one_of(node, key, &["pairing", "allowlist", "open", "disabled"])?;
        Some(match s.as_str() {
            "allowlist" => DmPolicy::Allowlist,
            "open" => DmPolicy::Open,
            "disabled" => DmPolicy::Disabled,
            _ => DmPolicy::Pairing,
        })
    }

    /// One group/channel entry of a channel section, `{ requireMention, enabled }` (both
    /// default to true; a null entry is all defaults).
    pub fn group_config(&mut self, node: &Node, key: &str) -> GroupConfig {
        let mut g = GroupConfig {
            require_mention: true,
            enabled: true,
        };
        if let Some(entries) = self.mapping(node, key, &["requireMention", "enabled"]) {
            for (k, _, v) in entries {
                let full = format!("{key}.{k}");
                if let Some(b) = self.boolean(v, &full) {
                    match k.as_str() {
                        "requireMention" => g.require_mention = b,
                        _ => g.enabled = b,
                    }
                }
            }
        }
        g
    }

    /// A channel's map of group ids to `{ requireMention, enabled }` entries (`what` names the
    /// ids in the error for a non-mapping). `id` turns a key into the stored id, or says why it
    /// is not one (that entry is then skipped).
    pub fn group_map(
        &mut self,
        node: &Node,
        key: &str,
        what: &str,
        id: impl Fn(&str) -> Result<String, String>,
    ) -> Vec<(String, GroupConfig)> {
        let mut out = Vec::new();
        if node.is_null() {
            return out;
        }
        let Value::Map(groups) = &node.value else {
            self.err(
                node.pos,
                key,
                format!(
                    "expected a mapping of {what} to settings, found {}",
                    node.kind()
                ),
            );
            return out;
        };
        for (gid, gpos, gv) in groups {
            let gkey = format!("{key}.{gid}");
            match id(gid) {
                Ok(id) => {
                    let g = self.group_config(gv, &gkey);
                    out.push((id, g));
                }
                Err(why) => self.err(*gpos, &gkey, why),
            }
        }
        out
    }

    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar(s, false) if s == "true" => Some(true),
            Value::Scalar(s, false) if s == "false" => Some(false),
            _ => {
                self.err(
                    node.pos,
                    key,
                    format!("expected true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn string_list(&mut self, node: &Node, key: &str) -> Option<Vec<(String, Pos)>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let Value::Seq(items) = &node.value else {
            self.err(
                node.pos,
                key,
                format!("expected a list, found {}", node.kind()),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            if let Some(s) = self.string(item, &k) {
                out.push((s, item.pos));
            }
        }
        Some(out)
    }
}

pub fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s, _) if !node.is_null() => format!("`{s}`"),
        _ => node.kind().to_string(),
    }
}

pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The closest allowed key, when it is a plausible typo.
pub(crate) fn suggest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (levenshtein(&lower, &a.to_ascii_lowercase()), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `${VAR}` substitution (upper-case names only); `$${VAR}` is a literal `${VAR}`.
/// A variable that is unset or empty is an error: a config value silently missing is worse.
fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        if let Some(after) = tail.strip_prefix("${") {
            if let Some(end) = after.find('}') {
                let name = &after[..end];
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if valid {
                    match env(name).filter(|v| !v.is_empty()) {
                        Some(v) => out.push_str(&v),
                        None => return Err(format!("environment variable {name} is not set")),
                    }
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        out.push('$');
        rest = &tail[1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    channels: &[&dyn crate::ChannelConfigParser],
) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let mut cfg = Config {
        path: path.to_path_buf(),
        ..Config::default()
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Ok(cfg),
        Err(e) => {
            return Err(vec![ConfigError {
                file,
                pos: Some(e.pos),
                key: String::new(),
                message: format!("invalid YAML: {}", e.message),
            }])
        }
    };
    let mut ctx = Ctx {
        file,
        env,
        errors: Vec::new(),
    };
    if let Some(entries) = ctx.mapping(
        &root,
        "",
        &[
            "gateway", "models", "agents", "tools", "session", "channels", "store", "logging",
        ],
    ) {
        for (k, _, v) in entries {
            match k.as_str() {
                "gateway" => gateway(&mut ctx, v, &mut cfg),
                "models" => crate::validate_agent::models(&mut ctx, v, &mut cfg),
                "agents" => crate::validate_agent::agents(&mut ctx, v, &mut cfg),
                "tools" => crate::validate_agent::tools(&mut ctx, v, &mut cfg),
                "session" => crate::validate_channels::session(&mut ctx, v, &mut cfg),
                "channels" => crate::validate_channels::channels(&mut ctx, v, &mut cfg, channels),
                "store" => crate::validate_store::store(&mut ctx, v, &mut cfg),
                "logging" => crate::validate_store::logging(&mut ctx, v, &mut cfg),
                _ => {}
            }
        }
        crate::validate_agent::cross_check(&mut ctx, &root, &cfg);
    }
    if ctx.errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ctx.errors)
    }
}

fn gateway(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    const KEYS: &[&str] = &[
        "host",
        "port",
        "auth",
        "allowedOrigins",
        "allowedHosts",
        "trustedProxies",
        "maxHttpConnections",
        "maxHttpConnectionsPerAddress",
        "maxConnections",
        "maxBufferedBytesTotal",
        "controlUi",
    ];
    let Some(entries) = ctx.mapping(node, "gateway", KEYS) else {
        return;
    };
    for (k, _, v) in entries {
        let key = join("gateway", k);
        match k.as_str() {
            "host" => {
                if let Some(h) = ctx.string(v, &key) {
                    let h = h.trim().to_string();
                    if h.is_empty() || h.contains(char::is_whitespace) || h.contains('/') {
                        ctx.err(
                            v.pos,
                            &key,
                            format!("`{h}` is not an IP address or host name"),
                        );
                    } else {
                        cfg.gateway.host = h;
                    }
                }
            }
            "port" => {
                if let Some(p) = ctx.integer(v, &key, 1, 65535) {
                    cfg.gateway.port = p as u16;
                }
            }
            "auth" => auth(ctx, v, cfg),
            "controlUi" => control_ui(ctx, v, cfg),
            "maxHttpConnections" => {
                if let Some(n) = ctx.integer(v, &key, 1, 1_000_000) {
                    cfg.gateway.max_http_connections = n as usize;
                }
            }
            "maxHttpConnectionsPerAddress" => {
                if let Some(n) = ctx.integer(v, &key, 1, 1_000_000) {
                    cfg.gateway.max_http_connections_per_address = n as usize;
                }
            }
            "maxConnections" => {
                if let Some(n) = ctx.integer(v, &key, 1, 1_000_000) {
                    cfg.gateway.max_connections = n as usize;
                }
            }
            "maxBufferedBytesTotal" => {
                // At least 1 MiB, at most 64 GiB.
                if let Some(n) = ctx.integer(v, &key, 1 << 20, 1 << 36) {
                    cfg.gateway.max_buffered_bytes_total = usize::try_from(n).unwrap_or(usize::MAX);
                }
            }
            "allowedOrigins" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    for (i, (o, pos)) in list.into_iter().enumerate() {
                        match normalize_origin(&o) {
                            Ok(norm) => cfg.gateway.allowed_origins.push(norm),
                            Err(msg) => ctx.err(pos, &format!("{key}[{i}]"), msg),
                        }
                    }
                }
            }
            "allowedHosts" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    for (i, (h, pos)) in list.into_iter().enumerate() {
                        let lower = h.trim().to_ascii_lowercase();
                        let ok = !lower.is_empty()
                            && !lower.contains(['/', '*', ' '])
                            && matches!(crate::split_host_port(&lower), Some((ref host, None)) if *host == lower);
                        if ok {
                            cfg.gateway.allowed_hosts.push(lower);
                        } else {
                            ctx.err(pos, &format!("{key}[{i}]"), format!("`{h}` is not a host name (like bot.example.com, no scheme, port or wildcard)"));
                        }
                    }
                }
            }
            "trustedProxies" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    for (i, (p, pos)) in list.into_iter().enumerate() {
                        match parse_net(&p) {
                            Some(net) => cfg.gateway.trusted_proxies.push(net),
                            None => ctx.err(
                                pos,
                                &format!("{key}[{i}]"),
                                format!("`{p}` is not an IP address or CIDR (e.g. 10.0.0.1 or 10.0.0.0/8)"),
                            ),
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn control_ui(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    const KEYS: &[&str] = &["enabled", "root", "basePath"];
    let Some(entries) = ctx.mapping(node, "gateway.controlUi", KEYS) else {
        return;
    };
    let base_dir = Path::new(&ctx.file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for (k, _, v) in entries {
        let key = join("gateway.controlUi", k);
        match k.as_str() {
            "enabled" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    cfg.gateway.control_ui.enabled = b;
                }
            }
            "basePath" => {
                if let Some(s) = ctx.string(v, &key) {
                    match crate::normalize_base_path(&s) {
                        Ok(b) => cfg.gateway.control_ui.base_path = b,
                        Err(msg) => ctx.err(v.pos, &key, msg),
                    }
                }
            }
            "root" => {
                if v.is_null() {
                    continue;
                }
                let Some(s) = ctx.string(v, &key) else {
                    continue;
                };
                let raw = s.trim();
                if raw.is_empty() {
                    ctx.err(
                        v.pos,
                        &key,
                        "empty path (remove the key to serve no Control UI)",
                    );
                    continue;
                }
                let p = crate::validate_agent::expand_home(raw);
                let p = if p.is_absolute() { p } else { base_dir.join(p) };
                if !p.is_dir() {
                    ctx.err(
                        v.pos,
                        &key,
                        format!(
                            "`{}` is not a directory (install the Control UI with `clawgate ui install`)",
                            p.display()
                        ),
                    );
                } else if !p.join("index.html").is_file() {
                    ctx.err(
                        v.pos,
                        &key,
                        format!(
                            "`{}` has no index.html; point it at a built Control UI (OpenClaw's dist/control-ui) or run `clawgate ui install`",
                            p.display()
                        ),
                    );
                } else {
                    cfg.gateway.control_ui.root = Some(p);
                }
            }
            _ => {}
        }
    }
}

fn auth(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    const KEYS: &[&str] = &["mode", "token", "tokenFile", "password", "rateLimit"];
    let Some(entries) = ctx.mapping(node, "gateway.auth", KEYS) else {
        return;
    };
    let has_token = entries.iter().any(|(k, _, v)| k == "token" && !v.is_null());
    for (k, _, v) in entries {
        let key = join("gateway.auth", k);
        match k.as_str() {
            "mode" => {
                if let Some(m) = ctx.string(v, &key) {
                    cfg.gateway.auth.mode = match m.as_str() {
                        "token" => AuthMode::Token,
                        "password" => AuthMode::Password,
                        "none" => AuthMode::None,
                        other => {
                            let hint = suggest(other, &["token", "password", "none"])
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            ctx.err(
                                v.pos,
                                &key,
                                format!(
                                    "`{other}` is not one of `token`, `password`, `none`{hint}"
                                ),
                            );
                            continue;
                        }
                    };
                }
            }
            "token" | "password" => {
                if v.is_null() {
                    continue;
                }
                if let Some(s) = ctx.string(v, &key) {
                    if s.trim().is_empty() {
                        ctx.err(
                            v.pos,
                            &key,
                            "must not be empty (remove the key to use the generated token)",
                        );
                    } else if k == "token" {
                        cfg.gateway.auth.token = Some(Secret::new(s));
                    } else {
                        cfg.gateway.auth.password = Some(Secret::new(s));
                    }
                }
            }
            "tokenFile" => {
                if v.is_null() {
                    continue;
                }
                if has_token {
                    ctx.err(
                        v.pos,
                        &key,
                        "set either gateway.auth.token or gateway.auth.tokenFile, not both",
                    );
                    continue;
                }
                if let Some(s) = ctx.string(v, &key) {
                    let base_dir = Path::new(&ctx.file)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    match read_secret_file(&s, &base_dir) {
                        Ok((path, token)) => {
                            cfg.gateway.auth.token = Some(Secret::new(token));
                            cfg.gateway.auth.token_file = Some(path);
                        }
                        Err(msg) => ctx.err(v.pos, &key, msg),
                    }
                }
            }
            "rateLimit" => rate_limit(ctx, v, &mut cfg.gateway.auth.rate_limit),
            _ => {}
        }
    }
}

/// Largest secret file read (a token is 43 characters; this leaves room for any sane one).
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a secret file (`gateway.auth.tokenFile`): a regular file, not writable by group or
/// others, at most 4 KiB, whose trimmed content is one non-empty line.
pub(crate) fn read_secret_file(
    raw: &str,
    base_dir: &Path,
) -> Result<(std::path::PathBuf, String), String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty path (remove the key to use the generated token)".into());
    }
    let p = crate::validate_agent::expand_home(raw);
    let p = if p.is_absolute() { p } else { base_dir.join(p) };
    let shown = p.display();
    let meta = std::fs::metadata(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "`{shown}` does not exist (create it with the token on one line, mode 600, or mount the secret there)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "`{shown}` cannot be read by this user (uid {}): {e}",
            current_uid()
        ),
        _ => format!("`{shown}`: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "`{shown}` is writable by group or others (mode {mode:o}): anyone who can write it chooses the gateway's token; run `chmod 600 {shown}`"
        ));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!(
            "`{shown}` is {} bytes; a token file holds one line (at most {MAX_SECRET_FILE} bytes)",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(&p)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_string(&mut text))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!(
                "`{shown}` cannot be read by this user (uid {}): {e}",
                current_uid()
            ),
            std::io::ErrorKind::InvalidData => format!("`{shown}` is not UTF-8 text"),
            _ => format!("`{shown}`: {e}"),
        })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("`{shown}` is empty (write the token into it)"));
    }
    if token.lines().count() > 1 {
        return Err(format!(
            "`{shown}` holds more than one line; a token file holds only the token"
        ));
    }
    Ok((p, token.to_string()))
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

fn rate_limit(ctx: &mut Ctx, node: &Node, rl: &mut RateLimit) {
    const KEYS: &[&str] = &["maxAttempts", "windowMs", "lockoutMs", "globalMaxAttempts"];
    let Some(entries) = ctx.mapping(node, "gateway.auth.rateLimit", KEYS) else {
        return;
    };
    for (k, _, v) in entries {
        let key = join("gateway.auth.rateLimit", k);
        match k.as_str() {
            "maxAttempts" => {
                if let Some(n) = ctx.integer(v, &key, 1, 1_000_000) {
                    rl.max_attempts = n as u32;
                }
            }
            "windowMs" => {
                if let Some(n) = ctx.integer(v, &key, 1, 86_400_000) {
                    rl.window_ms = n;
                }
            }
            "lockoutMs" => {
                if let Some(n) = ctx.integer(v, &key, 1, 86_400_000) {
                    rl.lockout_ms = n;
                }
            }
            "globalMaxAttempts" => {
                if let Some(n) = ctx.integer(v, &key, 1, 100_000_000) {
                    rl.global_max_attempts = n as u32;
                }
            }
            _ => {}
        }
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// `scheme://host[:port]`, lower-cased, default ports dropped; anything else is refused
/// (no paths, no wildcards, no `null`).
pub fn normalize_origin(o: &str) -> Result<String, String> {
    let o = o.trim();
    let bad =
        || format!("`{o}` is not an origin like https://ui.example.com or http://127.0.0.1:18789");
    if o.contains('*') {
        return Err(format!(
            "`{o}`: wildcards are not allowed; list each origin exactly"
        ));
    }
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let rest = rest.to_ascii_lowercase();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    let rest = rest.strip_suffix(default_port).unwrap_or(&rest).to_string();
    Ok(format!("{scheme}://{rest}"))
}
