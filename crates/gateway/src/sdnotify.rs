//! systemd's readiness protocol (`Type=notify`): one datagram per state change to the unix
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Without the
//! variable every call is a no-op, so running outside systemd costs nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where notifications go, if anywhere.
fn target() -> Option<SocketAddr> {
    let raw = std::env::var_os("NOTIFY_SOCKET")?;
    let raw = raw.to_str()?;
    if let Some(name) = raw.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name.as_bytes()).ok();
    }
    if raw.starts_with('/') {
        return SocketAddr::from_pathname(raw).ok();
    }
    None
}

/// Sends `state` (newline-separated `KEY=value` lines, e.g. `READY=1\nSTATUS=…`). Returns
/// whether a datagram went out; failures are reported to the caller, never fatal.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(addr) = target() else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}
