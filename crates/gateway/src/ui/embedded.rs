//! clawgate's own small browser UI (files under `crates/gateway/ui/`, compiled in), served
//! when no Control UI root is configured.

use crate::state::Gateway;
use axum::extract::Request;
use axum::response::Response;

/// `None` when the request is not for the embedded UI.
pub fn serve(_gw: &Gateway, _req: &Request) -> Option<Response> {
    None
}
