//! `chat`, `agent`, `session.message` and `sessions.changed` events, with their delivery rules.

use crate::conns::Conn;
use crate::devices::now_ms;
use crate::state::Gateway;
use serde_json::{json, Value};

/// Per-run event numbering (`payload.seq`) and who started the run.
pub struct RunEmitter<'a> {
    pub gw: &'a Gateway,
    pub run_id: &'a str,
    pub session_key: &'a str,
    pub initiator: Option<u64>,
    seq: u64,
}

fn session_scoped_ok(conn: &Conn, key: &str) -> bool {
    !conn.has_cap("session-scoped-events") || conn.subs().message_keys.contains(key)
}

impl<'a> RunEmitter<'a> {
    pub fn new(
        gw: &'a Gateway,
        run_id: &'a str,
        session_key: &'a str,
        initiator: Option<u64>,
    ) -> Self {
        RunEmitter {
            gw,
            run_id,
            session_key,
            initiator,
            seq: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// An `agent` event; `stream: "tool"` only reaches `tool-events` connections that started
    /// the run or watch the session.
    pub fn agent(&mut self, stream: &str, data: Value) {
        let seq = self.next();
        let payload = json!({
            "runId": self.run_id, "seq": seq, "stream": stream, "ts": now_ms(), "data": data,
            "sessionKey": self.session_key, "agentId": crate::keys::agent_of(self.session_key), "isHeartbeat": false,
        });
        let key = self.session_key;
        let initiator = self.initiator;
        if stream == "tool" {
            self.gw
                .conns
                .broadcast_to("agent", &payload, None, |id, c| {
                    c.has_cap("tool-events")
                        && (Some(id) == initiator || c.subs().message_keys.contains(key))
                });
        } else {
            self.gw
                .conns
                .broadcast_to("agent", &payload, None, |_, c| session_scoped_ok(c, key));
        }
    }

    /// A `chat` event with this run's current seq (chat events reuse the agent seq).
    pub fn chat(&mut self, state: &str, extra: Value) {
        let seq = self.seq.max(1);
        let mut payload = json!({
            "runId": self.run_id, "sessionKey": self.session_key,
            "agentId": crate::keys::agent_of(self.session_key), "seq": seq, "state": state,
        });
        if let (Some(p), Value::Object(e)) = (payload.as_object_mut(), extra) {
            p.extend(e);
        }
        let key = self.session_key;
        self.gw
            .conns
            .broadcast_to("chat", &payload, None, |_, c| session_scoped_ok(c, key));
    }
}

/// `session.message`: to connections watching this session (or all sessions).
pub fn session_message(gw: &Gateway, key: &str, message: &Value, message_id: &str, seq: i64) {
    let payload = json!({
        "sessionKey": key, "agentId": crate::keys::agent_of(key), "message": message,
        "messageId": message_id, "messageSeq": seq,
    });
    gw.conns
        .broadcast_to("session.message", &payload, None, |_, c| {
            let s = c.subs();
            s.sessions || s.message_keys.contains(key)
        });
}

/// `sessions.changed`: to `sessions.subscribe` subscribers.
pub fn sessions_changed(gw: &Gateway, key: &str, reason: &str, row: Option<Value>) {
    gw.sessions_summary_stale();
    let mut payload = json!({"sessionKey": key, "agentId": crate::keys::agent_of(key), "reason": reason, "ts": now_ms()});
    if let Some(r) = row {
        payload["session"] = r;
    }
    gw.conns
        .broadcast_to("sessions.changed", &payload, None, |_, c| c.subs().sessions);
}
