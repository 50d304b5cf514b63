//! A minimal HTTP/1.1 client over a raw tokio `TcpStream`: what the webhook worker and
//! [`post_update`](super::post_update) use to deliver updates the way Telegram does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are cut off (the rest is ignored).
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawReply {
    pub status: u16,
    /// The status line's reason phrase (may be empty).
    pub reason: String,
    /// Names are lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path plus query, at least `/`.
    pub path: String,
}

impl Target {
    /// The `Host` header value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub(crate) fn split_url(url: &str) -> Result<Target, String> {
    let lower = url.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("http://") {
        (false, &url[7..])
    } else if lower.starts_with("https://") {
        (true, &url[8..])
    } else {
        return Err("Unsupported URL protocol".into());
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("Failed to parse IPv6 address")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("Failed to resolve host: no host specified".into());
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("Wrong port number specified: {p}"))?,
        None if https => 443,
        None => 80,
    };
    Ok(Target {
        https,
        host: host.to_string(),
        port,
        path,
    })
}

/// Sends one request (`Connection: close`) and reads the response, all within `timeout`.
/// Errors are phrased like Telegram's `last_error_message`.
pub(crate) async fn http_request(
    target: &Target,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<RawReply, String> {
    if target.https {
        return Err("SSL error: the fake Telegram delivers to http:// URLs only".into());
    }
    let work = async {
        let addr = (target.host.as_str(), target.port);
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = stream.set_nodelay(true);
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            target.path,
            target.authority(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        stream
            .write_all(&req)
            .await
            .map_err(|e| format!("Connection error: {e}"))?;
        read_reply(&mut stream).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err("Read timeout expired".into()))
}

fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        _ => format!("Failed to connect: {e}"),
    }
}

async fn read_reply(stream: &mut TcpStream) -> Result<RawReply, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A reset after a complete reply still counts as that reply.
            Err(e) => return parse_reply(&buf, true).ok_or(format!("Connection reset: {e}")),
        };
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0 || buf.len() >= MAX_REPLY_BYTES;
        if let Some(reply) = parse_reply(&buf, eof) {
            return Ok(reply);
        }
        if eof {
            return Err("Connection closed without a response".into());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A reply once the bytes so far hold a complete one (or whatever there is at EOF).
pub(crate) fn parse_reply(buf: &[u8], eof: bool) -> Option<RawReply> {
    let split = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let rest = &buf[split + 4..];
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    let _version = status_line.next()?;
    let status: u16 = status_line.next()?.parse().ok()?;
    let reason = status_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let body = if chunked {
        match dechunk(rest) {
            (body, true) => body,
            (body, false) if eof => body,
            _ => return None,
        }
    } else if let Some(n) = length {
        match rest.get(..n) {
            Some(body) => body.to_vec(),
            None if eof => rest.to_vec(),
            None => return None,
        }
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(RawReply {
        status,
        reason,
        headers,
        body,
    })
}

/// `(body, complete)` of a chunked body.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            return (body, false);
        };
        let size_line = String::from_utf8_lossy(&rest[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return (body, false);
        };
        let after = &rest[eol + 2..];
        if size == 0 {
            return (body, true);
        }
        if after.len() < size {
            body.extend_from_slice(after);
            return (body, false);
        }
        body.extend_from_slice(&after[..size]);
        rest = after[size..].strip_prefix(b"\r\n").unwrap_or_default();
    }
}
