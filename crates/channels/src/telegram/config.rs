//! `channels.telegram`: the section's keys, defaults and validation (errors name
//! `config.yaml:LINE:COL: channels.telegram.key`), and its secrets.

use clawgate_config::yaml::Node;
use clawgate_config::{
    join, ChannelConfigParser, ChannelSection, Ctx, DmPolicy, GroupConfig, Secret,
};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelegramMode {
    Polling,
    Webhook,
}

/// `channels.telegram`.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    pub enabled: bool,
    pub bot_token: Option<Secret>,
    pub mode: TelegramMode,
    pub webhook_path: String,
    pub webhook_secret: Option<Secret>,
    pub webhook_url: Option<String>,
    pub api_root: String,
    pub dm_policy: DmPolicy,
    /// Numeric user ids (prefixes `tg:`/`telegram:` stripped) or `*`.
    pub allow_from: Vec<String>,
    /// Group chat id (or `*`) → settings; a group not listed is ignored.
    pub groups: Vec<(String, GroupConfig)>,
    pub text_chunk_limit: usize,
    pub poll_timeout_secs: u64,
    /// A poll loop with no completed `getUpdates` for this long is considered stalled.
    pub stall_timeout_secs: u64,
}

impl ChannelSection for TelegramConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.bot_token.iter().chain(&self.webhook_secret).collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The section parser (part of the Telegram plugin).
pub struct Parser;

impl ChannelConfigParser for Parser {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        parse_section(ctx, node).map(|t| Arc::new(t) as Arc<dyn ChannelSection>)
    }
}

/// A Telegram user or chat id: an integer, optionally prefixed `tg:`/`telegram:`; or `*`.
fn sender_id(s: &str) -> Option<String> {
    let t = s.trim();
    if t == "*" {
        return Some("*".into());
    }
    let t = t
        .strip_prefix("telegram:")
        .or_else(|| t.strip_prefix("tg:"))
        .unwrap_or(t);
    t.parse::<i64>().ok().map(|n| n.to_string())
}

fn parse_section(ctx: &mut Ctx, node: &Node) -> Option<TelegramConfig> {
    const KEYS: &[&str] = &[
        "enabled",
        "botToken",
        "mode",
        "webhookPath",
        "webhookSecret",
        "webhookUrl",
        "apiRoot",
        "dmPolicy",
        "allowFrom",
        "groups",
        "textChunkLimit",
        "pollTimeoutSeconds",
        "stallTimeoutSeconds",
    ];
    const P: &str = "channels.telegram";
    let entries = ctx.mapping(node, P, KEYS)?;
    let mut t = TelegramConfig {
        enabled: true,
        bot_token: None,
        mode: TelegramMode::Polling,
        webhook_path: "/webhook/telegram".into(),
        webhook_secret: None,
        webhook_url: None,
        api_root: "https://api.telegram.org".into(),
        dm_policy: DmPolicy::Pairing,
        allow_from: Vec::new(),
        groups: Vec::new(),
        text_chunk_limit: 4000,
        poll_timeout_secs: 30,
        stall_timeout_secs: 120,
    };
    let mut mode_pos = node.pos;
    let mut policy_pos = node.pos;
    for (k, _, v) in entries {
        let key = join(P, k);
        match k.as_str() {
            "enabled" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    t.enabled = b;
                }
            }
            "botToken" => {
                if let Some(s) = ctx.string(v, &key) {
                    if s.contains(':') && !s.trim().is_empty() {
                        t.bot_token = Some(Secret::new(s.trim()));
                    } else {
                        ctx.err(
                            v.pos,
                            &key,
                            "not a bot token (it looks like 123456:ABC-…, from @BotFather)",
                        );
                    }
                }
            }
            "mode" => {
                mode_pos = v.pos;
                t.mode = match ctx.one_of(v, &key, &["polling", "webhook"]).as_deref() {
                    Some("webhook") => TelegramMode::Webhook,
                    _ => TelegramMode::Polling,
                }
            }
            "webhookPath" => {
                if let Some(s) = ctx.string(v, &key) {
                    let reserved = ["/", "/healthz", "/health", "/readyz", "/ready"];
                    if !s.starts_with('/')
                        || reserved.contains(&s.as_str())
                        || s.contains(char::is_whitespace)
                    {
                        ctx.err(v.pos, &key, format!("`{s}` must be a path like /webhook/telegram (not / or a probe path)"));
                    } else {
                        t.webhook_path = s;
                    }
                }
            }
            "webhookSecret" => {
                if let Some(s) = ctx.string(v, &key) {
                    let ok = !s.is_empty()
                        && s.len() <= 256
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if ok {
                        t.webhook_secret = Some(Secret::new(s));
                    } else {
                        ctx.err(v.pos, &key, "must be 1–256 characters of A-Z a-z 0-9 _ - (Telegram's secret_token rules)");
                    }
                }
            }
            "webhookUrl" => {
                if let Some(s) = ctx.string(v, &key) {
                    if s.starts_with("https://") || s.starts_with("http://") {
                        t.webhook_url = Some(s);
                    } else {
                        ctx.err(
                            v.pos,
                            &key,
                            "must be the public https:// URL Telegram posts to",
                        );
                    }
                }
            }
            "apiRoot" => {
                if let Some(s) = ctx.string(v, &key) {
                    if (s.starts_with("https://") || s.starts_with("http://"))
                        && !s.contains("/bot")
                    {
                        t.api_root = s.trim_end_matches('/').to_string();
                    } else {
                        ctx.err(v.pos, &key, "must be an http(s) URL without /bot<token> (e.g. https://api.telegram.org)");
                    }
                }
            }
            "dmPolicy" => {
                policy_pos = v.pos;
                t.dm_policy = ctx.dm_policy(v, &key).unwrap_or(DmPolicy::Pairing);
            }
            "allowFrom" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    for (i, (s, pos)) in list.into_iter().enumerate() {
                        match sender_id(&s) {
                            Some(id) => t.allow_from.push(id),
                            None => ctx.err(pos, &format!("{key}[{i}]"), format!("`{s}` is not a numeric Telegram user id (usernames do not match) or `*`")),
                        }
                    }
                }
            }
            "groups" => {
                t.groups = ctx.group_map(v, &key, "chat ids", |gid| {
                    sender_id(gid).ok_or_else(|| {
                        "group keys are numeric chat ids (e.g. -1001234567890) or `*`".into()
                    })
                });
            }
            "textChunkLimit" => {
                if let Some(n) = ctx.integer(v, &key, 100, 4096) {
                    t.text_chunk_limit = n as usize;
                }
            }
            "pollTimeoutSeconds" => {
                if let Some(n) = ctx.integer(v, &key, 0, 50) {
                    t.poll_timeout_secs = n;
                }
            }
            "stallTimeoutSeconds" => {
                if let Some(n) = ctx.integer(v, &key, 1, 3600) {
                    t.stall_timeout_secs = n;
                }
            }
            _ => {}
        }
    }
    if t.enabled {
        if t.bot_token.is_none() {
            if let Some(env) = std::env::var("TELEGRAM_BOT_TOKEN")
                .ok()
                .filter(|s| s.contains(':'))
            {
                t.bot_token = Some(Secret::new(env));
            } else {
                ctx.err(
                    node.pos,
                    "channels.telegram.botToken",
                    "required when the channel is enabled (or set TELEGRAM_BOT_TOKEN)",
                );
            }
        }
        if t.mode == TelegramMode::Webhook && t.webhook_secret.is_none() {
            ctx.err(mode_pos, "channels.telegram.webhookSecret", "required in webhook mode: without it anyone could post fake updates to the webhook");
        }
        if t.dm_policy == DmPolicy::Open && !t.allow_from.iter().any(|a| a == "*") {
            ctx.err(
                policy_pos,
                "channels.telegram.dmPolicy",
                "`open` requires allowFrom: [\"*\"] (an explicit opt-in to strangers)",
            );
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_config::{Config, ConfigError, DmScope};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        Config::parse_with(text, Path::new("config.yaml"), &|_| None, &[&Parser])
    }

    fn first_error(text: &str) -> String {
        parse(text).unwrap_err()[0].to_string()
    }

    #[test]
    fn telegram_channel_config() {
        let c = parse("channels:\n  telegram:\n    botToken: \"123:ABC\"\n    allowFrom: [\"tg:42\", 7]\n    groups:\n      \"-100123\": { requireMention: false }\nsession:\n  dmScope: main\n").unwrap();
        let t = c
            .channel("telegram")
            .unwrap()
            .get::<TelegramConfig>()
            .unwrap();
        assert_eq!(t.allow_from, vec!["42", "7"]);
        assert_eq!(t.groups[0].0, "-100123");
        assert!(!t.groups[0].1.require_mention);
        assert_eq!(t.mode, TelegramMode::Polling);
        assert_eq!(c.dm_scope, DmScope::Main);
        let secrets: Vec<&str> = c.channels[0]
            .section
            .secrets()
            .iter()
            .map(|s| s.expose())
            .collect();
        assert_eq!(secrets, ["123:ABC"]);
    }

    #[test]
    fn group_entries_are_checked_with_positions() {
        let e = first_error(
            "channels:\n  telegram:\n    botToken: \"1:A\"\n    groups:\n      team: {}\n",
        );
        assert!(
            e.contains("5:7")
                && e.contains("channels.telegram.groups.team")
                && e.contains("numeric chat ids"),
            "{e}"
        );
        let e = first_error("channels:\n  telegram:\n    botToken: \"1:A\"\n    groups: [1]\n");
        assert!(
            e.contains("expected a mapping of chat ids to settings"),
            "{e}"
        );
        let e = first_error("channels:\n  telegram:\n    botToken: \"1:A\"\n    groups:\n      \"-100\": { requireMention: maybe }\n");
        assert!(
            e.contains("channels.telegram.groups.-100.requireMention"),
            "{e}"
        );
    }

    #[test]
    fn webhook_mode_needs_a_secret() {
        let e =
            first_error("channels:\n  telegram:\n    botToken: \"123:ABC\"\n    mode: webhook\n");
        assert_eq!(e, "config.yaml:4:11: channels.telegram.webhookSecret: required in webhook mode: without it anyone could post fake updates to the webhook");
        let e = first_error("channels:\n  telegram:\n    botToken: \"123:ABC\"\n    mode: webhook\n    webhookSecret: \"\"\n");
        assert!(e.contains("webhookSecret"), "{e}");
    }

    #[test]
    fn open_dm_policy_needs_a_wildcard() {
        let e = first_error("channels:\n  telegram:\n    botToken: \"123:ABC\"\n    dmPolicy: open\n    allowFrom: [\"42\"]\n");
        assert!(e.contains("requires allowFrom"), "{e}");
        let e = first_error(
            "channels:\n  telegram:\n    botToken: \"123:ABC\"\n    allowFrom: [\"@ada\"]\n",
        );
        assert!(e.contains("not a numeric Telegram user id"), "{e}");
    }

    #[test]
    fn unknown_channel_is_an_unknown_key() {
        let e = first_error("channels:\n  telegrm:\n    botToken: \"123:ABC\"\n");
        assert!(e.contains("did you mean `channels.telegram`"), "{e}");
    }
}
