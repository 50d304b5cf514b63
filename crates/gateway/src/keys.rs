//! Session keys in OpenClaw's format: `agent:<agentId>:<rest>`.

pub const DEFAULT_AGENT: &str = "main";
pub const MAIN_KEY: &str = "agent:main:main";

/// Canonical form of a session-key parameter: `""`/`main` ⇒ the main session, a bare `foo`
/// ⇒ `agent:main:foo`, `agent:X:…` kept (agent id lower-cased).
pub fn canonical(input: &str) -> Result<String, String> {
    let k = input.trim();
    if k.len() > 512 {
        return Err("sessionKey is longer than 512 characters".into());
    }
    if k.chars().any(|c| c.is_control()) {
        return Err("sessionKey contains control characters".into());
    }
    if k.is_empty() || k == "main" {
        return Ok(MAIN_KEY.to_string());
    }
    if k == "global" || k == "unknown" {
        return Ok(k.to_string());
    }
    if let Some(rest) = k.strip_prefix("agent:") {
        let (agent, tail) = rest.split_once(':').unwrap_or((rest, "main"));
        let agent = agent.to_ascii_lowercase();
        if agent.is_empty() || tail.is_empty() {
            return Err(format!("invalid sessionKey `{k}`"));
        }
        return Ok(format!("agent:{agent}:{tail}"));
    }
    Ok(format!("agent:{DEFAULT_AGENT}:{k}"))
}

/// `openclaw agent --session-id X` targets `agent:main:explicit:X`.
pub fn explicit(session_id: &str) -> Result<String, String> {
    canonical(&format!(
        "agent:{DEFAULT_AGENT}:explicit:{}",
        session_id.trim()
    ))
}

pub fn agent_of(key: &str) -> &str {
    key.strip_prefix("agent:")
        .and_then(|r| r.split(':').next())
        .unwrap_or(DEFAULT_AGENT)
}

/// `kind` of a session row, derived from its key.
pub fn kind_of(key: &str) -> &'static str {
    if key == "global" {
        "global"
    } else if key == "unknown" {
        "unknown"
    } else if key.contains(":cron:") {
        "cron"
    } else if key.contains(":group:") || key.contains(":channel:") {
        "group"
    } else {
        "direct"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(canonical("").unwrap(), MAIN_KEY);
        assert_eq!(canonical("main").unwrap(), MAIN_KEY);
        assert_eq!(canonical("rec-tui-1").unwrap(), "agent:main:rec-tui-1");
        assert_eq!(canonical("agent:Main:x").unwrap(), "agent:main:x");
        assert_eq!(canonical("agent:main:main").unwrap(), MAIN_KEY);
        assert_eq!(explicit("S1").unwrap(), "agent:main:explicit:S1");
        assert!(canonical(&"x".repeat(600)).is_err());
        assert_eq!(kind_of("agent:main:telegram:group:-100:topic:4"), "group");
        assert_eq!(agent_of("agent:ops:x"), "ops");
    }
}
