//! Store-level tests: opening files, migrations, persistence, concurrency.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::thread;

use serde_json::json;

use crate::schema::{migrate, user_version, MIGRATIONS};
use crate::{Claim, NewEntry, Store, StoreError};

fn supported() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap()
}

fn append(s: &Store, key: &str, text: &str, ts: i64) -> i64 {
    let content = json!({ "text": text });
    s.append_entry(&NewEntry {
        session_key: key,
        role: "user",
        content: &content,
        run_id: None,
        idempotency_key: None,
        usage: None,
        meta: None,
        ts,
    })
    .unwrap()
    .seq
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<StoreError>();
}

#[test]
fn migrations_run_once_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(user_version(&s.conn()).unwrap(), supported());
        // Already current: another pass applies nothing.
        assert_eq!(migrate(&mut s.conn()).unwrap(), 0);
        s.ensure_session("k", "main", 1).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(user_version(&s.conn()).unwrap(), supported());
    assert_eq!(s.list_sessions(10, 0).unwrap().1, 1);

    // A fresh connection at version 0 applies every migration exactly once.
    let mut raw = rusqlite::Connection::open_in_memory().unwrap();
    assert_eq!(migrate(&mut raw).unwrap(), MIGRATIONS.len());
    assert_eq!(migrate(&mut raw).unwrap(), 0);
    assert_eq!(user_version(&raw).unwrap(), supported());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", supported() + 1)
        .unwrap();
    drop(raw);
    match Store::open(&path) {
        Err(StoreError::SchemaTooNew {
            found,
            supported: s,
        }) => {
            assert_eq!((found, s), (supported() + 1, supported()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn file_is_created_0600_with_wal_and_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = Store::open(&path).unwrap();
    assert_eq!(s.path(), Some(path.as_path()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    s.ensure_session("k", "main", 1).unwrap();
    let wal = dir.path().join("state.db-wal");
    let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode();
    assert_eq!(wal_mode & 0o777, 0o600);

    let conn = s.conn();
    let q = |p: &str| -> String {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(q("journal_mode"), "Text(\"wal\")");
    assert_eq!(q("synchronous"), "Integer(1)"); // NORMAL
    assert_eq!(q("foreign_keys"), "Integer(1)");
    assert_eq!(q("busy_timeout"), "Integer(5000)");
}

#[test]
fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (sess, run_result) = {
        let s = Store::open(&path).unwrap();
        let sess = s
            .set_label("agent:main:main", "main", Some("L"), 10)
            .unwrap();
        append(&s, "agent:main:main", "one", 11);
        append(&s, "agent:main:main", "two", 12);
        s.add_usage("agent:main:main", 3, 4, 13).unwrap();
        s.insert_run("r1", "agent:main:main", &sess.session_id, 14)
            .unwrap();
        let result = json!({"ok": true});
        s.finish_run("r1", "ok", Some("end_turn"), None, 15, Some(&result))
            .unwrap();
        (s.get_session("agent:main:main").unwrap().unwrap(), result)
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(s.get_session("agent:main:main").unwrap(), Some(sess));
    let h = s.history("agent:main:main", 10).unwrap();
    let texts: Vec<_> = h.iter().map(|e| e.content["text"].clone()).collect();
    assert_eq!(texts, [json!("one"), json!("two")]);
    let run = s.get_run("r1").unwrap().unwrap();
    assert_eq!(run.status, "ok");
    assert_eq!(run.result, Some(run_result));
    // The next append continues the numbering.
    assert_eq!(append(&s, "agent:main:main", "three", 16), 3);
}

#[test]
fn idempotency_claim_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.claim_idempotency("idem", "chat.send", "run-1", 1)
                .unwrap(),
            Claim::New
        );
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(
        s.claim_idempotency("idem", "chat.send", "run-2", 2)
            .unwrap(),
        Claim::Existing {
            run_id: "run-1".into()
        }
    );
}

#[test]
fn interrupted_runs_are_marked_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = Store::open(&path).unwrap();
        s.insert_run("r1", "k", "sid", 1).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.mark_interrupted_runs(50).unwrap(), 1);
    let run = s.get_run("r1").unwrap().unwrap();
    assert_eq!(run.status, "error");
    assert_eq!(run.error.as_deref(), Some(crate::INTERRUPTED_ERROR));
    assert_eq!(run.ended_at, Some(50));
}

/// Checks the session's transcript is exactly seqs 1..=n with unique ids.
fn assert_contiguous(s: &Store, key: &str, n: usize) {
    let h = s.history(key, n + 10).unwrap();
    assert_eq!(h.len(), n);
    let seqs: Vec<i64> = h.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=i64::try_from(n).unwrap()).collect();
    assert_eq!(seqs, expected);
    let ids: HashSet<_> = h.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), n);
    assert_eq!(s.count_entries(key).unwrap(), n);
}

#[test]
fn concurrent_appends_from_threads_get_unique_contiguous_seqs() {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    s.ensure_session("k", "main", 1).unwrap();

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| append(&s, "k", &format!("{t}-{i}"), 10))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut returned: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    returned.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(THREADS * PER_THREAD).unwrap()).collect();
    assert_eq!(returned, expected);
    assert_contiguous(&s, "k", THREADS * PER_THREAD);
}

#[test]
fn concurrent_appends_from_separate_connections_get_unique_contiguous_seqs() {
    // Two handles on one file behave like two processes: only SQLite's locking
    // (IMMEDIATE transactions + busy_timeout) keeps the seqs apart.
    const PER_HANDLE: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Arc::new(Store::open(&path).unwrap());
    let b = Arc::new(Store::open(&path).unwrap());
    a.ensure_session("k", "main", 1).unwrap();

    let handles: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, s)| {
            thread::spawn(move || {
                for i in 0..PER_HANDLE {
                    append(&s, "k", &format!("{n}-{i}"), 10);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_contiguous(&a, "k", 2 * PER_HANDLE);
    assert_contiguous(&b, "k", 2 * PER_HANDLE);
}

#[test]
fn store_recovers_from_a_poisoned_lock() {
    let s = Arc::new(Store::open_in_memory().unwrap());
    s.ensure_session("k", "main", 1).unwrap();
    let s2 = Arc::clone(&s);
    let res = thread::spawn(move || {
        let _guard = s2.conn();
        panic!("poison the mutex");
    })
    .join();
    assert!(res.is_err());
    assert_eq!(append(&s, "k", "after", 2), 1);
    assert_eq!(s.count_entries("k").unwrap(), 1);
}
