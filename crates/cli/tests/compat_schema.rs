//! Protocol schema validation (issue 10 §4): the frames clawgate sends are checked against
//! OpenClaw's own published schemas and runtime validators, `@openclaw/gateway-protocol`
//! 2026.9.1 (the release matching the 2026.9.6 CLI), installed from the npm registry.
//!
//! The real binary, the fake LLM and real sockets: the test records `hello-ok`, the result of
//! every method clawgate advertises that the package knows (its method list ∩ clawgate's
//! `features.methods`), and every frame and event of a chat turn with a tool call, then feeds
//! them to `fixtures/validate_frames.mjs`, which runs the package's TypeBox schemas over them.
//! Extra fields are tolerated; a missing required field or a wrong type is a failure.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::npm;
use clawgate_testkit::ws::RawWs;
use clawgate_testkit::{FakeLlm, GatewayProcess};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const PROTOCOL_PKG: &str = "@openclaw/gateway-protocol@2026.9.1";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// The installed package's `node_modules` directory.
fn protocol_modules() -> PathBuf {
    npm::package(
        "gateway-protocol",
        PROTOCOL_PKG,
        "node_modules/@openclaw/gateway-protocol/package.json",
    )
    .join("node_modules")
}

/// The method names the package types (`protocol.schema.json` → `methods`).
fn package_methods(modules: &Path) -> BTreeSet<String> {
    let path = modules.join("@openclaw/gateway-protocol/protocol.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("protocol.schema.json");
    v["methods"]
        .as_object()
        .expect("methods")
        .keys()
        .cloned()
        .collect()
}

/// Runs the validator script over `capture`; returns its report.
fn validate(modules: &Path, capture: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.json");
    std::fs::write(&file, capture.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate_frames.mjs");
    let out = std::process::Command::new(npm::toolchain().node())
        .arg(&script)
        .arg(modules)
        .arg(&file)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "validator failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("validator output")
}

fn failures_text(report: &Value) -> String {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "  {} [{}] at {}: {}",
                f["what"].as_str().unwrap_or(""),
                f["schema"].as_str().unwrap_or(""),
                f["path"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn checked(report: &Value) -> BTreeSet<String> {
    report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["what"].as_str().unwrap().to_string())
        .collect()
}

/// A connection that keeps every event it sees.
struct Recorder {
    ws: RawWs,
    n: u64,
    events: Vec<Value>,
}

impl Recorder {
    async fn send(&mut self, method: &str, params: &Value) -> String {
        self.n += 1;
        let id = format!("s{}", self.n);
        self.ws
            .send_json(&json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// The next `res` for `id`; events read meanwhile are recorded.
    async fn response(&mut self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self
                .ws
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no response to {id}"));
            if v["type"] == "event" {
                self.events.push(v);
            } else if v["type"] == "res" && v["id"] == id {
                return v;
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> (Value, Value) {
        let id = self.send(method, &params).await;
        let res = self.response(&id).await;
        (params, res)
    }

    /// Reads events until one satisfies `pred`.
    async fn until_event(&mut self, pred: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.ws.recv(left).await.expect("event before the deadline");
            if v["type"] == "event" {
                let hit = pred(&v);
                self.events.push(v);
                if hit {
                    return;
                }
            }
        }
    }
}

const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];

async fn connect(gw: &GatewayProcess) -> (Recorder, Value) {
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let hello = ws
        .connect_req(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "2026.9.6", "platform": "linux", "mode": "cli"},
            "caps": ["tool-events"], "role": "operator", "scopes": ALL_SCOPES,
            "auth": {"token": gw.token()},
        }))
        .await;
    assert_eq!(hello["ok"], true, "{hello}");
    (
        Recorder {
            ws,
            n: 0,
            events: Vec::new(),
        },
        hello,
    )
}

const MAIN: &str = "agent:main:main";

/// Params for each method (the package's shapes); methods not listed take `{}`.
fn params_for(method: &str, run_id: &str) -> Value {
    match method {
        "logs.tail" => json!({"limit": 20}),
        "chat.history" => json!({"sessionKey": MAIN, "limit": 80}),
        "chat.startup" => json!({"sessionKey": MAIN, "limit": 80, "maxBytes": 262144}),
        "chat.abort" => json!({"sessionKey": MAIN}),
        "chat.inject" => json!({"sessionKey": "schema-inject", "message": "injected note"}),
        "agent.wait" => json!({"runId": run_id, "timeoutMs": 1000}),
        "models.list" => json!({"view": "configured", "agentId": "main"}),
        "sessions.list" => json!({"limit": 50, "includeGlobal": true, "includeUnknown": true}),
        "sessions.describe" | "sessions.get" => json!({"key": MAIN}),
        "sessions.patch" => json!({"key": MAIN, "label": "schema check"}),
        "sessions.reset" => json!({"key": "schema-reset"}),
        "sessions.delete" => json!({"key": "schema-delete"}),
        "sessions.messages.subscribe" => json!({"key": MAIN, "includeApprovals": true}),
        "sessions.messages.unsubscribe" => json!({"key": MAIN}),
        "sessions.create" => json!({"key": "schema-created", "agentId": "main"}),
        "chat.metadata" => json!({"agentId": "main", "sessionKey": MAIN}),
        "models.authStatus" | "agent.identity.get" | "taskSuggestions.list" => {
            json!({"agentId": "main"})
        }
        "commands.list" => json!({"sessionKey": MAIN, "agentId": "main"}),
        "tasks.list" => json!({"sessionKey": MAIN, "agentId": "main", "limit": 50}),
        "cron.list" => json!({"agentId": "main", "limit": 50, "offset": 0}),
        "wake" => json!({"mode": "next-heartbeat", "text": "schema check"}),
        "channels.pairing.list" => json!({}),
        "board.get" => json!({"sessionKey": MAIN, "agentId": "main"}),
        "sessions.viewers.set" | "controlUi.sessionPullRequests.subscribe" => {
            json!({"sessionKeys": [MAIN]})
        }
        "sessions.observer.visibility" => json!({"visible": true}),
        "plugin.surface.refresh" => json!({"surface": "canvas"}),
        "users.prefs.get" => json!({"keys": ["ui.theme"]}),
        "sessions.branches.list" | "progressCard.get" => json!({"sessionKey": MAIN}),
        "session.discussion.info"
        | "sessions.companion.state"
        | "sessions.github.options"
        | "session.members.listEvidence" => json!({"sessionKey": MAIN, "agentId": "main"}),
        "sessions.catalog.list" => json!({"agentId": "main", "limitPerHost": 40}),
        _ => json!({}),
    }
}

/// Methods called elsewhere in the test, or that need state the test cannot give them
/// (an existing pairing request, a configured channel), with why.
const NOT_CALLED: &[(&str, &str)] = &[
    ("chat.send", "the chat turn below"),
    ("agent", "the agent turn below"),
    ("connect", "the handshake"),
    (
        "device.pair.approve",
        "needs a pending device pairing request",
    ),
    (
        "device.pair.reject",
        "needs a pending device pairing request",
    ),
    ("device.pair.remove", "needs a paired device"),
    (
        "channels.pairing.approve",
        "needs a pending channel pairing request",
    ),
    (
        "channels.pairing.dismiss",
        "needs a pending channel pairing request",
    ),
    (
        "config.apply",
        "needs the file's current hash and rewrites config.yaml (tests/reload.rs)",
    ),
    ("send", "needs a configured channel"),
    ("message.action", "needs a configured channel"),
];

#[tokio::test]
async fn frames_results_and_events_match_openclaws_published_schemas() {
    let modules = tokio::task::spawn_blocking(protocol_modules).await.unwrap();
    let pkg_methods = package_methods(&modules);
    let llm = FakeLlm::start().await;
    let gw = GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-fake\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
                llm.openai_base_url()
            )),
            ..Options::default()
        },
    );
    std::fs::write(
        gw.home_path().join("workspace/TOOLFILE.txt"),
        "file content 42\n",
    )
    .unwrap();
    let (mut rec, hello) = connect(&gw).await;
    let advertised: Vec<String> = hello["payload"]["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();

    // A chat turn with a tool call: every frame from the ack to the final event.
    rec.events.clear();
    let (send_params, send_res) = rec
        .call(
            "chat.send",
            json!({"sessionKey": MAIN, "message": "TOOLTEST: please read TOOLFILE.txt",
                   "deliver": false, "idempotencyKey": "schema-run-1"}),
        )
        .await;
    assert_eq!(send_res["ok"], true, "{send_res}");
    rec.until_event(|e| {
        e["event"] == "chat" && e["payload"]["runId"] == "schema-run-1" && {
            let s = &e["payload"]["state"];
            s == "final" || s == "error" || s == "aborted"
        }
    })
    .await;
    let chat_events: Vec<&Value> = rec.events.iter().filter(|e| e["event"] == "chat").collect();
    assert!(
        chat_events.iter().any(|e| e["payload"]["state"] == "final"),
        "the turn did not finish: {chat_events:?}"
    );
    assert!(
        rec.events
            .iter()
            .any(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool"),
        "no tool events in the turn"
    );
    let mut calls =
        vec![json!({"method": "chat.send", "params": send_params, "response": send_res})];

    // `agent`: two responses (accepted, then the final result).
    let agent_params = json!({"message": "hello", "sessionKey": "agent:main:schema-agent",
                              "idempotencyKey": "schema-agent-1"});
    let id = rec.send("agent", &agent_params).await;
    let accepted = rec.response(&id).await;
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    let done = rec.response(&id).await;
    calls.push(json!({"method": "agent", "params": agent_params, "response": accepted}));
    calls.push(json!({"method": "agent", "params": agent_params, "response": done}));

    // Every other advertised method the package knows.
    let mut called = Vec::new();
    for m in &advertised {
        if !pkg_methods.contains(m) || NOT_CALLED.iter().any(|(n, _)| n == m) {
            continue;
        }
        let (params, res) = rec.call(m, params_for(m, "schema-run-1")).await;
        calls.push(json!({"method": m, "params": params, "response": res}));
        called.push(m.clone());
    }
    // Read past anything still in flight so the last events are recorded too.
    rec.call("health", json!({})).await;

    let capture = json!({"hello": hello, "calls": calls, "events": rec.events});
    let report = validate(&modules, &capture);
    let checked = checked(&report);
    eprintln!(
        "validated {} items; methods called: {}; untyped: {}",
        checked.len(),
        called.join(", "),
        report["untyped"]
    );
    assert!(
        report["failures"].as_array().unwrap().is_empty(),
        "clawgate's frames do not match @openclaw/gateway-protocol:\n{}",
        failures_text(&report)
    );
    // The validator did look at what matters.
    for what in [
        "hello-ok",
        "agents.list",
        "models.list",
        "system.info",
        "agent.identity.get",
        "update.status",
        "channels.status",
        "health",
    ] {
        assert!(
            checked.contains(what),
            "{what} was not validated: {checked:?}"
        );
    }
    for state in ["delta", "final"] {
        assert!(
            checked
                .iter()
                .any(|c| c.contains(&format!(" chat/{state}")) && !c.ends_with("(frame)")),
            "no chat/{state} event validated"
        );
    }
    assert!(
        checked.iter().any(|c| c.contains(" agent/tool")),
        "no agent tool event validated"
    );
}

/// The validator is not a rubber stamp: a hello-ok missing a required field, an event of the
/// wrong type and a result with a wrong field type are reported with the method and path.
#[tokio::test]
async fn the_validator_reports_missing_fields_and_wrong_types() {
    let modules = tokio::task::spawn_blocking(protocol_modules).await.unwrap();
    let capture = json!({
        "hello": {"type": "res", "id": "1", "ok": true, "payload": {"type": "hello-ok", "protocol": 4}},
        "calls": [{"method": "agent.identity.get", "params": {"agentId": "main"},
                   "response": {"type": "res", "id": "2", "ok": true, "payload": {"agentId": 7}}}],
        "events": [{"type": "event", "event": "tick", "payload": {"ts": "soon"}, "seq": 1}],
    });
    let report = validate(&modules, &capture);
    let text = failures_text(&report);
    assert!(text.contains("hello-ok [HelloOk] at /:"), "{text}");
    assert!(
        text.contains("agent.identity.get [AgentIdentityResult] at /agentId"),
        "{text}"
    );
    assert!(text.contains("tick [TickEvent] at /ts"), "{text}");
}
