//! `api: openai-completions`: `POST {baseUrl}/chat/completions` with SSE streaming and tool
//! calls. Serves OpenAI, OpenRouter and OpenAI-compatible local servers.

use super::sse::SseDecoder;
use super::{next_chunk, send_request, short, Emitter, Provider, ProviderError};
use crate::types::{Message, ModelEvent, ModelRequest, ToolCall, Usage};
use serde_json::{json, Value};

pub fn body(req: &ModelRequest) -> Value {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    for m in &req.messages {
        messages.push(match m {
            Message::User(text) => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut v = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
                if !tool_calls.is_empty() {
                    v["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
                        .collect();
                }
                v
            }
            Message::ToolResult { tool_call_id, content, .. } => {
                json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
            }
        });
    }
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_completion_tokens": req.max_tokens,
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        body["tool_choice"] = json!("auto");
    }
    body
}

#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

pub(crate) async fn stream(
    p: &Provider,
    req: &ModelRequest,
    out: &mut Emitter<'_>,
) -> Result<(), ProviderError> {
    let url = format!("{}/chat/completions", p.cfg.base_url);
    let mut rb = p.http().post(&url).json(&body(req));
    if let Some(key) = &p.cfg.api_key {
        rb = rb.bearer_auth(key.expose());
    }
    let first = p.first_token_timeout();
    let mut resp = send_request(p, rb).await?;
    let mut dec = SseDecoder::default();
    let mut calls: Vec<PendingCall> = Vec::new();
    let mut finish: Option<String> = None;
    let mut usage: Option<Usage> = None;
    let mut got_any = false;
    let mut done = false;
    while !done {
        let Some(chunk) = next_chunk(&mut resp, first, !got_any).await? else {
            break;
        };
        for ev in dec.feed(&chunk).map_err(ProviderError::Protocol)? {
            if ev.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let v: Value = serde_json::from_str(&ev.data)
                .map_err(|_| ProviderError::Protocol("a stream chunk is not JSON".into()))?;
            if let Some(err) = v.get("error") {
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("stream error");
                return Err(ProviderError::Http {
                    status: 500,
                    message: short(message),
                    retry_after: None,
                });
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                usage = Some(Usage {
                    input: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
                    output: u
                        .get("completion_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                });
            }
            let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
                continue;
            };
            got_any = true;
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        out.send(ModelEvent::TextDelta(text.to_string())).await?;
                    }
                }
                if let Some(tcs) = delta.get("tool_calls").and_then(Value::as_array) {
                    for tc in tcs {
                        let idx = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                        if idx > 128 {
                            return Err(ProviderError::Protocol("too many tool calls".into()));
                        }
                        while calls.len() <= idx {
                            calls.push(PendingCall::default());
                        }
                        let c = &mut calls[idx];
                        if let Some(id) = tc.get("id").and_then(Value::as_str) {
                            c.id = id.to_string();
                        }
                        if let Some(f) = tc.get("function") {
                            if let Some(n) = f.get("name").and_then(Value::as_str) {
                                c.name.push_str(n);
                            }
                            if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                                c.arguments.push_str(a);
                            }
                        }
                    }
                }
            }
            if let Some(fr) = choice.get("finish_reason").and_then(Value::as_str) {
                finish = Some(fr.to_string());
            }
        }
    }
    if !done && finish.is_none() {
        return Err(ProviderError::Protocol(
            "the stream ended before the answer was complete".into(),
        ));
    }
    for (i, c) in calls.into_iter().enumerate() {
        if c.name.is_empty() {
            continue;
        }
        let arguments = parse_arguments(&c.arguments);
        let id = if c.id.is_empty() {
            format!("call_{i}")
        } else {
            c.id
        };
        out.send(ModelEvent::ToolCall(ToolCall {
            id,
            name: c.name,
            arguments,
        }))
        .await?;
    }
    if let Some(u) = usage {
        out.send(ModelEvent::Usage(u)).await?;
    }
    out.send(ModelEvent::Done {
        stop_reason: finish.unwrap_or_else(|| "stop".into()),
    })
    .await?;
    Ok(())
}

/// Tool arguments arrive as a JSON string; anything but an object becomes `{}` (the tool's
/// own validation then explains what is missing).
pub(crate) fn parse_arguments(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolSpec;

    #[test]
    fn request_body_shape() {
        let req = ModelRequest {
            model: "m".into(),
            system: "sys".into(),
            messages: vec![
                Message::User("hi".into()),
                Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "read".into(),
                        arguments: json!({"path": "a"}),
                    }],
                },
                Message::ToolResult {
                    tool_call_id: "c1".into(),
                    name: "read".into(),
                    content: "x".into(),
                    is_error: false,
                },
            ],
            tools: vec![ToolSpec {
                name: "read".into(),
                description: "d".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 100,
        };
        let b = body(&req);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(
            b["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"path\":\"a\"}"
        );
        assert!(b["messages"][2]["content"].is_null());
        assert_eq!(b["messages"][3]["role"], "tool");
        assert_eq!(b["tools"][0]["function"]["name"], "read");
        assert_eq!(b["stream"], true);
    }

    #[test]
    fn bad_arguments_become_empty_object() {
        assert_eq!(parse_arguments("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_arguments("nope"), json!({}));
        assert_eq!(parse_arguments("[1]"), json!({}));
    }
}
