//! `clawgate agent` (one turn) and `clawgate chat` (interactive), streaming the reply.

use crate::client::{ClientError, Connection};
use crate::commands::{print_client_error, target};
use crate::ConnArgs;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const SCOPES: &[&str] = &["operator.admin", "operator.read", "operator.write"];

fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Prints `chat` deltas of `run_id` as they arrive; returns the frame that ends the wait
/// (`res` with `final_id`, or the run's terminal `chat` event when `final_id` is `None`)
/// and whether the run's error or abort was already printed (so it is not printed twice).
async fn stream_until(
    conn: &mut Connection,
    run_id: &str,
    final_id: Option<&str>,
    print: bool,
) -> Result<(Value, bool), ClientError> {
    let mut printed = String::new();
    let mut reported = false;
    loop {
        let f = conn.next_frame().await?;
        if print
            && f["type"] == "event"
            && f["event"] == "agent"
            && f["payload"]["runId"] == run_id
            && f["payload"]["stream"] == "tool"
        {
            if let Some(line) = tool_trace(&f["payload"]["data"]) {
                // On a line of its own, on stderr: the reply on stdout stays clean for pipes.
                if !printed.is_empty() && !printed.ends_with('\n') {
                    println!();
                    printed.push('\n');
                }
                let _ = std::io::stdout().flush();
                eprintln!("{line}");
            }
        }
        if f["type"] == "event" && f["event"] == "chat" && f["payload"]["runId"] == run_id {
            let p = &f["payload"];
            match p["state"].as_str() {
                Some("delta") if print => {
                    let full = p["message"]["content"][0]["text"].as_str().unwrap_or("");
                    // Print only what is new (deltas may be replaced or coalesced).
                    let new = full
                        .strip_prefix(printed.as_str())
                        .unwrap_or(p["deltaText"].as_str().unwrap_or(""));
                    print!("{new}");
                    let _ = std::io::stdout().flush();
                    printed = full.to_string();
                }
                Some("final") | Some("error") | Some("aborted") if final_id.is_none() => {
                    if print {
                        finish_line(p, &printed);
                    }
                    let failed = print && p["state"] != "final";
                    return Ok((f, failed));
                }
                Some("final") | Some("error") | Some("aborted") if print => {
                    finish_line(p, &printed);
                    reported = p["state"] != "final";
                }
                _ => {}
            }
        }
        if let Some(id) = final_id {
            if f["type"] == "res" && f["id"] == id && f["payload"]["status"] != "accepted" {
                return Ok((f, reported));
            }
        }
    }
}

/// The one-line trace of a tool call (`⚙ read NOTE.txt`), or of its failure.
fn tool_trace(d: &Value) -> Option<String> {
    let name = d["name"].as_str().unwrap_or("tool");
    match d["phase"].as_str()? {
        "start" => {
            let args = &d["args"];
            let detail = ["path", "command", "query", "url", "pattern"]
                .iter()
                .find_map(|k| args[*k].as_str())
                .or_else(|| {
                    args.as_object()
                        .and_then(|m| m.values().find_map(Value::as_str))
                })
                .unwrap_or("");
            let one_line: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = one_line.chars().take(80).collect();
            let more = if one_line.chars().count() > 80 {
                "…"
            } else {
                ""
            };
            Some(format!("⚙ {name} {short}{more}").trim_end().to_string())
        }
        "result" if d["isError"] == true => Some(format!("⚙ {name} failed")),
        _ => None,
    }
}

fn finish_line(p: &Value, printed: &str) {
    match p["state"].as_str() {
        Some("final") => {
            let full = p["message"]["content"][0]["text"].as_str().unwrap_or("");
            if let Some(rest) = full.strip_prefix(printed) {
                print!("{rest}");
            }
            println!();
        }
        Some("error") => {
            if !printed.is_empty() {
                println!();
            }
            eprintln!(
                "error: {}",
                p["errorMessage"].as_str().unwrap_or("the run failed")
            );
        }
        _ => {
            if !printed.is_empty() {
                println!();
            }
            eprintln!("(aborted)");
        }
    }
}

pub async fn agent(
    flag: Option<PathBuf>,
    conn: ConnArgs,
    message: String,
    session: Option<String>,
) -> u8 {
    let t = match target(flag.as_deref(), &conn) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut c = match Connection::open(&t, SCOPES, "cli", Duration::from_secs(10)).await {
        Ok(c) => c,
        Err(e) => return print_client_error(&e, &t),
    };
    let run_id = new_key();
    let mut params = json!({"message": message, "agentId": "main", "deliver": false, "timeout": 600, "idempotencyKey": run_id});
    if let Some(s) = session {
        params["sessionKey"] = json!(s);
    }
    let id = match c.send_req("agent", params).await {
        Ok(id) => id,
        Err(e) => return print_client_error(&e, &t),
    };
    let res = stream_until(&mut c, &run_id, Some(&id), !conn.json).await;
    c.close().await;
    match res {
        Ok((f, _)) if conn.json => {
            println!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
            u8::from(f["ok"] != true || f["payload"]["status"] != "ok")
        }
        Ok((f, _)) if f["ok"] == true && f["payload"]["status"] == "ok" => 0,
        Ok((f, _)) if f["ok"] == true => 1,
        Ok((_, true)) => 1,
        Ok((f, false)) => {
            eprintln!(
                "error: {}",
                f["error"]["message"].as_str().unwrap_or("the run failed")
            );
            1
        }
        Err(e) => print_client_error(&e, &t),
    }
}

pub async fn chat(flag: Option<PathBuf>, conn: ConnArgs, session: Option<String>) -> u8 {
    let t = match target(flag.as_deref(), &conn) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut c = match Connection::open(&t, SCOPES, "cli", Duration::from_secs(10)).await {
        Ok(c) => c,
        Err(e) => return print_client_error(&e, &t),
    };
    let key = session.unwrap_or_else(|| "main".into());
    println!("clawgate chat — session {key}. /reset starts over, /model <provider/model> switches, Ctrl-C stops a reply, Ctrl-D quits.");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        print!("> ");
        let _ = std::io::stdout().flush();
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = tokio::signal::ctrl_c() => { println!(); break; }
        };
        let Ok(Some(line)) = line else {
            println!();
            break;
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/quit" || text == "/exit" {
            break;
        }
        if text == "/reset" {
            match c
                .call(
                    "sessions.reset",
                    json!({"key": key}),
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(_) => println!("(new session)"),
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        if let Some(m) = text.strip_prefix("/model") {
            let m = m.trim();
            let params = if m.is_empty() {
                json!({"key": key, "model": null})
            } else {
                json!({"key": key, "model": m})
            };
            match c
                .call("sessions.patch", params, Duration::from_secs(10))
                .await
            {
                Ok(v) => println!(
                    "(model: {}/{})",
                    v["resolved"]["modelProvider"].as_str().unwrap_or("none"),
                    v["resolved"]["model"].as_str().unwrap_or("none")
                ),
                Err(e) => eprintln!("error: {e}"),
            }
            continue;
        }
        let run_id = new_key();
        let sent = c
            .call("chat.send", json!({"sessionKey": key, "message": text, "deliver": false, "idempotencyKey": run_id}), Duration::from_secs(10))
            .await;
        if let Err(e) = sent {
            eprintln!("error: {e}");
            if matches!(e, ClientError::Unreachable(_)) {
                return 1;
            }
            continue;
        }
        let waited = tokio::select! {
            r = stream_until(&mut c, &run_id, None, true) => r.map(|_| ()),
            _ = tokio::signal::ctrl_c() => Err(ClientError::Timeout("interrupt")),
        };
        if let Err(ClientError::Timeout("interrupt")) = waited {
            let _ = c
                .send_req("chat.abort", json!({"sessionKey": key, "runId": run_id}))
                .await;
            let _ = stream_until(&mut c, &run_id, None, true).await;
        } else if let Err(e) = waited {
            eprintln!("error: {e}");
            return 1;
        }
    }
    c.close().await;
    0
}
