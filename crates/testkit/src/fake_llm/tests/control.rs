use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{exchange, post, raw_request, request, sse_data, sse_events};
use crate::fake_llm::{FakeLlm, Step};

const OPENAI: &str = "/v1/chat/completions";
const ANTHROPIC: &str = "/v1/messages";

fn openai_body(text: &str) -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": text}]})
}

fn anthropic_body(text: &str) -> Value {
    json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// Concatenated content deltas of an OpenAI stream.
fn openai_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn pushed_429_carries_retry_after() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Status {
        code: 429,
        retry_after_secs: Some(2),
        body: None,
    });
    let reply = post(fake.addr(), OPENAI, &openai_body("hi")).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert!(reply.json()["error"]["message"].as_str().is_some());

    fake.push(Step::Status {
        code: 429,
        retry_after_secs: Some(7),
        body: None,
    });
    let reply = post(fake.addr(), ANTHROPIC, &anthropic_body("hi")).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.json()["error"]["type"], "rate_limit_error");

    fake.push(Step::Status {
        code: 400,
        retry_after_secs: None,
        body: Some("plain words".into()),
    });
    let reply = post(fake.addr(), OPENAI, &openai_body("hi")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!(reply.body, "plain words");
}

#[tokio::test]
async fn queue_is_consumed_in_order_before_triggers() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Text {
        chunks: vec!["one".into(), " two".into()],
        delay_ms: 0,
    });
    fake.push(Step::status(503));
    fake.push(Step::ToolCalls(vec![(
        "toolu_custom".into(),
        "write".into(),
        json!({"x": 1}),
    )]));
    assert_eq!(fake.queued(), 3);

    // Every request says TOOLTEST, yet the queue wins until it is empty.
    let r1 = post(fake.addr(), OPENAI, &openai_body("TOOLTEST")).await;
    assert_eq!(openai_text(&r1.body), "one two");
    let r2 = post(fake.addr(), ANTHROPIC, &anthropic_body("TOOLTEST")).await;
    assert_eq!(r2.status, 503);
    assert_eq!(r2.json()["type"], "error");
    let r3 = post(fake.addr(), ANTHROPIC, &anthropic_body("TOOLTEST")).await;
    let events = sse_events(&r3.body);
    assert_eq!(events[1].1["content_block"]["id"], "toolu_custom");
    assert_eq!(events[1].1["content_block"]["name"], "write");
    assert_eq!(fake.queued(), 0);
    let r4 = post(fake.addr(), ANTHROPIC, &anthropic_body("TOOLTEST")).await;
    let events = sse_events(&r4.body);
    assert_eq!(events[1].1["content_block"]["id"], "toolu_fake_1");
    assert_eq!(events[1].1["content_block"]["name"], "read");
}

#[tokio::test]
async fn requests_are_recorded_with_bodies_and_headers() {
    let fake = FakeLlm::start().await;
    let a = openai_body("first");
    let b = anthropic_body("second");
    let auth = [("Authorization", "Bearer sk-fake-123")];
    request(fake.addr(), "POST", OPENAI, &auth, &a.to_string()).await;
    let key = [
        ("X-Api-Key", "ak-fake-456"),
        ("anthropic-version", "2023-06-01"),
    ];
    request(fake.addr(), "POST", ANTHROPIC, &key, &b.to_string()).await;
    request(fake.addr(), "POST", OPENAI, &[], "not json").await;

    assert!(fake.wait_for_requests(3, Duration::from_secs(2)).await);
    assert!(!fake.wait_for_requests(4, Duration::from_millis(50)).await);
    assert_eq!(fake.request_count(), 3);
    let reqs = fake.requests();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, OPENAI);
    assert_eq!(reqs[0].body, a);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-fake-123"));
    assert!(reqs[0].headers.iter().any(|(k, _)| k == "content-type"));
    assert_eq!(reqs[1].path, ANTHROPIC);
    assert_eq!(reqs[1].body, b);
    assert_eq!(reqs[1].header("x-api-key"), Some("ak-fake-456"));
    assert_eq!(reqs[1].header("Anthropic-Version"), Some("2023-06-01"));
    assert_eq!(reqs[2].body, Value::Null);
    assert!(reqs
        .iter()
        .flat_map(|r| &r.headers)
        .all(|(k, _)| *k == k.to_ascii_lowercase()));
}

#[tokio::test]
async fn hang_does_not_block_a_concurrent_request() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Hang { ms: 1500 });
    let addr = fake.addr();
    let hung = tokio::spawn(async move {
        let t = Instant::now();
        let raw = raw_request("POST", OPENAI, &[], &openai_body("a").to_string());
        let bytes = exchange(addr, &raw).await;
        (t.elapsed(), bytes)
    });
    assert!(fake.wait_for_requests(1, Duration::from_secs(2)).await);

    let t = Instant::now();
    let reply = post(addr, OPENAI, &openai_body("b")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(openai_text(&reply.body), "Hello from the fake LLM!");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert!(!hung.is_finished());

    let (elapsed, bytes) = hung.await.expect("hung task");
    assert!(bytes.is_empty(), "hang sent {bytes:?}");
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
}

#[tokio::test]
async fn cut_mid_stream_closes_without_end_marker() {
    let fake = FakeLlm::start().await;
    fake.push(Step::CutMidStream);
    fake.push(Step::CutMidStream);
    let reply = post(fake.addr(), OPENAI, &openai_body("x")).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.complete);
    assert_eq!(openai_text(&reply.body), "Hello");
    assert!(!reply.body.contains("[DONE]"));

    let reply = post(fake.addr(), ANTHROPIC, &anthropic_body("x")).await;
    assert!(!reply.complete);
    let events = sse_events(&reply.body);
    assert_eq!(
        events.last().map(|(_, d)| d["delta"]["text"].clone()),
        Some(json!("Hello"))
    );
    assert!(events.iter().all(|(e, _)| e != "message_stop"));
}

#[tokio::test]
async fn slow_headers_then_stall_sends_one_chunk_then_waits() {
    let fake = FakeLlm::start().await;
    fake.push(Step::SlowHeadersThenStall { ms: 800 });
    let mut s = TcpStream::connect(fake.addr()).await.expect("connect");
    let t = Instant::now();
    let raw = raw_request("POST", OPENAI, &[], &openai_body("x").to_string());
    s.write_all(raw.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\"Hello\"") {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut tmp))
            .await
            .expect("first chunk in time")
            .expect("read");
        assert!(n > 0, "closed early");
        buf.extend_from_slice(&tmp[..n]);
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    s.read_to_end(&mut buf).await.expect("read rest");
    assert!(
        t.elapsed() >= Duration::from_millis(750),
        "{:?}",
        t.elapsed()
    );
    assert!(!String::from_utf8_lossy(&buf).contains("[DONE]"));
}

#[tokio::test]
async fn garbage_and_delays() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Garbage("data: {not json}\n\n".into()));
    let reply = post(fake.addr(), ANTHROPIC, &anthropic_body("x")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.body, "data: {not json}\n\n");

    fake.push(Step::Text {
        chunks: vec!["a".into(), "b".into(), "c".into()],
        delay_ms: 150,
    });
    let t = Instant::now();
    let reply = post(fake.addr(), OPENAI, &openai_body("x")).await;
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(openai_text(&reply.body), "abc");
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let fake = FakeLlm::start().await;
    let raw = format!(
        "POST {OPENAI} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{{",
        11 * 1024 * 1024
    );
    let reply = super::parse_reply(&exchange(fake.addr(), &raw).await);
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"]["message"].as_str().is_some());
    assert_eq!(fake.requests()[0].body, Value::Null);
}

#[tokio::test]
async fn drop_stops_the_server() {
    let fake = FakeLlm::start().await;
    let addr = fake.addr();
    assert_eq!(
        fake.openai_base_url(),
        format!("http://127.0.0.1:{}/v1", addr.port())
    );
    assert_eq!(
        fake.anthropic_base_url(),
        format!("http://127.0.0.1:{}", addr.port())
    );
    drop(fake);
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening after drop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn start_blocking_serves_from_a_sync_test() {
    let fake = FakeLlm::start_blocking();
    let addr = fake.addr();
    // A separate client runtime: the server must live on its own background runtime.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let reply = client.block_on(post(addr, OPENAI, &openai_body("hello")));
    assert_eq!(reply.status, 200);
    assert_eq!(openai_text(&reply.body), "Hello from the fake LLM!");
    // Still serving between client calls.
    std::thread::sleep(Duration::from_millis(50));
    let reply = client.block_on(post(addr, ANTHROPIC, &anthropic_body("hello")));
    assert_eq!(reply.status, 200);
    assert_eq!(fake.request_count(), 2);
    drop(fake);
    let refused = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(refused, "still listening after drop");
}
