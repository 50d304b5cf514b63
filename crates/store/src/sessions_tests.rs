use serde_json::{json, Value};

use crate::{NewEntry, Store, StoreError};

const KEY: &str = "agent:main:main";

fn store() -> Store {
    Store::open_in_memory().unwrap()
}

fn entry<'a>(key: &'a str, content: &'a Value, ts: i64) -> NewEntry<'a> {
    NewEntry {
        session_key: key,
        role: "user",
        content,
        run_id: None,
        idempotency_key: None,
        usage: None,
        meta: None,
        ts,
    }
}

fn append_n(s: &Store, key: &str, n: i64, ts0: i64) {
    for i in 0..n {
        let c = json!({ "text": format!("m{i}") });
        s.append_entry(&entry(key, &c, ts0 + i)).unwrap();
    }
}

fn seqs(s: &Store, key: &str, limit: usize) -> Vec<i64> {
    s.history(key, limit)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn ensure_creates_once_and_get_returns_it() {
    let s = store();
    assert_eq!(s.get_session(KEY).unwrap(), None);
    let a = s.ensure_session(KEY, "main", 100).unwrap();
    assert_eq!(a.key, KEY);
    assert_eq!(a.agent_id, "main");
    assert_eq!((a.created_at, a.updated_at), (100, 100));
    assert_eq!(a.last_activity_at, None);
    assert_eq!((a.input_tokens, a.output_tokens), (0, 0));
    assert!(uuid::Uuid::parse_str(&a.session_id).is_ok());

    // A second ensure is a no-op: same session id, untouched timestamps.
    let b = s.ensure_session(KEY, "other", 200).unwrap();
    assert_eq!(b, a);
    assert_eq!(s.get_session(KEY).unwrap(), Some(a));
}

#[test]
fn list_orders_by_updated_desc_then_key_and_pages() {
    let s = store();
    s.ensure_session("c", "main", 10).unwrap();
    s.ensure_session("b", "main", 30).unwrap();
    s.ensure_session("a", "main", 30).unwrap();
    s.ensure_session("d", "main", 20).unwrap();

    let (all, total) = s.list_sessions(10, 0).unwrap();
    assert_eq!(total, 4);
    let keys: Vec<_> = all.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "d", "c"]);

    let (page, total) = s.list_sessions(2, 1).unwrap();
    assert_eq!(total, 4);
    let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["b", "d"]);

    let (past_end, total) = s.list_sessions(5, 10).unwrap();
    assert!(past_end.is_empty());
    assert_eq!(total, 4);

    // Touching a session moves it to the front.
    s.set_label("c", "main", Some("hello"), 40).unwrap();
    let (all, _) = s.list_sessions(1, 0).unwrap();
    assert_eq!(all[0].key, "c");
    assert_eq!(all[0].label.as_deref(), Some("hello"));
}

#[test]
fn overrides_labels_status_and_usage() {
    let s = store();
    // Both setters create the session when it is missing.
    let r = s.set_model_override(KEY, "main", Some("gpt-x"), 5).unwrap();
    assert_eq!(r.model_override.as_deref(), Some("gpt-x"));
    assert_eq!((r.created_at, r.updated_at), (5, 5));
    let r2 = s.set_label("other", "ops", Some("L"), 6).unwrap();
    assert_eq!(
        (r2.agent_id.as_str(), r2.label.as_deref()),
        ("ops", Some("L"))
    );

    let r = s.set_model_override(KEY, "main", None, 7).unwrap();
    assert_eq!(r.model_override, None);
    assert_eq!((r.created_at, r.updated_at), (5, 7));

    s.set_status(KEY, "running", 8).unwrap();
    s.add_usage(KEY, 10, 3, 9).unwrap();
    s.add_usage(KEY, 5, 2, 10).unwrap();
    let r = s.get_session(KEY).unwrap().unwrap();
    assert_eq!(r.status.as_deref(), Some("running"));
    assert_eq!(r.last_activity_at, Some(8));
    assert_eq!((r.input_tokens, r.output_tokens), (15, 5));
    assert_eq!(r.updated_at, 10);

    assert!(matches!(
        s.set_status("missing", "x", 1),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_usage("missing", 1, 1, 1),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn append_requires_session_and_bumps_activity() {
    let s = store();
    let c = json!("hi");
    let err = s.append_entry(&entry(KEY, &c, 1)).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(ref m) if m.contains(KEY)));

    let sess = s.ensure_session(KEY, "main", 100).unwrap();
    let usage = json!({"input": 3, "output": 4});
    let meta = json!({"channel": "web"});
    let e = s
        .append_entry(&NewEntry {
            session_key: KEY,
            role: "assistant",
            content: &json!([{"type": "text", "text": "hello"}]),
            run_id: Some("run-1"),
            idempotency_key: Some("idem-1"),
            usage: Some(&usage),
            meta: Some(&meta),
            ts: 150,
        })
        .unwrap();
    assert_eq!(e.seq, 1);
    assert_eq!(e.session_id, sess.session_id);
    assert!(uuid::Uuid::parse_str(&e.id).is_ok());

    // What comes back from the database equals what append returned.
    assert_eq!(s.history(KEY, 10).unwrap(), vec![e.clone()]);
    let found = s.find_entry_by_idempotency_key(KEY, "idem-1").unwrap();
    assert_eq!(found, Some(e));
    assert_eq!(s.find_entry_by_idempotency_key(KEY, "other").unwrap(), None);

    let r = s.get_session(KEY).unwrap().unwrap();
    assert_eq!((r.updated_at, r.last_activity_at), (150, Some(150)));
}

#[test]
fn seq_is_contiguous_and_restarts_after_reset() {
    let s = store();
    s.ensure_session(KEY, "main", 1).unwrap();
    s.set_model_override(KEY, "main", Some("m"), 2).unwrap();
    append_n(&s, KEY, 5, 10);
    s.set_status(KEY, "idle", 20).unwrap();
    s.add_usage(KEY, 7, 8, 20).unwrap();
    assert_eq!(seqs(&s, KEY, 100), [1, 2, 3, 4, 5]);
    assert_eq!(s.count_entries(KEY).unwrap(), 5);
    let old = s.get_session(KEY).unwrap().unwrap();

    let new = s.reset_session(KEY, "main", 30).unwrap();
    assert_ne!(new.session_id, old.session_id);
    assert_eq!(new.status, None);
    assert_eq!((new.input_tokens, new.output_tokens), (0, 0));
    assert_eq!(new.created_at, old.created_at);
    assert_eq!(new.updated_at, 30);
    assert_eq!(new.model_override.as_deref(), Some("m"));
    assert!(s.history(KEY, 100).unwrap().is_empty());
    assert_eq!(s.count_entries(KEY).unwrap(), 0);

    append_n(&s, KEY, 3, 40);
    let h = s.history(KEY, 100).unwrap();
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(h.iter().all(|e| e.session_id == new.session_id));
    assert_eq!(s.count_entries(KEY).unwrap(), 3);

    // The old transcript is still in the table, just not in history.
    let conn = s.conn();
    let old_rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE session_id = ?1",
            [&old.session_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_rows, 5);
}

#[test]
fn reset_creates_missing_session() {
    let s = store();
    let r = s.reset_session("fresh", "main", 9).unwrap();
    assert_eq!((r.key.as_str(), r.created_at), ("fresh", 9));
    assert_eq!(s.get_session("fresh").unwrap(), Some(r));
}

#[test]
fn history_limit_returns_last_n_ascending() {
    let s = store();
    s.ensure_session(KEY, "main", 1).unwrap();
    append_n(&s, KEY, 10, 100);
    let h = s.history(KEY, 3).unwrap();
    assert_eq!(h.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 9, 10]);
    assert_eq!(h[0].content, json!({"text": "m7"}));
    assert_eq!(h[2].ts, 109);
    assert_eq!(seqs(&s, KEY, 0), Vec::<i64>::new());
    assert_eq!(seqs(&s, KEY, 1000).len(), 10);
    assert!(s.history("unknown", 10).unwrap().is_empty());
    assert_eq!(s.count_entries("unknown").unwrap(), 0);
}

#[test]
fn delete_removes_session_and_all_entries_but_keeps_runs() {
    let s = store();
    let sess = s.ensure_session(KEY, "main", 1).unwrap();
    s.ensure_session("keep", "main", 1).unwrap();
    append_n(&s, KEY, 3, 10);
    s.reset_session(KEY, "main", 20).unwrap();
    append_n(&s, KEY, 2, 30);
    append_n(&s, "keep", 4, 30);
    s.insert_run("run-1", KEY, &sess.session_id, 5).unwrap();

    assert!(s.delete_session(KEY).unwrap());
    assert_eq!(s.get_session(KEY).unwrap(), None);
    assert!(s.history(KEY, 100).unwrap().is_empty());
    let left: i64 = s
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE session_key = ?1",
            [KEY],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(s.count_entries("keep").unwrap(), 4);
    assert_eq!(s.get_run("run-1").unwrap().unwrap().session_key, KEY);
    assert!(!s.delete_session(KEY).unwrap());

    // Re-creating the key starts from scratch.
    s.ensure_session(KEY, "main", 50).unwrap();
    append_n(&s, KEY, 1, 60);
    assert_eq!(seqs(&s, KEY, 10), [1]);
}
