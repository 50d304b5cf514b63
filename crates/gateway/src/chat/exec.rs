//! Executing one run: model selection, context, the agent loop, and turning its events into
//! wire events and transcript entries.

use super::events::{session_message, sessions_changed, RunEmitter};
use super::transcript::{self, usage_json};
use super::{AgentSettings, RunRequest, RunSummary};
use crate::devices::now_ms;
use crate::state::Gateway;
use clawgate_agent::context::{finish_prompt, load_bootstrap, trim_history};
use clawgate_agent::run::{run, Failure, ModelChoice, RunEnd, RunEvent, RunSpec};
use clawgate_agent::tools::ToolContext;
use clawgate_agent::types::Usage;
use clawgate_store::NewEntry;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// The message every chat answers with while no model is configured.
pub const NO_MODEL_MESSAGE: &str = "No AI model is configured. Add a provider to config.yaml, e.g.\n\
models:\n  providers:\n    openai:\n      baseUrl: https://api.openai.com/v1\n      apiKey: ${OPENAI_API_KEY}\n      models: [gpt-4o-mini]\n\
agents:\n  defaults:\n    model: openai/gpt-4o-mini\n\
(or a local Ollama: baseUrl http://127.0.0.1:11434/v1, no apiKey), then restart the gateway.";

async fn append(gw: &Gateway, key: &str, content: Value, run_id: &str, usage: Option<Value>) {
    let (k, rid) = (key.to_string(), run_id.to_string());
    let ts = now_ms();
    let stored = gw
        .chat
        .store
        .call(move |store| {
            store.append_entry(&NewEntry {
                session_key: &k,
                role: content["role"].as_str().unwrap_or("assistant"),
                content: &content,
                run_id: Some(&rid),
                idempotency_key: None,
                usage: usage.as_ref(),
                meta: None,
                ts,
            })
        })
        .await;
    match stored {
        Ok(row) => session_message(gw, key, &transcript::wire(&row), &row.id, row.seq),
        Err(e) => warn!(run = run_id, "cannot store a transcript entry: {e}"),
    }
}

/// The models to try for a session: its override, else the default, then the fallbacks.
fn models_for(
    rt: &AgentSettings,
    override_model: Option<String>,
) -> Result<Vec<ModelChoice>, String> {
    let primary = override_model
        .or_else(|| rt.cfg.model.clone())
        .ok_or_else(|| NO_MODEL_MESSAGE.to_string())?;
    let mut out = Vec::new();
    for r in std::iter::once(&primary).chain(rt.cfg.fallbacks.iter()) {
        let Some((pid, mid)) = r.split_once('/') else {
            continue;
        };
        let Some(p) = rt.providers.get(pid) else {
            if out.is_empty() && r == &primary {
                return Err(format!("model `{r}` names provider `{pid}`, which is not configured in models.providers"));
            }
            continue;
        };
        let max_tokens = p
            .cfg
            .models
            .iter()
            .find(|m| m.id == mid)
            .map(|m| m.max_tokens)
            .unwrap_or(4096);
        out.push(ModelChoice {
            provider: p.clone(),
            model: mid.to_string(),
            max_tokens,
        });
    }
    if out.is_empty() {
        return Err(NO_MODEL_MESSAGE.to_string());
    }
    Ok(out)
}

fn context_budget(s: &AgentSettings, m: &ModelChoice, system_len: usize) -> usize {
    let window = s.cfg.context_tokens.or_else(|| {
        m.provider
            .cfg
            .models
            .iter()
            .find(|e| e.id == m.model)
            .map(|e| e.context_window)
    });
    let window = usize::try_from(window.unwrap_or(128_000)).unwrap_or(128_000);
    window
        .saturating_sub(m.max_tokens as usize)
        .saturating_sub(system_len / 4 + 512)
}

/// Runs `req` to its end and returns the summary. Emits every event on the way.
pub async fn execute(
    gw: &Arc<Gateway>,
    req: &RunRequest,
    mut abort: watch::Receiver<Option<&'static str>>,
) -> RunSummary {
    req.start_gate.wait().await;
    let rt = &gw.chat;
    // One snapshot of the reloadable settings for the whole run.
    let settings = rt.settings();
    let started = now_ms();
    let mut em = RunEmitter::new(gw, &req.run_id, &req.session_key, req.initiator);
    em.agent("lifecycle", json!({"phase": "start", "startedAt": started}));
    info!(run = %req.run_id, session = %req.session_key, "agent run started");
    // One store round trip: mark the session running, read its model override and history.
    // The workspace files are read (blocking pool) at the same time.
    let key = req.session_key.clone();
    let stored = rt.store.call(move |store| {
        let _ = store.set_status(&key, "running", started);
        let session = store.get_session(&key).ok().flatten();
        let rows = store.history(&key, 400).unwrap_or_default();
        Ok((session.and_then(|s| s.model_override), rows))
    });
    let (stored, bootstrap) = tokio::join!(
        stored,
        load_bootstrap(&rt.workspace, settings.cfg.bootstrap_max_chars)
    );
    let (override_model, rows) = stored.unwrap_or_default();
    sessions_changed(gw, &req.session_key, "agent.run.started", None);

    let mut text = String::new();
    let mut provider: Option<String> = None;
    let mut model: Option<String> = None;
    let mut usage = Usage::default();

    let end: Result<RunEnd, &'static str> = match models_for(&settings, override_model) {
        Err(msg) => Ok(RunEnd::Failed(Failure {
            message: msg,
            provider: None,
            model: None,
            http_status: None,
            kind: "auth",
        })),
        Ok(models) => {
            let first = models[0].clone();
            let system = finish_prompt(
                &bootstrap,
                &req.session_key,
                &format!("{}/{}", first.provider.cfg.id, first.model),
            );
            // The transcript without the user messages of runs not answered yet (this one,
            // and follow-ups queued behind it); this run's message goes last.
            let msgs: Vec<_> = rows
                .iter()
                .filter(|r| {
                    !(r.role == "user" && r.run_id.as_deref().is_some_and(|id| rt.is_active(id)))
                })
                .filter_map(transcript::to_message)
                .collect();
            let history = trim_history(
                transcript::repair(msgs),
                context_budget(&settings, &first, system.len()),
            );
            let spec = RunSpec {
                models,
                system,
                history,
                user_text: req.user_text.clone(),
                tools: settings.tools.clone(),
                tool_ctx: ToolContext {
                    workspace: rt.workspace.clone(),
                    state_dir: rt.state_dir.clone(),
                    config_file: rt.config_file.clone(),
                    max_output_bytes: settings.max_output_bytes,
                },
                max_iterations: settings.cfg.max_tool_iterations,
            };
            let (tx, mut rx) = mpsc::channel::<RunEvent>(256);
            let looped = run(spec, tx);
            tokio::pin!(looped);
            let deadline = tokio::time::sleep(Duration::from_millis(settings.cfg.timeout_ms));
            tokio::pin!(deadline);
            let outcome = loop {
                tokio::select! {
                    biased;
                    // The watch guard stays inside this future: it must not live across the
                    // awaits in the other branches.
                    reason = async {
                        match abort.wait_for(|a| a.is_some()).await {
                            Ok(v) => v.unwrap_or("rpc"),
                            Err(_) => "rpc",
                        }
                    } => break Err(reason),
                    _ = &mut deadline => break Err("timeout"),
                    ev = rx.recv() => {
                        if let Some(ev) = ev {
                            on_event(gw, &mut em, req, ev, &mut text, &mut provider, &mut model, &mut usage).await;
                        }
                    }
                    end = &mut looped => {
                        // The loop awaited every send, so all its events are queued: handle them.
                        while let Ok(ev) = rx.try_recv() {
                            on_event(gw, &mut em, req, ev, &mut text, &mut provider, &mut model, &mut usage).await;
                        }
                        break Ok(end);
                    }
                }
            };
            outcome
        }
    };

    let ended = now_ms();
    // The run's terminal `chat` event goes out only after its end is recorded, so a client
    // that acts on `final` (a repeated chat.send with the same idempotency key, agent.wait,
    // chat.history) already finds the run finished.
    let (status, stop_reason, error, terminal) = match end {
        Ok(RunEnd::Completed {
            text: final_text,
            stop_reason,
            llm,
            ..
        }) => {
            text = final_text;
            let llm_ms = llm.as_secs_f64() * 1e3;
            em.agent("lifecycle", json!({"phase": "end", "startedAt": started, "endedAt": ended, "aborted": false, "stopReason": stop_reason, "llmMs": llm_ms}));
            let message = transcript::assistant_message(
                &text,
                &[],
                Some(usage),
                Some(&stop_reason),
                None,
                ended,
            );
            let payload =
                json!({"stopReason": stop_reason, "message": message, "usage": usage_json(usage)});
            ("ok", stop_reason, None, ("final", payload))
        }
        Ok(RunEnd::Failed(f)) => {
            em.agent(
                "lifecycle",
                json!({"phase": "error", "error": f.message, "endedAt": ended}),
            );
            let mut detail = json!({"failoverReason": f.kind});
            if let Some(p) = &f.provider {
                detail["provider"] = json!(p);
            }
            if let Some(m) = &f.model {
                detail["model"] = json!(m);
            }
            if let Some(s) = f.http_status {
                detail["httpStatus"] = json!(s);
            }
            let kind = match f.kind {
                "rate_limit" => "rate_limit",
                "timeout" => "timeout",
                _ => "unknown",
            };
            let payload =
                json!({"errorMessage": f.message, "errorKind": kind, "errorDetail": detail});
            (
                "error",
                "error".to_string(),
                Some(f.message),
                ("error", payload),
            )
        }
        Err(reason) => {
            let stop = if reason == "timeout" {
                "timeout"
            } else {
                "rpc"
            };
            em.agent("lifecycle", json!({"phase": "end", "status": "cancelled", "aborted": true, "stopReason": stop, "endedAt": ended}));
            let mut extra = json!({"stopReason": stop});
            if !text.is_empty() {
                extra["message"] =
                    transcript::assistant_message(&text, &[], None, None, None, ended);
                // Keep what the user already saw.
                let partial = transcript::assistant_message(
                    &text,
                    &[],
                    None,
                    Some("aborted"),
                    provider.as_deref().zip(model.as_deref()),
                    ended,
                );
                append(gw, &req.session_key, partial, &req.run_id, None).await;
            }
            ("timeout", stop.to_string(), None, ("aborted", extra))
        }
    };
    let session_status = match status {
        "ok" => "done",
        "error" => "failed",
        _ => "killed",
    };
    // One store round trip for the run's end.
    let (rid, key) = (req.run_id.clone(), req.session_key.clone());
    let (stop, err) = (stop_reason.clone(), error.clone());
    let result = json!({"text": text, "provider": provider, "model": model});
    let (inp, out) = (usage.input as i64, usage.output as i64);
    let session = rt
        .store
        .call(move |store| {
            if let Err(e) = store.finish_run(
                &rid,
                status,
                Some(&stop),
                err.as_deref(),
                ended,
                Some(&result),
            ) {
                warn!(run = %rid, "cannot record the end of a run: {e}");
            }
            let _ = store.add_usage(&key, inp, out, ended);
            let _ = store.set_status(&key, session_status, ended);
            store.get_session(&key)
        })
        .await
        .ok()
        .flatten();
    let took_ms = ended - started;
    let model_name = provider
        .as_deref()
        .zip(model.as_deref())
        .map(|(p, m)| format!("{p}/{m}"))
        .unwrap_or_default();
    match status {
        "ok" => {
            info!(run = %req.run_id, session = %req.session_key, model = %model_name, ms = took_ms, stop = %stop_reason, "agent run finished")
        }
        "error" => {
            warn!(run = %req.run_id, session = %req.session_key, model = %model_name, ms = took_ms, "agent run failed: {}", error.as_deref().unwrap_or("unknown error"))
        }
        _ => {
            info!(run = %req.run_id, session = %req.session_key, ms = took_ms, stop = %stop_reason, "agent run stopped")
        }
    }
    em.chat(terminal.0, terminal.1);
    let row = session.map(|s| crate::methods::sessions::row_json(gw, &s));
    sessions_changed(gw, &req.session_key, "agent.run.ended", row);
    RunSummary {
        run_id: req.run_id.clone(),
        session_key: req.session_key.clone(),
        // The transcript this run belongs to (a reset during the run starts a new one).
        session_id: req.session_id.clone(),
        status,
        text,
        stop_reason,
        error,
        provider,
        model,
        usage: (usage.input, usage.output),
        started_at: started,
        ended_at: ended,
    }
}

#[allow(clippy::too_many_arguments)]
async fn on_event(
    gw: &Gateway,
    em: &mut RunEmitter<'_>,
    req: &RunRequest,
    ev: RunEvent,
    text: &mut String,
    provider: &mut Option<String>,
    model: &mut Option<String>,
    usage: &mut Usage,
) {
    match ev {
        RunEvent::ModelSelected {
            provider: p,
            model: m,
        } => {
            em.agent(
                "lifecycle",
                json!({"phase": "model", "provider": p, "model": m}),
            );
            *provider = Some(p);
            *model = Some(m);
        }
        RunEvent::Retrying {
            attempt,
            max_attempts,
            delay,
            message,
        } => {
            em.agent(
                "run_status",
                json!({"phase": "retrying", "message": message, "retryAttempt": attempt, "maxRetries": max_attempts, "retryInMs": delay.as_millis() as u64}),
            );
        }
        RunEvent::TextDelta {
            delta,
            text: current,
        } => {
            *text = current.clone();
            em.agent("assistant", json!({"text": current, "delta": delta}));
            let message = json!({"role": "assistant", "content": [{"type": "text", "text": current}], "timestamp": now_ms()});
            em.chat("delta", json!({"deltaText": delta, "message": message}));
        }
        RunEvent::AssistantMessage {
            text: t,
            tool_calls,
            usage: u,
            stop_reason,
            provider: p,
            model: m,
        } => {
            usage.input += u.input;
            usage.output += u.output;
            em.agent(
                "usage",
                json!({"inputTokens": u.input, "outputTokens": u.output}),
            );
            let content = transcript::assistant_message(
                &t,
                &tool_calls,
                Some(u),
                Some(&stop_reason),
                Some((&p, &m)),
                now_ms(),
            );
            append(
                gw,
                &req.session_key,
                content,
                &req.run_id,
                Some(usage_json(u)),
            )
            .await;
            text.clear();
        }
        RunEvent::ToolStart { call } => {
            em.agent(
                "item",
                json!({"itemId": format!("tool:{}", call.id), "toolCallId": call.id, "name": call.name, "kind": "tool", "phase": "start", "title": tool_title(&call.name, &call.arguments), "status": "running"}),
            );
            em.agent("tool", json!({"phase": "start", "name": call.name, "toolCallId": call.id, "args": call.arguments}));
        }
        RunEvent::ToolResult { call, output } => {
            em.agent(
                "tool",
                json!({"phase": "result", "name": call.name, "toolCallId": call.id, "isError": output.is_error, "result": {"content": [{"type": "text", "text": output.content}]}}),
            );
            em.agent(
                "item",
                json!({"itemId": format!("tool:{}", call.id), "toolCallId": call.id, "name": call.name, "kind": "tool", "phase": "end", "status": if output.is_error { "failed" } else { "completed" }}),
            );
            let content =
                transcript::tool_result_message(&call, &output.content, output.is_error, now_ms());
            append(gw, &req.session_key, content, &req.run_id, None).await;
        }
    }
}

fn tool_title(name: &str, args: &Value) -> String {
    match (name, args.get("path").and_then(Value::as_str)) {
        ("read", Some(p)) => format!("Read from {p}"),
        ("write", Some(p)) => format!("Write to {p}"),
        ("edit", Some(p)) => format!("Edit {p}"),
        _ => name.to_string(),
    }
}

/// A queued run dropped by `chat.abort` before it started.
pub async fn aborted_before_start(gw: &Gateway, req: &RunRequest) -> RunSummary {
    let now = now_ms();
    let mut em = RunEmitter::new(gw, &req.run_id, &req.session_key, req.initiator);
    em.agent("lifecycle", json!({"phase": "end", "status": "cancelled", "aborted": true, "stopReason": "rpc", "endedAt": now}));
    em.chat("aborted", json!({"stopReason": "rpc"}));
    let rid = req.run_id.clone();
    let _ = gw
        .chat
        .store
        .call(move |store| store.finish_run(&rid, "timeout", Some("rpc"), None, now, None))
        .await;
    RunSummary {
        run_id: req.run_id.clone(),
        session_key: req.session_key.clone(),
        session_id: req.session_id.clone(),
        status: "timeout",
        text: String::new(),
        stop_reason: "rpc".into(),
        error: None,
        provider: None,
        model: None,
        usage: (0, 0),
        started_at: now,
        ended_at: now,
    }
}
