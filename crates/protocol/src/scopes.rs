//! Operator scopes, what each method needs, and which events a connection may receive.

pub const ADMIN: &str = "operator.admin";
pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const APPROVALS: &str = "operator.approvals";
pub const PAIRING: &str = "operator.pairing";
pub const QUESTIONS: &str = "operator.questions";
pub const TALK: &str = "operator.talk";
pub const TALK_SECRETS: &str = "operator.talk.secrets";

/// Every operator scope this gateway knows. Requested scopes outside this list are dropped.
pub const ALL: &[&str] = &[
    ADMIN,
    READ,
    WRITE,
    APPROVALS,
    PAIRING,
    QUESTIONS,
    TALK,
    TALK_SECRETS,
];

pub fn is_known(scope: &str) -> bool {
    ALL.contains(&scope)
}

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any authenticated connection (only `health`).
    None,
    Scope(&'static str),
}

/// The required scope of a method. Methods the gateway does not classify need admin,
/// which is also what the real gateway does for unknown names.
pub fn required_for(method: &str) -> Requirement {
    use Requirement::*;
    match method {
        "health" => None,
        "status"
        | "system-presence"
        | "last-heartbeat"
        | "config.get"
        | "config.schema"
        | "config.schema.lookup"
        | "sessions.list"
        | "sessions.subscribe"
        | "sessions.unsubscribe"
        | "sessions.messages.subscribe"
        | "sessions.messages.unsubscribe"
        | "sessions.describe"
        | "sessions.get"
        | "chat.history"
        | "chat.startup"
        | "chat.metadata"
        | "models.list"
        | "agents.list"
        | "agent.identity.get"
        | "commands.list"
        | "channels.status"
        | "logs.tail"
        | "node.list"
        | "node.describe"
        | "tools.catalog"
        | "models.authStatus"
        | "question.list"
        | "tasks.list"
        | "cron.list"
        | "cron.status"
        | "update.status"
        | "system.info"
        | "gateway.identity.get"
        // The Control UI's load-time calls, classified as OpenClaw's protocol package does.
        | "plugins.controlUi.list"
        | "plugin.surface.refresh"
        | "sessions.observer.visibility"
        | "users.prefs.get"
        | "board.get"
        | "sessions.viewers.set"
        | "projects.list"
        | "talk.catalog"
        | "sessions.groups.list"
        | "mentions.list"
        | "taskSuggestions.list"
        | "sessions.branches.list"
        | "session.discussion.info"
        | "sessions.companion.state"
        | "controlUi.sessionPullRequests.subscribe"
        | "sessions.catalog.list"
        | "progressCard.get"
        | "sessions.github.options"
        | "session.members.listEvidence" => Scope(READ),
        "chat.send" | "chat.abort" | "agent" | "agent.wait" | "send" | "wake" | "tools.invoke"
        | "sessions.patch" | "sessions.create" | "message.action" | "sessions.groups.defaults" => {
            Scope(WRITE)
        }
        "device.pair.list"
        | "device.pair.approve"
        | "device.pair.reject"
        | "device.pair.remove"
        | "device.pair.rename"
        | "pairing.list"
        | "pairing.approve"
        | "pairing.reject"
        | "pairing.approved"
        | "channels.pairing.list"
        | "channels.pairing.approve"
        | "channels.pairing.dismiss" => Scope(PAIRING),
        "exec.approval.list" | "plugin.approval.list" | "openclaw.approval.list" => {
            Scope(APPROVALS)
        }
        _ => Scope(ADMIN),
    }
}

/// Whether `granted` satisfies `needed`: admin covers everything, write implies read and talk.
pub fn satisfies(granted: &[String], needed: &str) -> bool {
    granted
        .iter()
        .any(|g| g == ADMIN || g == needed || (g == WRITE && (needed == READ || needed == TALK)))
}

/// Checks a method against the granted scopes; `Err(scope)` names the missing one.
pub fn authorize(method: &str, granted: &[String]) -> Result<(), &'static str> {
    match required_for(method) {
        Requirement::None => Ok(()),
        Requirement::Scope(s) if satisfies(granted, s) => Ok(()),
        Requirement::Scope(s) => Err(s),
    }
}

/// Which scope an event needs to be delivered; `None` inside means "any connection",
/// and an outer `None` means the event is never broadcast.
pub fn event_requirement(event: &str) -> Option<Option<&'static str>> {
    match event {
        "tick" | "shutdown" | "health" | "heartbeat" | "update.available"
        | "gateway.suspension" => Some(None),
        "presence" | "chat" | "agent" | "sessions.changed" | "session.message" | "cron"
        | "task" | "node.presence" | "config.changed" | "talk.event" => Some(Some(READ)),
        "device.pair.requested"
        | "device.pair.resolved"
        | "node.pair.requested"
        | "node.pair.resolved" => Some(Some(PAIRING)),
        "exec.approval.requested" | "exec.approval.resolved" => Some(Some(APPROVALS)),
        _ => None,
    }
}

/// Whether a connection with `granted` scopes may receive `event`.
pub fn may_receive(event: &str, granted: &[String]) -> bool {
    match event_requirement(event) {
        Some(None) => true,
        Some(Some(s)) => satisfies(granted, s),
        None => false,
    }
}

/// The scopes of `requested` that `granter` may not hand out. Approving a pairing request or
/// minting a credential grants only scopes the caller holds itself (`operator.admin` holds
/// them all; `operator.write` also covers read and talk).
pub fn missing_grants(granter: &[String], requested: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|s| !satisfies(granter, s))
        .cloned()
        .collect()
}

/// The client mode of `openclaw gateway probe` / `gateway status`.
pub const PROBE_MODE: &str = "probe";

/// Caps requested scopes by client mode: a probe gets at most `operator.read` (the real
/// server clears them; read keeps `gateway probe` able to show details).
pub fn cap_for_mode(client_mode: &str, requested: Vec<String>) -> Vec<String> {
    if client_mode == PROBE_MODE {
        requested.into_iter().filter(|s| s == READ).collect()
    } else {
        requested
    }
}

/// Keeps the known scopes of `requested`, in order, without duplicates.
pub fn filter_known(requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in requested {
        if is_known(s) && !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn health_needs_nothing() {
        assert!(authorize("health", &[]).is_ok());
    }

    #[test]
    fn read_methods() {
        assert_eq!(authorize("status", &[]), Err(READ));
        assert!(authorize("status", &v(&[READ])).is_ok());
        assert!(authorize("status", &v(&[WRITE])).is_ok());
        assert!(authorize("status", &v(&[ADMIN])).is_ok());
        assert_eq!(authorize("status", &v(&[PAIRING])), Err(READ));
    }

    #[test]
    fn unknown_needs_admin() {
        assert_eq!(authorize("no.such.method", &v(&[READ, WRITE])), Err(ADMIN));
        assert!(authorize("no.such.method", &v(&[ADMIN])).is_ok());
    }

    #[test]
    fn pairing_is_separate() {
        assert_eq!(
            authorize("device.pair.list", &v(&[READ, WRITE])),
            Err(PAIRING)
        );
        assert!(authorize("device.pair.list", &v(&[PAIRING])).is_ok());
    }

    #[test]
    fn events_are_filtered() {
        assert!(may_receive("tick", &[]));
        assert!(!may_receive("presence", &[]));
        assert!(may_receive("presence", &v(&[WRITE])));
        assert!(!may_receive("device.pair.requested", &v(&[READ])));
        assert!(!may_receive("made.up", &v(&[ADMIN])));
    }

    #[test]
    fn grants_are_bounded_by_the_granter() {
        assert!(missing_grants(&v(&[ADMIN]), &v(&[ADMIN, READ, PAIRING])).is_empty());
        assert_eq!(
            missing_grants(&v(&[PAIRING]), &v(&[ADMIN, READ, PAIRING])),
            v(&[ADMIN, READ])
        );
        assert!(missing_grants(&v(&[WRITE]), &v(&[READ, WRITE])).is_empty());
        assert!(missing_grants(&v(&[PAIRING]), &[]).is_empty());
    }

    #[test]
    fn probes_get_at_most_read() {
        assert_eq!(cap_for_mode("probe", v(&[ADMIN, READ, WRITE])), v(&[READ]));
        assert!(cap_for_mode("probe", v(&[ADMIN])).is_empty());
        assert_eq!(cap_for_mode("cli", v(&[ADMIN, READ])), v(&[ADMIN, READ]));
    }

    #[test]
    fn unknown_scopes_are_dropped() {
        assert_eq!(
            filter_known(&v(&["operator.root", READ, READ, ADMIN])),
            v(&[READ, ADMIN])
        );
    }
}
