//! The reply outbox: one row per reply chunk, delivered by a sender under a lease.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{NewOutbox, OutboxRow};
use crate::{to_i64, Store, StoreError};

const OUTBOX_COLS: &str = "id, channel, account, chat_id, thread_id, reply_to, text, \
     dedupe_key, inbound_id, status, attempts, next_attempt_at, last_error, created_at, \
     sent_at, platform_message_id";

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.get(0)?,
        channel: row.get(1)?,
        account: row.get(2)?,
        chat_id: row.get(3)?,
        thread_id: row.get(4)?,
        reply_to: row.get(5)?,
        text: row.get(6)?,
        dedupe_key: row.get(7)?,
        inbound_id: row.get(8)?,
        status: row.get(9)?,
        attempts: row.get(10)?,
        next_attempt_at: row.get(11)?,
        last_error: row.get(12)?,
        created_at: row.get(13)?,
        sent_at: row.get(14)?,
        platform_message_id: row.get(15)?,
    })
}

/// Queues a chunk unless its dedupe key is taken; the new id, or `None`.
fn insert_outbox_on(
    conn: &Connection,
    o: &NewOutbox<'_>,
    inbound_id: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO channel_outbox (channel, account, chat_id, thread_id, reply_to, text, \
             dedupe_key, inbound_id, next_attempt_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT (dedupe_key) DO NOTHING",
        )?
        .execute(params![
            o.channel,
            o.account,
            o.chat_id,
            o.thread_id,
            o.reply_to,
            o.text,
            o.dedupe_key,
            inbound_id,
            o.now
        ])?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

fn outbox_exists(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM channel_outbox WHERE id = ?1", [id], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

fn outbox_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("outbox {id}"))
}

impl Store {
    /// Queues one chunk, due at `o.now`. Ok(None) when `dedupe_key` exists already (this
    /// reply chunk was queued before: never queue it twice).
    pub fn enqueue_outbox(&self, o: &NewOutbox<'_>) -> Result<Option<i64>, StoreError> {
        insert_outbox_on(&self.conn(), o, o.inbound_id)
    }

    /// Queues all chunks of one reply AND marks the inbound row done, in ONE transaction, so
    /// a crash leaves the message either pending (to be processed again) or fully answered.
    /// Every chunk is linked to `inbound_id` (a chunk's own `inbound_id` is ignored); chunks
    /// whose dedupe key exists are skipped, and the ids of the new rows are returned.
    /// `NotFound` (and nothing written) if the inbound row does not exist.
    pub fn enqueue_reply(
        &self,
        chunks: &[NewOutbox<'_>],
        inbound_id: i64,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A repeated call keeps the first processed_at.
        let changed = tx.execute(
            "UPDATE channel_inbound SET status = 'done', \
             processed_at = CASE WHEN status = 'done' THEN processed_at ELSE ?2 END \
             WHERE id = ?1",
            params![inbound_id, now],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("inbound {inbound_id}")));
        }
        let mut ids = Vec::new();
        for chunk in chunks {
            ids.extend(insert_outbox_on(&tx, chunk, Some(inbound_id))?);
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Pending rows with next_attempt_at <= now, oldest (lowest id, i.e. queue order) first;
    /// also rows stuck in `sending` whose lease (next_attempt_at) ran out by `now`, which a
    /// crash mid-send leaves behind. Those are put back to `pending` here, so they come back
    /// with status `pending` and [`Store::claim_outbox`] can take them again. The reset keeps
    /// next_attempt_at (the lease end), so even a caller passing a `now` in the future cannot
    /// make a row in flight due for a sender using the real time before its lease runs out.
    /// To look at one row without side effects use [`Store::get_outbox`].
    pub fn due_outbox(
        &self,
        channel: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // The `status IN (...)` terms repeat the partial index's condition so SQLite uses it.
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM channel_outbox WHERE channel = ?1 \
             AND status IN ('pending', 'sending') AND status = 'pending' \
             AND next_attempt_at <= ?2 ORDER BY id ASC LIMIT ?3"
        );
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE channel_outbox SET status = 'pending' WHERE channel = ?1 \
             AND status IN ('pending', 'sending') AND status = 'sending' \
             AND next_attempt_at <= ?2",
            params![channel, now],
        )?;
        let rows = tx
            .prepare_cached(&sql)?
            .query_map(params![channel, now, to_i64(limit)], outbox_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(rows)
    }

    /// Claims a row for sending: status pending -> sending, attempts += 1, next_attempt_at =
    /// lease_until (when the lease runs out and the row is due again). false if it was not
    /// claimable (someone else has it, it is finished, or it does not exist). Choose the
    /// lease well beyond the send timeout: an expired lease lets another sender take it.
    pub fn claim_outbox(&self, id: i64, lease_until: i64) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE channel_outbox SET status = 'sending', attempts = attempts + 1, \
             next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending'",
            params![id, lease_until],
        )?;
        Ok(changed == 1)
    }

    /// Records delivery. A row already `sent` keeps its first sent_at and message id.
    /// `NotFound` if the row does not exist.
    pub fn mark_outbox_sent(
        &self,
        id: i64,
        platform_message_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.finish_outbox(
            id,
            "UPDATE channel_outbox SET status = 'sent', sent_at = ?3, \
             platform_message_id = ?2 WHERE id = ?1 AND status <> 'sent'",
            params![id, platform_message_id, now],
        )
    }

    /// Back to `pending`, due at `next_attempt_at`, remembering the error. A row already
    /// sent or failed is left alone, so a late retry can never resurrect a sent chunk.
    pub fn mark_outbox_retry(
        &self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.finish_outbox(
            id,
            "UPDATE channel_outbox SET status = 'pending', next_attempt_at = ?2, \
             last_error = ?3 WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, next_attempt_at, error],
        )
    }

    /// Gives up on the chunk; `now` is recorded in next_attempt_at (when it was given up).
    /// A row already sent stays sent.
    pub fn mark_outbox_failed(&self, id: i64, error: &str, now: i64) -> Result<(), StoreError> {
        self.finish_outbox(
            id,
            "UPDATE channel_outbox SET status = 'failed', last_error = ?2, \
             next_attempt_at = ?3 WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, error, now],
        )
    }

    /// Runs a guarded status update; a row the guard skips is fine, a missing row is not.
    fn finish_outbox(
        &self,
        id: i64,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.prepare_cached(sql)?.execute(params)?;
        if changed == 0 && !outbox_exists(&tx, id)? {
            return Err(outbox_not_found(id));
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the platform's delivery report for the chunk it knows as `platform_message_id`
    /// (`sent` < `delivered` < `read`; reports may arrive out of order, so a report never
    /// moves a row back). `failed` also marks the row failed with `error`. Returns whether
    /// such a row exists.
    pub fn record_outbox_delivery(
        &self,
        channel: &str,
        platform_message_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let rank = |s: &str| match s {
            "sent" => 1,
            "delivered" => 2,
            "read" => 3,
            "failed" => 9,
            _ => 0,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<Option<String>> = tx
            .prepare_cached(
                "SELECT delivery_status FROM channel_outbox \
                 WHERE channel = ?1 AND platform_message_id = ?2",
            )?
            .query_row(params![channel, platform_message_id], |r| r.get(0))
            .optional()?;
        let Some(current) = current else {
            return Ok(false);
        };
        if rank(status) > rank(current.as_deref().unwrap_or("")) {
            if status == "failed" {
                tx.prepare_cached(
                    "UPDATE channel_outbox SET delivery_status = 'failed', status = 'failed', \
                     last_error = ?3 WHERE channel = ?1 AND platform_message_id = ?2",
                )?
                .execute(params![channel, platform_message_id, error])?;
            } else {
                tx.prepare_cached(
                    "UPDATE channel_outbox SET delivery_status = ?3 \
                     WHERE channel = ?1 AND platform_message_id = ?2",
                )?
                .execute(params![channel, platform_message_id, status])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// The delivery report recorded for a chunk (`None` before any).
    pub fn outbox_delivery_status(&self, id: i64) -> Result<Option<String>, StoreError> {
        let v = self
            .conn()
            .query_row(
                "SELECT delivery_status FROM channel_outbox WHERE id = ?1",
                [id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?;
        Ok(v.flatten())
    }

    pub fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLS} FROM channel_outbox WHERE id = ?1");
        let conn = self.conn();
        let row = conn
            .prepare_cached(&sql)?
            .query_row([id], outbox_from_row)
            .optional()?;
        Ok(row)
    }

    /// Every chunk queued for this inbound message, in queue order.
    pub fn outbox_for_inbound(&self, inbound_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM channel_outbox WHERE inbound_id = ?1 ORDER BY id ASC"
        );
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map([inbound_id], outbox_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// (pending + sending, sent, failed) rows of the channel.
    pub fn outbox_counts(&self, channel: &str) -> Result<(i64, i64, i64), StoreError> {
        let counts = self.conn().query_row(
            "SELECT COALESCE(SUM(status IN ('pending', 'sending')), 0), \
             COALESCE(SUM(status = 'sent'), 0), COALESCE(SUM(status = 'failed'), 0) \
             FROM channel_outbox WHERE channel = ?1",
            [channel],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(counts)
    }

    /// When the sender next has work: the minimum next_attempt_at of the pending rows and
    /// of the `sending` rows (whose lease expiry makes them due again after a crash).
    pub fn next_outbox_due(&self, channel: &str) -> Result<Option<i64>, StoreError> {
        let at = self.conn().query_row(
            "SELECT MIN(next_attempt_at) FROM channel_outbox WHERE channel = ?1 \
             AND status IN ('pending', 'sending')",
            [channel],
            |r| r.get(0),
        )?;
        Ok(at)
    }

    /// Deletes sent/failed rows created before `older_than` (pending and sending rows stay);
    /// returns how many were removed.
    pub fn prune_outbox(&self, older_than: i64) -> Result<usize, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM channel_outbox WHERE status IN ('sent', 'failed') AND created_at < ?1",
            [older_than],
        )?;
        Ok(n)
    }

    /// Makes every chunk of `channel` left `sending` due now: called once at start-up, when
    /// no sender of this process holds a lease, so those rows belong to a process that
    /// stopped mid-send. Their delivery is unknown; they are sent again (at least once).
    /// Returns how many were released.
    pub fn release_outbox_leases(&self, channel: &str, now: i64) -> Result<usize, StoreError> {
        let n = self.conn().execute(
            "UPDATE channel_outbox SET status = 'pending', next_attempt_at = ?2, \
             last_error = 'interrupted while sending; delivery unknown, sent again' \
             WHERE channel = ?1 AND status = 'sending'",
            params![channel, now],
        )?;
        Ok(n)
    }
}
