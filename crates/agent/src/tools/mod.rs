//! Tools the model may call. Each has a JSON schema, validates its arguments, and caps its
//! output. File tools are confined to the workspace; `web_fetch` refuses private addresses;
//! `exec` is off unless allowlisted.

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
