//! MarkdownV2 and legacy Markdown, simplified: reserved characters must be escaped,
//! formatting markers must pair up and nest properly.

use serde_json::json;

use super::entities::{Out, Parsed};

const RESERVED: &str = "_*[]()~`>#+-=|{}.!";

struct OpenMark {
    kind: &'static str,
    name: &'static str,
    start: usize,
    byte: usize,
}

fn unclosed(m: &OpenMark) -> String {
    format!(
        "Can't find end of {} entity at byte offset {}",
        m.name, m.byte
    )
}

/// Reads a code/pre/URL body up to the unescaped `close`; `\` escapes only `` ` `` `\` `)`.
fn literal_until(s: &str, from: usize, close: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut i = from;
    while i < s.len() {
        if s[i..].starts_with(close) {
            return Some((out, i + close.len()));
        }
        let c = s[i..].chars().next()?;
        if c == '\\' {
            if let Some(n @ ('`' | '\\' | ')')) = s[i + 1..].chars().next() {
                out.push(n);
                i += 2;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    None
}

pub(super) fn markdown_v2(s: &str) -> Result<Parsed, String> {
    let mut out = Out::default();
    let mut stack: Vec<OpenMark> = Vec::new();
    let mut quote: Option<usize> = None;
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        let next = s[i + c.len_utf8()..].chars().next();
        let line_start = i == 0 || s.as_bytes()[i - 1] == b'\n';
        let mut step = c.len_utf8();
        let mut toggle = |kind, name, out: &mut Out| -> Result<(), String> {
            match stack.iter().rposition(|m| m.kind == kind) {
                Some(pos) if pos + 1 == stack.len() => {
                    let m = stack.pop().expect("non-empty");
                    out.entity(m.kind, m.start, None);
                    Ok(())
                }
                Some(_) => Err(unclosed(stack.last().expect("non-empty"))),
                None => {
                    let (start, byte) = (out.utf16, i);
                    stack.push(OpenMark {
                        kind,
                        name,
                        start,
                        byte,
                    });
                    Ok(())
                }
            }
        };
        match c {
            '\\' => match next {
                Some(n) if (1..=126).contains(&(n as u32)) => {
                    out.push(n);
                    step = 1 + n.len_utf8();
                }
                _ => out.push('\\'),
            },
            '`' if s[i..].starts_with("```") => {
                let (body, end) = literal_until(s, i + 3, "```")
                    .ok_or_else(|| format!("Can't find end of Pre entity at byte offset {i}"))?;
                let (lang, code) = match body.split_once('\n') {
                    Some((l, rest)) if !l.is_empty() && !l.contains(' ') => (Some(l), rest),
                    _ => (None, body.as_str()),
                };
                let start = out.utf16;
                out.push_str(code);
                out.entity("pre", start, lang.map(|l| ("language", json!(l))));
                step = end - i;
            }
            '`' => {
                let (body, end) = literal_until(s, i + 1, "`")
                    .ok_or_else(|| format!("Can't find end of Code entity at byte offset {i}"))?;
                let start = out.utf16;
                out.push_str(&body);
                out.entity("code", start, None);
                step = end - i;
            }
            '*' => toggle("bold", "Bold", &mut out)?,
            '_' if next == Some('_') => {
                toggle("underline", "Underline", &mut out)?;
                step = 2;
            }
            '_' => toggle("italic", "Italic", &mut out)?,
            '~' => toggle("strikethrough", "Strikethrough", &mut out)?,
            '|' if next == Some('|') => {
                toggle("spoiler", "Spoiler", &mut out)?;
                step = 2;
            }
            '[' => stack.push(OpenMark {
                kind: "text_link",
                name: "TextUrl",
                start: out.utf16,
                byte: i,
            }),
            ']' if stack.last().is_some_and(|m| m.kind == "text_link") => {
                let m = stack.pop().expect("non-empty");
                if next != Some('(') {
                    return Err(unclosed(&m));
                }
                let (url, end) = literal_until(s, i + 2, ")")
                    .ok_or_else(|| format!("Can't find end of a URL at byte offset {}", i + 1))?;
                out.entity("text_link", m.start, Some(("url", json!(url))));
                step = end - i;
            }
            '>' if line_start => {
                quote.get_or_insert(out.utf16);
            }
            '\n' => {
                if !s[i + 1..].starts_with('>') {
                    if let Some(start) = quote.take() {
                        out.entity("blockquote", start, None);
                    }
                }
                out.push('\n');
            }
            c if RESERVED.contains(c) => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ))
            }
            c => out.push(c),
        }
        i += step;
    }
    if let Some(m) = stack.last() {
        return Err(unclosed(m));
    }
    if let Some(start) = quote {
        out.entity("blockquote", start, None);
    }
    Ok(out.finish())
}

pub(super) fn markdown(s: &str) -> Result<Parsed, String> {
    let mut out = Out::default();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        let unclosed = || format!("Can't find end of the entity starting at byte offset {i}");
        match c {
            '\\' if s[i + 1..].starts_with(['_', '*', '`', '[']) => {
                out.push(s.as_bytes()[i + 1] as char);
                i += 2;
            }
            '*' | '_' | '`' => {
                let pre = s[i..].starts_with("```");
                let close = if pre { "```" } else { &s[i..i + 1] };
                let from = i + close.len();
                let end = s[from..]
                    .find(close)
                    .map(|e| from + e)
                    .ok_or_else(unclosed)?;
                let start = out.utf16;
                out.push_str(&s[from..end]);
                let kind = match (pre, c) {
                    (true, _) => "pre",
                    (_, '*') => "bold",
                    (_, '_') => "italic",
                    _ => "code",
                };
                out.entity(kind, start, None);
                i = end + close.len();
            }
            '[' => {
                let close = s[i..].find("](").map(|e| i + e).ok_or_else(unclosed)?;
                let url_end = s[close..]
                    .find(')')
                    .map(|e| close + e)
                    .ok_or_else(unclosed)?;
                let start = out.utf16;
                out.push_str(&s[i + 1..close]);
                let url = json!(&s[close + 2..url_end]);
                out.entity("text_link", start, Some(("url", url)));
                i = url_end + 1;
            }
            c => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out.finish())
}
