//! OpenAI chat-completions wire format: `data: {chunk}` SSE lines ending in `[DONE]`,
//! or one `chat.completion` object.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{arg_pieces, tool_output_tokens, Ctx, Piece};

pub(super) fn error_json(code: u16, message: &str) -> Value {
    let kind = match code {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

fn completion_id(ctx: &Ctx) -> String {
    format!("chatcmpl-fake-{}", ctx.id)
}

fn usage(ctx: &Ctx, output: u64) -> Value {
    let input = ctx.conv.input_tokens;
    json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
}

fn data(v: &Value) -> Piece {
    Piece::Data(Bytes::from(format!("data: {v}\n\n")))
}

fn chunk(ctx: &Ctx, delta: Value, finish: Option<&str>) -> Piece {
    data(&json!({
        "id": completion_id(ctx),
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.conv.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }))
}

/// The finish chunk, the usage chunk when asked for, and `[DONE]`.
fn end(ctx: &Ctx, finish: &str, output: u64) -> Vec<Piece> {
    let mut out = vec![chunk(ctx, json!({}), Some(finish))];
    if ctx.conv.include_usage {
        out.push(data(&json!({
            "id": completion_id(ctx),
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.conv.model,
            "choices": [],
            "usage": usage(ctx, output),
        })));
    }
    out.push(Piece::Data(Bytes::from_static(b"data: [DONE]\n\n")));
    out
}

/// Like the real API, the role arrives first with empty content.
fn role_chunk(ctx: &Ctx) -> Piece {
    chunk(ctx, json!({"role": "assistant", "content": ""}), None)
}

pub(super) fn text_stream(ctx: &Ctx, chunks: &[String], delay_ms: u64) -> Vec<Piece> {
    let mut out = vec![role_chunk(ctx)];
    for (i, text) in chunks.iter().enumerate() {
        if i > 0 && delay_ms > 0 {
            out.push(Piece::Sleep(delay_ms));
        }
        out.push(chunk(ctx, json!({"content": text}), None));
    }
    out.extend(end(ctx, "stop", chunks.len() as u64));
    out
}

pub(super) fn partial_stream(ctx: &Ctx, text: &str) -> Vec<Piece> {
    vec![role_chunk(ctx), chunk(ctx, json!({"content": text}), None)]
}

pub(super) fn tools_stream(ctx: &Ctx, calls: &[(String, String, Value)]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (index, (id, name, args)) in calls.iter().enumerate() {
        let call = json!({"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}});
        // The real API puts the role on the first tool-call chunk, with null content.
        let delta = if index == 0 {
            json!({"role": "assistant", "content": null, "tool_calls": [call]})
        } else {
            json!({"tool_calls": [call]})
        };
        out.push(chunk(ctx, delta, None));
        for piece in arg_pieces(args) {
            let delta = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            out.push(chunk(ctx, delta, None));
        }
    }
    out.extend(end(ctx, "tool_calls", tool_output_tokens(calls)));
    out
}

fn completion(ctx: &Ctx, message: Value, finish: &str, output: u64) -> Value {
    json!({
        "id": completion_id(ctx),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.conv.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(ctx, output),
    })
}

pub(super) fn text_json(ctx: &Ctx, chunks: &[String]) -> Value {
    let message = json!({"role": "assistant", "content": chunks.concat()});
    completion(ctx, message, "stop", chunks.len() as u64)
}

pub(super) fn tools_json(ctx: &Ctx, calls: &[(String, String, Value)]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    let message = json!({"role": "assistant", "content": null, "tool_calls": tool_calls});
    completion(ctx, message, "tool_calls", tool_output_tokens(calls))
}
