//! Socket Mode: the frame shapes (`hello`, envelopes, `disconnect`), the ack frame, and a
//! connection driver.
//!
//! [`SocketModeSession::connect`] opens the single-use URL from `apps.connections.open`, waits
//! for `hello` (with a deadline) and then runs the socket in a task: envelopes come out of
//! [`SocketModeSession::next_event`], and an envelope is acked only when the caller calls
//! [`SocketModeSession::ack`] (after its durable insert). A watchdog pings the server and ends
//! the session as [`EndReason::Dead`] when nothing (no pong, no frame) arrives within the
//! deadline — a half-open socket. `disconnect` frames are reported, not acted on: on
//! `refresh_requested`/`warning` the caller opens the next session *before* closing this one;
//! on `link_disabled` it stops. Reconnect policy stays with the caller ([`reconnect_delay`] is
//! the default curve).
//!
//! Usage:
//! ```ignore
//! let url = app_api.open_socket_connection().await?;          // fresh ticket every time
//! let mut s = SocketModeSession::connect(&url, SocketOptions::default()).await?;
//! while let Some(ev) = s.next_event().await {
//!     match ev {
//!         SocketEvent::Envelope(e) => { insert_durably(&e)?; s.ack(&e.envelope_id).await?; }
//!         SocketEvent::Disconnect(d) if !d.reason.should_reconnect() => { s.close().await; break }
//!         SocketEvent::Disconnect(_) => { let n = connect_new().await?; std::mem::replace(&mut s, n).close().await; }
//!         SocketEvent::Ended(why) => { /* back off (reconnect_delay), reconnect */ }
//!     }
//! }
//! ```

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Largest frame/message accepted from the socket (Slack's envelopes are a few KB).
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// A Socket Mode frame from Slack.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello(Hello),
    Envelope(Envelope),
    Disconnect(Disconnect),
    /// A frame type we do not know (ignored).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hello {
    pub num_connections: Option<u64>,
    pub app_id: Option<String>,
    pub debug_info: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EnvelopeKind {
    /// `payload` is an Events API `event_callback` body (see `events::parse_value`).
    EventsApi,
    SlashCommands,
    Interactive,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub envelope_id: String,
    pub kind: EnvelopeKind,
    pub payload: Value,
    /// 0 on the first delivery; Slack redelivers unacked envelopes with this incremented.
    pub retry_attempt: u32,
    pub retry_reason: String,
    pub accepts_response_payload: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DisconnectReason {
    /// Slack is recycling the connection: open a new one, then close this one.
    RefreshRequested,
    /// The connection will be closed soon: same as refresh.
    Warning,
    /// Socket Mode was turned off for the app: stop.
    LinkDisabled,
    Other(String),
}

impl DisconnectReason {
    fn parse(s: &str) -> DisconnectReason {
        match s {
            "refresh_requested" => DisconnectReason::RefreshRequested,
            "warning" => DisconnectReason::Warning,
            "link_disabled" => DisconnectReason::LinkDisabled,
            other => DisconnectReason::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DisconnectReason::RefreshRequested => "refresh_requested",
            DisconnectReason::Warning => "warning",
            DisconnectReason::LinkDisabled => "link_disabled",
            DisconnectReason::Other(s) => s,
        }
    }

    /// Everything but `link_disabled` means "open a new connection".
    pub fn should_reconnect(&self) -> bool {
        *self != DisconnectReason::LinkDisabled
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disconnect {
    pub reason: DisconnectReason,
    pub debug_info: Value,
}

/// Parses one text frame.
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "frame is not JSON".to_string())?;
    if !v.is_object() {
        return Err("frame is not a JSON object".into());
    }
    let kind = v["type"].as_str().unwrap_or_default();
    Ok(match kind {
        "hello" => Frame::Hello(Hello {
            num_connections: v["num_connections"].as_u64(),
            app_id: v["connection_info"]["app_id"].as_str().map(String::from),
            debug_info: v["debug_info"].clone(),
        }),
        "disconnect" => Frame::Disconnect(Disconnect {
            reason: DisconnectReason::parse(v["reason"].as_str().unwrap_or_default()),
            debug_info: v["debug_info"].clone(),
        }),
        _ if v["envelope_id"].is_string() => {
            let envelope_id = v["envelope_id"].as_str().unwrap_or_default();
            if envelope_id.is_empty() {
                return Err("envelope with an empty envelope_id".into());
            }
            Frame::Envelope(Envelope {
                envelope_id: envelope_id.to_string(),
                kind: match kind {
                    "events_api" => EnvelopeKind::EventsApi,
                    "slash_commands" => EnvelopeKind::SlashCommands,
                    "interactive" => EnvelopeKind::Interactive,
                    other => EnvelopeKind::Other(other.to_string()),
                },
                payload: v["payload"].clone(),
                retry_attempt: v["retry_attempt"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                retry_reason: v["retry_reason"].as_str().unwrap_or_default().to_string(),
                accepts_response_payload: v["accepts_response_payload"].as_bool() == Some(true),
            })
        }
        other => Frame::Other(other.to_string()),
    })
}

/// The ack for an envelope: `{"envelope_id": "…"}`, with an optional response `payload`
/// (slash commands / interactivity with `accepts_response_payload`).
pub fn ack_frame(envelope_id: &str, payload: Option<&Value>) -> String {
    let mut v = json!({"envelope_id": envelope_id});
    if let Some(p) = payload {
        v["payload"] = p.clone();
    }
    v.to_string()
}

/// The default reconnect curve: 2 s doubling to a 30 s cap (OpenClaw's restart backoff).
/// `attempt` counts consecutive failures from 0. The seam may add jitter.
pub fn reconnect_delay(attempt: u32) -> Duration {
    clawgate_retry::Backoff::new(Duration::from_secs(2), Duration::from_secs(30)).delay(attempt)
}

#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
    /// From the handshake to Slack's `hello`.
    pub hello_timeout: Duration,
    /// How often the watchdog pings when nothing else is pending.
    pub ping_interval: Duration,
    /// No frame at all (pong or otherwise) this long after a ping → [`EndReason::Dead`].
    pub pong_timeout: Duration,
    /// Bound of the event queue between the socket task and the caller.
    pub queue: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            connect_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            // OpenClaw's fixed client pong timeout.
            pong_timeout: Duration::from_secs(15),
            queue: 64,
        }
    }
}

/// Why `connect` failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SocketError {
    #[error("cannot connect to the Socket Mode URL: {0}")]
    Connect(String),
    #[error("no hello from Slack within the deadline")]
    HelloTimeout,
    #[error("the connection closed before hello")]
    ClosedBeforeHello,
    #[error("Slack sent disconnect ({}) before hello", .0.as_str())]
    DisconnectBeforeHello(DisconnectReason),
    #[error("the session has ended")]
    Ended,
}

/// Why a running session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EndReason {
    /// The watchdog saw no frame within `pong_timeout` after a ping (half-open socket).
    Dead,
    /// Slack sent a close frame.
    Closed { code: Option<u16>, reason: String },
    /// The TCP connection ended without a close frame.
    Dropped,
    /// A read or write failed.
    Error(String),
}

/// What the session yields.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    /// Persist it durably, then [`SocketModeSession::ack`] it.
    Envelope(Envelope),
    /// Slack asked to disconnect; the socket is still open (see the module docs).
    Disconnect(Disconnect),
    /// The session is over; reconnect with a fresh URL (after a backoff).
    Ended(EndReason),
}

enum Cmd {
    Send(String, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<()>),
}

/// One Socket Mode connection.
pub struct SocketModeSession {
    hello: Hello,
    events: mpsc::Receiver<SocketEvent>,
    cmds: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SocketModeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it carries the ticket.
        f.debug_struct("SocketModeSession")
            .field("hello", &self.hello)
            .finish()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl SocketModeSession {
    /// Connects to a `wss://` (or, for tests, `ws://`) URL and waits for `hello`.
    pub async fn connect(url: &str, opts: SocketOptions) -> Result<SocketModeSession, SocketError> {
        let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let connecting = tokio_tungstenite::connect_async_with_config(url, Some(cfg), true);
        let (mut ws, _) = tokio::time::timeout(opts.connect_timeout, connecting)
            .await
            .map_err(|_| SocketError::Connect("timed out".into()))?
            .map_err(|e| SocketError::Connect(connect_error(&e)))?;
        let queue = opts.queue.max(1);
        let mut early: Vec<SocketEvent> = Vec::new();
        let hello = tokio::time::timeout(opts.hello_timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => match parse_frame(&t) {
                        Ok(Frame::Hello(h)) => return Ok(h),
                        Ok(Frame::Disconnect(d)) => {
                            return Err(SocketError::DisconnectBeforeHello(d.reason))
                        }
                        Ok(Frame::Envelope(e)) if early.len() < queue => {
                            early.push(SocketEvent::Envelope(e))
                        }
                        _ => {}
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return Err(SocketError::ClosedBeforeHello)
                    }
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .map_err(|_| SocketError::HelloTimeout)??;
        let (ev_tx, ev_rx) = mpsc::channel(queue);
        for e in early {
            let _ = ev_tx.try_send(e);
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let task = tokio::spawn(run(ws, ev_tx, cmd_rx, opts));
        Ok(SocketModeSession {
            hello,
            events: ev_rx,
            cmds: cmd_tx,
            task,
        })
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The next envelope or disconnect notice; `Ended` once, then `None`.
    pub async fn next_event(&mut self) -> Option<SocketEvent> {
        self.events.recv().await
    }

    /// Acks an envelope (call after the durable insert). Returns once the frame is written.
    pub async fn ack(&self, envelope_id: &str) -> Result<(), SocketError> {
        self.send(ack_frame(envelope_id, None)).await
    }

    /// Acks with a response payload (slash commands / interactivity).
    pub async fn ack_with_payload(
        &self,
        envelope_id: &str,
        payload: &Value,
    ) -> Result<(), SocketError> {
        self.send(ack_frame(envelope_id, Some(payload))).await
    }

    async fn send(&self, text: String) -> Result<(), SocketError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Send(text, tx))
            .await
            .map_err(|_| SocketError::Ended)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(SocketError::Ended),
        }
    }

    /// Sends a close frame and ends the session (bounded wait). Unacked envelopes are
    /// redelivered by Slack on another connection.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        self.task.abort();
    }
}

impl Drop for SocketModeSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connect_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        // The URL (with its ticket) is never part of the message.
        E::Http(r) => format!("HTTP {} instead of a WebSocket upgrade", r.status()),
        E::Url(_) => "bad URL".into(),
        E::Io(io) => format!("{}", io.kind()),
        E::Tls(t) => format!("TLS: {t}"),
        other => {
            let s = other.to_string();
            s.split("://")
                .next()
                .unwrap_or("error")
                .chars()
                .take(120)
                .collect()
        }
    }
}

async fn run(
    mut ws: Ws,
    events: mpsc::Sender<SocketEvent>,
    mut cmds: mpsc::Receiver<Cmd>,
    opts: SocketOptions,
) {
    use tokio_tungstenite::tungstenite::Error as E;
    let mut tick = tokio::time::interval(opts.ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // When a ping went out with no frame since.
    let mut awaiting: Option<Instant> = None;
    let end: Option<EndReason> = loop {
        tokio::select! {
            biased;
            msg = ws.next() => {
                let m = match msg {
                    None => break Some(EndReason::Dropped),
                    Some(Err(E::ConnectionClosed | E::AlreadyClosed)) => break Some(EndReason::Dropped),
                    Some(Err(E::Protocol(p))) => {
                        break Some(if p.to_string().contains("without closing handshake") {
                            EndReason::Dropped
                        } else {
                            EndReason::Error(p.to_string())
                        })
                    }
                    Some(Err(E::Io(io))) => break Some(EndReason::Error(format!("{}", io.kind()))),
                    Some(Err(e)) => break Some(EndReason::Error(e.to_string())),
                    Some(Ok(m)) => m,
                };
                awaiting = None;
                let ev = match m {
                    Message::Text(t) => match parse_frame(&t) {
                        Ok(Frame::Envelope(e)) => Some(SocketEvent::Envelope(e)),
                        Ok(Frame::Disconnect(d)) => Some(SocketEvent::Disconnect(d)),
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!("slack socket mode: ignoring a frame: {e}");
                            None
                        }
                    },
                    Message::Close(f) => break Some(EndReason::Closed {
                        code: f.as_ref().map(|f| u16::from(f.code)),
                        reason: f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }),
                    _ => None,
                };
                if let Some(ev) = ev {
                    if events.send(ev).await.is_err() {
                        break None;
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                None => break None,
                Some(Cmd::Send(text, done)) => {
                    let r = ws.send(Message::Text(text.into())).await.map_err(|e| e.to_string());
                    let failed = r.as_ref().err().cloned();
                    let _ = done.send(r);
                    if let Some(e) = failed {
                        break Some(EndReason::Error(e));
                    }
                }
                Some(Cmd::Close(done)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    let _ = done.send(());
                    break None;
                }
            },
            // Exactly `pong_timeout` after an unanswered ping (not at the next tick).
            _ = tokio::time::sleep_until(awaiting.unwrap_or_else(Instant::now) + opts.pong_timeout),
                if awaiting.is_some() => break Some(EndReason::Dead),
            _ = tick.tick() => match awaiting {
                Some(_) => {}
                None => {
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        break Some(EndReason::Error(e.to_string()));
                    }
                    awaiting = Some(Instant::now());
                }
            },
        }
    };
    if let Some(end) = end {
        let _ = events.send(SocketEvent::Ended(end)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    const HELLO: &str = r#"{"type": "hello", "num_connections": 1, "debug_info": {"host": "applink-1", "build_number": 10, "approximate_connection_time": 18060}, "connection_info": {"app_id": "A0001"}}"#;

    fn envelope(id: &str, retry: u32) -> String {
        json!({"envelope_id": id, "type": "events_api", "accepts_response_payload": false,
               "retry_attempt": retry, "retry_reason": if retry > 0 { "timeout" } else { "" },
               "payload": {"type": "event_callback", "event_id": format!("Ev{id}"), "team_id": "T1",
                           "event": {"type": "message", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.2", "channel_type": "im"}}})
        .to_string()
    }

    fn opts() -> SocketOptions {
        SocketOptions {
            connect_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(50),
            pong_timeout: Duration::from_millis(250),
            queue: 8,
        }
    }

    type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "ws://{}/link/?ticket=t1&app_id=A0001",
            l.local_addr().unwrap()
        );
        (l, url)
    }

    async fn accept(l: &TcpListener) -> ServerWs {
        let (s, _) = l.accept().await.unwrap();
        tokio_tungstenite::accept_async(s).await.unwrap()
    }

    /// Next text frame the server receives (pings are answered by tungstenite while reading).
    async fn next_text(ws: &mut ServerWs) -> Option<String> {
        loop {
            match ws.next().await? {
                Ok(Message::Text(t)) => return Some(t.to_string()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("deadline")
    }

    #[test]
    fn parses_every_frame_type() {
        let Frame::Hello(h) = parse_frame(HELLO).unwrap() else {
            panic!()
        };
        assert_eq!(h.num_connections, Some(1));
        assert_eq!(h.app_id.as_deref(), Some("A0001"));
        assert_eq!(h.debug_info["host"], "applink-1");

        let Frame::Envelope(e) =
            parse_frame(&envelope("57d6a792-4d35-4d0b-b6aa-3361493e1caf", 2)).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.envelope_id, "57d6a792-4d35-4d0b-b6aa-3361493e1caf");
        assert_eq!(e.kind, EnvelopeKind::EventsApi);
        assert_eq!(e.retry_attempt, 2);
        assert_eq!(e.retry_reason, "timeout");
        assert!(!e.accepts_response_payload);
        assert_eq!(e.payload["type"], "event_callback");

        for (t, k) in [
            ("slash_commands", EnvelopeKind::SlashCommands),
            ("interactive", EnvelopeKind::Interactive),
            ("something_new", EnvelopeKind::Other("something_new".into())),
        ] {
            let f = json!({"envelope_id": "e1", "type": t, "accepts_response_payload": true, "payload": {"x": 1}});
            let Frame::Envelope(e) = parse_frame(&f.to_string()).unwrap() else {
                panic!()
            };
            assert_eq!(e.kind, k);
            assert!(e.accepts_response_payload);
            assert_eq!(e.retry_attempt, 0);
        }

        for (r, k) in [
            ("refresh_requested", DisconnectReason::RefreshRequested),
            ("warning", DisconnectReason::Warning),
            ("link_disabled", DisconnectReason::LinkDisabled),
            (
                "too_many_websockets",
                DisconnectReason::Other("too_many_websockets".into()),
            ),
        ] {
            let f = json!({"type": "disconnect", "reason": r, "debug_info": {"host": "h"}});
            let Frame::Disconnect(d) = parse_frame(&f.to_string()).unwrap() else {
                panic!()
            };
            assert_eq!(d.reason, k);
            assert_eq!(d.reason.as_str(), r);
            assert_eq!(d.reason.should_reconnect(), r != "link_disabled");
            assert_eq!(d.debug_info["host"], "h");
        }
        assert_eq!(
            parse_frame(r#"{"type":"pong"}"#).unwrap(),
            Frame::Other("pong".into())
        );
        assert!(parse_frame("nope").is_err());
        assert!(parse_frame("[]").is_err());
        assert!(parse_frame(r#"{"envelope_id":"","type":"events_api"}"#).is_err());
    }

    #[test]
    fn ack_frames() {
        let a: Value = serde_json::from_str(&ack_frame("57d6a792", None)).unwrap();
        assert_eq!(a, json!({"envelope_id": "57d6a792"}));
        let a: Value =
            serde_json::from_str(&ack_frame("e\"1", Some(&json!({"text": "ok"})))).unwrap();
        assert_eq!(a, json!({"envelope_id": "e\"1", "payload": {"text": "ok"}}));
    }

    #[test]
    fn reconnect_curve() {
        let d: Vec<u64> = (0..8).map(|a| reconnect_delay(a).as_secs()).collect();
        assert_eq!(d, [2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn hello_then_envelopes_acked_only_when_the_caller_says() {
        let (l, url) = listener().await;
        let server = tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            ws.send(Message::Text(envelope("A", 0).into()))
                .await
                .unwrap();
            ws.send(Message::Text(envelope("B", 1).into()))
                .await
                .unwrap();
            // The first thing the client writes must be B's ack: A was never acked.
            next_text(&mut ws).await
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        assert_eq!(s.hello().num_connections, Some(1));
        let Some(SocketEvent::Envelope(a)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(a.envelope_id, "A");
        let Some(SocketEvent::Envelope(b)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!((b.envelope_id.as_str(), b.retry_attempt), ("B", 1));
        s.ack("B").await.unwrap();
        let got = within(server).await.unwrap();
        assert_eq!(got.as_deref(), Some(r#"{"envelope_id":"B"}"#));
    }

    #[tokio::test]
    async fn no_hello_within_the_deadline_fails() {
        let (l, url) = listener().await;
        let server = tokio::spawn(async move {
            let mut ws = accept(&l).await;
            // Silent: read until the client gives up.
            next_text(&mut ws).await
        });
        let o = SocketOptions {
            hello_timeout: Duration::from_millis(200),
            ..opts()
        };
        let started = Instant::now();
        let r = within(SocketModeSession::connect(&url, o)).await;
        assert_eq!(r.unwrap_err(), SocketError::HelloTimeout);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(server);
    }

    #[tokio::test]
    async fn connect_errors_are_clear_and_never_show_the_ticket() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = SocketModeSession::connect(&format!("ws://{addr}/link/?ticket=SECRET1"), opts())
            .await
            .unwrap_err();
        assert!(matches!(e, SocketError::Connect(_)), "{e:?}");
        assert!(!e.to_string().contains("SECRET1"));
        // wss:// goes through rustls (a plain-TCP peer is a TLS error, not a panic).
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let e = within(SocketModeSession::connect(
            &format!("wss://{addr}/link/?ticket=SECRET2"),
            opts(),
        ))
        .await
        .unwrap_err();
        assert!(matches!(e, SocketError::Connect(_)), "{e:?}");
        assert!(!e.to_string().contains("SECRET2"));
    }

    #[tokio::test]
    async fn refresh_requested_lets_the_caller_open_the_new_socket_before_closing_the_old() {
        let (l, url) = listener().await;
        let (log_tx, mut log) = mpsc::unbounded_channel::<&'static str>();
        tokio::spawn(async move {
            let mut first = accept(&l).await;
            first.send(Message::Text(HELLO.into())).await.unwrap();
            first
                .send(Message::Text(r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"h"}}"#.into()))
                .await
                .unwrap();
            // The old socket still works until the client closes it.
            first
                .send(Message::Text(envelope("OLD", 0).into()))
                .await
                .unwrap();
            let l2 = l;
            let second = tokio::spawn(async move {
                let mut second = accept(&l2).await;
                second.send(Message::Text(HELLO.into())).await.unwrap();
                second
            });
            let ack = next_text(&mut first).await;
            assert_eq!(ack.as_deref(), Some(r#"{"envelope_id":"OLD"}"#));
            let mut second = second.await.unwrap();
            log_tx.send("second connected").unwrap();
            // Now the client closes the first one.
            assert_eq!(next_text(&mut first).await, None);
            log_tx.send("first closed").unwrap();
            second
                .send(Message::Text(envelope("NEW", 0).into()))
                .await
                .unwrap();
            let _ = next_text(&mut second).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let Some(SocketEvent::Disconnect(d)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(d.reason, DisconnectReason::RefreshRequested);
        let Some(SocketEvent::Envelope(e)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(e.envelope_id, "OLD");
        s.ack("OLD").await.unwrap();
        let new = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let old = std::mem::replace(&mut s, new);
        old.close().await;
        assert_eq!(within(log.recv()).await, Some("second connected"));
        assert_eq!(within(log.recv()).await, Some("first closed"));
        let Some(SocketEvent::Envelope(e)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(e.envelope_id, "NEW");
    }

    #[tokio::test]
    async fn link_disabled_is_reported_as_stop() {
        let (l, url) = listener().await;
        tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            ws.send(Message::Text(
                r#"{"type":"disconnect","reason":"link_disabled","debug_info":{"host":"h"}}"#
                    .into(),
            ))
            .await
            .unwrap();
            let _ = next_text(&mut ws).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let Some(SocketEvent::Disconnect(d)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(d.reason, DisconnectReason::LinkDisabled);
        assert!(!d.reason.should_reconnect());
        s.close().await;
    }

    #[tokio::test]
    async fn half_open_socket_is_detected_by_the_watchdog() {
        let (l, url) = listener().await;
        let (hold_tx, hold_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            // Stop reading (no pongs) but keep the TCP connection open: half-open.
            let _ = hold_rx.await;
            drop(ws);
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(
            within(s.next_event()).await,
            Some(SocketEvent::Ended(EndReason::Dead))
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(within(s.next_event()).await, None);
        assert_eq!(s.ack("X").await, Err(SocketError::Ended));
        drop(hold_tx);
    }

    #[tokio::test]
    async fn pongs_keep_a_quiet_socket_alive() {
        let (l, url) = listener().await;
        tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            // Quiet for 4× the pong timeout, but reading (so tungstenite answers the pings).
            let quiet = tokio::time::sleep(Duration::from_millis(1000));
            tokio::pin!(quiet);
            loop {
                tokio::select! {
                    _ = &mut quiet => break,
                    m = ws.next() => if m.is_none() { return },
                }
            }
            ws.send(Message::Text(envelope("LATE", 0).into()))
                .await
                .unwrap();
            let _ = next_text(&mut ws).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let Some(SocketEvent::Envelope(e)) = within(s.next_event()).await else {
            panic!("the session died although the server answered pings")
        };
        assert_eq!(e.envelope_id, "LATE");
    }

    #[tokio::test]
    async fn dropped_tcp_and_close_frames_end_the_session() {
        let (l, url) = listener().await;
        tokio::spawn(async move {
            let ws = accept(&l).await;
            let mut ws = ws;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            // Drop the TCP stream without a close frame.
            drop(ws.into_inner());
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            ws.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "bye".into(),
            })))
            .await
            .unwrap();
            let _ = next_text(&mut ws).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        assert_eq!(
            within(s.next_event()).await,
            Some(SocketEvent::Ended(EndReason::Dropped))
        );
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        assert_eq!(
            within(s.next_event()).await,
            Some(SocketEvent::Ended(EndReason::Closed {
                code: Some(1001),
                reason: "bye".into()
            }))
        );
    }

    #[tokio::test]
    async fn oversized_frame_ends_the_session() {
        let (l, url) = listener().await;
        tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_FRAME_BYTES + 1));
            let _ = ws.send(Message::Text(big.into())).await;
            let _ = next_text(&mut ws).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let ev = within(s.next_event()).await;
        assert!(
            matches!(ev, Some(SocketEvent::Ended(EndReason::Error(_)))),
            "{ev:?}"
        );
    }

    #[tokio::test]
    async fn envelope_before_hello_is_kept() {
        let (l, url) = listener().await;
        tokio::spawn(async move {
            let mut ws = accept(&l).await;
            ws.send(Message::Text(envelope("EARLY", 0).into()))
                .await
                .unwrap();
            ws.send(Message::Text(HELLO.into())).await.unwrap();
            let _ = next_text(&mut ws).await;
        });
        let mut s = within(SocketModeSession::connect(&url, opts()))
            .await
            .unwrap();
        let Some(SocketEvent::Envelope(e)) = within(s.next_event()).await else {
            panic!()
        };
        assert_eq!(e.envelope_id, "EARLY");
    }
}
