//! A fake npm registry on loopback: serves a package document (`GET /<name>`) and the
//! tarballs it names (`GET /-/<file>.tgz`), for `clawgate ui install --registry`. Tests
//! publish real tarballs (from `npm pack`) or tampered re-packs of them, each with an
//! integrity string of their choice.

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

#[derive(Default)]
struct State {
    /// name → version → dist
    packages: HashMap<String, serde_json::Map<String, Value>>,
    /// path (`/-/file.tgz`) → bytes
    files: HashMap<String, Bytes>,
    requests: Vec<String>,
}

pub struct FakeNpm {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: AbortHandle,
}

impl Drop for FakeNpm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `sha512-<base64>` of `bytes`, as npm publishes `dist.integrity`.
pub fn sri_sha512(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

impl FakeNpm {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> FakeNpm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
        .abort_handle();
        FakeNpm {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes `name@version` with this tarball; `integrity` defaults to the tarball's
    /// real sha512.
    pub fn publish(&self, name: &str, version: &str, tgz: Vec<u8>, integrity: Option<String>) {
        let file = format!("/-/{name}-{version}.tgz");
        let integrity = integrity.unwrap_or_else(|| sri_sha512(&tgz));
        let dist = json!({
            "tarball": format!("{}{file}", self.url()),
            "integrity": integrity,
            "shasum": hex::encode(sha1_stub(&tgz)),
        });
        let mut st = self.state.lock().unwrap();
        st.files.insert(file, Bytes::from(tgz));
        st.packages.entry(name.to_string()).or_default().insert(
            version.to_string(),
            json!({"name": name, "version": version, "dist": dist}),
        );
    }

    /// Request lines seen (`GET /openclaw`, …).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// A stand-in for the legacy sha1 `shasum` field (clawgate must not rely on it).
fn sha1_stub(b: &[u8]) -> [u8; 20] {
    let d = Sha512::digest(b);
    let mut out = [0u8; 20];
    out.copy_from_slice(&d[..20]);
    out
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let mut st = state.lock().unwrap();
    st.requests.push(format!("{} {path}", req.method()));
    let (status, ctype, body) = if let Some(b) = st.files.get(&path) {
        (StatusCode::OK, "application/octet-stream", b.clone())
    } else if let Some(versions) = st.packages.get(path.trim_start_matches('/')) {
        let name = path.trim_start_matches('/');
        let latest = versions.keys().next_back().cloned().unwrap_or_default();
        let doc = json!({"name": name, "dist-tags": {"latest": latest}, "versions": versions});
        (
            StatusCode::OK,
            "application/vnd.npm.install-v1+json",
            Bytes::from(doc.to_string()),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(br#"{"error":"Not found"}"#),
        )
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", ctype.parse().unwrap());
    Ok(resp)
}

/// The real `openclaw@2026.9.6` tarball, fetched with `npm pack` into the compat cache once.
pub fn openclaw_tarball() -> PathBuf {
    let dir = crate::npm::cache_dir().join("npm-pack");
    let version = crate::npm::OPENCLAW.split('@').nth(1).unwrap();
    let tgz = dir.join(format!("openclaw-{version}.tgz"));
    if !tgz.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args([
                "pack",
                "--silent",
                crate::npm::OPENCLAW,
                "--pack-destination",
            ])
            .arg(&dir)
            .output()
            .expect("npm is required to fetch the openclaw tarball");
        assert!(
            out.status.success() && tgz.exists(),
            "npm pack {} failed:\n{}\n{}",
            crate::npm::OPENCLAW,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tgz
}

/// Changes the bytes of one tarball entry.
pub type Edit<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Re-packs a gzipped tarball with the entry at `path` changed by `edit` (or, with
/// `add`, a new regular file appended). Headers (names, modes) are kept.
pub fn repack(tgz: &Path, edit: Option<Edit<'_>>, add: Option<(&str, &[u8])>) -> Vec<u8> {
    let f = std::fs::File::open(tgz).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut edited = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut h = e.header().clone();
        if let Some((p, f)) = &edit {
            if name == *p {
                f(&mut data);
                edited = true;
            }
        }
        h.set_size(data.len() as u64);
        b.append_data(&mut h, &name, data.as_slice()).unwrap();
    }
    if let Some((p, _)) = &edit {
        assert!(edited, "no entry {p} in the tarball");
    }
    if let Some((p, data)) = add {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, p, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// A gzipped tarball with one raw entry whose name is written as given (for `..` and
/// absolute names, which `tar::Builder` refuses to write), plus an `index.html`.
pub fn hostile_tarball(name: &str, link_target: Option<&str>) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(5);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "package/dist/control-ui/index.html", &b"<html"[..])
        .unwrap();
    let mut h = tar::Header::new_old();
    {
        let raw = h.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_mode(0o644);
    match link_target {
        Some(t) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_link_name(t).unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        None => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(4);
            h.set_cksum();
            b.append(&h, &b"evil"[..]).unwrap();
        }
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// The entry names of a gzipped tarball, in order.
pub fn entry_names(tgz: &Path) -> Vec<String> {
    let f = std::fs::File::open(tgz).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}
