//! Frame I/O over fastwebsockets: a writer task draining the connection's outbound queue,
//! and a reader that reassembles fragmented messages under a total size cap.

use crate::conns::{Outbound, WriterQueue};
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use tokio::io::{AsyncRead, AsyncWrite};

/// Bytes a queued pong counts for beyond its payload, so a ping flood from a client that
/// never reads still trips the outbound bound.
pub const PONG_OVERHEAD: usize = 64;

/// What the reader hands to the connection loop.
pub enum Incoming {
    Text(String),
    /// A binary frame (the protocol is text-only).
    Binary,
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer closed (with its code, if any).
    Closed(Option<u16>),
    /// A message over the current cap.
    TooBig,
    /// Invalid UTF-8 in a text message.
    BadUtf8,
    /// The peer broke RFC 6455 (unmasked frame, RSV bits, reserved opcode, oversized or
    /// fragmented control frame, bad fragmentation, bad close frame): close 1002.
    Protocol(&'static str),
    /// The socket died.
    Gone,
}

impl Incoming {
    /// Whether nothing more can be read after this.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Incoming::Closed(_)
                | Incoming::Gone
                | Incoming::TooBig
                | Incoming::BadUtf8
                | Incoming::Protocol(_)
        )
    }
}

/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close codes a peer may send (RFC 6455 §7.4).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

pub struct Reader<R> {
    inner: WebSocketRead<R>,
    max_message: usize,
}

/// Obligated sends are disabled (auto-pong/close off), so this is never called.
async fn no_send(_: Frame<'_>) -> Result<(), std::io::Error> {
    Ok(())
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(mut inner: WebSocketRead<R>, max_message: usize) -> Self {
        inner.set_auto_close(false);
        inner.set_auto_pong(false);
        inner.set_max_message_size(max_message);
        Reader { inner, max_message }
    }

    /// Changes the cap (raised once the connection is authenticated).
    pub fn set_max_message(&mut self, max: usize) {
        self.max_message = max;
        self.inner.set_max_message_size(max);
    }

    pub async fn next(&mut self) -> Incoming {
        let mut buf: Option<(OpCode, Vec<u8>)> = None;
        loop {
            let mut frame = match self.inner.read_frame(&mut no_send).await {
                Ok(f) => f,
                Err(WebSocketError::FrameTooLarge) => return Incoming::TooBig,
                Err(WebSocketError::InvalidUTF8) => return Incoming::BadUtf8,
                Err(WebSocketError::ReservedBitsNotZero) => {
                    return Incoming::Protocol("reserved bits set")
                }
                Err(WebSocketError::InvalidValue) => return Incoming::Protocol("reserved opcode"),
                Err(WebSocketError::ControlFrameFragmented) => {
                    return Incoming::Protocol("fragmented control frame")
                }
                Err(WebSocketError::PingFrameTooLarge) => {
                    return Incoming::Protocol("control frame too large")
                }
                Err(_) => return Incoming::Gone,
            };
            // Clients must mask every frame (RFC 6455 §5.1). The library keeps the key on
            // the frame; the formatted header shows whether there was one.
            let mut head = [0u8; 14];
            frame.fmt_head(&mut head);
            if head[1] & 0x80 == 0 {
                return Incoming::Protocol("unmasked client frame");
            }
            let control = matches!(frame.opcode, OpCode::Ping | OpCode::Pong | OpCode::Close);
            if control && frame.payload.len() > MAX_CONTROL_PAYLOAD {
                return Incoming::Protocol("control frame too large");
            }
            match frame.opcode {
                OpCode::Ping => return Incoming::Ping(frame.payload.to_vec()),
                OpCode::Pong => return Incoming::Pong(frame.payload.to_vec()),
                OpCode::Close => {
                    return match frame.payload.len() {
                        0 => Incoming::Closed(None),
                        1 => Incoming::Protocol("invalid close frame"),
                        _ => {
                            let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                            if !close_code_allowed(code) {
                                Incoming::Protocol("invalid close code")
                            } else if std::str::from_utf8(&frame.payload[2..]).is_err() {
                                Incoming::BadUtf8
                            } else {
                                Incoming::Closed(Some(code))
                            }
                        }
                    };
                }
                OpCode::Text | OpCode::Binary => {
                    if buf.is_some() {
                        return Incoming::Protocol("new message inside a fragmented one");
                    }
                    if frame.fin {
                        return finish(frame.opcode, frame.payload.to_vec());
                    }
                    buf = Some((frame.opcode, frame.payload.to_vec()));
                }
                OpCode::Continuation => {
                    let Some((_, data)) = buf.as_mut() else {
                        return Incoming::Protocol("continuation without a message");
                    };
                    if data.len() + frame.payload.len() > self.max_message {
                        return Incoming::TooBig;
                    }
                    data.extend_from_slice(&frame.payload);
                    if frame.fin {
                        let (op, data) = buf.take().unwrap_or((OpCode::Binary, Vec::new()));
                        return finish(op, data);
                    }
                }
            }
        }
    }
}

fn finish(op: OpCode, data: Vec<u8>) -> Incoming {
    if op == OpCode::Binary {
        return Incoming::Binary;
    }
    match String::from_utf8(data) {
        Ok(s) => Incoming::Text(s),
        Err(_) => Incoming::BadUtf8,
    }
}

/// Drains the outbound queue into the socket, batching what is ready before each flush.
pub async fn run_writer<W: AsyncWrite + Unpin>(mut ws: WebSocketWrite<W>, mut queue: WriterQueue) {
    while let Some(first) = queue.next().await {
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(msg) = next.take() {
            match msg {
                Outbound::Text(text) => {
                    let res = ws
                        .write_frame(Frame::text(Payload::Owned(text.into_bytes())))
                        .await;
                    queue.done();
                    if res.is_err() {
                        return;
                    }
                }
                Outbound::Pong(p) => {
                    let res = ws.write_frame(Frame::pong(Payload::Owned(p))).await;
                    queue.done();
                    if res.is_err() {
                        return;
                    }
                }
                Outbound::Ping(p) => {
                    let res = ws
                        .write_frame(Frame::new(true, OpCode::Ping, None, Payload::Owned(p)))
                        .await;
                    queue.done();
                    if res.is_err() {
                        return;
                    }
                }
                Outbound::Close(code, reason) => {
                    let reason = truncate_reason(&reason);
                    let frame = if code == 1005 {
                        Frame::close_raw(Payload::Owned(Vec::new()))
                    } else {
                        Frame::close(code, reason.as_bytes())
                    };
                    let _ = ws.write_frame(frame).await;
                    let _ = ws.flush().await;
                    return;
                }
            }
            batch += 1;
            if batch < 64 {
                next = queue.try_next();
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

/// Close reasons are limited to 123 bytes by the WebSocket spec; cut on a char boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
