//! Agent runs and the idempotency keys that stop a retried request from running twice.

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use crate::{opt_json_col, opt_json_text, Claim, RunRow, Store, StoreError};

/// What a run left "running" by a crash or kill is recorded as.
pub const INTERRUPTED_ERROR: &str = "interrupted by a gateway restart";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: row.get(0)?,
        session_key: row.get(1)?,
        session_id: row.get(2)?,
        status: row.get(3)?,
        started_at: row.get(4)?,
        ended_at: row.get(5)?,
        stop_reason: row.get(6)?,
        error: row.get(7)?,
        result: opt_json_col(row, 8)?,
    })
}

impl Store {
    /// Records a run as "running". A duplicate `run_id` is a constraint error.
    pub fn insert_run(
        &self,
        run_id: &str,
        session_key: &str,
        session_id: &str,
        started_at: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO runs (run_id, session_key, session_id, status, started_at) \
             VALUES (?1, ?2, ?3, 'running', ?4)",
            params![run_id, session_key, session_id, started_at],
        )?;
        Ok(())
    }

    /// Records how a run ended; `NotFound` if the run was never inserted.
    pub fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        stop_reason: Option<&str>,
        error: Option<&str>,
        ended_at: i64,
        result: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let result = opt_json_text(result)?;
        let changed = self.conn().execute(
            "UPDATE runs SET status = ?2, stop_reason = ?3, error = ?4, ended_at = ?5, \
             result = ?6 WHERE run_id = ?1",
            params![run_id, status, stop_reason, error, ended_at, result],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("run {run_id}")));
        }
        Ok(())
    }

    pub fn get_run(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        let conn = self.conn();
        let row = conn
            .prepare_cached(
                "SELECT run_id, session_key, session_id, status, started_at, ended_at, \
                 stop_reason, error, result FROM runs WHERE run_id = ?1",
            )?
            .query_row([run_id], run_from_row)
            .optional()?;
        Ok(row)
    }

    /// Call once at start-up: no run can still be executing in a fresh process, so
    /// every "running" row is marked as an error. Returns how many were marked.
    pub fn mark_interrupted_runs(&self, now: i64) -> Result<usize, StoreError> {
        let n = self.conn().execute(
            "UPDATE runs SET status = 'error', error = ?1, ended_at = ?2 \
             WHERE status = 'running'",
            params![INTERRUPTED_ERROR, now],
        )?;
        Ok(n)
    }

    /// Atomically claims `key` for `method`: the first caller gets [`Claim::New`], every
    /// later one gets the run id of that first claim. Keys are scoped per method.
    pub fn claim_idempotency(
        &self,
        key: &str,
        method: &str,
        run_id: &str,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let mut conn = self.conn();
        // The insert and the read-back must see the same state, even across processes.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT INTO idempotency (method, key, run_id, created_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (method, key) DO NOTHING",
            params![method, key, run_id, now],
        )?;
        let claim = if inserted == 1 {
            Claim::New
        } else {
            let run_id: String = tx.query_row(
                "SELECT run_id FROM idempotency WHERE method = ?1 AND key = ?2",
                params![method, key],
                |r| r.get(0),
            )?;
            Claim::Existing { run_id }
        };
        tx.commit()?;
        Ok(claim)
    }

    /// The run that claimed `key` for `method`, if any (read-only).
    pub fn idempotency_run(&self, method: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT run_id FROM idempotency WHERE method = ?1 AND key = ?2",
                params![method, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Forgets one claimed key (a run refused after its key was claimed).
    pub fn forget_idempotency(&self, method: &str, key: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM idempotency WHERE method = ?1 AND key = ?2",
            params![method, key],
        )?;
        Ok(())
    }

    /// Forgets keys claimed before `older_than`; returns how many were removed.
    pub fn prune_idempotency(&self, older_than: i64) -> Result<usize, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            [older_than],
        )?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> Store {
        Store::open_in_memory().unwrap()
    }

    #[test]
    fn run_lifecycle_round_trips() {
        let s = store();
        s.insert_run("r1", "agent:main:main", "sid-1", 100).unwrap();
        let run = s.get_run("r1").unwrap().unwrap();
        assert_eq!(run.status, "running");
        assert_eq!(run.started_at, 100);
        assert_eq!(run.session_id, "sid-1");
        assert_eq!(run.ended_at, None);
        assert_eq!(run.result, None);

        let result = json!({"text": "done", "n": [1, 2]});
        s.finish_run("r1", "ok", Some("end_turn"), None, 250, Some(&result))
            .unwrap();
        let run = s.get_run("r1").unwrap().unwrap();
        assert_eq!(
            run,
            RunRow {
                run_id: "r1".into(),
                session_key: "agent:main:main".into(),
                session_id: "sid-1".into(),
                status: "ok".into(),
                started_at: 100,
                ended_at: Some(250),
                stop_reason: Some("end_turn".into()),
                error: None,
                result: Some(result),
            }
        );
        assert_eq!(s.get_run("nope").unwrap(), None);
    }

    #[test]
    fn finish_unknown_run_is_not_found_and_duplicate_insert_fails() {
        let s = store();
        let err = s
            .finish_run("ghost", "ok", None, None, 1, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(ref m) if m.contains("ghost")));
        s.insert_run("r1", "k", "sid", 1).unwrap();
        assert!(matches!(
            s.insert_run("r1", "k", "sid", 2).unwrap_err(),
            StoreError::Sqlite(_)
        ));
        assert_eq!(s.get_run("r1").unwrap().unwrap().started_at, 1);
    }

    #[test]
    fn mark_interrupted_runs_only_touches_running() {
        let s = store();
        s.insert_run("a", "k", "sid", 1).unwrap();
        s.insert_run("b", "k", "sid", 2).unwrap();
        s.insert_run("c", "k", "sid", 3).unwrap();
        s.finish_run("c", "ok", Some("end_turn"), None, 4, None)
            .unwrap();

        assert_eq!(s.mark_interrupted_runs(99).unwrap(), 2);
        for id in ["a", "b"] {
            let run = s.get_run(id).unwrap().unwrap();
            assert_eq!(run.status, "error");
            assert_eq!(run.error.as_deref(), Some(INTERRUPTED_ERROR));
            assert_eq!(run.ended_at, Some(99));
        }
        let c = s.get_run("c").unwrap().unwrap();
        assert_eq!(c.status, "ok");
        assert_eq!(c.ended_at, Some(4));
        assert_eq!(c.error, None);
        // Nothing left to sweep.
        assert_eq!(s.mark_interrupted_runs(100).unwrap(), 0);
    }

    #[test]
    fn second_claim_returns_first_run_id() {
        let s = store();
        assert_eq!(
            s.claim_idempotency("idem-1", "chat.send", "run-a", 10)
                .unwrap(),
            Claim::New
        );
        assert_eq!(
            s.claim_idempotency("idem-1", "chat.send", "run-b", 11)
                .unwrap(),
            Claim::Existing {
                run_id: "run-a".into()
            }
        );
        // Another method has its own key space.
        assert_eq!(
            s.claim_idempotency("idem-1", "agent", "run-c", 12).unwrap(),
            Claim::New
        );
    }

    #[test]
    fn a_key_can_be_looked_up_and_forgotten() {
        let s = store();
        assert_eq!(s.idempotency_run("chat.send", "k").unwrap(), None);
        s.claim_idempotency("k", "chat.send", "r1", 1).unwrap();
        assert_eq!(
            s.idempotency_run("chat.send", "k").unwrap().as_deref(),
            Some("r1")
        );
        assert_eq!(s.idempotency_run("agent", "k").unwrap(), None);
        s.forget_idempotency("chat.send", "k").unwrap();
        assert_eq!(
            s.claim_idempotency("k", "chat.send", "r2", 2).unwrap(),
            Claim::New
        );
    }

    #[test]
    fn prune_removes_only_old_keys() {
        let s = store();
        s.claim_idempotency("old", "agent", "r1", 100).unwrap();
        s.claim_idempotency("new", "agent", "r2", 200).unwrap();
        assert_eq!(s.prune_idempotency(150).unwrap(), 1);
        assert_eq!(s.prune_idempotency(150).unwrap(), 0);
        // The pruned key can be claimed afresh; the kept one still dedupes.
        assert_eq!(
            s.claim_idempotency("old", "agent", "r3", 300).unwrap(),
            Claim::New
        );
        assert_eq!(
            s.claim_idempotency("new", "agent", "r4", 300).unwrap(),
            Claim::Existing {
                run_id: "r2".into()
            }
        );
    }
}
