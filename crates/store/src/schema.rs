//! Schema, as an append-only list of migrations tracked by `PRAGMA user_version`.
//!
//! Never edit a shipped migration: databases in the field have already applied it.
//! Change the schema by appending a new entry.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// `MIGRATIONS[i]` takes the database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE sessions (
    key              TEXT PRIMARY KEY NOT NULL,
    session_id       TEXT NOT NULL UNIQUE,
    agent_id         TEXT NOT NULL,
    model_override   TEXT,
    label            TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_activity_at INTEGER,
    status           TEXT,
    input_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens    INTEGER NOT NULL DEFAULT 0
);
-- list_sessions pages by recency.
CREATE INDEX sessions_by_updated ON sessions (updated_at DESC, key ASC);

CREATE TABLE entries (
    id              TEXT PRIMARY KEY NOT NULL,
    -- The cascade is a backstop: delete_session also removes entries explicitly.
    session_key     TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
    session_id      TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    run_id          TEXT,
    idempotency_key TEXT,
    usage           TEXT,
    meta            TEXT,
    ts              INTEGER NOT NULL
);
-- Unique so no two writers can ever hand out the same seq; also serves history().
CREATE UNIQUE INDEX entries_by_session_seq ON entries (session_id, seq);
-- delete_session and the foreign-key cascade find entries by key.
CREATE INDEX entries_by_session_key ON entries (session_key);
-- Only a few entries carry a key, so index just those.
CREATE INDEX entries_by_idempotency ON entries (session_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Runs deliberately have no foreign key: they outlive deleted sessions for auditing.
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY NOT NULL,
    session_key TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    stop_reason TEXT,
    error       TEXT,
    result      TEXT
);
CREATE INDEX runs_by_session_key ON runs (session_key);
-- The start-up sweep for runs a crash left "running" touches only those rows.
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';

-- Keys are scoped per method, as in OpenClaw, so chat.send and agent never collide.
CREATE TABLE idempotency (
    method     TEXT NOT NULL,
    key        TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (method, key)
);
CREATE INDEX idempotency_by_created ON idempotency (created_at);
"#,
    // 2: messaging channels: inbound log, reply outbox, small state, pairing.
    r#"
-- Every inbound platform update lands here BEFORE the platform is acknowledged (webhook 200,
-- or the polling offset advanced), so an acknowledged message can never be lost.
CREATE TABLE channel_inbound (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    -- e.g. the platform's update id; the UNIQUE below turns a redelivery into a no-op.
    dedupe_key   TEXT NOT NULL CHECK (dedupe_key <> ''),
    payload      TEXT NOT NULL,
    -- 'pending' until a reply is queued (done) or the message is dropped (ignored); after a
    -- crash every row still 'pending' is processed again, so each message gets one reply.
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'ignored')),
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (channel, account, dedupe_key)
);
-- Crash recovery and the worker loop read only the pending rows, oldest first.
CREATE INDEX channel_inbound_pending ON channel_inbound (id) WHERE status = 'pending';
CREATE INDEX channel_inbound_by_received ON channel_inbound (channel, account, received_at);
CREATE INDEX channel_inbound_by_status ON channel_inbound (channel, status);

-- Replies are queued here, one row per message chunk, and a sender delivers them.
CREATE TABLE channel_outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    channel             TEXT NOT NULL,
    account             TEXT NOT NULL,
    chat_id             TEXT NOT NULL,
    thread_id           TEXT,
    reply_to            TEXT,
    text                TEXT NOT NULL,
    -- One key per reply chunk (e.g. derived from the inbound id and chunk index): a chunk
    -- can be queued only once, so a reprocessed message never produces a second reply.
    dedupe_key          TEXT NOT NULL UNIQUE CHECK (dedupe_key <> ''),
    -- Soft reference, like runs.session_key: outbox rows are kept for auditing.
    inbound_id          INTEGER,
    -- 'sending' is a lease until next_attempt_at: a row a crash left 'sending' becomes due
    -- again when the lease runs out, while a live sender keeps others from taking it.
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    sent_at             INTEGER,
    platform_message_id TEXT
);
-- The sender's queue: only unfinished rows, found by due time.
CREATE INDEX channel_outbox_due ON channel_outbox (channel, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX channel_outbox_by_inbound ON channel_outbox (inbound_id)
    WHERE inbound_id IS NOT NULL;
CREATE INDEX channel_outbox_by_status ON channel_outbox (channel, status);

-- Small key/value state, e.g. the long-polling offset ("telegram:default:offset"); written
-- in the same transaction as the inbound rows it covers.
CREATE TABLE channel_state (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- One pending pairing request per unknown DM sender; expired rows are deleted lazily.
CREATE TABLE pairing_requests (
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    sender_id    TEXT NOT NULL,
    code         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    meta         TEXT NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
-- A code names exactly one pending request of its channel, so approving is unambiguous.
CREATE UNIQUE INDEX pairing_requests_by_code ON pairing_requests (channel, code);

-- Senders approved through pairing.
CREATE TABLE channel_allow (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    approved_at INTEGER NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
"#,
    // 3: paired operator devices (moved out of devices.json), their pending pairing requests and
    // their device tokens, stored as SHA-256 digests only.
    r#"
CREATE TABLE devices (
    device_id       TEXT PRIMARY KEY NOT NULL,
    -- A device is bound to one key; pairing it again with another key drops its tokens.
    public_key      TEXT NOT NULL,
    display_name    TEXT,
    platform        TEXT,
    device_family   TEXT,
    client_id       TEXT NOT NULL,
    client_mode     TEXT NOT NULL,
    role            TEXT NOT NULL,
    -- JSON array of scope names.
    approved_scopes TEXT NOT NULL,
    approved_via    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    approved_at     INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    remote_ip       TEXT
);

-- One bearer token per (device, role). The plaintext is shown to the device once; only its
-- SHA-256 digest is kept.
CREATE TABLE device_tokens (
    device_id    TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (device_id, role)
);

-- At most one pending request per device; a request asking for something else gets a new id.
CREATE TABLE device_pair_requests (
    request_id    TEXT PRIMARY KEY NOT NULL,
    device_id     TEXT NOT NULL UNIQUE,
    public_key    TEXT NOT NULL,
    display_name  TEXT,
    platform      TEXT,
    device_family TEXT,
    client_id     TEXT NOT NULL,
    client_mode   TEXT NOT NULL,
    role          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    remote_ip     TEXT,
    reason        TEXT NOT NULL,
    ts            INTEGER NOT NULL
);
CREATE INDEX device_pair_requests_by_ts ON device_pair_requests (ts);
"#,
    // 4: delivery reports for outbound messages (e.g. WhatsApp status webhooks: sent,
    // delivered, read, failed), found by the platform's message id.
    r#"
ALTER TABLE channel_outbox ADD COLUMN delivery_status TEXT;
CREATE INDEX channel_outbox_by_platform_id ON channel_outbox (channel, platform_message_id)
    WHERE platform_message_id IS NOT NULL;
"#,
];

/// Applies every pending migration, each in its own transaction; returns how many ran.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let mut applied = 0;
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two processes
        // opening the same file cannot both apply one migration.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        let pending = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v));
        let Some(sql) = pending else {
            tx.commit()?;
            return Ok(applied);
        };
        tx.execute_batch(sql)?;
        // user_version lives in the file header, so it commits or rolls back with the DDL.
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        applied += 1;
    }
}

/// The schema version recorded in the file.
#[cfg(test)]
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}
