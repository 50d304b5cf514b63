//! Durable state for messaging channels: the inbound log, the reply outbox and small
//! key/value state (e.g. a long-polling offset).
//!
//! The flow these tables make crash-safe:
//! 1. An inbound update is stored (deduplicated by its platform key) before the platform is
//!    acknowledged, so nothing acknowledged is ever lost and a redelivery is a no-op.
//! 2. A worker processes `pending` rows; [`Store::enqueue_reply`] queues the reply chunks and
//!    marks the row `done` in one transaction, so after a crash a message is either still
//!    pending (processed again) or has its whole reply queued, never both, never neither.
//! 3. A sender claims due outbox rows under a lease and marks them sent; each chunk has a
//!    unique dedupe key, so it is queued, and therefore sent, once. A crash mid-send leaves
//!    the row `sending` until its lease runs out; then it is due again (the one window where
//!    a chunk the platform already accepted can be sent a second time).

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use crate::{json_col, to_i64, Store, StoreError};

#[path = "channels_outbox.rs"]
mod outbox;
#[path = "channels_pairing.rs"]
mod pairing;

pub use pairing::{PairingOutcome, PairingRequest};

/// One stored inbound platform update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundRow {
    pub id: i64,
    pub channel: String,
    pub account: String,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    /// `pending`, `done` or `ignored`.
    pub status: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: i64,
}

/// An inbound update to store; `dedupe_key` identifies it per (channel, account).
#[derive(Debug, Clone, Copy)]
pub struct NewInbound<'a> {
    pub channel: &'a str,
    pub account: &'a str,
    pub dedupe_key: &'a str,
    pub payload: &'a serde_json::Value,
    pub received_at: i64,
}

/// One queued reply chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub account: String,
    pub chat_id: String,
    pub thread_id: Option<String>,
    pub reply_to: Option<String>,
    pub text: String,
    pub dedupe_key: String,
    pub inbound_id: Option<i64>,
    /// `pending`, `sending` (leased until `next_attempt_at`), `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub platform_message_id: Option<String>,
}

/// A reply chunk to queue; it is due at `now`. `dedupe_key` is unique across the outbox.
#[derive(Debug, Clone, Copy)]
pub struct NewOutbox<'a> {
    pub channel: &'a str,
    pub account: &'a str,
    pub chat_id: &'a str,
    pub thread_id: Option<&'a str>,
    pub reply_to: Option<&'a str>,
    pub text: &'a str,
    pub dedupe_key: &'a str,
    pub inbound_id: Option<i64>,
    pub now: i64,
}

const INBOUND_STATUSES: &[&str] = &["pending", "done", "ignored"];

const INBOUND_COLS: &str =
    "id, channel, account, dedupe_key, payload, status, received_at, processed_at, attempts";

fn inbound_from_row(row: &Row<'_>) -> rusqlite::Result<InboundRow> {
    Ok(InboundRow {
        id: row.get(0)?,
        channel: row.get(1)?,
        account: row.get(2)?,
        dedupe_key: row.get(3)?,
        payload: json_col(row, 4)?,
        status: row.get(5)?,
        received_at: row.get(6)?,
        processed_at: row.get(7)?,
        attempts: row.get(8)?,
    })
}

/// Inserts unless (channel, account, dedupe_key) is stored already; the new id, or `None`.
fn insert_inbound_on(
    conn: &Connection,
    m: &NewInbound<'_>,
    payload: &str,
) -> Result<Option<i64>, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO channel_inbound (channel, account, dedupe_key, payload, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (channel, account, dedupe_key) DO NOTHING",
        )?
        .execute(params![
            m.channel,
            m.account,
            m.dedupe_key,
            payload,
            m.received_at
        ])?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

impl Store {
    /// Stores one inbound message; Ok(None) when (channel, account, dedupe_key) was already
    /// stored (a redelivery). Call before acknowledging the platform.
    pub fn insert_inbound(&self, m: &NewInbound<'_>) -> Result<Option<i64>, StoreError> {
        let payload = serde_json::to_string(m.payload)?;
        insert_inbound_on(&self.conn(), m, &payload)
    }

    /// For long polling: stores a batch AND sets the state key (the new offset) in ONE
    /// transaction, so the offset never advances past an update that is not stored.
    /// Returns the ids of the newly stored rows (duplicates skipped). On error nothing of
    /// the batch, and not the state, is written.
    pub fn insert_inbound_batch(
        &self,
        items: &[NewInbound<'_>],
        state: Option<(&str, &str)>,
    ) -> Result<Vec<i64>, StoreError> {
        let payloads = items
            .iter()
            .map(|m| serde_json::to_string(m.payload))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids = Vec::new();
        for (m, payload) in items.iter().zip(&payloads) {
            ids.extend(insert_inbound_on(&tx, m, payload)?);
        }
        if let Some((key, value)) = state {
            set_state_on(&tx, key, value)?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The oldest pending messages of one channel (each channel has its own queue, so a
    /// backlog on one platform never starves another).
    pub fn pending_inbound(
        &self,
        channel: &str,
        limit: usize,
    ) -> Result<Vec<InboundRow>, StoreError> {
        let sql = format!(
            "SELECT {INBOUND_COLS} FROM channel_inbound WHERE status = 'pending' AND channel = ?1 \
             ORDER BY id ASC LIMIT ?2"
        );
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params![channel, to_i64(limit)], inbound_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>, StoreError> {
        let sql = format!("SELECT {INBOUND_COLS} FROM channel_inbound WHERE id = ?1");
        let conn = self.conn();
        let row = conn
            .prepare_cached(&sql)?
            .query_row([id], inbound_from_row)
            .optional()?;
        Ok(row)
    }

    /// Sets the status (`pending`, `done` or `ignored`); `processed_at` becomes `now`, or
    /// NULL when the row goes back to `pending`. `NotFound` if the row does not exist.
    pub fn mark_inbound(&self, id: i64, status: &str, now: i64) -> Result<(), StoreError> {
        if !INBOUND_STATUSES.contains(&status) {
            return Err(StoreError::Invalid(format!("inbound status {status:?}")));
        }
        let changed = self.conn().execute(
            "UPDATE channel_inbound SET status = ?2, \
             processed_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?3 END WHERE id = ?1",
            params![id, status, now],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("inbound {id}")));
        }
        Ok(())
    }

    /// Counts one more processing attempt (for giving up on a message that keeps failing);
    /// returns the new count.
    pub fn bump_inbound_attempts(&self, id: i64) -> Result<i64, StoreError> {
        self.conn()
            .query_row(
                "UPDATE channel_inbound SET attempts = attempts + 1 WHERE id = ?1 \
                 RETURNING attempts",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("inbound {id}")))
    }

    /// Deletes done/ignored rows received before `older_than`; pending rows stay, and with
    /// them their dedupe keys. A pruned update that is redelivered is stored afresh.
    pub fn prune_inbound(&self, older_than: i64) -> Result<usize, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM channel_inbound WHERE status IN ('done', 'ignored') \
             AND received_at < ?1",
            [older_than],
        )?;
        Ok(n)
    }

    /// (pending, done, ignored) rows of the channel, all accounts.
    pub fn inbound_counts(&self, channel: &str) -> Result<(i64, i64, i64), StoreError> {
        let counts = self.conn().query_row(
            "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'done'), 0), \
             COALESCE(SUM(status = 'ignored'), 0) FROM channel_inbound WHERE channel = ?1",
            [channel],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(counts)
    }

    /// When the account last received a (still stored) message.
    pub fn last_inbound_at(&self, channel: &str, account: &str) -> Result<Option<i64>, StoreError> {
        let at = self.conn().query_row(
            "SELECT MAX(received_at) FROM channel_inbound WHERE channel = ?1 AND account = ?2",
            params![channel, account],
            |r| r.get(0),
        )?;
        Ok(at)
    }

    pub fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = self
            .conn()
            .query_row(
                "SELECT value FROM channel_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value)
    }

    pub fn set_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        set_state_on(&self.conn(), key, value)
    }
}

fn set_state_on(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO channel_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
