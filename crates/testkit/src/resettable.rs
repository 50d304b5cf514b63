//! The accept loop the fake platforms share: hyper HTTP/1 on a loopback listener, where each
//! request's handler may ask for its connection to end with a TCP reset instead of a FIN
//! (to imitate a platform that drops the connection mid-request).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A connection's socket; when `reset` is set it closes with an RST instead of a FIN.
pub(crate) struct ConnIo {
    stream: TcpStream,
    pub(crate) reset: Arc<AtomicBool>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // Zero linger makes close() abort the connection.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves every connection of `listener` with `handle(reset, request)`; setting `reset` makes
/// that connection close with an RST. `upgrades` lets handlers take the connection over
/// (WebSocket). Runs until the task is aborted.
pub(crate) async fn accept_loop<H, Fut, B>(listener: TcpListener, upgrades: bool, handle: H)
where
    H: Fn(Arc<AtomicBool>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, io::Error>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conns = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // E.g. EMFILE; back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        conns.spawn(async move {
            let reset = Arc::new(AtomicBool::new(false));
            let io = TokioIo::new(ConnIo {
                stream,
                reset: reset.clone(),
            });
            let svc = hyper::service::service_fn(move |req| handle(reset.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            if upgrades {
                let _ = conn.with_upgrades().await;
            } else {
                let _ = conn.await;
            }
        });
    }
}
