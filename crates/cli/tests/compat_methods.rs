//! Client compatibility at the method level (issue 10 §3): methods OpenClaw's clients call
//! that clawgate answers, and "unknown method" (not a scope error) for those it does not
//! implement. The real binary over real sockets, with the fake LLM and fake Telegram.

use base64::Engine;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{connect_cli, RawWs};
use clawgate_testkit::{wait_for, FakeLlm, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use sha2::Digest;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const ALL: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn llm_config(llm: &FakeLlm) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        llm.openai_base_url()
    )
}

fn start_with(config: String) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            ..Options::default()
        },
    )
}

async fn cli(gw: &GatewayProcess, scopes: &[&str]) -> RawWs {
    connect_cli(gw.addr, &gw.token(), scopes).await.0
}

fn assert_unknown(res: &Value, method: &str) {
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(
        res["error"]["message"],
        format!("unknown method: {method}"),
        "{res}"
    );
}

fn assert_forbidden(res: &Value, scope: &str) {
    assert_eq!(res["error"]["code"], "FORBIDDEN", "{res}");
    assert_eq!(
        res["error"]["message"],
        format!("missing scope: {scope}"),
        "{res}"
    );
}

fn assert_invalid(res: &Value) {
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
}

#[tokio::test]
async fn unimplemented_methods_are_unknown_for_every_client_not_a_scope_error() {
    let gw = GatewayProcess::start(bin(), Options::default());
    // `openclaw gateway call skills.status` asks for operator.read only (OpenClaw classifies
    // it as a read method); it must learn that the method is missing, not that it lacks admin.
    let mut read = cli(&gw, &["operator.read"]).await;
    for m in ["skills.status", "usage.status", "no.such.method"] {
        assert_unknown(&read.call(m, json!({})).await, m);
    }
    let mut none = cli(&gw, &[]).await;
    assert_unknown(&none.call("usage.status", json!({})).await, "usage.status");
    // Methods that exist still check scopes.
    assert_forbidden(
        &read.call("device.pair.list", json!({})).await,
        "operator.pairing",
    );
    assert_forbidden(
        &read
            .call("sessions.reset", json!({"key": "agent:main:main"}))
            .await,
        "operator.admin",
    );
    assert_forbidden(
        &read.call("wake", json!({"mode": "now", "text": "x"})).await,
        "operator.write",
    );
    assert_forbidden(
        &read.call("sessions.create", json!({})).await,
        "operator.write",
    );
    assert_forbidden(
        &read.call("channels.pairing.list", json!({})).await,
        "operator.pairing",
    );
    assert_forbidden(
        &read.call("openclaw.approval.list", json!({})).await,
        "operator.approvals",
    );
    assert_forbidden(&none.call("system.info", json!({})).await, "operator.read");
    // An admin sees the same unknown-method answer.
    let mut admin = cli(&gw, &["operator.admin"]).await;
    assert_unknown(
        &admin.call("skills.status", json!({})).await,
        "skills.status",
    );
}

#[tokio::test]
async fn the_new_methods_are_advertised_in_hello() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let (_ws, hello) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let methods: Vec<&str> = hello["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in [
        "sessions.create",
        "wake",
        "openclaw.approval.list",
        "channels.pairing.list",
        "channels.pairing.approve",
        "channels.pairing.dismiss",
        "system.info",
        "gateway.identity.get",
        "pairing.list",
        "pairing.approve",
    ] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
}

#[tokio::test]
async fn openclaw_approval_list_is_an_honest_empty_list() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let mut ws = cli(&gw, &["operator.approvals"]).await;
    let res = ws.call("openclaw.approval.list", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"], json!([]));
}

#[tokio::test]
async fn system_info_describes_this_host_and_process() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let (mut ws, hello) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let res = ws.call("system.info", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let v = &res["payload"];
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["hostname"], hostname.trim());
    assert_eq!(v["machineName"], hostname.trim());
    assert_eq!(v["platform"], "linux");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["release"], release.trim());
    assert_eq!(v["osLabel"], format!("Linux {}", release.trim()));
    assert!(
        ["x64", "arm64"].contains(&v["arch"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(v["pid"], gw.child.id());
    assert_eq!(v["port"], gw.port());
    assert_eq!(v["processInstanceId"], hello["server"]["bootId"]);
    assert!(v["nodeVersion"].is_string(), "{v}");
    assert!(v["cpuCount"].as_u64().unwrap() >= 1);
    let total = v["memoryTotalBytes"].as_u64().unwrap();
    assert!(
        total > 0 && v["memoryFreeBytes"].as_u64().unwrap() <= total,
        "{v}"
    );
    assert!(v["uptimeMs"].is_u64());
    assert!(v["diskTotalBytes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["disks"][0]["path"], v["diskPath"]);
    // OpenClaw's params are a closed empty object.
    assert_invalid(&ws.call("system.info", json!({"extra": 1})).await);
}

#[tokio::test]
async fn gateway_identity_is_an_ed25519_key_that_survives_restarts() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let mut ws = cli(&gw, &["operator.read"]).await;
    let res = ws.call("gateway.identity.get", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let id = res["payload"].clone();
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id["publicKey"].as_str().unwrap())
        .unwrap();
    assert_eq!(pk.len(), 32);
    let raw: [u8; 32] = pk.clone().try_into().unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("a valid Ed25519 point");
    assert_eq!(id["deviceId"], hex::encode(sha2::Sha256::digest(&pk)));
    assert_eq!(
        ws.call("gateway.identity.get", json!({})).await["payload"],
        id
    );
    drop(ws);
    let home = gw.stop();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let mut ws = cli(&gw, &["operator.read"]).await;
    assert_eq!(
        ws.call("gateway.identity.get", json!({})).await["payload"],
        id
    );
}

#[tokio::test]
async fn sessions_create_makes_a_new_session_as_the_tui_new_command_does() {
    let llm = FakeLlm::start().await;
    let gw = start_with(llm_config(&llm));
    let mut ws = cli(&gw, ALL).await;
    // The TUI's `/new`: a bare fresh key, the agent, emitCommandHooks:false.
    let res = ws
        .call(
            "sessions.create",
            json!({"key": "tui-4f1c", "agentId": "main", "emitCommandHooks": false}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let v = &res["payload"];
    assert_eq!(v["ok"], true);
    assert_eq!(v["key"], "agent:main:tui-4f1c");
    let sid = v["sessionId"].as_str().unwrap().to_string();
    assert!(!sid.is_empty());
    assert_eq!(v["entry"]["sessionId"], sid.as_str());
    assert_eq!(v["runStarted"], false);
    assert_eq!(v["resolved"]["modelProvider"], "fake");
    assert_eq!(v["resolved"]["model"], "fake-model");
    let list = ws.call("sessions.list", json!({})).await;
    let keys: Vec<&str> = list["payload"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(keys.contains(&"agent:main:tui-4f1c"), "{list}");
    // The TUI then loads the (empty) history of the new key.
    let h = ws
        .call("chat.history", json!({"sessionKey": "agent:main:tui-4f1c"}))
        .await;
    assert_eq!(h["payload"]["messages"], json!([]), "{h}");
    // The same key again adopts the session as it is.
    let again = ws
        .call("sessions.create", json!({"key": "agent:main:tui-4f1c"}))
        .await;
    assert_eq!(again["payload"]["sessionId"], sid.as_str(), "{again}");

    // Without a key a fresh one is made; label and model apply to the new session.
    let res = ws
        .call(
            "sessions.create",
            json!({"label": "Research", "model": "fake/fake-model"}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let key = res["payload"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("agent:main:") && key.len() > 20, "{key}");
    let d = ws.call("sessions.describe", json!({"key": key})).await;
    assert_eq!(d["payload"]["session"]["label"], "Research", "{d}");

    // A first message starts the first turn.
    let res = ws
        .call(
            "sessions.create",
            json!({"key": "first-turn", "message": "hello new session", "idempotencyKey": "run-new-1"}),
        )
        .await;
    assert_eq!(res["payload"]["runStarted"], true, "{res}");
    assert_eq!(res["payload"]["runId"], "run-new-1");
    assert!(
        llm.wait_for_requests(1, T).await,
        "the first turn never ran"
    );
    let h = wait_for("the reply in the new session", T, || {
        let (addr, token) = (gw.addr, gw.token());
        async move {
            let (mut w, _) = connect_cli(addr, &token, &["operator.read"]).await;
            let h = w
                .call(
                    "chat.history",
                    json!({"sessionKey": "agent:main:first-turn"}),
                )
                .await;
            (h["payload"]["messages"].as_array().map_or(0, Vec::len) == 2).then_some(h)
        }
    })
    .await;
    assert_eq!(h["payload"]["messages"][0]["content"], "hello new session");

    // Refused: options this gateway does not have, unknown properties, other agents, bad models.
    assert_invalid(&ws.call("sessions.create", json!({"worktree": true})).await);
    assert_invalid(&ws.call("sessions.create", json!({"bogus": 1})).await);
    assert_invalid(
        &ws.call("sessions.create", json!({"key": "agent:ops:x"}))
            .await,
    );
    assert_invalid(
        &ws.call("sessions.create", json!({"key": "x", "agentId": "ops"}))
            .await,
    );
    assert_invalid(
        &ws.call("sessions.create", json!({"model": "nope/none"}))
            .await,
    );
}

#[tokio::test]
async fn wake_queues_a_system_event_that_the_next_turn_sees_once() {
    let llm = FakeLlm::start().await;
    let gw = start_with(llm_config(&llm));
    let mut ws = cli(&gw, &["operator.read", "operator.write"]).await;
    let res = ws
        .call(
            "wake",
            json!({"mode": "next-heartbeat", "text": "deploy finished"}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"], json!({"ok": true}));
    let st = ws.call("status", json!({})).await;
    assert_eq!(
        st["payload"]["queuedSystemEvents"],
        json!(["deploy finished"]),
        "{st}"
    );
    // A turn in another session does not take it.
    ws.call(
        "chat.send",
        json!({"sessionKey": "other", "message": "one", "idempotencyKey": "w-1"}),
    )
    .await;
    assert!(llm.wait_for_requests(1, T).await);
    let last_user = |n: usize| {
        let reqs = llm.requests();
        reqs[n].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(last_user(0), "one");
    // The main session's next turn sees it before the message, then it is gone.
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": "main", "message": "status?", "idempotencyKey": "w-2"}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(llm.wait_for_requests(2, T).await);
    assert_eq!(last_user(1), "System: deploy finished\n\nstatus?");
    let st = ws.call("status", json!({})).await;
    assert_eq!(st["payload"]["queuedSystemEvents"], json!([]), "{st}");
    wait_for("the main turn to finish", T, || {
        let (addr, token) = (gw.addr, gw.token());
        async move {
            let (mut w, _) = connect_cli(addr, &token, &["operator.read"]).await;
            let h = w.call("chat.history", json!({"sessionKey": "main"})).await;
            (h["payload"]["messages"].as_array().map_or(0, Vec::len) == 2).then_some(())
        }
    })
    .await;
    // The transcript keeps the user's own words.
    let h = ws.call("chat.history", json!({"sessionKey": "main"})).await;
    assert_eq!(h["payload"]["messages"][0]["content"], "status?", "{h}");
    ws.call(
        "chat.send",
        json!({"sessionKey": "main", "message": "again", "idempotencyKey": "w-3"}),
    )
    .await;
    assert!(llm.wait_for_requests(3, T).await);
    assert_eq!(last_user(2), "again");

    // A session key targets that session; params are checked.
    let res = ws
        .call(
            "wake",
            json!({"mode": "now", "text": "build broke", "sessionKey": "agent:main:ops"}),
        )
        .await;
    assert_eq!(res["payload"]["ok"], true, "{res}");
    assert_invalid(&ws.call("wake", json!({"mode": "now"})).await);
    assert_invalid(&ws.call("wake", json!({"mode": "soon", "text": "x"})).await);
    assert_invalid(&ws.call("wake", json!({"text": "x"})).await);
    assert_invalid(
        &ws.call(
            "wake",
            json!({"mode": "now", "text": "x", "sessionKey": "agent:main:a", "agentId": "ops"}),
        )
        .await,
    );
}

fn code_of(text: &str) -> String {
    text.split("Pairing code: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn channels_pairing_methods_list_approve_and_dismiss_telegram_requests() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let config = format!(
        "{}channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n",
        llm_config(&llm),
        tg.token(),
        tg.api_root()
    );
    let gw = start_with(config);
    tg.inject_private_text(777, "hi there");
    let sent = tg.wait_for_sent(1, T).await;
    let code777 = code_of(&sent[0].text);
    tg.inject_private_text(778, "me too");
    let sent = tg.wait_for_sent(2, T).await;
    let code778 = code_of(&sent[1].text);

    let mut ws = cli(&gw, &["operator.pairing"]).await;
    let res = ws.call("channels.pairing.list", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let v = &res["payload"];
    assert_eq!(
        v["accounts"],
        json!([{"channel": "telegram", "channelLabel": "Telegram", "accountId": "default", "notifySupported": true}])
    );
    assert_eq!(v["commandOwnerConfigured"], false);
    assert_eq!(v["limits"]["pendingPerAccount"], 3);
    assert_eq!(v["limits"]["ttlMs"], 3_600_000);
    let reqs = v["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "{v}");
    let r = reqs.iter().find(|r| r["senderId"] == "777").unwrap();
    assert_eq!(r["requestId"], code777.as_str());
    assert_eq!(r["channel"], "telegram");
    assert_eq!(r["accountId"], "default");
    assert!(!r["senderLabel"].as_str().unwrap().is_empty());
    for k in ["createdAt", "lastSeenAt", "expiresAt"] {
        let t = r[k].as_str().unwrap();
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{k}: {t}"
        );
    }
    // The same requests as our own pairing.list.
    let ours = ws
        .call("pairing.list", json!({"channel": "telegram"}))
        .await;
    assert_eq!(ours["payload"]["requests"].as_array().unwrap().len(), 2);
    // Filters.
    let none = ws
        .call("channels.pairing.list", json!({"accountId": "work"}))
        .await;
    assert_eq!(none["payload"]["requests"], json!([]), "{none}");

    // Dismiss 778: the request goes, the sender is not allowed.
    let res = ws
        .call(
            "channels.pairing.dismiss",
            json!({"channel": "telegram", "accountId": "default", "requestId": code778}),
        )
        .await;
    assert_eq!(
        res["payload"],
        json!({"requestId": code778, "senderId": "778"}),
        "{res}"
    );
    let res = ws.call("channels.pairing.list", json!({})).await;
    assert_eq!(res["payload"]["requests"].as_array().unwrap().len(), 1);

    // Approve 777 (codes are case-insensitive, as with pairing.approve).
    let wrong_account = ws
        .call(
            "channels.pairing.approve",
            json!({"channel": "telegram", "accountId": "work", "requestId": code777}),
        )
        .await;
    assert_invalid(&wrong_account);
    let res = ws
        .call(
            "channels.pairing.approve",
            json!({"channel": "telegram", "accountId": "default", "requestId": code777.to_lowercase(), "notify": false}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(
        res["payload"],
        json!({"requestId": code777, "senderId": "777", "notification": "not-requested", "commandOwnerBootstrap": "not-requested"})
    );
    assert_invalid(
        &ws.call(
            "channels.pairing.approve",
            json!({"channel": "telegram", "accountId": "default", "requestId": code777}),
        )
        .await,
    );
    assert_invalid(
        &ws.call("channels.pairing.approve", json!({"channel": "telegram"}))
            .await,
    );

    // 777 now reaches the agent; 778 asks again and gets a new code.
    tg.inject_private_text(777, "now?");
    let sent = tg.wait_for_sent(3, T).await;
    assert_eq!(sent[2].chat_id, 777);
    assert_eq!(sent[2].text, "Hello from the fake LLM!");
    tg.inject_private_text(778, "again");
    let sent = tg.wait_for_sent(4, T).await;
    assert_eq!(sent[3].chat_id, 778);
    assert!(sent[3].text.contains("Pairing code: "), "{}", sent[3].text);
}
