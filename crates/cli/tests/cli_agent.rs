//! `clawgate agent` and `clawgate chat` against the real gateway and a fake LLM.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::{FakeLlm, GatewayProcess};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

fn setup() -> (GatewayProcess, FakeLlm) {
    let fake = FakeLlm::start_blocking();
    let cfg = format!(
        "models:\n  providers:\n    fake:\n      baseUrl: {}\n      models: [fake-model]\nagents:\n  defaults:\n    model: fake/fake-model\n",
        fake.openai_base_url()
    );
    (
        GatewayProcess::start(
            bin(),
            Options {
                config: Some(cfg),
                ..Options::default()
            },
        ),
        fake,
    )
}

fn cmd(gw: &GatewayProcess) -> Command {
    gw.cli(bin())
}

#[test]
fn agent_streams_the_reply_to_the_terminal() {
    let (gw, fake) = setup();
    let out = cmd(&gw)
        .args(["agent", "--message", "hello", "--session", "cli-1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Hello from the fake LLM!"
    );
    let out = cmd(&gw)
        .args([
            "agent",
            "--message",
            "hello again",
            "--session",
            "cli-1",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["payload"]["result"]["payloads"][0]["text"],
        "Hello from the fake LLM!"
    );
    // The second turn carried the first as context.
    assert_eq!(
        fake.requests()[1].body["messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let out = cmd(&gw)
        .args(["agent", "--message", "ERR400TEST", "--session", "cli-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}

#[test]
fn chat_is_interactive() {
    let (gw, fake) = setup();
    let mut child = cmd(&gw)
        .args(["chat", "--session", "cli-chat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"hello\n/model fake/fake-model\n/reset\n")
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(so.contains("Hello from the fake LLM!"), "{so}");
    assert!(so.contains("(model: fake/fake-model)"), "{so}");
    assert!(so.contains("(new session)"), "{so}");
    assert_eq!(fake.request_count(), 1);
}
