//! Device identity: Ed25519 signatures (v3 and v2), loopback auto-pairing, device tokens,
//! and the remote pairing round trip.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clawgate_testkit::gateway::Options;
use clawgate_testkit::ws::{connect_cli, RawWs};
use clawgate_testkit::GatewayProcess;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawgate"))
}

struct Device {
    key: SigningKey,
}

const TUI_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
];

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

    /// `connect` params as the TUI sends them, signed with the v3 (or v2) payload.
    fn tui_params(
        &self,
        auth: Value,
        nonce: &str,
        signed_at: i64,
        version: u8,
        scopes: &[&str],
    ) -> Value {
        let token = auth["token"]
            .as_str()
            .or(auth["deviceToken"].as_str())
            .unwrap_or("");
        let base = format!(
            "{}|openclaw-tui|ui|operator|{}|{}|{}|{}",
            self.id(),
            scopes.join(","),
            signed_at,
            token,
            nonce
        );
        let payload = if version == 3 {
            format!("v3|{base}|linux|linux")
        } else {
            format!("v2|{base}")
        };
        let sig = URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes());
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-tui", "displayName": "openclaw-tui", "version": "2026.9.6", "platform": "linux", "deviceFamily": "Linux", "mode": "ui"},
            "caps": ["tool-events"], "role": "operator", "scopes": scopes, "auth": auth,
            "device": {"id": self.id(), "publicKey": self.public_key(), "signature": sig, "signedAt": signed_at, "nonce": nonce},
        })
    }
}

async fn connect_device(
    gw: &GatewayProcess,
    dev: &Device,
    auth: Value,
    version: u8,
    headers: &[(&str, &str)],
) -> (RawWs, Value) {
    let mut ws = RawWs::connect_with(gw.addr, headers)
        .await
        .expect("upgrade");
    let (nonce, ts) = ws.challenge().await;
    let res = ws
        .connect_req(dev.tui_params(auth, &nonce, ts, version, TUI_SCOPES))
        .await;
    (ws, res)
}

#[tokio::test]
async fn v3_signature_on_loopback_is_auto_paired_and_gets_a_device_token() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let (mut ws, res) = connect_device(&gw, &dev, json!({"token": gw.token()}), 3, &[]).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(auth["scopes"], json!(TUI_SCOPES));
    let device_token = auth["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_string();
    assert_eq!(device_token.len(), 43);
    assert!(auth["issuedAtMs"].as_i64().is_some());
    // It is listed as paired, without its token.
    // operator.admin covers operator.pairing.
    let list = ws.call("device.pair.list", json!({})).await;
    assert_eq!(list["ok"], true, "{list}");
    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.pairing"]).await;
    let list = admin.call("device.pair.list", json!({})).await;
    let paired = list["payload"]["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 1);
    assert_eq!(paired[0]["deviceId"], dev.id());
    assert_eq!(paired[0]["approvedVia"], "silent");
    assert!(
        !list.to_string().contains(&device_token),
        "device token leaked in device.pair.list"
    );

    // Reconnect with only the device token: accepted as device-token auth.
    let (_, res) = connect_device(&gw, &dev, json!({"deviceToken": device_token}), 3, &[]).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");
    // The same token survives a restart (it is persisted).
    let home = gw.stop();
    let gw = GatewayProcess::start_in(bin(), home, Options::default());
    let (_, res) = connect_device(&gw, &dev, json!({"deviceToken": device_token}), 3, &[]).await;
    assert_eq!(res["ok"], true, "after restart: {res}");
}

#[tokio::test]
async fn v2_signature_is_accepted() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let (_, res) = connect_device(&gw, &Device::new(), json!({"token": gw.token()}), 2, &[]).await;
    assert_eq!(res["ok"], true, "{res}");
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let mut ws = RawWs::connect(gw.addr).await;
    let (nonce, ts) = ws.challenge().await;
    let mut p = dev.tui_params(json!({"token": gw.token()}), &nonce, ts, 3, TUI_SCOPES);
    // Signed for fewer scopes than it asks for: the signature no longer covers the request.
    let other = dev.tui_params(
        json!({"token": gw.token()}),
        &nonce,
        ts,
        3,
        &["operator.read"],
    );
    p["device"]["signature"] = other["device"]["signature"].clone();
    let res = ws.connect_req(p).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["message"], "device signature invalid");
    assert_eq!(
        res["error"]["details"]["code"],
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );
    assert_eq!(ws.expect_close(Duration::from_secs(5)).await.code, 1008);
}

#[tokio::test]
async fn stale_nonce_and_old_timestamp_are_refused() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    // A signature over an earlier connection's nonce.
    let mut first = RawWs::connect(gw.addr).await;
    let (old_nonce, old_ts) = first.challenge().await;
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let res = ws
        .connect_req(dev.tui_params(
            json!({"token": gw.token()}),
            &old_nonce,
            old_ts,
            3,
            TUI_SCOPES,
        ))
        .await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH",
        "{res}"
    );
    // The right nonce, signed three minutes ago.
    let mut ws = RawWs::connect(gw.addr).await;
    let (nonce, ts) = ws.challenge().await;
    let res = ws
        .connect_req(dev.tui_params(
            json!({"token": gw.token()}),
            &nonce,
            ts - 180_000,
            3,
            TUI_SCOPES,
        ))
        .await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_EXPIRED",
        "{res}"
    );
    // A device id that is not the key's hash.
    let mut ws = RawWs::connect(gw.addr).await;
    let (nonce, ts) = ws.challenge().await;
    let mut p = dev.tui_params(json!({"token": gw.token()}), &nonce, ts, 3, TUI_SCOPES);
    p["device"]["id"] = json!(Device::new().id());
    let res = ws.connect_req(p).await;
    assert_eq!(
        res["error"]["details"]["code"], "DEVICE_AUTH_DEVICE_ID_MISMATCH",
        "{res}"
    );
}

#[tokio::test]
async fn ui_clients_need_a_device() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let mut ws = RawWs::connect(gw.addr).await;
    ws.challenge().await;
    let mut p = Device::new().tui_params(json!({"token": gw.token()}), "n", 0, 3, TUI_SCOPES);
    p.as_object_mut().unwrap().remove("device");
    let res = ws.connect_req(p).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"
    );
}

#[tokio::test]
async fn a_wrong_device_token_is_refused() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let (_, good) = connect_device(&gw, &dev, json!({"token": gw.token()}), 3, &[]).await;
    assert_eq!(good["ok"], true);
    // The token is shown once, in the hello-ok that minted it.
    let token = good["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, res) = connect_device(&gw, &dev, json!({"deviceToken": "x".repeat(43)}), 3, &[]).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{res}"
    );
    // Another device cannot use this device's token.
    let (_, res) = connect_device(&gw, &Device::new(), json!({"deviceToken": token}), 3, &[]).await;
    assert_eq!(res["ok"], false, "{res}");
}

#[tokio::test]
async fn a_proxied_device_is_not_auto_paired_until_approved() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let fwd = [("x-forwarded-for", "203.0.113.9")];
    let (mut ws, res) = connect_device(&gw, &dev, json!({"token": gw.token()}), 3, &fwd).await;
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED");
    let request_id = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let closed = ws.expect_close(Duration::from_secs(5)).await;
    assert_eq!(closed.code, 1008);
    assert!(
        closed.reason.contains(&request_id) || closed.reason.starts_with("pairing required"),
        "{closed:?}"
    );

    // Approving a request for admin scopes takes an approver that holds them.
    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let list = admin.call("device.pair.list", json!({})).await;
    assert_eq!(
        list["payload"]["pending"][0]["requestId"],
        request_id.as_str()
    );
    assert_eq!(list["payload"]["pending"][0]["remoteIp"], "127.0.0.1");
    let ok = admin
        .call("device.pair.approve", json!({"requestId": request_id}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["payload"]["device"]["deviceId"], dev.id());
    let (_, res) = connect_device(&gw, &dev, json!({"token": gw.token()}), 3, &fwd).await;
    assert_eq!(res["ok"], true, "after approval: {res}");

    // Reject path.
    let other = Device::new();
    let (_, res) = connect_device(&gw, &other, json!({"token": gw.token()}), 3, &fwd).await;
    let rid = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let rej = admin
        .call("device.pair.reject", json!({"requestId": rid}))
        .await;
    assert_eq!(rej["ok"], true, "{rej}");
    let again = admin
        .call("device.pair.reject", json!({"requestId": rid}))
        .await;
    assert_eq!(again["error"]["message"], "unknown requestId");
}

#[tokio::test]
async fn removing_a_device_closes_its_sessions_and_voids_its_token() {
    let gw = GatewayProcess::start(bin(), Options::default());
    let dev = Device::new();
    let (mut live, res) = connect_device(&gw, &dev, json!({"token": gw.token()}), 3, &[]).await;
    assert_eq!(res["ok"], true);
    let token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    // The device holds admin scopes, so removing it takes an admin (see hardening_devices).
    let (mut admin, _) = connect_cli(gw.addr, &gw.token(), &["operator.admin"]).await;
    let r = admin
        .call("device.pair.remove", json!({"deviceId": dev.id()}))
        .await;
    assert_eq!(r["payload"]["closedConnections"], 1, "{r}");
    let closed = live.expect_close(Duration::from_secs(5)).await;
    assert_eq!(closed.code, 4001);
    let (_, res) = connect_device(&gw, &dev, json!({"deviceToken": token}), 3, &[]).await;
    assert_eq!(
        res["ok"], false,
        "a removed device's token still works: {res}"
    );
    let r = admin
        .call("device.pair.remove", json!({"deviceId": dev.id()}))
        .await;
    assert_eq!(r["error"]["message"], "unknown deviceId");
}
