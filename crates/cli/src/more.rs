//! `clawgate logs`, `sessions`, `models`, `devices`, `pairing reject|list --approved`,
//! `completions` and `man`.

use crate::client::Connection;
use crate::commands::{one_call, print_client_error, query, target};
use crate::ConnArgs;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// One log file line (a JSON object) as `time LEVEL message key=value…`.
fn plain_log_line(line: &str) -> String {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    let time = m.get("time").and_then(Value::as_str).unwrap_or("");
    let level = m
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    let msg = m.get("0").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("{time} {level:<5} {msg}");
    for (k, v) in &m {
        if matches!(k.as_str(), "0" | "time" | "level" | "_meta") {
            continue;
        }
        match v {
            Value::String(s) => out.push_str(&format!(" {k}={s}")),
            other => out.push_str(&format!(" {k}={other}")),
        }
    }
    out
}

/// `clawgate logs [--follow] [--limit N]`: the gateway's log file through `logs.tail`; with
/// `--follow`, polls from the returned cursor until interrupted.
pub async fn logs(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    follow: bool,
    limit: u64,
    max_bytes: u64,
    interval_ms: u64,
) -> u8 {
    let t = match target(flag.as_deref(), &conn) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let timeout = Duration::from_secs(15);
    let mut c = match Connection::open(&t, &["operator.read"], "cli", timeout).await {
        Ok(c) => c,
        Err(e) => return print_client_error(&e, &t),
    };
    let emit = |v: &Value| {
        if v["reset"] == true {
            eprintln!("(log file rotated)");
        }
        for l in v["lines"].as_array().into_iter().flatten() {
            let l = l.as_str().unwrap_or("");
            if conn.json {
                println!("{l}");
            } else {
                println!("{}", plain_log_line(l));
            }
        }
    };
    let first = json!({"limit": limit, "maxBytes": max_bytes});
    let mut cursor = match c.call("logs.tail", first, timeout).await {
        Ok(v) => {
            emit(&v);
            v["cursor"].as_u64().unwrap_or(0)
        }
        Err(e) => return print_client_error(&e, &t),
    };
    if !follow {
        c.close().await;
        return 0;
    }
    let period = Duration::from_millis(interval_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(period) => {}
        }
        let params = json!({"cursor": cursor, "limit": 5000, "maxBytes": max_bytes});
        match c.call("logs.tail", params, timeout).await {
            Ok(v) => {
                emit(&v);
                cursor = v["cursor"].as_u64().unwrap_or(cursor);
            }
            Err(e) => return print_client_error(&e, &t),
        }
    }
    c.close().await;
    0
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn age(ms: i64) -> String {
    let s = (now_ms() - ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// `clawgate sessions [list]`: stored sessions, most recently updated first.
pub async fn sessions_list(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    limit: u64,
    active_minutes: Option<u64>,
) -> u8 {
    let params = json!({"limit": limit.clamp(1, 1000)});
    let v = match query(flag, &conn, &["operator.read"], "sessions.list", params).await {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let mut rows = v["sessions"].as_array().cloned().unwrap_or_default();
    if let Some(m) = active_minutes {
        let since = now_ms() - i64::try_from(m.saturating_mul(60_000)).unwrap_or(i64::MAX);
        rows.retain(|r| r["updatedAt"].as_i64().unwrap_or(0) >= since);
    }
    if rows.is_empty() {
        println!("No sessions.");
        return 0;
    }
    let total = v["totalCount"].as_u64().unwrap_or(rows.len() as u64);
    if active_minutes.is_some() || total == rows.len() as u64 {
        println!("{} session(s)", rows.len());
    } else {
        println!("{} of {total} session(s) (--limit to see more)", rows.len());
    }
    for r in rows {
        let model = match (r["modelProvider"].as_str(), r["model"].as_str()) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => "-".into(),
        };
        println!(
            "{}  {}  {} tokens  {}{}",
            r["key"].as_str().unwrap_or("?"),
            age(r["updatedAt"].as_i64().unwrap_or(0)),
            r["totalTokens"].as_u64().unwrap_or(0),
            model,
            r["label"]
                .as_str()
                .map(|l| format!("  \"{l}\""))
                .unwrap_or_default()
        );
    }
    0
}

/// The text of a transcript message's content (a string or text parts).
fn message_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p["type"].as_str() {
                Some("text") => p["text"].as_str().map(str::to_string),
                Some("toolCall" | "tool_use") => {
                    Some(format!("⚙ {}", p["name"].as_str().unwrap_or("tool")))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `clawgate sessions history <key>`: the session's transcript.
pub async fn sessions_history(flag: Option<PathBuf>, conn: ConnArgs, key: &str, limit: u64) -> u8 {
    let params = json!({"sessionKey": key, "limit": limit});
    let v = match query(flag, &conn, &["operator.read"], "chat.history", params).await {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let msgs = v["messages"].as_array().cloned().unwrap_or_default();
    if msgs.is_empty() && v["sessionId"].is_null() {
        eprintln!("error: no session {key}");
        eprintln!("hint: `clawgate sessions` lists the stored sessions and their keys");
        return 1;
    }
    if msgs.is_empty() {
        println!("No messages in {key}.");
    }
    for m in msgs {
        let role = m["role"].as_str().unwrap_or("?");
        let text = message_text(&m["content"]);
        println!("[{role}] {text}");
    }
    0
}

/// `clawgate models list`: the configured models.
pub async fn models_list(flag: Option<PathBuf>, conn: ConnArgs, provider: Option<String>) -> u8 {
    let params = match &provider {
        Some(p) => json!({"provider": p}),
        None => json!({}),
    };
    let v = match query(flag, &conn, &["operator.read"], "models.list", params).await {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let models = v["models"].as_array().cloned().unwrap_or_default();
    if models.is_empty() {
        println!("No models configured (models.providers in config.yaml).");
    }
    for m in models {
        let ctx = m["contextWindow"]
            .as_u64()
            .map(|n| format!("  {}k ctx", n / 1000))
            .unwrap_or_default();
        let local = if m["local"] == true { "  local" } else { "" };
        println!(
            "{}/{}{ctx}{local}",
            m["provider"].as_str().unwrap_or("?"),
            m["id"].as_str().unwrap_or("?")
        );
    }
    0
}

/// `clawgate devices list`: pending device pairing requests and paired devices.
pub async fn devices_list(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    let v = match query(
        flag,
        &conn,
        &["operator.pairing"],
        "device.pair.list",
        json!({}),
    )
    .await
    {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let pending = v["pending"].as_array().cloned().unwrap_or_default();
    let paired = v["paired"].as_array().cloned().unwrap_or_default();
    println!("Pending ({}):", pending.len());
    for p in &pending {
        println!(
            "  {}  {} ({}) from {}  scopes: {}",
            p["requestId"].as_str().unwrap_or("?"),
            p["displayName"]
                .as_str()
                .or(p["clientId"].as_str())
                .unwrap_or("?"),
            p["platform"].as_str().unwrap_or("?"),
            p["remoteIp"].as_str().unwrap_or("?"),
            scopes(&p["scopes"])
        );
    }
    if !pending.is_empty() {
        println!("  approve with: clawgate devices approve <requestId>");
    }
    println!("Paired ({}):", paired.len());
    for d in &paired {
        println!(
            "  {}  {} ({})  scopes: {}",
            d["deviceId"].as_str().unwrap_or("?"),
            d["displayName"]
                .as_str()
                .or(d["clientId"].as_str())
                .unwrap_or("?"),
            d["platform"].as_str().unwrap_or("?"),
            scopes(&d["scopes"])
        );
    }
    0
}

fn scopes(v: &Value) -> String {
    let s: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(",")
    }
}

/// `clawgate devices approve|reject <requestId>` and `remove <deviceId>`. Approving asks for
/// admin too: the approver may grant only scopes it holds.
pub async fn devices_action(flag: Option<PathBuf>, conn: ConnArgs, action: &str, id: &str) -> u8 {
    let (method, params, scopes): (&str, Value, &[&str]) = match action {
        "approve" => (
            "device.pair.approve",
            json!({"requestId": id}),
            crate::commands::ALL_SCOPES,
        ),
        "reject" => (
            "device.pair.reject",
            json!({"requestId": id}),
            &["operator.pairing"],
        ),
        _ => (
            "device.pair.remove",
            json!({"deviceId": id}),
            crate::commands::ALL_SCOPES,
        ),
    };
    match one_call(flag, &conn, scopes, method, params, Duration::from_secs(10)).await {
        Ok(v) if conn.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Ok(v) => {
            match action {
                "approve" => println!(
                    "Approved device {} ({}).",
                    v["device"]["deviceId"].as_str().unwrap_or("?"),
                    scopes_of(&v["device"]["scopes"])
                ),
                "reject" => println!("Rejected request {id}."),
                _ => println!(
                    "Removed device {id} ({} connection(s) closed).",
                    v["closedConnections"].as_u64().unwrap_or(0)
                ),
            }
            0
        }
        Err(code) => code,
    }
}

fn scopes_of(v: &Value) -> String {
    format!("scopes {}", scopes(v))
}

/// `clawgate pairing reject <channel> <code>`.
pub async fn pairing_reject(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    channel: &str,
    code: &str,
) -> u8 {
    let params = json!({"channel": channel, "code": code});
    match one_call(
        flag,
        &conn,
        &["operator.pairing"],
        "pairing.reject",
        params,
        Duration::from_secs(10),
    )
    .await
    {
        Ok(v) => {
            println!(
                "Rejected {channel} sender {} (code {}).",
                v["senderId"].as_str().unwrap_or("?"),
                code.trim().to_ascii_uppercase()
            );
            0
        }
        Err(code) => code,
    }
}

/// `clawgate pairing list --approved [channel]`: the senders approved through pairing.
pub async fn pairing_approved(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    channel: Option<String>,
) -> u8 {
    let params = match &channel {
        Some(c) => json!({"channel": c}),
        None => json!({}),
    };
    let v = match query(
        flag,
        &conn,
        &["operator.pairing"],
        "pairing.approved",
        params,
    )
    .await
    {
        Ok(Some(v)) => v,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    let rows = v["approved"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("No approved senders.");
    }
    for r in rows {
        println!(
            "{} sender {} (account {}, approved {})",
            r["channel"].as_str().unwrap_or("?"),
            r["senderId"].as_str().unwrap_or("?"),
            r["accountId"].as_str().unwrap_or("?"),
            age(r["approvedAt"].as_i64().unwrap_or(0))
        );
    }
    0
}

/// `clawgate completions <shell>`: a completion script generated from the CLI definition.
pub fn completions(shell: clap_complete::Shell) -> u8 {
    let mut cmd = <crate::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "clawgate", &mut out);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(&out);
    0
}

/// `clawgate man`: the man page (roff), generated from the CLI definition, subcommands
/// included.
pub fn man() -> u8 {
    let cmd = <crate::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    if let Err(e) = render_man(&cmd, &mut out) {
        eprintln!("error: cannot render the man page: {e}");
        return 1;
    }
    let _ = std::io::stdout().write_all(&out);
    0
}

fn render_man(cmd: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    // Each subcommand with its own options, as a section of the one page.
    let mut stack: Vec<(String, clap::Command)> = cmd
        .get_subcommands()
        .map(|c| (format!("clawgate {}", c.get_name()), c.clone()))
        .collect();
    stack.reverse();
    while let Some((path, sub)) = stack.pop() {
        writeln!(out, ".SH \"{}\"", path.to_uppercase())?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", roff_escape(&about.to_string()))?;
        }
        let usage = sub
            .clone()
            .bin_name(path.clone())
            .render_usage()
            .to_string();
        writeln!(
            out,
            ".PP\n{}",
            roff_escape(usage.trim_start_matches("Usage: "))
        )?;
        for a in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let name = match (a.get_short(), a.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => format!("<{}>", a.get_id()),
            };
            writeln!(out, ".TP\n\\fB{}\\fR", roff_escape(&name))?;
            if let Some(h) = a.get_help() {
                writeln!(out, "{}", roff_escape(&h.to_string()))?;
            }
        }
        let mut children: Vec<(String, clap::Command)> = sub
            .get_subcommands()
            .map(|c| (format!("{path} {}", c.get_name()), c.clone()))
            .collect();
        children.reverse();
        stack.extend(children);
    }
    Ok(())
}

use std::io::Write as _;

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn roff_escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
