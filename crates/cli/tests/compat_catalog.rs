//! Client-compatibility contracts OpenClaw's clients check, against the real binary: the
//! published model catalog (`hello-ok.features.capabilities` + `models.list`), a valid cron
//! inventory page while cron is not built, and `config.schema` generated from clawgate's own
//! config model.

use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::connect_cli;
use clawgate_testkit::GatewayProcess;
use serde_json::{json, Value};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

const TWO_PROVIDERS: &str = "models:
  providers:
    local:
      baseUrl: http://127.0.0.1:9/v1
      models:
        - id: small-model
          name: Small Model
          contextWindow: 32768
    remote:
      baseUrl: https://llm.example.com/v1
      apiKey: sk-test-remote-key
      models: [big-model]
agents:
  defaults:
    model: local/small-model
";

fn start(config: &str) -> GatewayProcess {
    GatewayProcess::start(
        bin(),
        Options {
            config: Some(config.to_string()),
            ..Options::default()
        },
    )
}

fn ok(res: &Value) -> &Value {
    assert_eq!(res["ok"], true, "{res}");
    &res["payload"]
}

#[tokio::test]
async fn the_published_model_catalog_is_the_configured_models() {
    let gw = start(TWO_PROVIDERS);
    let (mut ws, hello) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    let caps = hello["features"]["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no features.capabilities: {}", hello["features"]));
    assert!(caps.contains(&json!("published-model-catalog")), "{caps:?}");

    // What `openclaw models list` sends.
    let res = ws
        .call(
            "models.list",
            json!({"view": "default", "includeDetails": true}),
        )
        .await;
    let models = ok(&res)["models"].as_array().unwrap().clone();
    let keys: Vec<String> = models
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["provider"].as_str().unwrap(),
                m["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(keys, ["local/small-model", "remote/big-model"]);
    let small = &models[0];
    assert_eq!(small["name"], "Small Model");
    assert_eq!(small["contextWindow"], 32768);
    assert_eq!(small["local"], true);
    assert_eq!(small["available"], true);
    assert_eq!(small["input"], json!(["text"]));
    assert_eq!(small["tags"], json!(["default"]));
    let big = &models[1];
    assert_eq!(big["name"], "big-model");
    assert_eq!(big["local"], false);
    assert_eq!(big["tags"], json!([]));

    // `--provider` narrows the catalog (OpenClaw sends view "all" with it).
    let res = ws
        .call(
            "models.list",
            json!({"view": "all", "provider": "remote", "includeDetails": true}),
        )
        .await;
    let only: Vec<&str> = ok(&res)["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["big-model"]);
    let res = ws.call("models.list", json!({"provider": "nobody"})).await;
    assert_eq!(ok(&res)["models"], json!([]));

    // Views OpenClaw does not define, and wrong types, are refused.
    let res = ws.call("models.list", json!({"view": "everything"})).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    let res = ws.call("models.list", json!({"provider": 7})).await;
    assert_eq!(res["ok"], false, "{res}");
}

#[tokio::test]
async fn cron_list_is_a_complete_empty_inventory_page() {
    let gw = start("");
    let (mut ws, _) = connect_cli(gw.addr, &gw.token(), &["operator.read"]).await;
    // What `openclaw cron list` sends.
    let params = json!({"includeDisabled": false, "limit": 200, "offset": 0});
    let res = ws.call("cron.list", params.clone()).await;
    let page = ok(&res).clone();
    assert_eq!(page["jobs"], json!([]));
    let rev = page["snapshotRevision"].as_str().expect("snapshotRevision");
    assert!(rev.starts_with("sha256:") && rev.len() > 20, "{rev}");
    assert_eq!(page["total"], 0);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["limit"], 200);
    assert_eq!(page["hasMore"], false);
    assert_eq!(page["nextOffset"], Value::Null);
    // The same inventory has the same revision.
    let again = ws.call("cron.list", params).await;
    assert_eq!(ok(&again)["snapshotRevision"], rev);
    // Defaults, and bounds as OpenClaw's schema has them.
    let res = ws.call("cron.list", json!({})).await;
    assert_eq!(ok(&res)["limit"], 50);
    let res = ws.call("cron.list", json!({"limit": 201})).await;
    assert_eq!(res["ok"], false, "{res}");

    let res = ws.call("cron.status", json!({})).await;
    let st = ok(&res);
    assert_eq!(st["enabled"], false);
    assert_eq!(st["jobs"], 0);
}

fn call(gw: &GatewayProcess, method: &str, params: Option<&str>) -> std::process::Output {
    let mut cmd = gw.cli(bin());
    cmd.args(["gateway", "call", method]);
    if let Some(p) = params {
        cmd.args(["--params", p]);
    }
    cmd.output().expect("run clawgate")
}

#[test]
fn config_schema_is_clawgates_own_generated_schema() {
    let gw = start(TWO_PROVIDERS);
    let out = call(&gw, "config.schema", None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let at = v["generatedAt"].as_str().expect("generatedAt");
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );

    let s = &v["schema"];
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false);
    let mut top: Vec<&String> = s["properties"].as_object().unwrap().keys().collect();
    top.sort();
    assert_eq!(
        top,
        ["agents", "channels", "gateway", "logging", "models", "session", "store", "tools"]
    );
    // Defaults come from the config model.
    let gwp = &s["properties"]["gateway"]["properties"];
    assert_eq!(gwp["port"]["default"], 18789);
    assert_eq!(gwp["port"]["maximum"], 65535);
    assert_eq!(
        gwp["auth"]["properties"]["mode"]["enum"],
        json!(["token", "password", "none"])
    );
    assert_eq!(gwp["auth"]["properties"]["token"]["writeOnly"], true);
    let provider = &s["properties"]["models"]["properties"]["providers"]["additionalProperties"];
    assert_eq!(provider["required"], json!(["baseUrl"]));
    assert_eq!(
        provider["properties"]["api"]["enum"],
        json!(["openai-completions", "anthropic-messages"])
    );
    // The channel sections are the channels this build knows.
    let channels = s["properties"]["channels"]["properties"]
        .as_object()
        .unwrap();
    for name in ["telegram", "slack"] {
        assert!(channels.contains_key(name), "{name}: {channels:?}");
    }
    // Not OpenClaw's schema: none of its top-level sections.
    for theirs in ["plugins", "hooks", "browser", "ui"] {
        assert!(s["properties"].get(theirs).is_none(), "{theirs}");
    }

    let hints = v["uiHints"].as_object().expect("uiHints");
    assert_eq!(hints["gateway.auth.token"]["sensitive"], true);
    assert_eq!(hints["models.providers.*.apiKey"]["sensitive"], true);
    assert!(hints["gateway.port"]["help"].is_string());
    // No configured value leaks into the schema.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("sk-test-remote-key"));
    assert!(!text.contains(&gw.token()));

    // `config.schema` takes no params.
    let out = call(&gw, "config.schema", Some(r#"{"path":"gateway"}"#));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unexpected property 'path'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
