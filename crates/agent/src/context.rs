//! What the model sees: the system prompt (with the workspace's AGENTS.md, SOUL.md and
//! USER.md, each size-capped) and the history trimmed to the context budget.

use crate::types::Message;
use std::path::Path;

const BASE_PROMPT: &str =
    "You are a personal assistant running inside clawgate, an OpenClaw-compatible gateway.\n\
Be concise and helpful. Use the tools when they help; file paths are relative to the workspace.";

/// Workspace files injected into the system prompt, in order.
pub const BOOTSTRAP_FILES: &[&str] = &["AGENTS.md", "SOUL.md", "USER.md"];

pub fn system_prompt(
    workspace: &Path,
    max_chars_per_file: usize,
    session_key: &str,
    model: &str,
) -> String {
    finish_prompt(
        &bootstrap_section(workspace, max_chars_per_file),
        session_key,
        model,
    )
}

/// The prompt's workspace-file part (AGENTS.md, SOUL.md, USER.md, each capped).
pub fn bootstrap_section(workspace: &Path, max_chars_per_file: usize) -> String {
    let mut out = String::new();
    for name in BOOTSTRAP_FILES {
        let path = workspace.join(name);
        // Only regular files; a symlink here could point anywhere.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Ok(bytes) = read_capped(&path, max_chars_per_file.saturating_mul(4)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut body: String = text.chars().take(max_chars_per_file).collect();
        if text.chars().count() > max_chars_per_file {
            body.push_str("\n[truncated]");
        }
        out.push_str(&format!("\n\n## {name}\n{body}"));
    }
    out
}

/// The whole system prompt from a [`bootstrap_section`].
pub fn finish_prompt(bootstrap: &str, session_key: &str, model: &str) -> String {
    format!("{BASE_PROMPT}{bootstrap}\n\nRuntime: session={session_key} | model={model}")
}

/// [`bootstrap_section`] off the async workers: the prompt files are read on the blocking
/// pool, so a slow disk (or network filesystem) never stalls other connections.
pub async fn load_bootstrap(workspace: &Path, max_chars_per_file: usize) -> String {
    let ws = workspace.to_path_buf();
    tokio::task::spawn_blocking(move || bootstrap_section(&ws, max_chars_per_file))
        .await
        // The blocking pool is gone (runtime shutting down): the prompt without the files.
        .unwrap_or_default()
}

fn read_capped(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A rough token estimate (4 characters a token) — enough to stay inside a budget.
pub fn estimate_tokens(m: &Message) -> usize {
    let chars = match m {
        Message::User(t) => t.len(),
        Message::Assistant { text, tool_calls } => {
            text.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_string().len())
                    .sum::<usize>()
        }
        Message::ToolResult { content, .. } => content.len(),
    };
    chars / 4 + 4
}

/// Keeps the most recent messages that fit in `budget` tokens, never starting the kept part
/// with a tool result or an assistant message whose tool results were cut off.
pub fn trim_history(history: Vec<Message>, budget: usize) -> Vec<Message> {
    let mut used = 0usize;
    let mut start = history.len();
    for (i, m) in history.iter().enumerate().rev() {
        let t = estimate_tokens(m);
        if used + t > budget {
            break;
        }
        used += t;
        start = i;
    }
    let mut kept: Vec<Message> = history.into_iter().skip(start).collect();
    while matches!(
        kept.first(),
        Some(Message::ToolResult { .. }) | Some(Message::Assistant { .. })
    ) {
        kept.remove(0);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;

    #[test]
    fn trims_oldest_and_never_starts_with_orphans() {
        let h = vec![
            Message::User("a".repeat(400)),
            Message::Assistant {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: "1".into(),
                    name: "read".into(),
                    arguments: serde_json::json!({}),
                }],
            },
            Message::ToolResult {
                tool_call_id: "1".into(),
                name: "read".into(),
                content: "b".repeat(40),
                is_error: false,
            },
            Message::Assistant {
                text: "done".into(),
                tool_calls: vec![],
            },
            Message::User("again".into()),
        ];
        let kept = trim_history(h.clone(), 10_000);
        assert_eq!(kept.len(), 5);
        let kept = trim_history(h, 40);
        assert!(
            matches!(kept.first(), Some(Message::User(t)) if t == "again"),
            "{kept:?}"
        );
    }

    #[test]
    fn system_prompt_includes_capped_workspace_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), "x".repeat(100)).unwrap();
        std::fs::write(dir.path().join("USER.md"), "I like tea").unwrap();
        let p = system_prompt(dir.path(), 10, "agent:main:main", "fake/m");
        assert!(p.contains("## AGENTS.md\nxxxxxxxxxx\n[truncated]"));
        assert!(p.contains("## USER.md\nI like tea"));
        assert!(!p.contains("SOUL.md"));
        assert!(p.contains("session=agent:main:main"));
    }
}
