//! Retention: finished channel rows and old idempotency keys are deleted on a schedule so the
//! file does not grow without bound. Unfinished work (a pending inbound message, an outbox
//! chunk not yet sent, the key of a run still running) is never touched.

use rusqlite::params;

use crate::{Store, StoreError};

/// How long finished rows are kept, in milliseconds (0 = until the next sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub inbound_ms: i64,
    pub outbox_ms: i64,
    pub idempotency_ms: i64,
}

/// Rows removed by one [`Store::prune_batch`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    pub inbound: usize,
    pub outbox: usize,
    pub idempotency: usize,
}

impl PruneCounts {
    pub fn total(&self) -> usize {
        self.inbound + self.outbox + self.idempotency
    }
}

impl Store {
    /// Deletes at most `limit` expired rows from each table, oldest first, in one short
    /// transaction; call it again while it returns `limit` for some table. Small batches keep
    /// the write lock short, so other work interleaves with a large sweep.
    pub fn prune_batch(
        &self,
        r: &Retention,
        now: i64,
        limit: usize,
    ) -> Result<PruneCounts, StoreError> {
        let limit = crate::to_i64(limit);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inbound = tx.execute(
            "DELETE FROM channel_inbound WHERE id IN (SELECT id FROM channel_inbound \
             WHERE status IN ('done', 'ignored') AND received_at < ?1 ORDER BY id LIMIT ?2)",
            params![now.saturating_sub(r.inbound_ms), limit],
        )?;
        let outbox = tx.execute(
            "DELETE FROM channel_outbox WHERE id IN (SELECT id FROM channel_outbox \
             WHERE status IN ('sent', 'failed') AND created_at < ?1 ORDER BY id LIMIT ?2)",
            params![now.saturating_sub(r.outbox_ms), limit],
        )?;
        let idempotency = tx.execute(
            "DELETE FROM idempotency WHERE rowid IN (SELECT i.rowid FROM idempotency i \
             WHERE i.created_at < ?1 AND NOT EXISTS (SELECT 1 FROM runs WHERE \
             runs.run_id = i.run_id AND runs.status = 'running') \
             ORDER BY i.created_at LIMIT ?2)",
            params![now.saturating_sub(r.idempotency_ms), limit],
        )?;
        tx.commit()?;
        Ok(PruneCounts {
            inbound,
            outbox,
            idempotency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewInbound, NewOutbox};
    use serde_json::json;

    const R: Retention = Retention {
        inbound_ms: 100,
        outbox_ms: 100,
        idempotency_ms: 100,
    };

    fn inbound(s: &Store, key: &str, at: i64) -> i64 {
        s.insert_inbound(&NewInbound {
            channel: "telegram",
            account: "default",
            dedupe_key: key,
            payload: &json!({"k": key}),
            received_at: at,
        })
        .unwrap()
        .unwrap()
    }

    fn outbox(s: &Store, key: &str, at: i64) -> i64 {
        s.enqueue_outbox(&NewOutbox {
            channel: "telegram",
            account: "default",
            chat_id: "1",
            thread_id: None,
            reply_to: None,
            text: "hi",
            dedupe_key: key,
            inbound_id: None,
            now: at,
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn prunes_only_expired_finished_rows() {
        let s = Store::open_in_memory().unwrap();
        let old_done = inbound(&s, "1", 10);
        s.mark_inbound(old_done, "done", 11).unwrap();
        let old_ignored = inbound(&s, "2", 10);
        s.mark_inbound(old_ignored, "ignored", 11).unwrap();
        let old_pending = inbound(&s, "3", 10);
        let new_done = inbound(&s, "4", 950);
        s.mark_inbound(new_done, "done", 951).unwrap();

        let o_sent = outbox(&s, "a", 10);
        s.claim_outbox(o_sent, 500).unwrap();
        s.mark_outbox_sent(o_sent, Some("m1"), 12).unwrap();
        let o_failed = outbox(&s, "b", 10);
        s.mark_outbox_failed(o_failed, "nope", 12).unwrap();
        let o_pending = outbox(&s, "c", 10);
        let o_sending = outbox(&s, "d", 10);
        s.claim_outbox(o_sending, 5000).unwrap();

        // An old key whose run still runs must survive: a retry must not start a second run.
        s.insert_run("r-running", "agent:main:main", "sid", 10)
            .unwrap();
        s.claim_idempotency("k-running", "chat.send", "r-running", 10)
            .unwrap();
        s.insert_run("r-done", "agent:main:main", "sid", 10)
            .unwrap();
        s.finish_run("r-done", "ok", None, None, 20, None).unwrap();
        s.claim_idempotency("k-done", "chat.send", "r-done", 10)
            .unwrap();
        s.claim_idempotency("k-new", "chat.send", "r-new", 990)
            .unwrap();

        let n = s.prune_batch(&R, 1000, 100).unwrap();
        assert_eq!(
            n,
            PruneCounts {
                inbound: 2,
                outbox: 2,
                idempotency: 1
            }
        );
        assert!(s.get_inbound(old_done).unwrap().is_none());
        assert!(s.get_inbound(old_ignored).unwrap().is_none());
        assert!(s.get_inbound(old_pending).unwrap().is_some());
        assert!(s.get_inbound(new_done).unwrap().is_some());
        assert!(s.get_outbox(o_sent).unwrap().is_none());
        assert!(s.get_outbox(o_failed).unwrap().is_none());
        assert!(s.get_outbox(o_pending).unwrap().is_some());
        assert!(s.get_outbox(o_sending).unwrap().is_some());
        let claim = |k: &str| s.claim_idempotency(k, "chat.send", "other", 1000).unwrap();
        assert_eq!(
            claim("k-running"),
            crate::Claim::Existing {
                run_id: "r-running".into()
            }
        );
        assert_eq!(
            claim("k-new"),
            crate::Claim::Existing {
                run_id: "r-new".into()
            }
        );
        assert_eq!(claim("k-done"), crate::Claim::New);
        assert_eq!(s.prune_batch(&R, 1000, 100).unwrap().inbound, 0);
    }

    #[test]
    fn batches_are_bounded() {
        let s = Store::open_in_memory().unwrap();
        for i in 0..5 {
            let id = inbound(&s, &i.to_string(), 1);
            s.mark_inbound(id, "done", 2).unwrap();
        }
        assert_eq!(s.prune_batch(&R, 1000, 2).unwrap().inbound, 2);
        assert_eq!(s.prune_batch(&R, 1000, 2).unwrap().inbound, 2);
        assert_eq!(s.prune_batch(&R, 1000, 2).unwrap().inbound, 1);
        assert_eq!(s.inbound_counts("telegram").unwrap().1, 0);
    }
}
