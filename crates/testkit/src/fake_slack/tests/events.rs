use std::time::Duration;

use serde_json::{json, Value};

use super::{bot, post, Answer, Endpoint, Hit, TIMEOUT};
use crate::fake_slack::{sign, state::unix_now, FakeSlack, FakeSlackConfig, Tamper};

/// Waits until the endpoint saw `n` requests.
async fn wait_hits(fake: &FakeSlack, ep: &Endpoint, n: usize) -> Vec<Hit> {
    fake.wait_until(TIMEOUT, || {
        let h = ep.hits();
        (h.len() >= n).then_some(h)
    })
    .await
    .unwrap_or_else(|| panic!("expected {n} requests, got {:?}", ep.hits()))
}

/// The app-side check: the signature over the exact bytes received.
fn verify(hit: &Hit, secret: &str) -> bool {
    let (Some(ts), Some(sig)) = (
        hit.header("x-slack-request-timestamp"),
        hit.header("x-slack-signature"),
    ) else {
        return false;
    };
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (unix_now() - t).abs() <= 300);
    fresh && sign(secret, ts, &hit.body) == sig
}

async fn fast_fake() -> FakeSlack {
    FakeSlack::start_with(FakeSlackConfig::fast()).await
}

#[tokio::test]
async fn events_are_signed_event_callback_envelopes() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    let msg = fake.dm_message("U0ALICE", "hello");
    let ids = fake.deliver_message(msg.clone());
    assert_eq!(ids.len(), 1, "DMs never produce app_mention");
    let hits = wait_hits(&fake, &ep, 1).await;
    let hit = &hits[0];
    assert!(verify(hit, fake.signing_secret()), "{:?}", hit.headers);
    assert!(!verify(hit, "another-secret"));
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert!(hit.header("x-slack-retry-num").is_none());
    let body = hit.json();
    assert_eq!(body["type"], "event_callback");
    assert_eq!(body["event_id"], ids[0].as_str());
    assert_eq!(body["team_id"], "T0001");
    assert_eq!(body["api_app_id"], "A0001");
    assert!(body["event_time"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(body["authorizations"][0]["user_id"], "U0BOT");
    assert_eq!(body["authorizations"][0]["is_bot"], true);
    let ev = &body["event"];
    assert_eq!(ev, &msg);
    assert_eq!(ev["type"], "message");
    assert_eq!(ev["channel_type"], "im");
    assert_eq!(ev["user"], "U0ALICE");
    assert!(ev["channel"].as_str().unwrap().starts_with('D'));
    assert_eq!(ev["ts"], ev["event_ts"]);
    // The attempt is recorded with the app's answer.
    let attempts = fake.wait_for_attempts(1, TIMEOUT).await;
    assert_eq!(attempts[0].status, Some(200));
    assert_eq!(attempts[0].event_id, ids[0]);
    assert_eq!(attempts[0].body, hit.body);
}

#[tokio::test]
async fn a_mention_in_a_channel_arrives_as_message_and_app_mention() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    let msg = fake.channel_message("C0CHAN", "U0USER", &fake.mention("summarize"));
    assert_eq!(msg["text"], "<@U0BOT> summarize");
    assert_eq!(
        msg["blocks"][0]["elements"][0]["elements"][0]["user_id"],
        "U0BOT"
    );
    let ids = fake.deliver_message(msg.clone());
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    let hits = wait_hits(&fake, &ep, 2).await;
    let mut events: Vec<Value> = hits.iter().map(|h| h.json()).collect();
    events.sort_by_key(|e| e["event"]["type"].as_str().unwrap().to_string());
    let (mention, message) = (&events[0], &events[1]);
    assert_eq!(mention["event"]["type"], "app_mention");
    assert_eq!(message["event"]["type"], "message");
    assert_ne!(mention["event_id"], message["event_id"]);
    for key in ["ts", "channel", "user", "text", "event_ts"] {
        assert_eq!(mention["event"][key], message["event"][key], "{key}");
    }
    assert!(mention["event"].get("channel_type").is_none());
    assert_eq!(message["event"]["channel_type"], "channel");
    // No mention, no app_mention.
    let plain = fake.channel_message("C0CHAN", "U0USER", "just chatting");
    assert_eq!(fake.deliver_message(plain).len(), 1);
}

#[tokio::test]
async fn url_verification_accepts_the_three_answer_forms() {
    let fake = fast_fake().await;
    // Plain-text echo (the endpoint's default).
    let ep = Endpoint::start(vec![]).await;
    fake.verify_url(&ep.url()).await.expect("plain challenge");
    assert_eq!(fake.request_url(), Some(ep.url()));
    let hit = &ep.hits()[0];
    assert!(verify(hit, fake.signing_secret()));
    let body = hit.json();
    assert_eq!(body["type"], "url_verification");
    assert!(body["challenge"].as_str().unwrap().len() >= 32);
    assert!(body["token"].is_string());
    for form in ["json", "form"] {
        let echo = FormEcho::start(form).await;
        let other = fast_fake().await;
        other.verify_url(&echo.url()).await.expect(form);
        assert_eq!(other.request_url(), Some(echo.url()));
    }
    // A wrong echo fails and leaves no Request URL.
    let bad = Endpoint::start(vec![Answer {
        body: Some("nope".into()),
        ..Answer::ok()
    }])
    .await;
    let other = fast_fake().await;
    let err = other.verify_url(&bad.url()).await.unwrap_err();
    assert!(err.contains("challenge"), "{err}");
    assert_eq!(other.request_url(), None);
    // A non-200 answer fails too.
    let ep = Endpoint::start(vec![Answer::status(401)]).await;
    let fake3 = fast_fake().await;
    let err = fake3.verify_url(&ep.url()).await.unwrap_err();
    assert!(err.contains("401"), "{err}");
}

/// Answers url_verification with `{"challenge":…}` or `challenge=…`.
struct FormEcho {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FormEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FormEcho {
    async fn start(form: &'static str) -> FormEcho {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let Some(hit) = super::read_request(&mut s).await else {
                    continue;
                };
                let c = hit.json()["challenge"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let (ct, body) = if form == "json" {
                    ("application/json", json!({ "challenge": c }).to_string())
                } else {
                    (
                        "application/x-www-form-urlencoded",
                        format!("challenge={c}"),
                    )
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        FormEcho { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}/slack/events", self.addr)
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_retry_headers() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![Answer::status(500), Answer::status(503)]).await;
    fake.set_request_url(Some(&ep.url()));
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let hits = wait_hits(&fake, &ep, 3).await;
    assert!(hits[0].header("x-slack-retry-num").is_none());
    assert_eq!(hits[1].header("x-slack-retry-num"), Some("1"));
    assert_eq!(hits[1].header("x-slack-retry-reason"), Some("http_error"));
    assert_eq!(hits[2].header("x-slack-retry-num"), Some("2"));
    assert_eq!(hits[2].header("x-slack-retry-reason"), Some("http_error"));
    for h in &hits {
        assert!(verify(h, fake.signing_secret()), "every retry is signed");
        assert_eq!(
            h.json()["event_id"],
            id.as_str(),
            "same event_id on retries"
        );
        assert_eq!(h.body, hits[0].body, "same body on retries");
    }
    // The third attempt succeeded: no fourth.
    let attempts = fake.wait_for_attempts(3, TIMEOUT).await;
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![Some(500), Some(503), Some(200)]);
    assert_eq!(attempts[1].failure, "http_error");
    let more = fake
        .wait_until(Duration::from_millis(400), || {
            (fake.delivery_attempts().len() > 3).then_some(())
        })
        .await;
    assert!(more.is_none(), "{:?}", fake.delivery_attempts());
    assert_eq!(fake.attempts_for(&id).len(), 3);
}

#[tokio::test]
async fn slack_gives_up_after_three_retries() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![Answer::status(500); 10]).await;
    fake.set_request_url(Some(&ep.url()));
    fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let hits = wait_hits(&fake, &ep, 4).await;
    assert_eq!(hits[3].header("x-slack-retry-num"), Some("3"));
    let more = fake
        .wait_until(Duration::from_millis(500), || {
            (ep.hits().len() > 4).then_some(())
        })
        .await;
    assert!(more.is_none(), "4 deliveries in total");
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_retried_as_http_timeout() {
    let fake = fast_fake().await;
    let slow = Answer {
        delay: Duration::from_secs(5),
        ..Answer::ok()
    };
    let ep = Endpoint::start(vec![slow]).await;
    fake.set_request_url(Some(&ep.url()));
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let hits = wait_hits(&fake, &ep, 2).await;
    assert_eq!(hits[1].header("x-slack-retry-num"), Some("1"));
    assert_eq!(hits[1].header("x-slack-retry-reason"), Some("http_timeout"));
    let attempts = fake.wait_for_attempts(2, TIMEOUT).await;
    assert_eq!(attempts[0].status, None);
    assert_eq!(attempts[0].failure, "http_timeout");
    assert_eq!(attempts[1].status, Some(200));
    assert!(attempts.iter().all(|a| a.event_id == id));
}

#[tokio::test]
async fn x_slack_no_retry_stops_retries_of_an_error() {
    let fake = fast_fake().await;
    let refuse = Answer {
        headers: vec![("X-Slack-No-Retry", "1")],
        ..Answer::status(500)
    };
    let ep = Endpoint::start(vec![refuse]).await;
    fake.set_request_url(Some(&ep.url()));
    fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    wait_hits(&fake, &ep, 1).await;
    let more = fake
        .wait_until(Duration::from_millis(400), || {
            (ep.hits().len() > 1).then_some(())
        })
        .await;
    assert!(more.is_none(), "no retry after X-Slack-No-Retry: 1");
}

#[tokio::test]
async fn connection_failures_are_retried_as_connection_failed() {
    let fake = fast_fake().await;
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/slack/events", l.local_addr().unwrap());
    drop(l);
    fake.set_request_url(Some(&url));
    fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let attempts = fake.wait_for_attempts(4, TIMEOUT).await;
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.status.is_none()));
    assert_eq!(attempts[0].failure, "connection_failed");
    assert_eq!(attempts[1].retry_reason, "connection_failed");
    assert_eq!(attempts[3].retry_num, 3);
}

#[tokio::test]
async fn tampered_requests_for_negative_tests() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    let secret = fake.signing_secret().to_string();
    let cases = [
        (Tamper::None, true),
        (Tamper::WrongSecret, false),
        (Tamper::StaleTimestamp, false),
        (Tamper::TimestampOffset(-301), false),
        (Tamper::TimestampOffset(-100), true),
        (Tamper::AlteredBody, false),
        (Tamper::MissingSignature, false),
        (Tamper::MissingTimestamp, false),
        (Tamper::MalformedSignature, false),
    ];
    for (i, (tamper, valid)) in cases.iter().enumerate() {
        let ev = fake.channel_message("C0CHAN", "U0USER", "hi");
        let attempt = fake.send_tampered(ev, tamper.clone()).await;
        assert_eq!(attempt.status, Some(200));
        let hit = &ep.hits()[i];
        assert_eq!(
            verify(hit, &secret),
            *valid,
            "{tamper:?}: {:?}",
            hit.headers
        );
        assert_eq!(attempt.body, hit.body, "the attempt records the bytes sent");
    }
    // A stale timestamp is 6 minutes old but correctly signed for it.
    let stale = &fake.delivery_attempts()[2];
    let ts: i64 = stale.timestamp.parse().unwrap();
    assert!((unix_now() - ts - 360).abs() <= 2);
    assert_eq!(
        stale.signature,
        sign(&secret, &stale.timestamp, &stale.body)
    );
    // The altered body no longer matches its signature; the signature is over the original.
    let altered = &fake.delivery_attempts()[5];
    assert_ne!(
        altered.signature,
        sign(&secret, &altered.timestamp, &altered.body)
    );
    // Slash commands: form bodies are signed as they are.
    let form = b"command=%2Fclaw&text=hi&user_id=U0USER";
    let a = fake
        .post_signed(form, "application/x-www-form-urlencoded", Tamper::None)
        .await;
    assert_eq!(a.status, Some(200));
    let hit = ep.hits().last().cloned().unwrap();
    assert_eq!(hit.body, form);
    assert_eq!(
        hit.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(verify(&hit, &secret));
}

#[tokio::test]
async fn event_builders_have_slack_shapes() {
    let fake = fast_fake().await;
    // A thread under the bot's own post: parent_user_id is the bot.
    let parent = post(&fake, "C0CHAN", "root").await["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = fake.thread_reply("C0CHAN", "U0USER", "and the logs?", &parent);
    assert_eq!(reply["thread_ts"], parent.as_str());
    assert_eq!(reply["parent_user_id"], "U0BOT");
    assert_ne!(reply["ts"], parent.as_str());
    assert!(reply["client_msg_id"].is_string());
    // Private channel and MPIM kinds.
    assert_eq!(
        fake.channel_message("G0PRIV", "U0USER", "x")["channel_type"],
        "group"
    );
    let mpim = bot(&fake, "conversations.open", json!({"users": "U0A,U0B"})).await;
    let mpim_id = mpim.body["channel"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        fake.channel_message(&mpim_id, "U0A", "x")["channel_type"],
        "mpim"
    );
    // Bots.
    let other = fake.bot_message("C0CHAN", "B0OTHER", "U0OTHERBOT", "beep");
    assert_eq!(other["bot_id"], "B0OTHER");
    assert!(other.get("subtype").is_none());
    let legacy = fake.legacy_bot_message("C0CHAN", "B0OLD", "beep");
    assert_eq!(legacy["subtype"], "bot_message");
    let own = fake.own_bot_message("C0CHAN", "mine", None);
    assert_eq!(
        (own["user"].as_str(), own["bot_id"].as_str()),
        (Some("U0BOT"), Some("B0BOT"))
    );
    assert_eq!(own["app_id"], "A0001");
    // Edits and deletes of a delivered message.
    let original = fake.channel_message("C0CHAN", "U0USER", "fixd typo");
    let ts = original["ts"].as_str().unwrap().to_string();
    fake.deliver_event(original);
    let changed = fake.message_changed("C0CHAN", &ts, "fixed typo");
    assert_eq!(changed["subtype"], "message_changed");
    assert_eq!(changed["hidden"], true);
    assert_eq!(changed["message"]["text"], "fixed typo");
    assert_eq!(changed["message"]["ts"], ts.as_str());
    assert_eq!(changed["message"]["edited"]["user"], "U0USER");
    assert_eq!(changed["previous_message"]["text"], "fixd typo");
    let deleted = fake.message_deleted("C0CHAN", &ts);
    assert_eq!(deleted["subtype"], "message_deleted");
    assert_eq!(deleted["deleted_ts"], ts.as_str());
    let join = fake.subtype_message("C0CHAN", "U0USER", "channel_join", "<@U0USER> has joined");
    assert_eq!(join["subtype"], "channel_join");
    // The envelope around any event.
    let (env, id) =
        fake.envelope(json!({"type": "reaction_added", "event_ts": "1715600000.000100"}));
    assert_eq!(env["event_id"], id.as_str());
    assert_eq!(env["event_time"], 1715600000);
}

#[tokio::test]
async fn bot_posts_can_be_echoed_back_as_message_events() {
    let fake = FakeSlack::start_with(FakeSlackConfig {
        echo_bot_messages: true,
        ..FakeSlackConfig::fast()
    })
    .await;
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    let ts = post(&fake, "C0CHAN", "the answer").await["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let hits = wait_hits(&fake, &ep, 1).await;
    let ev = &hits[0].json()["event"];
    assert_eq!(ev["type"], "message");
    assert_eq!(ev["ts"], ts.as_str());
    assert_eq!(ev["bot_id"], "B0BOT");
    assert_eq!(ev["user"], "U0BOT");
    assert_eq!(ev["text"], "the answer");
    assert!(verify(&hits[0], fake.signing_secret()));
}

#[tokio::test]
async fn bot_edits_can_be_echoed_as_message_changed() {
    let fake = FakeSlack::start_with(FakeSlackConfig {
        echo_bot_messages: true,
        ..FakeSlackConfig::fast()
    })
    .await;
    let ts = post(&fake, "C0CHAN", "draft").await["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    bot(
        &fake,
        "chat.update",
        json!({"channel": "C0CHAN", "ts": ts, "text": "final"}),
    )
    .await
    .expect_ok();
    let hits = wait_hits(&fake, &ep, 1).await;
    let ev = &hits[0].json()["event"];
    assert_eq!(ev["subtype"], "message_changed");
    assert_eq!(ev["message"]["ts"], ts.as_str());
    assert_eq!(ev["message"]["text"], "final");
    assert_eq!(ev["message"]["bot_id"], "B0BOT");
    assert_eq!(ev["previous_message"]["text"], "draft");
}

#[tokio::test]
async fn slash_commands_are_signed_form_posts() {
    let fake = fast_fake().await;
    let ep = Endpoint::start(vec![]).await;
    fake.set_request_url(Some(&ep.url()));
    let cmd = fake.slash_command("C0CHAN", "U0USER", "/claw", "hello world & more");
    let body = crate::fake_slack::form_body(&cmd);
    assert!(body.contains("command=%2Fclaw"), "{body}");
    assert!(body.contains("text=hello%20world%20%26%20more"), "{body}");
    let a = fake
        .post_signed(
            body.as_bytes(),
            "application/x-www-form-urlencoded",
            Tamper::None,
        )
        .await;
    assert_eq!(a.status, Some(200));
    let hit = &ep.hits()[0];
    assert!(verify(hit, fake.signing_secret()));
    assert_eq!(hit.body, body.as_bytes());
}

#[tokio::test]
async fn url_private_needs_the_bot_token() {
    let fake = fast_fake().await;
    let file = fake.add_file("notes.txt", "text/plain", b"file bytes");
    let msg = fake.file_share_message("C0CHAN", "U0USER", "see attached", vec![file.clone()]);
    assert_eq!(msg["subtype"], "file_share");
    assert_eq!(msg["files"][0]["id"], file["id"]);
    let get = |url: &str, token: Option<&str>| {
        let url = url.to_string();
        let auth = token.map(|t| format!("Bearer {t}"));
        async move {
            let target = crate::fake_telegram::client::split_url(&url).unwrap();
            let mut headers = vec![];
            if let Some(a) = &auth {
                headers.push(("Authorization", a.as_str()));
            }
            crate::fake_telegram::client::http_request(&target, "GET", &headers, b"", TIMEOUT)
                .await
                .unwrap()
        }
    };
    for key in ["url_private", "url_private_download"] {
        let url = file[key].as_str().unwrap();
        let r = get(url, Some(fake.bot_token())).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"file bytes"[..]),
            "{key}"
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let r = get(url, None).await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("Sign in"), "{key}: {}", r.text());
        let r = get(url, Some("xoxb-wrong")).await;
        assert!(r.text().contains("Sign in"));
    }
}
