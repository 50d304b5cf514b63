//! Model Markdown → Slack mrkdwn.
//!
//! - `**x**` / `__x__` → `*x*`; `*x*` / `_x_` → `_x_`; `***x***` → `*_x_*`; `~~x~~` → `~x~`
//! - `[t](u)` and `![alt](u)` → `<u|t>`; `<https://…>` autolinks stay links
//! - `# heading` → a bold line; `*`/`-`/`+` bullets → `•`; `> quote` stays a quote
//! - GFM tables → a code block (Slack has no tables)
//! - code spans and fenced blocks: no conversion inside (the language tag is dropped)
//! - `&`, `<`, `>` are escaped everywhere (Slack's three control characters; in code too,
//!   Slack decodes them there as well), except in the `<u|t>` links generated here. So model
//!   output can never produce `<!channel>`, `<@U…>` or a hidden link.

/// Slack's escaping of its three control characters.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// Converts a whole Markdown text.
pub fn to_mrkdwn(md: &str) -> String {
    let lines: Vec<&str> = md.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        // Fenced code block: verbatim (escaped) until the closing fence or the end.
        if let Some(fence) = fence_of(t) {
            out.push("```".into());
            i += 1;
            while i < lines.len() && !closes(lines[i].trim_start(), fence) {
                out.push(escape(lines[i]));
                i += 1;
            }
            out.push("```".into());
            i += 1;
            continue;
        }
        // GFM table: header row, separator row, body rows → a code block.
        if t.starts_with('|') && i + 1 < lines.len() && is_table_separator(lines[i + 1]) {
            out.push("```".into());
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                out.push(escape(lines[i].trim()));
                i += 1;
            }
            out.push("```".into());
            continue;
        }
        out.push(block_line(line));
        i += 1;
    }
    out.join("\n")
}

fn fence_of(t: &str) -> Option<&'static str> {
    if t.starts_with("```") {
        Some("```")
    } else if t.starts_with("~~~") {
        Some("~~~")
    } else {
        None
    }
}

fn closes(t: &str, fence: &str) -> bool {
    t.starts_with(fence)
        && t[fence.len()..]
            .trim_start_matches(&fence[..1])
            .trim()
            .is_empty()
}

fn is_table_separator(line: &str) -> bool {
    let t = line.trim();
    t.contains('-') && t.contains('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn block_line(line: &str) -> String {
    let indent_len = line.len() - line.trim_start().len();
    let (indent, t) = line.split_at(indent_len);
    // Heading → bold line.
    let hashes = t.bytes().take_while(|b| *b == b'#').count();
    if (1..=6).contains(&hashes) && (t.len() == hashes || t.as_bytes()[hashes] == b' ') {
        let text = t[hashes..].trim().trim_end_matches('#').trim();
        if text.is_empty() {
            return String::new();
        }
        // Bold markers inside a heading would nest `*` in `*`: drop them.
        let text = text.replace("**", "").replace("__", "");
        return format!("*{}*", inline(&text));
    }
    // Horizontal rule.
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() >= 3
        && (compact.chars().all(|c| c == '-')
            || compact.chars().all(|c| c == '*')
            || compact.chars().all(|c| c == '_'))
    {
        return "---".into();
    }
    // Quote: Slack's `>` at line start (the only `>` left unescaped).
    if let Some(rest) = t.strip_prefix('>') {
        let rest = rest.trim_start_matches('>').trim_start();
        return format!("{indent}> {}", inline(rest));
    }
    // Bullets.
    for b in ["* ", "- ", "+ "] {
        if let Some(rest) = t.strip_prefix(b) {
            return format!("{indent}• {}", inline(rest.trim_start()));
        }
    }
    format!("{indent}{}", inline(t))
}

/// Converts inline Markdown on one line.
pub fn inline(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    render(&chars, true, &mut out);
    out
}

fn is_ws(c: Option<&char>) -> bool {
    c.is_none_or(|c| c.is_whitespace())
}

fn is_word(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

fn run_len(chars: &[char], i: usize, c: char) -> usize {
    chars[i..].iter().take_while(|x| **x == c).count()
}

/// Finds a closing delimiter of exactly `n` × `c` after `from`, preceded by a non-space.
fn find_closing(chars: &[char], from: usize, c: char, n: usize) -> Option<usize> {
    let mut j = from;
    while j + n <= chars.len() {
        if chars[j] == '`' {
            // Skip code spans inside emphasis.
            let k = run_len(chars, j, '`');
            j = find_run(chars, j + k, '`', k).map_or(j + k, |e| e + k);
            continue;
        }
        if chars[j] == c {
            let k = run_len(chars, j, c);
            if k == n && j > from && !is_ws(chars.get(j - 1)) {
                // `_x_` must not close inside a word (snake_case).
                if c != '_' || !is_word(chars.get(j + n)) {
                    return Some(j);
                }
            }
            j += k;
            continue;
        }
        j += 1;
    }
    None
}

fn find_run(chars: &[char], from: usize, c: char, n: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == c {
            let k = run_len(chars, j, c);
            if k == n {
                return Some(j);
            }
            j += k;
        } else {
            j += 1;
        }
    }
    None
}

/// The index of the `close` matching an `open` at `from - 1`, counting nesting.
fn matching(chars: &[char], from: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (j, c) in chars.iter().enumerate().skip(from) {
        if *c == open {
            depth += 1;
        } else if *c == close {
            if depth == 0 {
                return Some(j);
            }
            depth -= 1;
        }
    }
    None
}

fn is_link_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://") || u.starts_with("mailto:"))
        && !u.contains(char::is_whitespace)
        && u.len() > 8
}

fn render(chars: &[char], links: bool, out: &mut String) {
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if chars.get(i + 1).is_some_and(|n| n.is_ascii_punctuation()) => {
                push_escaped(out, chars[i + 1]);
                i += 2;
            }
            '`' => {
                let n = run_len(chars, i, '`');
                match find_run(chars, i + n, '`', n) {
                    Some(j) => {
                        let code: String = chars[i + n..j].iter().collect();
                        let code = if n > 1 { code.trim() } else { code.as_str() };
                        out.push('`');
                        out.push_str(&escape(code));
                        out.push('`');
                        i = j + n;
                    }
                    None => {
                        out.extend(std::iter::repeat_n('`', n));
                        i += n;
                    }
                }
            }
            '*' | '_' => {
                let run = run_len(chars, i, c);
                let n = run.min(3);
                let opens = run <= 3
                    && !is_ws(chars.get(i + run))
                    && (c == '*' || !is_word(if i == 0 { None } else { chars.get(i - 1) }));
                let close = if opens {
                    find_closing(chars, i + n, c, n)
                } else {
                    None
                };
                match close {
                    Some(j) if j > i + n => {
                        let (open_s, close_s) = match n {
                            3 => ("*_", "_*"),
                            2 => ("*", "*"),
                            _ => ("_", "_"),
                        };
                        out.push_str(open_s);
                        render(&chars[i + n..j], links, out);
                        out.push_str(close_s);
                        i = j + n;
                    }
                    _ => {
                        out.extend(std::iter::repeat_n(c, run));
                        i += run;
                    }
                }
            }
            '~' if chars.get(i + 1) == Some(&'~') => {
                match find_closing(chars, i + 2, '~', 2).filter(|j| *j > i + 2) {
                    Some(j) if !is_ws(chars.get(i + 2)) => {
                        out.push('~');
                        render(&chars[i + 2..j], links, out);
                        out.push('~');
                        i = j + 2;
                    }
                    _ => {
                        out.push_str("~~");
                        i += 2;
                    }
                }
            }
            '!' if links && chars.get(i + 1) == Some(&'[') => match link_at(chars, i + 1, out) {
                Some(next) => i = next,
                None => {
                    out.push('!');
                    i += 1;
                }
            },
            '[' if links => match link_at(chars, i, out) {
                Some(next) => i = next,
                None => {
                    out.push('[');
                    i += 1;
                }
            },
            '<' => {
                // Markdown autolink `<https://…>`.
                let end = chars[i + 1..].iter().position(|c| *c == '>');
                let url: Option<String> = end.map(|e| chars[i + 1..i + 1 + e].iter().collect());
                match url.filter(|u| is_link_url(u)) {
                    Some(u) => {
                        out.push('<');
                        out.push_str(&escape(&u));
                        out.push('>');
                        i += u.chars().count() + 2;
                    }
                    None => {
                        out.push_str("&lt;");
                        i += 1;
                    }
                }
            }
            c => {
                push_escaped(out, c);
                i += 1;
            }
        }
    }
}

/// `[label](url "title")` at `i` (the `[`): writes `<url|label>` and returns the index after
/// it, or `None` (nothing written) when this is not a link to an http(s)/mailto URL.
fn link_at(chars: &[char], i: usize, out: &mut String) -> Option<usize> {
    let close = matching(chars, i + 1, '[', ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = matching(chars, close + 2, '(', ')')?;
    let target: String = chars[close + 2..end].iter().collect();
    let url = target.split_whitespace().next().unwrap_or("");
    let url = url.trim_start_matches('<').trim_end_matches('>');
    if !is_link_url(url) {
        return None;
    }
    let mut label = String::new();
    render(&chars[i + 1..close], false, &mut label);
    // `|` ends the URL part in Slack; keep it out of the URL.
    out.push('<');
    out.push_str(&escape(url).replace('|', "%7C"));
    if !label.trim().is_empty() {
        out.push('|');
        out.push_str(label.trim());
    }
    out.push('>');
    Some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(md: &str) -> String {
        to_mrkdwn(md)
    }

    #[test]
    fn bold_italic_strike() {
        assert_eq!(t("**bold**"), "*bold*");
        assert_eq!(t("__bold__"), "*bold*");
        assert_eq!(t("*it*"), "_it_");
        assert_eq!(t("_it_"), "_it_");
        assert_eq!(t("~~gone~~"), "~gone~");
        assert_eq!(t("***both***"), "*_both_*");
        assert_eq!(t("a **b** c *d* e ~~f~~ g"), "a *b* c _d_ e ~f~ g");
    }

    #[test]
    fn nesting() {
        assert_eq!(t("**bold with *it* inside**"), "*bold with _it_ inside*");
        assert_eq!(t("**bold with _it_ inside**"), "*bold with _it_ inside*");
        assert_eq!(t("*it with **bold** inside*"), "_it with *bold* inside_");
        assert_eq!(t("~~**x**~~"), "~*x*~");
        assert_eq!(
            t("**see [docs](https://e.com)**"),
            "*see <https://e.com|docs>*"
        );
    }

    #[test]
    fn not_emphasis() {
        assert_eq!(t("snake_case_name"), "snake_case_name");
        assert_eq!(t("2 * 3 * 4"), "2 * 3 * 4");
        assert_eq!(t("a ** b"), "a ** b");
        assert_eq!(t("**unclosed"), "**unclosed");
        assert_eq!(t("file_name.rs and _real_"), "file_name.rs and _real_");
        assert_eq!(t("****"), "---");
        assert_eq!(t("x ~~ y"), "x ~~ y");
        assert_eq!(t("~approx~"), "~approx~");
    }

    #[test]
    fn links() {
        assert_eq!(
            t("[the report](https://example.com)"),
            "<https://example.com|the report>"
        );
        assert_eq!(
            t("See [it](https://e.com/a?x=1&y=2 \"title\")."),
            "See <https://e.com/a?x=1&amp;y=2|it>."
        );
        assert_eq!(
            t("[wiki](https://en.wikipedia.org/wiki/Rust_(language))"),
            "<https://en.wikipedia.org/wiki/Rust_(language)|wiki>"
        );
        assert_eq!(
            t("[**bold** label](https://e.com)"),
            "<https://e.com|*bold* label>"
        );
        assert_eq!(t("[a < b](https://e.com)"), "<https://e.com|a &lt; b>");
        assert_eq!(
            t("![alt](https://e.com/i.png)"),
            "<https://e.com/i.png|alt>"
        );
        assert_eq!(t("<https://e.com/x>"), "<https://e.com/x>");
        assert_eq!(t("[mail](mailto:a@b.c)"), "<mailto:a@b.c|mail>");
        assert_eq!(t("[](https://e.com)"), "<https://e.com>");
        // Not links: other schemes, no URL, plain brackets.
        assert_eq!(t("[x](javascript:alert(1))"), "[x](javascript:alert(1))");
        assert_eq!(t("[x](relative/path)"), "[x](relative/path)");
        assert_eq!(t("[just brackets]"), "[just brackets]");
        assert_eq!(t("array[0] = 1"), "array[0] = 1");
    }

    #[test]
    fn escaping() {
        assert_eq!(t("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(t("<!channel> wake up"), "&lt;!channel&gt; wake up");
        assert_eq!(t("hi <@U123>"), "hi &lt;@U123&gt;");
        assert_eq!(t("<not a url>"), "&lt;not a url&gt;");
        assert_eq!(t("&amp;"), "&amp;amp;");
        assert_eq!(t(r"\*not italic\*"), "*not italic*");
        assert_eq!(t(r"1 \< 2"), "1 &lt; 2");
    }

    #[test]
    fn code_is_not_converted() {
        assert_eq!(
            t("`**x** [a](https://e.com)`"),
            "`**x** [a](https://e.com)`"
        );
        assert_eq!(t("use `a < b && c`"), "use `a &lt; b &amp;&amp; c`");
        assert_eq!(t("``a ` b``"), "`a ` b`");
        assert_eq!(t("`unclosed **b**"), "`unclosed *b*");
        assert_eq!(t("**bold `*code*` bold**"), "*bold `*code*` bold*");
        let md = "Run:\n```rust\nlet x = **y** < 3 && _z_;\n# not a heading\n```\nDone **ok**";
        assert_eq!(
            t(md),
            "Run:\n```\nlet x = **y** &lt; 3 &amp;&amp; _z_;\n# not a heading\n```\nDone *ok*"
        );
        // An unclosed fence is closed at the end.
        assert_eq!(t("```\n**x**"), "```\n**x**\n```");
        assert_eq!(t("~~~\na\n~~~"), "```\na\n```");
    }

    #[test]
    fn headings_bullets_quotes_rules() {
        assert_eq!(t("# Title"), "*Title*");
        assert_eq!(t("### Sub **bold** title ###"), "*Sub bold title*");
        assert_eq!(t("#hashtag"), "#hashtag");
        assert_eq!(t("- one\n* two\n+ three"), "• one\n• two\n• three");
        assert_eq!(t("  - nested **b**"), "  • nested *b*");
        assert_eq!(t("1. first"), "1. first");
        assert_eq!(t("> quoted & *it*"), "> quoted &amp; _it_");
        assert_eq!(t("a\n---\nb"), "a\n---\nb");
        assert_eq!(t("a\n\nb"), "a\n\nb");
    }

    #[test]
    fn tables_become_code_blocks() {
        let md = "| a | b |\n|---|:-:|\n| 1 | <2> |\nafter";
        assert_eq!(
            t(md),
            "```\n| a | b |\n|---|:-:|\n| 1 | &lt;2&gt; |\n```\nafter"
        );
        // A lone pipe line is not a table.
        assert_eq!(t("| just a pipe"), "| just a pipe");
    }

    #[test]
    fn unicode_and_empty() {
        assert_eq!(t(""), "");
        assert_eq!(t("**héllo** 👋 _wörld_"), "*héllo* 👋 _wörld_");
    }

    proptest::proptest! {
        /// Whatever the model writes, the output can never ping `@channel`/`@here`, mention a
        /// user or open a Slack token other than a link this module generated, and never panics.
        #[test]
        fn no_slack_control_tokens_from_model_text(s in "[a-z<>@!&*_~`#\\[\\]()|: \n-]{0,80}") {
            let out = to_mrkdwn(&s);
            proptest::prop_assert!(!out.contains("<!"), "{out:?}");
            proptest::prop_assert!(!out.contains("<@"), "{out:?}");
            proptest::prop_assert!(!out.contains("<#"), "{out:?}");
            for (i, _) in out.match_indices('<') {
                let rest = &out[i + 1..];
                proptest::prop_assert!(
                    rest.starts_with("http://") || rest.starts_with("https://") || rest.starts_with("mailto:"),
                    "{out:?}"
                );
            }
        }
    }
}
