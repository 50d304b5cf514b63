//! Anthropic Messages wire format: `event: <type>` + `data: {json}` SSE frames from
//! `message_start` to `message_stop`, or one `message` object.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{arg_pieces, tool_output_tokens, Ctx, Piece};

pub(super) fn error_json(code: u16, message: &str) -> Value {
    let kind = match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn message_id(ctx: &Ctx) -> String {
    format!("msg_fake_{}", ctx.id)
}

/// An event frame; the `event:` name always equals the payload's `type`.
fn event(v: Value) -> Piece {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("unknown");
    Piece::Data(Bytes::from(format!("event: {kind}\ndata: {v}\n\n")))
}

fn message_start(ctx: &Ctx) -> Piece {
    event(json!({"type": "message_start", "message": {
        "id": message_id(ctx),
        "type": "message",
        "role": "assistant",
        "model": ctx.conv.model,
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
        "usage": {"input_tokens": ctx.conv.input_tokens, "output_tokens": 0},
    }}))
}

fn block_start(index: usize, block: Value) -> Piece {
    event(json!({"type": "content_block_start", "index": index, "content_block": block}))
}

fn block_delta(index: usize, delta: Value) -> Piece {
    event(json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

fn block_stop(index: usize) -> Piece {
    event(json!({"type": "content_block_stop", "index": index}))
}

fn end(stop_reason: &str, output: u64) -> [Piece; 2] {
    [
        event(json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output}})),
        event(json!({"type": "message_stop"})),
    ]
}

fn text_delta(text: &str) -> Value {
    json!({"type": "text_delta", "text": text})
}

pub(super) fn text_stream(ctx: &Ctx, chunks: &[String], delay_ms: u64) -> Vec<Piece> {
    let mut out = vec![
        message_start(ctx),
        block_start(0, json!({"type": "text", "text": ""})),
    ];
    for (i, text) in chunks.iter().enumerate() {
        if i > 0 && delay_ms > 0 {
            out.push(Piece::Sleep(delay_ms));
        }
        out.push(block_delta(0, text_delta(text)));
    }
    out.push(block_stop(0));
    out.extend(end("end_turn", chunks.len() as u64));
    out
}

pub(super) fn partial_stream(ctx: &Ctx, text: &str) -> Vec<Piece> {
    vec![
        message_start(ctx),
        block_start(0, json!({"type": "text", "text": ""})),
        block_delta(0, text_delta(text)),
    ]
}

pub(super) fn tools_stream(ctx: &Ctx, calls: &[(String, String, Value)]) -> Vec<Piece> {
    let mut out = vec![message_start(ctx)];
    for (index, (id, name, args)) in calls.iter().enumerate() {
        out.push(block_start(
            index,
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        ));
        for piece in arg_pieces(args) {
            out.push(block_delta(
                index,
                json!({"type": "input_json_delta", "partial_json": piece}),
            ));
        }
        out.push(block_stop(index));
    }
    out.extend(end("tool_use", tool_output_tokens(calls)));
    out
}

fn message(ctx: &Ctx, content: Vec<Value>, stop_reason: &str, output: u64) -> Value {
    json!({
        "id": message_id(ctx),
        "type": "message",
        "role": "assistant",
        "model": ctx.conv.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": ctx.conv.input_tokens, "output_tokens": output},
    })
}

pub(super) fn text_json(ctx: &Ctx, chunks: &[String]) -> Value {
    let block = json!({"type": "text", "text": chunks.concat()});
    message(ctx, vec![block], "end_turn", chunks.len() as u64)
}

pub(super) fn tools_json(ctx: &Ctx, calls: &[(String, String, Value)]) -> Value {
    let blocks = calls
        .iter()
        .map(|(id, name, args)| json!({"type": "tool_use", "id": id, "name": name, "input": args}))
        .collect();
    message(ctx, blocks, "tool_use", tool_output_tokens(calls))
}
