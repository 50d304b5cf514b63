//! Transcript entries: stored as OpenClaw's message model (what `chat.history` returns), and
//! turned back into provider-neutral messages for the next model turn.

use clawgate_agent::types::{Message, ToolCall, Usage};
use clawgate_store::EntryRow;
use serde_json::{json, Value};

pub fn user_message(text: &str, ts: i64) -> Value {
    json!({"role": "user", "content": text, "timestamp": ts})
}

pub fn assistant_message(
    text: &str,
    tool_calls: &[ToolCall],
    usage: Option<Usage>,
    stop_reason: Option<&str>,
    provider_model: Option<(&str, &str)>,
    ts: i64,
) -> Value {
    let mut content = Vec::new();
    if !text.is_empty() || tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in tool_calls {
        content.push(
            json!({"type": "toolCall", "id": c.id, "name": c.name, "arguments": c.arguments}),
        );
    }
    let mut m = json!({"role": "assistant", "content": content, "timestamp": ts});
    if let Some((provider, model)) = provider_model {
        m["provider"] = json!(provider);
        m["model"] = json!(model);
        m["api"] = json!("openai-completions");
    }
    if let Some(s) = stop_reason {
        m["stopReason"] = json!(s);
    }
    if let Some(u) = usage {
        m["usage"] = usage_json(u);
    }
    m
}

pub fn usage_json(u: Usage) -> Value {
    json!({"input": u.input, "output": u.output, "totalTokens": u.input + u.output, "cacheRead": 0, "cacheWrite": 0, "cost": {"total": 0}})
}

pub fn tool_result_message(call: &ToolCall, content: &str, is_error: bool, ts: i64) -> Value {
    json!({
        "role": "toolResult", "toolCallId": call.id, "toolName": call.name,
        "content": [{"type": "text", "text": content}], "isError": is_error, "timestamp": ts,
    })
}

/// The wire form of a stored entry (`chat.history`, `session.message`).
pub fn wire(e: &EntryRow) -> Value {
    let mut m = e.content.clone();
    let mut meta = json!({"id": e.id, "seq": e.seq});
    if let Some(r) = &e.run_id {
        meta["runId"] = json!(r);
    }
    if let Some(k) = &e.idempotency_key {
        meta["idempotencyKey"] = json!(k);
        m["idempotencyKey"] = json!(k);
    }
    m["__openclaw"] = meta;
    m
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// A stored entry as a model message; entries of other roles are skipped.
pub fn to_message(e: &EntryRow) -> Option<Message> {
    let c = &e.content;
    match c["role"].as_str()? {
        "user" => Some(Message::User(text_of(&c["content"]))),
        "assistant" => {
            let tool_calls = c["content"]
                .as_array()
                .map(|parts| {
                    parts
                        .iter()
                        .filter(|p| p["type"] == "toolCall")
                        .map(|p| ToolCall {
                            id: p["id"].as_str().unwrap_or("").to_string(),
                            name: p["name"].as_str().unwrap_or("").to_string(),
                            arguments: p["arguments"].clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Message::Assistant {
                text: text_of(&c["content"]),
                tool_calls,
            })
        }
        "toolResult" => Some(Message::ToolResult {
            tool_call_id: c["toolCallId"].as_str().unwrap_or("").to_string(),
            name: c["toolName"].as_str().unwrap_or("").to_string(),
            content: text_of(&c["content"]),
            is_error: c["isError"].as_bool().unwrap_or(false),
        }),
        _ => None,
    }
}

/// Drops tool calls whose results never made it into the transcript (an aborted run), so the
/// provider does not reject the history.
pub fn repair(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    let mut i = 0;
    while i < messages.len() {
        match &messages[i] {
            Message::Assistant { text, tool_calls } if !tool_calls.is_empty() => {
                let results: Vec<&Message> = messages[i + 1..]
                    .iter()
                    .take_while(|m| matches!(m, Message::ToolResult { .. }))
                    .collect();
                let answered = tool_calls.iter().all(|c| {
                    results
                        .iter()
                        .any(|r| matches!(r, Message::ToolResult { tool_call_id, .. } if *tool_call_id == c.id))
                });
                if answered {
                    out.push(messages[i].clone());
                    for r in &results {
                        out.push((*r).clone());
                    }
                } else if !text.is_empty() {
                    out.push(Message::Assistant {
                        text: text.clone(),
                        tool_calls: vec![],
                    });
                }
                i += 1 + results.len();
            }
            Message::ToolResult { .. } => i += 1,
            m => {
                out.push(m.clone());
                i += 1;
            }
        }
    }
    out
}
