//! Validation of `session` and `channels`.

use crate::validate::{join, Ctx};
use crate::yaml::{Node, Value};
use crate::{Config, DmPolicy, DmScope, GroupConfig, Secret, TelegramConfig, TelegramMode};

pub(crate) fn session(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "session", &["dmScope"]) else {
        return;
    };
    for (k, _, v) in entries {
        if k == "dmScope" {
            let allowed = [
                "main",
                "per-peer",
                "per-channel-peer",
                "per-account-channel-peer",
            ];
            cfg.dm_scope = match ctx.one_of(v, "session.dmScope", &allowed).as_deref() {
                Some("main") => DmScope::Main,
                Some("per-peer") => DmScope::PerPeer,
                Some("per-account-channel-peer") => DmScope::PerAccountChannelPeer,
                _ => DmScope::PerChannelPeer,
            };
        }
    }
}

pub(crate) fn channels(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "channels", &["telegram"]) else {
        return;
    };
    for (k, _, v) in entries {
        if k == "telegram" {
            cfg.telegram = telegram(ctx, v);
        }
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

fn telegram(ctx: &mut Ctx, node: &Node) -> Option<TelegramConfig> {
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
                t.dm_policy = match ctx
                    .one_of(v, &key, &["pairing", "allowlist", "open", "disabled"])
                    .as_deref()
                {
                    Some("allowlist") => DmPolicy::Allowlist,
                    Some("open") => DmPolicy::Open,
                    Some("disabled") => DmPolicy::Disabled,
                    _ => DmPolicy::Pairing,
                }
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
                if v.is_null() {
                    continue;
                }
                let Value::Map(groups) = &v.value else {
                    ctx.err(
                        v.pos,
                        &key,
                        format!(
                            "expected a mapping of chat ids to settings, found {}",
                            v.kind()
                        ),
                    );
                    continue;
                };
                for (gid, gpos, gv) in groups {
                    let gkey = format!("{key}.{gid}");
                    let Some(id) = sender_id(gid) else {
                        ctx.err(
                            *gpos,
                            &gkey,
                            "group keys are numeric chat ids (e.g. -1001234567890) or `*`",
                        );
                        continue;
                    };
                    let mut g = GroupConfig {
                        require_mention: true,
                        enabled: true,
                    };
                    if let Some(ge) = ctx.mapping(gv, &gkey, &["requireMention", "enabled"]) {
                        for (gk, _, gvv) in ge {
                            let k2 = join(&gkey, gk);
                            match gk.as_str() {
                                "requireMention" => {
                                    if let Some(b) = ctx.boolean(gvv, &k2) {
                                        g.require_mention = b;
                                    }
                                }
                                "enabled" => {
                                    if let Some(b) = ctx.boolean(gvv, &k2) {
                                        g.enabled = b;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    t.groups.push((id, g));
                }
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
