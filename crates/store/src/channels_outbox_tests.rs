use serde_json::json;

use super::{chunk, inbound, store, ACC, TG};
use crate::{NewOutbox, OutboxRow, Store, StoreError};

fn pending_inbound_id(s: &Store, key: &str) -> i64 {
    let p = json!({"k": key});
    s.insert_inbound(&inbound(key, &p, 1)).unwrap().unwrap()
}

/// Queues a chunk linked to inbound 1, so `outbox_for_inbound(1)` lists it.
fn queue(s: &Store, key: &str, now: i64) -> i64 {
    let o = NewOutbox {
        inbound_id: Some(1),
        ..chunk(key, key, now)
    };
    s.enqueue_outbox(&o).unwrap().unwrap()
}

fn statuses(s: &Store, inbound_id: i64) -> Vec<(String, i64)> {
    s.outbox_for_inbound(inbound_id)
        .unwrap()
        .into_iter()
        .map(|r| (r.status, r.attempts))
        .collect()
}

#[test]
fn enqueue_reply_marks_done_and_dedupes_chunks() {
    let s = store();
    let id = pending_inbound_id(&s, "u1");
    let chunks = [chunk("r:u1:0", "hello", 50), chunk("r:u1:1", "world", 50)];
    let ids = s.enqueue_reply(&chunks, id, 60).unwrap();
    assert_eq!(ids.len(), 2);
    let row = s.get_inbound(id).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.processed_at), ("done", Some(60)));
    assert_eq!(s.pending_inbound(TG, 10).unwrap(), vec![]);

    let out = s.outbox_for_inbound(id).unwrap();
    assert_eq!(
        out[0],
        OutboxRow {
            id: ids[0],
            channel: TG.into(),
            account: ACC.into(),
            chat_id: "42".into(),
            thread_id: None,
            reply_to: Some("7".into()),
            text: "hello".into(),
            dedupe_key: "r:u1:0".into(),
            inbound_id: Some(id),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: 50,
            last_error: None,
            created_at: 50,
            sent_at: None,
            platform_message_id: None,
        }
    );
    assert_eq!(out[1].text, "world");

    // The same reply again (a reprocessed message): nothing new, nothing duplicated, and
    // the first processed_at is kept.
    assert_eq!(s.enqueue_reply(&chunks, id, 70).unwrap(), Vec::<i64>::new());
    assert_eq!(s.outbox_for_inbound(id).unwrap(), out);
    assert_eq!(s.get_inbound(id).unwrap().unwrap().processed_at, Some(60));
    assert_eq!(s.outbox_counts(TG).unwrap(), (2, 0, 0));

    // A reply with no chunks still completes the message.
    let quiet = pending_inbound_id(&s, "u2");
    assert_eq!(s.enqueue_reply(&[], quiet, 80).unwrap(), Vec::<i64>::new());
    assert_eq!(s.get_inbound(quiet).unwrap().unwrap().status, "done");
}

#[test]
fn enqueue_reply_for_unknown_inbound_writes_nothing() {
    let s = store();
    let err = s
        .enqueue_reply(&[chunk("r:x:0", "x", 1)], 777, 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(ref m) if m.contains("777")));
    assert_eq!(s.outbox_counts(TG).unwrap(), (0, 0, 0));
    // The key was not consumed by the failed call.
    assert!(s.enqueue_outbox(&chunk("r:x:0", "x", 1)).unwrap().is_some());
}

#[test]
fn enqueue_outbox_dedupes_on_key() {
    let s = store();
    let o = NewOutbox {
        thread_id: Some("t9"),
        inbound_id: Some(5),
        ..chunk("k", "text", 10)
    };
    let id = s.enqueue_outbox(&o).unwrap().unwrap();
    assert_eq!(s.enqueue_outbox(&o).unwrap(), None);
    // The key is unique across channels too.
    let other = NewOutbox {
        channel: "discord",
        ..o
    };
    assert_eq!(s.enqueue_outbox(&other).unwrap(), None);
    let rows = s.outbox_for_inbound(5).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].thread_id.as_deref(), Some("t9"));
    assert_eq!(s.outbox_counts(TG).unwrap(), (1, 0, 0));
    assert_eq!(s.outbox_counts("discord").unwrap(), (0, 0, 0));
}

#[test]
fn claim_succeeds_once() {
    let s = store();
    let id = queue(&s, "k", 10);
    assert!(s.claim_outbox(id, 1_000).unwrap());
    assert!(!s.claim_outbox(id, 2_000).unwrap());
    assert!(!s.claim_outbox(9999, 1_000).unwrap());
    let row = s.get_outbox(id).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sending", 1));
    assert_eq!(row.next_attempt_at, 1_000);
    assert_eq!(s.outbox_for_inbound(1).unwrap(), [row]);
    assert_eq!(s.get_outbox(9999).unwrap(), None);
}

#[test]
fn a_future_now_cannot_make_a_row_in_flight_due_early() {
    let s = store();
    let id = queue(&s, "k", 10);
    assert!(s.claim_outbox(id, 1_000).unwrap());
    // Someone asks "is anything still queued?" with a far-future now: the row is listed
    // (and its expired-by-then lease released)...
    let all = s.due_outbox(TG, i64::MAX, 10).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    // ...but a sender on the real clock still cannot see it before the lease ends.
    assert_eq!(s.due_outbox(TG, 999, 10).unwrap(), vec![]);
    assert_eq!(s.next_outbox_due(TG).unwrap(), Some(1_000));
    // The sender in flight finishes normally.
    s.mark_outbox_sent(id, Some("m"), 500).unwrap();
    let row = s.get_outbox(id).unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.attempts, row.sent_at),
        ("sent", 1, Some(500))
    );
    assert_eq!(s.due_outbox(TG, i64::MAX, 10).unwrap(), vec![]);
}

#[test]
fn due_outbox_respects_next_attempt_at_and_returns_stale_sending_rows() {
    let s = store();
    let a = queue(&s, "a", 100);
    let b = queue(&s, "b", 200);
    let c = queue(&s, "c", 50);
    let due = |now| -> Vec<i64> {
        s.due_outbox(TG, now, 10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(due(49), Vec::<i64>::new());
    assert_eq!(due(100), [a, c]);
    // Oldest (queue order) first, and the limit applies.
    assert_eq!(due(200), [a, b, c]);
    assert_eq!(s.due_outbox(TG, 200, 2).unwrap().len(), 2);
    assert_eq!(s.due_outbox("discord", 200, 10).unwrap(), vec![]);
    assert_eq!(s.next_outbox_due(TG).unwrap(), Some(50));

    // A claimed row is invisible while its lease runs...
    assert!(s.claim_outbox(a, 1_000).unwrap());
    assert_eq!(due(999), [b, c]);
    // ...and due again once it ran out (the sender crashed mid-send).
    s.mark_outbox_sent(b, Some("m-b"), 300).unwrap();
    s.mark_outbox_sent(c, None, 300).unwrap();
    assert_eq!(s.next_outbox_due(TG).unwrap(), Some(1_000));
    let stale = s.due_outbox(TG, 1_000, 10).unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!((stale[0].id, stale[0].attempts), (a, 1));
    assert_eq!(stale[0].status, "pending");
    // It can be claimed again, by exactly one sender.
    assert!(s.claim_outbox(a, 2_000).unwrap());
    assert!(!s.claim_outbox(a, 2_000).unwrap());
    assert_eq!(s.outbox_for_inbound(1).unwrap()[0].attempts, 2);
    assert_eq!(s.next_outbox_due(TG).unwrap(), Some(2_000));
    s.mark_outbox_sent(a, Some("m-a"), 1_500).unwrap();
    assert_eq!(s.next_outbox_due(TG).unwrap(), None);
}

#[test]
fn retry_sent_failed_transitions_and_counts() {
    let s = store();
    let inb = pending_inbound_id(&s, "u");
    let chunks = [
        chunk("x0", "0", 10),
        chunk("x1", "1", 10),
        chunk("x2", "2", 10),
    ];
    let ids = s.enqueue_reply(&chunks, inb, 10).unwrap();
    // Leases far beyond the times below, so no lease runs out in this test.
    for &id in &ids {
        assert!(s.claim_outbox(id, 10_000).unwrap());
    }
    assert_eq!(s.outbox_counts(TG).unwrap(), (3, 0, 0));

    // x0: a transient error, retried later, then sent.
    s.mark_outbox_retry(ids[0], 500, "429 too many requests")
        .unwrap();
    let rows = s.outbox_for_inbound(inb).unwrap();
    assert_eq!(rows[0].status, "pending");
    assert_eq!(rows[0].next_attempt_at, 500);
    assert_eq!(rows[0].last_error.as_deref(), Some("429 too many requests"));
    assert_eq!(s.due_outbox(TG, 499, 10).unwrap(), vec![]);
    let due = s.due_outbox(TG, 500, 10).unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0]]);
    assert!(s.claim_outbox(ids[0], 10_000).unwrap());
    s.mark_outbox_sent(ids[0], Some("msg-1"), 510).unwrap();
    // x1: sent straight away. x2: a permanent error.
    s.mark_outbox_sent(ids[1], Some("msg-2"), 20).unwrap();
    s.mark_outbox_failed(ids[2], "403 bot was blocked", 30)
        .unwrap();

    let rows = s.outbox_for_inbound(inb).unwrap();
    assert_eq!(
        statuses(&s, inb),
        [("sent".into(), 2), ("sent".into(), 1), ("failed".into(), 1)]
    );
    assert_eq!(rows[0].sent_at, Some(510));
    assert_eq!(rows[0].platform_message_id.as_deref(), Some("msg-1"));
    assert_eq!(rows[1].last_error, None);
    assert_eq!(rows[2].last_error.as_deref(), Some("403 bot was blocked"));
    assert_eq!(rows[2].sent_at, None);
    assert_eq!(s.outbox_counts(TG).unwrap(), (0, 2, 1));
    assert_eq!(s.next_outbox_due(TG).unwrap(), None);

    // Late updates from a slow sender never resurrect or rewrite a finished row.
    s.mark_outbox_retry(ids[1], 900, "late").unwrap();
    s.mark_outbox_failed(ids[1], "late", 900).unwrap();
    s.mark_outbox_sent(ids[1], Some("dup"), 900).unwrap();
    s.mark_outbox_retry(ids[2], 900, "late").unwrap();
    let rows = s.outbox_for_inbound(inb).unwrap();
    assert_eq!(rows[1].status, "sent");
    assert_eq!(rows[1].sent_at, Some(20));
    assert_eq!(rows[1].platform_message_id.as_deref(), Some("msg-2"));
    assert_eq!(rows[2].status, "failed");
    assert_eq!(s.due_outbox(TG, i64::MAX, 10).unwrap(), vec![]);
    assert!(!s.claim_outbox(ids[1], 20_000).unwrap());

    for err in [
        s.mark_outbox_sent(999, None, 1).unwrap_err(),
        s.mark_outbox_retry(999, 1, "e").unwrap_err(),
        s.mark_outbox_failed(999, "e", 1).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound(ref m) if m.contains("999")));
    }

    // Pruning drops finished rows only.
    let live = s.enqueue_outbox(&chunk("live", "l", 5)).unwrap().unwrap();
    assert_eq!(s.prune_outbox(11).unwrap(), 3);
    assert_eq!(s.outbox_for_inbound(inb).unwrap(), vec![]);
    assert_eq!(s.due_outbox(TG, 5, 10).unwrap()[0].id, live);
    assert_eq!(s.outbox_counts(TG).unwrap(), (1, 0, 0));
}

#[test]
fn release_outbox_leases_makes_interrupted_sends_due_now() {
    let s = store();
    pending_inbound_id(&s, "u1");
    let sending = queue(&s, "a", 10);
    let sent = queue(&s, "b", 10);
    let pending = queue(&s, "c", 10);
    assert!(s.claim_outbox(sending, 60_000).unwrap());
    assert!(s.claim_outbox(sent, 60_000).unwrap());
    s.mark_outbox_sent(sent, Some("m"), 20).unwrap();
    // Another channel's lease is not ours to release.
    let other = s
        .enqueue_outbox(&NewOutbox {
            channel: "other",
            ..chunk("z", "z", 10)
        })
        .unwrap()
        .unwrap();
    assert!(s.claim_outbox(other, 60_000).unwrap());

    assert_eq!(s.release_outbox_leases(TG, 100).unwrap(), 1);
    let row = s.get_outbox(sending).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.next_attempt_at), ("pending", 100));
    assert_eq!(row.attempts, 1, "the interrupted attempt still counts");
    assert!(row.last_error.unwrap().contains("delivery unknown"));
    assert_eq!(s.get_outbox(sent).unwrap().unwrap().status, "sent");
    assert_eq!(s.get_outbox(pending).unwrap().unwrap().status, "pending");
    assert_eq!(s.get_outbox(other).unwrap().unwrap().status, "sending");
    let due: Vec<i64> = s
        .due_outbox(TG, 100, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(due.contains(&sending), "{due:?}");
    assert_eq!(s.release_outbox_leases(TG, 200).unwrap(), 0);
}

#[test]
fn delivery_reports_update_the_row_by_platform_id_in_order() {
    let s = store();
    let id = queue(&s, "k-delivery", 1_000);
    assert!(s.claim_outbox(id, 2_000).unwrap());
    s.mark_outbox_sent(id, Some("wamid.A"), 1_500).unwrap();
    // Unknown ids and other channels find nothing.
    assert!(!s
        .record_outbox_delivery("whatsapp", "wamid.B", "read", None)
        .unwrap());
    assert!(!s
        .record_outbox_delivery("slack", "wamid.A", "read", None)
        .unwrap());
    assert!(s
        .record_outbox_delivery("telegram", "wamid.A", "delivered", None)
        .unwrap());
    assert_eq!(
        s.outbox_delivery_status(id).unwrap().as_deref(),
        Some("delivered")
    );
    // A late `sent` never moves it back.
    s.record_outbox_delivery("telegram", "wamid.A", "sent", None)
        .unwrap();
    assert_eq!(
        s.outbox_delivery_status(id).unwrap().as_deref(),
        Some("delivered")
    );
    s.record_outbox_delivery(
        "telegram",
        "wamid.A",
        "failed",
        Some("131026: undeliverable"),
    )
    .unwrap();
    let row = s.get_outbox(id).unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert_eq!(row.last_error.as_deref(), Some("131026: undeliverable"));
    assert_eq!(s.outbox_counts("telegram").unwrap(), (0, 0, 1));
}
