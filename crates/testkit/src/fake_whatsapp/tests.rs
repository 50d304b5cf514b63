use super::*;
use crate::fake_telegram::client::{http_request, split_url};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Mutex as StdMutex;

const T: Duration = Duration::from_secs(10);

/// Graph call through a raw HTTP client: (status, body).
async fn graph(fake: &FakeWhatsApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}{path}", fake.graph_base_url());
    let target = split_url(&url).unwrap();
    let auth = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let r = http_request(&target, "POST", &headers, body.to_string().as_bytes(), T)
        .await
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn messages_path(fake: &FakeWhatsApp) -> String {
    format!("/v23.0/{}/messages", fake.phone_number_id())
}

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": false, "body": body}})
}

/// A stand-in for the gateway's webhook route: records each request and answers with the
/// queued statuses (then 200); checks the signature like a correct receiver would.
/// (method, uri, signature header, body).
type Received = (String, String, Option<String>, Vec<u8>);

#[derive(Default)]
struct Receiver {
    requests: StdMutex<Vec<Received>>,
    answers: StdMutex<VecDeque<u16>>,
}

async fn start_receiver(rx: Arc<Receiver>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::resettable::accept_loop(
        listener,
        false,
        move |_reset, req: hyper::Request<hyper::body::Incoming>| {
            let rx = rx.clone();
            async move {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let sig = req
                    .headers()
                    .get("x-hub-signature-256")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                rx.requests
                    .lock()
                    .unwrap()
                    .push((method, uri.clone(), sig, body));
                let status = rx.answers.lock().unwrap().pop_front().unwrap_or(200);
                // The verification GET: echo the challenge when the token matches.
                let out = if let Some(q) = uri.split_once('?').map(|x| x.1) {
                    let get = |k: &str| {
                        q.split('&')
                            .find_map(|p| p.strip_prefix(&format!("{k}=")[..]))
                            .unwrap_or("")
                            .to_string()
                    };
                    if get("hub.verify_token") == DEFAULT_VERIFY_TOKEN {
                        get("hub.challenge")
                    } else {
                        return Ok::<_, std::io::Error>(
                            hyper::Response::builder()
                                .status(403)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        );
                    }
                } else {
                    String::new()
                };
                Ok(hyper::Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(out)))
                    .unwrap())
            }
        },
    ));
    format!("http://{addr}/whatsapp/webhook")
}

#[test]
fn signature_test_vectors() {
    // channels spec §8.2.
    assert_eq!(
        sign(
            "test_app_secret",
            br#"{"object":"whatsapp_business_account","entry":[]}"#
        ),
        "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"
    );
    assert_eq!(
        sign("secret", b"test"),
        "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    );
}

#[test]
fn meta_json_escapes_non_ascii_like_meta() {
    let v = json!({"text": {"body": "wow 😮 café"}});
    let s = String::from_utf8(meta_json(&v)).unwrap();
    assert_eq!(s, r#"{"text":{"body":"wow \ud83d\ude2e caf\u00e9"}}"#);
    assert!(s.is_ascii());
    // It is still the same JSON.
    assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
}

#[tokio::test]
async fn token_and_phone_number_id_are_checked() {
    let fake = FakeWhatsApp::start().await;
    fake.open_window("16505551234");
    let (s, b) = graph(
        &fake,
        "wrong",
        &messages_path(&fake),
        text("16505551234", "hi"),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (401, Some(190)));
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        "/v23.0/999/messages",
        text("16505551234", "hi"),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(100)));
    assert!(b["error"]["fbtrace_id"].is_string());
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", "hi"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["messages"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("wamid."));
    assert_eq!(b["contacts"][0]["wa_id"], "16505551234");
    fake.expire_token();
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", "hi"),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (401, Some(190)));
    assert_eq!(fake.sent_messages().len(), 1);
}

#[tokio::test]
async fn the_24_hour_window_follows_the_fake_clock() {
    let fake = FakeWhatsApp::start().await;
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("+16505551234", "hi"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_i64()),
        (400, Some(131047)),
        "never wrote: outside"
    );
    assert!(b["error"]["error_data"]["details"]
        .as_str()
        .unwrap()
        .contains("24 hours"));
    fake.open_window("16505551234");
    let (s, _) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("+16505551234", "hi"),
    )
    .await;
    assert_eq!(s, 200);
    fake.advance_clock(WINDOW_SECS + 60);
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", "later"),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(131047)));
    let big = "x".repeat(MAX_TEXT_BODY + 1);
    fake.open_window("16505551234");
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", &big),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_i64()), (400, Some(100)));
}

#[tokio::test]
async fn injected_errors_use_metas_codes_and_statuses() {
    let fake = FakeWhatsApp::start().await;
    fake.open_window("16505551234");
    for (code, status) in [
        (130429, 429),
        (131056, 400),
        (4, 429),
        (80007, 400),
        (131000, 500),
        (2, 503),
        (190, 401),
    ] {
        fake.fail_next(Kind::Text, Fault::Code(code));
        let (s, b) = graph(
            &fake,
            DEFAULT_TOKEN,
            &messages_path(&fake),
            text("16505551234", "hi"),
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_i64()),
            (status, Some(code)),
            "{b}"
        );
        assert_eq!(b["error"]["error_data"]["messaging_product"], "whatsapp");
    }
    let calls = fake.calls_of(Kind::Text);
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[0].error_code, Some(130429));
    assert!(fake.sent_messages().is_empty());
}

#[tokio::test]
async fn meta_side_verifies_signs_batches_redelivers_and_sends_statuses() {
    let fake = FakeWhatsApp::start().await;
    let rx = Arc::new(Receiver::default());
    let url = start_receiver(rx.clone()).await;
    fake.set_webhook_url(Some(&url));

    assert_eq!(
        fake.verify_webhook(&url, None, "1158201444").await,
        (200, "1158201444".into())
    );
    assert_eq!(
        fake.verify_webhook(&url, Some("nope"), "1158201444")
            .await
            .0,
        403
    );

    // A batch: two entries, the first with two messages (one with an emoji).
    let m1 = fake.text_message("16505551234", "Hi 😮");
    let m2 = fake.message("16505551234", "image", json!({"image": {"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "receipt"}}));
    let m3 = fake.text_message("447700900123", "hello");
    let payload = fake.envelope(&[
        fake.change_value(&[m1.clone(), m2], &[]),
        fake.change_value(&[m3], &[]),
    ]);
    rx.answers.lock().unwrap().push_back(500);
    let attempts = fake.deliver(&payload, T).await;
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        [500, 200]
    );
    let (_, _, sig, body) = rx.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(sig.unwrap(), sign(DEFAULT_APP_SECRET, &body));
    let s = String::from_utf8(body).unwrap();
    assert!(s.contains(r"Hi \ud83d\ude2e"), "{s}");
    assert_eq!(
        serde_json::from_str::<Value>(&s).unwrap()["entry"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Duplicates and tampering.
    let dup = fake.post(&payload).await;
    assert_eq!(dup.body, attempts[1].body);
    let bad = fake.post_tampered(&payload, Tamper::MissingSignature).await;
    assert!(bad.signature.is_none());
    let utf8 = fake.post_tampered(&payload, Tamper::ReserialisedUtf8).await;
    assert_ne!(
        utf8.signature.unwrap(),
        sign(DEFAULT_APP_SECRET, &utf8.body)
    );

    // The sender is inside the window now; mark-read works for the delivered message only.
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": m1["id"], "typing_indicator": {"type": "text"}});
    let (s, b) = graph(&fake, DEFAULT_TOKEN, &messages_path(&fake), read).await;
    assert_eq!((s, b), (200, json!({"success": true})));
    let unknown =
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.nope"});
    assert_eq!(
        graph(&fake, DEFAULT_TOKEN, &messages_path(&fake), unknown)
            .await
            .0,
        400
    );
    assert_eq!(fake.calls_of(Kind::Typing).len(), 1);
    assert_eq!(fake.calls_of(Kind::Read).len(), 1);

    // A send is followed by sent → delivered → read webhooks.
    let (s, b) = graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", "answer"),
    )
    .await;
    assert_eq!(s, 200);
    let wamid = b["messages"][0]["id"].as_str().unwrap().to_string();
    let statuses = fake
        .wait_until(T, || {
            let got: Vec<String> = rx
                .requests
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(_, _, _, b)| serde_json::from_slice::<Value>(b).ok())
                .filter_map(|v| {
                    let st = &v["entry"][0]["changes"][0]["value"]["statuses"][0];
                    (st["id"] == wamid.as_str()).then(|| st["status"].as_str().unwrap().to_string())
                })
                .collect();
            (got.len() == 3).then_some(got)
        })
        .await
        .expect("status webhooks");
    assert_eq!(statuses, ["sent", "delivered", "read"]);

    // A failed status carries Meta's errors[].
    fake.set_status_plan(StatusPlan::Failed(131026));
    graph(
        &fake,
        DEFAULT_TOKEN,
        &messages_path(&fake),
        text("16505551234", "again"),
    )
    .await;
    let failed = fake
        .wait_until(T, || {
            fake.deliveries().iter().find_map(|d| {
                let v: Value = serde_json::from_slice(&d.body).ok()?;
                let st = v["entry"][0]["changes"][0]["value"]["statuses"][0].clone();
                (st["status"] == "failed").then_some(st)
            })
        })
        .await
        .expect("failed status");
    assert_eq!(failed["errors"][0]["code"], 131026);
}
