//! Pairing: an unknown DM sender gets a short code; approving the code (e.g. from the CLI)
//! adds the sender to the channel's allow store.
//!
//! A request expires `ttl_ms` after it was created: it is alive while
//! `now - created_at <= ttl_ms`. Expired requests are deleted lazily.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use crate::{json_col, to_i64, Store, StoreError};

/// One pending pairing request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairingRequest {
    pub channel: String,
    pub account: String,
    pub sender_id: String,
    /// Stored upper-cased.
    pub code: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub meta: serde_json::Value,
}

/// Outcome of [`Store::upsert_pairing_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum PairingOutcome {
    /// A new request with a fresh code.
    Created(PairingRequest),
    /// The sender already has a live request; same code, `last_seen_at` refreshed.
    Existing(PairingRequest),
    /// The account already has `max_pending` live requests.
    CapReached,
}

/// A generator that collides this often is broken; fail instead of spinning forever.
const MAX_CODE_TRIES: usize = 100;

const PAIRING_COLS: &str = "channel, account, sender_id, code, created_at, last_seen_at, meta";

fn pairing_from_row(row: &Row<'_>) -> rusqlite::Result<PairingRequest> {
    Ok(PairingRequest {
        channel: row.get(0)?,
        account: row.get(1)?,
        sender_id: row.get(2)?,
        code: row.get(3)?,
        created_at: row.get(4)?,
        last_seen_at: row.get(5)?,
        meta: json_col(row, 6)?,
    })
}

/// Codes compare case-insensitively: both stored and typed codes are upper-cased.
fn normalize_code(code: &str) -> String {
    code.trim().to_uppercase()
}

/// Requests created before this are expired.
fn cutoff(now: i64, ttl_ms: i64) -> i64 {
    now.saturating_sub(ttl_ms)
}

fn code_taken(conn: &Connection, channel: &str, code: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM pairing_requests WHERE channel = ?1 AND code = ?2",
            params![channel, code],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

impl Store {
    /// Pairing for an unknown DM sender, keyed by (channel, account, sender_id). In one
    /// transaction: deletes the channel's requests older than `ttl_ms` (by created_at); if
    /// this sender has one, updates last_seen_at and returns Existing (same code); else if
    /// `max_pending` requests are pending for (channel, account) returns CapReached; else
    /// inserts one with a code from `gen_code` (called again until the code is unique among
    /// the channel's pending codes) and returns Created.
    #[allow(clippy::too_many_arguments)]
    pub fn upsert_pairing_request(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
        meta: &serde_json::Value,
        now: i64,
        ttl_ms: i64,
        max_pending: usize,
        gen_code: &mut dyn FnMut() -> String,
    ) -> Result<PairingOutcome, StoreError> {
        let meta_text = serde_json::to_string(meta)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM pairing_requests WHERE channel = ?1 AND created_at < ?2",
            params![channel, cutoff(now, ttl_ms)],
        )?;
        let existing = tx
            .prepare_cached(&format!(
                "UPDATE pairing_requests SET last_seen_at = MAX(last_seen_at, ?4) \
                 WHERE channel = ?1 AND account = ?2 AND sender_id = ?3 RETURNING {PAIRING_COLS}"
            ))?
            .query_row(params![channel, account, sender_id, now], pairing_from_row)
            .optional()?;
        if let Some(req) = existing {
            tx.commit()?;
            return Ok(PairingOutcome::Existing(req));
        }
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM pairing_requests WHERE channel = ?1 AND account = ?2",
            params![channel, account],
            |r| r.get(0),
        )?;
        if pending >= to_i64(max_pending) {
            // Still commit: the expired requests stay deleted.
            tx.commit()?;
            return Ok(PairingOutcome::CapReached);
        }
        for _ in 0..MAX_CODE_TRIES {
            let code = normalize_code(&gen_code());
            if code.is_empty() || code_taken(&tx, channel, &code)? {
                continue;
            }
            tx.execute(
                "INSERT INTO pairing_requests \
                 (channel, account, sender_id, code, created_at, last_seen_at, meta) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                params![channel, account, sender_id, code, now, meta_text],
            )?;
            tx.commit()?;
            return Ok(PairingOutcome::Created(PairingRequest {
                channel: channel.to_owned(),
                account: account.to_owned(),
                sender_id: sender_id.to_owned(),
                code,
                created_at: now,
                last_seen_at: now,
                meta: meta.clone(),
            }));
        }
        Err(StoreError::Invalid(format!(
            "no unique pairing code after {MAX_CODE_TRIES} tries"
        )))
    }

    /// Live (non-expired) requests, of one channel or of all, oldest first.
    pub fn list_pairing_requests(
        &self,
        channel: Option<&str>,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Vec<PairingRequest>, StoreError> {
        let sql = format!(
            "SELECT {PAIRING_COLS} FROM pairing_requests \
             WHERE (?1 IS NULL OR channel = ?1) AND created_at >= ?2 \
             ORDER BY created_at ASC, channel ASC, account ASC, sender_id ASC"
        );
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params![channel, cutoff(now, ttl_ms)], pairing_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Finds the live request with this code (case-insensitive; input upper-cased), removes
    /// it and adds (channel, account, sender_id) to the allow store, in one transaction.
    /// `None` when no live request has the code (unknown or expired).
    pub fn approve_pairing(
        &self,
        channel: &str,
        code: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        self.take_pairing(channel, None, code, true, now, ttl_ms)
    }

    /// Removes the live request of the channel (of `account`, or of any account when `None`)
    /// with this code; with `allow`, also adds its sender to the allow store (approve), else
    /// just drops it (dismiss/reject: the sender may ask again). One transaction. `None` when
    /// no live request matches.
    pub fn take_pairing(
        &self,
        channel: &str,
        account: Option<&str>,
        code: &str,
        allow: bool,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let code = normalize_code(code);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = tx
            .prepare_cached(&format!(
                "DELETE FROM pairing_requests WHERE channel = ?1 AND (?2 IS NULL OR account = ?2) \
                 AND code = ?3 AND created_at >= ?4 RETURNING {PAIRING_COLS}"
            ))?
            .query_row(
                params![channel, account, code, cutoff(now, ttl_ms)],
                pairing_from_row,
            )
            .optional()?;
        let Some(req) = found else {
            return Ok(None);
        };
        if allow {
            tx.execute(
                "INSERT INTO channel_allow (channel, account, sender_id, approved_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel, account, sender_id) DO NOTHING",
                params![req.channel, req.account, req.sender_id, now],
            )?;
        }
        tx.commit()?;
        Ok(Some(req))
    }

    pub fn is_sender_allowed(
        &self,
        channel: &str,
        account: &str,
        sender_id: &str,
    ) -> Result<bool, StoreError> {
        let found = self
            .conn()
            .query_row(
                "SELECT 1 FROM channel_allow \
                 WHERE channel = ?1 AND account = ?2 AND sender_id = ?3",
                params![channel, account, sender_id],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// (account, sender_id, approved_at) of the channel's approved senders, oldest first.
    pub fn list_allowed_senders(
        &self,
        channel: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT account, sender_id, approved_at FROM channel_allow WHERE channel = ?1 \
                 ORDER BY approved_at ASC, account ASC, sender_id ASC",
            )?
            .query_map([channel], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
