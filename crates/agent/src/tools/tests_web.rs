//! web_fetch against real sockets: refusals make no connection; a local server (reachable
//! only through the test-only loopback permission) serves pages, redirects and big bodies.

use super::web_fetch::html_to_text;
use super::*;
use clawgate_config::WebFetchConfig;
use serde_json::json;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cfg() -> WebFetchConfig {
    clawgate_config::ToolsConfig::default().web_fetch
}

fn ctx() -> ToolContext {
    ToolContext {
        workspace: std::env::temp_dir(),
        state_dir: std::env::temp_dir().join("clawgate-test-state"),
        config_file: None,
        max_output_bytes: 64 * 1024,
    }
}

async fn fetch(tool: &WebFetch, url: &str) -> ToolOutput {
    tool.run(json!({ "url": url }), &ctx()).await
}

/// Serves `respond(path)` to each connection; counts connections.
async fn serve<F>(respond: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(&str) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                let _ = sock.write_all(&respond(&path)).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, hits)
}

fn response(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn assert_nothing_accepted(listener: &std::net::TcpListener) {
    match listener.accept() {
        Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock),
        Ok((_, peer)) => panic!("web_fetch connected to the listener from {peer}"),
    }
}

#[tokio::test]
async fn forbidden_targets_are_refused_without_connecting() {
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind v4");
    v4.set_nonblocking(true).unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = std::net::TcpListener::bind("[::1]:0").ok();
    let v6_port = v6.as_ref().map_or(port, |l| l.local_addr().unwrap().port());
    if let Some(l) = &v6 {
        l.set_nonblocking(true).unwrap();
    }
    let tool = WebFetch::new(cfg());
    let cases: Vec<(String, &str)> = vec![
        (
            format!("http://127.0.0.1:{port}/"),
            "refused: 127.0.0.1 is a loopback address",
        ),
        (
            format!("http://localhost:{port}/"),
            "refused: localhost resolves to 127.0.0.1, which is a loopback address",
        ),
        (
            "http://localhost/".into(),
            "refused: localhost resolves to 127.0.0.1, which is a loopback address",
        ),
        ("http://[::1]/".into(), "refused: ::1 is a loopback address"),
        (
            format!("http://2130706433:{port}/"),
            "refused: 127.0.0.1 is a loopback address",
        ),
        (
            format!("http://0x7f.1:{port}/"),
            "refused: 127.0.0.1 is a loopback address",
        ),
        (
            format!("http://[::1]:{v6_port}/"),
            "refused: ::1 is a loopback address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "refused: ::ffff:127.0.0.1 is a loopback address",
        ),
        (
            format!("http://0.0.0.0:{port}/"),
            "refused: 0.0.0.0 is an unspecified address",
        ),
        (
            "http://169.254.169.254/latest/meta-data".into(),
            "refused: 169.254.169.254 is a link-local address (cloud metadata)",
        ),
        (
            "http://[64:ff9b::a9fe:a9fe]/".into(),
            "refused: 64:ff9b::a9fe:a9fe is a link-local address (cloud metadata)",
        ),
        (
            "http://10.0.0.1/".into(),
            "refused: 10.0.0.1 is a private address",
        ),
        (
            "http://100.64.0.1/".into(),
            "refused: 100.64.0.1 is a shared (CGNAT) address",
        ),
        (
            "http://[fd00::1]/".into(),
            "refused: fd00::1 is a unique local address",
        ),
        (
            "file:///etc/passwd".into(),
            "refused: only http and https URLs can be fetched (got file:)",
        ),
        (
            "ftp://example.com/x".into(),
            "refused: only http and https URLs can be fetched (got ftp:)",
        ),
        (
            "http://user:pw@example.com/".into(),
            "refused: URLs with credentials are not allowed",
        ),
    ];
    for (url, want) in cases {
        let out = fetch(&tool, &url).await;
        assert_eq!(out, ToolOutput::error(want), "{url}");
    }
    assert_nothing_accepted(&v4);
    if let Some(l) = &v6 {
        assert_nothing_accepted(l);
    }
}

#[tokio::test]
async fn disabled_and_invalid_arguments() {
    let mut c = cfg();
    c.enabled = false;
    let out = fetch(&WebFetch::new(c), "https://example.com/").await;
    assert_eq!(
        out,
        ToolOutput::error("web_fetch is disabled (tools.web_fetch.enabled: false)")
    );
    let tool = WebFetch::new(cfg());
    for args in [
        json!({}),
        json!({"url": 1}),
        json!({"url": "https://a.b/", "x": 1}),
        json!({"url": "https://a.b/", "maxChars": 0}),
    ] {
        let out = tool.run(args.clone(), &ctx()).await;
        assert!(
            out.is_error && out.content.starts_with("invalid arguments:"),
            "{args}: {out:?}"
        );
    }
    let out = fetch(&tool, "not a url").await;
    assert!(
        out.content
            .starts_with("invalid arguments: url is not a valid absolute URL"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn fetches_html_as_text_from_a_permitted_server() {
    let page = "<html><head><title>T</title><style>p{color:red}</style><script>var s='<p>x</p>';</script></head>\
                <body><!-- hidden --><h1>Hello &amp; welcome</h1><p>Line&nbsp;one</p><p>Line &#x32;</p></body></html>";
    let (addr, hits) =
        serve(move |_| response("200 OK", "Content-Type: text/html; charset=utf-8\r\n", page))
            .await;
    let tool = WebFetch::allowing_loopback(cfg());
    let out = fetch(&tool, &format!("http://{addr}/page")).await;
    let want = format!(
        "URL: http://{addr}/page\nStatus: 200\nContent-Type: text/html\n\nT\n\nHello & welcome\n\nLine one\n\nLine 2"
    );
    assert_eq!(out, ToolOutput::ok(want));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // `localhost` goes through our own lookup and the pinned client.
    let out = fetch(&tool, &format!("http://localhost:{}/p", addr.port())).await;
    assert!(!out.is_error, "{out:?}");
    assert!(out.content.ends_with("Line 2"));

    let out = tool
        .run(
            json!({"url": format!("http://{addr}/"), "maxChars": 5}),
            &ctx(),
        )
        .await;
    assert!(
        out.content
            .ends_with("\n\nT\n\nHe\n[truncated at maxChars=5 characters]"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn redirects_are_rechecked_per_hop() {
    let (addr, _) = serve(|path| match path {
        "/meta" => response(
            "302 Found",
            "Location: http://169.254.169.254/latest/meta-data\r\n",
            "",
        ),
        "/local" => response("301 Moved", "Location: /final\r\n", ""),
        "/final" => response("200 OK", "Content-Type: text/plain\r\n", "arrived"),
        _ => response("307 Temporary Redirect", "Location: /loop\r\n", ""),
    })
    .await;
    let tool = WebFetch::allowing_loopback(cfg());
    let out = fetch(&tool, &format!("http://{addr}/meta")).await;
    assert_eq!(
        out,
        ToolOutput::error("refused: 169.254.169.254 is a link-local address (cloud metadata)")
    );

    let out = fetch(&tool, &format!("http://{addr}/local")).await;
    assert_eq!(
        out,
        ToolOutput::ok(format!(
            "URL: http://{addr}/final\nStatus: 200\nContent-Type: text/plain\n\narrived"
        ))
    );

    let out = fetch(&tool, &format!("http://{addr}/loop")).await;
    assert_eq!(
        out,
        ToolOutput::error("refused: too many redirects (tools.web_fetch.max_redirects: 3)")
    );

    // Without the test permission the first hop itself is refused.
    let out = fetch(&WebFetch::new(cfg()), &format!("http://{addr}/local")).await;
    assert_eq!(
        out,
        ToolOutput::error("refused: 127.0.0.1 is a loopback address")
    );
}

#[tokio::test]
async fn response_size_is_capped_while_streaming() {
    let written = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = written.clone();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let total = 64 * 1024 * 1024;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\n\r\n"
        );
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 16 * 1024];
        for _ in 0..(total / chunk.len()) {
            if sock.write_all(&chunk).await.is_err() {
                return;
            }
            count.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let mut c = cfg();
    c.max_response_bytes = 1000;
    let out = fetch(
        &WebFetch::allowing_loopback(c),
        &format!("http://{addr}/big"),
    )
    .await;
    assert!(!out.is_error, "{out:?}");
    let body = out.content.split("\n\n").nth(1).unwrap_or_default();
    assert_eq!(
        body,
        format!(
            "{}\n[response truncated at 1000 bytes (tools.web_fetch.max_response_bytes)]",
            "x".repeat(1000)
        )
    );
    // The server could not push the whole 64 MiB: we stopped reading.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(written.load(Ordering::SeqCst) < 32 * 1024 * 1024);
}

#[tokio::test]
async fn binary_content_and_error_statuses() {
    let (addr, _) = serve(|path| match path {
        "/img" => response("200 OK", "Content-Type: image/png\r\n", "\u{1}PNG"),
        _ => response("404 Not Found", "Content-Type: text/plain\r\n", "nope"),
    })
    .await;
    let tool = WebFetch::allowing_loopback(cfg());
    let out = fetch(&tool, &format!("http://{addr}/img")).await;
    assert_eq!(
        out,
        ToolOutput::error("cannot show image/png content as text (4 bytes received)")
    );
    let out = fetch(&tool, &format!("http://{addr}/missing")).await;
    assert!(out.is_error);
    assert!(
        out.content.contains("Status: 404") && out.content.ends_with("nope"),
        "{}",
        out.content
    );
}

#[test]
fn html_reduction() {
    assert_eq!(html_to_text("<p>a</p>\n\n\n<p>b <b>c</b></p>"), "a\n\nb c");
    assert_eq!(html_to_text("x &lt;y&gt; &bogus; &#65;"), "x <y> &bogus; A");
    assert_eq!(html_to_text("<SCRIPT>alert(1)</SCRIPT>ok<style"), "ok");
    assert_eq!(html_to_text("İstanbul <i>ok</i>"), "İstanbul ok");
}
