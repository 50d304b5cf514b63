//! `channels.slack` from the positioned YAML node: keys and types here, the semantic checks
//! in [`SlackConfig::check`], every problem reported as `config.yaml:LINE:COL: channels.slack.key`.

use super::config::{SlackConfig, KEY_PREFIX};
use clawgate_config::yaml::{Node, Pos, Value};
use clawgate_config::{join, ChannelConfigParser, ChannelSection, Ctx, Secret};
use std::sync::Arc;

impl ChannelSection for SlackConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.bot_token
            .iter()
            .chain(&self.app_token)
            .chain(&self.signing_secret)
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub struct Parser;

const KEYS: &[&str] = &[
    "enabled",
    "mode",
    "botToken",
    "appToken",
    "signingSecret",
    "webhookPath",
    "apiRoot",
    "dmPolicy",
    "allowFrom",
    "groupPolicy",
    "channels",
    "replyToMode",
    "textChunkLimit",
    "allowBots",
];

impl ChannelConfigParser for Parser {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        parse(ctx, node).map(|c| Arc::new(c) as Arc<dyn ChannelSection>)
    }
}

fn parse(ctx: &mut Ctx, node: &Node) -> Option<SlackConfig> {
    let entries = ctx.mapping(node, KEY_PREFIX, KEYS)?;
    let mut c = SlackConfig::default();
    let mut positions: Vec<(String, Pos)> = Vec::new();
    for (k, _, v) in entries {
        let key = join(KEY_PREFIX, k);
        positions.push((key.clone(), v.pos));
        match k.as_str() {
            "enabled" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    c.enabled = b;
                }
            }
            "allowBots" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    c.allow_bots = b;
                }
            }
            "mode" => {
                if let Some(s) = ctx.one_of(v, &key, &["socket", "http"]) {
                    c.mode = s.parse().unwrap_or_default();
                }
            }
            "groupPolicy" => {
                if let Some(s) = ctx.one_of(v, &key, &["allowlist", "open", "disabled"]) {
                    c.group_policy = s.parse().unwrap_or_default();
                }
            }
            "replyToMode" => {
                if let Some(s) = ctx.one_of(v, &key, &["off", "first", "all"]) {
                    c.reply_to_mode = s.parse().unwrap_or_default();
                }
            }
            "dmPolicy" => {
                if let Some(p) = ctx.dm_policy(v, &key) {
                    c.dm_policy = p;
                }
            }
            "botToken" => c.bot_token = ctx.string(v, &key).map(|s| Secret::new(s.trim())),
            "appToken" => c.app_token = ctx.string(v, &key).map(|s| Secret::new(s.trim())),
            "signingSecret" => c.signing_secret = ctx.string(v, &key).map(Secret::new),
            "webhookPath" => {
                if let Some(s) = ctx.string(v, &key) {
                    let reserved = ["/", "/healthz", "/health", "/readyz", "/ready"];
                    if reserved.contains(&s.as_str()) {
                        ctx.err(
                            v.pos,
                            &key,
                            format!("`{s}` is reserved (use a path like /slack/events)"),
                        );
                    } else {
                        c.webhook_path = s;
                    }
                }
            }
            "apiRoot" => {
                if let Some(s) = ctx.string(v, &key) {
                    c.api_root = s.trim_end_matches('/').to_string();
                }
            }
            "allowFrom" => {
                if let Value::Seq(items) = &v.value {
                    for (i, item) in items.iter().enumerate() {
                        let ik = format!("{key}[{i}]");
                        positions.push((ik.clone(), item.pos));
                        if let Value::Scalar(s, _) = &item.value {
                            c.allow_from.push(s.clone());
                        } else {
                            ctx.err(item.pos, &ik, "expected a user id");
                        }
                    }
                } else if !v.is_null() {
                    ctx.err(v.pos, &key, format!("expected a list, found {}", v.kind()));
                }
            }
            "textChunkLimit" => {
                if let Some(n) =
                    ctx.integer(v, &key, 100, super::config::MAX_TEXT_CHUNK_LIMIT as u64)
                {
                    c.text_chunk_limit = n as usize;
                }
            }
            "channels" => {
                let Value::Map(list) = &v.value else {
                    if !v.is_null() {
                        ctx.err(
                            v.pos,
                            &key,
                            format!("expected a mapping, found {}", v.kind()),
                        );
                    }
                    continue;
                };
                for (id, _, g) in list {
                    let gk = format!("{key}.{id}");
                    positions.push((gk.clone(), g.pos));
                    c.channels.push((id.clone(), ctx.group_config(g, &gk)));
                }
            }
            _ => {}
        }
    }
    for (key, message) in c.check() {
        // The most specific position known: the key itself, else its parent, else the section.
        let pos = positions
            .iter()
            .filter(|(k, _)| {
                key == *k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}["))
            })
            .map(|(_, p)| *p)
            .next_back()
            // A credential missing for the chosen mode points at `mode`.
            .or_else(|| {
                positions
                    .iter()
                    .find(|(k, _)| k == "channels.slack.mode")
                    .map(|(_, p)| *p)
            })
            .unwrap_or(node.pos);
        ctx.err(pos, &key, message);
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_config::{Config, ConfigError};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        Config::parse_with(text, Path::new("config.yaml"), &|_| None, &[&Parser])
    }

    #[test]
    fn http_mode_section() {
        let c = parse("channels:\n  slack:\n    mode: http\n    botToken: xoxb-1-2\n    signingSecret: s3cret\n    allowFrom: [\"slack:U123\"]\n    channels:\n      C42: { requireMention: false }\n").unwrap();
        let s = c.channel("slack").unwrap().get::<SlackConfig>().unwrap();
        assert_eq!(s.mode, super::super::SlackMode::Http);
        assert_eq!(s.effective_allow_from(), ["U123"]);
        assert!(!s.channels[0].1.require_mention);
        assert_eq!(c.channels[0].section.secrets().len(), 2);
    }

    #[test]
    fn a_missing_credential_names_the_key() {
        let e = parse("channels:\n  slack:\n    mode: http\n    botToken: xoxb-1-2\n").unwrap_err();
        assert_eq!(e[0].to_string(), "config.yaml:3:11: channels.slack.signingSecret: required in http mode: without it anyone could post fake events");
        let e =
            parse("channels:\n  slack:\n    botToken: nope\n    appToken: xapp-1\n").unwrap_err();
        assert!(
            e[0].to_string()
                .starts_with("config.yaml:3:15: channels.slack.botToken:"),
            "{}",
            e[0]
        );
    }
}
