use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::{call_json, TIMEOUT};
use crate::fake_slack::{FakeSlack, FakeSlackConfig};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn fast_fake() -> FakeSlack {
    FakeSlack::start_with(FakeSlackConfig::fast()).await
}

async fn open_url(fake: &FakeSlack) -> String {
    let app = fake.app_token().to_string();
    let r = call_json(fake, "apps.connections.open", Some(&app), json!({})).await;
    r.expect_ok()["url"].as_str().unwrap().to_string()
}

/// Opens a connection; returns it and its `hello`.
async fn connect(fake: &FakeSlack) -> (Ws, Value) {
    let url = open_url(fake).await;
    let (mut ws, _) = connect_async(url.as_str()).await.expect("connect");
    let hello = next_json(&mut ws).await;
    (ws, hello)
}

/// The next text frame as JSON (control frames skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn ack(ws: &mut Ws, envelope: &Value) {
    let frame = json!({"envelope_id": envelope["envelope_id"]}).to_string();
    ws.send(Message::text(frame)).await.expect("send ack");
}

/// Nothing arrives on `ws` for `d` (the socket stays open and silent).
async fn silent_for(ws: &mut Ws, d: Duration) -> bool {
    tokio::time::timeout(d, ws.next()).await.is_err()
}

#[tokio::test]
async fn hello_and_single_use_tickets() {
    let fake = fast_fake().await;
    let url = open_url(&fake).await;
    let (mut ws, _) = connect_async(url.as_str()).await.expect("connect");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], "A0001");
    assert!(hello["debug_info"]["host"].is_string());
    assert!(hello["debug_info"]["approximate_connection_time"].is_number());
    assert_eq!(fake.open_connections(), 1);
    // The same URL again is refused: tickets are single-use.
    let again = connect_async(url.as_str()).await;
    assert!(again.is_err(), "a reused ticket must be refused");
    let unknown = format!("ws://{}/link/?ticket=not-a-ticket", fake.addr());
    assert!(connect_async(unknown.as_str()).await.is_err());
    assert_eq!(fake.open_connections(), 1);
    // A second connection with a fresh ticket counts both.
    let (_ws2, hello2) = connect(&fake).await;
    assert_eq!(hello2["num_connections"], 2);
    assert_eq!(fake.open_connections(), 2);
    assert_eq!(fake.connections().len(), 2);
}

#[tokio::test]
async fn envelopes_carry_the_event_callback_and_are_acked() {
    let fake = fast_fake().await;
    // Queued before any connection exists, delivered once one opens.
    let id = fake.deliver_event(fake.dm_message("U0ALICE", "hello"));
    assert_eq!(fake.pending_envelopes().len(), 1);
    let (mut ws, _) = connect(&fake).await;
    let env = next_json(&mut ws).await;
    assert_eq!(env["type"], "events_api");
    assert_eq!(env["accepts_response_payload"], false);
    assert_eq!(env["retry_attempt"], 0);
    assert_eq!(env["retry_reason"], "");
    assert!(env["envelope_id"].as_str().unwrap().len() >= 32);
    let payload = &env["payload"];
    assert_eq!(payload["type"], "event_callback");
    assert_eq!(payload["event_id"], id.as_str());
    assert_eq!(payload["event"]["text"], "hello");
    assert_eq!(payload["authorizations"][0]["user_id"], "U0BOT");
    let pending = fake.pending_envelopes();
    assert_eq!(
        pending[0].envelope_id.as_deref(),
        env["envelope_id"].as_str()
    );
    ack(&mut ws, &env).await;
    let acks = fake.wait_for_acks(1, TIMEOUT).await;
    assert_eq!(acks[0].envelope_id, env["envelope_id"].as_str().unwrap());
    assert_eq!(acks[0].event_id.as_deref(), Some(id.as_str()));
    let done = fake
        .wait_until(TIMEOUT, || {
            fake.pending_envelopes().is_empty().then_some(())
        })
        .await;
    assert!(done.is_some());
    // Acked: no redelivery after the ack timeout.
    assert!(silent_for(&mut ws, Duration::from_millis(800)).await);
    assert_eq!(fake.envelopes_sent().len(), 1);
    // A mention in a channel arrives as two envelopes.
    let ids = fake.deliver_message(fake.channel_message("C0CHAN", "U0USER", &fake.mention("hi")));
    let a = next_json(&mut ws).await;
    let b = next_json(&mut ws).await;
    let mut types = vec![
        a["payload"]["event"]["type"].as_str().unwrap(),
        b["payload"]["event"]["type"].as_str().unwrap(),
    ];
    types.sort();
    assert_eq!(types, vec!["app_mention", "message"]);
    assert_eq!(a["payload"]["event"]["ts"], b["payload"]["event"]["ts"]);
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn unacked_envelopes_are_redelivered_with_retry_attempt() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let first = next_json(&mut ws).await;
    assert_eq!(first["retry_attempt"], 0);
    let second = next_json(&mut ws).await;
    assert_eq!(second["retry_attempt"], 1);
    assert_eq!(second["retry_reason"], "timeout");
    assert_eq!(second["payload"]["event_id"], id.as_str());
    assert_ne!(second["envelope_id"], first["envelope_id"]);
    assert_eq!(fake.pending_envelopes()[0].retry_attempt, 1);
    // A late ack of the first delivery counts for the event.
    ack(&mut ws, &first).await;
    let done = fake
        .wait_until(TIMEOUT, || {
            fake.pending_envelopes().is_empty().then_some(())
        })
        .await;
    assert!(done.is_some());
    assert!(silent_for(&mut ws, Duration::from_millis(800)).await);
}

#[tokio::test]
async fn redelivery_goes_to_the_newest_open_connection() {
    let fake = fast_fake().await;
    let (mut old, _) = connect(&fake).await;
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let first = next_json(&mut old).await;
    let (mut new, _) = connect(&fake).await;
    let again = next_json(&mut new).await;
    assert_eq!(again["payload"]["event_id"], id.as_str());
    assert_eq!(again["retry_attempt"], 1);
    ack(&mut new, &again).await;
    fake.wait_for_acks(1, TIMEOUT).await;
    let sent = fake.envelopes_sent();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0].conn, sent[1].conn);
    assert_eq!(sent[0].envelope_id, first["envelope_id"].as_str().unwrap());
}

#[tokio::test]
async fn redelivery_stops_after_max_retries() {
    let fake = FakeSlack::start_with(FakeSlackConfig {
        socket_ack_timeout: Duration::from_millis(150),
        socket_max_retries: 2,
        ..FakeSlackConfig::fast()
    })
    .await;
    let (mut ws, _) = connect(&fake).await;
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    for attempt in 0..=2 {
        assert_eq!(next_json(&mut ws).await["retry_attempt"], attempt);
    }
    let gone = fake
        .wait_until(TIMEOUT, || {
            (!fake.given_up_events().is_empty()).then_some(())
        })
        .await;
    assert!(gone.is_some());
    assert_eq!(fake.given_up_events(), vec![id]);
    assert!(fake.pending_envelopes().is_empty());
    assert!(silent_for(&mut ws, Duration::from_millis(400)).await);
}

#[tokio::test]
async fn refresh_requested_disconnect_then_close() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    fake.send_disconnect("refresh_requested");
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["type"], "disconnect");
    assert_eq!(msg["reason"], "refresh_requested");
    assert!(msg["debug_info"]["host"].is_string());
    assert_eq!(
        fake.open_connections(),
        0,
        "no new envelopes on a draining socket"
    );
    // Events wait for the replacement connection.
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let (mut fresh, hello) = connect(&fake).await;
    assert_eq!(hello["num_connections"], 1);
    let env = next_json(&mut fresh).await;
    assert_eq!(env["payload"]["event_id"], id.as_str());
    // The old socket is closed by the server after the grace period.
    let closed = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("close in time");
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );
    let info = &fake.connections()[0];
    assert_eq!(info.disconnect_sent.as_deref(), Some("refresh_requested"));
    let c = fake
        .wait_until(TIMEOUT, || fake.connections()[0].closed_at.map(|_| ()))
        .await;
    assert!(c.is_some());
}

#[tokio::test]
async fn warning_and_link_disabled_disconnects() {
    let fake = fast_fake().await;
    let (mut a, _) = connect(&fake).await;
    let (mut b, _) = connect(&fake).await;
    let ids: Vec<u64> = fake.connections().iter().map(|c| c.id).collect();
    fake.send_disconnect_to(ids[0], "warning");
    assert_eq!(next_json(&mut a).await["reason"], "warning");
    assert_eq!(fake.open_connections(), 1);
    fake.send_disconnect_to(ids[1], "link_disabled");
    assert_eq!(next_json(&mut b).await["reason"], "link_disabled");
    // link_disabled closes at once.
    let closed = tokio::time::timeout(Duration::from_millis(300), b.next())
        .await
        .expect("closed at once");
    assert!(matches!(closed, Some(Ok(Message::Close(_)))), "{closed:?}");
}

#[tokio::test]
async fn websocket_pings_are_answered() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(TIMEOUT, ws.next()).await.unwrap();
    match pong {
        Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"are-you-there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    assert_eq!(fake.connections()[0].pings_received, 1);
}

#[tokio::test]
async fn server_pings_when_configured() {
    let fake = FakeSlack::start_with(FakeSlackConfig {
        server_ping_interval: Some(Duration::from_millis(100)),
        ..FakeSlackConfig::fast()
    })
    .await;
    let (mut ws, _) = connect(&fake).await;
    let ping = tokio::time::timeout(TIMEOUT, ws.next()).await.unwrap();
    assert!(matches!(ping, Some(Ok(Message::Ping(_)))), "{ping:?}");
    // tungstenite answers the ping on the next read.
    let _ = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
    let ponged = fake
        .wait_until(TIMEOUT, || {
            (fake.connections()[0].pongs_received > 0).then_some(())
        })
        .await;
    assert!(ponged.is_some());
}

#[tokio::test]
async fn a_frozen_connection_goes_silent_and_its_events_move_on() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    let conn = fake.latest_connection().unwrap();
    let id = fake.deliver_event(fake.channel_message("C0CHAN", "U0USER", "hi"));
    let first = next_json(&mut ws).await;
    fake.freeze_connection(conn);
    assert_eq!(fake.open_connections(), 0);
    // Half-open: no pong, no close frame, no EOF.
    ws.send(Message::Ping(b"hello?".to_vec().into()))
        .await
        .unwrap();
    assert!(silent_for(&mut ws, Duration::from_millis(700)).await);
    assert!(fake.connections()[0].frozen);
    assert!(fake.connections()[0].closed_at.is_none());
    // The app reconnects; the unacked event is redelivered there.
    let (mut fresh, _) = connect(&fake).await;
    let env = next_json(&mut fresh).await;
    assert_eq!(env["payload"]["event_id"], id.as_str());
    assert_eq!(env["retry_attempt"], 1);
    assert_ne!(env["envelope_id"], first["envelope_id"]);
}

#[tokio::test]
async fn a_reset_connection_ends_without_a_close_frame() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    let conn = fake.latest_connection().unwrap();
    fake.reset_connection(conn);
    let end = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("ends in time");
    assert!(
        !matches!(end, Some(Ok(Message::Close(_)))),
        "a reset is not a close frame: {end:?}"
    );
    assert!(matches!(end, Some(Err(_)) | None), "{end:?}");
    assert_eq!(fake.open_connections(), 0);
}

#[tokio::test]
async fn close_connection_sends_a_close_frame() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    fake.close_connection(fake.latest_connection().unwrap());
    let end = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("in time");
    assert!(matches!(end, Some(Ok(Message::Close(_)))), "{end:?}");
    let c = fake.wait_for_connections(0, TIMEOUT).await;
    assert!(c);
}

#[tokio::test]
async fn non_ack_frames_are_recorded() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    ws.send(Message::text("not json")).await.unwrap();
    let seen = fake
        .wait_until(TIMEOUT, || (!fake.other_frames().is_empty()).then_some(()))
        .await;
    assert!(seen.is_some());
    assert_eq!(fake.other_frames()[0].1, "not json");
    assert!(fake.acks().is_empty());
}

#[tokio::test]
async fn slash_command_envelopes_accept_a_response_payload() {
    let fake = fast_fake().await;
    let (mut ws, _) = connect(&fake).await;
    let cmd = fake.slash_command("C0CHAN", "U0USER", "/claw", "status");
    fake.deliver_socket_envelope("slash_commands", cmd);
    let env = next_json(&mut ws).await;
    assert_eq!(env["type"], "slash_commands");
    assert_eq!(env["accepts_response_payload"], true);
    assert_eq!(env["payload"]["command"], "/claw");
    assert_eq!(env["payload"]["text"], "status");
    let reply = json!({"envelope_id": env["envelope_id"], "payload": {"text": "ok"}});
    ws.send(Message::text(reply.to_string())).await.unwrap();
    let acks = fake.wait_for_acks(1, TIMEOUT).await;
    assert_eq!(acks[0].raw["payload"]["text"], "ok");
    // Not redelivered even unacked: slash commands are not retried.
    fake.deliver_socket_envelope("slash_commands", json!({"command": "/claw"}));
    next_json(&mut ws).await;
    assert!(silent_for(&mut ws, Duration::from_millis(900)).await);
}
