//! Issue 7 hardening of device auth: approvals bounded by the approver's scopes (T34), no
//! silently widened pairing requests, probe clients limited to read, and device tokens kept
//! only as SHA-256 digests in state.db (legacy devices.json imported on start).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{cli_params, connect_cli, RawWs};
use clawgate_testkit::GatewayProcess;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

const ADMIN_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
];
/// A connection that is "remote" (behind an untrusted proxy): never auto-paired.
const REMOTE: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];

struct Device {
    key: SigningKey,
}

impl Device {
    fn new() -> Device {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        Device {
            key: SigningKey::from_bytes(&seed),
        }
    }

    fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().as_bytes()))
    }

    /// v3-signed `connect` params of a TUI asking for `scopes`.
    fn params(&self, auth: Value, nonce: &str, signed_at: i64, scopes: &[&str]) -> Value {
        let token = auth["token"]
            .as_str()
            .or(auth["deviceToken"].as_str())
            .unwrap_or("");
        let payload = format!(
            "v3|{}|openclaw-tui|ui|operator|{}|{}|{}|{}|linux|linux",
            self.id(),
            scopes.join(","),
            signed_at,
            token,
            nonce
        );
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes());
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "displayName": "openclaw-tui", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux", "mode": "ui"},
            "caps": [], "role": "operator", "scopes": scopes, "auth": auth,
            "device": {"id": self.id(), "publicKey": self.public_key(), "signature": sig, "signedAt": signed_at, "nonce": nonce},
        })
    }

    async fn connect(
        &self,
        gw: &GatewayProcess,
        auth: Value,
        scopes: &[&str],
        headers: &[(&str, &str)],
    ) -> (RawWs, Value) {
        let mut ws = RawWs::connect_with(gw.addr, headers)
            .await
            .expect("upgrade");
        let (nonce, ts) = ws.challenge().await;
        let res = ws.connect_req(self.params(auth, &nonce, ts, scopes)).await;
        (ws, res)
    }
}

fn request_id(res: &Value) -> String {
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    res["error"]["details"]["requestId"]
        .as_str()
        .expect("requestId")
        .to_string()
}

fn pending_ids(list: &Value) -> Vec<String> {
    list["payload"]["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|p| p["requestId"].as_str().unwrap().to_string())
        .collect()
}

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// T34: a device holding only `operator.pairing` cannot approve a request for more than it
/// holds; the request stays pending and a holder of the scopes can still approve it.
#[tokio::test]
async fn t34_pairing_only_device_cannot_approve_admin_request() {
    let gw = GatewayProcess::start(bin(), Options::default());
    // The approver: a device paired (locally) with operator.pairing only.
    let approver = Device::new();
    let (mut appr, res) = approver
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.pairing"],
            &[],
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(
        res["payload"]["auth"]["scopes"],
        json!(["operator.pairing"])
    );

    // A remote device asks for admin.
    let target = Device::new();
    let (_, res) = target
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, REMOTE)
        .await;
    let rid = request_id(&res);

    let r = appr
        .call("device.pair.approve", json!({"requestId": rid}))
        .await;
    assert_eq!(r["ok"], false, "pairing-only approver granted admin: {r}");
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("operator.admin") && msg.contains("operator.write"),
        "{msg}"
    );
    assert_eq!(
        r["error"]["details"]["missingScopes"],
        json!([
            "operator.admin",
            "operator.read",
            "operator.write",
            "operator.approvals"
        ]),
        "{r}"
    );
    // Still pending, and the device is still not paired.
    let list = appr.call("device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), vec![rid.clone()], "{list}");
    let (_, res) = target
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, REMOTE)
        .await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");

    // The same approver may grant what it holds itself.
    let small = Device::new();
    let (_, res) = small
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.pairing"],
            REMOTE,
        )
        .await;
    let small_rid = request_id(&res);
    let r = appr
        .call("device.pair.approve", json!({"requestId": small_rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");

    // An admin may approve anything.
    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let list = admin.call("device.pair.list", json!({})).await;
    let rid = pending_ids(&list).pop().expect("request still pending");
    let r = admin
        .call("device.pair.approve", json!({"requestId": rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let (_, res) = target
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, REMOTE)
        .await;
    assert_eq!(res["ok"], true, "after admin approval: {res}");
}

/// T33/T34: a device that asks again with wider scopes gets a NEW request id, so an approval
/// given for what the approver saw can never grant the wider scopes; and a paired device (or
/// its device token) never silently gets more than it was approved for.
#[tokio::test]
async fn t33_wider_scopes_are_never_granted_silently() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let dev = Device::new();
    let (_, res) = dev
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    let read_rid = request_id(&res);
    // Same request again: same id.
    let (_, res) = dev
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    assert_eq!(request_id(&res), read_rid);
    // Before anyone approves, the device asks for admin.
    let (_, res) = dev
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, REMOTE)
        .await;
    let admin_rid = request_id(&res);
    assert_ne!(
        admin_rid, read_rid,
        "the read-only request was widened to admin under the same id"
    );
    // Approving the id the approver saw for "read" does not grant admin.
    let r = admin
        .call("device.pair.approve", json!({"requestId": read_rid}))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["message"], "unknown requestId");
    let list = admin.call("device.pair.list", json!({})).await;
    assert_eq!(pending_ids(&list), vec![admin_rid.clone()]);
    assert_eq!(list["payload"]["paired"], json!([]), "{list}");

    // Approve a read-only request, then the device asks for admin with the shared token and
    // with its device token: neither is granted.
    let (_, res) = dev
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    let rid = request_id(&res);
    let r = admin
        .call("device.pair.approve", json!({"requestId": rid}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["payload"]["device"]["scopes"], json!(["operator.read"]));
    let (_, res) = dev
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let device_token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .expect("device token issued on the first approved connect")
        .to_string();
    let (_, res) = dev
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, REMOTE)
        .await;
    assert_eq!(res["error"]["details"]["reason"], "scope-upgrade", "{res}");
    let (_, res) = dev
        .connect(
            &gw,
            json!({"deviceToken": device_token}),
            ADMIN_SCOPES,
            REMOTE,
        )
        .await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_SCOPE_MISMATCH",
        "{res}"
    );
    // With the device token and the approved scopes: read only, admin calls refused.
    let (mut ws, res) = dev
        .connect(
            &gw,
            json!({"deviceToken": device_token}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
    let r = ws
        .call("sessions.delete", json!({"key": "agent:main:main"}))
        .await;
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
}

/// Issue 7 item 11: a `cli` client in `probe` mode gets at most `operator.read`.
#[tokio::test]
async fn i7_11_probe_mode_gets_at_most_read() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let mut p = cli_params(&gw.token(), &["operator.admin", "operator.read"]);
    p["minProtocol"] = json!(3);
    p["client"]["mode"] = json!("probe");
    p["client"]["version"] = json!("dev");
    let res = ws.connect_req(p).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
    let r = ws
        .call("sessions.delete", json!({"key": "agent:main:main"}))
        .await;
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
    assert_eq!(r["error"]["message"], "missing scope: operator.admin");
    let r = ws.call("status", json!({})).await;
    assert_eq!(r["ok"], true, "{r}");

    // Asking for admin only: nothing beyond health.
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let mut p = cli_params(&gw.token(), &["operator.admin"]);
    p["client"]["mode"] = json!("probe");
    let res = ws.connect_req(p).await;
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]), "{res}");
    let r = ws.call("config.get", json!({})).await;
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
}

/// Issue 7 item 11: device tokens are stored only as digests in state.db; the token is shown
/// once, survives a restart, and no file in the state directory holds it.
#[tokio::test]
async fn i7_11_device_token_is_never_stored_in_plaintext() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let (_, res) = dev
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_string();
    // Shown once: a later connect with the shared token does not repeat it.
    let (_, res) = dev
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"].get("deviceToken").is_none(), "{res}");
    let (_, res) = dev
        .connect(&gw, json!({"deviceToken": token}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token", "{res}");

    let home = gw.home_path();
    assert!(home.join("state.db").exists());
    assert!(!home.join("devices.json").exists());
    let hits = files_containing(&home, &token);
    assert!(hits.is_empty(), "plaintext device token in {hits:?}");

    let home = gw.stop();
    let hits = files_containing(home.path(), &token);
    assert!(hits.is_empty(), "plaintext device token in {hits:?}");
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let (_, res) = dev
        .connect(&gw, json!({"deviceToken": token}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["ok"], true, "after restart: {res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    // A wrong token is still refused after the restart.
    let (_, res) = dev
        .connect(
            &gw,
            json!({"deviceToken": "x".repeat(43)}),
            ADMIN_SCOPES,
            &[],
        )
        .await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{res}"
    );
}

/// Issue 7 item 11: a devices.json from the old format is imported into state.db on start
/// (tokens hashed) and removed; its paired devices and pending requests keep working.
#[tokio::test]
async fn i7_11_legacy_devices_json_is_imported() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let dev = Device::new();
    let pending_dev = Device::new();
    let legacy_token = "LegacyDeviceToken-0123456789abcdefghijklmnopq";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let legacy = json!({
        "paired": {
            dev.id(): {
                "deviceId": dev.id(), "publicKey": dev.public_key(),
                "displayName": "openclaw-tui", "platform": "linux", "deviceFamily": "Linux",
                "clientId": "openclaw-tui", "clientMode": "ui", "role": "operator",
                "approvedScopes": ADMIN_SCOPES,
                "tokens": {"operator": {
                    "token": legacy_token, "role": "operator", "scopes": ADMIN_SCOPES,
                    "createdAtMs": 1_700_000_000_000_i64, "lastUsedAtMs": 1_700_000_000_000_i64,
                }},
                "approvedVia": "silent", "createdAtMs": 1_700_000_000_000_i64,
                "approvedAtMs": 1_700_000_000_000_i64, "lastSeenAtMs": 1_700_000_000_000_i64,
                "remoteIp": null,
            }
        },
        "pending": {
            "req-legacy-1": {
                "requestId": "req-legacy-1", "deviceId": pending_dev.id(),
                "publicKey": pending_dev.public_key(), "displayName": null, "platform": "linux",
                "deviceFamily": null, "clientId": "openclaw-tui", "clientMode": "ui",
                "role": "operator", "scopes": ["operator.read"], "remoteIp": "203.0.113.9",
                "reason": "not-paired", "ts": now,
            }
        }
    });
    std::fs::write(
        home.path().join("devices.json"),
        serde_json::to_vec_pretty(&legacy).unwrap(),
    )
    .unwrap();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    assert!(
        !gw.home_path().join("devices.json").exists(),
        "devices.json left behind after the import"
    );
    let hits = files_containing(&gw.home_path(), legacy_token);
    assert!(hits.is_empty(), "plaintext legacy token in {hits:?}");

    let (_, res) = dev
        .connect(&gw, json!({"deviceToken": legacy_token}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["ok"], true, "legacy device token refused: {res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");

    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let list = admin.call("device.pair.list", json!({})).await;
    assert_eq!(
        pending_ids(&list),
        vec!["req-legacy-1".to_string()],
        "{list}"
    );
    let paired = list["payload"]["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 1);
    assert_eq!(paired[0]["deviceId"], dev.id());
    assert_eq!(paired[0]["tokens"][0]["scopes"], json!(ADMIN_SCOPES));
    assert!(!list.to_string().contains(legacy_token));
    let r = admin
        .call("device.pair.approve", json!({"requestId": "req-legacy-1"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let (_, res) = pending_dev
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.read"],
            REMOTE,
        )
        .await;
    assert_eq!(res["ok"], true, "imported request approved: {res}");
}

/// T34 (removal): a pairing-only device cannot remove a device holding more scopes than it
/// (which would lock an admin out); it may remove one within its own scopes, and an admin may
/// remove anything.
#[tokio::test]
async fn t34_pairing_only_device_cannot_remove_an_admin_device() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let pairer = Device::new();
    let (mut p, res) = pairer
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.pairing"],
            &[],
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let admin_dev = Device::new();
    let (_admin_ws, res) = admin_dev
        .connect(&gw, json!({"token": gw.token()}), ADMIN_SCOPES, &[])
        .await;
    assert_eq!(res["ok"], true, "{res}");

    let r = p
        .call("device.pair.remove", json!({"deviceId": admin_dev.id()}))
        .await;
    assert_eq!(
        r["ok"], false,
        "pairing-only device removed an admin device: {r}"
    );
    assert_eq!(r["error"]["code"], "FORBIDDEN", "{r}");
    assert!(
        r["error"]["details"]["missingScopes"]
            .as_array()
            .unwrap()
            .contains(&json!("operator.admin")),
        "{r}"
    );
    let list = p.call("device.pair.list", json!({})).await;
    let paired: Vec<&str> = list["payload"]["paired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    assert!(paired.contains(&admin_dev.id().as_str()), "{list}");

    // Within its own scopes it may remove (here: itself is not the target; a peer with pairing).
    let peer = Device::new();
    let (_peer_ws, res) = peer
        .connect(
            &gw,
            json!({"token": gw.token()}),
            &["operator.pairing"],
            &[],
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let r = p
        .call("device.pair.remove", json!({"deviceId": peer.id()}))
        .await;
    assert_eq!(r["ok"], true, "{r}");

    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let r = admin
        .call("device.pair.remove", json!({"deviceId": admin_dev.id()}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
}
