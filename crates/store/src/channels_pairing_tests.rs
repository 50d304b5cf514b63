use serde_json::{json, Value};

use super::{store, ACC, TG};
use crate::{PairingOutcome, PairingRequest, Store, StoreError};

const TTL: i64 = 1_000;
const MAX: usize = 3;

/// Hands out the given codes in order.
fn codes(list: &[&str]) -> impl FnMut() -> String {
    let mut it = list
        .iter()
        .map(|c| (*c).to_owned())
        .collect::<Vec<_>>()
        .into_iter();
    move || it.next().expect("gen_code called too often")
}

fn upsert(s: &Store, sender: &str, now: i64, gen: &mut dyn FnMut() -> String) -> PairingOutcome {
    let meta = json!({ "username": sender });
    s.upsert_pairing_request(TG, ACC, sender, &meta, now, TTL, MAX, gen)
        .unwrap()
}

fn created(o: PairingOutcome) -> PairingRequest {
    match o {
        PairingOutcome::Created(r) => r,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn senders(reqs: &[PairingRequest]) -> Vec<&str> {
    reqs.iter().map(|r| r.sender_id.as_str()).collect()
}

#[test]
fn created_existing_cap_and_expiry() {
    let s = store();
    let mut gen = codes(&["AAAA1111", "BBBB2222", "CCCC3333", "DDDD4444"]);
    let first = created(upsert(&s, "u1", 100, &mut gen));
    assert_eq!(
        first,
        PairingRequest {
            channel: TG.into(),
            account: ACC.into(),
            sender_id: "u1".into(),
            code: "AAAA1111".into(),
            created_at: 100,
            last_seen_at: 100,
            meta: json!({"username": "u1"}),
        }
    );
    // The same sender again keeps its code; only last_seen_at moves.
    match upsert(&s, "u1", 150, &mut gen) {
        PairingOutcome::Existing(r) => {
            assert_eq!(r.code, "AAAA1111");
            assert_eq!((r.created_at, r.last_seen_at), (100, 150));
        }
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_eq!(created(upsert(&s, "u2", 200, &mut gen)).code, "BBBB2222");
    assert_eq!(created(upsert(&s, "u3", 300, &mut gen)).code, "CCCC3333");
    // Three pending for this account: a fourth sender is refused, no code consumed.
    assert_eq!(upsert(&s, "u4", 400, &mut gen), PairingOutcome::CapReached);
    // Another account has its own cap.
    let other = s
        .upsert_pairing_request(TG, "work", "u4", &Value::Null, 400, TTL, MAX, &mut gen)
        .unwrap();
    assert_eq!(created(other).code, "DDDD4444");
    let listed = s.list_pairing_requests(Some(TG), 400, TTL).unwrap();
    assert_eq!(senders(&listed), ["u1", "u2", "u3", "u4"]);
    assert_eq!(listed[0].last_seen_at, 150);

    // u1 (created at 100) is alive up to 1100 inclusive and expired after.
    let mut gen = codes(&["EEEE5555"]);
    assert_eq!(
        upsert(&s, "u5", 1_100, &mut gen),
        PairingOutcome::CapReached
    );
    let u5 = created(upsert(&s, "u5", 1_101, &mut gen));
    assert_eq!((u5.code.as_str(), u5.created_at), ("EEEE5555", 1_101));
    let listed = s.list_pairing_requests(Some(TG), 1_101, TTL).unwrap();
    assert_eq!(senders(&listed), ["u2", "u3", "u4", "u5"]);
    // An expired sender who writes again gets a fresh request and code (u2 and u3 have
    // expired by now as well).
    let mut gen = codes(&["FFFF6666"]);
    let again = created(upsert(&s, "u1", 1_301, &mut gen));
    assert_eq!((again.code.as_str(), again.created_at), ("FFFF6666", 1_301));
    let listed = s.list_pairing_requests(None, 1_301, TTL).unwrap();
    assert_eq!(senders(&listed), ["u4", "u5", "u1"]);
}

#[test]
fn colliding_codes_are_regenerated() {
    let s = store();
    let mut gen = codes(&["SAME0000"]);
    created(upsert(&s, "u1", 1, &mut gen));
    // The generator repeats a pending code (any case) and an empty one before a fresh one.
    let mut gen = codes(&["SAME0000", "same0000", " ", "new00000"]);
    assert_eq!(created(upsert(&s, "u2", 2, &mut gen)).code, "NEW00000");
    // Codes only need to be unique within a channel.
    let mut gen = codes(&["SAME0000"]);
    let r = s
        .upsert_pairing_request("discord", ACC, "u1", &Value::Null, 3, TTL, MAX, &mut gen)
        .unwrap();
    assert_eq!(created(r).code, "SAME0000");
    // A generator that never yields a fresh code is an error, not a hang.
    let mut stuck = || "SAME0000".to_owned();
    let err = s
        .upsert_pairing_request(TG, ACC, "u3", &Value::Null, 4, TTL, MAX, &mut stuck)
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(s.list_pairing_requests(Some(TG), 4, TTL).unwrap().len(), 2);
    assert_eq!(s.list_pairing_requests(None, 4, TTL).unwrap().len(), 3);
}

#[test]
fn approve_is_case_insensitive_removes_the_request_and_allows_the_sender() {
    let s = store();
    let mut gen = codes(&["K7QX2MPA", "ZZZZ9999"]);
    let req = created(upsert(&s, "u1", 100, &mut gen));
    created(upsert(&s, "u2", 100, &mut gen));
    assert!(!s.is_sender_allowed(TG, ACC, "u1").unwrap());
    // Wrong channel: not found, nothing changes.
    assert_eq!(
        s.approve_pairing("discord", "K7QX2MPA", 200, TTL).unwrap(),
        None
    );

    let approved = s.approve_pairing(TG, " k7qx2mpa ", 200, TTL).unwrap();
    assert_eq!(approved, Some(req));
    assert!(s.is_sender_allowed(TG, ACC, "u1").unwrap());
    assert!(!s.is_sender_allowed(TG, "work", "u1").unwrap());
    assert!(!s.is_sender_allowed(TG, ACC, "u2").unwrap());
    let left = s.list_pairing_requests(Some(TG), 200, TTL).unwrap();
    assert_eq!(senders(&left), ["u2"]);
    // The code is used up.
    assert_eq!(s.approve_pairing(TG, "K7QX2MPA", 201, TTL).unwrap(), None);
    assert_eq!(
        s.list_allowed_senders(TG).unwrap(),
        [(ACC.to_owned(), "u1".to_owned(), 200)]
    );
    assert_eq!(s.list_allowed_senders("discord").unwrap(), vec![]);

    s.approve_pairing(TG, "zzzz9999", 300, TTL)
        .unwrap()
        .unwrap();
    assert_eq!(
        s.list_allowed_senders(TG).unwrap(),
        [
            (ACC.to_owned(), "u1".to_owned(), 200),
            (ACC.to_owned(), "u2".to_owned(), 300)
        ]
    );
    assert_eq!(s.list_pairing_requests(None, 300, TTL).unwrap(), vec![]);
}

#[test]
fn approve_with_an_expired_code_returns_none() {
    let s = store();
    let mut gen = codes(&["OLDC0DE1"]);
    created(upsert(&s, "u1", 100, &mut gen));
    assert_eq!(s.approve_pairing(TG, "OLDC0DE1", 1_101, TTL).unwrap(), None);
    assert!(!s.is_sender_allowed(TG, ACC, "u1").unwrap());
    assert_eq!(s.list_allowed_senders(TG).unwrap(), vec![]);
    assert_eq!(
        s.list_pairing_requests(Some(TG), 1_101, TTL).unwrap(),
        vec![]
    );
    // Within the ttl the same code would have worked.
    assert!(s
        .approve_pairing(TG, "oldc0de1", 1_100, TTL)
        .unwrap()
        .is_some());
}

#[test]
fn pairing_and_allow_list_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = Store::open(&path).unwrap();
        let mut gen = codes(&["AAAA1111", "BBBB2222"]);
        created(upsert(&s, "u1", 10, &mut gen));
        created(upsert(&s, "u2", 10, &mut gen));
        s.approve_pairing(TG, "AAAA1111", 20, TTL).unwrap().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert!(s.is_sender_allowed(TG, ACC, "u1").unwrap());
    let left = s.list_pairing_requests(Some(TG), 30, TTL).unwrap();
    assert_eq!(
        (senders(&left), left[0].code.as_str()),
        (vec!["u2"], "BBBB2222")
    );
}

#[test]
fn take_pairing_approves_or_dismisses_one_account_request() {
    let s = store();
    let mut gen = codes(&["AAAA1111", "BBBB2222"]);
    created(upsert(&s, "u1", 100, &mut gen));
    created(upsert(&s, "u2", 100, &mut gen));
    // Another account's code does not match; nor does an expired one.
    assert!(s
        .take_pairing(TG, Some("other"), "AAAA1111", true, 200, TTL)
        .unwrap()
        .is_none());
    // Dismiss: the request goes, the sender is not allowed.
    let r = s
        .take_pairing(TG, Some(ACC), "bbbb2222", false, 200, TTL)
        .unwrap()
        .unwrap();
    assert_eq!(r.sender_id, "u2");
    assert!(!s.is_sender_allowed(TG, ACC, "u2").unwrap());
    // Approve (case-insensitive): the sender is allowed, the code works once.
    let r = s
        .take_pairing(TG, Some(ACC), "aaaa1111", true, 200, TTL)
        .unwrap()
        .unwrap();
    assert_eq!(r.sender_id, "u1");
    assert!(s.is_sender_allowed(TG, ACC, "u1").unwrap());
    assert!(s
        .take_pairing(TG, Some(ACC), "AAAA1111", true, 200, TTL)
        .unwrap()
        .is_none());
    assert!(s
        .list_pairing_requests(Some(TG), 200, TTL)
        .unwrap()
        .is_empty());
    // Expired requests cannot be taken.
    let mut gen = codes(&["CCCC3333"]);
    created(upsert(&s, "u3", 300, &mut gen));
    assert!(s
        .take_pairing(TG, Some(ACC), "CCCC3333", true, 300 + TTL + 1, TTL)
        .unwrap()
        .is_none());
}
