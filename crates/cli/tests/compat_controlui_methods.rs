//! The stock Control UI's load-time calls (protocol.md §12.4), made as the UI makes them: a
//! `openclaw-control-ui` / `webchat` client with a signed device identity, from the gateway's
//! own origin, with the params the UI sent to OpenClaw 2026.9.6 (control-ui*.jsonl). Every
//! one answers, is advertised in `hello-ok.features.methods`, and has the shape the real
//! gateway gave: real data where clawgate has it, an honest empty result where not.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::RawWs;
use clawgate_testkit::{FakeLlm, GatewayProcess};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const MAIN: &str = "agent:main:main";
const UI_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn start(llm: &FakeLlm) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(format!(
                "models:\n  providers:\n    fake:\n      baseUrl: {}\n      apiKey: sk-fake\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
                llm.openai_base_url()
            )),
            ..Options::default()
        },
    )
}

/// Connects as the Control UI does: its client id, mode and caps, the fragment secret as both
/// token and password, and a device signed with the v2 payload.
async fn connect_ui(gw: &GatewayProcess) -> (RawWs, Value) {
    let origin = format!("http://127.0.0.1:{}", gw.port());
    let mut ws = RawWs::connect_with(gw.addr, &[("origin", origin.as_str())])
        .await
        .expect("upgrade");
    let (nonce, ts) = ws.challenge().await;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    let id = hex::encode(Sha256::digest(public.as_bytes()));
    let token = gw.token();
    let payload = format!(
        "v2|{id}|openclaw-control-ui|webchat|operator|{}|{ts}|{token}|{nonce}",
        UI_SCOPES.join(",")
    );
    let sig = URL_SAFE_NO_PAD.encode(key.sign(payload.as_bytes()).to_bytes());
    let res = ws
        .connect_req(json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-control-ui", "version": "2026.9.6", "platform": "Linux x86_64",
                       "mode": "webchat", "instanceId": "ui-test"},
            "caps": ["agent-kind", "approvals", "tool-events", "model-selection-policy", "model-catalog-snapshot"],
            "role": "operator", "scopes": UI_SCOPES,
            "auth": {"token": token, "password": token},
            "locale": "en-US", "userAgent": "clawgate-test",
            "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(public.as_bytes()),
                       "signature": sig, "signedAt": ts, "nonce": nonce},
        }))
        .await;
    assert_eq!(res["ok"], true, "the Control UI could not connect: {res}");
    (ws, res["payload"].clone())
}

/// Calls `method` and returns the payload; fails the test on an error answer.
async fn ok(ws: &mut RawWs, method: &str, params: Value) -> Value {
    let res = ws.call(method, params.clone()).await;
    assert_eq!(
        res["ok"], true,
        "{method} {params} failed (the UI would show an error): {res}"
    );
    res["payload"].clone()
}

fn is_array(v: &Value, n: usize) -> bool {
    v.as_array().is_some_and(|a| a.len() == n)
}

/// Every load-time call of the Control UI, in the order it made them against OpenClaw, with
/// its params, answered with the real gateway's shape.
#[tokio::test]
async fn every_load_time_call_of_the_control_ui_answers_in_openclaws_shape() {
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, hello) = connect_ui(&gw).await;
    let advertised: Vec<&str> = hello["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The events the chat view listens for are advertised.
    let events: Vec<&str> = hello["features"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in [
        "chat",
        "agent",
        "session.message",
        "sessions.changed",
        "tick",
        "presence",
    ] {
        assert!(
            events.contains(&e),
            "{e} not in features.events: {events:?}"
        );
    }
    assert_eq!(
        hello["snapshot"]["sessionDefaults"]["modelConfigured"], true,
        "{}",
        hello["snapshot"]
    );

    // (method, params as the UI sent them)
    let calls: Vec<(&str, Value)> = vec![
        ("sessions.subscribe", json!({})),
        (
            "sessions.list",
            json!({"includeGlobal": true, "includeUnknown": true, "configuredAgentsOnly": true, "limit": 200,
                   "includeDerivedTitles": true, "includeLastMessage": true}),
        ),
        ("update.status", json!({})),
        ("plugins.controlUi.list", json!({})),
        ("config.get", json!({})),
        ("plugin.approval.list", json!({})),
        ("exec.approval.list", json!({})),
        ("openclaw.approval.list", json!({})),
        ("agents.list", json!({})),
        (
            "plugin.surface.refresh",
            json!({"surface": "canvas", "observedUrl": "http://127.0.0.1:1/__openclaw__/cap/x"}),
        ),
        ("sessions.observer.visibility", json!({"visible": true})),
        ("question.list", json!({})),
        ("agent.identity.get", json!({"agentId": "main"})),
        ("models.authStatus", json!({"agentId": "main"})),
        ("sessions.describe", json!({"key": MAIN})),
        (
            "users.prefs.get",
            json!({"keys": ["ui.theme", "ui.themeMode", "ui.accent", "ui.fontUi", "ui.fontChat"]}),
        ),
        ("board.get", json!({"sessionKey": MAIN, "agentId": "main"})),
        (
            "chat.startup",
            json!({"sessionKey": MAIN, "limit": 80, "maxBytes": 262144}),
        ),
        ("sessions.viewers.set", json!({"sessionKeys": [MAIN]})),
        ("projects.list", json!({})),
        ("talk.catalog", json!({})),
        (
            "sessions.messages.subscribe",
            json!({"key": MAIN, "includeApprovals": true}),
        ),
        ("sessions.groups.list", json!({})),
        ("mentions.list", json!({})),
        (
            "chat.metadata",
            json!({"agentId": "main", "sessionKey": MAIN}),
        ),
        ("sessions.groups.defaults", json!({})),
        (
            "cron.list",
            json!({"agentId": "main", "includeDisabled": true, "includeDeliveryPreviews": false, "compact": true,
                   "limit": 50, "offset": 0, "enabled": "all", "sortBy": "nextRunAtMs", "sortDir": "asc"}),
        ),
        ("cron.status", json!({})),
        ("taskSuggestions.list", json!({"agentId": "main"})),
        ("sessions.branches.list", json!({"sessionKey": MAIN})),
        (
            "session.discussion.info",
            json!({"sessionKey": MAIN, "agentId": "main"}),
        ),
        (
            "sessions.companion.state",
            json!({"sessionKey": MAIN, "agentId": "main"}),
        ),
        (
            "tasks.list",
            json!({"sessionKey": MAIN, "agentId": "main", "status": ["queued", "running"], "limit": 200}),
        ),
        (
            "controlUi.sessionPullRequests.subscribe",
            json!({"sessionKeys": [MAIN]}),
        ),
        ("system.info", json!({})),
        (
            "sessions.catalog.list",
            json!({"agentId": "main", "limitPerHost": 40, "progressId": "p-1", "allowPartialResults": true}),
        ),
        ("progressCard.get", json!({"sessionKey": MAIN})),
        (
            "chat.history",
            json!({"sessionKey": MAIN, "limit": 20, "maxBytes": 65536}),
        ),
        (
            "models.list",
            json!({"view": "configured", "sessionKey": MAIN, "agentId": "main"}),
        ),
        (
            "sessions.github.options",
            json!({"sessionKey": MAIN, "agentId": "main"}),
        ),
        (
            "session.members.listEvidence",
            json!({"sessionKey": MAIN, "agentId": "main"}),
        ),
        ("sessions.patch", json!({"key": MAIN, "unread": false})),
    ];
    let mut answers = std::collections::HashMap::new();
    for (method, params) in calls {
        assert!(
            advertised.contains(&method),
            "{method} is not advertised in hello-ok.features.methods"
        );
        answers.insert(method, ok(&mut ws, method, params).await);
    }
    let a = |m: &str| answers[m].clone();

    assert_eq!(a("sessions.subscribe")["subscribed"], true);
    assert!(a("sessions.list")["sessions"].is_array());
    assert!(a("update.status")
        .as_object()
        .unwrap()
        .contains_key("updateAvailable"));
    let plugins = a("plugins.controlUi.list");
    assert!(is_array(&plugins["plugins"], 0) && is_array(&plugins["diagnostics"], 0));
    assert_eq!(plugins["revision"].as_str().unwrap().len(), 64);
    for m in [
        "plugin.approval.list",
        "exec.approval.list",
        "openclaw.approval.list",
    ] {
        assert!(a(m).is_array(), "{m}: {}", a(m));
    }
    // agents.list: the configured model as model.primary (the UI's model picker reads it).
    let agents = a("agents.list");
    assert_eq!(agents["defaultId"], "main");
    assert_eq!(agents["agents"][0]["model"]["primary"], "fake/fake-model");
    assert_eq!(a("plugin.surface.refresh")["surface"], "canvas");
    assert_eq!(a("sessions.observer.visibility"), json!({"ok": true}));
    assert!(is_array(&a("question.list")["questions"], 0));
    assert_eq!(
        a("agent.identity.get"),
        json!({"agentId": "main", "name": "Assistant", "nameSource": "default", "avatar": "A"})
    );
    let auth = a("models.authStatus");
    assert_eq!(auth["providers"][0]["provider"], "fake");
    assert_eq!(auth["providers"][0]["apiKey"]["source"], "config");
    assert_eq!(a("sessions.describe"), json!({"session": null}));
    assert_eq!(a("users.prefs.get"), json!({"status": "ok", "entries": {}}));
    assert_eq!(
        a("board.get"),
        json!({"sessionKey": MAIN, "revision": 0, "tabs": [], "widgets": []})
    );
    let startup = a("chat.startup");
    assert_eq!(startup["sessionKey"], MAIN);
    assert!(is_array(&startup["messages"], 0));
    assert_eq!(startup["defaults"]["model"], "fake-model");
    assert_eq!(startup["pendingInputs"]["total"], 0);
    // A session with nothing sent yet still describes itself (the UI reads sessionInfo).
    assert_eq!(startup["sessionInfo"]["key"], MAIN, "{startup}");
    assert_eq!(startup["sessionInfo"]["isMain"], true);
    assert_eq!(startup["sessionInfo"]["hasActiveRun"], false);
    assert_eq!(startup["sessionInfo"]["model"], "fake-model");
    assert_eq!(a("sessions.viewers.set"), json!({"sessionKeys": [MAIN]}));
    let projects = a("projects.list");
    assert_eq!(projects["projects"][0]["id"], "workspace:main");
    assert_eq!(projects["projects"][0]["source"], "workspace");
    assert_eq!(
        projects["projects"][0]["repoRoot"],
        gw.home_path().join("workspace").display().to_string()
    );
    let talk = a("talk.catalog");
    for k in ["speech", "transcription", "realtime"] {
        assert!(is_array(&talk[k]["providers"], 0), "{talk}");
    }
    let sub = a("sessions.messages.subscribe");
    assert_eq!(sub["subscribed"], true);
    assert_eq!(sub["approvalReplay"]["sessionKey"], MAIN);
    assert!(is_array(&sub["approvalReplay"]["approvals"], 0));
    assert_eq!(sub["approvalReplay"]["truncated"], false);
    assert_eq!(
        a("sessions.groups.list"),
        json!({"groups": [], "sectionOrder": []})
    );
    let mentions = a("mentions.list");
    assert!(is_array(&mentions["items"], 0));
    assert_eq!(mentions["gatewayInstanceId"], hello["server"]["bootId"]);
    let meta = a("chat.metadata");
    assert_eq!(meta["models"][0]["id"], "fake-model");
    assert!(meta["commands"].is_array());
    assert_eq!(a("sessions.groups.defaults"), json!({"defaults": []}));
    assert!(a("cron.list")["snapshotRevision"].is_string());
    assert!(a("cron.status")
        .as_object()
        .unwrap()
        .contains_key("enabled"));
    assert_eq!(a("taskSuggestions.list"), json!({"suggestions": []}));
    assert_eq!(a("sessions.branches.list"), json!({"branches": []}));
    assert_eq!(a("session.discussion.info"), json!({"state": "none"}));
    assert_eq!(a("sessions.companion.state"), json!({"exchanges": []}));
    assert!(is_array(&a("tasks.list")["tasks"], 0));
    assert_eq!(
        a("controlUi.sessionPullRequests.subscribe"),
        json!({"subscribed": true})
    );
    assert_eq!(a("system.info")["platform"], std::env::consts::OS);
    assert_eq!(a("sessions.catalog.list"), json!({"catalogs": []}));
    assert_eq!(a("progressCard.get"), json!({"card": null}));
    assert!(a("chat.history")["messages"].is_array());
    assert_eq!(a("models.list")["models"][0]["provider"], "fake");
    let gh = a("sessions.github.options");
    assert_eq!(gh["personal"]["state"], "disconnected");
    assert!(gh["shared"].is_null());
    let members = a("session.members.listEvidence");
    assert_eq!(members["owner"]["id"], "gateway-owner");
    assert_eq!(members["role"], "admin");
    assert!(is_array(&members["members"], 0));
    assert_eq!(a("sessions.patch")["ok"], true);
}

/// After a turn the session-scoped answers carry the session's real data: describe has the
/// row, the branch list has the transcript's one branch, chat.startup the messages.
#[tokio::test]
async fn after_a_turn_the_session_answers_carry_its_data() {
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, _) = connect_ui(&gw).await;
    ok(&mut ws, "sessions.subscribe", json!({})).await;
    ok(
        &mut ws,
        "chat.send",
        json!({"sessionKey": MAIN, "message": "hello from the control ui", "deliver": false,
               "idempotencyKey": "ui-run-1"}),
    )
    .await;
    ws.recv_until(T, |v| {
        v["event"] == "chat"
            && v["payload"]["runId"] == "ui-run-1"
            && v["payload"]["state"] == "final"
    })
    .await;
    let d = ok(&mut ws, "sessions.describe", json!({"key": MAIN})).await;
    assert_eq!(d["session"]["key"], MAIN, "{d}");
    let b = ok(
        &mut ws,
        "sessions.branches.list",
        json!({"sessionKey": MAIN}),
    )
    .await;
    let branch = &b["branches"][0];
    assert_eq!(branch["messageCount"], 2, "{b}");
    assert_eq!(branch["headline"], "Hello from the fake LLM!");
    assert_eq!(branch["active"], true);
    assert!(branch["updatedAt"].as_str().unwrap().ends_with('Z'), "{b}");
    let h = ok(
        &mut ws,
        "chat.startup",
        json!({"sessionKey": MAIN, "limit": 80, "maxBytes": 262144}),
    )
    .await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 2, "{h}");
    assert_eq!(h["messages"][0]["idempotencyKey"], "ui-run-1:user");
    assert_eq!(branch["leafEntryId"], h["messages"][1]["__openclaw"]["id"]);
    // The UI marks the session read when it opens it.
    let p = ok(
        &mut ws,
        "sessions.patch",
        json!({"key": MAIN, "unread": false}),
    )
    .await;
    assert_eq!(p["key"], MAIN);
}

/// Bad params get a clear INVALID_REQUEST, not a silent success.
#[tokio::test]
async fn bad_params_are_refused_clearly() {
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, _) = connect_ui(&gw).await;
    let too_many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    for (method, params, needle) in [
        ("sessions.observer.visibility", json!({}), "visible"),
        (
            "sessions.viewers.set",
            json!({"sessionKeys": too_many}),
            "at most 100",
        ),
        (
            "sessions.viewers.set",
            json!({"sessionKeys": "main"}),
            "must be array",
        ),
        ("board.get", json!({}), "sessionKey"),
        (
            "sessions.branches.list",
            json!({"sessionKey": 5}),
            "sessionKey",
        ),
        ("users.prefs.get", json!({"keys": "ui.theme"}), "keys"),
        ("plugin.surface.refresh", json!({}), "surface"),
        (
            "sessions.patch",
            json!({"key": MAIN, "unread": "no"}),
            "unread",
        ),
        (
            "sessions.patch",
            json!({"key": MAIN, "unread": true}),
            "not supported",
        ),
        (
            "sessions.messages.subscribe",
            json!({"key": MAIN, "includeApprovals": 1}),
            "includeApprovals",
        ),
    ] {
        let res = ws.call(method, params.clone()).await;
        assert_eq!(res["ok"], false, "{method} {params}: {res}");
        assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
        let msg = res["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method}: {msg}");
    }
}

/// A read-only client may call the read methods; `sessions.groups.defaults` needs write, as
/// OpenClaw classifies it.
#[tokio::test]
async fn scopes_follow_openclaws_classification() {
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    for m in [
        "projects.list",
        "talk.catalog",
        "sessions.groups.list",
        "mentions.list",
    ] {
        let res = ws.call(m, json!({})).await;
        assert_eq!(res["ok"], true, "{m}: {res}");
    }
    let res = ws.call("sessions.groups.defaults", json!({})).await;
    assert_eq!(
        res["error"]["message"], "missing scope: operator.write",
        "{res}"
    );
}

/// A `chat.send` run emits nothing until its client has read the acknowledgement (the ping
/// queued after it is answered). OpenClaw's TUI handles every frame of one socket read before
/// its `await chat.send` continues; run events in the same read as the ack left it busy
/// forever after a fast turn (compat_openclaw::openclaw_tui_new_creates_and_switches_to_a_new_session).
#[tokio::test]
async fn a_chat_send_run_waits_until_the_client_has_read_its_ack() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    ws.send_json(&json!({"type": "req", "id": "send-1", "method": "chat.send",
                         "params": {"sessionKey": MAIN, "message": "hi", "idempotencyKey": "gate-1"}}))
        .await;
    // Read raw frames (no reply to pings yet): the ack, then a ping, and no run event.
    let mut saw_ack = false;
    let ping = loop {
        let msg = tokio::time::timeout(T, ws.ws.next())
            .await
            .expect("frame before the deadline")
            .expect("socket open")
            .expect("frame");
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert!(
                    v["event"] != "agent" && v["event"] != "chat",
                    "a run event before the ack was read: {v}"
                );
                if v["id"] == "send-1" {
                    assert_eq!(v["payload"]["status"], "started", "{v}");
                    saw_ack = true;
                }
            }
            Message::Ping(p) => break p,
            _ => {}
        }
    };
    assert!(saw_ack, "the ping came before the ack");
    // Unanswered, the run does not start: the model is not called.
    assert!(
        !llm.wait_for_requests(1, Duration::from_millis(400)).await,
        "the run started before the client answered the ping"
    );
    // The pong opens it: the turn completes.
    ws.ws.send(Message::Pong(ping)).await.unwrap();
    let fin = ws
        .recv_until(T, |v| {
            v["event"] == "chat" && v["payload"]["state"] == "final"
        })
        .await;
    assert_eq!(fin["payload"]["runId"], "gate-1");
    assert_eq!(llm.request_count(), 1);
}

/// A client that never answers pings still gets its run, after a bounded wait.
#[tokio::test]
async fn a_client_that_never_pongs_still_gets_its_run() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let llm = FakeLlm::start().await;
    let gw = start(&llm);
    let (mut ws, _) =
        clawgate_testkit::ws::connect_cli(gw.addr, &gw.token(), &["operator.write"]).await;
    ws.send_json(&json!({"type": "req", "id": "send-1", "method": "chat.send",
                         "params": {"sessionKey": MAIN, "message": "hi", "idempotencyKey": "gate-2"}}))
        .await;
    // Nothing is read (tungstenite answers a ping only while reading), so no pong goes out:
    // the gateway stops waiting after its bound and the run starts anyway.
    assert!(
        llm.wait_for_requests(1, Duration::from_secs(5)).await,
        "the run never started without a pong"
    );
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = tokio::time::timeout(left, ws.ws.next())
            .await
            .expect("final before the deadline")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["event"] == "chat" && v["payload"]["state"] == "final" {
                break;
            }
        }
    }
}
