//! `api: anthropic-messages`: `POST {baseUrl}/v1/messages` with SSE streaming and `tool_use`.

use super::openai::parse_arguments;
use super::sse::SseDecoder;
use super::{next_chunk, send_request, short, Emitter, Provider, ProviderError};
use crate::types::{Message, ModelEvent, ModelRequest, ToolCall, Usage};
use serde_json::{json, Value};

pub const API_VERSION: &str = "2023-06-01";

/// Anthropic wants alternating roles: tool results travel as user content blocks, and
/// adjacent messages of one role are merged.
pub fn body(req: &ModelRequest) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| {
        if let Some(last) = messages.last_mut() {
            if last["role"] == role {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                    return;
                }
            }
        }
        messages.push(json!({"role": role, "content": blocks}));
    };
    for m in &req.messages {
        match m {
            Message::User(text) => push("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}));
                }
                if !blocks.is_empty() {
                    push("assistant", blocks);
                }
            }
            Message::ToolResult {
                tool_call_id,
                content,
                is_error,
                ..
            } => push(
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content, "is_error": is_error}),
                ],
            ),
        }
    }
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "system": req.system,
        "messages": messages,
        "stream": true,
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

struct Block {
    tool: Option<(String, String)>,
    json: String,
}

pub(crate) async fn stream(
    p: &Provider,
    req: &ModelRequest,
    out: &mut Emitter<'_>,
) -> Result<(), ProviderError> {
    let url = format!("{}/v1/messages", p.cfg.base_url);
    let mut rb = p
        .http()
        .post(&url)
        .header("anthropic-version", API_VERSION)
        .json(&body(req));
    if let Some(key) = &p.cfg.api_key {
        rb = rb.header("x-api-key", key.expose());
    }
    let first = p.first_token_timeout();
    let mut resp = send_request(p, rb).await?;
    let mut dec = SseDecoder::default();
    let mut blocks: Vec<Block> = Vec::new();
    let mut usage = Usage::default();
    let mut stop: Option<String> = None;
    let mut got_any = false;
    let mut done = false;
    while !done {
        let Some(chunk) = next_chunk(&mut resp, first, !got_any).await? else {
            break;
        };
        for ev in dec.feed(&chunk).map_err(ProviderError::Protocol)? {
            let v: Value = serde_json::from_str(&ev.data)
                .map_err(|_| ProviderError::Protocol("a stream event is not JSON".into()))?;
            got_any = true;
            match v.get("type").and_then(Value::as_str).unwrap_or("") {
                "message_start" => {
                    usage.input = v
                        .pointer("/message/usage/input_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                }
                "content_block_start" => {
                    let cb = &v["content_block"];
                    let tool = (cb["type"] == "tool_use").then(|| {
                        (
                            cb["id"].as_str().unwrap_or("").to_string(),
                            cb["name"].as_str().unwrap_or("").to_string(),
                        )
                    });
                    if blocks.len() > 256 {
                        return Err(ProviderError::Protocol("too many content blocks".into()));
                    }
                    blocks.push(Block {
                        tool,
                        json: String::new(),
                    });
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    match d["type"].as_str().unwrap_or("") {
                        "text_delta" => {
                            if let Some(t) = d["text"].as_str().filter(|t| !t.is_empty()) {
                                out.send(ModelEvent::TextDelta(t.to_string())).await?;
                            }
                        }
                        "input_json_delta" => {
                            if let Some(b) = blocks.last_mut() {
                                b.json.push_str(d["partial_json"].as_str().unwrap_or(""));
                            }
                        }
                        _ => {}
                    }
                }
                "content_block_stop" => {
                    if let Some(Block {
                        tool: Some((id, name)),
                        json,
                    }) = blocks.last()
                    {
                        let arguments = if json.trim().is_empty() {
                            json!({})
                        } else {
                            parse_arguments(json)
                        };
                        out.send(ModelEvent::ToolCall(ToolCall {
                            id: id.clone(),
                            name: name.clone(),
                            arguments,
                        }))
                        .await?;
                    }
                }
                "message_delta" => {
                    if let Some(s) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                        stop = Some(s.to_string());
                    }
                    if let Some(o) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                        usage.output = o;
                    }
                }
                "message_stop" => {
                    done = true;
                    break;
                }
                "error" => {
                    let message = v
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("stream error");
                    let status = if v.pointer("/error/type").and_then(Value::as_str)
                        == Some("overloaded_error")
                    {
                        529
                    } else {
                        500
                    };
                    return Err(ProviderError::Http {
                        status,
                        message: short(message),
                        retry_after: None,
                    });
                }
                _ => {}
            }
        }
    }
    if !done {
        return Err(ProviderError::Protocol(
            "the stream ended before the answer was complete".into(),
        ));
    }
    out.send(ModelEvent::Usage(usage)).await?;
    let stop_reason = match stop.as_deref() {
        Some("tool_use") => "tool_calls".to_string(),
        Some("end_turn") | None => "stop".to_string(),
        Some("max_tokens") => "length".to_string(),
        Some(other) => other.to_string(),
    };
    out.send(ModelEvent::Done { stop_reason }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_become_user_blocks_and_roles_merge() {
        let req = ModelRequest {
            model: "claude".into(),
            system: "sys".into(),
            messages: vec![
                Message::User("hi".into()),
                Message::Assistant {
                    text: "let me look".into(),
                    tool_calls: vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "read".into(),
                            arguments: json!({"path": "a"}),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "ls".into(),
                            arguments: json!({}),
                        },
                    ],
                },
                Message::ToolResult {
                    tool_call_id: "t1".into(),
                    name: "read".into(),
                    content: "A".into(),
                    is_error: false,
                },
                Message::ToolResult {
                    tool_call_id: "t2".into(),
                    name: "ls".into(),
                    content: "B".into(),
                    is_error: true,
                },
            ],
            tools: vec![],
            max_tokens: 10,
        };
        let b = body(&req);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(msgs[2]["content"][1]["is_error"], true);
        assert_eq!(b["system"], "sys");
        assert!(b.get("tools").is_none());
    }
}
