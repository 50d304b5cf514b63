//! `web_fetch {url, maxChars?}`: GET a public http(s) URL and return its text.
//!
//! SSRF defence: the host is resolved here, every address is checked with
//! [`forbidden_reason`], and the request is pinned to the checked address (reqwest's own DNS
//! is replaced by a resolver that refuses everything). Redirects are followed by hand so each
//! hop is checked again. The body is read in chunks and never past `max_response_bytes`.

use super::net_guard::forbidden_reason;
use super::{capped, parse_args, Tool, ToolContext, ToolFuture, ToolOutput};
use crate::types::ToolSpec;
use clawgate_config::WebFetchConfig;
use reqwest::header::{
    HeaderMap, AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

pub struct WebFetch {
    cfg: WebFetchConfig,
    /// Test builds only: lets tests talk to a server on loopback.
    #[cfg(test)]
    allow_loopback: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
    #[serde(rename = "maxChars")]
    max_chars: Option<u64>,
}

/// reqwest's resolver for pinned clients: any lookup not covered by the pinned override fails.
struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let msg = format!("refused: unpinned DNS lookup for {}", name.as_str());
        Box::pin(async move { Err(msg.into()) })
    }
}

impl WebFetch {
    pub fn new(cfg: WebFetchConfig) -> Self {
        WebFetch {
            cfg,
            #[cfg(test)]
            allow_loopback: false,
        }
    }

    /// Like [`WebFetch::new`] but loopback addresses are allowed, for local test servers.
    #[cfg(test)]
    pub(crate) fn allowing_loopback(cfg: WebFetchConfig) -> Self {
        WebFetch {
            cfg,
            allow_loopback: true,
        }
    }

    fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        #[cfg(test)]
        if self.allow_loopback && ip.is_loopback() {
            return None;
        }
        forbidden_reason(ip)
    }

    /// Checks scheme, credentials and every address of the host; returns the domain to pin
    /// (none for an IP literal) and the address to connect to.
    async fn check_url(
        &self,
        url: &Url,
        deadline: Instant,
    ) -> Result<(Option<String>, SocketAddr), String> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "refused: only http and https URLs can be fetched (got {other}:)"
                ))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("refused: URLs with credentials are not allowed".into());
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("refused: the URL has no host")?;
        let port = url
            .port_or_known_default()
            .ok_or("refused: the URL has no port")?;
        let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => Some(IpAddr::V6(
                v6.parse::<Ipv6Addr>()
                    .map_err(|_| format!("invalid IPv6 host {host}"))?,
            )),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        if let Some(ip) = literal {
            if let Some(reason) = self.refusal(ip) {
                return Err(format!("refused: {ip} is {reason}"));
            }
            return Ok((None, SocketAddr::new(ip, port)));
        }
        let addrs: Vec<SocketAddr> =
            match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(format!("timed out resolving {host}")),
                Ok(Err(_)) => return Err(format!("could not resolve {host}")),
                Ok(Ok(found)) => found.collect(),
            };
        // Any bad address refuses the host: a resolver may rotate between them.
        for addr in &addrs {
            if let Some(reason) = self.refusal(addr.ip()) {
                return Err(format!(
                    "refused: {host} resolves to {}, which is {reason}",
                    addr.ip()
                ));
            }
        }
        let first = addrs
            .first()
            .ok_or_else(|| format!("could not resolve {host}"))?;
        Ok((Some(host.to_string()), *first))
    }

    async fn fetch(&self, args: Value) -> ToolOutput {
        if !self.cfg.enabled {
            return ToolOutput::error("web_fetch is disabled (tools.web_fetch.enabled: false)");
        }
        let args: FetchArgs = match parse_args(args) {
            Ok(a) => a,
            Err(out) => return out,
        };
        if args.max_chars == Some(0) {
            return ToolOutput::error("invalid arguments: maxChars must be at least 1");
        }
        let mut url = match Url::parse(&args.url) {
            Ok(u) => u,
            Err(e) => {
                return ToolOutput::error(format!(
                    "invalid arguments: url is not a valid absolute URL ({e})"
                ))
            }
        };
        let deadline = Instant::now() + Duration::from_millis(self.cfg.timeout_ms);
        // We send no credentials, but any added later must not follow a cross-origin redirect.
        let mut headers = HeaderMap::new();
        let mut origin = url.origin().ascii_serialization();
        let mut hop = 0u32;
        loop {
            let next_origin = url.origin().ascii_serialization();
            if next_origin != origin {
                for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                    headers.remove(name);
                }
                origin = next_origin;
            }
            let (pin, addr) = match self.check_url(&url, deadline).await {
                Ok(t) => t,
                Err(msg) => return ToolOutput::error(msg),
            };
            let response = match self.send(&url, pin, addr, &headers, deadline).await {
                Ok(r) => r,
                Err(msg) => return ToolOutput::error(msg),
            };
            if !response.status().is_redirection() {
                return self.read_body(response, args.max_chars, deadline).await;
            }
            let Some(location) = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return self.read_body(response, args.max_chars, deadline).await;
            };
            if hop >= self.cfg.max_redirects {
                return ToolOutput::error(format!(
                    "refused: too many redirects (tools.web_fetch.max_redirects: {})",
                    self.cfg.max_redirects
                ));
            }
            url = match url.join(location) {
                Ok(u) => u,
                Err(_) => return ToolOutput::error("the server sent an invalid redirect location"),
            };
            hop += 1;
        }
    }

    /// One request over a client pinned to `addr`.
    async fn send(
        &self,
        url: &Url,
        pin: Option<String>,
        addr: SocketAddr,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<reqwest::Response, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out fetching {url}"));
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(left)
            .connect_timeout(left)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("clawgate-web-fetch/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(NoDns));
        if let Some(domain) = pin.as_deref() {
            builder = builder.resolve(domain, addr);
        }
        let client = builder
            .build()
            .map_err(|_| "could not set up the HTTP client".to_string())?;
        let request = client.get(url.clone()).headers(headers.clone());
        match timeout_at(deadline, request.send()).await {
            Err(_) => Err(format!("timed out fetching {url}")),
            Ok(Err(e)) if e.is_timeout() => Err(format!("timed out fetching {url}")),
            Ok(Err(_)) => Err(format!("could not fetch {url}: connection failed")),
            Ok(Ok(r)) => Ok(r),
        }
    }

    async fn read_body(
        &self,
        mut response: reqwest::Response,
        max_chars: Option<u64>,
        deadline: Instant,
    ) -> ToolOutput {
        let status = response.status();
        let final_url = response.url().to_string();
        let ctype = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = ctype.split(';').next().unwrap_or("").trim().to_string();
        let limit = self.cfg.max_response_bytes;
        let mut body: Vec<u8> = Vec::new();
        let mut cut = false;
        loop {
            match timeout_at(deadline, response.chunk()).await {
                Err(_) => return ToolOutput::error(format!("timed out reading {final_url}")),
                Ok(Err(_)) => {
                    return ToolOutput::error(format!("error reading the body of {final_url}"))
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    let room = limit - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        cut = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        drop(response);
        if !is_textual(&mime) {
            return ToolOutput::error(format!(
                "cannot show {mime} content as text ({} bytes received)",
                body.len()
            ));
        }
        let raw = String::from_utf8_lossy(&body);
        let mut text = if mime == "text/html" || mime == "application/xhtml+xml" {
            html_to_text(&raw)
        } else {
            raw.into_owned()
        };
        if cut {
            text.push_str(&format!(
                "\n[response truncated at {limit} bytes (tools.web_fetch.max_response_bytes)]"
            ));
        }
        if let Some(max) = max_chars.and_then(|m| usize::try_from(m).ok()) {
            if let Some((at, _)) = text.char_indices().nth(max) {
                text.truncate(at);
                text.push_str(&format!("\n[truncated at maxChars={max} characters]"));
            }
        }
        let shown = if mime.is_empty() { "unknown" } else { &mime };
        let content = format!(
            "URL: {final_url}\nStatus: {}\nContent-Type: {shown}\n\n{text}",
            status.as_u16()
        );
        if status.is_success() {
            ToolOutput::ok(content)
        } else {
            ToolOutput::error(content)
        }
    }
}

impl Tool for WebFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "web_fetch".into(),
            description: "Fetch a public http(s) URL and return its content as text (HTML is reduced to text).".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "Absolute http:// or https:// URL."},
                    "maxChars": {"type": "integer", "minimum": 1, "description": "Return at most this many characters."}
                },
                "required": ["url"],
                "additionalProperties": false
            }),
        }
    }

    fn run<'a>(&'a self, args: Value, ctx: &'a ToolContext) -> ToolFuture<'a> {
        Box::pin(async move { capped(self.fetch(args).await, ctx) })
    }
}

fn is_textual(mime: &str) -> bool {
    mime.is_empty()
        || mime.starts_with("text/")
        || [
            "json",
            "xml",
            "javascript",
            "yaml",
            "csv",
            "x-www-form-urlencoded",
        ]
        .iter()
        .any(|t| mime.contains(t))
}

/// A crude HTML-to-text pass: drops scripts, styles, comments and tags; decodes common
/// entities; turns block elements into line breaks.
pub(crate) fn html_to_text(html: &str) -> String {
    // ASCII lowercasing keeps byte offsets identical to `html`.
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(html.len(), |p| i + p + 3);
            continue;
        }
        if rest.starts_with('<') {
            let Some(close) = rest.find('>') else { break };
            let tag = &rest[1..close];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            i += close + 1;
            if !tag.starts_with('/') && (name == "script" || name == "style") {
                let end_tag = format!("</{name}");
                i = lower[i..].find(&end_tag).map_or(html.len(), |p| {
                    let after = i + p;
                    lower[after..]
                        .find('>')
                        .map_or(html.len(), |q| after + q + 1)
                });
                continue;
            }
            const BLOCKS: &[&str] = &[
                "p",
                "br",
                "div",
                "li",
                "tr",
                "h1",
                "h2",
                "h3",
                "h4",
                "h5",
                "h6",
                "title",
                "section",
                "article",
                "header",
                "footer",
                "pre",
                "blockquote",
                "table",
                "ul",
                "ol",
            ];
            if BLOCKS.contains(&name.as_str()) {
                out.push('\n');
            }
            continue;
        }
        let next = rest.find('<').map_or(html.len(), |p| i + p);
        out.push_str(&decode_entities(&html[i..next]));
        i = next;
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() || lines.last().is_some_and(|l| !l.is_empty()) {
            lines.push(line);
        }
    }
    lines.join("\n").trim().to_string()
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| entity(&rest[1..=semi]).map(|c| (c, semi + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}
