//! Issue 7, storage and growth, end to end against the real binary: the store runs off the
//! async workers, runs are capped globally, aborted queued runs release their waiters,
//! finished rows are pruned, the log rotates by size, and an interrupted Telegram send is
//! retried at restart instead of after its lease.

use clawgate_testkit::fake_llm::Step;
use clawgate_testkit::fake_telegram::Fault;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{connect_cli, RawWs};
use clawgate_testkit::{wait_for, FakeLlm, FakeTelegram, GatewayProcess};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const SCOPES: &[&str] = &["operator.admin", "operator.read", "operator.write"];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn llm_config(llm: &FakeLlm, extra_defaults: &str, extra: &str) -> String {
    format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\n      maxRetries: 0\n\
agents:\n  defaults:\n    model: fake/fake-model\n{extra_defaults}{extra}",
        llm.openai_base_url()
    )
}

fn start(config: String, env: &[(&str, &str)]) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        },
    )
}

async fn client(gw: &GatewayProcess) -> RawWs {
    connect_cli(gw.addr, &gw.token(), SCOPES).await.0
}

async fn send(ws: &mut RawWs, session: &str, run: &str) -> Value {
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": session, "message": format!("hi from {run}"), "idempotencyKey": run}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    res
}

/// Collects `chat`/`agent` events until `done` says the list is complete.
async fn events_until(ws: &mut RawWs, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = Instant::now() + T;
    while !done(&out) {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = ws.recv(left).await.expect("events ended early");
        if v["type"] == "event" && (v["event"] == "chat" || v["event"] == "agent") {
            out.push(v);
        }
    }
    out
}

fn is_terminal(e: &Value, run: &str) -> bool {
    e["event"] == "chat"
        && e["payload"]["runId"] == run
        && matches!(
            e["payload"]["state"].as_str(),
            Some("final" | "error" | "aborted")
        )
}

fn lifecycle_start(e: &Value, run: &str) -> bool {
    e["event"] == "agent"
        && e["payload"]["runId"] == run
        && e["payload"]["stream"] == "lifecycle"
        && e["payload"]["data"]["phase"] == "start"
}

fn state_db(gw: &GatewayProcess) -> PathBuf {
    gw.home_path().join("state.db")
}

/// Opens the gateway's database read-only (never written by the test).
fn read_only(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// While another process holds the database's write lock, store calls wait (SQLite's busy
/// timeout). They used to wait on the async workers, so a handful of concurrent chat.send
/// calls stalled every other request, `health` included.
#[tokio::test]
async fn i7_review_blocking_health_answers_while_the_store_is_locked() {
    let llm = FakeLlm::start().await;
    let gw = start(llm_config(&llm, "", ""), &[]);
    let mut senders = Vec::new();
    for _ in 0..8 {
        senders.push(client(&gw).await);
    }
    let mut probe = client(&gw).await;
    // Make sure the file exists and the schema is there before locking it.
    assert_eq!(probe.call("health", json!({})).await["ok"], true);

    let locker = rusqlite::Connection::open(state_db(&gw)).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for (i, ws) in senders.iter_mut().enumerate() {
        ws.send_json(&json!({"type": "req", "id": "s", "method": "chat.send",
            "params": {"sessionKey": format!("blocked-{i}"), "message": "hi", "idempotencyKey": format!("blocked-{i}")}}))
            .await;
    }
    // Probe for two seconds while the writes wait for the lock: every answer must be quick.
    let until = Instant::now() + Duration::from_secs(2);
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let id = format!("h{n}");
        let t0 = Instant::now();
        probe
            .send_json(&json!({"type": "req", "id": id, "method": "health", "params": {}}))
            .await;
        let got = tokio::time::timeout(
            Duration::from_millis(1500),
            probe.recv_until(Duration::from_secs(10), |v| {
                v["type"] == "res" && v["id"] == id.as_str()
            }),
        )
        .await;
        let took = t0.elapsed();
        worst = worst.max(took);
        if got.is_err() {
            break;
        }
        assert_eq!(got.unwrap()["ok"], true);
    }
    locker.execute_batch("ROLLBACK").unwrap();
    assert!(
        worst < Duration::from_millis(1000),
        "health took {worst:?} while the store was blocked"
    );
    // Once the lock is gone the queued writes go through.
    for ws in senders.iter_mut() {
        let res = ws
            .recv_until(T, |v| v["type"] == "res" && v["id"] == "s")
            .await;
        assert_eq!(res["ok"], true, "{res}");
    }
}

/// `agents.defaults.maxConcurrent: 1`: a run in another session waits until the first ends.
#[tokio::test]
async fn i7_review_growth_max_concurrent_one_runs_sessions_one_after_another() {
    let llm = FakeLlm::start().await;
    llm.push(Step::Text {
        chunks: vec!["slow".into(), " one".into(), " done".into()],
        delay_ms: 300,
    });
    llm.push(Step::text("quick two"));
    let gw = start(llm_config(&llm, "    maxConcurrent: 1\n", ""), &[]);
    let mut ws = client(&gw).await;
    send(&mut ws, "first", "run-a").await;
    send(&mut ws, "second", "run-b").await;
    // While run-a streams, run-b has not reached the model and waits for a slot.
    let early = events_until(&mut ws, |ev| {
        ev.iter().any(|e| {
            e["event"] == "chat"
                && e["payload"]["runId"] == "run-a"
                && e["payload"]["state"] == "delta"
        })
    })
    .await;
    assert_eq!(llm.request_count(), 1, "run-b must not reach the model yet");
    let st = ws.call("status", json!({})).await;
    assert_eq!(
        st["payload"]["agentRuns"],
        json!({"running": 1, "waiting": 1, "maxConcurrent": 1, "waiters": 2}),
        "{st}"
    );
    let rest = events_until(&mut ws, |ev| ev.iter().any(|e| is_terminal(e, "run-b"))).await;
    let all: Vec<Value> = early.into_iter().chain(rest).collect();
    let a_end = all.iter().position(|e| is_terminal(e, "run-a")).unwrap();
    let b_start = all
        .iter()
        .position(|e| lifecycle_start(e, "run-b"))
        .unwrap();
    assert!(
        b_start > a_end,
        "run-b started (event {b_start}) before run-a ended (event {a_end})"
    );
    assert_eq!(all[a_end]["payload"]["state"], "final");
    assert!(all
        .iter()
        .any(|e| is_terminal(e, "run-b") && e["payload"]["state"] == "final"));
    assert_eq!(llm.request_count(), 2);
}

/// Runs waiting to start are bounded over all sessions; beyond it, a clear error.
#[tokio::test]
async fn i7_review_growth_waiting_runs_are_bounded_with_a_clear_error() {
    let llm = FakeLlm::start().await;
    llm.push(Step::Hang { ms: 30_000 });
    let gw = start(
        llm_config(&llm, "    maxConcurrent: 1\n", ""),
        &[("CLAWGATE_MAX_WAITING_RUNS", "2")],
    );
    let mut ws = client(&gw).await;
    send(&mut ws, "s1", "w1").await;
    assert!(llm.wait_for_requests(1, T).await);
    send(&mut ws, "s2", "w2").await;
    send(&mut ws, "s3", "w3").await;
    let res = ws
        .call(
            "chat.send",
            json!({"sessionKey": "s4", "message": "one too many", "idempotencyKey": "w4"}),
        )
        .await;
    assert_eq!(res["ok"], false, "{res}");
    let msg = res["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("busy") && msg.contains("maxConcurrent"),
        "unclear error: {res}"
    );
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    // A refused run leaves nothing behind: no transcript entry, no run record, no claimed key;
    // and a retry of a key that did start still gets its run while the gateway is busy.
    let hist = ws.call("chat.history", json!({"sessionKey": "s4"})).await;
    assert_eq!(hist["payload"]["totalMessages"], 0, "{hist}");
    let again = ws
        .call(
            "chat.send",
            json!({"sessionKey": "s2", "message": "retry", "idempotencyKey": "w2"}),
        )
        .await;
    assert_eq!(again["payload"]["status"], "in_flight", "{again}");
    // Aborting a waiting run frees its place.
    let ab = ws.call("chat.abort", json!({"sessionKey": "s2"})).await;
    assert_eq!(ab["payload"]["runIds"], json!(["w2"]), "{ab}");
    send(&mut ws, "s4", "w5").await;
}

/// Queued runs dropped by `chat.abort` used to keep their waiter forever (never counted
/// against the bound of kept summaries). Now they are released like any finished run, and
/// `agent.wait` on one answers at once with its aborted status.
#[tokio::test]
async fn i7_review_growth_runs_aborted_before_start_release_their_waiters() {
    let llm = FakeLlm::start().await;
    llm.push(Step::Hang { ms: 30_000 });
    let gw = start(
        llm_config(&llm, "", ""),
        &[("CLAWGATE_MAX_FINISHED_RUNS", "2")],
    );
    let mut ws = client(&gw).await;
    send(&mut ws, "q", "q-run").await;
    assert!(llm.wait_for_requests(1, T).await);
    for i in 0..5 {
        send(&mut ws, "q", &format!("q-queued-{i}")).await;
    }
    let st = ws.call("status", json!({})).await;
    assert_eq!(st["payload"]["agentRuns"]["waiting"], 5, "{st}");
    let ab = ws.call("chat.abort", json!({"sessionKey": "q"})).await;
    assert_eq!(
        ab["payload"]["runIds"].as_array().map(Vec::len),
        Some(6),
        "{ab}"
    );
    let t0 = Instant::now();
    let w = ws
        .call(
            "agent.wait",
            json!({"runId": "q-queued-1", "timeoutMs": 10_000}),
        )
        .await;
    assert!(t0.elapsed() < Duration::from_secs(2), "agent.wait hung");
    assert_eq!(w["payload"]["status"], "timeout", "{w}");
    assert_eq!(w["payload"]["stopReason"], "rpc", "{w}");
    let st = ws.call("status", json!({})).await;
    let runs = &st["payload"]["agentRuns"];
    assert_eq!(runs["waiting"], 0, "{st}");
    assert_eq!(runs["running"], 0, "{st}");
    assert_eq!(runs["waiters"], 2, "{st}");
}

/// Finished inbound, outbox and idempotency rows are pruned on a schedule; unfinished ones
/// (a message still being answered, a chunk not yet sent, the key of a running run) stay.
#[tokio::test]
async fn i7_review_growth_retention_prunes_finished_rows_and_keeps_pending_ones() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let telegram = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [\"42\"]\n",
        tg.token(),
        tg.api_root()
    );
    let retention =
        "store:\n  retention:\n    inboundDays: 0\n    outboxDays: 0\n    idempotencyHours: 0\n";
    let gw = start(
        llm_config(&llm, "", &format!("{telegram}{retention}")),
        &[("CLAWGATE_PRUNE_INTERVAL_MS", "200")],
    );
    let mut ws = client(&gw).await;
    // Finished: a Telegram message answered (inbound done, outbox sent) and a chat run.
    llm.push(Step::text("first reply"));
    tg.inject_private_text(42, "hello");
    assert_eq!(tg.wait_for_sent(1, T).await.len(), 1);
    llm.push(Step::text("done"));
    send(&mut ws, "x", "k-done").await;
    events_until(&mut ws, |ev| ev.iter().any(|e| is_terminal(e, "k-done"))).await;
    // Unfinished: a chat run still running, a Telegram message still being answered, and a
    // chunk Telegram asked to retry in an hour.
    llm.push(Step::Hang { ms: 60_000 });
    send(&mut ws, "y", "k-running").await;
    assert!(llm.wait_for_requests(3, T).await);
    llm.push(Step::Hang { ms: 60_000 });
    tg.inject_private_text(42, "still thinking");
    assert!(llm.wait_for_requests(4, T).await);
    tg.fail_next("sendMessage", Fault::RetryAfter(3600));
    ws.send_json(&json!({"type": "req", "id": "out", "method": "send",
        "params": {"to": "43", "message": "later", "idempotencyKey": "out-1"}}))
        .await;
    wait_for("the rate-limited send", T, || {
        let n = tg.call_count("sendMessage");
        async move { (n >= 2).then_some(()) }
    })
    .await;

    let db = read_only(&state_db(&gw));
    wait_for("the finished rows to be pruned", T, || {
        let done = count(
            &db,
            "SELECT count(*) FROM channel_inbound WHERE status <> 'pending'",
        ) + count(
            &db,
            "SELECT count(*) FROM channel_outbox WHERE status IN ('sent', 'failed')",
        ) + count(&db, "SELECT count(*) FROM idempotency WHERE key = 'k-done'");
        async move { (done == 0).then_some(()) }
    })
    .await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM channel_inbound WHERE status = 'pending'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM channel_outbox WHERE status IN ('pending', 'sending')"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM idempotency WHERE key = 'k-running'"
        ),
        1
    );
    // A retry of the running run's key still finds it instead of starting a second run.
    let again = send(&mut ws, "y", "k-running").await;
    assert_eq!(again["payload"]["status"], "in_flight", "{again}");
}

/// The log file rotates by size while the gateway runs, keeping `logging.maxFiles` old files.
#[tokio::test]
async fn i7_review_growth_log_file_rotates_by_size_while_running() {
    let llm = FakeLlm::start().await;
    let gw = start(
        llm_config(&llm, "", "logging:\n  maxFileBytes: 4096\n  maxFiles: 2\n"),
        &[("CLAWGATE_LOG", "debug")],
    );
    let log = gw.home_path().join("logs").join("gateway.log");
    let numbered = |n: u32| gw.home_path().join("logs").join(format!("gateway.log.{n}"));
    // At debug level every connect logs a line ("client connected").
    let mut connects = 0;
    while !numbered(2).exists() {
        assert!(connects < 400, "the log never rotated twice");
        let _ = client(&gw).await;
        connects += 1;
    }
    // A few more rotations: still at most two old files.
    let first_rotated = std::fs::read_to_string(numbered(2)).unwrap();
    wait_for("another rotation", T, || {
        let changed = std::fs::read_to_string(numbered(2)).unwrap_or_default() != first_rotated;
        let addr = gw.addr;
        let token = gw.token();
        async move {
            if !changed {
                let _ = connect_cli(addr, &token, SCOPES).await;
            }
            changed.then_some(())
        }
    })
    .await;
    assert!(
        !numbered(3).exists(),
        "more old files than logging.maxFiles"
    );
    use std::os::unix::fs::PermissionsExt;
    for p in [log.clone(), numbered(1), numbered(2)] {
        let meta = std::fs::metadata(&p).unwrap();
        assert!(
            meta.len() <= 4096,
            "{} is {} bytes",
            p.display(),
            meta.len()
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
    let text = std::fs::read_to_string(numbered(1)).unwrap();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "whole lines only"
    );
}

/// A SIGKILL while `sendMessage` is in flight: Telegram may or may not have the message (it
/// has no idempotency key), so the chunk is sent again, at once after the restart, instead of
/// after its 60 s lease, and the log says it may be a duplicate.
#[tokio::test]
async fn i7_10_send_interrupted_by_sigkill_is_retried_at_restart() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let telegram = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [\"42\"]\n",
        tg.token(),
        tg.api_root()
    );
    let gw = start(llm_config(&llm, "", &telegram), &[]);
    tg.fail_next("sendMessage", Fault::Hang);
    tg.inject_private_text(42, "hello");
    wait_for("sendMessage in flight", T, || {
        let n = tg.call_count("sendMessage");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let home = gw.stop(); // SIGKILL
    assert!(tg.sent_messages().is_empty());
    let t0 = Instant::now();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let sent = tg.wait_for_sent(1, Duration::from_secs(15)).await;
    assert_eq!(
        sent.len(),
        1,
        "the interrupted chunk was not sent again in time"
    );
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(sent[0].text, "Hello from the fake LLM!");
    assert_eq!(
        tg.call_count("sendMessage"),
        2,
        "one interrupted call, one resend"
    );
    wait_for("the warning about a possible duplicate", T, || {
        let s = gw.stderr_text();
        async move { s.contains("may see them twice").then_some(()) }
    })
    .await;
    // Delivered and recorded: never sent a third time.
    let db = read_only(&state_db(&gw));
    wait_for("the chunk to be recorded as sent", T, || {
        let n = count(
            &db,
            "SELECT count(*) FROM channel_outbox WHERE status = 'sent'",
        );
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(llm.request_count(), 1, "the reply was not generated twice");
}

/// A chunk Telegram accepted while the state database could not record it (another process
/// held the write lock) used to stay `sending` until its lease ran out and then went out a
/// second time, without any crash. Recording the delivery is now retried.
#[tokio::test]
async fn i7_10_a_delivery_that_cannot_be_recorded_at_once_is_not_sent_twice() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let telegram = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [\"42\"]\n",
        tg.token(),
        tg.api_root()
    );
    let gw = start(llm_config(&llm, "", &telegram), &[]);
    tg.fail_next("sendMessage", Fault::Stall(Duration::from_millis(1500)));
    tg.inject_private_text(42, "hello");
    wait_for("sendMessage in flight", T, || {
        let n = tg.call_count("sendMessage");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    // The chunk is claimed (committed before the HTTP call); now lock the database until the
    // gateway reports that it could not record the delivery.
    let locker = rusqlite::Connection::open(state_db(&gw)).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    wait_for("the gateway to fail recording the delivery", T, || {
        let s = gw.stderr_text();
        async move {
            s.contains("cannot record a delivered chunk yet")
                .then_some(())
        }
    })
    .await;
    locker.execute_batch("ROLLBACK").unwrap();
    let db = read_only(&state_db(&gw));
    wait_for("the delivery to be recorded", T, || {
        let n = count(
            &db,
            "SELECT count(*) FROM channel_outbox WHERE status = 'sent'",
        );
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(tg.sent_messages().len(), 1);
    assert_eq!(tg.call_count("sendMessage"), 1, "sent once");
}

/// Issue 8: a failed outbox write is an error that is logged and retried, never dropped. A
/// 429 whose retry time cannot be written (the database is locked) used to be ignored: the
/// chunk then sat `sending` until its 45 s lease ran out.
#[tokio::test]
async fn i8_a_retry_time_that_cannot_be_written_at_once_is_retried_not_dropped() {
    let llm = FakeLlm::start().await;
    let tg = FakeTelegram::start().await;
    let telegram = format!(
        "channels:\n  telegram:\n    botToken: \"{}\"\n    apiRoot: {}\n    pollTimeoutSeconds: 1\n    allowFrom: [\"42\"]\n",
        tg.token(),
        tg.api_root()
    );
    let gw = start(llm_config(&llm, "", &telegram), &[]);
    tg.fail_next(
        "sendMessage",
        Fault::StallThenRetryAfter(Duration::from_millis(1500), 1),
    );
    tg.inject_private_text(42, "hello");
    wait_for("sendMessage in flight", T, || {
        let n = tg.call_count("sendMessage");
        async move { (n >= 1).then_some(()) }
    })
    .await;
    // Hold the write lock while Telegram answers 429, until the gateway reports that it
    // could not write the retry time.
    let locker = rusqlite::Connection::open(state_db(&gw)).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    wait_for("the gateway to report the unwritten retry", T, || {
        let s = gw.stderr_text();
        async move { s.contains("cannot record a retry yet").then_some(()) }
    })
    .await;
    locker.execute_batch("ROLLBACK").unwrap();
    // Delivered after the 1 s hint, well before the 45 s lease would have freed it.
    wait_for("the reply to be delivered", T, || {
        let n = tg.sent_messages().len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    let db = read_only(&state_db(&gw));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM channel_outbox WHERE status = 'sent'"
        ),
        1
    );
    assert_eq!(tg.sent_messages().len(), 1, "sent once");
}
