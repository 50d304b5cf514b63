//! The one auth gate: who a connection is (shared secret, device token, local device) and
//! which scopes it holds. No route or method decides trust on its own.

use crate::devices::{now_ms, DeviceClaim, PairingState};
use crate::state::Gateway;
use clawgate_config::AuthMode;
use clawgate_protocol::connect::ConnectParams;
use clawgate_protocol::device::{device_id, parse_public_key, verify_signature, SignedFields};
use clawgate_protocol::error::{code, ErrorShape};
use clawgate_protocol::{scopes, DEVICE_SIGNATURE_SKEW_MS};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};

/// Where a connection comes from, derived once from the socket and the request headers.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The address failures are counted against (the forwarded client behind a trusted proxy).
    pub client_ip: IpAddr,
    /// Loopback socket, no forwarded headers, and (for browsers) the gateway's own origin.
    pub is_local: bool,
    pub origin: Option<String>,
    pub forwarded: bool,
}

const FORWARD_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

impl Peer {
    pub fn from_parts(gw: &Gateway, addr: SocketAddr, headers: &axum::http::HeaderMap) -> Peer {
        let forwarded = FORWARD_HEADERS.iter().any(|h| headers.contains_key(*h));
        let origin = headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.to_string());
        let peer_ip = crate::ratelimit::canonical_ip(addr.ip());
        let client_ip = if forwarded && gw.is_trusted_proxy(peer_ip) {
            forwarded_client(gw, headers).unwrap_or(peer_ip)
        } else {
            peer_ip
        };
        let origin_local = origin.as_deref().is_none_or(|o| {
            let o = o.to_ascii_lowercase();
            gw.allowlists().origins.iter().take(3).any(|a| *a == o)
        });
        let is_local = clawgate_config::is_loopback_ip(peer_ip) && !forwarded && origin_local;
        Peer {
            addr,
            client_ip,
            is_local,
            origin,
            forwarded,
        }
    }
}

/// The right-most `X-Forwarded-For` address that is not itself a trusted proxy.
fn forwarded_client(gw: &Gateway, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let xff = headers.get("x-forwarded-for")?.to_str().ok()?;
    xff.split(',')
        .rev()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(crate::ratelimit::canonical_ip)
        .find(|ip| !gw.is_trusted_proxy(*ip))
}

/// A successful authentication.
#[derive(Debug, Clone)]
pub struct Grant {
    pub role: String,
    pub scopes: Vec<String>,
    pub method: &'static str,
    pub device_id: Option<String>,
    pub device_token: Option<(String, i64)>,
}

/// A refused connect: the error reply and the close code/reason that follow it.
#[derive(Debug)]
pub struct Refusal {
    pub error: ErrorShape,
    pub close_code: u16,
}

impl From<ErrorShape> for Refusal {
    fn from(error: ErrorShape) -> Self {
        Refusal {
            error,
            close_code: clawgate_protocol::close::POLICY,
        }
    }
}

enum Shared {
    Ok,
    Missing,
    Mismatch,
}

/// Clients that must always present a device identity.
fn is_ui_client(id: &str) -> bool {
    matches!(id, "openclaw-control-ui" | "openclaw-tui" | "webchat-ui")
}

fn hint(client_id: &str, mode: AuthMode) -> &'static str {
    match (client_id, mode) {
        ("cli", AuthMode::Password) => "use this gateway's gateway.auth.password",
        ("cli", _) => "use this gateway's gateway.auth.token or pair the device",
        ("openclaw-control-ui" | "webchat-ui", _) => {
            "open the dashboard URL and paste the token in Control UI settings"
        }
        (_, AuthMode::Password) => "provide gateway auth password",
        _ => "provide gateway auth token",
    }
}

/// What a client that sent neither a credential nor a device identity needs, in words: the
/// first sentence is OpenClaw's (clients match on the detail code), the rest says what to send.
fn identity_required_message(gw: &Gateway, peer: &Peer) -> String {
    let from = if peer.is_local {
        String::new()
    } else {
        format!(
            " (this connection comes from {}, not this machine's loopback)",
            peer.client_ip
        )
    };
    let secret = match gw.auth.mode {
        AuthMode::Password => "the gateway password (CLI: --password or CLAWGATE_GATEWAY_PASSWORD)",
        _ => "the gateway token (CLI: --token or CLAWGATE_GATEWAY_TOKEN)",
    };
    format!(
        "device identity required: no credential was sent{from}. Send {secret}; \
         a browser or app also needs its device pairing approved on the gateway host \
         (`clawgate devices list`, then approve the request)"
    )
}

fn unauthorized(gw: &Gateway, client_id: &str, reason: Shared) -> Refusal {
    let mode = gw.auth.mode;
    let (what, detail, auth_reason, next) = match (mode, reason) {
        (AuthMode::Password, Shared::Missing) => (
            "gateway password missing",
            "AUTH_PASSWORD_MISSING",
            "password_missing",
            "update_auth_configuration",
        ),
        (AuthMode::Password, _) => (
            "gateway password mismatch",
            "AUTH_PASSWORD_MISMATCH",
            "password_mismatch",
            "update_auth_credentials",
        ),
        (_, Shared::Missing) => (
            "gateway token missing",
            "AUTH_TOKEN_MISSING",
            "token_missing",
            "update_auth_configuration",
        ),
        _ => (
            "gateway token mismatch",
            "AUTH_TOKEN_MISMATCH",
            "token_mismatch",
            "update_auth_credentials",
        ),
    };
    ErrorShape::invalid(format!("unauthorized: {what} ({})", hint(client_id, mode)))
        .with_detail_code(
            detail,
            &[
                ("authReason", json!(auth_reason)),
                ("canRetryWithDeviceToken", json!(false)),
                ("recommendedNextStep", json!(next)),
            ],
        )
        .into()
}

fn rate_limited(retry_after_ms: u64) -> Refusal {
    ErrorShape::invalid("unauthorized: too many failed authentication attempts (retry later)")
        .with_detail_code(
            "AUTH_RATE_LIMITED",
            &[
                ("authReason", json!("rate_limited")),
                ("recommendedNextStep", json!("wait_then_retry")),
            ],
        )
        .retry_after(retry_after_ms)
        .into()
}

fn device_error(message: &str, detail: &str, reason: &str) -> Refusal {
    ErrorShape::invalid(message)
        .with_detail_code(detail, &[("reason", json!(reason))])
        .into()
}

/// Decides a `connect`. The rate limiter is consulted before any secret is compared.
/// Device checks read and write the state database: call it from `spawn_blocking`.
pub fn authenticate(
    gw: &Gateway,
    peer: &Peer,
    params: &ConnectParams,
    nonce: &str,
) -> Result<Grant, Refusal> {
    if let Err(retry) = gw.limiter.check(peer.client_ip) {
        return Err(rate_limited(retry));
    }
    let role = params.role().to_string();
    if role != "operator" {
        return Err(ErrorShape::invalid(if role == "node" {
            "node role is not supported by this gateway"
        } else {
            "invalid role"
        })
        .into());
    }
    // Probes (`gateway probe`/`status`) never get more than read, whatever they ask for.
    let requested = scopes::cap_for_mode(&params.client.mode, scopes::filter_known(&params.scopes));
    let shared = check_shared(gw, params);

    let Some(device) = &params.device else {
        if is_ui_client(&params.client.id) {
            return Err(ErrorShape::invalid(
                "control ui requires device identity (use HTTPS or localhost secure context)",
            )
            .with_detail_code("CONTROL_UI_DEVICE_IDENTITY_REQUIRED", &[])
            .into());
        }
        return match shared {
            Shared::Ok => {
                gw.limiter.record_success(peer.client_ip);
                // Device-less shared-secret clients keep their scopes only as the local CLI.
                let keeps =
                    peer.is_local && matches!(params.client.id.as_str(), "cli" | "gateway-client");
                Ok(Grant {
                    role,
                    scopes: if keeps { requested } else { Vec::new() },
                    method: gw.auth.mode.as_str(),
                    device_id: None,
                    device_token: None,
                })
            }
            Shared::Missing if params.auth.is_empty() => Err(ErrorShape::new(
                code::NOT_PAIRED,
                identity_required_message(gw, peer),
            )
            .with_detail_code("DEVICE_IDENTITY_REQUIRED", &[])
            .into()),
            other => {
                if matches!(other, Shared::Mismatch) {
                    gw.limiter.record_failure(peer.client_ip);
                }
                Err(unauthorized(gw, &params.client.id, other))
            }
        };
    };

    // Device proof: id ↔ key, freshness, nonce, signature, in that order.
    let Some(raw_key) = parse_public_key(&device.public_key) else {
        return Err(device_error(
            "device public key invalid",
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "device-public-key",
        ));
    };
    let derived_id = device_id(&raw_key);
    if derived_id != device.id.to_ascii_lowercase() {
        return Err(device_error(
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ));
    }
    if (now_ms() - device.signed_at).abs() > DEVICE_SIGNATURE_SKEW_MS {
        return Err(device_error(
            "device signature expired",
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "device-signature-stale",
        ));
    }
    if device.nonce.is_empty() {
        return Err(device_error(
            "device nonce required",
            "DEVICE_AUTH_NONCE_REQUIRED",
            "device-nonce-missing",
        ));
    }
    if device.nonce != nonce {
        return Err(device_error(
            "device nonce mismatch",
            "DEVICE_AUTH_NONCE_MISMATCH",
            "device-nonce-mismatch",
        ));
    }
    let fields = SignedFields {
        device_id: &device.id,
        client_id: &params.client.id,
        client_mode: &params.client.mode,
        role: &role,
        scopes: &params.scopes,
        signed_at_ms: device.signed_at,
        token: params.auth.signed_token(),
        nonce: &device.nonce,
        platform: Some(&params.client.platform),
        device_family: params.client.device_family.as_deref(),
    };
    if !verify_signature(&raw_key, &device.signature, &fields) {
        gw.limiter.record_failure(peer.client_ip);
        return Err(device_error(
            "device signature invalid",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
        ));
    }
    let public_key = clawgate_protocol::device::b64url(&raw_key);
    let claim = DeviceClaim {
        device_id: derived_id.clone(),
        public_key: public_key.clone(),
        display_name: params.client.display_name.clone(),
        platform: Some(params.client.platform.clone()),
        device_family: params.client.device_family.clone(),
        client_id: params.client.id.clone(),
        client_mode: params.client.mode.clone(),
        role: role.clone(),
        scopes: requested.clone(),
        remote_ip: (!peer.is_local).then(|| peer.client_ip.to_string()),
    };

    let method = match shared {
        Shared::Ok => {
            match gw.devices.state(&claim).map_err(unavailable)? {
                PairingState::Approved => {}
                state => {
                    let reason = if matches!(state, PairingState::ScopeUpgrade) {
                        "scope-upgrade"
                    } else {
                        "not-paired"
                    };
                    if peer.is_local {
                        gw.devices.approve_silently(&claim).map_err(unavailable)?;
                    } else {
                        return Err(pairing_required(gw, &claim, reason));
                    }
                }
            }
            gw.auth.mode.as_str()
        }
        other => {
            // Fall back to the device's own token (sent as deviceToken, or as token).
            let candidate = params
                .auth
                .device_token
                .as_deref()
                .or(params.auth.token.as_deref())
                .filter(|s| !s.is_empty());
            let verified = match candidate {
                Some(c) => gw
                    .devices
                    .verify_token(&derived_id, &public_key, &role, c)
                    .map_err(unavailable)?,
                None => None,
            };
            match verified {
                Some(token_scopes) => {
                    if !requested.iter().all(|s| token_scopes.contains(s)) {
                        return Err(ErrorShape::invalid(
                            "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
                        )
                        .with_detail_code("AUTH_SCOPE_MISMATCH", &[("authReason", json!("scope_mismatch"))])
                        .into());
                    }
                    "device-token"
                }
                None => {
                    if params
                        .auth
                        .device_token
                        .as_deref()
                        .is_some_and(|s| !s.is_empty())
                    {
                        gw.limiter.record_failure(peer.client_ip);
                        return Err(ErrorShape::invalid(
                            "unauthorized: device token mismatch (rotate/reissue device token)",
                        )
                        .with_detail_code(
                            "AUTH_DEVICE_TOKEN_MISMATCH",
                            &[("authReason", json!("device_token_mismatch"))],
                        )
                        .into());
                    }
                    if matches!(other, Shared::Mismatch) {
                        gw.limiter.record_failure(peer.client_ip);
                    }
                    return Err(unauthorized(gw, &params.client.id, other));
                }
            }
        }
    };
    gw.limiter.record_success(peer.client_ip);
    // Minted only on first use or for wider (already approved) scopes; the plaintext is in
    // this hello-ok and nowhere else.
    let token = gw
        .devices
        .ensure_token(&derived_id, &role, &requested)
        .map_err(unavailable)?;
    Ok(Grant {
        role,
        scopes: requested,
        method,
        device_id: Some(derived_id),
        device_token: token,
    })
}

fn unavailable(e: String) -> Refusal {
    ErrorShape::unavailable(e).into()
}

fn check_shared(gw: &Gateway, params: &ConnectParams) -> Shared {
    let presented = match gw.auth.mode {
        AuthMode::None => return Shared::Ok,
        AuthMode::Token => params.auth.token.as_deref(),
        AuthMode::Password => params.auth.password.as_deref(),
    };
    match (presented.filter(|s| !s.is_empty()), &gw.auth.secret) {
        (None, _) => Shared::Missing,
        (Some(p), Some(secret)) if secret.verify(p) => Shared::Ok,
        _ => Shared::Mismatch,
    }
}

fn pairing_required(gw: &Gateway, claim: &DeviceClaim, reason: &str) -> Refusal {
    let req = match gw.devices.request_pairing(claim, reason) {
        Ok(r) => r,
        Err(e) => return ErrorShape::unavailable(e).into(),
    };
    gw.conns.broadcast(
        "device.pair.requested",
        &crate::devices::pending_json(&req),
        None,
    );
    let what = if reason == "scope-upgrade" {
        "device is asking for more scopes than currently approved"
    } else {
        "device is not approved yet"
    };
    let details: Value = json!({
        "code": "PAIRING_REQUIRED", "reason": reason, "requestId": req.request_id,
        "deviceId": claim.device_id, "requestedRole": claim.role, "requestedScopes": claim.scopes,
        "remediationHint": "approve it on the gateway host: clawgate gateway call device.pair.approve --params '{\"requestId\":\"…\"}'",
        "recommendedNextStep": "wait_then_retry", "retryable": true, "pauseReconnect": false,
    });
    ErrorShape::new(code::NOT_PAIRED, format!("pairing required: {what}"))
        .with_details(details)
        .into()
}
