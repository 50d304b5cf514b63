//! `clawgate doctor` for `channels.telegram`: the token's shape, and in webhook mode the
//! public URL Telegram must be able to reach (HTTPS on one of its four ports).

use super::config::{TelegramConfig, TelegramMode};
use crate::plugin::DoctorCheck;

/// Telegram posts webhooks only to these ports.
const WEBHOOK_PORTS: [u16; 4] = [443, 80, 88, 8443];

/// `<bot id>:<secret>` as BotFather hands it out.
fn token_looks_right(t: &str) -> bool {
    match t.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && secret.len() >= 30
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

/// Scheme, port and path of an absolute URL (no URL crate needed for this much).
fn split_url(url: &str) -> Option<(&str, u16, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let host_port = authority.rsplit('@').next()?;
    // `[v6]:port`, `host:port`, or no port.
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1,
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    let port = match after_host.strip_prefix(':') {
        Some(p) => p.parse().ok()?,
        None if scheme == "https" => 443,
        None => 80,
    };
    Some((scheme, port, path))
}

pub fn checks(cfg: &TelegramConfig, gateway_port: u16) -> Vec<DoctorCheck> {
    let mut out = Vec::new();
    if !cfg.enabled {
        out.push(DoctorCheck::ok("disabled (enabled: false): nothing starts"));
        return out;
    }
    match &cfg.bot_token {
        Some(t) if token_looks_right(t.expose()) => out.push(DoctorCheck::ok(
            "botToken has BotFather's <id>:<secret> shape",
        )),
        _ => out.push(DoctorCheck::warn(
            "botToken does not look like <bot id>:<secret>",
            "copy the token from @BotFather (/mybots → API Token) into channels.telegram.botToken",
        )),
    }
    let path = &cfg.webhook_path;
    match cfg.mode {
        TelegramMode::Polling => {
            out.push(DoctorCheck::ok(
                "polling mode: the gateway long-polls getUpdates, no public URL needed",
            ));
            if cfg.webhook_url.is_some() {
                out.push(DoctorCheck::warn(
                    "webhookUrl is set in polling mode: a registered webhook makes getUpdates fail (409)",
                    "remove channels.telegram.webhookUrl, or set mode: webhook",
                ));
            }
        }
        TelegramMode::Webhook => {
            let proxy = format!(
                "behind nginx: `location = {path} {{ proxy_pass http://127.0.0.1:{gateway_port}; }}`"
            );
            match cfg.webhook_url.as_deref().map(|u| (u, split_url(u))) {
                None => out.push(DoctorCheck::warn(
                    "webhook mode without webhookUrl: Telegram is not told where to post",
                    format!(
                        "set channels.telegram.webhookUrl: https://<your-public-host>{path} \
                         (the gateway then calls setWebhook); {proxy}"
                    ),
                )),
                Some((u, None)) => out.push(DoctorCheck::fail(
                    format!("webhookUrl `{u}` is not an absolute URL"),
                    format!("use https://<your-public-host>{path}"),
                )),
                Some((u, Some((scheme, port, url_path)))) => {
                    if scheme != "https" {
                        out.push(DoctorCheck::fail(
                            format!("webhookUrl `{u}` is not https: Telegram only posts to HTTPS"),
                            format!("terminate TLS in a reverse proxy and use https://<your-public-host>{path}"),
                        ));
                    } else if !WEBHOOK_PORTS.contains(&port) {
                        out.push(DoctorCheck::fail(
                            format!("webhookUrl uses port {port}: Telegram only posts to 443, 80, 88 or 8443"),
                            "publish the webhook on port 443 (or 80, 88, 8443)",
                        ));
                    } else if url_path != path {
                        out.push(DoctorCheck::warn(
                            format!("webhookUrl path {url_path} differs from webhookPath {path}"),
                            format!("the proxy must forward {url_path} to {path} on 127.0.0.1:{gateway_port}"),
                        ));
                    } else {
                        out.push(DoctorCheck::ok_with(
                            format!("webhook mode: Telegram posts to {u}"),
                            proxy,
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::DoctorLevel;
    use clawgate_config::{DmPolicy, Secret};

    fn cfg(mode: TelegramMode, url: Option<&str>) -> TelegramConfig {
        TelegramConfig {
            enabled: true,
            bot_token: Some(Secret::new("123456:ABCdefGhIJKlmNoPQRsTUVwxyZ0123456789")),
            mode,
            webhook_path: "/webhook/telegram".into(),
            webhook_secret: Some(Secret::new("s3cret")),
            webhook_url: url.map(String::from),
            api_root: "https://api.telegram.org".into(),
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
            groups: Vec::new(),
            text_chunk_limit: 4000,
            poll_timeout_secs: 30,
            stall_timeout_secs: 120,
        }
    }

    fn levels(c: &[DoctorCheck]) -> Vec<DoctorLevel> {
        c.iter().map(|c| c.level).collect()
    }

    #[test]
    fn webhook_urls_telegram_would_refuse_fail() {
        for url in [
            "http://bot.example.com/webhook/telegram",
            "https://bot.example.com:9000/webhook/telegram",
        ] {
            let c = checks(&cfg(TelegramMode::Webhook, Some(url)), 18789);
            assert!(levels(&c).contains(&DoctorLevel::Fail), "{url}: {c:?}");
        }
        let c = checks(
            &cfg(
                TelegramMode::Webhook,
                Some("https://bot.example.com/webhook/telegram"),
            ),
            18789,
        );
        assert!(!levels(&c).contains(&DoctorLevel::Fail), "{c:?}");
        let c = checks(&cfg(TelegramMode::Webhook, None), 18789);
        assert!(levels(&c).contains(&DoctorLevel::Warn), "{c:?}");
    }
}
