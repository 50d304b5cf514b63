//! Paired devices, pending pairing requests and per-device tokens, persisted as one 0600
//! JSON file in the state directory (written atomically).

use clawgate_config::paths::write_private_atomic;
use clawgate_protocol::device::b64url;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// Pending requests kept at most, and how long one lives.
const MAX_PENDING: usize = 64;
const PENDING_TTL_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    pub token: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub approved_scopes: Vec<String>,
    pub tokens: BTreeMap<String, DeviceToken>,
    pub approved_via: String,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub remote_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
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
    pub reason: String,
    pub ts: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct Data {
    #[serde(default)]
    paired: BTreeMap<String, PairedDevice>,
    #[serde(default)]
    pending: BTreeMap<String, PendingRequest>,
}

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

pub struct DeviceStore {
    path: PathBuf,
    data: Mutex<Data>,
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

impl DeviceStore {
    /// Loads the store; a missing file is an empty store, a corrupt one is an error.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a valid device store: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(DeviceStore {
            path,
            data: Mutex::new(data),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, data: &Data) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(data).map_err(|e| e.to_string())?;
        write_private_atomic(&self.path, &bytes)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    pub fn state(&self, claim: &DeviceClaim) -> PairingState {
        let data = self.lock();
        match data.paired.get(&claim.device_id) {
            Some(d) if d.public_key == claim.public_key => {
                if claim.scopes.iter().all(|s| d.approved_scopes.contains(s)) {
                    PairingState::Approved
                } else {
                    PairingState::ScopeUpgrade
                }
            }
            _ => PairingState::NotPaired,
        }
    }

    /// Approves a device on the spot (loopback auto-approval), widening its approved scopes
    /// to the ones it asked for.
    pub fn approve_silently(&self, claim: &DeviceClaim) -> Result<(), String> {
        let mut data = self.lock();
        let now = now_ms();
        upsert_paired(&mut data, claim, &claim.scopes, "silent", now);
        data.pending.retain(|_, p| p.device_id != claim.device_id);
        self.save(&data)
    }

    /// Records (or refreshes) a pending request and returns its id.
    pub fn request_pairing(
        &self,
        claim: &DeviceClaim,
        reason: &str,
    ) -> Result<PendingRequest, String> {
        let mut data = self.lock();
        let now = now_ms();
        data.pending.retain(|_, p| now - p.ts < PENDING_TTL_MS);
        let existing = data
            .pending
            .values()
            .find(|p| p.device_id == claim.device_id)
            .map(|p| p.request_id.clone());
        let request_id = match existing {
            Some(id) => id,
            None => {
                if data.pending.len() >= MAX_PENDING {
                    return Err("too many pending pairing requests".into());
                }
                uuid::Uuid::new_v4().to_string()
            }
        };
        let req = PendingRequest {
            request_id: request_id.clone(),
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
        data.pending.insert(request_id, req.clone());
        self.save(&data)?;
        Ok(req)
    }

    /// Ensures a device token for `role` covering `scopes`; returns (token, issuedAtMs).
    pub fn ensure_token(
        &self,
        device_id: &str,
        role: &str,
        scopes: &[String],
    ) -> Result<(String, i64), String> {
        let mut data = self.lock();
        let now = now_ms();
        let Some(dev) = data.paired.get_mut(device_id) else {
            return Err("device is not paired".into());
        };
        dev.last_seen_at_ms = now;
        if let Some(tok) = dev.tokens.get_mut(role) {
            if scopes.iter().all(|s| tok.scopes.contains(s)) {
                tok.last_used_at_ms = Some(now);
                let out = (tok.token.clone(), tok.created_at_ms);
                self.save(&data)?;
                return Ok(out);
            }
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
        let token = b64url(&bytes);
        let mut all_scopes = dev.approved_scopes.clone();
        for s in scopes {
            if !all_scopes.contains(s) {
                all_scopes.push(s.clone());
            }
        }
        dev.tokens.insert(
            role.to_string(),
            DeviceToken {
                token: token.clone(),
                role: role.to_string(),
                scopes: all_scopes,
                created_at_ms: now,
                last_used_at_ms: Some(now),
            },
        );
        self.save(&data)?;
        Ok((token, now))
    }

    /// Checks a presented device token in constant time. `Ok(scopes)` of the token.
    pub fn verify_token(
        &self,
        device_id: &str,
        public_key: &str,
        role: &str,
        candidate: &str,
    ) -> Option<Vec<String>> {
        let data = self.lock();
        let dev = data.paired.get(device_id)?;
        if dev.public_key != public_key {
            return None;
        }
        let tok = dev.tokens.get(role)?;
        let ok: bool = digest(&tok.token).ct_eq(&digest(candidate)).into();
        ok.then(|| tok.scopes.clone())
    }

    pub fn approve(&self, request_id: &str) -> Result<Option<PairedDevice>, String> {
        let mut data = self.lock();
        let Some(req) = data.pending.remove(request_id) else {
            return Ok(None);
        };
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
        let now = now_ms();
        upsert_paired(&mut data, &claim, &req.scopes, "manual", now);
        let dev = data.paired.get(&req.device_id).cloned();
        self.save(&data)?;
        Ok(dev)
    }

    pub fn reject(&self, request_id: &str) -> Result<Option<PendingRequest>, String> {
        let mut data = self.lock();
        let removed = data.pending.remove(request_id);
        if removed.is_some() {
            self.save(&data)?;
        }
        Ok(removed)
    }

    pub fn remove(&self, device_id: &str) -> Result<Option<PairedDevice>, String> {
        let mut data = self.lock();
        let removed = data.paired.remove(device_id);
        if removed.is_some() {
            self.save(&data)?;
        }
        Ok(removed)
    }

    /// `{pending, paired}` with token secrets removed.
    pub fn list(&self) -> Value {
        let mut data = self.lock();
        let now = now_ms();
        data.pending.retain(|_, p| now - p.ts < PENDING_TTL_MS);
        let pending: Vec<Value> = data.pending.values().map(pending_json).collect();
        let paired: Vec<Value> = data.paired.values().map(redacted).collect();
        json!({"pending": pending, "paired": paired})
    }
}

fn upsert_paired(data: &mut Data, claim: &DeviceClaim, scopes: &[String], via: &str, now: i64) {
    let entry = data.paired.get(&claim.device_id);
    let same_key = entry.is_some_and(|d| d.public_key == claim.public_key);
    let mut approved: Vec<String> = if same_key {
        entry.map(|d| d.approved_scopes.clone()).unwrap_or_default()
    } else {
        Vec::new()
    };
    for s in scopes {
        if !approved.contains(s) {
            approved.push(s.clone());
        }
    }
    let (tokens, created) = match entry {
        Some(d) if same_key => (d.tokens.clone(), d.created_at_ms),
        _ => (BTreeMap::new(), now),
    };
    data.paired.insert(
        claim.device_id.clone(),
        PairedDevice {
            device_id: claim.device_id.clone(),
            public_key: claim.public_key.clone(),
            display_name: claim.display_name.clone(),
            platform: claim.platform.clone(),
            device_family: claim.device_family.clone(),
            client_id: claim.client_id.clone(),
            client_mode: claim.client_mode.clone(),
            role: claim.role.clone(),
            approved_scopes: approved,
            tokens,
            approved_via: via.to_string(),
            created_at_ms: created,
            approved_at_ms: now,
            last_seen_at_ms: now,
            remote_ip: claim.remote_ip.clone(),
        },
    );
}

pub fn pending_json(p: &PendingRequest) -> Value {
    json!({
        "requestId": p.request_id, "deviceId": p.device_id, "publicKey": p.public_key,
        "displayName": p.display_name, "platform": p.platform, "deviceFamily": p.device_family,
        "clientId": p.client_id, "clientMode": p.client_mode, "role": p.role, "roles": [p.role],
        "scopes": p.scopes, "remoteIp": p.remote_ip, "silent": false, "isRepair": false, "ts": p.ts,
    })
}

pub fn redacted(d: &PairedDevice) -> Value {
    let tokens: Vec<Value> = d
        .tokens
        .values()
        .map(|t| json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms, "lastUsedAtMs": t.last_used_at_ms}))
        .collect();
    json!({
        "deviceId": d.device_id, "publicKey": d.public_key, "displayName": d.display_name,
        "platform": d.platform, "deviceFamily": d.device_family, "clientId": d.client_id,
        "clientMode": d.client_mode, "role": d.role, "roles": [d.role], "scopes": d.approved_scopes,
        "approvedScopes": d.approved_scopes, "tokens": tokens, "approvedVia": d.approved_via,
        "createdAtMs": d.created_at_ms, "approvedAtMs": d.approved_at_ms,
        "lastSeenAtMs": d.last_seen_at_ms, "remoteIp": d.remote_ip,
    })
}
