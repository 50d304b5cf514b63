use serde_json::{json, Value};

use super::{input_tokens, post, sse_events};
use crate::fake_llm::FakeLlm;

const PATH: &str = "/v1/messages";

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

/// Concatenated `field` of all deltas of one type.
fn deltas(events: &[(String, Value)], kind: &str, field: &str) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == kind)
        .filter_map(|(_, d)| d["delta"][field].as_str())
        .collect()
}

#[tokio::test]
async fn default_stream_has_full_event_sequence() {
    let fake = FakeLlm::start().await;
    let body = json!({"model": "claude-test", "max_tokens": 100, "stream": true,
        "system": "be nice", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert!(reply.complete);

    let events = sse_events(&reply.body);
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(["content_block_delta"; 5]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    let start = &events[0].1["message"];
    assert_eq!(start["id"], "msg_fake_1");
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude-test");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], input_tokens(&body));
    assert_eq!(start["usage"]["output_tokens"], 0);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let texts: Vec<&str> = events[2..7]
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["Hello", " from", " the", " fake", " LLM!"]);
    assert_eq!(events[8].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[8].1["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn tooltest_calls_read_then_answers_with_tool_result() {
    let fake = FakeLlm::start().await;
    let user = json!({"role": "user", "content": [{"type": "text", "text": "TOOLTEST please"}]});
    let first = json!({"model": "c", "max_tokens": 100, "stream": true, "messages": [user]});
    let reply = post(fake.addr(), PATH, &first).await;
    assert_eq!(reply.status, 200);
    let events = sse_events(&reply.body);
    let start = &events[1].1;
    assert_eq!(start["type"], "content_block_start");
    assert_eq!(
        start["content_block"],
        json!({"type": "tool_use", "id": "toolu_fake_1", "name": "read", "input": {}})
    );
    let pieces = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .count();
    assert!(pieces > 1, "arguments were not split");
    let args = deltas(&events, "input_json_delta", "partial_json");
    let parsed: Value = serde_json::from_str(&args).expect("reassembled JSON");
    assert_eq!(parsed, json!({"path": "TOOLFILE.txt"}));
    let delta = events.iter().find(|(e, _)| e == "message_delta");
    assert_eq!(
        delta.map(|(_, d)| d["delta"]["stop_reason"].clone()),
        Some(json!("tool_use"))
    );
    assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("message_stop"));

    // The follow-up's last user message holds only the tool_result block.
    let second = json!({"model": "c", "max_tokens": 100, "stream": true, "messages": [
        user,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_fake_1", "name": "read", "input": parsed}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_fake_1",
            "content": [{"type": "text", "text": "contents: 7 apples"}]}]}
    ]});
    let reply = post(fake.addr(), PATH, &second).await;
    let events = sse_events(&reply.body);
    assert_eq!(
        deltas(&events, "text_delta", "text"),
        "The file says: contents: 7 apples"
    );
    assert_eq!(events[0].1["message"]["id"], "msg_fake_2");
    let delta = events.iter().find(|(e, _)| e == "message_delta");
    assert_eq!(
        delta.map(|(_, d)| d["delta"]["stop_reason"].clone()),
        Some(json!("end_turn"))
    );
}

#[tokio::test]
async fn non_stream_returns_message_object() {
    let fake = FakeLlm::start().await;
    let body = json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "TOOLTEST"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_fake_1");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "toolu_fake_1", "name": "read",
            "input": {"path": "TOOLFILE.txt"}}])
    );
    assert_eq!(v["usage"]["input_tokens"], input_tokens(&body));

    let body =
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "yo"}]});
    let v = post(fake.addr(), PATH, &body).await.json();
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from the fake LLM!"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn errors_use_anthropic_error_shape() {
    let fake = FakeLlm::start().await;
    let body =
        json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "ERRTEST"}]});
    let reply = post(fake.addr(), PATH, &body).await;
    assert_eq!(reply.status, 500);
    let v = reply.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
    assert!(v["error"]["message"].as_str().is_some());

    let reply = post(fake.addr(), PATH, &json!({"messages": []})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}
