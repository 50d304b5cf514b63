//! The agent loop: model turn → tool calls → tool results → next turn, until the model
//! answers without tools, the iteration cap is hit, or the provider gives up.
//! Cancellation is by dropping the future (the caller aborts the task).

use crate::providers::{backoff, Provider, ProviderError};
use crate::tools::{Tool, ToolContext, ToolOutput};
use crate::types::{Message, ModelEvent, ModelRequest, ToolCall, Usage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A model to try: the provider and the model id at it.
#[derive(Clone)]
pub struct ModelChoice {
    pub provider: Arc<Provider>,
    pub model: String,
    pub max_tokens: u32,
}

pub struct RunSpec {
    /// Primary first, then fallbacks.
    pub models: Vec<ModelChoice>,
    pub system: String,
    /// Earlier conversation, already trimmed to the context budget.
    pub history: Vec<Message>,
    pub user_text: String,
    pub tools: Arc<Vec<Box<dyn Tool>>>,
    pub tool_ctx: ToolContext,
    pub max_iterations: u32,
}

/// What the loop reports while it runs, in order.
#[derive(Debug, Clone)]
pub enum RunEvent {
    ModelSelected {
        provider: String,
        model: String,
    },
    Retrying {
        attempt: u32,
        max_attempts: u32,
        delay: Duration,
        message: String,
    },
    /// New assistant text; `text` is the whole text of the current assistant message so far.
    TextDelta {
        delta: String,
        text: String,
    },
    /// A finished assistant message (to store in the transcript).
    AssistantMessage {
        text: String,
        tool_calls: Vec<ToolCall>,
        usage: Usage,
        stop_reason: String,
        provider: String,
        model: String,
    },
    ToolStart {
        call: ToolCall,
    },
    /// A finished tool call (to store in the transcript).
    ToolResult {
        call: ToolCall,
        output: ToolOutput,
    },
}

/// Why a run failed, for `chat` error events (`errorDetail`).
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub http_status: Option<u16>,
    /// `rate_limit`, `timeout`, `format`, `auth`, `server`, `network`, `limit`.
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub enum RunEnd {
    /// `llm` is the time spent waiting on the provider (for overhead measurements).
    Completed {
        text: String,
        stop_reason: String,
        usage: Usage,
        llm: Duration,
    },
    Failed(Failure),
}

fn kind_of(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Http { status: 429, .. } => "rate_limit",
        ProviderError::Http {
            status: 400 | 404 | 422,
            ..
        } => "format",
        ProviderError::Http {
            status: 401 | 403, ..
        } => "auth",
        ProviderError::Http { .. } => "server",
        ProviderError::Timeout(_) => "timeout",
        ProviderError::Network(_) => "network",
        ProviderError::Protocol(_) => "format",
    }
}

/// One model turn with retries (and fallbacks once the retries of a model are used up).
async fn model_turn(
    spec: &RunSpec,
    which: &mut usize,
    messages: &[Message],
    events: &mpsc::Sender<RunEvent>,
) -> Result<(String, Vec<ToolCall>, Usage, String, String, String), Failure> {
    loop {
        let choice = &spec.models[*which];
        let p = &choice.provider;
        let req = ModelRequest {
            model: choice.model.clone(),
            system: spec.system.clone(),
            messages: messages.to_vec(),
            tools: spec.tools.iter().map(|t| t.spec()).collect(),
            max_tokens: choice.max_tokens,
        };
        let max_attempts = p.cfg.max_retries + 1;
        let mut attempt = 0;
        let last_err = loop {
            attempt += 1;
            let (tx, mut rx) = mpsc::channel::<ModelEvent>(256);
            let mut text = String::new();
            let mut calls = Vec::new();
            let mut usage = Usage::default();
            let mut stop = String::from("stop");
            // The producer owns the sender, so the consumer sees the end when it finishes.
            let producer = async {
                let tx = tx;
                p.stream_once(&req, &tx).await
            };
            let consumer = async {
                while let Some(ev) = rx.recv().await {
                    match ev {
                        ModelEvent::TextDelta(d) => {
                            text.push_str(&d);
                            let _ = events
                                .send(RunEvent::TextDelta {
                                    delta: d,
                                    text: text.clone(),
                                })
                                .await;
                        }
                        ModelEvent::ToolCall(c) => calls.push(c),
                        ModelEvent::Usage(u) => usage = u,
                        ModelEvent::Done { stop_reason } => stop = stop_reason,
                    }
                }
            };
            let (r, ()) = tokio::join!(producer, consumer);
            let result = Some(r);
            match result {
                Some(Ok(())) => {
                    return Ok((
                        text,
                        calls,
                        usage,
                        stop,
                        p.cfg.id.clone(),
                        choice.model.clone(),
                    ));
                }
                Some(Err((e, sent))) => {
                    if sent == 0 && e.retryable() && attempt < max_attempts {
                        let delay = backoff(
                            attempt - 1,
                            match &e {
                                ProviderError::Http { retry_after, .. } => *retry_after,
                                _ => None,
                            },
                        );
                        let message = format!(
                            "{} Retrying in {}s ({attempt}/{max_attempts})",
                            e.describe(&p.cfg.id, &choice.model),
                            delay.as_secs_f64().ceil() as u64
                        );
                        let _ = events
                            .send(RunEvent::Retrying {
                                attempt,
                                max_attempts,
                                delay,
                                message,
                            })
                            .await;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    break (e, sent);
                }
                None => break (ProviderError::Network("provider stream stopped".into()), 0),
            }
        };
        let (e, sent) = last_err;
        // Fall back to the next model only when nothing reached the user yet.
        if sent == 0 && e.retryable() && *which + 1 < spec.models.len() {
            *which += 1;
            let next = &spec.models[*which];
            let _ = events
                .send(RunEvent::ModelSelected {
                    provider: next.provider.cfg.id.clone(),
                    model: next.model.clone(),
                })
                .await;
            continue;
        }
        return Err(Failure {
            message: e.describe(&p.cfg.id, &choice.model),
            provider: Some(p.cfg.id.clone()),
            model: Some(choice.model.clone()),
            http_status: e.http_status(),
            kind: kind_of(&e),
        });
    }
}

pub async fn run(spec: RunSpec, events: mpsc::Sender<RunEvent>) -> RunEnd {
    let Some(first) = spec.models.first() else {
        return RunEnd::Failed(Failure {
            message: "no model configured".into(),
            provider: None,
            model: None,
            http_status: None,
            kind: "auth",
        });
    };
    let _ = events
        .send(RunEvent::ModelSelected {
            provider: first.provider.cfg.id.clone(),
            model: first.model.clone(),
        })
        .await;
    let mut which = 0usize;
    let mut messages = spec.history.clone();
    messages.push(Message::User(spec.user_text.clone()));
    let mut total = Usage::default();
    let mut iterations = 0u32;
    let mut llm = Duration::ZERO;
    loop {
        let turn_started = std::time::Instant::now();
        let turn = model_turn(&spec, &mut which, &messages, &events).await;
        llm += turn_started.elapsed();
        let (text, calls, usage, stop, provider, model) = match turn {
            Ok(t) => t,
            Err(f) => return RunEnd::Failed(f),
        };
        total.input += usage.input;
        total.output += usage.output;
        let _ = events
            .send(RunEvent::AssistantMessage {
                text: text.clone(),
                tool_calls: calls.clone(),
                usage,
                stop_reason: stop.clone(),
                provider: provider.clone(),
                model: model.clone(),
            })
            .await;
        messages.push(Message::Assistant {
            text: text.clone(),
            tool_calls: calls.clone(),
        });
        if calls.is_empty() {
            return RunEnd::Completed {
                text,
                stop_reason: stop,
                usage: total,
                llm,
            };
        }
        iterations += 1;
        for call in calls {
            let _ = events
                .send(RunEvent::ToolStart { call: call.clone() })
                .await;
            let output = match spec.tools.iter().find(|t| t.spec().name == call.name) {
                Some(tool) => tool.run(call.arguments.clone(), &spec.tool_ctx).await,
                None => ToolOutput::error(format!("unknown tool: {}", call.name)),
            };
            messages.push(Message::ToolResult {
                tool_call_id: call.id.clone(),
                name: call.name.clone(),
                content: output.content.clone(),
                is_error: output.is_error,
            });
            let _ = events.send(RunEvent::ToolResult { call, output }).await;
        }
        if iterations >= spec.max_iterations {
            return RunEnd::Failed(Failure {
                message: format!(
                    "stopped after {} tool iterations (agents.defaults.maxToolIterations)",
                    spec.max_iterations
                ),
                provider: Some(provider),
                model: Some(model),
                http_status: None,
                kind: "limit",
            });
        }
    }
}
