//! `channels.slack`: plain data with OpenClaw's key names and defaults, plus the semantic
//! checks (missing credential for the chosen mode, wrong token prefixes). Parsing YAML into
//! this struct is the config layer's job.

use clawgate_config::{DmPolicy, GroupConfig, Secret};
use std::str::FromStr;

/// Prefix of every key reported by [`SlackConfig::check`].
pub const KEY_PREFIX: &str = "channels.slack";
pub const DEFAULT_WEBHOOK_PATH: &str = "/slack/events";
pub const DEFAULT_API_ROOT: &str = "https://slack.com/api";
pub const DEFAULT_TEXT_CHUNK_LIMIT: usize = 4000;
/// Slack truncates `text` above 40,000 characters.
pub const MAX_TEXT_CHUNK_LIMIT: usize = 40_000;

/// `mode`: how events reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlackMode {
    /// Socket Mode: an outbound WebSocket opened with the app token (OpenClaw's default).
    #[default]
    Socket,
    /// HTTP Events API: Slack POSTs signed requests to `webhookPath`.
    Http,
}

/// `groupPolicy`: which channels the bot listens in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    /// Only channels listed under `channels.<id>`.
    #[default]
    Allowlist,
    /// Every channel the bot is in.
    Open,
    /// No channel messages at all.
    Disabled,
}

/// `replyToMode`: whether replies to a top-level message open a thread under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyToMode {
    /// Reply in the channel (a message already inside a thread is still answered there).
    #[default]
    Off,
    /// The first reply chunk goes into a thread under the message, the rest to the channel.
    First,
    /// Every reply chunk goes into the thread.
    All,
}

fn one_of<T: Copy>(s: &str, table: &[(&str, T)]) -> Result<T, String> {
    table
        .iter()
        .find(|(k, _)| *k == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            format!("must be one of {} (got `{s}`)", names.join(", "))
        })
}

impl FromStr for SlackMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(
            s,
            &[("socket", SlackMode::Socket), ("http", SlackMode::Http)],
        )
    }
}

impl FromStr for GroupPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(
            s,
            &[
                ("allowlist", GroupPolicy::Allowlist),
                ("open", GroupPolicy::Open),
                ("disabled", GroupPolicy::Disabled),
            ],
        )
    }
}

impl FromStr for ReplyToMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        one_of(
            s,
            &[
                ("off", ReplyToMode::Off),
                ("first", ReplyToMode::First),
                ("all", ReplyToMode::All),
            ],
        )
    }
}

/// `channels.slack`.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub enabled: bool,
    pub mode: SlackMode,
    /// `botToken` (`xoxb-…`): every Web API call.
    pub bot_token: Option<Secret>,
    /// `appToken` (`xapp-…`): `apps.connections.open` in Socket Mode.
    pub app_token: Option<Secret>,
    /// `signingSecret`: verifies Events API requests in HTTP mode.
    pub signing_secret: Option<Secret>,
    pub webhook_path: String,
    pub api_root: String,
    pub dm_policy: DmPolicy,
    /// As written in the config (`U…`, `slack:U…`, `user:U…`, `*`); see
    /// [`SlackConfig::effective_allow_from`] for the normalised list.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    /// `channels.<C-id>` → `{enabled, requireMention}` (keys are channel ids, or `*`).
    pub channels: Vec<(String, GroupConfig)>,
    pub reply_to_mode: ReplyToMode,
    pub text_chunk_limit: usize,
    /// `allowBots`: accept messages posted by other bots (never the bot's own). Default false.
    pub allow_bots: bool,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            enabled: true,
            mode: SlackMode::Socket,
            bot_token: None,
            app_token: None,
            signing_secret: None,
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            api_root: DEFAULT_API_ROOT.into(),
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
            group_policy: GroupPolicy::Allowlist,
            channels: Vec::new(),
            reply_to_mode: ReplyToMode::Off,
            text_chunk_limit: DEFAULT_TEXT_CHUNK_LIMIT,
            allow_bots: false,
        }
    }
}

/// Defaults for one `channels.<id>` entry: enabled, mention required.
pub fn default_channel_config() -> GroupConfig {
    GroupConfig {
        require_mention: true,
        enabled: true,
    }
}

/// A Slack user id: `U…` or `W…` (Enterprise Grid), upper-case letters and digits.
pub fn is_user_id(s: &str) -> bool {
    s.len() >= 3
        && (s.starts_with('U') || s.starts_with('W'))
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A Slack conversation id: `C…` (channel), `G…` (private channel / legacy group DM) or
/// `D…` (DM), upper-case letters and digits.
pub fn is_conversation_id(s: &str) -> bool {
    s.len() >= 3
        && matches!(s.as_bytes()[0], b'C' | b'G' | b'D')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Restores API casing the way OpenClaw does: a lower-cased id of the real shape
/// (`c0123abcd`, `u0123abcd`) is upper-cased; anything shorter is left as written.
fn canonical_id(id: &str) -> String {
    let b = id.as_bytes();
    let alnum = b.iter().all(u8::is_ascii_alphanumeric);
    let conv = b.len() >= 9
        && matches!(b[0].to_ascii_uppercase(), b'C' | b'D' | b'G')
        && b[1].is_ascii_digit();
    let user = b.len() >= 9 && matches!(b[0].to_ascii_uppercase(), b'U' | b'W');
    if alnum && (conv || user) {
        id.to_ascii_uppercase()
    } else {
        id.to_string()
    }
}

/// A `send` target, in the forms OpenClaw documents and parses for Slack: `channel:<id>`,
/// `user:<id>`, `<@U…>`, `@U…`, `#<C… id>`, `<#C…|name>`, a bare id (a conversation, or a user
/// id, which is opened as a DM), each optionally behind `slack:`. Ids of the real shape are
/// accepted in any case. Returns the conversation or user id. Channel and user names
/// (`#general`, `@alice`) are refused: the gateway keeps no directory, and ids are stable.
pub fn parse_target(to: &str) -> Result<String, String> {
    let t = to.trim();
    let t = strip_prefix_ci(t, "slack:").unwrap_or(t).trim();
    let (kind, rest) = if let Some(r) = strip_prefix_ci(t, "channel:") {
        ("channel", r)
    } else if let Some(r) = strip_prefix_ci(t, "user:") {
        ("user", r)
    } else if let Some(r) = t.strip_prefix("<@").and_then(|r| r.strip_suffix('>')) {
        ("user", r.split('|').next().unwrap_or(r))
    } else if let Some(r) = t.strip_prefix("<#").and_then(|r| r.strip_suffix('>')) {
        ("channel", r.split('|').next().unwrap_or(r))
    } else if let Some(r) = t.strip_prefix('@') {
        ("user", r)
    } else if let Some(r) = t.strip_prefix('#') {
        ("channel", r)
    } else {
        ("any", t)
    };
    let id = canonical_id(rest.trim());
    let ok = match kind {
        "channel" => is_conversation_id(&id),
        "user" => is_user_id(&id),
        _ => is_conversation_id(&id) || is_user_id(&id),
    };
    if ok {
        return Ok(id);
    }
    Err(match kind {
        "channel" => format!(
            "`{to}` is not a Slack channel id: names are not resolved; use channel:<C…> \
             (in Slack, the channel's Copy link ends with its id)"
        ),
        "user" => format!(
            "`{to}` is not a Slack user id: names are not resolved; use user:<U…> \
             (in Slack, the profile's ⋮ → Copy member ID)"
        ),
        _ => format!("`{to}` is not a Slack target: use channel:<C…/G…/D… id> or user:<U… id>"),
    })
}

/// Normalises one `allowFrom` entry: `*` stays, `slack:U…` / `user:U…` / `slack:user:U…`
/// lose their prefix (case-insensitively), the id is upper-cased. Anything else is an error.
pub fn normalize_allow_entry(entry: &str) -> Result<String, String> {
    let e = entry.trim();
    if e == "*" {
        return Ok("*".into());
    }
    let mut rest = e;
    for p in ["slack:", "user:"] {
        if rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p) {
            rest = &rest[p.len()..];
        }
    }
    let id = rest.to_ascii_uppercase();
    if is_user_id(&id) {
        Ok(id)
    } else {
        Err(format!(
            "`{entry}` is not a Slack user id (expected U… or slack:U…; names never match)"
        ))
    }
}

impl SlackConfig {
    /// `allowFrom` normalised; invalid entries (reported by `check`) are left out.
    pub fn effective_allow_from(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.allow_from {
            if let Ok(n) = normalize_allow_entry(e) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The settings for a channel id: its own entry, else the `*` entry, else none.
    pub fn channel(&self, id: &str) -> Option<&GroupConfig> {
        self.channels
            .iter()
            .find(|(k, _)| k == id)
            .or_else(|| self.channels.iter().find(|(k, _)| k == "*"))
            .map(|(_, g)| g)
    }

    /// The group list for `access::Policy::groups`, with `groupPolicy` applied: `disabled` →
    /// none (every channel message is dropped), `allowlist` → the `channels.<id>` entries,
    /// `open` → those plus a `*` entry with the defaults (mention required).
    pub fn access_groups(&self) -> Vec<(String, GroupConfig)> {
        match self.group_policy {
            GroupPolicy::Disabled => Vec::new(),
            GroupPolicy::Allowlist => self.channels.clone(),
            GroupPolicy::Open => {
                let mut g = self.channels.clone();
                if !g.iter().any(|(k, _)| k == "*") {
                    g.push(("*".into(), default_channel_config()));
                }
                g
            }
        }
    }

    /// Semantic errors as `(key, message)`, keys in full (`channels.slack.botToken`). Empty
    /// when the channel is disabled or everything is in order. A missing credential for the
    /// chosen mode is an error: the gateway must refuse to start.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |k: &str, m: String| errs.push((format!("{KEY_PREFIX}.{k}"), m));
        if !self.enabled {
            return Vec::new();
        }
        check_token(
            &mut err,
            "botToken",
            self.bot_token.as_ref(),
            "xoxb-",
            "a bot token",
            true,
        );
        check_token(
            &mut err,
            "appToken",
            self.app_token.as_ref(),
            "xapp-",
            "an app-level token (scope connections:write)",
            self.mode == SlackMode::Socket,
        );
        if self.mode == SlackMode::Http {
            match &self.signing_secret {
                None => err(
                    "signingSecret",
                    "required in http mode: without it anyone could post fake events".into(),
                ),
                Some(s) if s.expose().trim().is_empty() => {
                    err("signingSecret", "must not be empty".into())
                }
                Some(_) => {}
            }
            if !self.webhook_path.starts_with('/') || self.webhook_path.contains(['?', '#', ' ']) {
                err(
                    "webhookPath",
                    format!(
                        "must be an absolute path like {DEFAULT_WEBHOOK_PATH} (got `{}`)",
                        self.webhook_path
                    ),
                );
            }
        }
        let root = self.api_root.as_str();
        if !(root.starts_with("https://") || root.starts_with("http://")) || root.len() < 10 {
            err(
                "apiRoot",
                format!("must be an http(s) URL like {DEFAULT_API_ROOT} (got `{root}`)"),
            );
        }
        for (i, e) in self.allow_from.iter().enumerate() {
            if let Err(m) = normalize_allow_entry(e) {
                err(&format!("allowFrom[{i}]"), m);
            }
        }
        if self.dm_policy == DmPolicy::Open && !self.allow_from.iter().any(|a| a.trim() == "*") {
            err(
                "dmPolicy",
                "`open` requires allowFrom: [\"*\"] (an explicit opt-in to strangers)".into(),
            );
        }
        for (k, _) in &self.channels {
            if k != "*" && !is_conversation_id(k) {
                err(
                    &format!("channels.{k}"),
                    format!("`{k}` is not a channel id (use the C…/G… id: names never match)"),
                );
            }
        }
        if self.text_chunk_limit == 0 || self.text_chunk_limit > MAX_TEXT_CHUNK_LIMIT {
            err(
                "textChunkLimit",
                format!(
                    "must be between 1 and {MAX_TEXT_CHUNK_LIMIT} (got {})",
                    self.text_chunk_limit
                ),
            );
        }
        errs
    }
}

fn check_token(
    err: &mut impl FnMut(&str, String),
    key: &str,
    token: Option<&Secret>,
    prefix: &str,
    what: &str,
    required: bool,
) {
    match token {
        None if required => err(key, format!("required: {what} ({prefix}…)")),
        None => {}
        Some(t) if !t.expose().starts_with(prefix) || t.expose().len() <= prefix.len() => err(
            key,
            // Never echo the value: it is a credential.
            format!("must be {what} starting with `{prefix}`"),
        ),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &SlackConfig) -> Vec<String> {
        c.check().into_iter().map(|(k, _)| k).collect()
    }

    fn socket_ok() -> SlackConfig {
        SlackConfig {
            bot_token: Some(Secret::new("xoxb-1-2-abc")),
            app_token: Some(Secret::new("xapp-1-A1-xyz")),
            ..SlackConfig::default()
        }
    }

    #[test]
    fn targets_in_the_documented_forms() {
        for (to, want) in [
            ("C123", "C123"),
            ("channel:C123", "C123"),
            ("slack:channel:C123", "C123"),
            ("Channel:C0ABC", "C0ABC"),
            ("user:U123", "U123"),
            ("slack:user:U123", "U123"),
            ("U123", "U123"),
            ("<@U123>", "U123"),
            ("<#C123|general>", "C123"),
            ("@U123", "U123"),
            ("#C0123ABCDE", "C0123ABCDE"),
            // OpenClaw lower-cases targets it normalises; real-shaped ids get their case back.
            ("channel:c0123abcde", "C0123ABCDE"),
            ("user:u0123abcde", "U0123ABCDE"),
            ("D0DM", "D0DM"),
            ("G0PRIV", "G0PRIV"),
        ] {
            assert_eq!(parse_target(to).as_deref(), Ok(want), "{to}");
        }
        for to in [
            "#general",
            "@alice",
            "channel:general",
            "c123",
            "user:C123",
            "channel:U123",
            "12345",
            "",
        ] {
            assert!(parse_target(to).is_err(), "{to}");
        }
        assert!(parse_target("#general")
            .unwrap_err()
            .contains("names are not resolved"));
    }

    #[test]
    fn defaults_follow_openclaw() {
        let c = SlackConfig::default();
        assert_eq!(c.mode, SlackMode::Socket);
        assert_eq!(c.webhook_path, "/slack/events");
        assert_eq!(c.api_root, "https://slack.com/api");
        assert_eq!(c.dm_policy, DmPolicy::Pairing);
        assert_eq!(c.group_policy, GroupPolicy::Allowlist);
        assert_eq!(c.reply_to_mode, ReplyToMode::Off);
        assert_eq!(c.text_chunk_limit, 4000);
        assert!(!c.allow_bots);
        let g = default_channel_config();
        assert!(g.enabled && g.require_mention);
    }

    #[test]
    fn enum_values_parse_and_bad_ones_name_the_choices() {
        assert_eq!("http".parse::<SlackMode>(), Ok(SlackMode::Http));
        assert_eq!("socket".parse::<SlackMode>(), Ok(SlackMode::Socket));
        assert!("relay"
            .parse::<SlackMode>()
            .unwrap_err()
            .contains("socket, http"));
        assert_eq!("open".parse::<GroupPolicy>(), Ok(GroupPolicy::Open));
        assert_eq!("disabled".parse::<GroupPolicy>(), Ok(GroupPolicy::Disabled));
        assert_eq!("all".parse::<ReplyToMode>(), Ok(ReplyToMode::All));
        assert_eq!("first".parse::<ReplyToMode>(), Ok(ReplyToMode::First));
        assert!("All".parse::<ReplyToMode>().is_err());
    }

    #[test]
    fn socket_mode_needs_bot_and_app_token() {
        assert!(socket_ok().check().is_empty(), "{:?}", socket_ok().check());
        let c = SlackConfig {
            app_token: None,
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.appToken"]);
        let c = SlackConfig {
            bot_token: None,
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.botToken"]);
        // The signing secret is not needed in socket mode.
        assert!(socket_ok().signing_secret.is_none());
    }

    #[test]
    fn http_mode_needs_bot_token_and_signing_secret_not_app_token() {
        let c = SlackConfig {
            mode: SlackMode::Http,
            app_token: None,
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.signingSecret"]);
        let c = SlackConfig {
            signing_secret: Some(Secret::new("8f742231b10e8888abcd99yyyzzz85a5")),
            ..c
        };
        assert!(c.check().is_empty(), "{:?}", c.check());
        let c = SlackConfig {
            signing_secret: Some(Secret::new("  ")),
            ..c
        };
        assert_eq!(keys(&c), ["channels.slack.signingSecret"]);
    }

    #[test]
    fn wrong_token_prefixes_are_errors_and_never_echo_the_value() {
        let c = SlackConfig {
            bot_token: Some(Secret::new("xapp-swapped-secretvalue")),
            app_token: Some(Secret::new("xoxb-swapped-secretvalue")),
            ..socket_ok()
        };
        let errs = c.check();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].1.contains("xoxb-"), "{errs:?}");
        assert!(errs[1].1.contains("xapp-"), "{errs:?}");
        assert!(errs.iter().all(|(_, m)| !m.contains("secretvalue")));
        // A bare prefix is not a token.
        let c = SlackConfig {
            bot_token: Some(Secret::new("xoxb-")),
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.botToken"]);
        // A user token is not a bot token.
        let c = SlackConfig {
            bot_token: Some(Secret::new("xoxp-123")),
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.botToken"]);
    }

    #[test]
    fn disabled_channel_is_not_checked() {
        let c = SlackConfig {
            enabled: false,
            ..SlackConfig::default()
        };
        assert!(c.check().is_empty());
        assert_eq!(keys(&SlackConfig::default()).len(), 2);
    }

    #[test]
    fn allow_from_is_normalised() {
        assert_eq!(normalize_allow_entry("U0123ABC"), Ok("U0123ABC".into()));
        assert_eq!(
            normalize_allow_entry("slack:U0123ABC"),
            Ok("U0123ABC".into())
        );
        assert_eq!(
            normalize_allow_entry("Slack:u0123abc"),
            Ok("U0123ABC".into())
        );
        assert_eq!(
            normalize_allow_entry("user:U0123ABC"),
            Ok("U0123ABC".into())
        );
        assert_eq!(
            normalize_allow_entry("slack:user:W0123"),
            Ok("W0123".into())
        );
        assert_eq!(normalize_allow_entry(" * "), Ok("*".into()));
        assert!(normalize_allow_entry("@alice").is_err());
        assert!(normalize_allow_entry("C0123ABC").is_err());
        assert!(normalize_allow_entry("slack:").is_err());
        assert!(normalize_allow_entry("U").is_err());
        let c = SlackConfig {
            allow_from: vec![
                "slack:U1AAA".into(),
                "U1AAA".into(),
                "alice".into(),
                "U2BBB".into(),
            ],
            ..socket_ok()
        };
        assert_eq!(c.effective_allow_from(), ["U1AAA", "U2BBB"]);
        assert_eq!(keys(&c), ["channels.slack.allowFrom[2]"]);
    }

    #[test]
    fn open_dm_policy_requires_wildcard() {
        let c = SlackConfig {
            dm_policy: DmPolicy::Open,
            allow_from: vec!["U1AAA".into()],
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.dmPolicy"]);
        let c = SlackConfig {
            allow_from: vec!["*".into()],
            ..c
        };
        assert!(c.check().is_empty());
    }

    #[test]
    fn channel_keys_must_be_ids_and_lookup_prefers_exact() {
        let c = SlackConfig {
            channels: vec![
                ("#general".into(), default_channel_config()),
                (
                    "C0CHAN".into(),
                    GroupConfig {
                        require_mention: false,
                        enabled: true,
                    },
                ),
                (
                    "*".into(),
                    GroupConfig {
                        require_mention: true,
                        enabled: false,
                    },
                ),
            ],
            ..socket_ok()
        };
        assert_eq!(keys(&c), ["channels.slack.channels.#general"]);
        assert!(!c.channel("C0CHAN").unwrap().require_mention);
        assert!(!c.channel("C0OTHER").unwrap().enabled);
        let c = SlackConfig {
            channels: vec![],
            ..c
        };
        assert!(c.channel("C0CHAN").is_none());
    }

    #[test]
    fn group_policy_shapes_the_access_groups() {
        use crate::access::{decide, Decision, Policy};
        use crate::{ChatType, InboundMessage};
        let quiet = GroupConfig {
            require_mention: false,
            enabled: true,
        };
        let c = SlackConfig {
            channels: vec![("C0LISTED".into(), quiet)],
            ..socket_ok()
        };
        let msg = |chat: &str, mentioned: bool| InboundMessage {
            channel: "slack".into(),
            account: "default".into(),
            chat_id: chat.into(),
            chat_type: ChatType::Group,
            sender_id: "U0USER".into(),
            sender_name: None,
            thread_id: None,
            message_id: "1.2".into(),
            text: "hi".into(),
            mentioned,
            conversation_kind: None,
        };
        let run = |policy: GroupPolicy, chat: &str, mentioned: bool| {
            let c = SlackConfig {
                group_policy: policy,
                ..c.clone()
            };
            let groups = c.access_groups();
            let p = Policy {
                dm_policy: c.dm_policy,
                allow_from: &[],
                groups: &groups,
            };
            decide(&p, &msg(chat, mentioned), false)
        };
        assert_eq!(
            run(GroupPolicy::Allowlist, "C0LISTED", false),
            Decision::Process
        );
        assert!(matches!(
            run(GroupPolicy::Allowlist, "C0OTHER", true),
            Decision::Drop(_)
        ));
        assert_eq!(run(GroupPolicy::Open, "C0OTHER", true), Decision::Process);
        assert!(matches!(
            run(GroupPolicy::Open, "C0OTHER", false),
            Decision::Drop(_)
        ));
        assert_eq!(run(GroupPolicy::Open, "C0LISTED", false), Decision::Process);
        assert!(matches!(
            run(GroupPolicy::Disabled, "C0LISTED", true),
            Decision::Drop(_)
        ));
    }

    #[test]
    fn http_mode_checks_webhook_path_and_api_root_and_limit() {
        let c = SlackConfig {
            mode: SlackMode::Http,
            signing_secret: Some(Secret::new("s")),
            webhook_path: "slack/events".into(),
            api_root: "ftp://x".into(),
            text_chunk_limit: 0,
            ..socket_ok()
        };
        assert_eq!(
            keys(&c),
            [
                "channels.slack.webhookPath",
                "channels.slack.apiRoot",
                "channels.slack.textChunkLimit"
            ]
        );
        let c = SlackConfig {
            text_chunk_limit: 40_001,
            webhook_path: "/slack/events".into(),
            api_root: "http://127.0.0.1:9/api".into(),
            ..c
        };
        assert_eq!(keys(&c), ["channels.slack.textChunkLimit"]);
    }
}
