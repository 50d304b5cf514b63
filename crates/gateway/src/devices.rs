//! Paired devices, pending pairing requests and per-device tokens, kept in the SQLite state
//! database (`state.db`) with the rest of the state.
//!
//! A device token is stored only as its SHA-256 digest and compared in constant time; the
//! plaintext is returned once, in the hello-ok that mints it. A `devices.json` left by an older
//! build is imported on start (tokens hashed on the way in) and then deleted.
//!
//! Every method does blocking SQLite work: async code calls them through `spawn_blocking`
//! (the connect path runs `auth::authenticate` there).

use clawgate_protocol::device::b64url;
use clawgate_protocol::scopes;
use clawgate_store::{DeviceTokenRow, Store};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use subtle::ConstantTimeEq;

pub use clawgate_store::{DeviceRequestRow as PendingRequest, DeviceRow as PairedDevice};

/// Pending requests kept at most, and how long one lives.
const MAX_PENDING: usize = 64;
const PENDING_TTL_MS: i64 = 60 * 60 * 1000;
/// The file older builds kept devices (and plaintext tokens) in.
const LEGACY_FILE: &str = "devices.json";

/// What a device asks for when it connects.
#[derive(Debug, Clone)]
pub struct DeviceClaim {
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
}

pub enum PairingState {
    /// Paired with this key and the scopes are covered.
    Approved,
    /// Not paired, or the key changed.
    NotPaired,
    /// Paired, but asking for scopes beyond the approved ones.
    ScopeUpgrade,
}

/// Outcome of [`DeviceStore::approve`].
pub enum Approval {
    Approved(Box<PairedDevice>, Vec<DeviceTokenRow>),
    /// No such pending request.
    Unknown,
    /// The request asks for scopes the approver does not hold; it stays pending.
    Forbidden {
        missing: Vec<String>,
    },
}

/// Outcome of [`DeviceStore::remove`].
pub enum Removal {
    Removed(Box<PairedDevice>),
    Unknown,
    /// The device holds scopes the remover does not.
    Forbidden {
        missing: Vec<String>,
    },
}

pub struct DeviceStore {
    store: Arc<Store>,
    /// Serializes read-check-write sequences (pairing, approval, token issuance), so no two
    /// of them interleave between their read and their write.
    write: Mutex<()>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn err(e: clawgate_store::StoreError) -> String {
    format!("device store: {e}")
}

/// `base` plus the scopes of `extra` it lacks, in order.
fn union(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out = base.to_vec();
    for s in extra {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

impl DeviceStore {
    /// The device store over `store`; imports (then deletes) a legacy `devices.json` in `home`.
    pub fn open(store: Arc<Store>, home: &Path) -> Result<Self, String> {
        let devices = DeviceStore {
            store,
            write: Mutex::new(()),
        };
        devices.import_legacy(home)?;
        Ok(devices)
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self, claim: &DeviceClaim) -> Result<PairingState, String> {
        Ok(match self.store.device(&claim.device_id).map_err(err)? {
            Some(d) if d.public_key == claim.public_key => {
                if claim.scopes.iter().all(|s| d.approved_scopes.contains(s)) {
                    PairingState::Approved
                } else {
                    PairingState::ScopeUpgrade
                }
            }
            _ => PairingState::NotPaired,
        })
    }

    /// Approves a device on the spot (loopback auto-approval), widening its approved scopes
    /// to the ones it asked for.
    pub fn approve_silently(&self, claim: &DeviceClaim) -> Result<(), String> {
        let _g = self.guard();
        let dev = self.merged(claim, &claim.scopes, "silent")?;
        self.store.pair_device(&dev).map_err(err)
    }

    /// The paired record `claim` gets when approved for `scopes`: the scopes already approved
    /// for the same key are kept, a new key starts afresh.
    fn merged(
        &self,
        claim: &DeviceClaim,
        scopes: &[String],
        via: &str,
    ) -> Result<PairedDevice, String> {
        let now = now_ms();
        let old = self
            .store
            .device(&claim.device_id)
            .map_err(err)?
            .filter(|d| d.public_key == claim.public_key);
        let approved = union(
            old.as_ref().map(|d| &d.approved_scopes[..]).unwrap_or(&[]),
            scopes,
        );
        Ok(PairedDevice {
            device_id: claim.device_id.clone(),
            public_key: claim.public_key.clone(),
            display_name: claim.display_name.clone(),
            platform: claim.platform.clone(),
            device_family: claim.device_family.clone(),
            client_id: claim.client_id.clone(),
            client_mode: claim.client_mode.clone(),
            role: claim.role.clone(),
            approved_scopes: approved,
            approved_via: via.to_string(),
            created_at: old.as_ref().map_or(now, |d| d.created_at),
            approved_at: now,
            last_seen_at: now,
            remote_ip: claim.remote_ip.clone(),
        })
    }

    /// Records (or refreshes) the pending request of `claim`. A request asking for the same
    /// key, role and scopes keeps its id; anything else replaces it under a new id.
    pub fn request_pairing(
        &self,
        claim: &DeviceClaim,
        reason: &str,
    ) -> Result<PendingRequest, String> {
        let _g = self.guard();
        let now = now_ms();
        let req = PendingRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: claim.device_id.clone(),
            public_key: claim.public_key.clone(),
            display_name: claim.display_name.clone(),
            platform: claim.platform.clone(),
            device_family: claim.device_family.clone(),
            client_id: claim.client_id.clone(),
            client_mode: claim.client_mode.clone(),
            role: claim.role.clone(),
            scopes: claim.scopes.clone(),
            remote_ip: claim.remote_ip.clone(),
            reason: reason.to_string(),
            ts: now,
        };
        self.store
            .put_device_request(&req, MAX_PENDING, now - PENDING_TTL_MS)
            .map_err(err)?
            .ok_or_else(|| "too many pending pairing requests".to_string())
    }

    /// Ensures a device token for `role` covering `scopes`. `Some((token, issuedAtMs))` only
    /// when a token is minted (first approval, or wider scopes): the plaintext exists only in
    /// that return value. `None` when the existing token already covers the scopes.
    pub fn ensure_token(
        &self,
        device_id: &str,
        role: &str,
        scopes: &[String],
    ) -> Result<Option<(String, i64)>, String> {
        let _g = self.guard();
        let now = now_ms();
        let Some(dev) = self.store.device(device_id).map_err(err)? else {
            return Err("device is not paired".into());
        };
        if let Some(tok) = self.store.device_token(device_id, role).map_err(err)? {
            if scopes.iter().all(|s| tok.scopes.contains(s)) {
                self.store.touch_device(device_id, role, now).map_err(err)?;
                return Ok(None);
            }
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let token = b64url(&bytes);
        self.store
            .put_device_token(&DeviceTokenRow {
                device_id: device_id.to_string(),
                role: role.to_string(),
                token_sha256: digest(&token),
                scopes: union(&dev.approved_scopes, scopes),
                created_at: now,
                last_used_at: Some(now),
            })
            .map_err(err)?;
        self.store.touch_device(device_id, role, now).map_err(err)?;
        Ok(Some((token, now)))
    }

    /// Checks a presented device token in constant time; `Some(scopes)` of the token.
    pub fn verify_token(
        &self,
        device_id: &str,
        public_key: &str,
        role: &str,
        candidate: &str,
    ) -> Result<Option<Vec<String>>, String> {
        let Some(dev) = self.store.device(device_id).map_err(err)? else {
            return Ok(None);
        };
        if dev.public_key != public_key {
            return Ok(None);
        }
        let Some(tok) = self.store.device_token(device_id, role).map_err(err)? else {
            return Ok(None);
        };
        let ok: bool = tok.token_sha256.ct_eq(&digest(candidate)).into();
        Ok(ok.then_some(tok.scopes))
    }

    /// Whether `candidate` is the current token of any paired device (any role), compared
    /// digest against digest in constant time. For HTTP routes that get only a bearer token
    /// (the Control UI's bootstrap config).
    pub fn matches_any_token(&self, candidate: &str) -> Result<bool, String> {
        let want = digest(candidate);
        let mut found = subtle::Choice::from(0u8);
        for d in self.store.devices().map_err(err)? {
            for tok in self.store.device_tokens(&d.device_id).map_err(err)? {
                found |= tok.token_sha256.ct_eq(&want);
            }
        }
        Ok(found.into())
    }

    /// Approves a pending request on behalf of a connection holding `approver`: it may grant
    /// only scopes it holds itself (`operator.admin` holds them all).
    pub fn approve(&self, request_id: &str, approver: &[String]) -> Result<Approval, String> {
        let _g = self.guard();
        let Some(req) = self.store.device_request(request_id).map_err(err)? else {
            return Ok(Approval::Unknown);
        };
        let missing = scopes::missing_grants(approver, &req.scopes);
        if !missing.is_empty() {
            return Ok(Approval::Forbidden { missing });
        }
        let claim = DeviceClaim {
            device_id: req.device_id.clone(),
            public_key: req.public_key.clone(),
            display_name: req.display_name.clone(),
            platform: req.platform.clone(),
            device_family: req.device_family.clone(),
            client_id: req.client_id.clone(),
            client_mode: req.client_mode.clone(),
            role: req.role.clone(),
            scopes: req.scopes.clone(),
            remote_ip: req.remote_ip.clone(),
        };
        let dev = self.merged(&claim, &req.scopes, "manual")?;
        self.store.pair_device(&dev).map_err(err)?;
        let tokens = self.store.device_tokens(&dev.device_id).map_err(err)?;
        Ok(Approval::Approved(Box::new(dev), tokens))
    }

    pub fn reject(&self, request_id: &str) -> Result<Option<PendingRequest>, String> {
        let _g = self.guard();
        self.store.delete_device_request(request_id).map_err(err)
    }

    /// Removes a paired device, if `remover` holds every scope the device was approved for
    /// (a pairing-only client cannot lock out an admin device).
    pub fn remove(&self, device_id: &str, remover: &[String]) -> Result<Removal, String> {
        let _g = self.guard();
        let Some(dev) = self.store.device(device_id).map_err(err)? else {
            return Ok(Removal::Unknown);
        };
        let missing = scopes::missing_grants(remover, &dev.approved_scopes);
        if !missing.is_empty() {
            return Ok(Removal::Forbidden { missing });
        }
        match self.store.delete_device(device_id).map_err(err)? {
            Some(dev) => Ok(Removal::Removed(Box::new(dev))),
            None => Ok(Removal::Unknown),
        }
    }

    /// `{pending, paired}` with token secrets removed.
    pub fn list(&self) -> Result<Value, String> {
        let pending: Vec<Value> = self
            .store
            .device_requests(now_ms() - PENDING_TTL_MS)
            .map_err(err)?
            .iter()
            .map(pending_json)
            .collect();
        let mut paired = Vec::new();
        for d in self.store.devices().map_err(err)? {
            let tokens = self.store.device_tokens(&d.device_id).map_err(err)?;
            paired.push(redacted(&d, &tokens));
        }
        Ok(json!({"pending": pending, "paired": paired}))
    }

    /// Moves a `devices.json` from an older build into the database (tokens hashed), then
    /// deletes it and any temporary file a crashed write left next to it.
    fn import_legacy(&self, home: &Path) -> Result<(), String> {
        let path = home.join(LEGACY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if let Some(bytes) = bytes {
            let data: LegacyData = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a valid device store: {e}", path.display()))?;
            let (devices, tokens, requests) = data.into_rows();
            self.store
                .import_devices(&devices, &tokens, &requests)
                .map_err(|e| format!("{}: import failed: {e}", path.display()))?;
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(
                devices = devices.len(),
                pending = requests.len(),
                "imported devices.json into state.db (device tokens now stored hashed)"
            );
        }
        // `.devices.json.<random>.tmp` from an interrupted atomic write may hold tokens too.
        if let Ok(dir) = std::fs::read_dir(home) {
            for e in dir.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".devices.json.") && name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// The `devices.json` format of older builds (tokens in plaintext).
#[derive(Default, Deserialize)]
struct LegacyData {
    #[serde(default)]
    paired: BTreeMap<String, LegacyDevice>,
    #[serde(default)]
    pending: BTreeMap<String, LegacyRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyToken {
    token: String,
    role: String,
    scopes: Vec<String>,
    created_at_ms: i64,
    #[serde(default)]
    last_used_at_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyDevice {
    device_id: String,
    public_key: String,
    display_name: Option<String>,
    platform: Option<String>,
    device_family: Option<String>,
    client_id: String,
    client_mode: String,
    role: String,
    approved_scopes: Vec<String>,
    #[serde(default)]
    tokens: BTreeMap<String, LegacyToken>,
    approved_via: String,
    created_at_ms: i64,
    approved_at_ms: i64,
    last_seen_at_ms: i64,
    remote_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRequest {
    request_id: String,
    device_id: String,
    public_key: String,
    display_name: Option<String>,
    platform: Option<String>,
    device_family: Option<String>,
    client_id: String,
    client_mode: String,
    role: String,
    scopes: Vec<String>,
    remote_ip: Option<String>,
    reason: String,
    ts: i64,
}

impl LegacyData {
    fn into_rows(self) -> (Vec<PairedDevice>, Vec<DeviceTokenRow>, Vec<PendingRequest>) {
        let mut devices = Vec::new();
        let mut tokens = Vec::new();
        for d in self.paired.into_values() {
            for t in d.tokens.into_values() {
                tokens.push(DeviceTokenRow {
                    device_id: d.device_id.clone(),
                    role: t.role,
                    token_sha256: digest(&t.token),
                    scopes: t.scopes,
                    created_at: t.created_at_ms,
                    last_used_at: t.last_used_at_ms,
                });
            }
            devices.push(PairedDevice {
                device_id: d.device_id,
                public_key: d.public_key,
                display_name: d.display_name,
                platform: d.platform,
                device_family: d.device_family,
                client_id: d.client_id,
                client_mode: d.client_mode,
                role: d.role,
                approved_scopes: d.approved_scopes,
                approved_via: d.approved_via,
                created_at: d.created_at_ms,
                approved_at: d.approved_at_ms,
                last_seen_at: d.last_seen_at_ms,
                remote_ip: d.remote_ip,
            });
        }
        // A device has at most one pending request: keep the newest.
        let mut by_device: BTreeMap<String, LegacyRequest> = BTreeMap::new();
        for r in self.pending.into_values() {
            if by_device.get(&r.device_id).is_none_or(|o| o.ts < r.ts) {
                by_device.insert(r.device_id.clone(), r);
            }
        }
        let requests = by_device
            .into_values()
            .map(|r| PendingRequest {
                request_id: r.request_id,
                device_id: r.device_id,
                public_key: r.public_key,
                display_name: r.display_name,
                platform: r.platform,
                device_family: r.device_family,
                client_id: r.client_id,
                client_mode: r.client_mode,
                role: r.role,
                scopes: r.scopes,
                remote_ip: r.remote_ip,
                reason: r.reason,
                ts: r.ts,
            })
            .collect();
        (devices, tokens, requests)
    }
}

pub fn pending_json(p: &PendingRequest) -> Value {
    json!({
        "requestId": p.request_id, "deviceId": p.device_id, "publicKey": p.public_key,
        "displayName": p.display_name, "platform": p.platform, "deviceFamily": p.device_family,
        "clientId": p.client_id, "clientMode": p.client_mode, "role": p.role, "roles": [p.role],
        "scopes": p.scopes, "remoteIp": p.remote_ip, "silent": false, "isRepair": false, "ts": p.ts,
    })
}

pub fn redacted(d: &PairedDevice, tokens: &[DeviceTokenRow]) -> Value {
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at, "lastUsedAtMs": t.last_used_at}))
        .collect();
    json!({
        "deviceId": d.device_id, "publicKey": d.public_key, "displayName": d.display_name,
        "platform": d.platform, "deviceFamily": d.device_family, "clientId": d.client_id,
        "clientMode": d.client_mode, "role": d.role, "roles": [d.role], "scopes": d.approved_scopes,
        "approvedScopes": d.approved_scopes, "tokens": tokens, "approvedVia": d.approved_via,
        "createdAtMs": d.created_at, "approvedAtMs": d.approved_at,
        "lastSeenAtMs": d.last_seen_at, "remoteIp": d.remote_ip,
    })
}
