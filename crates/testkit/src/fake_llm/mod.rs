//! Fake LLM provider servers (OpenAI chat completions and Anthropic Messages) on one
//! loopback port, for end-to-end tests that run the real gateway against them.
//!
//! Responses are scripted with [`Step`]s pushed onto a FIFO queue; when the queue is
//! empty, trigger words in the last user text pick the answer (see [`FakeLlm`]).

mod anthropic;
mod openai;
mod script;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};

use script::Conversation;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// One scripted HTTP response to a completion request (either API).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Streamed text, `delay_ms` between chunks (a non-stream reply waits the same total).
    Text { chunks: Vec<String>, delay_ms: u64 },
    /// Tool calls as `(id, name, arguments)`; arguments are streamed in small pieces.
    ToolCalls(Vec<(String, String, Value)>),
    /// An HTTP error; `body` replaces the provider-shaped error JSON when given.
    Status {
        code: u16,
        retry_after_secs: Option<u64>,
        body: Option<String>,
    },
    /// Sends nothing, not even headers, for `ms`, then closes the connection.
    Hang { ms: u64 },
    /// 200 + headers and one text chunk, then silence for `ms`, then the connection closes.
    SlowHeadersThenStall { ms: u64 },
    /// 200 `text/event-stream` whose body is exactly this string.
    Garbage(String),
    /// 200, one text chunk, then the connection closes without the stream's end marker.
    CutMidStream,
}

impl Step {
    /// Text split into word chunks (`"a b"` → `["a", " b"]`), no delay.
    pub fn text(s: &str) -> Step {
        Step::Text {
            chunks: split_words(s),
            delay_ms: 0,
        }
    }

    /// An error status without `Retry-After`, with the provider-shaped error body.
    pub fn status(code: u16) -> Step {
        Step::Status {
            code,
            retry_after_secs: None,
            body: None,
        }
    }
}

/// Splits into chunks that concatenate back to `s`, each after the first starting with a space.
pub fn split_words(s: &str) -> Vec<String> {
    s.split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Tool arguments as JSON text, in the small pieces providers stream them in.
fn arg_pieces(args: &Value) -> Vec<String> {
    let chars: Vec<char> = args.to_string().chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

/// Output tokens reported for a tool-call reply: one per streamed argument piece.
fn tool_output_tokens(calls: &[(String, String, Value)]) -> u64 {
    let pieces: usize = calls.iter().map(|(_, _, a)| arg_pieces(a).len()).sum();
    pieces.max(1) as u64
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Names are lowercase; values are lossily decoded as UTF-8.
    pub headers: Vec<(String, String)>,
    /// `Value::Null` when the body is empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Source of the `N` in `chatcmpl-fake-N` / `msg_fake_N`.
    next_id: AtomicU64,
}

/// A poisoned lock only means a test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running fake server. It stops when dropped.
///
/// With an empty queue the last user text decides: `TOOLTEST` → a `read` tool call for
/// `TOOLFILE.txt` (or `The file says: <tool result>` once a tool result is present),
/// `ERR400TEST` → 400, `ERRTEST` → 500, `SLOWTEST` → 40 words 50 ms apart, anything
/// else → `Hello from the fake LLM!` in five chunks.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: AbortHandle,
    /// Set by [`FakeLlm::start_blocking`]: the runtime the server lives on.
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeLlm {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake LLM: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake LLM: local_addr");
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        FakeLlm {
            addr,
            shared,
            server,
            runtime: None,
        }
    }

    /// For synchronous tests: serves from its own background runtime thread.
    /// Must not be called from inside an async context.
    pub fn start_blocking() -> FakeLlm {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-llm")
            .enable_all()
            .build()
            .expect("fake LLM: build runtime");
        // Tasks spawned inside block_on land on the worker thread and keep running after it returns.
        let mut fake = rt.block_on(FakeLlm::start());
        fake.runtime = Some(rt);
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a response for the next completion request (either API).
    pub fn push(&self, step: Step) {
        lock(&self.shared.queue).push_back(step);
    }

    /// Steps not yet consumed.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Every request received so far (all paths), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Waits until at least `n` requests have been recorded; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime may block; shutdown_background is safe anywhere.
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
        // SSE chunks are tiny; Nagle would batch them and distort timing tests.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Which wire format a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    fn error_body(self, code: u16, message: &str) -> Value {
        match self {
            Api::OpenAi => openai::error_json(code, message),
            Api::Anthropic => anthropic::error_json(code, message),
        }
    }
}

/// A piece of a streamed body.
enum Piece {
    Data(Bytes),
    Sleep(u64),
    /// Fail the body, which makes hyper drop the connection mid-message.
    Abort,
}

/// Lets already-written bytes reach the socket before an abort tears it down.
const FLUSH_MS: u64 = 20;

/// Everything needed to render one completion reply.
struct Ctx {
    conv: Conversation,
    id: u64,
    created: u64,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect();
    let api = match path.as_str() {
        "/v1/messages" => Some(Api::Anthropic),
        "/v1/chat/completions" => Some(Api::OpenAi),
        _ => None,
    };
    let err_api = api.unwrap_or(Api::OpenAi);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let record = |body: Value| {
        lock(&shared.requests).push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
            body,
        });
    };
    let too_large = || error_response(err_api, 413, None, None);
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        record(Value::Null);
        return Ok(too_large());
    }
    let bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            record(Value::Null);
            return Ok(too_large());
        }
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    record(body.clone());

    let api = match (method.as_str(), api) {
        ("POST", Some(api)) => api,
        ("GET", None) if path == "/v1/models" => return Ok(json_response(200, &models_json())),
        (_, Some(api)) => return Ok(error_response(api, 405, None, None)),
        _ => return Ok(error_response(err_api, 404, None, None)),
    };
    let conv = match script::parse(api, &body, bytes.len()) {
        Ok(c) => c,
        Err(msg) => {
            let body = api.error_body(400, &msg);
            return Ok(json_response(400, &body));
        }
    };
    let queued = lock(&shared.queue).pop_front();
    let step = queued.unwrap_or_else(|| script::trigger(api, &conv));
    let ctx = Ctx {
        conv,
        id: shared.next_id.fetch_add(1, Ordering::Relaxed) + 1,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    respond(api, &ctx, step).await
}

async fn respond(api: Api, ctx: &Ctx, step: Step) -> Result<Response<Body>, std::io::Error> {
    let stream = ctx.conv.stream;
    let garbage = matches!(step, Step::Garbage(_));
    let pieces = match step {
        Step::Hang { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            // A service error makes hyper close the connection without writing anything.
            return Err(std::io::Error::other("fake LLM: hang finished"));
        }
        Step::Status {
            code,
            retry_after_secs,
            body,
        } => return Ok(error_response(api, code, retry_after_secs, body)),
        Step::Garbage(raw) => vec![Piece::Data(Bytes::from(raw))],
        Step::Text { chunks, delay_ms } if !stream => {
            let pause = delay_ms.saturating_mul(chunks.len().saturating_sub(1) as u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let body = match api {
                Api::OpenAi => openai::text_json(ctx, &chunks),
                Api::Anthropic => anthropic::text_json(ctx, &chunks),
            };
            return Ok(json_response(200, &body));
        }
        Step::ToolCalls(calls) if !stream => {
            let body = match api {
                Api::OpenAi => openai::tools_json(ctx, &calls),
                Api::Anthropic => anthropic::tools_json(ctx, &calls),
            };
            return Ok(json_response(200, &body));
        }
        Step::SlowHeadersThenStall { ms } if !stream => {
            vec![Piece::Sleep(ms), Piece::Abort]
        }
        Step::CutMidStream if !stream => {
            let chunks = split_words("Hello from the fake LLM!");
            let full = match api {
                Api::OpenAi => openai::text_json(ctx, &chunks),
                Api::Anthropic => anthropic::text_json(ctx, &chunks),
            };
            let full = Bytes::from(full.to_string());
            let half = full.slice(..full.len() / 2);
            vec![Piece::Data(half), Piece::Sleep(FLUSH_MS), Piece::Abort]
        }
        Step::Text { chunks, delay_ms } => match api {
            Api::OpenAi => openai::text_stream(ctx, &chunks, delay_ms),
            Api::Anthropic => anthropic::text_stream(ctx, &chunks, delay_ms),
        },
        Step::ToolCalls(calls) => match api {
            Api::OpenAi => openai::tools_stream(ctx, &calls),
            Api::Anthropic => anthropic::tools_stream(ctx, &calls),
        },
        Step::SlowHeadersThenStall { ms } => {
            let mut p = partial_stream(api, ctx);
            p.extend([Piece::Sleep(ms), Piece::Abort]);
            p
        }
        Step::CutMidStream => {
            let mut p = partial_stream(api, ctx);
            p.extend([Piece::Sleep(FLUSH_MS), Piece::Abort]);
            p
        }
    };
    let content_type = if stream || garbage {
        "text/event-stream"
    } else {
        "application/json"
    };
    Ok(stream_response(content_type, pieces))
}

/// The stream's opening and exactly one text chunk, with no end marker.
fn partial_stream(api: Api, ctx: &Ctx) -> Vec<Piece> {
    match api {
        Api::OpenAi => openai::partial_stream(ctx, "Hello"),
        Api::Anthropic => anthropic::partial_stream(ctx, "Hello"),
    }
}

fn models_json() -> Value {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "fake"});
    json!({"object": "list", "data": [model("fake-model"), model("fake-model-large")]})
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn with_body(code: u16, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status_code(code);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    with_body(code, "application/json", full_body(body.to_string()))
}

fn error_response(
    api: Api,
    code: u16,
    retry_after_secs: Option<u64>,
    body: Option<String>,
) -> Response<Body> {
    let mut resp = match body {
        Some(raw) => {
            let ct = if serde_json::from_str::<Value>(&raw).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            with_body(code, ct, full_body(raw))
        }
        None => {
            let msg = format!("fake LLM error (HTTP {code})");
            json_response(code, &api.error_body(code, &msg))
        }
    };
    if let Some(secs) = retry_after_secs {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn stream_response(content_type: &'static str, pieces: Vec<Piece>) -> Response<Body> {
    let frames = stream::unfold(VecDeque::from(pieces), |mut q| async move {
        loop {
            match q.pop_front()? {
                Piece::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Piece::Data(b) => return Some((Ok(Frame::data(b)), q)),
                Piece::Abort => {
                    let err = std::io::Error::other("fake LLM: connection cut");
                    return Some((Err(err), VecDeque::new()));
                }
            }
        }
    });
    let mut resp = with_body(200, content_type, StreamBody::new(frames).boxed_unsync());
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
