//! The agent runtime end to end: the real gateway binary, a fake OpenAI-compatible (and
//! Anthropic) server on loopback, and a raw protocol client.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{connect_cli, RawWs};
use clawgate_testkit::{FakeLlm, GatewayProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const KEY: &str = "sk-fake-CANARY-4711";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn config(fake: &FakeLlm, api: &str, extra: &str) -> String {
    let base = if api == "anthropic-messages" {
        fake.anthropic_base_url()
    } else {
        fake.openai_base_url()
    };
    format!(
        "models:\n  providers:\n    fake:\n      api: {api}\n      baseUrl: {base}\n      apiKey: {KEY}\n      models: [fake-model]\n      maxRetries: 2\n\
agents:\n  defaults:\n    model: fake/fake-model\n{extra}"
    )
}

fn start(fake: &FakeLlm, extra: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(fake, "openai-completions", extra)),
            ..Options::default()
        },
    )
}

async fn client(gw: &GatewayProcess) -> RawWs {
    connect_cli(
        gw.addr,
        &gw.token(),
        &["operator.admin", "operator.read", "operator.write"],
    )
    .await
    .0
}

/// Sends chat.send and collects every `chat` event of the run up to its terminal one.
async fn chat(ws: &mut RawWs, session: &str, message: &str, run: &str) -> (Value, Vec<Value>) {
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": message, "idempotencyKey": run}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let mut events = Vec::new();
    loop {
        let ev = ws
            .recv_until(T, |v| {
                v["type"] == "event" && (v["event"] == "chat" || v["event"] == "agent")
            })
            .await;
        if ev["payload"]["runId"] != run {
            continue;
        }
        let terminal = ev["event"] == "chat"
            && matches!(
                ev["payload"]["state"].as_str(),
                Some("final" | "error" | "aborted")
            );
        events.push(ev);
        if terminal {
            return (res, events);
        }
    }
}

fn chat_states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "chat")
        .map(|e| e["payload"]["state"].as_str().unwrap_or("").to_string())
        .collect()
}

fn final_text(events: &[Value]) -> String {
    let last = events.last().unwrap();
    last["payload"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn streamed_chat_reaches_the_client_and_the_transcript() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let (res, events) = chat(&mut ws, "t1", "hello", "run-1").await;
    assert_eq!(
        res["payload"],
        json!({"runId": "run-1", "status": "started"})
    );
    let states = chat_states(&events);
    assert_eq!(states.last().unwrap(), "final", "{states:?}");
    assert!(
        states.iter().filter(|s| *s == "delta").count() >= 2,
        "streamed in pieces: {states:?}"
    );
    let deltas: String = events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
        .map(|e| e["payload"]["deltaText"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deltas, "Hello from the fake LLM!");
    assert_eq!(final_text(&events), "Hello from the fake LLM!");
    assert_eq!(
        events.last().unwrap()["payload"]["sessionKey"],
        "agent:main:t1"
    );
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "lifecycle")
        .filter_map(|e| e["payload"]["data"]["phase"].as_str())
        .collect();
    assert_eq!(phases, ["start", "model", "end"]);
    // Per-connection event seq stays contiguous.
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));

    // What the provider received.
    let reqs = fake.requests();
    let body = reqs.last().unwrap().body.clone();
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"].as_array().unwrap().last().unwrap()["content"],
        "hello"
    );
    assert_eq!(
        reqs.last().unwrap().header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "read"));

    // The turn is stored.
    let h = ws.call("chat.history", json!({"sessionKey": "t1"})).await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["idempotencyKey"], "run-1:user");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][0]["text"], "Hello from the fake LLM!");
    assert_eq!(h["payload"]["sessionKey"], "t1");
}

#[tokio::test]
async fn tool_loop_reads_a_workspace_file() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    std::fs::write(
        gw.home_path().join("workspace/TOOLFILE.txt"),
        "file content 42\n",
    )
    .unwrap();
    let mut ws = client(&gw).await;
    let (_, events) = chat(
        &mut ws,
        "tool",
        "TOOLTEST: please read TOOLFILE.txt",
        "run-tool",
    )
    .await;
    assert_eq!(final_text(&events), "The file says: file content 42\n");
    let items: Vec<&Value> = events
        .iter()
        .filter(|e| e["payload"]["stream"] == "item")
        .collect();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["payload"]["data"]["title"],
        "Read from TOOLFILE.txt"
    );
    assert_eq!(items[1]["payload"]["data"]["status"], "completed");
    // A cli/cli client without the tool-events cap gets no tool stream.
    assert!(events.iter().all(|e| e["payload"]["stream"] != "tool"));
    let h = ws.call("chat.history", json!({"sessionKey": "tool"})).await;
    let roles: Vec<&str> = h["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant", "toolResult", "assistant"]);
    assert_eq!(
        h["payload"]["messages"][1]["content"][0]["type"],
        "toolCall"
    );
    assert_eq!(fake.request_count(), 2);
    let second = fake.requests()[1].body.clone();
    let tool_msg = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_msg["content"], "file content 42\n");
}

#[tokio::test]
async fn abort_mid_stream() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": "slow", "message": "SLOWTEST go", "idempotencyKey": "run-slow"}),
        )
        .await;
    assert_eq!(res["ok"], true);
    ws.recv_until(T, |v| {
        v["event"] == "chat" && v["payload"]["state"] == "delta"
    })
    .await;
    let mut other = client(&gw).await;
    let abort = other
        .call(
            "chat.abort",
            json!({"sessionKey": "slow", "runId": "run-slow"}),
        )
        .await;
    assert_eq!(
        abort["payload"],
        json!({"ok": true, "aborted": true, "runIds": ["run-slow"]})
    );
    let ev = ws
        .recv_until(T, |v| {
            v["event"] == "chat" && v["payload"]["state"] != "delta"
        })
        .await;
    assert_eq!(ev["payload"]["state"], "aborted");
    assert_eq!(ev["payload"]["stopReason"], "rpc");
    // Nothing more is running; aborting again aborts nothing.
    let again = other
        .call("chat.abort", json!({"sessionKey": "slow"}))
        .await;
    assert_eq!(again["payload"]["aborted"], false);
    let w = other
        .call(
            "agent.wait",
            json!({"runId": "run-slow", "timeoutMs": 1000}),
        )
        .await;
    assert_eq!(w["payload"]["status"], "timeout");
    assert_eq!(w["payload"]["stopReason"], "rpc");
}

#[tokio::test]
async fn provider_errors_are_retried_then_succeed() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Status {
        code: 500,
        retry_after_secs: None,
        body: None,
    });
    fake.push(Step::Status {
        code: 429,
        retry_after_secs: Some(1),
        body: None,
    });
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let started = std::time::Instant::now();
    let (_, events) = chat(&mut ws, "retry", "hello", "run-retry").await;
    assert_eq!(final_text(&events), "Hello from the fake LLM!");
    assert_eq!(fake.request_count(), 3);
    let retries: Vec<&Value> = events
        .iter()
        .filter(|e| e["payload"]["stream"] == "run_status")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["payload"]["data"]["phase"], "retrying");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn retry_exhaustion_ends_in_a_chat_error_without_secrets() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Step::Status {
            code: 500,
            retry_after_secs: None,
            body: Some(format!("{{\"error\":{{\"message\":\"boom {KEY}\"}}}}")),
        });
    }
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "err", "hello", "run-err").await;
    let last = &events.last().unwrap()["payload"];
    assert_eq!(last["state"], "error");
    let msg = last["errorMessage"].as_str().unwrap();
    assert!(msg.contains("HTTP 500"), "{msg}");
    assert_eq!(last["errorDetail"]["provider"], "fake");
    assert_eq!(fake.request_count(), 3, "1 + maxRetries attempts");
    assert!(
        !events.iter().any(|e| e.to_string().contains(KEY)),
        "secret leaked into events"
    );
    assert!(!gw.stderr_text().contains(KEY));
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "e400", "ERR400TEST", "run-400").await;
    assert_eq!(events.last().unwrap()["payload"]["state"], "error");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn garbage_and_cut_streams_are_errors_not_hangs() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Step::Garbage("data: {not json}\n\n".into()));
    }
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "g", "hi", "run-g").await;
    assert_eq!(events.last().unwrap()["payload"]["state"], "error");
    fake.push(Step::CutMidStream);
    let (_, events) = chat(&mut ws, "g", "hi", "run-cut").await;
    assert_eq!(
        events.last().unwrap()["payload"]["state"],
        "error",
        "a cut stream is not a complete answer"
    );
}

#[tokio::test]
async fn first_token_timeout_is_retried() {
    let fake = FakeLlm::start().await;
    fake.push(Step::Hang { ms: 3000 });
    let cfg = config(&fake, "openai-completions", "").replace(
        "maxRetries: 2",
        "maxRetries: 2\n      firstTokenTimeoutSeconds: 1",
    );
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "hang", "hi", "run-hang").await;
    assert_eq!(final_text(&events), "Hello from the fake LLM!");
    assert!(events.iter().any(|e| e["payload"]["data"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("timed out"))));
}

#[tokio::test]
async fn idempotent_chat_send_runs_once() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let (_, _) = chat(&mut ws, "idem", "hello", "same-key").await;
    let again = ws
        .call(
            "chat.send",
            json!({"sessionKey": "idem", "message": "hello", "idempotencyKey": "same-key"}),
        )
        .await;
    assert_eq!(again["payload"]["runId"], "same-key");
    assert_eq!(again["payload"]["status"], "ok");
    assert_eq!(fake.request_count(), 1);
    let h = ws.call("chat.history", json!({"sessionKey": "idem"})).await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 2);
    // Missing params get the real error text.
    let bad = ws
        .call("chat.send", json!({"sessionKey": "idem", "message": "x"}))
        .await;
    assert_eq!(
        bad["error"]["message"],
        "invalid chat.send params: must have required property 'idempotencyKey'"
    );
    let bad = ws
        .call("chat.send", json!({"message": "x", "idempotencyKey": "k"}))
        .await;
    assert_eq!(
        bad["error"]["details"]["code"],
        "SESSION_MUTATION_TARGET_REQUIRED"
    );
}

#[tokio::test]
async fn history_survives_a_restart() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    chat(&mut ws, "keep", "remember me", "run-a").await;
    let home = gw.stop();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let mut ws = client(&gw).await;
    let h = ws
        .call("chat.history", json!({"sessionKey": "agent:main:keep"}))
        .await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["content"], "remember me");
    // And the next turn sends the earlier one as context.
    chat(&mut ws, "keep", "and now?", "run-b").await;
    let body = fake.requests().last().unwrap().body.clone();
    let contents: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(
        contents.contains(&"remember me") && contents.contains(&"and now?"),
        "{contents:?}"
    );
}

#[tokio::test]
async fn path_escapes_are_refused() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        gw.home_path().join("workspace/link.txt"),
    )
    .unwrap();
    fake.push(Step::ToolCalls(vec![
        (
            "c1".into(),
            "read".into(),
            json!({"path": "../config.yaml"}),
        ),
        ("c2".into(), "read".into(), json!({"path": "/etc/passwd"})),
        ("c3".into(), "read".into(), json!({"path": "link.txt"})),
        (
            "c4".into(),
            "write".into(),
            json!({"path": "../escape.txt", "content": "x"}),
        ),
    ]));
    fake.push(Step::text("done"));
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "esc", "try", "run-esc").await;
    assert_eq!(final_text(&events), "done");
    let h = ws.call("chat.history", json!({"sessionKey": "esc"})).await;
    let results: Vec<&Value> = h["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "toolResult")
        .collect();
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!(r["isError"], true, "{r}");
        assert!(!r.to_string().contains("TOP-SECRET"));
    }
    assert!(!gw.home_path().join("escape.txt").exists());
    let second = fake.requests()[1].body.to_string();
    assert!(!second.contains("TOP-SECRET") && !second.contains("root:x:0"));
}

#[tokio::test]
async fn web_fetch_to_private_addresses_and_exec_are_refused() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let canary = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let canary_url = format!("http://127.0.0.1:{}/", canary.local_addr().unwrap().port());
    fake.push(Step::ToolCalls(vec![
        ("w1".into(), "web_fetch".into(), json!({"url": canary_url})),
        (
            "w2".into(),
            "web_fetch".into(),
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
        ),
        (
            "x1".into(),
            "exec".into(),
            json!({"command": "touch", "args": ["/tmp/clawgate-canary"]}),
        ),
    ]));
    fake.push(Step::text("ok"));
    let mut ws = client(&gw).await;
    chat(&mut ws, "net", "fetch", "run-net").await;
    let h = ws.call("chat.history", json!({"sessionKey": "net"})).await;
    let results: Vec<&Value> = h["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "toolResult")
        .collect();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["isError"] == true), "{results:?}");
    assert!(results[0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("loopback"));
    assert!(results[1]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("169.254.169.254"));
    // exec (mode deny by default) is not even offered; a model that calls it anyway gets
    // an error result and nothing runs.
    assert!(results[2]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("unknown tool: exec"));
    assert!(canary.accept().is_err(), "the canary was contacted");
}

#[tokio::test]
async fn no_model_configured_answers_with_setup_help() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "main", "hello", "run-none").await;
    let last = &events.last().unwrap()["payload"];
    assert_eq!(last["state"], "error");
    let msg = last["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("No AI model is configured")
            && msg.contains("OPENAI_API_KEY")
            && msg.contains("11434"),
        "{msg}"
    );
    let hello = ws.call("agents.list", json!({})).await;
    assert!(hello["payload"]["agents"][0].get("model").is_none());
}

#[tokio::test]
async fn agent_method_replies_twice() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    ws.send_json(&json!({"type": "req", "id": "a1", "method": "agent", "params": {"message": "hello", "sessionId": "S1", "idempotencyKey": "agent-run-1", "deliver": false, "timeout": 600}})).await;
    let first = ws
        .recv_until(T, |v| v["type"] == "res" && v["id"] == "a1")
        .await;
    assert_eq!(first["payload"]["status"], "accepted");
    assert_eq!(first["payload"]["runId"], "agent-run-1");
    assert!(
        first["payload"].get("sessionKey").is_none(),
        "only sessionId was given"
    );
    let second = ws
        .recv_until(T, |v| v["type"] == "res" && v["id"] == "a1")
        .await;
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(second["payload"]["status"], "ok");
    assert_eq!(
        second["payload"]["result"]["payloads"][0]["text"],
        "Hello from the fake LLM!"
    );
    assert_eq!(
        second["payload"]["result"]["meta"]["agentMeta"]["model"],
        "fake-model"
    );
    let h = ws
        .call(
            "chat.history",
            json!({"sessionKey": "agent:main:explicit:S1"}),
        )
        .await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 2);
    let w = ws.call("agent.wait", json!({"runId": "agent-run-1"})).await;
    assert_eq!(w["payload"]["status"], "ok");
    let w = ws
        .call(
            "agent.wait",
            json!({"runId": "nonexistent-run", "timeoutMs": 100}),
        )
        .await;
    assert_eq!(
        w["payload"],
        json!({"runId": "nonexistent-run", "status": "timeout"})
    );
    // An LLM failure: ok:false with both payload and error.
    ws.send_json(&json!({"type": "req", "id": "a2", "method": "agent", "params": {"message": "ERR400TEST", "idempotencyKey": "agent-run-2"}})).await;
    ws.recv_until(T, |v| {
        v["type"] == "res" && v["id"] == "a2" && v["payload"]["status"] == "accepted"
    })
    .await;
    let fail = ws
        .recv_until(T, |v| v["type"] == "res" && v["id"] == "a2")
        .await;
    assert_eq!(fail["ok"], false, "{fail}");
    assert_eq!(fail["payload"]["status"], "error");
    assert_eq!(fail["error"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn sessions_methods() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    assert_eq!(
        ws.call("sessions.subscribe", json!({})).await["payload"]["subscribed"],
        true
    );
    chat(&mut ws, "s1", "hello", "r1").await;
    let list = ws.call("sessions.list", json!({})).await;
    let sessions = list["payload"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["key"], "agent:main:s1");
    assert_eq!(sessions[0]["status"], "done");
    assert_eq!(sessions[0]["model"], "fake-model");
    let d = ws.call("sessions.describe", json!({"key": "s1"})).await;
    assert_eq!(d["payload"]["session"]["key"], "agent:main:s1");
    let d = ws.call("sessions.describe", json!({"key": "nope"})).await;
    assert!(d["payload"]["session"].is_null());
    let bad = ws
        .call("sessions.patch", json!({"key": "s1", "model": "other/x"}))
        .await;
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST");
    let mut watcher = client(&gw).await;
    assert_eq!(
        watcher.call("sessions.subscribe", json!({})).await["payload"]["subscribed"],
        true
    );
    let ok = ws
        .call(
            "sessions.patch",
            json!({"key": "s1", "model": "fake/fake-model", "label": "My Test"}),
        )
        .await;
    assert_eq!(
        ok["payload"]["resolved"],
        json!({"modelProvider": "fake", "model": "fake-model"})
    );
    let changed = watcher
        .recv_until(T, |v| {
            v["event"] == "sessions.changed" && v["payload"]["reason"] == "patch"
        })
        .await;
    assert_eq!(changed["payload"]["session"]["label"], "My Test");
    let old_id = d["payload"]["session"]["sessionId"].clone();
    let r = ws.call("sessions.reset", json!({"key": "s1"})).await;
    assert_ne!(r["payload"]["entry"]["sessionId"], old_id);
    let h = ws.call("chat.history", json!({"sessionKey": "s1"})).await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 0);
    let del = ws.call("sessions.delete", json!({"key": "main"})).await;
    assert_eq!(
        del["error"]["message"],
        "Cannot delete the main session (agent:main:main)."
    );
    let del = ws.call("sessions.delete", json!({"key": "s1"})).await;
    assert_eq!(del["payload"]["deleted"], true);
    let models = ws.call("models.list", json!({})).await;
    assert_eq!(models["payload"]["models"][0]["id"], "fake-model");
    let agents = ws.call("agents.list", json!({})).await;
    assert_eq!(
        agents["payload"]["agents"][0]["model"]["primary"],
        "fake/fake-model"
    );
}

#[tokio::test]
async fn anthropic_provider_streams_and_calls_tools() {
    let fake = FakeLlm::start().await;
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(config(&fake, "anthropic-messages", "")),
            ..Options::default()
        },
    );
    std::fs::write(
        gw.home_path().join("workspace/TOOLFILE.txt"),
        "from anthropic",
    )
    .unwrap();
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "a", "hello", "run-an").await;
    assert_eq!(final_text(&events), "Hello from the fake LLM!");
    let req = fake.requests().last().unwrap().clone();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    let (_, events) = chat(&mut ws, "a", "TOOLTEST read it", "run-an-tool").await;
    assert_eq!(final_text(&events), "The file says: from anthropic");
}

#[tokio::test]
async fn followups_queue_behind_the_running_turn() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    fake.push(Step::Text {
        chunks: vec!["one".into(), " two".into()],
        delay_ms: 300,
    });
    let a = ws
        .call(
            "chat.send",
            json!({"sessionKey": "q", "message": "first", "idempotencyKey": "q1"}),
        )
        .await;
    let b = ws
        .call(
            "chat.send",
            json!({"sessionKey": "q", "message": "second", "idempotencyKey": "q2"}),
        )
        .await;
    assert_eq!(a["payload"]["status"], "started");
    assert_eq!(b["payload"]["status"], "started");
    let mut finals = Vec::new();
    while finals.len() < 2 {
        let ev = ws
            .recv_until(T, |v| {
                v["event"] == "chat" && v["payload"]["state"] == "final"
            })
            .await;
        finals.push(ev["payload"]["runId"].as_str().unwrap().to_string());
    }
    assert_eq!(finals, ["q1", "q2"], "one run at a time, in order");
    // The second turn saw the first one's answer.
    let body = fake.requests()[1].body.to_string();
    assert!(body.contains("one two"));
}

#[tokio::test]
async fn fallback_model_takes_over_when_the_primary_keeps_failing() {
    let fake = FakeLlm::start().await;
    let backup = FakeLlm::start().await;
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\n      maxRetries: 0\n    backup:\n      baseUrl: {}\n      models: [backup-model]\n\
agents:\n  defaults:\n    model:\n      primary: fake/fake-model\n      fallbacks: [backup/backup-model]\n",
        fake.openai_base_url(),
        backup.openai_base_url()
    );
    fake.push(Step::Status {
        code: 503,
        retry_after_secs: None,
        body: None,
    });
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(cfg),
            ..Options::default()
        },
    );
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "fb", "hello", "run-fb").await;
    assert_eq!(final_text(&events), "Hello from the fake LLM!");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(backup.request_count(), 1);
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
    let models: Vec<&str> = events
        .iter()
        .filter(|e| e["payload"]["data"]["phase"] == "model")
        .filter_map(|e| e["payload"]["data"]["model"].as_str())
        .collect();
    assert_eq!(models, ["fake-model", "backup-model"]);
}

#[tokio::test]
async fn interrupt_mode_aborts_the_running_turn() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "    queueMode: interrupt\n");
    let mut ws = client(&gw).await;
    let a = ws
        .call(
            "chat.send",
            json!({"sessionKey": "i", "message": "SLOWTEST long", "idempotencyKey": "i1"}),
        )
        .await;
    assert_eq!(a["ok"], true);
    ws.recv_until(T, |v| {
        v["event"] == "chat" && v["payload"]["state"] == "delta"
    })
    .await;
    ws.call(
        "chat.send",
        json!({"sessionKey": "i", "message": "hello", "idempotencyKey": "i2"}),
    )
    .await;
    let first = ws
        .recv_until(T, |v| {
            v["event"] == "chat"
                && v["payload"]["runId"] == "i1"
                && v["payload"]["state"] != "delta"
        })
        .await;
    assert_eq!(first["payload"]["state"], "aborted");
    let second = ws
        .recv_until(T, |v| {
            v["event"] == "chat"
                && v["payload"]["runId"] == "i2"
                && v["payload"]["state"] != "delta"
        })
        .await;
    assert_eq!(second["payload"]["state"], "final");
}

#[tokio::test]
async fn workspace_files_shape_the_system_prompt() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "    bootstrapMaxChars: 50\n");
    std::fs::write(
        gw.home_path().join("workspace/AGENTS.md"),
        "Always answer like a pirate.",
    )
    .unwrap();
    std::fs::write(
        gw.home_path().join("workspace/SOUL.md"),
        format!("soul {}", "x".repeat(500)),
    )
    .unwrap();
    let mut ws = client(&gw).await;
    chat(&mut ws, "sys", "hello", "run-sys").await;
    let body = fake.requests()[0].body.clone();
    let system = body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("Always answer like a pirate."), "{system}");
    assert!(
        system.contains("[truncated]"),
        "SOUL.md is capped: {system}"
    );
    assert!(!system.contains(&"x".repeat(100)));
}

#[tokio::test]
async fn tool_iterations_are_capped_and_runs_time_out() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "    maxToolIterations: 2\n");
    for i in 0..3 {
        fake.push(Step::ToolCalls(vec![(
            format!("c{i}"),
            "ls".into(),
            json!({}),
        )]));
    }
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "loop", "go", "run-loop").await;
    let last = &events.last().unwrap()["payload"];
    assert_eq!(last["state"], "error");
    assert!(last["errorMessage"]
        .as_str()
        .unwrap()
        .contains("maxToolIterations"));
    assert_eq!(fake.request_count(), 2);

    let fake = FakeLlm::start().await;
    let gw = start(&fake, "    timeoutSeconds: 1\n");
    fake.push(Step::Text {
        chunks: vec!["a".into(), "b".into(), "c".into()],
        delay_ms: 800,
    });
    let mut ws = client(&gw).await;
    let (_, events) = chat(&mut ws, "slow", "go", "run-timeout").await;
    let last = &events.last().unwrap()["payload"];
    assert_eq!(last["state"], "aborted");
    assert_eq!(last["stopReason"], "timeout");
}

#[tokio::test]
async fn chat_inject_appends_without_a_model_call() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "");
    let mut ws = client(&gw).await;
    let r = ws
        .call(
            "chat.inject",
            json!({"sessionKey": "inj", "message": "a note from the operator"}),
        )
        .await;
    assert_eq!(r["payload"]["ok"], true, "{r}");
    let h = ws.call("chat.history", json!({"sessionKey": "inj"})).await;
    assert_eq!(
        h["payload"]["messages"][0]["content"][0]["text"],
        "a note from the operator"
    );
    assert_eq!(fake.request_count(), 0);
    // Needs admin.
    let (mut writer, _) = connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    let r = writer
        .call("chat.inject", json!({"sessionKey": "inj", "message": "x"}))
        .await;
    assert_eq!(r["error"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn tools_allow_and_deny_select_what_the_model_is_offered() {
    let fake = FakeLlm::start().await;
    let gw = start(&fake, "tools:\n  deny: [exec, web_fetch]\n");
    let mut ws = client(&gw).await;
    chat(&mut ws, "t", "hello", "run-t").await;
    let names: Vec<String> = fake.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["read", "write", "edit", "ls"]);
}
