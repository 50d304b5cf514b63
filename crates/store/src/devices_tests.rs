use super::*;

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn device(id: &str, key: &str, scopes: &[&str]) -> DeviceRow {
    DeviceRow {
        device_id: id.into(),
        public_key: key.into(),
        display_name: Some("tui".into()),
        platform: Some("linux".into()),
        device_family: None,
        client_id: "openclaw-tui".into(),
        client_mode: "ui".into(),
        role: "operator".into(),
        approved_scopes: v(scopes),
        approved_via: "manual".into(),
        created_at: 1,
        approved_at: 2,
        last_seen_at: 3,
        remote_ip: None,
    }
}

fn request(id: &str, dev: &str, scopes: &[&str], ts: i64) -> DeviceRequestRow {
    DeviceRequestRow {
        request_id: id.into(),
        device_id: dev.into(),
        public_key: "k".into(),
        display_name: None,
        platform: None,
        device_family: None,
        client_id: "openclaw-tui".into(),
        client_mode: "ui".into(),
        role: "operator".into(),
        scopes: v(scopes),
        remote_ip: Some("203.0.113.9".into()),
        reason: "not-paired".into(),
        ts,
    }
}

fn token(dev: &str, byte: u8) -> DeviceTokenRow {
    DeviceTokenRow {
        device_id: dev.into(),
        role: "operator".into(),
        token_sha256: [byte; 32],
        scopes: v(&["operator.read"]),
        created_at: 5,
        last_used_at: None,
    }
}

#[test]
fn pairing_stores_the_device_and_drops_its_request() {
    let s = Store::open_in_memory().unwrap();
    s.put_device_request(&request("r1", "d1", &["operator.read"], 10), 8, 0)
        .unwrap()
        .unwrap();
    s.pair_device(&device("d1", "k", &["operator.read"]))
        .unwrap();
    assert_eq!(
        s.device("d1").unwrap().unwrap().approved_scopes,
        v(&["operator.read"])
    );
    assert!(s.device_request("r1").unwrap().is_none());
    assert_eq!(s.devices().unwrap().len(), 1);
}

#[test]
fn tokens_need_a_device_and_die_with_its_key() {
    let s = Store::open_in_memory().unwrap();
    assert!(s.put_device_token(&token("d1", 1)).is_err());
    s.pair_device(&device("d1", "k", &["operator.read"]))
        .unwrap();
    s.put_device_token(&token("d1", 1)).unwrap();
    s.touch_device("d1", "operator", 99).unwrap();
    let t = s.device_token("d1", "operator").unwrap().unwrap();
    assert_eq!(t.token_sha256, [1; 32]);
    assert_eq!(t.last_used_at, Some(99));
    assert_eq!(s.device("d1").unwrap().unwrap().last_seen_at, 99);
    // Same key: the token stays.
    s.pair_device(&device("d1", "k", &["operator.admin"]))
        .unwrap();
    assert_eq!(s.device_tokens("d1").unwrap().len(), 1);
    // Another key: the token goes.
    s.pair_device(&device("d1", "k2", &["operator.read"]))
        .unwrap();
    assert!(s.device_tokens("d1").unwrap().is_empty());
    s.put_device_token(&token("d1", 2)).unwrap();
    assert!(s.delete_device("d1").unwrap().is_some());
    assert!(s.device_token("d1", "operator").unwrap().is_none());
    assert!(s.delete_device("d1").unwrap().is_none());
}

#[test]
fn a_changed_request_gets_a_new_id_and_the_cap_holds() {
    let s = Store::open_in_memory().unwrap();
    let r = s
        .put_device_request(&request("r1", "d1", &["operator.read"], 10), 2, 0)
        .unwrap()
        .unwrap();
    assert_eq!(r.request_id, "r1");
    // Same ask: same id, refreshed.
    let r = s
        .put_device_request(&request("r2", "d1", &["operator.read"], 20), 2, 0)
        .unwrap()
        .unwrap();
    assert_eq!((r.request_id.as_str(), r.ts), ("r1", 20));
    // Wider ask: the old id is gone.
    let r = s
        .put_device_request(&request("r3", "d1", &["operator.admin"], 30), 2, 0)
        .unwrap()
        .unwrap();
    assert_eq!(r.request_id, "r3");
    assert!(s.device_request("r1").unwrap().is_none());
    s.put_device_request(&request("r4", "d2", &[], 30), 2, 0)
        .unwrap()
        .unwrap();
    assert!(s
        .put_device_request(&request("r5", "d3", &[], 30), 2, 0)
        .unwrap()
        .is_none());
    // Expired requests make room.
    assert!(s
        .put_device_request(&request("r5", "d3", &[], 40), 2, 31)
        .unwrap()
        .is_some());
    assert_eq!(s.device_requests(0).unwrap().len(), 1);
    assert_eq!(
        s.delete_device_request("r5").unwrap().unwrap().device_id,
        "d3"
    );
    assert!(s.delete_device_request("r5").unwrap().is_none());
}

#[test]
fn import_is_idempotent() {
    let s = Store::open_in_memory().unwrap();
    let d = [device("d1", "k", &["operator.read"])];
    let t = [token("d1", 7)];
    let r = [request("r1", "d2", &["operator.read"], 10)];
    s.import_devices(&d, &t, &r).unwrap();
    s.import_devices(&d, &t, &r).unwrap();
    assert_eq!(s.devices().unwrap(), d.to_vec());
    assert_eq!(s.device_tokens("d1").unwrap(), t.to_vec());
    assert_eq!(s.device_requests(0).unwrap(), r.to_vec());
}
