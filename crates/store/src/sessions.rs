//! Sessions and their transcripts.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::{
    json_col, new_id, opt_json_col, opt_json_text, to_i64, to_usize, EntryRow, NewEntry,
    SessionRow, Store, StoreError,
};

const SESSION_COLS: &str = "key, session_id, agent_id, model_override, label, created_at, \
     updated_at, last_activity_at, status, input_tokens, output_tokens";

const ENTRY_COLS: &str =
    "id, session_key, session_id, seq, role, content, run_id, idempotency_key, usage, meta, ts";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        key: row.get(0)?,
        session_id: row.get(1)?,
        agent_id: row.get(2)?,
        model_override: row.get(3)?,
        label: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
        last_activity_at: row.get(7)?,
        status: row.get(8)?,
        input_tokens: row.get(9)?,
        output_tokens: row.get(10)?,
    })
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        id: row.get(0)?,
        session_key: row.get(1)?,
        session_id: row.get(2)?,
        seq: row.get(3)?,
        role: row.get(4)?,
        content: json_col(row, 5)?,
        run_id: row.get(6)?,
        idempotency_key: row.get(7)?,
        usage: opt_json_col(row, 8)?,
        meta: opt_json_col(row, 9)?,
        ts: row.get(10)?,
    })
}

fn select_session(conn: &Connection, key: &str) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE key = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([key], session_from_row)
        .optional()?)
}

fn not_found(key: &str) -> StoreError {
    StoreError::NotFound(format!("session {key}"))
}

impl Store {
    /// Runs `write` in an IMMEDIATE transaction and returns the session row it leaves.
    /// IMMEDIATE takes the write lock up front, so a read-then-write never deadlocks
    /// against another process (a deferred upgrade would fail with SQLITE_BUSY).
    fn write_session(
        &self,
        key: &str,
        write: impl FnOnce(&Transaction<'_>) -> Result<(), StoreError>,
    ) -> Result<SessionRow, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write(&tx)?;
        let row = select_session(&tx, key)?;
        tx.commit()?;
        row.ok_or_else(|| not_found(key))
    }

    /// Inserts the session with a fresh session id if absent; returns the stored row.
    pub fn ensure_session(
        &self,
        key: &str,
        agent_id: &str,
        now: i64,
    ) -> Result<SessionRow, StoreError> {
        self.write_session(key, |tx| {
            tx.execute(
                "INSERT INTO sessions (key, session_id, agent_id, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (key) DO NOTHING",
                params![key, new_id(), agent_id, now],
            )?;
            Ok(())
        })
    }

    pub fn get_session(&self, key: &str) -> Result<Option<SessionRow>, StoreError> {
        select_session(&self.conn(), key)
    }

    /// One page of sessions, most recently updated first, plus the total count.
    pub fn list_sessions(
        &self,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<SessionRow>, usize), StoreError> {
        let mut conn = self.conn();
        // One read transaction so the page and the total come from the same snapshot.
        let tx = conn.transaction()?;
        let total: i64 = tx.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?;
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions ORDER BY updated_at DESC, key ASC \
             LIMIT ?1 OFFSET ?2"
        );
        let rows = tx
            .prepare_cached(&sql)?
            .query_map(params![to_i64(limit), to_i64(offset)], session_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok((rows, to_usize(total)))
    }

    /// Sets (or clears, with `None`) the model override, creating the session if absent.
    pub fn set_model_override(
        &self,
        key: &str,
        agent_id: &str,
        model: Option<&str>,
        now: i64,
    ) -> Result<SessionRow, StoreError> {
        self.write_session(key, |tx| {
            tx.execute(
                "INSERT INTO sessions \
                 (key, session_id, agent_id, model_override, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (key) DO UPDATE SET \
                 model_override = excluded.model_override, updated_at = excluded.updated_at",
                params![key, new_id(), agent_id, model, now],
            )?;
            Ok(())
        })
    }

    /// Sets (or clears, with `None`) the label, creating the session if absent.
    pub fn set_label(
        &self,
        key: &str,
        agent_id: &str,
        label: Option<&str>,
        now: i64,
    ) -> Result<SessionRow, StoreError> {
        self.write_session(key, |tx| {
            tx.execute(
                "INSERT INTO sessions (key, session_id, agent_id, label, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (key) DO UPDATE SET \
                 label = excluded.label, updated_at = excluded.updated_at",
                params![key, new_id(), agent_id, label, now],
            )?;
            Ok(())
        })
    }

    /// Records the session's status; `NotFound` if the session does not exist.
    pub fn set_status(&self, key: &str, status: &str, now: i64) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE sessions SET status = ?2, updated_at = ?3, last_activity_at = ?3 \
             WHERE key = ?1",
            params![key, status, now],
        )?;
        if changed == 0 {
            return Err(not_found(key));
        }
        Ok(())
    }

    /// Adds to the token counters (one atomic UPDATE); `NotFound` if the session is absent.
    pub fn add_usage(
        &self,
        key: &str,
        input: i64,
        output: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let changed = self.conn().execute(
            "UPDATE sessions SET input_tokens = input_tokens + ?2, \
             output_tokens = output_tokens + ?3, updated_at = ?4 WHERE key = ?1",
            params![key, input, output, now],
        )?;
        if changed == 0 {
            return Err(not_found(key));
        }
        Ok(())
    }

    /// Starts a fresh transcript under a new session id (creating the session if absent).
    /// Old entries stay in the table but drop out of `history`; status and token
    /// counters are cleared, while model override and label are kept.
    pub fn reset_session(
        &self,
        key: &str,
        agent_id: &str,
        now: i64,
    ) -> Result<SessionRow, StoreError> {
        self.write_session(key, |tx| {
            tx.execute(
                "INSERT INTO sessions (key, session_id, agent_id, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (key) DO UPDATE SET \
                 session_id = excluded.session_id, updated_at = excluded.updated_at, \
                 status = NULL, input_tokens = 0, output_tokens = 0",
                params![key, new_id(), agent_id, now],
            )?;
            Ok(())
        })
    }

    /// Deletes the session and every entry it ever had (all session ids); runs stay.
    /// Returns whether the session existed.
    pub fn delete_session(&self, key: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM entries WHERE session_key = ?1", [key])?;
        let deleted = tx.execute("DELETE FROM sessions WHERE key = ?1", [key])?;
        tx.commit()?;
        Ok(deleted > 0)
    }

    /// Appends to the session's current transcript. The session must exist.
    /// The seq is computed and inserted in one transaction, and the unique
    /// (session_id, seq) index makes a duplicate impossible even across processes.
    pub fn append_entry(&self, e: &NewEntry<'_>) -> Result<EntryRow, StoreError> {
        let content = serde_json::to_string(e.content)?;
        let usage = opt_json_text(e.usage)?;
        let meta = opt_json_text(e.meta)?;
        let id = new_id();

        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let session_id: String = tx
            .query_row(
                "SELECT session_id FROM sessions WHERE key = ?1",
                [e.session_key],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| not_found(e.session_key))?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM entries WHERE session_id = ?1",
            [&session_id],
            |r| r.get(0),
        )?;
        tx.prepare_cached(
            "INSERT INTO entries (id, session_key, session_id, seq, role, content, run_id, \
             idempotency_key, usage, meta, ts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            id,
            e.session_key,
            session_id,
            seq,
            e.role,
            content,
            e.run_id,
            e.idempotency_key,
            usage,
            meta,
            e.ts
        ])?;
        // MAX keeps the timestamps monotonic if a caller's clock steps backwards.
        tx.execute(
            "UPDATE sessions SET updated_at = MAX(updated_at, ?2), \
             last_activity_at = MAX(COALESCE(last_activity_at, ?2), ?2) WHERE key = ?1",
            params![e.session_key, e.ts],
        )?;
        tx.commit()?;

        Ok(EntryRow {
            id,
            session_key: e.session_key.to_owned(),
            session_id,
            seq,
            role: e.role.to_owned(),
            content: e.content.clone(),
            run_id: e.run_id.map(str::to_owned),
            idempotency_key: e.idempotency_key.map(str::to_owned),
            usage: e.usage.cloned(),
            meta: e.meta.cloned(),
            ts: e.ts,
        })
    }

    /// The last `limit` entries of the current transcript, oldest first.
    /// An unknown session has an empty history.
    pub fn history(&self, session_key: &str, limit: usize) -> Result<Vec<EntryRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM (SELECT * FROM entries WHERE session_id = \
             (SELECT session_id FROM sessions WHERE key = ?1) ORDER BY seq DESC LIMIT ?2) \
             ORDER BY seq ASC"
        );
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params![session_key, to_i64(limit)], entry_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Number of entries in the current transcript (0 for an unknown session).
    pub fn count_entries(&self, session_key: &str) -> Result<usize, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM entries WHERE session_id = \
             (SELECT session_id FROM sessions WHERE key = ?1)",
            [session_key],
            |r| r.get(0),
        )?;
        Ok(to_usize(n))
    }

    /// The first entry of the current transcript written with this idempotency key.
    /// Scoped like `history`: a reset starts a clean slate.
    pub fn find_entry_by_idempotency_key(
        &self,
        session_key: &str,
        idempotency_key: &str,
    ) -> Result<Option<EntryRow>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM entries WHERE session_id = \
             (SELECT session_id FROM sessions WHERE key = ?1) AND idempotency_key = ?2 \
             ORDER BY seq ASC LIMIT 1"
        );
        let conn = self.conn();
        let row = conn
            .prepare_cached(&sql)?
            .query_row(params![session_key, idempotency_key], entry_from_row)
            .optional()?;
        Ok(row)
    }
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
