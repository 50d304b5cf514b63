//! OpenClaw's Control UI, served from `gateway.controlUi.root`.

use crate::state::Gateway;
use axum::extract::Request;
use axum::response::Response;

/// `None` when no Control UI root is configured or the path is not the UI's.
pub fn serve(_gw: &Gateway, _req: &Request) -> Option<Response> {
    None
}
