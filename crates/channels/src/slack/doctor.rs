//! `clawgate doctor` for `channels.slack`: what a valid section still needs outside the
//! config (the Request URL in the Slack app, the reverse-proxy location) and what looks off.

use super::config::{GroupPolicy, SlackConfig, SlackMode};
use crate::plugin::DoctorCheck;
use clawgate_config::Secret;

fn token_check(
    out: &mut Vec<DoctorCheck>,
    key: &str,
    token: Option<&Secret>,
    prefix: &str,
    what: &str,
) {
    match token {
        // Never print the value: only its kind.
        Some(t) if t.expose().starts_with(prefix) => {
            out.push(DoctorCheck::ok(format!("{key} is {what} ({prefix}…)")))
        }
        Some(t) => {
            let kind = ["xoxb-", "xapp-", "xoxp-"]
                .iter()
                .find(|p| t.expose().starts_with(**p))
                .map(|p| format!("starts with {p}"))
                .unwrap_or_else(|| "has no Slack token prefix".into());
            out.push(DoctorCheck::fail(
                format!("{key} {kind}, not {prefix}"),
                format!("set channels.slack.{key} to {what} ({prefix}…)"),
            ))
        }
        None => out.push(DoctorCheck::fail(
            format!("{key} is missing"),
            format!("set channels.slack.{key} to {what} ({prefix}…)"),
        )),
    }
}

/// The checks for one parsed section.
pub fn checks(cfg: &SlackConfig, gateway_port: u16) -> Vec<DoctorCheck> {
    let mut out = Vec::new();
    if !cfg.enabled {
        out.push(DoctorCheck::ok("disabled (enabled: false): nothing starts"));
        return out;
    }
    token_check(
        &mut out,
        "botToken",
        cfg.bot_token.as_ref(),
        "xoxb-",
        "a bot token",
    );
    match cfg.mode {
        SlackMode::Socket => {
            token_check(
                &mut out,
                "appToken",
                cfg.app_token.as_ref(),
                "xapp-",
                "an app-level token with connections:write",
            );
            out.push(DoctorCheck::ok(
                "socket mode: the gateway connects out to Slack, no public URL needed",
            ));
        }
        SlackMode::Http => {
            match &cfg.signing_secret {
                Some(s) if !s.expose().trim().is_empty() => {
                    out.push(DoctorCheck::ok("http mode: signingSecret is set"))
                }
                _ => out.push(DoctorCheck::fail(
                    "http mode without signingSecret: requests cannot be verified",
                    "set channels.slack.signingSecret (Slack app → Basic Information → Signing Secret)",
                )),
            }
            let path = &cfg.webhook_path;
            out.push(DoctorCheck::ok_with(
                format!("http mode: Slack posts events to POST {path} on the gateway"),
                format!(
                    "in the Slack app (Event Subscriptions → Request URL) enter \
                     https://<your-public-host>{path}; behind nginx: \
                     `location = {path} {{ proxy_pass http://127.0.0.1:{gateway_port}; \
                     proxy_set_header Host $host; }}`"
                ),
            ));
            if cfg.app_token.is_some() {
                out.push(DoctorCheck::warn(
                    "appToken is set but unused in http mode",
                    "remove channels.slack.appToken, or use mode: socket",
                ));
            }
        }
    }
    if cfg.group_policy == GroupPolicy::Allowlist && cfg.channels.is_empty() {
        out.push(DoctorCheck::warn(
            "groupPolicy allowlist with no channels listed: the bot answers only DMs",
            "add channels.slack.channels.<C-id> entries, or set groupPolicy: open",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::DoctorLevel;

    #[test]
    fn http_mode_names_the_request_url_and_the_proxy_location() {
        let cfg = SlackConfig {
            mode: SlackMode::Http,
            bot_token: Some(Secret::new("xoxb-1-2-abc")),
            signing_secret: Some(Secret::new("8f742231b10e8888abcd99yyyzzz85a5")),
            ..SlackConfig::default()
        };
        let c = checks(&cfg, 18789);
        let note = c
            .iter()
            .find_map(|c| c.fix.as_deref().filter(|f| f.contains("Request URL")))
            .expect("a Request URL note");
        assert!(
            note.contains("https://<your-public-host>/slack/events"),
            "{note}"
        );
        assert!(note.contains("location = /slack/events"), "{note}");
        assert!(note.contains("127.0.0.1:18789"), "{note}");
        assert!(c.iter().all(|c| c.level != DoctorLevel::Fail), "{c:?}");
    }

    #[test]
    fn a_token_of_the_wrong_kind_fails_without_echoing_it() {
        let cfg = SlackConfig {
            bot_token: Some(Secret::new("xapp-1-A1-secretvalue")),
            app_token: Some(Secret::new("xapp-1-A1-xyz")),
            ..SlackConfig::default()
        };
        let c = checks(&cfg, 18789);
        let bad = c.iter().find(|c| c.level == DoctorLevel::Fail).unwrap();
        assert_eq!(bad.message, "botToken starts with xapp-, not xoxb-");
        assert!(!format!("{c:?}").contains("secretvalue"));
    }
}
