//! Model Markdown → the HTML subset Telegram accepts (`b`, `i`, `code`, `pre`, `a`). Every
//! other character is escaped, so model output can never produce an invalid tag; if Telegram
//! still rejects the entities, the sender falls back to plain text.

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn inline(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        // `code`
        if let Some(r) = rest.strip_prefix('`') {
            if let Some(end) = r.find('`') {
                out.push_str(&format!("<code>{}</code>", escape(&r[..end])));
                rest = &r[end + 1..];
                continue;
            }
        }
        // **bold**
        if let Some(r) = rest.strip_prefix("**") {
            if let Some(end) = r.find("**").filter(|e| *e > 0) {
                out.push_str(&format!("<b>{}</b>", escape(&r[..end])));
                rest = &r[end + 2..];
                continue;
            }
        }
        // [text](http…)
        if let Some(r) = rest.strip_prefix('[') {
            if let Some(close) = r.find("](") {
                let after = &r[close + 2..];
                if let Some(end) = after.find(')') {
                    let url = &after[..end];
                    if url.starts_with("http://") || url.starts_with("https://") {
                        let href = escape(url).replace('"', "&quot;");
                        out.push_str(&format!("<a href=\"{href}\">{}</a>", escape(&r[..close])));
                        rest = &after[end + 1..];
                        continue;
                    }
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push_str(&escape(&c.to_string()));
        }
        rest = chars.as_str();
    }
    out
}

pub fn to_html(md: &str) -> String {
    let mut out = Vec::new();
    let mut in_code: Option<Vec<String>> = None;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            match in_code.take() {
                Some(code) => out.push(format!("<pre>{}</pre>", escape(&code.join("\n")))),
                None => in_code = Some(Vec::new()),
            }
            continue;
        }
        match in_code.as_mut() {
            Some(code) => code.push(line.to_string()),
            None => {
                let heading = line.trim_start_matches('#');
                if heading.len() < line.len() && heading.starts_with(' ') {
                    out.push(format!("<b>{}</b>", escape(heading.trim())));
                } else {
                    out.push(inline(line));
                }
            }
        }
    }
    if let Some(code) = in_code {
        out.push(format!("<pre>{}</pre>", escape(&code.join("\n"))));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_common_subset_and_escapes_the_rest() {
        assert_eq!(
            to_html("**Summary**: 1 < 2 & `a<b>`"),
            "<b>Summary</b>: 1 &lt; 2 &amp; <code>a&lt;b&gt;</code>"
        );
        assert_eq!(
            to_html("```rust\nfn x<T>() {}\n```"),
            "<pre>fn x&lt;T&gt;() {}</pre>"
        );
        assert_eq!(to_html("# Title"), "<b>Title</b>");
        assert_eq!(
            to_html("[site](https://x.io/?a=1&b=2)"),
            "<a href=\"https://x.io/?a=1&amp;b=2\">site</a>"
        );
        assert_eq!(
            to_html("[bad](javascript:alert(1))"),
            "[bad](javascript:alert(1))"
        );
        assert_eq!(to_html("<script>"), "&lt;script&gt;");
    }
}
