//! The JSON Schema (draft 2020-12) of `config.yaml`, built from the config model: the keys,
//! types, ranges and enums the validator accepts, and the defaults of [`Config::default`].
//! Secrets are `writeOnly`. Unit tests hold it to the validator (unknown-key lists, integer
//! ranges and enum values are read back from the validator's own error messages).
//!
//! [`ui_hints`] derives the per-path hints (`help`, `sensitive`) that OpenClaw's clients read
//! next to the schema in `config.schema`.

use crate::{Config, DmScope, ExecMode, ExecSandbox, QueueMode, DANGEROUS_EXEC_KEY};
use serde_json::{json, Map, Value};

/// Provider defaults applied by the validator when a key is absent.
pub const PROVIDER_CONNECT_TIMEOUT_SECONDS: u64 = 10;
pub const PROVIDER_FIRST_TOKEN_TIMEOUT_SECONDS: u64 = 60;
pub const PROVIDER_TIMEOUT_SECONDS: u64 = 300;
pub const PROVIDER_MAX_RETRIES: u64 = 4;
pub const MODEL_CONTEXT_WINDOW: u64 = 128_000;
pub const MODEL_MAX_TOKENS: u64 = 4096;

fn obj(help: &str, props: Vec<(&str, Value)>) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert(k.to_string(), v);
    }
    json!({"type": "object", "description": help, "additionalProperties": false, "properties": p})
}

fn int(help: &str, min: u64, max: u64, default: Option<u64>) -> Value {
    let mut v = json!({"type": "integer", "description": help, "minimum": min, "maximum": max});
    if let Some(d) = default {
        v["default"] = json!(d);
    }
    v
}

fn string(help: &str) -> Value {
    json!({"type": "string", "description": help})
}

fn secret(help: &str) -> Value {
    json!({"type": "string", "description": help, "minLength": 1, "writeOnly": true})
}

fn one_of(help: &str, values: &[&str], default: &str) -> Value {
    json!({"type": "string", "description": help, "enum": values, "default": default})
}

fn boolean(help: &str, default: bool) -> Value {
    json!({"type": "boolean", "description": help, "default": default})
}

fn strings(help: &str) -> Value {
    json!({"type": "array", "description": help, "items": {"type": "string"}, "default": []})
}

/// The schema of `config.yaml`. `channels` are the names of the channel sections this build
/// knows (each section is validated by its channel).
pub fn config_schema(channels: &[&str]) -> Value {
    let d = Config::default();
    let g = &d.gateway;
    let rl = &g.auth.rate_limit;
    let a = &d.agent;
    let t = &d.tools;

    let auth = obj(
        "How clients authenticate to the gateway.",
        vec![
            (
                "mode",
                one_of(
                    "token (default), password, or none (refused on a non-loopback host).",
                    &["token", "password", "none"],
                    g.auth.mode.as_str(),
                ),
            ),
            (
                "token",
                secret("The shared token; without it the generated credentials/gateway-token is used."),
            ),
            (
                "tokenFile",
                json!({"type": "string", "minLength": 1, "description": "A file holding the token (e.g. a Docker secret, /run/secrets/clawgate_token): one line, not writable by group or others, at most 4 KiB; read at start-up. Not together with token; $CLAWGATE_GATEWAY_TOKEN overrides both."}),
            ),
            ("password", secret("The shared password for mode: password.")),
            (
                "rateLimit",
                obj(
                    "Failed-login throttling per client address.",
                    vec![
                        ("maxAttempts", int("Failures before a lockout.", 1, 1_000_000, Some(rl.max_attempts.into()))),
                        ("windowMs", int("Window the failures are counted in (ms).", 1, 86_400_000, Some(rl.window_ms))),
                        ("lockoutMs", int("Lockout length (ms).", 1, 86_400_000, Some(rl.lockout_ms))),
                        (
                            "globalMaxAttempts",
                            int("Failures across all non-loopback addresses before they are all locked out.", 1, 100_000_000, Some(rl.global_max_attempts.into())),
                        ),
                    ],
                ),
            ),
        ],
    );
    let gateway = obj(
        "The gateway server: one port for HTTP and WebSocket.",
        vec![
            (
                "host",
                json!({"type": "string", "description": "Bind address (keep loopback; tunnel over SSH for remote use).", "minLength": 1, "default": g.host}),
            ),
            (
                "port",
                int(
                    "Port for HTTP and WebSocket.",
                    1,
                    65535,
                    Some(g.port.into()),
                ),
            ),
            ("auth", auth),
            (
                "allowedOrigins",
                json!({"type": "array", "description": "Browser origins allowed to open the WebSocket, besides the gateway's own (exact matches).", "items": {"type": "string", "examples": ["https://ui.example.com"]}, "default": []}),
            ),
            (
                "allowedHosts",
                json!({"type": "array", "description": "Host names answered on browser-facing routes (a DNS-rebinding guard), besides loopback names.", "items": {"type": "string", "examples": ["claw.example.com"]}, "default": []}),
            ),
            (
                "trustedProxies",
                json!({"type": "array", "description": "Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed.", "items": {"type": "string", "examples": ["10.0.0.0/8"]}, "default": []}),
            ),
            (
                "maxHttpConnections",
                int(
                    "HTTP connections open at once, in total.",
                    1,
                    1_000_000,
                    Some(g.max_http_connections as u64),
                ),
            ),
            (
                "maxHttpConnectionsPerAddress",
                int(
                    "HTTP connections open at once from one non-loopback address.",
                    1,
                    1_000_000,
                    Some(g.max_http_connections_per_address as u64),
                ),
            ),
            (
                "maxConnections",
                int(
                    "Authenticated WebSocket connections at once.",
                    1,
                    1_000_000,
                    Some(g.max_connections as u64),
                ),
            ),
            (
                "maxBufferedBytesTotal",
                int(
                    "Outbound bytes queued across all connections.",
                    1 << 20,
                    1 << 36,
                    Some(g.max_buffered_bytes_total as u64),
                ),
            ),
            (
                "controlUi",
                obj(
                    "OpenClaw's browser Control UI, served on the gateway port.",
                    vec![
                        (
                            "enabled",
                            boolean(
                                "Serve a browser UI at all (false: none).",
                                g.control_ui.enabled,
                            ),
                        ),
                        (
                            "root",
                            json!({"type": "string", "description": "A built Control UI directory holding index.html (OpenClaw's dist/control-ui; `clawgate ui install` sets it). Relative to the config file.", "minLength": 1, "examples": ["~/.clawgate/control-ui/2026.9.6"]}),
                        ),
                        (
                            "basePath",
                            json!({"type": "string", "description": "URL prefix the UI is mounted at (normalised: leading slash, no trailing slash).", "default": g.control_ui.base_path, "examples": ["/openclaw"]}),
                        ),
                    ],
                ),
            ),
        ],
    );

    let mut model_obj = obj(
        "A model of this provider.",
        vec![
            (
                "id",
                json!({"type": "string", "description": "The model id the provider knows.", "minLength": 1}),
            ),
            ("name", string("Display name.")),
            (
                "contextWindow",
                int(
                    "Context window (tokens).",
                    1024,
                    100_000_000,
                    Some(MODEL_CONTEXT_WINDOW),
                ),
            ),
            (
                "maxTokens",
                int(
                    "Largest reply (tokens).",
                    1,
                    10_000_000,
                    Some(MODEL_MAX_TOKENS),
                ),
            ),
        ],
    );
    model_obj["required"] = json!(["id"]);
    let mut provider = obj(
        "An LLM provider.",
        vec![
            (
                "api",
                one_of(
                    "The wire API the provider speaks.",
                    &["openai-completions", "anthropic-messages"],
                    "openai-completions",
                ),
            ),
            (
                "baseUrl",
                json!({"type": "string", "description": "Base URL (http or https).", "pattern": "^https?://", "examples": ["http://127.0.0.1:11434/v1"]}),
            ),
            ("apiKey", secret("API key.")),
            (
                "models",
                json!({"type": "array", "description": "Model ids, or objects with details.", "items": {"oneOf": [{"type": "string", "minLength": 1}, model_obj]}, "default": []}),
            ),
            (
                "headers",
                json!({"type": "object", "description": "Extra request headers (values are treated as secrets).", "additionalProperties": {"type": "string", "writeOnly": true}, "default": {}}),
            ),
            (
                "connectTimeoutSeconds",
                int(
                    "Connect timeout.",
                    1,
                    3600,
                    Some(PROVIDER_CONNECT_TIMEOUT_SECONDS),
                ),
            ),
            (
                "firstTokenTimeoutSeconds",
                int(
                    "Time to the first streamed token.",
                    1,
                    3600,
                    Some(PROVIDER_FIRST_TOKEN_TIMEOUT_SECONDS),
                ),
            ),
            (
                "timeoutSeconds",
                int(
                    "Whole-request timeout.",
                    1,
                    86_400,
                    Some(PROVIDER_TIMEOUT_SECONDS),
                ),
            ),
            (
                "maxRetries",
                int(
                    "Retries of a failed request.",
                    0,
                    20,
                    Some(PROVIDER_MAX_RETRIES),
                ),
            ),
        ],
    );
    provider["required"] = json!(["baseUrl"]);
    let models = obj(
        "LLM providers and their models.",
        vec![(
            "providers",
            json!({"type": "object", "description": "Providers by id; models are referenced as <provider>/<model>.",
                   "propertyNames": {"pattern": "^[A-Za-z0-9._-]+$"}, "additionalProperties": provider, "default": {}}),
        )],
    );

    let queue_mode = match a.queue_mode {
        QueueMode::Followup => "followup",
        QueueMode::Interrupt => "interrupt",
    };
    let model_ref = obj(
        "Primary model and fallbacks.",
        vec![
            ("primary", string("<provider>/<model>.")),
            (
                "fallbacks",
                strings("<provider>/<model> refs tried in order when the primary fails."),
            ),
        ],
    );
    let defaults = vec![
        ("model", json!({"description": "The default model: \"<provider>/<model>\", or {primary, fallbacks}.", "oneOf": [{"type": "string"}, model_ref]})),
        ("workspace", string("The agent's workspace directory (default $CLAWGATE_HOME/workspace; ~ is expanded).")),
        ("maxToolIterations", int("Tool calls per run.", 1, 1000, Some(a.max_tool_iterations.into()))),
        ("timeoutSeconds", int("Run timeout.", 1, 172_800, Some(a.timeout_ms / 1000))),
        ("queueMode", one_of("A message arriving during a run waits (followup) or aborts it (interrupt).", &["followup", "interrupt"], queue_mode)),
        ("bootstrapMaxChars", int("Largest workspace bootstrap file text given to the model.", 0, 1_000_000, Some(a.bootstrap_max_chars as u64))),
        ("contextTokens", int("Context budget (tokens); default: the model's context window.", 1024, 100_000_000, a.context_tokens)),
        ("maxConcurrent", int("Runs executing at once over all sessions.", 1, 256, Some(a.max_concurrent as u64))),
    ];
    let agents = obj(
        "The agent.",
        vec![("defaults", obj("Agent defaults.", defaults))],
    );

    let exec_mode = match t.exec.mode {
        ExecMode::Deny => "deny",
        ExecMode::Allowlist => "allowlist",
    };
    let sandbox = match t.exec.sandbox {
        ExecSandbox::Landlock => "landlock",
        ExecSandbox::None => "none",
    };
    let f = &t.web_fetch;
    let tools = obj(
        "The agent's tools.",
        vec![
            ("allow", strings("Tools offered to the model (empty: all).")),
            ("deny", strings("Tools never offered.")),
            (
                "exec",
                obj(
                    "Running programs.",
                    vec![
                        (
                            "mode",
                            one_of(
                                "deny (default) or allowlist.",
                                &["deny", "allowlist"],
                                exec_mode,
                            ),
                        ),
                        (
                            "allowlist",
                            strings("Programs that may run in allowlist mode."),
                        ),
                        (
                            "timeoutSeconds",
                            int(
                                "Per-command timeout.",
                                1,
                                3600,
                                Some(t.exec.timeout_ms / 1000),
                            ),
                        ),
                        (
                            "sandbox",
                            one_of(
                                "landlock (default) or none.",
                                &["landlock", "none"],
                                sandbox,
                            ),
                        ),
                        (
                            DANGEROUS_EXEC_KEY,
                            boolean(
                                "Let the allowlist name programs that run other programs or code.",
                                t.exec.dangerously_allow_escape_hatches,
                            ),
                        ),
                    ],
                ),
            ),
            (
                "web",
                obj(
                    "Web tools.",
                    vec![(
                        "fetch",
                        obj(
                            "The web_fetch tool.",
                            vec![
                                ("enabled", boolean("Offer web_fetch.", f.enabled)),
                                (
                                    "maxResponseBytes",
                                    int(
                                        "Largest response read.",
                                        1024,
                                        64 * 1024 * 1024,
                                        Some(f.max_response_bytes as u64),
                                    ),
                                ),
                                (
                                    "timeoutSeconds",
                                    int("Request timeout.", 1, 600, Some(f.timeout_ms / 1000)),
                                ),
                                (
                                    "maxRedirects",
                                    int("Redirects followed.", 0, 20, Some(f.max_redirects.into())),
                                ),
                            ],
                        ),
                    )],
                ),
            ),
            (
                "maxOutputBytes",
                int(
                    "Largest tool output handed to the model.",
                    1024,
                    16 * 1024 * 1024,
                    Some(t.max_output_bytes as u64),
                ),
            ),
        ],
    );

    let dm_scope = match d.dm_scope {
        DmScope::Main => "main",
        DmScope::PerPeer => "per-peer",
        DmScope::PerChannelPeer => "per-channel-peer",
        DmScope::PerAccountChannelPeer => "per-account-channel-peer",
    };
    let session = obj(
        "Sessions.",
        vec![(
            "dmScope",
            one_of(
                "How direct messages map to sessions.",
                &[
                    "main",
                    "per-peer",
                    "per-channel-peer",
                    "per-account-channel-peer",
                ],
                dm_scope,
            ),
        )],
    );
    let channels = obj(
        "Chat channels; each section is validated by its channel.",
        channels
            .iter()
            .map(|n| {
                (
                    *n,
                    json!({"type": "object", "description": format!("The {n} channel.")}),
                )
            })
            .collect(),
    );
    let r = &d.store.retention;
    let store = obj(
        "The state database.",
        vec![(
            "retention",
            obj(
                "How long finished rows are kept.",
                vec![
                    (
                        "inboundDays",
                        int(
                            "Handled channel inbound messages.",
                            0,
                            3650,
                            Some(r.inbound_days),
                        ),
                    ),
                    (
                        "outboxDays",
                        int(
                            "Sent or abandoned reply chunks.",
                            0,
                            3650,
                            Some(r.outbox_days),
                        ),
                    ),
                    (
                        "idempotencyHours",
                        int(
                            "Idempotency keys of finished runs.",
                            0,
                            87_600,
                            Some(r.idempotency_hours),
                        ),
                    ),
                ],
            ),
        )],
    );
    let logging = obj(
        "The gateway's log file.",
        vec![
            (
                "level",
                one_of(
                    "Least severe level logged (CLAWGATE_LOG overrides it); applied on reload.",
                    &crate::LogLevel::NAMES,
                    d.logging.level.as_str(),
                ),
            ),
            (
                "maxFileBytes",
                int(
                    "Size at which the file is rotated.",
                    4096,
                    1 << 40,
                    Some(d.logging.max_file_bytes),
                ),
            ),
            (
                "maxFiles",
                int(
                    "Rotated files kept.",
                    1,
                    100,
                    Some(d.logging.max_files.into()),
                ),
            ),
        ],
    );
    let mut root = obj(
        "clawgate configuration (config.yaml). Every key is optional; unknown keys stop start-up.",
        vec![
            ("gateway", gateway),
            ("models", models),
            ("agents", agents),
            ("tools", tools),
            ("session", session),
            ("channels", channels),
            ("store", store),
            ("logging", logging),
        ],
    );
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["title"] = json!("clawgate config.yaml");
    root
}

/// Per-path hints for config editors: `help` from each description, `sensitive` for secrets.
/// Paths are dotted; `*` stands for any map key and `[]` for any list item.
pub fn ui_hints(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    hints_at(schema, "", &mut out);
    out
}

fn hints_at(node: &Value, path: &str, out: &mut Map<String, Value>) {
    if !path.is_empty() {
        let mut h = Map::new();
        if let Some(d) = node["description"].as_str() {
            h.insert("help".into(), json!(d));
        }
        if node["writeOnly"] == true || node["additionalProperties"]["writeOnly"] == true {
            h.insert("sensitive".into(), json!(true));
        }
        if !h.is_empty() {
            out.insert(path.to_string(), Value::Object(h));
        }
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            hints_at(v, &child(k), out);
        }
    }
    if node["additionalProperties"].is_object() {
        hints_at(&node["additionalProperties"], &child("*"), out);
    }
    if node["items"].is_object() {
        hints_at(&node["items"], &format!("{path}[]"), out);
    }
    if let Some(alts) = node["oneOf"].as_array() {
        for alt in alts {
            if alt["properties"].is_object() || alt["items"].is_object() {
                let mut flat = alt.clone();
                if let Some(m) = flat.as_object_mut() {
                    m.remove("description");
                }
                hints_at(&flat, path, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The schema against the validator: every closed object's key list, every integer's
    //! range and every enum's values are read back from the validator's own messages.

    use super::*;
    use std::path::Path;

    #[derive(Clone)]
    enum Seg {
        Key(String),
        Item,
    }

    fn dotted(path: &[Seg]) -> String {
        let mut s = String::new();
        for seg in path {
            match seg {
                Seg::Key(k) if s.is_empty() => s.push_str(k),
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Item => s.push_str("[0]"),
            }
        }
        s
    }

    /// A config document with `leaf` at `path`.
    fn instance(path: &[Seg], leaf: Value) -> Value {
        path.iter().rev().fold(leaf, |acc, seg| match seg {
            Seg::Key(k) => {
                let mut m = Map::new();
                m.insert(k.clone(), acc);
                Value::Object(m)
            }
            Seg::Item => json!([acc]),
        })
    }

    /// The validator's messages for `key` when parsing `doc` (JSON is YAML).
    fn messages(doc: &Value, key: &str) -> Vec<String> {
        let text = serde_json::to_string(doc).unwrap();
        match Config::parse(&text, Path::new("config.yaml")) {
            Ok(_) => Vec::new(),
            Err(errs) => errs
                .into_iter()
                .filter(|e| e.key == key)
                .map(|e| e.message)
                .collect(),
        }
    }

    fn ticked(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    fn walk(node: &Value, path: &mut Vec<Seg>, f: &mut dyn FnMut(&Value, &[Seg])) {
        f(node, path);
        if let Some(props) = node["properties"].as_object() {
            for (k, v) in props {
                path.push(Seg::Key(k.clone()));
                walk(v, path, f);
                path.pop();
            }
        }
        if node["additionalProperties"].is_object() {
            path.push(Seg::Key("p1".into()));
            walk(&node["additionalProperties"], path, f);
            path.pop();
        }
        if node["items"].is_object() {
            path.push(Seg::Item);
            walk(&node["items"], path, f);
            path.pop();
        }
        if let Some(alts) = node["oneOf"].as_array() {
            for alt in alts {
                walk(alt, path, f);
            }
        }
    }

    #[test]
    fn the_schema_matches_the_validator() {
        let schema = config_schema(&[]);
        let (mut objects, mut ints, mut enums) = (0, 0, 0);
        walk(&schema, &mut Vec::new(), &mut |node, path| {
            let here = dotted(path);
            if node["additionalProperties"] == false {
                objects += 1;
                let mut want: Vec<String> = node["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                want.sort();
                let mut p = path.to_vec();
                p.push(Seg::Key("zzqqxxyy".into()));
                let msgs = messages(&instance(path, json!({"zzqqxxyy": 1})), &dotted(&p));
                let msg = msgs
                    .iter()
                    .find(|m| m.contains("known keys here"))
                    .unwrap_or_else(|| panic!("{here}: no unknown-key message: {msgs:?}"));
                assert_eq!(ticked(msg), want, "keys of `{here}`");
            }
            if node["type"] == "integer" {
                ints += 1;
                let (min, max) = (
                    node["minimum"].as_u64().unwrap(),
                    node["maximum"].as_u64().unwrap(),
                );
                let msgs = messages(&instance(path, json!(max + 1)), &here);
                assert_eq!(
                    msgs,
                    vec![format!("{} is out of range ({min}–{max})", max + 1)],
                    "range of `{here}`"
                );
                if let Some(d) = node["default"].as_u64() {
                    assert!((min..=max).contains(&d), "default of `{here}`");
                }
            }
            if let Some(values) = node["enum"].as_array() {
                enums += 1;
                let msgs = messages(&instance(path, json!("zzqqxxyy")), &here);
                let msg = msgs
                    .iter()
                    .find(|m| m.contains("is not one of"))
                    .unwrap_or_else(|| panic!("{here}: no enum message: {msgs:?}"));
                let listed = msg.split_once("is not one of").unwrap().1;
                let listed = listed.split(" (did you mean").next().unwrap();
                let mut want: Vec<String> = values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                want.sort();
                assert_eq!(ticked(listed), want, "values of `{here}`");
                assert!(values.contains(&node["default"]), "default of `{here}`");
            }
        });
        assert!(
            objects >= 15 && ints >= 30 && enums >= 6,
            "{objects} {ints} {enums}"
        );
    }

    #[test]
    fn channel_sections_are_the_known_channels() {
        let s = config_schema(&["telegram", "slack"]);
        let ch = s["properties"]["channels"]["properties"]
            .as_object()
            .unwrap();
        let mut names: Vec<&String> = ch.keys().collect();
        names.sort();
        assert_eq!(names, ["slack", "telegram"]);
    }

    #[test]
    fn secrets_are_sensitive_in_the_hints() {
        let h = ui_hints(&config_schema(&[]));
        for p in [
            "gateway.auth.token",
            "gateway.auth.password",
            "models.providers.*.apiKey",
            "models.providers.*.headers",
        ] {
            assert_eq!(h[p]["sensitive"], true, "{p}");
        }
        assert!(h["gateway.port"].get("sensitive").is_none());
        assert!(h["models.providers.*.models[].contextWindow"]["help"].is_string());
        assert!(h["agents.defaults.model.primary"]["help"].is_string());
    }
}
