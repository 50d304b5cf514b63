//! Model Markdown → WhatsApp's text formatting.
//!
//! - `**x**` / `__x__` → `*x*` (bold); `*x*` / `_x_` → `_x_` (italic); `~~x~~` → `~x~`
//! - `# heading` → a bold line; `*` / `+` bullets → `- `; numbered lists and `> quote` stay
//! - `[t](u)` → `t (u)` (WhatsApp has no labelled links); `![alt](u)` → `alt (u)`
//! - code spans and fenced blocks are kept verbatim (the fence's language tag is dropped)

/// Converts a whole Markdown text.
pub fn to_whatsapp(md: &str) -> String {
    let lines: Vec<&str> = md.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if let Some(rest) = t.strip_prefix("```") {
            let _lang = rest;
            out.push("```".into());
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                out.push(lines[i].to_string());
                i += 1;
            }
            out.push("```".into());
            i += 1;
            continue;
        }
        out.push(block_line(lines[i]));
        i += 1;
    }
    let mut s = out.join("\n");
    if md.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn block_line(line: &str) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    let t = line.trim_start();
    let hashes = t.bytes().take_while(|b| *b == b'#').count();
    if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
        let title = t[hashes..].trim().trim_end_matches('#').trim();
        // Already-bold headings keep one pair of stars.
        let title = title
            .strip_prefix("**")
            .and_then(|x| x.strip_suffix("**"))
            .unwrap_or(title);
        return format!("{indent}*{}*", inline(title));
    }
    for b in ["* ", "+ "] {
        if let Some(rest) = t.strip_prefix(b) {
            return format!("{indent}- {}", inline(rest));
        }
    }
    format!("{indent}{}", inline(t))
}

fn find(chars: &[char], from: usize, pat: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(pat.len() - 1)).find(|&j| chars[j..].starts_with(pat))
}

/// Converts emphasis, strike-through, links and code spans in one line.
pub fn inline(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        // Code span: verbatim.
        if ch == '`' {
            if let Some(end) = find(&c, i + 1, &['`']) {
                out.extend(&c[i..=end]);
                i = end + 1;
                continue;
            }
        }
        // Bold: ** or __.
        let mut matched = false;
        for d in [['*', '*'], ['_', '_']] {
            if c[i..].starts_with(&d) && c.get(i + 2).is_some_and(|x| !x.is_whitespace()) {
                if let Some(end) = find(&c, i + 2, &d) {
                    let inner: String = c[i + 2..end].iter().collect();
                    out.push('*');
                    out.push_str(&inline(&inner));
                    out.push('*');
                    i = end + 2;
                    matched = true;
                    break;
                }
            }
        }
        if matched {
            continue;
        }
        if c[i..].starts_with(&['~', '~']) {
            if let Some(end) = find(&c, i + 2, &['~', '~']) {
                let inner: String = c[i + 2..end].iter().collect();
                out.push('~');
                out.push_str(&inline(&inner));
                out.push('~');
                i = end + 2;
                continue;
            }
        }
        // Italic: *x* → _x_ (not a bullet or a lone star).
        if ch == '*'
            && c.get(i + 1)
                .is_some_and(|x| !x.is_whitespace() && *x != '*')
        {
            if let Some(end) = find(&c, i + 1, &['*']) {
                if !c[end - 1].is_whitespace() {
                    let inner: String = c[i + 1..end].iter().collect();
                    out.push('_');
                    out.push_str(&inline(&inner));
                    out.push('_');
                    i = end + 1;
                    continue;
                }
            }
        }
        // Links and images.
        let img = ch == '!' && c.get(i + 1) == Some(&'[');
        if ch == '[' || img {
            let open = if img { i + 1 } else { i };
            if let Some(close) = find(&c, open + 1, &[']', '(']) {
                if let Some(end) = find(&c, close + 2, &[')']) {
                    let text: String = c[open + 1..close].iter().collect();
                    let url: String = c[close + 2..end].iter().collect();
                    if text.is_empty() || text == url {
                        out.push_str(&url);
                    } else {
                        out.push_str(&format!("{} ({url})", inline(&text)));
                    }
                    i = end + 1;
                    continue;
                }
            }
        }
        out.push(ch);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emphasis_and_strike() {
        assert_eq!(
            to_whatsapp("**bold** and *it* and _it2_ and ~~gone~~"),
            "*bold* and _it_ and _it2_ and ~gone~"
        );
        assert_eq!(to_whatsapp("__bold__"), "*bold*");
        assert_eq!(to_whatsapp("a * b * c"), "a * b * c");
        assert_eq!(to_whatsapp("2*3 = 6"), "2*3 = 6");
    }

    #[test]
    fn blocks() {
        assert_eq!(
            to_whatsapp("# Title\n* one\n+ two\n1. three\n> quote"),
            "*Title*\n- one\n- two\n1. three\n> quote"
        );
        assert_eq!(
            to_whatsapp("```rust\nlet **x** = 1;\n```"),
            "```\nlet **x** = 1;\n```"
        );
        assert_eq!(to_whatsapp("use `**raw**` here"), "use `**raw**` here");
    }

    #[test]
    fn links() {
        assert_eq!(
            to_whatsapp("see [docs](https://x.dev) or [https://y.dev](https://y.dev)"),
            "see docs (https://x.dev) or https://y.dev"
        );
        assert_eq!(to_whatsapp("emoji 😮 *fine*"), "emoji 😮 _fine_");
    }
}
