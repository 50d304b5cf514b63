//! `parse_mode` handling: the message text with markup removed, plus its entities
//! (offsets and lengths in UTF-16 code units, as Telegram counts them). Errors are the
//! part of Telegram's description after `Bad Request: can't parse entities: `.

use serde_json::{json, Value};

use super::markdown;

/// Plain text plus entities.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub text: String,
    pub entities: Vec<Value>,
}

/// Whether Telegram knows this `parse_mode` (case-insensitive; empty = none).
pub(crate) fn mode_known(mode: &str) -> bool {
    matches!(
        mode.to_ascii_lowercase().as_str(),
        "" | "html" | "markdownv2" | "markdown"
    )
}

/// Parses `text` per `mode` (case-insensitive; empty or `None` = plain text).
pub(crate) fn parse(text: &str, mode: Option<&str>) -> Result<Parsed, String> {
    match mode.map(str::to_ascii_lowercase).as_deref() {
        Some("html") => html(text),
        Some("markdownv2") => markdown::markdown_v2(text),
        Some("markdown") => markdown::markdown(text),
        _ => Ok(Parsed {
            text: text.to_string(),
            entities: Vec::new(),
        }),
    }
}

#[derive(Default)]
pub(super) struct Out {
    text: String,
    pub(super) utf16: usize,
    entities: Vec<Value>,
}

impl Out {
    pub(super) fn push(&mut self, c: char) {
        self.text.push(c);
        self.utf16 += c.len_utf16();
    }

    pub(super) fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    /// Adds an entity from `start` to the current end; empty ones are dropped like Telegram does.
    pub(super) fn entity(&mut self, kind: &str, start: usize, extra: Option<(&str, Value)>) {
        if kind.is_empty() || self.utf16 == start {
            return;
        }
        let mut e = json!({"offset": start, "length": self.utf16 - start, "type": kind});
        if let Some((k, v)) = extra {
            e[k] = v;
        }
        self.entities.push(e);
    }

    pub(super) fn finish(mut self) -> Parsed {
        let key = |e: &Value| {
            let off = e["offset"].as_i64().unwrap_or(0);
            (off, -e["length"].as_i64().unwrap_or(0))
        };
        self.entities.sort_by_key(key);
        Parsed {
            text: self.text,
            entities: self.entities,
        }
    }
}

// ---------------------------------------------------------------- HTML

const HTML_TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

struct OpenTag {
    name: String,
    start: usize,
    kind: &'static str,
    extra: Option<(&'static str, Value)>,
}

/// One `<...>` tag: `(closing, name, attributes, index after '>')`.
type Tag = (bool, String, Vec<(String, String)>, usize);

fn html(s: &str) -> Result<Parsed, String> {
    let mut out = Out::default();
    let mut stack: Vec<OpenTag> = Vec::new();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        match c {
            '&' => {
                let (decoded, used) = html_entity(&s[i..]);
                out.push(decoded);
                i += used;
            }
            '<' => {
                let at = i;
                let (closing, name, attrs, next) = html_tag(s, at)?;
                i = next;
                if closing {
                    let Some(top) = stack.pop() else {
                        return Err(format!("Unexpected end tag at byte offset {at}"));
                    };
                    if top.name != name {
                        return Err(format!(
                            "Unmatched end tag at byte offset {at}, expected \"</{}>\", found \"</{name}>\"",
                            top.name
                        ));
                    }
                    out.entity(top.kind, top.start, top.extra);
                } else {
                    let open = html_open(&name, &attrs, at, &mut stack)?;
                    let start = out.utf16;
                    stack.push(OpenTag { start, ..open });
                }
            }
            _ => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some(top) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            top.name
        ));
    }
    Ok(out.finish())
}

/// What a start tag opens; a `<code class="language-x">` right inside `<pre>` sets its language.
fn html_open(
    name: &str,
    attrs: &[(String, String)],
    at: usize,
    stack: &mut [OpenTag],
) -> Result<OpenTag, String> {
    if !HTML_TAGS.contains(&name) {
        return Err(format!(
            "Unsupported start tag \"{name}\" at byte offset {at}"
        ));
    }
    let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut extra = None;
    let kind = match name {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" => "spoiler",
        "span" if attr("class") == Some("tg-spoiler") => "spoiler",
        "span" => return Err("Tag \"span\" must have class \"tg-spoiler\"".into()),
        "a" => match attr("href").unwrap_or("") {
            "" => "",
            href => {
                if let Some(id) = href.strip_prefix("tg://user?id=") {
                    let id: i64 = id.parse().unwrap_or(0);
                    extra = Some(("user", json!({"id": id, "is_bot": false, "first_name": ""})));
                    "text_mention"
                } else {
                    extra = Some(("url", json!(href)));
                    "text_link"
                }
            }
        },
        "code" => match stack.last_mut() {
            Some(pre) if pre.name == "pre" => {
                if let Some(lang) = attr("class").and_then(|c| c.strip_prefix("language-")) {
                    pre.extra = Some(("language", json!(lang)));
                }
                ""
            }
            _ => "code",
        },
        "pre" => "pre",
        "blockquote" if attr("expandable").is_some() => "expandable_blockquote",
        "blockquote" => "blockquote",
        _ => {
            let id = attr("emoji-id").unwrap_or("");
            extra = Some(("custom_emoji_id", json!(id)));
            "custom_emoji"
        }
    };
    Ok(OpenTag {
        name: name.to_string(),
        start: 0,
        kind,
        extra,
    })
}

/// Scans the tag starting at byte `i` (which holds `<`).
fn html_tag(s: &str, i: usize) -> Result<Tag, String> {
    let b = s.as_bytes();
    let mut j = i + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let name_start = j;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
        j += 1;
    }
    let name = s[name_start..j].to_ascii_lowercase();
    if name.is_empty() && !closing {
        return Err(format!("Unsupported start tag \"\" at byte offset {i}"));
    }
    let mut attrs = Vec::new();
    loop {
        while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
            j += 1;
        }
        match b.get(j) {
            None if closing => return Err(format!("Unclosed end tag at byte offset {i}")),
            None => return Err(format!("Unclosed start tag at byte offset {i}")),
            Some(b'>') => return Ok((closing, name, attrs, j + 1)),
            Some(_) if closing => return Err(format!("Unclosed end tag at byte offset {i}")),
            Some(_) => {}
        }
        let attr_start = j;
        while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b'=' | b'>') {
            j += 1;
        }
        let attr = s[attr_start..j].to_ascii_lowercase();
        if attr.is_empty() {
            return Err(format!(
                "Empty attribute name in the tag \"{name}\" at byte offset {j}"
            ));
        }
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut value = String::new();
        if b.get(j) == Some(&b'=') {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let raw = match b.get(j) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = s[j + 1..]
                        .find(q as char)
                        .map(|e| j + 1 + e)
                        .ok_or_else(|| {
                            format!("Unclosed end of attribute value at byte offset {j}")
                        })?;
                    let raw = &s[j + 1..end];
                    j = end + 1;
                    raw
                }
                _ => {
                    let start = j;
                    while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                        j += 1;
                    }
                    &s[start..j]
                }
            };
            value = decode_entities(raw);
        }
        attrs.push((attr, value));
    }
}

/// `&lt;` `&gt;` `&amp;` `&quot;` and numeric references; anything else is a literal `&`.
fn html_entity(s: &str) -> (char, usize) {
    let Some(end) = s.get(..12.min(s.len())).and_then(|h| h.find(';')) else {
        return ('&', 1);
    };
    let name = &s[1..end];
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => name.strip_prefix('#').and_then(|n| {
            let code = match n.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => n.parse().ok(),
            };
            code.and_then(char::from_u32)
        }),
    };
    match c {
        Some(c) => (c, end + 1),
        None => ('&', 1),
    }
}

fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        if c == '&' {
            let (d, used) = html_entity(&s[i..]);
            out.push(d);
            i += used;
        } else {
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}
