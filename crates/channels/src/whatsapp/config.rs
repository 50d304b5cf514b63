//! `channels.whatsapp` (WhatsApp Cloud API): keys, defaults and validation (errors read
//! `config.yaml:LINE:COL: channels.whatsapp.key`), and the secrets the channel declares.

use clawgate_config::yaml::Node;
use clawgate_config::{
    join, ChannelConfigParser, ChannelSection, Ctx, DmPolicy, GroupConfig, Secret,
};
use std::sync::Arc;

pub const KEY_PREFIX: &str = "channels.whatsapp";
pub const DEFAULT_WEBHOOK_PATH: &str = "/whatsapp/webhook";
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_API_VERSION: &str = "v23.0";
pub const DEFAULT_TEXT_CHUNK_LIMIT: usize = 4000;
/// Meta's limit on `text.body`.
pub const MAX_TEXT_CHUNK_LIMIT: usize = 4096;

/// `channels.whatsapp`.
#[derive(Debug, Clone)]
pub struct WhatsAppConfig {
    pub enabled: bool,
    /// The business phone number's id (not the number itself): `/{phoneNumberId}/messages`.
    pub phone_number_id: String,
    /// A (system user) access token with `whatsapp_business_messaging`.
    pub access_token: Option<Secret>,
    /// The Meta app secret: the key of `X-Hub-Signature-256`.
    pub app_secret: Option<Secret>,
    /// The string typed into the App Dashboard next to the callback URL.
    pub verify_token: Option<Secret>,
    pub webhook_path: String,
    pub graph_base_url: String,
    pub graph_api_version: String,
    pub dm_policy: DmPolicy,
    /// E.164 numbers (`+16505551234`) or `*`.
    pub allow_from: Vec<String>,
    /// Group id (or `*`) → settings (Cloud API groups; a group not listed is ignored).
    pub groups: Vec<(String, GroupConfig)>,
    pub text_chunk_limit: usize,
    pub send_read_receipts: bool,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        WhatsAppConfig {
            enabled: true,
            phone_number_id: String::new(),
            access_token: None,
            app_secret: None,
            verify_token: None,
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            graph_base_url: DEFAULT_GRAPH_BASE_URL.into(),
            graph_api_version: DEFAULT_GRAPH_API_VERSION.into(),
            dm_policy: DmPolicy::Pairing,
            allow_from: Vec::new(),
            groups: Vec::new(),
            text_chunk_limit: DEFAULT_TEXT_CHUNK_LIMIT,
            send_read_receipts: true,
        }
    }
}

impl ChannelSection for WhatsAppConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.access_token
            .iter()
            .chain(&self.app_secret)
            .chain(&self.verify_token)
            .collect()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// E.164 form of a phone number or WhatsApp id: `+` and 7–15 digits. Spaces, dashes, dots
/// and parentheses are dropped, a `whatsapp:` prefix and a leading `00` are accepted.
pub fn to_e164(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_prefix("whatsapp:").unwrap_or(t).trim();
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    if !plus {
        if let Some(d) = digits.strip_prefix("00") {
            digits = d.to_string();
        }
    }
    if !(7..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    Some(format!("+{digits}"))
}

/// The section parser (part of the WhatsApp plugin).
pub struct Parser;

impl ChannelConfigParser for Parser {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn parse_section(&self, ctx: &mut Ctx, node: &Node) -> Option<Arc<dyn ChannelSection>> {
        parse_section(ctx, node).map(|c| Arc::new(c) as Arc<dyn ChannelSection>)
    }
}

const KEYS: &[&str] = &[
    "enabled",
    "phoneNumberId",
    "accessToken",
    "appSecret",
    "verifyToken",
    "webhookPath",
    "graphBaseUrl",
    "graphApiVersion",
    "dmPolicy",
    "allowFrom",
    "groups",
    "textChunkLimit",
    "sendReadReceipts",
];

fn secret(ctx: &mut Ctx, v: &Node, key: &str) -> Option<Secret> {
    let s = ctx.string(v, key)?;
    if s.trim().is_empty() {
        ctx.err(v.pos, key, "must not be empty");
        return None;
    }
    Some(Secret::new(s.trim()))
}

fn parse_section(ctx: &mut Ctx, node: &Node) -> Option<WhatsAppConfig> {
    let entries = ctx.mapping(node, KEY_PREFIX, KEYS)?;
    let mut c = WhatsAppConfig::default();
    let mut policy_pos = node.pos;
    let mut bad_required = Vec::new();
    for (k, _, v) in entries {
        let key = join(KEY_PREFIX, k);
        match k.as_str() {
            "enabled" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    c.enabled = b;
                }
            }
            "sendReadReceipts" => {
                if let Some(b) = ctx.boolean(v, &key) {
                    c.send_read_receipts = b;
                }
            }
            "phoneNumberId" => match ctx.string(v, &key) {
                Some(s) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
                    c.phone_number_id = s.trim().to_string()
                }
                Some(s) => {
                    bad_required.push(k.clone());
                    ctx.err(v.pos, &key, format!("`{s}` is not a phone number id (the numeric id shown under WhatsApp → API Setup, not the phone number)"));
                }
                None => bad_required.push(k.clone()),
            },
            "accessToken" | "appSecret" | "verifyToken" => {
                let s = secret(ctx, v, &key);
                if s.is_none() {
                    bad_required.push(k.clone());
                }
                match k.as_str() {
                    "accessToken" => c.access_token = s,
                    "appSecret" => c.app_secret = s,
                    _ => c.verify_token = s,
                }
            }
            "webhookPath" => {
                if let Some(s) = ctx.string(v, &key) {
                    let reserved = ["/", "/healthz", "/health", "/readyz", "/ready"];
                    if !s.starts_with('/')
                        || reserved.contains(&s.as_str())
                        || s.contains(|ch: char| ch.is_whitespace() || ch == '?' || ch == '#')
                    {
                        ctx.err(v.pos, &key, format!("`{s}` must be a path like {DEFAULT_WEBHOOK_PATH} (not / or a probe path)"));
                    } else {
                        c.webhook_path = s;
                    }
                }
            }
            "graphBaseUrl" => {
                if let Some(s) = ctx.string(v, &key) {
                    if s.starts_with("https://") || s.starts_with("http://") {
                        c.graph_base_url = s.trim_end_matches('/').to_string();
                    } else {
                        ctx.err(
                            v.pos,
                            &key,
                            format!("must be an http(s) URL like {DEFAULT_GRAPH_BASE_URL}"),
                        );
                    }
                }
            }
            "graphApiVersion" => {
                if let Some(s) = ctx.string(v, &key) {
                    let ok = s
                        .strip_prefix('v')
                        .and_then(|r| r.split_once('.'))
                        .is_some_and(|(a, b)| {
                            !a.is_empty()
                                && !b.is_empty()
                                && a.bytes().all(|x| x.is_ascii_digit())
                                && b.bytes().all(|x| x.is_ascii_digit())
                        });
                    if ok {
                        c.graph_api_version = s;
                    } else {
                        ctx.err(
                            v.pos,
                            &key,
                            format!(
                                "`{s}` is not a Graph API version like {DEFAULT_GRAPH_API_VERSION}"
                            ),
                        );
                    }
                }
            }
            "dmPolicy" => {
                policy_pos = v.pos;
                c.dm_policy = ctx.dm_policy(v, &key).unwrap_or(DmPolicy::Pairing);
            }
            "allowFrom" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    for (i, (s, pos)) in list.into_iter().enumerate() {
                        if s.trim() == "*" {
                            c.allow_from.push("*".into());
                            continue;
                        }
                        match to_e164(&s) {
                            Some(n) => c.allow_from.push(n),
                            None => ctx.err(pos, &format!("{key}[{i}]"), format!("`{s}` is not a phone number in E.164 form (like +16505551234) or `*`")),
                        }
                    }
                }
            }
            "groups" => {
                c.groups = ctx.group_map(v, &key, "group ids", |gid| Ok(gid.to_string()));
            }
            "textChunkLimit" => {
                if let Some(n) = ctx.integer(v, &key, 100, MAX_TEXT_CHUNK_LIMIT as u64) {
                    c.text_chunk_limit = n as usize;
                }
            }
            _ => {}
        }
    }
    if c.enabled {
        let missing = [
            ("phoneNumberId", c.phone_number_id.is_empty(), "the id of the business phone number (WhatsApp → API Setup in the Meta app)"),
            ("accessToken", c.access_token.is_none(), "a Graph API access token with whatsapp_business_messaging (a System User token does not expire)"),
            ("appSecret", c.app_secret.is_none(), "the Meta app secret (App settings → Basic): without it anyone could post fake messages to the webhook"),
            ("verifyToken", c.verify_token.is_none(), "the verify token you type into the webhook settings of the Meta app"),
        ];
        for (k, is_missing, what) in missing {
            if is_missing && !bad_required.iter().any(|b| b == k) {
                ctx.err(
                    node.pos,
                    &join(KEY_PREFIX, k),
                    format!("required when the channel is enabled: {what}"),
                );
            }
        }
        if c.dm_policy == DmPolicy::Open && !c.allow_from.iter().any(|a| a == "*") {
            ctx.err(
                policy_pos,
                &join(KEY_PREFIX, "dmPolicy"),
                "`open` requires allowFrom: [\"*\"] (an explicit opt-in to strangers)",
            );
        }
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

    const FULL: &str = "channels:\n  whatsapp:\n    phoneNumberId: \"106540352242922\"\n    accessToken: EAAG-token\n    appSecret: app-secret\n    verifyToken: verify-me\n";

    #[test]
    fn defaults_and_secrets() {
        let c = parse(FULL).unwrap();
        let w = c
            .channel("whatsapp")
            .unwrap()
            .get::<WhatsAppConfig>()
            .unwrap();
        assert_eq!(w.webhook_path, "/whatsapp/webhook");
        assert_eq!(w.graph_base_url, "https://graph.facebook.com");
        assert_eq!(w.graph_api_version, "v23.0");
        assert_eq!(w.dm_policy, DmPolicy::Pairing);
        assert_eq!(w.text_chunk_limit, 4000);
        assert!(w.send_read_receipts);
        let secrets: Vec<&str> = c.channels[0]
            .section
            .secrets()
            .iter()
            .map(|s| s.expose())
            .collect();
        assert_eq!(secrets, ["EAAG-token", "app-secret", "verify-me"]);
    }

    #[test]
    fn each_missing_credential_is_named() {
        for key in ["phoneNumberId", "accessToken", "appSecret", "verifyToken"] {
            let text: String = FULL
                .lines()
                .filter(|l| !l.contains(key))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = parse(&text).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            let s = e[0].to_string();
            assert!(s.starts_with("config.yaml:3:"), "{s}");
            assert!(
                s.contains(&format!(
                    ": channels.whatsapp.{key}: required when the channel is enabled"
                )),
                "{s}"
            );
        }
        // Disabled: nothing is required.
        assert!(parse("channels:\n  whatsapp:\n    enabled: false\n").is_ok());
    }

    #[test]
    fn allow_from_is_e164_and_limits_are_checked() {
        let c = parse(&format!("{FULL}    allowFrom: [\"+1 650-555-1234\", \"0044 7700 900123\", \"*\"]\n    dmPolicy: open\n")).unwrap();
        let w = c
            .channel("whatsapp")
            .unwrap()
            .get::<WhatsAppConfig>()
            .unwrap();
        assert_eq!(w.allow_from, ["+16505551234", "+447700900123", "*"]);
        let e = parse(&format!("{FULL}    allowFrom: [\"ada\"]\n")).unwrap_err();
        assert!(
            e[0].to_string()
                .contains("channels.whatsapp.allowFrom[0]: `ada` is not a phone number in E.164"),
            "{}",
            e[0]
        );
        let e = parse(&format!("{FULL}    textChunkLimit: 5000\n")).unwrap_err();
        assert!(
            e[0].to_string()
                .contains("channels.whatsapp.textChunkLimit"),
            "{}",
            e[0]
        );
        let e = parse(&format!("{FULL}    dmPolicy: open\n")).unwrap_err();
        assert!(e[0].to_string().contains("requires allowFrom"), "{}", e[0]);
        let e = parse(&format!("{FULL}    graphApiVersion: latest\n")).unwrap_err();
        assert!(e[0].to_string().contains("graphApiVersion"), "{}", e[0]);
    }

    #[test]
    fn e164() {
        assert_eq!(to_e164("16505551234").as_deref(), Some("+16505551234"));
        assert_eq!(
            to_e164("+1 (650) 555-1234").as_deref(),
            Some("+16505551234")
        );
        assert_eq!(
            to_e164("whatsapp:+447700900123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(
            to_e164("0044 7700 900123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(to_e164("12"), None);
        assert_eq!(to_e164("+1650abc"), None);
    }
}
