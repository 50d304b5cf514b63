//! Tools the model may call. Each has a JSON schema, validates its arguments, and caps its
//! output. File tools are confined to the workspace; `web_fetch` refuses private addresses;
//! `exec` is off unless allowlisted, and its children run in a Landlock sandbox.

use crate::types::ToolSpec;
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// What every tool run gets.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The agent's workspace: the only directory file tools may touch.
    pub workspace: PathBuf,
    /// The gateway's state directory: never reachable, even if it lies inside the workspace.
    pub state_dir: PathBuf,
    /// The active config file: never reachable either, wherever it lies.
    pub config_file: Option<PathBuf>,
    /// Largest output handed back to the model (bytes); longer output is cut with a note.
    pub max_output_bytes: usize,
}

/// The result of one tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        ToolOutput {
            content: content.into(),
            is_error: false,
        }
    }

    pub fn error(content: impl Into<String>) -> Self {
        ToolOutput {
            content: content.into(),
            is_error: true,
        }
    }
}

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutput> + Send + 'a>>;

pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// Runs the tool. Argument errors are returned as `ToolOutput::error`, never panics.
    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a>;
}

mod exec;
mod files;
mod fs_guard;
mod net_guard;
mod sandbox;
mod web_fetch;

#[cfg(test)]
mod tests_exec;
#[cfg(test)]
mod tests_files;
#[cfg(test)]
mod tests_web;

pub use exec::Exec;
pub use files::{Edit, Ls, Read, Write};
pub use net_guard::forbidden_reason;
pub use sandbox::{check_exec_sandbox, exec_enabled, landlock_abi};
pub use web_fetch::WebFetch;

/// Every tool, in the order offered to the model, minus those `allow`/`deny` rule out.
/// A non-empty `allow` keeps only the names it lists; `deny` always wins. `exec` is offered
/// only when `tools.exec.mode` is `allowlist`: with `deny` every call would be refused, so
/// the model is not told it exists.
pub fn build_tools(cfg: &clawgate_config::ToolsConfig) -> Vec<Box<dyn Tool>> {
    let mut all: Vec<Box<dyn Tool>> = vec![
        Box::new(Read),
        Box::new(Write),
        Box::new(Edit),
        Box::new(Ls),
        Box::new(WebFetch::new(cfg.web_fetch.clone())),
    ];
    if cfg.exec.mode == clawgate_config::ExecMode::Allowlist {
        all.push(Box::new(Exec::new(cfg.exec.clone())));
    }
    all.into_iter()
        .filter(|tool| {
            let name = tool.spec().name;
            (cfg.allow.is_empty() || cfg.allow.contains(&name)) && !cfg.deny.contains(&name)
        })
        .collect()
}

/// The tool called `name`, if it is in `tools`.
pub fn find<'a>(tools: &'a [Box<dyn Tool>], name: &str) -> Option<&'a dyn Tool> {
    tools
        .iter()
        .find(|tool| tool.spec().name == name)
        .map(|tool| tool.as_ref())
}

/// Cuts `text` to at most `max` bytes on a char boundary, with a note saying so.
pub fn truncate_output(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!("\n[output truncated at {max} bytes]"));
    text
}

/// Parses a tool's arguments strictly (unknown keys and wrong types are errors).
pub(crate) fn parse_args<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, ToolOutput> {
    if !args.is_object() {
        return Err(ToolOutput::error(
            "invalid arguments: expected a JSON object",
        ));
    }
    serde_json::from_value(args).map_err(|e| ToolOutput::error(format!("invalid arguments: {e}")))
}

/// Applies the output cap of `ctx` to a finished result.
pub(crate) fn capped(out: ToolOutput, ctx: &ToolContext) -> ToolOutput {
    ToolOutput {
        content: truncate_output(out.content, ctx.max_output_bytes),
        is_error: out.is_error,
    }
}
