use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::schema::{user_version, MIGRATIONS};
use crate::{InboundRow, NewInbound, NewOutbox, Store, StoreError};

const TG: &str = "telegram";
const ACC: &str = "default";
const OFFSET: &str = "telegram:default:offset";

fn store() -> Store {
    Store::open_in_memory().unwrap()
}

fn inbound<'a>(key: &'a str, payload: &'a Value, at: i64) -> NewInbound<'a> {
    NewInbound {
        channel: TG,
        account: ACC,
        dedupe_key: key,
        payload,
        received_at: at,
    }
}

fn chunk<'a>(key: &'a str, text: &'a str, now: i64) -> NewOutbox<'a> {
    NewOutbox {
        channel: TG,
        account: ACC,
        chat_id: "42",
        thread_id: None,
        reply_to: Some("7"),
        text,
        dedupe_key: key,
        inbound_id: None,
        now,
    }
}

fn keys(rows: &[InboundRow]) -> Vec<&str> {
    rows.iter().map(|r| r.dedupe_key.as_str()).collect()
}

#[test]
fn insert_inbound_dedupes_per_channel_and_account() {
    let s = store();
    let p = json!({"update_id": 1, "text": "hi"});
    let id = s.insert_inbound(&inbound("1", &p, 100)).unwrap().unwrap();
    // A redelivery of the same update is detected.
    assert_eq!(s.insert_inbound(&inbound("1", &p, 101)).unwrap(), None);
    // The same platform key under another account or channel is a different message.
    let other_acc = NewInbound {
        account: "work",
        ..inbound("1", &p, 102)
    };
    let other_chan = NewInbound {
        channel: "discord",
        ..inbound("1", &p, 103)
    };
    let a = s.insert_inbound(&other_acc).unwrap().unwrap();
    let b = s.insert_inbound(&other_chan).unwrap().unwrap();
    assert!(id < a && a < b);
    assert_eq!(
        s.get_inbound(id).unwrap(),
        Some(InboundRow {
            id,
            channel: TG.into(),
            account: ACC.into(),
            dedupe_key: "1".into(),
            payload: p,
            status: "pending".into(),
            received_at: 100,
            processed_at: None,
            attempts: 0,
        })
    );
    assert_eq!(s.get_inbound(9999).unwrap(), None);
    assert_eq!(s.inbound_counts(TG).unwrap(), (2, 0, 0));
    assert_eq!(s.last_inbound_at(TG, ACC).unwrap(), Some(100));
    assert_eq!(s.last_inbound_at(TG, "work").unwrap(), Some(102));
    assert_eq!(s.last_inbound_at("slack", ACC).unwrap(), None);
}

#[test]
fn batch_skips_duplicates_and_sets_state_with_the_rows() {
    let s = store();
    let p = json!({});
    s.insert_inbound(&inbound("1", &p, 1)).unwrap().unwrap();
    let batch = [
        inbound("1", &p, 2),
        inbound("2", &p, 2),
        inbound("2", &p, 2),
        inbound("3", &p, 2),
    ];
    let ids = s.insert_inbound_batch(&batch, Some((OFFSET, "4"))).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("4"));
    let pending = s.pending_inbound(TG, 10).unwrap();
    assert_eq!(keys(&pending), ["1", "2", "3"]);
    assert_eq!(ids, [pending[1].id, pending[2].id]);
    // The same batch redelivered stores nothing new; the state is still written.
    let again = s.insert_inbound_batch(&batch, Some((OFFSET, "5"))).unwrap();
    assert_eq!(again, Vec::<i64>::new());
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("5"));
    // Without a state key only rows are written; an empty batch can advance the state.
    assert_eq!(s.insert_inbound_batch(&[], None).unwrap().len(), 0);
    assert_eq!(s.get_state("other").unwrap(), None);
    assert_eq!(s.inbound_counts(TG).unwrap(), (3, 0, 0));
}

#[test]
fn failing_batch_writes_neither_rows_nor_state() {
    let s = store();
    let p = json!({"n": 1});
    s.set_state(OFFSET, "10").unwrap();
    // An empty dedupe key violates a CHECK constraint half-way through the batch.
    let batch = [inbound("10", &p, 1), inbound("", &p, 1)];
    let err = s
        .insert_inbound_batch(&batch, Some((OFFSET, "12")))
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("10"));
    assert_eq!(s.pending_inbound(TG, 10).unwrap(), vec![]);
    // Update 10 was rolled back, so it is new when polled again.
    assert!(s.insert_inbound(&inbound("10", &p, 2)).unwrap().is_some());
}

#[test]
fn batch_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let p = json!({"text": "persist"});
    let ids = {
        let s = Store::open(&path).unwrap();
        let batch = [inbound("7", &p, 70), inbound("8", &p, 80)];
        s.insert_inbound_batch(&batch, Some((OFFSET, "9"))).unwrap()
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("9"));
    let pending = s.pending_inbound(TG, 10).unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(pending[0].payload, p);
    // The dedupe keys survived too.
    assert_eq!(s.insert_inbound(&inbound("8", &p, 90)).unwrap(), None);
}

#[test]
fn pending_order_marks_attempts_and_prune() {
    let s = store();
    let p = json!(null);
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            let key = format!("k{i}");
            s.insert_inbound(&inbound(&key, &p, 10 * i))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(keys(&s.pending_inbound(TG, 3).unwrap()), ["k0", "k1", "k2"]);

    s.mark_inbound(ids[0], "done", 500).unwrap();
    s.mark_inbound(ids[1], "ignored", 501).unwrap();
    s.mark_inbound(ids[3], "done", 502).unwrap();
    assert_eq!(keys(&s.pending_inbound(TG, 10).unwrap()), ["k2", "k4"]);
    let row = s.get_inbound(ids[0]).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.processed_at), ("done", Some(500)));
    assert_eq!(s.inbound_counts(TG).unwrap(), (2, 2, 1));
    // Back to pending clears processed_at.
    s.mark_inbound(ids[3], "pending", 503).unwrap();
    assert_eq!(s.get_inbound(ids[3]).unwrap().unwrap().processed_at, None);

    assert_eq!(s.bump_inbound_attempts(ids[2]).unwrap(), 1);
    assert_eq!(s.bump_inbound_attempts(ids[2]).unwrap(), 2);
    assert_eq!(s.get_inbound(ids[2]).unwrap().unwrap().attempts, 2);

    let err = s.mark_inbound(ids[2], "bogus", 1).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let err = s.mark_inbound(9999, "done", 1).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(ref m) if m.contains("9999")));
    let err = s.bump_inbound_attempts(9999).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // Rows k0..k3 are older than 35; of those only done/ignored go (k0, k1), and the
    // pending ones (k2, k3) keep their dedupe keys.
    assert_eq!(s.prune_inbound(35).unwrap(), 2);
    assert_eq!(s.get_inbound(ids[0]).unwrap(), None);
    assert_eq!(s.inbound_counts(TG).unwrap(), (3, 0, 0));
    assert_eq!(s.insert_inbound(&inbound("k2", &p, 900)).unwrap(), None);
    // A pruned key is forgotten: its redelivery is stored afresh.
    assert!(s.insert_inbound(&inbound("k0", &p, 900)).unwrap().is_some());
}

#[test]
fn state_is_overwritten() {
    let s = store();
    assert_eq!(s.get_state(OFFSET).unwrap(), None);
    s.set_state(OFFSET, "1").unwrap();
    s.set_state(OFFSET, "2").unwrap();
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("2"));
}

#[test]
fn migration_applies_on_top_of_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        // Build the database exactly as the previous release left it.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(MIGRATIONS[0]).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        raw.execute(
            "INSERT INTO sessions (key, session_id, agent_id, created_at, updated_at) \
             VALUES ('agent:main:main', 'sid-old', 'main', 1, 1)",
            [],
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(
        user_version(&s.conn()).unwrap(),
        i64::try_from(MIGRATIONS.len()).unwrap()
    );
    let old = s.get_session("agent:main:main").unwrap().unwrap();
    assert_eq!(old.session_id, "sid-old");
    let p = json!({"ok": 1});
    let id = s.insert_inbound(&inbound("1", &p, 5)).unwrap().unwrap();
    s.set_state(OFFSET, "2").unwrap();
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.get_inbound(id).unwrap().unwrap().payload, p);
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("2"));
}

const CRASH_ENV: &str = "CLAWGATE_STORE_CRASH_CHILD";
const LEASE_UNTIL: i64 = 5_000;
const READY: &str = "CRASH-CHILD-READY";

/// The child half of `every_inbound_gets_exactly_one_reply_after_sigkill`: does nothing
/// unless that test started this binary with the env var set.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let s = Store::open(Path::new(&path)).unwrap();
    let p = json!({"text": "q"});
    let batch = [
        inbound("u1", &p, 1),
        inbound("u2", &p, 2),
        inbound("u3", &p, 3),
    ];
    let ids = s.insert_inbound_batch(&batch, Some((OFFSET, "4"))).unwrap();
    // u1: answered and delivered.
    let a = s
        .enqueue_reply(&[chunk("reply:u1:0", "a", 10)], ids[0], 10)
        .unwrap();
    assert!(s.claim_outbox(a[0], LEASE_UNTIL).unwrap());
    s.mark_outbox_sent(a[0], Some("m1"), 11).unwrap();
    // u2: answered in two chunks; killed while sending the first.
    let chunks = [chunk("reply:u2:0", "b0", 20), chunk("reply:u2:1", "b1", 20)];
    let b = s.enqueue_reply(&chunks, ids[1], 20).unwrap();
    assert!(s.claim_outbox(b[0], LEASE_UNTIL).unwrap());
    // u3: stored, killed before it was processed.
    // libtest may have printed "test ... " on the same line, so the parent looks for a
    // line ending in the marker.
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    // Wait to be killed; exit on our own if the parent never does, so nothing can hang.
    std::thread::sleep(std::time::Duration::from_secs(30));
    std::process::exit(3);
}

#[test]
fn every_inbound_gets_exactly_one_reply_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "channels::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let ready = out
        .lines()
        .any(|l| l.map(|l| l.ends_with(READY)).unwrap_or(false));
    child.kill().unwrap(); // SIGKILL: no destructors, no clean close.
    child.wait().unwrap();
    assert!(ready, "child never got ready");

    // Restart.
    let s = Store::open(&path).unwrap();
    let p = json!({"text": "q"});
    assert_eq!(s.get_state(OFFSET).unwrap().as_deref(), Some("4"));
    // Telegram redelivers what it may think unacknowledged: all duplicates.
    let batch = [
        inbound("u1", &p, 1),
        inbound("u2", &p, 2),
        inbound("u3", &p, 3),
    ];
    assert_eq!(
        s.insert_inbound_batch(&batch, None).unwrap(),
        Vec::<i64>::new()
    );
    // Only u3 still needs processing.
    let pending = s.pending_inbound(TG, 10).unwrap();
    assert_eq!(keys(&pending), ["u3"]);
    let c = s
        .enqueue_reply(&[chunk("reply:u3:0", "c", 100)], pending[0].id, 100)
        .unwrap();
    assert_eq!(c.len(), 1);
    // Before the lease runs out the interrupted chunk stays with its (dead) sender.
    let due: Vec<String> = s
        .due_outbox(TG, 200, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.dedupe_key)
        .collect();
    assert_eq!(due, ["reply:u2:1", "reply:u3:0"]);
    assert_eq!(s.next_outbox_due(TG).unwrap(), Some(20));
    // After it, the sender takes everything unsent, in queue order.
    let due = s.due_outbox(TG, LEASE_UNTIL, 10).unwrap();
    let keys_due: Vec<&str> = due.iter().map(|r| r.dedupe_key.as_str()).collect();
    assert_eq!(keys_due, ["reply:u2:0", "reply:u2:1", "reply:u3:0"]);
    assert_eq!(due[0].attempts, 1);
    for row in &due {
        assert!(s.claim_outbox(row.id, LEASE_UNTIL + 1_000).unwrap());
        s.mark_outbox_sent(row.id, Some("m"), LEASE_UNTIL + 1)
            .unwrap();
    }
    assert_eq!(s.due_outbox(TG, i64::MAX, 10).unwrap(), vec![]);
    assert_eq!(s.outbox_counts(TG).unwrap(), (0, 4, 0));
    assert_eq!(s.inbound_counts(TG).unwrap(), (0, 3, 0));
    let mut all = Vec::new();
    for (key, n) in [("u1", 1), ("u2", 2), ("u3", 1)] {
        let id: i64 = s
            .conn()
            .query_row(
                "SELECT id FROM channel_inbound WHERE dedupe_key = ?1",
                [key],
                |r| r.get(0),
            )
            .unwrap();
        let replies = s.outbox_for_inbound(id).unwrap();
        assert_eq!(replies.len(), n, "{key}");
        assert!(replies.iter().all(|r| r.status == "sent"));
        all.extend(replies.into_iter().map(|r| r.dedupe_key));
    }
    assert_eq!(
        all,
        ["reply:u1:0", "reply:u2:0", "reply:u2:1", "reply:u3:0"]
    );
}

#[path = "channels_outbox_tests.rs"]
mod outbox;
#[path = "channels_pairing_tests.rs"]
mod pairing;

#[test]
fn pending_inbound_is_per_channel() {
    let s = store();
    let p = json!({"x": 1});
    for i in 0..5 {
        s.insert_inbound(&inbound(&format!("t{i}"), &p, 1)).unwrap();
    }
    let other = NewInbound {
        channel: "other",
        account: ACC,
        dedupe_key: "o1",
        payload: &p,
        received_at: 2,
    };
    s.insert_inbound(&other).unwrap().unwrap();
    // A backlog on one channel does not hide the other's message.
    let rows = s.pending_inbound("other", 2).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].dedupe_key, "o1");
    assert_eq!(s.pending_inbound(TG, 10).unwrap().len(), 5);
}
