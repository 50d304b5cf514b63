//! Validation of `models`, `agents` and `tools`.

use crate::validate::{join, Ctx};
use crate::yaml::{Node, Value};
use crate::{
    Config, ExecMode, ExecSandbox, ModelEntry, ProviderApi, ProviderConfig, QueueMode, Secret,
};
use std::path::PathBuf;

pub(crate) fn models(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "models", &["providers"]) else {
        return;
    };
    for (k, _, v) in entries {
        if k != "providers" || v.is_null() {
            continue;
        }
        let Value::Map(providers) = &v.value else {
            ctx.err(
                v.pos,
                "models.providers",
                format!("expected a mapping of provider ids, found {}", v.kind()),
            );
            continue;
        };
        for (id, id_pos, p) in providers {
            let valid_id = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid_id {
                ctx.err(
                    *id_pos,
                    &format!("models.providers.{id}"),
                    "provider ids use letters, digits, `-`, `_` and `.` only",
                );
                continue;
            }
            if let Some(pc) = provider(ctx, id, p) {
                cfg.providers.push(pc);
            }
        }
    }
}

fn provider(ctx: &mut Ctx, id: &str, node: &Node) -> Option<ProviderConfig> {
    const KEYS: &[&str] = &[
        "api",
        "baseUrl",
        "apiKey",
        "models",
        "headers",
        "connectTimeoutSeconds",
        "firstTokenTimeoutSeconds",
        "timeoutSeconds",
        "maxRetries",
    ];
    let prefix = format!("models.providers.{id}");
    let entries = ctx.mapping(node, &prefix, KEYS)?;
    let mut pc = ProviderConfig {
        id: id.to_string(),
        api: ProviderApi::OpenAiCompletions,
        base_url: String::new(),
        api_key: None,
        models: Vec::new(),
        headers: Vec::new(),
        connect_timeout_ms: 10_000,
        first_token_timeout_ms: 60_000,
        total_timeout_ms: 300_000,
        max_retries: 4,
    };
    let mut ok = true;
    for (k, _, v) in entries {
        let key = join(&prefix, k);
        match k.as_str() {
            "api" => match ctx
                .one_of(v, &key, &["openai-completions", "anthropic-messages"])
                .as_deref()
            {
                Some("anthropic-messages") => pc.api = ProviderApi::AnthropicMessages,
                Some(_) => pc.api = ProviderApi::OpenAiCompletions,
                None => ok = false,
            },
            "baseUrl" => match ctx.string(v, &key) {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    pc.base_url = u.trim_end_matches('/').to_string()
                }
                Some(u) => {
                    ctx.err(v.pos, &key, format!("`{u}` is not an http(s) URL"));
                    ok = false;
                }
                None => ok = false,
            },
            "apiKey" if !v.is_null() => match ctx.string(v, &key) {
                Some(s) if !s.is_empty() => pc.api_key = Some(Secret::new(s)),
                _ => ok = false,
            },
            "models" => {
                let Value::Seq(items) = &v.value else {
                    ctx.err(
                        v.pos,
                        &key,
                        format!("expected a list of model ids, found {}", v.kind()),
                    );
                    ok = false;
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let ik = format!("{key}[{i}]");
                    match &item.value {
                        Value::Scalar(..) => {
                            if let Some(mid) = ctx.string(item, &ik) {
                                pc.models.push(ModelEntry {
                                    id: mid,
                                    name: None,
                                    context_window: 128_000,
                                    max_tokens: 4096,
                                });
                            }
                        }
                        Value::Map(_) => {
                            let Some(me) = ctx.mapping(
                                item,
                                &ik,
                                &["id", "name", "contextWindow", "maxTokens"],
                            ) else {
                                continue;
                            };
                            let mut m = ModelEntry {
                                id: String::new(),
                                name: None,
                                context_window: 128_000,
                                max_tokens: 4096,
                            };
                            for (mk, _, mv) in me {
                                let mkey = join(&ik, mk);
                                match mk.as_str() {
                                    "id" => m.id = ctx.string(mv, &mkey).unwrap_or_default(),
                                    "name" => m.name = ctx.string(mv, &mkey),
                                    "contextWindow" => {
                                        if let Some(n) = ctx.integer(mv, &mkey, 1024, 100_000_000) {
                                            m.context_window = n;
                                        }
                                    }
                                    "maxTokens" => {
                                        if let Some(n) = ctx.integer(mv, &mkey, 1, 10_000_000) {
                                            m.max_tokens = n as u32;
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            if m.id.is_empty() {
                                ctx.err(item.pos, &ik, "a model needs an `id`");
                            } else {
                                pc.models.push(m);
                            }
                        }
                        Value::Seq(_) => ctx.err(item.pos, &ik, "expected a model id or a mapping"),
                    }
                }
            }
            "headers" => {
                if v.is_null() {
                    continue;
                }
                let Value::Map(hs) = &v.value else {
                    ctx.err(
                        v.pos,
                        &key,
                        format!(
                            "expected a mapping of header names to values, found {}",
                            v.kind()
                        ),
                    );
                    continue;
                };
                for (hk, _, hv) in hs {
                    if let Some(val) = ctx.string(hv, &join(&key, hk)) {
                        pc.headers.push((hk.clone(), Secret::new(val)));
                    }
                }
            }
            "connectTimeoutSeconds" => {
                if let Some(n) = ctx.integer(v, &key, 1, 3600) {
                    pc.connect_timeout_ms = n * 1000;
                }
            }
            "firstTokenTimeoutSeconds" => {
                if let Some(n) = ctx.integer(v, &key, 1, 3600) {
                    pc.first_token_timeout_ms = n * 1000;
                }
            }
            "timeoutSeconds" => {
                if let Some(n) = ctx.integer(v, &key, 1, 86_400) {
                    pc.total_timeout_ms = n * 1000;
                }
            }
            "maxRetries" => {
                if let Some(n) = ctx.integer(v, &key, 0, 20) {
                    pc.max_retries = n as u32;
                }
            }
            _ => {}
        }
    }
    if pc.base_url.is_empty() && ok {
        ctx.err(
            node.pos,
            &join(&prefix, "baseUrl"),
            "required (e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1)",
        );
        return None;
    }
    ok.then_some(pc)
}

pub(crate) fn agents(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(node, "agents", &["defaults"]) else {
        return;
    };
    for (_, _, v) in entries {
        const KEYS: &[&str] = &[
            "model",
            "workspace",
            "maxToolIterations",
            "timeoutSeconds",
            "queueMode",
            "bootstrapMaxChars",
            "contextTokens",
            "maxConcurrent",
        ];
        let Some(d) = ctx.mapping(v, "agents.defaults", KEYS) else {
            continue;
        };
        for (k, _, dv) in d {
            let key = join("agents.defaults", k);
            let a = &mut cfg.agent;
            match k.as_str() {
                "model" => match &dv.value {
                    Value::Map(_) => {
                        let Some(m) = ctx.mapping(dv, &key, &["primary", "fallbacks"]) else {
                            continue;
                        };
                        for (mk, _, mv) in m {
                            match mk.as_str() {
                                "primary" => a.model = ctx.string(mv, &join(&key, mk)),
                                "fallbacks" => {
                                    if let Some(list) = ctx.string_list(mv, &join(&key, mk)) {
                                        a.fallbacks = list.into_iter().map(|(s, _)| s).collect();
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => a.model = ctx.string(dv, &key),
                },
                "workspace" => {
                    if let Some(w) = ctx.string(dv, &key) {
                        a.workspace = Some(expand_home(&w));
                    }
                }
                "maxToolIterations" => {
                    if let Some(n) = ctx.integer(dv, &key, 1, 1000) {
                        a.max_tool_iterations = n as u32;
                    }
                }
                "timeoutSeconds" => {
                    if let Some(n) = ctx.integer(dv, &key, 1, 172_800) {
                        a.timeout_ms = n * 1000;
                    }
                }
                "queueMode" => match ctx.one_of(dv, &key, &["followup", "interrupt"]).as_deref() {
                    Some("interrupt") => a.queue_mode = QueueMode::Interrupt,
                    Some(_) => a.queue_mode = QueueMode::Followup,
                    None => {}
                },
                "bootstrapMaxChars" => {
                    if let Some(n) = ctx.integer(dv, &key, 0, 1_000_000) {
                        a.bootstrap_max_chars = n as usize;
                    }
                }
                "contextTokens" => {
                    if let Some(n) = ctx.integer(dv, &key, 1024, 100_000_000) {
                        a.context_tokens = Some(n);
                    }
                }
                "maxConcurrent" => {
                    if let Some(n) = ctx.integer(dv, &key, 1, 256) {
                        a.max_concurrent = n as usize;
                    }
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(p)
}

/// Lets `tools.exec.allowlist` name escape hatches (see [`crate::escape`]).
pub const DANGEROUS_EXEC_KEY: &str = "dangerouslyAllowEscapeHatches";

pub(crate) fn tools(ctx: &mut Ctx, node: &Node, cfg: &mut Config) {
    let Some(entries) = ctx.mapping(
        node,
        "tools",
        &["allow", "deny", "exec", "web", "maxOutputBytes"],
    ) else {
        return;
    };
    for (k, _, v) in entries {
        let key = join("tools", k);
        let t = &mut cfg.tools;
        match k.as_str() {
            "allow" | "deny" => {
                if let Some(list) = ctx.string_list(v, &key) {
                    let names = list.into_iter().map(|(s, _)| s).collect();
                    if k == "allow" {
                        t.allow = names;
                    } else {
                        t.deny = names;
                    }
                }
            }
            "maxOutputBytes" => {
                if let Some(n) = ctx.integer(v, &key, 1024, 16 * 1024 * 1024) {
                    t.max_output_bytes = n as usize;
                }
            }
            "exec" => {
                let Some(e) = ctx.mapping(
                    v,
                    &key,
                    &[
                        "mode",
                        "allowlist",
                        "timeoutSeconds",
                        "sandbox",
                        DANGEROUS_EXEC_KEY,
                    ],
                ) else {
                    continue;
                };
                let mut entries = Vec::new();
                for (ek, _, ev) in e {
                    let ekey = join(&key, ek);
                    match ek.as_str() {
                        "mode" => match ctx.one_of(ev, &ekey, &["deny", "allowlist"]).as_deref() {
                            Some("allowlist") => t.exec.mode = ExecMode::Allowlist,
                            Some(_) => t.exec.mode = ExecMode::Deny,
                            None => {}
                        },
                        "allowlist" => {
                            if let Some(list) = ctx.string_list(ev, &ekey) {
                                t.exec.allowlist = list.iter().map(|(s, _)| s.clone()).collect();
                                entries = list;
                            }
                        }
                        "sandbox" => {
                            match ctx.one_of(ev, &ekey, &["landlock", "none"]).as_deref() {
                                Some("none") => t.exec.sandbox = ExecSandbox::None,
                                Some(_) => t.exec.sandbox = ExecSandbox::Landlock,
                                None => {}
                            }
                        }
                        DANGEROUS_EXEC_KEY => {
                            if let Some(b) = ctx.boolean(ev, &ekey) {
                                t.exec.dangerously_allow_escape_hatches = b;
                            }
                        }
                        "timeoutSeconds" => {
                            if let Some(n) = ctx.integer(ev, &ekey, 1, 3600) {
                                t.exec.timeout_ms = n * 1000;
                            }
                        }
                        _ => {}
                    }
                }
                if !t.exec.dangerously_allow_escape_hatches {
                    for (i, (entry, pos)) in entries.iter().enumerate() {
                        if let Some(why) = crate::escape::escape_hatch(entry) {
                            ctx.err(
                                *pos,
                                &format!("{key}.allowlist[{i}]"),
                                format!(
                                    "{why}, so allowlisting it allows any command; remove it, or set \
                                     tools.exec.{DANGEROUS_EXEC_KEY}: true to accept that"
                                ),
                            );
                        }
                    }
                }
            }
            "web" => {
                let Some(w) = ctx.mapping(v, &key, &["fetch"]) else {
                    continue;
                };
                for (_, _, fv) in w {
                    let fkey = "tools.web.fetch";
                    let Some(f) = ctx.mapping(
                        fv,
                        fkey,
                        &[
                            "enabled",
                            "maxResponseBytes",
                            "timeoutSeconds",
                            "maxRedirects",
                        ],
                    ) else {
                        continue;
                    };
                    for (fk, _, fv) in f {
                        let k2 = join(fkey, fk);
                        match fk.as_str() {
                            "enabled" => {
                                if let Some(b) = ctx.boolean(fv, &k2) {
                                    t.web_fetch.enabled = b;
                                }
                            }
                            "maxResponseBytes" => {
                                if let Some(n) = ctx.integer(fv, &k2, 1024, 64 * 1024 * 1024) {
                                    t.web_fetch.max_response_bytes = n as usize;
                                }
                            }
                            "timeoutSeconds" => {
                                if let Some(n) = ctx.integer(fv, &k2, 1, 600) {
                                    t.web_fetch.timeout_ms = n * 1000;
                                }
                            }
                            "maxRedirects" => {
                                if let Some(n) = ctx.integer(fv, &k2, 0, 20) {
                                    t.web_fetch.max_redirects = n as u32;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Checks that need several sections: the default model must name a configured provider.
pub(crate) fn cross_check(ctx: &mut Ctx, root: &Node, cfg: &Config) {
    let Some(model) = &cfg.agent.model else {
        return;
    };
    let pos = find_pos(root, &["agents", "defaults", "model"]).unwrap_or(root.pos);
    for m in std::iter::once(model).chain(cfg.agent.fallbacks.iter()) {
        let Some((prov, _)) = m.split_once('/') else {
            ctx.err(
                pos,
                "agents.defaults.model",
                format!("`{m}` must be `<provider>/<model>`"),
            );
            continue;
        };
        if !cfg.providers.iter().any(|p| p.id == prov) {
            let known: Vec<&str> = cfg.providers.iter().map(|p| p.id.as_str()).collect();
            ctx.err(
                pos,
                "agents.defaults.model",
                format!(
                    "`{m}` names provider `{prov}`, which is not in models.providers (configured: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            );
        }
    }
}

fn find_pos(root: &Node, path: &[&str]) -> Option<crate::yaml::Pos> {
    let mut node = root;
    for key in path {
        let Value::Map(entries) = &node.value else {
            return None;
        };
        node = &entries.iter().find(|(k, _, _)| k == key)?.2;
    }
    Some(node.pos)
}
