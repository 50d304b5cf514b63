//! OpenClaw's Control UI, served from `gateway.controlUi.root` under
//! `gateway.controlUi.basePath`, the way OpenClaw's own gateway serves it:
//!
//! * `index.html` is prepared once per version of the file on disk: `./assets/…` and the
//!   root public files become absolute URLs under the base path (public files versioned
//!   with `?v=<build id>`), and `<html>` gets `data-openclaw-control-ui-base-path`,
//!   `data-openclaw-terminal-enabled="false"` and the build id attribute. The CSP of the page
//!   allows exactly its inline scripts (their SHA-256, computed when the file is loaded).
//!   Served with `Cache-Control: no-cache`.
//! * Other GETs that are not files fall back to `index.html` (the SPA routes) when the client
//!   takes HTML; a missing file with a static extension is 404.
//! * `assets/*` (fingerprinted) are immutable-cached, and their precompressed `.br`/`.gz`
//!   siblings are sent when `Accept-Encoding` allows (`Content-Encoding`, `Vary`).
//! * `control-ui-config.json` (and its `__openclaw` aliases) needs `Authorization: Bearer`
//!   with the shared secret or a paired device's token; failures count in the login limiter.
//! * Paths with `..`, encoded slashes or NUL, and files whose real path leaves `root`
//!   (symlinks) are refused. Files are streamed from `tokio::fs` in 64 KiB chunks (each file at
//!   most [`MAX_FILE_BYTES`]); only the prepared `index.html` stays in memory.

use crate::auth::Peer;
use crate::http::PeerAddr;
use crate::state::Gateway;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A response still being produced (files are read asynchronously).
pub type Pending = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Largest file served (the biggest Control UI asset is a few MiB).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Largest `index.html` accepted (the shipped one is ~18 KiB).
pub const MAX_INDEX_BYTES: u64 = 2 * 1024 * 1024;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const BASE_PATH_ATTR: &str = "data-openclaw-control-ui-base-path";
const TERMINAL_ATTR: &str = "data-openclaw-terminal-enabled";
const BUILD_ID_ATTR: &str = "data-openclaw-control-ui-build-id";
const CONFIG_JSON: &str = "/control-ui-config.json";

/// Files at the UI's root that index.html links and that the UI also asks for under
/// `/__openclaw__/`.
const ROOT_PUBLIC: &[&str] = &[
    "apple-touch-icon.png",
    "favicon-32.png",
    "favicon.ico",
    "favicon.svg",
    "manifest.webmanifest",
    "sw.js",
];

/// The CSP of every Control UI response; HTML pages add their inline-script hashes.
fn csp(script_hashes: &[String]) -> String {
    let mut script = String::from("'self'");
    for h in script_hashes {
        script.push_str(" '");
        script.push_str(h);
        script.push('\'');
    }
    format!(
        "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; \
         form-action 'self'; frame-src 'self'; script-src {script}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
         media-src 'self' data: blob:; font-src 'self' data:; worker-src 'self'; \
         manifest-src 'self'; connect-src 'self' ws: wss: data: blob:"
    )
}

/// Whether the path (already known not to be a probe/webhook route) is the Control UI's
/// WebSocket endpoint under a non-empty base path (`<base>` or `<base>/`).
pub fn is_ws_path(gw: &Gateway, path: &str) -> bool {
    let ui = &gw.config.gateway.control_ui;
    ui.enabled
        && ui.root.is_some()
        && !ui.base_path.is_empty()
        && (path == ui.base_path || path.strip_prefix(ui.base_path.as_str()) == Some("/"))
}

/// `None` when no Control UI root is configured (or the UI is disabled) or the path is not
/// the UI's; otherwise the response, possibly still reading files.
pub fn serve(gw: &Arc<Gateway>, req: &Request) -> Option<Pending> {
    let ui = &gw.config.gateway.control_ui;
    if !ui.enabled {
        return None;
    }
    let root = ui.root.clone()?;
    let base = ui.base_path.as_str();
    let path = req.uri().path();
    let rel_url = if base.is_empty() {
        path
    } else if path == base {
        let q = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let loc = format!("{base}/{q}");
        return Some(ready(redirect(&loc)));
    } else {
        path.strip_prefix(base).filter(|r| r.starts_with('/'))?
    };
    let headers = req.headers().clone();
    let is_head = req.method() == Method::HEAD;

    // The bootstrap config, before anything touches the disk.
    if rel_url == CONFIG_JSON
        || rel_url == "/__openclaw/control-ui-config.json"
        || (base.is_empty() && rel_url == "/__openclaw__/control-ui-config.json")
    {
        let peer = req.extensions().get::<PeerAddr>().copied();
        let gw = gw.clone();
        return Some(Box::pin(async move {
            bootstrap_config(gw, peer, headers, is_head).await
        }));
    }
    if base.is_empty() {
        // Routes that belong to the gateway, not to the UI.
        if rel_url == "/" && prefers_json(&headers) {
            return None;
        }
        for p in ["/api", "/v1", "/ui"] {
            if rel_url == p || rel_url.starts_with(&format!("{p}/")) {
                return None;
            }
        }
    }
    let target = match resolve(rel_url) {
        Ok(t) => t,
        Err(()) => return Some(ready(not_found())),
    };
    let build_version = query_param(req.uri().query(), "v");
    let base = base.to_string();
    Some(Box::pin(async move {
        serve_target(root, base, target, headers, is_head, build_version).await
    }))
}

fn ready(resp: Response) -> Pending {
    Box::pin(std::future::ready(resp))
}

/// What a request path asks for, after decoding and the traversal checks.
#[derive(Debug, PartialEq)]
enum Target {
    /// `index.html` (the root, a directory, or an SPA route).
    Index,
    /// A file under the root, by relative path.
    File(String),
}

/// Decodes and checks a path (relative to the base path, starting with `/`). `Err` for
/// anything that could step outside the root: `..`/`.` segments (also percent-encoded),
/// encoded `/` or `\`, a backslash, NUL or other control characters, bad UTF-8.
fn resolve(rel_url: &str) -> Result<Target, ()> {
    let lower = rel_url.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return Err(());
    }
    let decoded = percent_decode(rel_url).ok_or(())?;
    if decoded.contains(['\\', '\0']) || decoded.chars().any(char::is_control) {
        return Err(());
    }
    let mut rel = decoded.trim_start_matches('/').to_string();
    for seg in rel.split('/') {
        if seg == ".." || seg == "." {
            return Err(());
        }
    }
    if rel.contains("//") {
        return Err(());
    }
    if let Some(ns) = rel.strip_prefix("__openclaw__/") {
        if ROOT_PUBLIC.contains(&ns) {
            rel = ns.to_string();
        }
    }
    if let Some(i) = rel
        .find("assets/")
        .filter(|i| *i == 0 || rel[..*i].ends_with('/'))
    {
        // Deep links load `./assets/…` relative to the route; the files live at the root.
        rel = rel[i..].to_string();
    }
    if rel.is_empty() || rel.ends_with('/') || rel == "index.html" || rel.ends_with("/index.html") {
        return Ok(Target::Index);
    }
    Ok(Target::File(rel))
}

/// Decodes `%XX` escapes; a malformed escape or a result that is not UTF-8 is refused
/// (`None`), never passed through as literal text.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v).unwrap_or_default())
    })
}

fn extension(rel: &str) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn content_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json; charset=utf-8",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        _ => return None,
    })
}

/// Text formats the build precompresses.
fn compressible(ext: &str) -> bool {
    matches!(
        ext,
        "css" | "html" | "js" | "mjs" | "json" | "svg" | "txt" | "wasm" | "webmanifest"
    )
}

/// Root files whose URL carries the build id, so they may be cached for good when it matches.
fn versioned_public(rel: &str) -> bool {
    if ROOT_PUBLIC.contains(&rel) {
        return rel != "sw.js";
    }
    let ext = extension(rel);
    let dir = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    match dir {
        "fonts" => ext == "css" || ext == "woff2",
        "themes" => ext == "css",
        "app-art" | "community-art" => ext == "webp",
        "provider-icons" | "cloud-provider-icons" => ext == "svg",
        d if d == "file-icons" || d.starts_with("file-icons/") => ext == "svg",
        _ => false,
    }
}

/// The client asked for JSON rather than a page (`Accept: application/json`).
fn prefers_json(h: &HeaderMap) -> bool {
    let a = accept(h);
    a.contains("application/json") && !a.contains("text/html")
}

fn accept(h: &HeaderMap) -> String {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether a missing path may be answered with the SPA's index.html: the client takes HTML.
fn takes_html(h: &HeaderMap) -> bool {
    let a = accept(h);
    a.trim().is_empty()
        || a.contains("text/html")
        || a.contains("application/xhtml+xml")
        || a.contains("*/*")
}

/// The encodings the client accepts among br and gzip, best first (q=0 excludes).
fn accepted_encodings(h: &HeaderMap) -> Vec<&'static str> {
    let raw = h
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut br = None;
    let mut gz = None;
    let mut star = None;
    for part in raw.split(',') {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in it {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        match name.as_str() {
            "br" => br = Some(q),
            "gzip" | "x-gzip" => gz = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    let br = br.or(star).unwrap_or(0.0);
    let gz = gz.or(star).unwrap_or(0.0);
    let mut out = Vec::new();
    if br > 0.0 && br >= gz {
        out.push("br");
        if gz > 0.0 {
            out.push("gzip");
        }
    } else {
        if gz > 0.0 {
            out.push("gzip");
        }
        if br > 0.0 {
            out.push("br");
        }
    }
    out
}

fn with_headers(mut resp: Response, page_csp: &str) -> Response {
    super::security_headers(&mut resp, Some(page_csp));
    resp
}

fn not_found() -> Response {
    let mut resp = Response::new(Body::from(
        r#"{"error":{"code":"not_found","message":"not found"}}"#,
    ));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_headers(resp, &csp(&[]))
}

fn redirect(location: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    with_headers(resp, &csp(&[]))
}

fn json_response(status: StatusCode, body: String, cache: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    with_headers(resp, &csp(&[]))
}

fn unavailable(message: &str) -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": {"code": "unavailable", "message": message}}).to_string(),
        "no-store",
    )
}

/// A file's real path, when it is a regular file inside the root's real path.
async fn safe_file(root_real: &Path, candidate: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let real = tokio::fs::canonicalize(candidate).await.ok()?;
    if !real.starts_with(root_real) {
        tracing::debug!(path = %candidate.display(), "control ui: file outside the root refused");
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    meta.is_file().then_some((real, meta))
}

async fn serve_target(
    root: PathBuf,
    base: String,
    target: Target,
    headers: HeaderMap,
    is_head: bool,
    version: Option<String>,
) -> Response {
    let Ok(root_real) = tokio::fs::canonicalize(&root).await else {
        return unavailable("the Control UI directory (gateway.controlUi.root) is missing");
    };
    let rel = match target {
        Target::Index => return serve_index(&root_real, &base, is_head).await,
        Target::File(rel) => rel,
    };
    let ext = extension(&rel);
    let Some((real, meta)) = safe_file(&root_real, &root_real.join(&rel)).await else {
        if content_type(&ext).is_some() && ext != "html" || rel.starts_with("assets/") {
            return not_found();
        }
        if rel.starts_with("__openclaw__/") || !takes_html(&headers) {
            return not_found();
        }
        return serve_index(&root_real, &base, is_head).await;
    };
    if ext == "html" {
        // Only the prepared index.html is served as a page (its CSP hashes its scripts).
        return serve_index(&root_real, &base, is_head).await;
    }
    if meta.len() > MAX_FILE_BYTES {
        return not_found();
    }
    let fingerprinted = rel.starts_with("assets/");
    let build_id = match &version {
        Some(_) => load_index(&root_real, &base)
            .await
            .ok()
            .and_then(|p| p.build_id.clone()),
        None => None,
    };
    let immutable =
        fingerprinted || (version.is_some() && version == build_id && versioned_public(&rel));

    // Precompressed sibling of a fingerprinted text asset.
    let mut body_path = real;
    let mut body_len = meta.len();
    let mut encoding = None;
    if fingerprinted && compressible(&ext) {
        for enc in accepted_encodings(&headers) {
            let suffix = if enc == "br" { "br" } else { "gz" };
            let sib = root_real.join(format!("{rel}.{suffix}"));
            if let Some((p, m)) = safe_file(&root_real, &sib).await {
                if m.len() <= MAX_FILE_BYTES {
                    body_path = p;
                    body_len = m.len();
                    encoding = Some(enc);
                    break;
                }
            }
        }
    }
    let modified = meta.modified().ok().map(|m| m.min(SystemTime::now()));
    let unmodified = match (modified, headers.get(header::IF_MODIFIED_SINCE)) {
        (Some(m), Some(ims)) if headers.get(header::IF_NONE_MATCH).is_none() => ims
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
            .is_some_and(|since| {
                let secs = |t: SystemTime| {
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                };
                secs(m) <= secs(since)
            }),
        _ => false,
    };
    let mut resp = if unmodified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if is_head {
        Response::new(Body::empty())
    } else {
        match tokio::fs::File::open(&body_path).await {
            Ok(file) => Response::new(file_body(file, body_len)),
            Err(_) => return not_found(),
        }
    };
    let h = resp.headers_mut();
    if !unmodified {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&ext).unwrap_or("application/octet-stream")),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { IMMUTABLE } else { "no-cache" }),
    );
    if let Some(m) = modified {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    with_headers(resp, &csp(&[]))
}

/// Streams `len` bytes of `file` in chunks of [`CHUNK`] (a response holds one chunk in
/// memory, whatever the file's size); a file that shrank ends the body early (an error).
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Body::from_stream(stream)
}

/// Bytes read from a file per body chunk.
const CHUNK: usize = 64 * 1024;

/// index.html as served: rewritten for the base path, with the CSP that allows its scripts.
struct Prepared {
    root: PathBuf,
    base: String,
    len: u64,
    modified: Option<SystemTime>,
    html: Arc<str>,
    csp: String,
    build_id: Option<String>,
}

/// The one prepared index.html kept in memory (per root and base path; replaced when the
/// file changes on disk).
static INDEX: Mutex<Option<Arc<Prepared>>> = Mutex::new(None);

async fn load_index(root_real: &Path, base: &str) -> Result<Arc<Prepared>, Response> {
    let path = root_real.join("index.html");
    let Some((real, meta)) = safe_file(root_real, &path).await else {
        return Err(unavailable(
            "the Control UI directory (gateway.controlUi.root) has no index.html",
        ));
    };
    let modified = meta.modified().ok();
    {
        let cached = INDEX.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cached.as_ref() {
            if p.root == root_real
                && p.base == base
                && p.len == meta.len()
                && p.modified == modified
            {
                return Ok(p.clone());
            }
        }
    }
    if meta.len() > MAX_INDEX_BYTES {
        return Err(unavailable("the Control UI's index.html is too large"));
    }
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|_| unavailable("cannot read the Control UI's index.html"))?;
    let text = String::from_utf8_lossy(&bytes);
    let (html, build_id) = prepare_index(&text, base);
    let hashes = inline_script_hashes(&html);
    let prepared = Arc::new(Prepared {
        root: root_real.to_path_buf(),
        base: base.to_string(),
        len: meta.len(),
        modified,
        html: html.into(),
        csp: csp(&hashes),
        build_id,
    });
    *INDEX.lock().unwrap_or_else(|p| p.into_inner()) = Some(prepared.clone());
    Ok(prepared)
}

async fn serve_index(root_real: &Path, base: &str, is_head: bool) -> Response {
    let prepared = match load_index(root_real, base).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let len = prepared.html.len();
    let mut resp = if is_head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(prepared.html.to_string()))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    with_headers(resp, &prepared.csp)
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The value of attribute `name` in an opening tag (double-quoted values).
fn attr_value(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let end = tag[i..].find('"')?;
    Some(tag[i..i + end].to_string())
}

/// Rewrites index.html for `base` and returns it with the build id it names.
fn prepare_index(html: &str, base: &str) -> (String, Option<String>) {
    let lower = html.to_ascii_lowercase();
    let html_tag = lower.find("<html").and_then(|s| {
        let e = lower[s..].find('>')?;
        Some((s, s + e + 1))
    });
    let build_id = html_tag.and_then(|(s, e)| attr_value(&html[s..e], BUILD_ID_ATTR));
    let version = build_id
        .as_deref()
        .map(|id| format!("?v={}", percent_encode_component(id)))
        .unwrap_or_default();
    let mut out = html
        .replace("src=\"./assets/", &format!("src=\"{base}/assets/"))
        .replace("href=\"./assets/", &format!("href=\"{base}/assets/"));
    for asset in ROOT_PUBLIC {
        let v = if versioned_public(asset) {
            version.as_str()
        } else {
            ""
        };
        let to = format!("href=\"{base}/{asset}{v}\"");
        out = out
            .replace(&format!("href=\"./{asset}\""), &to)
            .replace(&format!("href=\"/{asset}\""), &to);
    }
    // The <html> tag: our attributes first, any build id attribute replaced by ours.
    let lower = out.to_ascii_lowercase();
    if let Some(s) = lower.find("<html") {
        if let Some(e) = lower[s..].find('>').map(|e| s + e) {
            let mut tag = out[s + 5..e].to_string();
            if let Some(i) = tag.find(&format!(" {BUILD_ID_ATTR}=\"")) {
                let after = i + BUILD_ID_ATTR.len() + 3;
                if let Some(end) = tag[after..].find('"') {
                    tag.replace_range(i..after + end + 1, "");
                }
            }
            let build = build_id
                .as_deref()
                .map(|id| format!(" {BUILD_ID_ATTR}=\"{}\"", escape_attr(id)))
                .unwrap_or_default();
            let new_tag = format!(
                "<html {BASE_PATH_ATTR}=\"{}\" {TERMINAL_ATTR}=\"false\"{build}{tag}",
                escape_attr(base)
            );
            out.replace_range(s..e, &new_tag);
        }
    }
    (out, build_id)
}

/// Escapes a query component (like JavaScript's `encodeURIComponent`).
fn percent_encode_component(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const KEEP: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    utf8_percent_encode(s, KEEP).to_string()
}

/// `sha256-<base64>` of every inline `<script>` body (scripts with `src` are skipped).
fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<script") {
        let open_start = from + i;
        let after_name = open_start + 7;
        // `<scripts>` or `<script-x>` are other elements.
        if !lower[after_name..].starts_with(['>', ' ', '\t', '\n', '\r', '/']) {
            from = after_name;
            continue;
        }
        let Some(open_end) = lower[open_start..].find('>').map(|e| open_start + e + 1) else {
            break;
        };
        let Some(close) = lower[open_end..].find("</script").map(|c| open_end + c) else {
            break;
        };
        let open_tag = &lower[open_start..open_end];
        let has_src = open_tag[7..open_tag.len() - 1]
            .split(|c: char| c.is_whitespace())
            .any(|a| a == "src" || a.starts_with("src="));
        let body = &html[open_end..close];
        if !has_src && !body.is_empty() {
            let d = Sha256::digest(body.as_bytes());
            out.push(format!(
                "sha256-{}",
                base64::engine::general_purpose::STANDARD.encode(d)
            ));
        }
        from = close + 8;
    }
    out
}

/// `GET <base>/control-ui-config.json`: the UI's bootstrap settings, for a client holding
/// the shared secret or a paired device's token.
async fn bootstrap_config(
    gw: Arc<Gateway>,
    peer: Option<PeerAddr>,
    headers: HeaderMap,
    is_head: bool,
) -> Response {
    let unauthorized = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"message":"Unauthorized","type":"unauthorized"}}"#.to_string(),
            "no-store",
        )
    };
    let Some(PeerAddr(addr)) = peer else {
        return unauthorized();
    };
    let client_ip = Peer::from_parts(&gw, addr, &headers).client_ip;
    if let Err(retry_ms) = gw.limiter.check(client_ip) {
        let mut resp = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":{"message":"Too many failed attempts","type":"rate_limited"}}"#.to_string(),
            "no-store",
        );
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_ms.div_ceil(1000).max(1)),
        );
        return resp;
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
        .filter(|t| !t.is_empty() && t.len() <= 4096);
    let ok = match gw.auth.mode {
        clawgate_config::AuthMode::None => true,
        _ => match token {
            None => return unauthorized(),
            Some(t) => {
                let shared = gw.auth.secret.as_ref().is_some_and(|s| s.verify(&t));
                if shared {
                    true
                } else {
                    let g = gw.clone();
                    tokio::task::spawn_blocking(move || g.devices.matches_any_token(&t))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(false)
                }
            }
        },
    };
    if !ok {
        if gw.limiter.record_failure(client_ip).is_some() {
            tracing::warn!(client = %client_ip, "control-ui-config.json: repeated bad tokens; client locked out");
        }
        return unauthorized();
    }
    gw.limiter.record_success(client_ip);
    let ui = &gw.config.gateway.control_ui;
    let body = json!({
        "basePath": ui.base_path,
        "assistantName": "Assistant",
        "assistantAvatar": "A",
        "assistantAvatarSource": null,
        "assistantAvatarStatus": null,
        "assistantAvatarReason": null,
        "assistantAgentId": "main",
        "serverVersion": crate::state::VERSION,
        "embedSandbox": "scripts",
        "allowExternalEmbedUrls": false,
        "automaticallyFetchFavicons": false,
        "communityInvite": false,
        "terminalEnabled": false,
        "cliAgentsEnabled": false,
        "pluginAssetsRequireAuth": gw.auth.mode != clawgate_config::AuthMode::None,
        "pluginFrameGrants": [],
    });
    let mut resp = json_response(StatusCode::OK, body.to_string(), "no-cache");
    if is_head {
        *resp.body_mut() = Body::empty();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_or_are_refused() {
        assert_eq!(resolve("/"), Ok(Target::Index));
        assert_eq!(resolve("/chat/main"), Ok(Target::File("chat/main".into())));
        assert_eq!(
            resolve("/chat/assets/x.js"),
            Ok(Target::File("assets/x.js".into()))
        );
        assert_eq!(
            resolve("/__openclaw__/sw.js"),
            Ok(Target::File("sw.js".into()))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a%2f..%2fb",
            "/a%5cb",
            "/a%00b",
            "/a\\b",
            "/./x",
            "/%ff",
            "/a//b",
        ] {
            assert_eq!(resolve(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn index_is_rewritten_and_hashed() {
        let src = "<!doctype html>\n<html data-openclaw-control-ui-build-id=\"B 1\" lang=\"en\"><head>\
                   <link rel=\"icon\" href=\"./favicon.svg\" /><link rel=\"manifest\" href=\"./sw.js\">\
                   <script>one()</script><script type=\"module\" src=\"./assets/i.js\"></script>\
                   <SCRIPT data-x>two()</SCRIPT></head></html>";
        let (html, id) = prepare_index(src, "/ui");
        assert_eq!(id.as_deref(), Some("B 1"));
        assert!(html.contains(
            "<html data-openclaw-control-ui-base-path=\"/ui\" data-openclaw-terminal-enabled=\"false\" data-openclaw-control-ui-build-id=\"B 1\" lang=\"en\">"
        ), "{html}");
        assert!(html.contains("href=\"/ui/favicon.svg?v=B%201\""));
        assert!(html.contains("href=\"/ui/sw.js\""));
        assert!(html.contains("src=\"/ui/assets/i.js\""));
        let hashes = inline_script_hashes(&html);
        let h = |s: &str| {
            format!(
                "sha256-{}",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
            )
        };
        assert_eq!(hashes, vec![h("one()"), h("two()")]);
    }

    #[test]
    fn encodings_follow_accept_encoding() {
        let mut h = HeaderMap::new();
        assert!(accepted_encodings(&h).is_empty());
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br, zstd"),
        );
        assert_eq!(accepted_encodings(&h), vec!["br", "gzip"]);
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br;q=0, gzip"),
        );
        assert_eq!(accepted_encodings(&h), vec!["gzip"]);
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(accepted_encodings(&h).is_empty());
    }
}
