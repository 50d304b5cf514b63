//! The exposure guardrail: decided before any socket is opened.

use clawgate_config::{is_loopback_ip, AuthMode, Secret};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Resolves `host` to the addresses the gateway will bind.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("gateway.host: cannot resolve `{host}`: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("gateway.host: `{host}` resolves to no address"));
    }
    Ok(addrs)
}

/// Whether every address is loopback (a hostname that also resolves elsewhere is not).
pub fn all_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|a| is_loopback_ip(a.ip()))
}

/// The refusal text for a non-loopback bind without strong auth; `None` when allowed.
/// `source` names where the host came from (`gateway.host` or `--host`), so the message
/// blames the right one; the tunnel hint uses the port being bound.
pub fn check(
    host: &str,
    source: &str,
    addrs: &[SocketAddr],
    mode: AuthMode,
    secret: Option<&Secret>,
) -> Option<String> {
    if all_loopback(addrs) {
        return None;
    }
    let problem = match (mode, secret) {
        (AuthMode::None, _) => "gateway.auth.mode is `none`".to_string(),
        (_, None) => format!("gateway.auth.{} is not set", mode.as_str()),
        (_, Some(s)) if !s.is_strong() => format!(
            "gateway.auth.{} is too weak for a non-loopback bind ({}); use the generated 256-bit token instead",
            mode.as_str(),
            s.strength().reason()
        ),
        _ => return None,
    };
    let port = addrs.first().map_or(18789, SocketAddr::port);
    let keep = if source == "--host" {
        "drop --host (the default is 127.0.0.1)".to_string()
    } else {
        format!("keep {source}: 127.0.0.1")
    };
    Some(format!(
        "refusing to start: {source} is `{host}`, which is reachable from other machines, and {problem}.\n\
         Anyone who can reach this port could command your agent. Safe alternatives:\n\
         \x20 • {keep} and use an SSH tunnel from your other machine:\n\
         \x20     ssh -N -L {port}:127.0.0.1:{port} user@this-host\n\
         \x20 • keep 127.0.0.1 and put a reverse proxy with its own auth in front (docs/reverse-proxy.md)\n\
         \x20 • Docker: bind 0.0.0.0 inside the container only with gateway.auth.mode: token and a strong token\n\
         \x20   (CLAWGATE_GATEWAY_TOKEN, gateway.auth.tokenFile: /run/secrets/…, or the generated\n\
         \x20   credentials/gateway-token), and publish the port to the host's loopback only:\n\
         \x20     docker run -p 127.0.0.1:{port}:{port} …   (docs/service.md)\n\
         \x20 • if you really mean it: set gateway.auth.mode: token and remove gateway.auth.token so the\n\
         \x20   generated 256-bit token in credentials/gateway-token is used"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(host: &str) -> Vec<SocketAddr> {
        resolve(host, 18789).unwrap()
    }

    #[test]
    fn loopback_needs_nothing() {
        assert!(check(
            "127.0.0.1",
            "gateway.host",
            &addrs("127.0.0.1"),
            AuthMode::None,
            None
        )
        .is_none());
        assert!(check("::1", "gateway.host", &addrs("::1"), AuthMode::None, None).is_none());
    }

    #[test]
    fn wildcard_without_auth_is_refused() {
        for h in ["0.0.0.0", "::", "[::]", "10.1.2.3", "::ffff:0.0.0.0"] {
            let msg = check(h, "gateway.host", &addrs(h), AuthMode::None, None).expect(h);
            assert!(msg.contains("gateway.auth.mode"), "{msg}");
            assert!(msg.contains("ssh -N -L 18789:127.0.0.1:18789"), "{msg}");
        }
    }

    #[test]
    fn weak_secret_is_refused_strong_is_allowed() {
        let weak = Secret::new("changeme");
        let msg = check(
            "0.0.0.0",
            "gateway.host",
            &addrs("0.0.0.0"),
            AuthMode::Token,
            Some(&weak),
        )
        .unwrap();
        assert!(msg.contains("too weak"), "{msg}");
        let strong =
            Secret::new("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        assert!(check(
            "0.0.0.0",
            "gateway.host",
            &addrs("0.0.0.0"),
            AuthMode::Token,
            Some(&strong)
        )
        .is_none());
        // Long enough by length × alphabet, but a repeat: zxcvbn sees through it.
        let repeated = Secret::new("password".repeat(8));
        let msg = check(
            "::",
            "gateway.host",
            &addrs("::"),
            AuthMode::Password,
            Some(&repeated),
        )
        .unwrap();
        assert!(msg.contains("gateway.auth.password is too weak"), "{msg}");
        assert!(msg.contains("256-bit token"), "{msg}");
    }
}
