use serde_json::{json, Value};

use super::{input_tokens, post, request, sse_data};
use crate::fake_llm::FakeLlm;

const PATH: &str = "/v1/chat/completions";

fn chunks_of(body: &str) -> (Vec<Value>, bool) {
    let data = sse_data(body);
    let done = data.last().map(String::as_str) == Some("[DONE]");
    let chunks = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    (chunks, done)
}

/// The content deltas in order.
fn contents(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn finish_reasons(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn default_stream_has_expected_chunks_usage_and_done() {
    let fake = FakeLlm::start().await;
    let body = json!({"model": "gpt-test", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi there"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(reply.complete);
    assert!(reply.body.ends_with("data: [DONE]\n\n"), "{}", reply.body);

    let (chunks, done) = chunks_of(&reply.body);
    assert!(done);
    assert_eq!(
        contents(&chunks),
        ["Hello", " from", " the", " fake", " LLM!"]
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-fake-1");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-test");
        assert!(c["created"].as_u64().is_some_and(|t| t > 1_600_000_000));
    }
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    let usage_chunk = chunks.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    let n = input_tokens(&body);
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": n, "completion_tokens": 5, "total_tokens": n + 5})
    );
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let fake = FakeLlm::start().await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    let (chunks, done) = chunks_of(&reply.body);
    assert!(done);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    // Role chunk, five content chunks, finish chunk.
    assert_eq!(chunks.len(), 7);
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn non_stream_returns_completion_object() {
    let fake = FakeLlm::start().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-fake-1");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the fake LLM!"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["prompt_tokens"], input_tokens(&body));
}

#[tokio::test]
async fn tooltest_calls_read_then_answers_with_tool_result() {
    let fake = FakeLlm::start().await;
    let user =
        json!({"role": "user", "content": [{"type": "text", "text": "please TOOLTEST now"}]});
    let first = json!({"model": "m", "stream": true, "messages": [user]});
    let reply = post(fake.addr(), PATH, &first).await;
    assert_eq!(reply.status, 200);
    let (chunks, done) = chunks_of(&reply.body);
    assert!(done);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "call_fake_1");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "read");
    assert_eq!(calls[0]["function"]["arguments"], "");
    // Arguments arrive in several pieces that only parse once reassembled.
    assert!(calls.len() > 2, "arguments were not split: {calls:?}");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"path":"TOOLFILE.txt"}"#);
    assert_eq!(finish_reasons(&chunks), ["tool_calls"]);

    let second = json!({"model": "m", "stream": true, "messages": [
        user,
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_fake_1", "type": "function",
            "function": {"name": "read", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "call_fake_1", "content": "the magic word is 42"}
    ]});
    let reply = post(fake.addr(), PATH, &second).await;
    let (chunks, done) = chunks_of(&reply.body);
    assert!(done);
    assert_eq!(
        contents(&chunks).concat(),
        "The file says: the magic word is 42"
    );
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-fake-2"));
}

#[tokio::test]
async fn error_triggers_use_openai_error_shape() {
    let fake = FakeLlm::start().await;
    let msg = |t: &str| json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": t}]});
    let reply = post(fake.addr(), PATH, &msg("ERRTEST please")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"]["type"], "server_error");
    assert!(reply.json()["error"]["message"].as_str().is_some());

    let reply = post(fake.addr(), PATH, &msg("ERR400TEST please")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn malformed_requests_get_400_without_consuming_queue() {
    let fake = FakeLlm::start().await;
    fake.push(crate::fake_llm::Step::status(503));
    let reply = request(fake.addr(), "POST", PATH, &[], "{not json").await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"]["message"].as_str().is_some());
    let reply = post(fake.addr(), PATH, &json!({"model": "m"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(fake.queued(), 1);
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn models_lists_fake_models() {
    let fake = FakeLlm::start().await;
    let reply = request(fake.addr(), "GET", "/v1/models", &[], "").await;
    assert_eq!(reply.status, 200);
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "fake-model");
    assert_eq!(v["data"][0]["object"], "model");
    let reply = request(fake.addr(), "GET", "/v1/nope", &[], "").await;
    assert_eq!(reply.status, 404);
}
