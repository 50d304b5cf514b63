//! `clawgate gateway reload`: asks the running gateway to re-read config.yaml (the
//! `gateway.reload` method; SIGHUP does the same) and says what changed, what applied and
//! what waits for a restart.

use crate::commands::query;
use crate::ConnArgs;
use serde_json::{json, Value};
use std::path::PathBuf;

fn list(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub async fn gateway_reload(flag: Option<PathBuf>, conn: ConnArgs) -> u8 {
    match query(
        flag,
        &conn,
        &["operator.admin"],
        "gateway.reload",
        json!({}),
    )
    .await
    {
        Ok(None) => 0,
        Ok(Some(v)) => {
            let changed = list(&v, "changed");
            let applied = list(&v, "applied");
            let restart = list(&v, "restartRequired");
            let path = v["path"].as_str().unwrap_or("config.yaml");
            if changed.is_empty() {
                println!("Reloaded {path}: no change since the last load.");
            } else {
                println!("Reloaded {path}.");
                println!("Changed: {}", changed.join(", "));
                if applied.is_empty() {
                    println!("Applied: nothing live");
                } else {
                    println!("Applied: {}", applied.join(", "));
                }
            }
            if !restart.is_empty() {
                println!(
                    "Needs a restart (running with the old values until then): {}",
                    restart.join(", ")
                );
                println!("hint: restart the gateway (e.g. `systemctl --user restart clawgate`) to apply them");
            }
            0
        }
        Err(code) => code,
    }
}
