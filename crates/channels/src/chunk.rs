//! Splitting a reply into messages no longer than the platform's limit, preferring paragraph,
//! then line, then sentence, then word breaks, and never splitting inside a code fence without
//! closing and reopening it.

/// Splits `text` into chunks of at most `limit` characters.
pub fn chunk_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    let text = text.trim_end();
    if text.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest: &str = text;
    let mut reopen: Option<String> = None;
    while !rest.is_empty() {
        let prefix = reopen.take().unwrap_or_default();
        let budget = limit.saturating_sub(prefix.chars().count() + 4);
        if prefix.chars().count() + rest.chars().count() <= limit {
            out.push(format!("{prefix}{rest}"));
            break;
        }
        let cut_byte = byte_at_char(rest, budget);
        let window = &rest[..cut_byte];
        let split = best_break(window).unwrap_or(cut_byte);
        let (head, tail) = rest.split_at(split);
        let mut chunk = format!("{prefix}{}", head.trim_end());
        // Inside an open fence? Close it here and reopen it in the next chunk.
        if let Some(lang) = open_fence(&chunk) {
            chunk.push_str("\n```");
            reopen = Some(format!("```{lang}\n"));
        }
        out.push(chunk);
        rest = tail.trim_start_matches([' ', '\n']);
    }
    out
}

fn byte_at_char(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map(|(i, _)| i).unwrap_or(s.len())
}

fn best_break(window: &str) -> Option<usize> {
    let min = window.len() / 3;
    for pat in ["\n\n", "\n", ". ", "! ", "? ", " "] {
        if let Some(i) = window.rfind(pat) {
            if i >= min {
                return Some(i + pat.len().min(1));
            }
        }
    }
    None
}

/// The language of an unclosed ``` fence in `s`, if one is open at its end.
fn open_fence(s: &str) -> Option<String> {
    let mut open: Option<String> = None;
    for line in s.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("```") {
            open = match open {
                Some(_) => None,
                None => Some(rest.trim().to_string()),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(chunk_text("hello", 4000), vec!["hello"]);
        assert!(chunk_text("   ", 4000).is_empty());
    }

    #[test]
    fn splits_at_paragraphs_and_respects_the_limit() {
        let para = "word ".repeat(30);
        let text = format!("{para}\n\n{para}\n\n{para}");
        let chunks = chunk_text(&text, 200);
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.chars().count() <= 200, "{}", c.len());
        }
        assert_eq!(chunks.join(" ").split_whitespace().count(), 90);
    }

    #[test]
    fn long_words_are_hard_split() {
        let text = "x".repeat(1000);
        let chunks = chunk_text(&text, 300);
        assert!(chunks.iter().all(|c| c.chars().count() <= 300));
        assert_eq!(chunks.concat().len(), 1000);
    }

    #[test]
    fn fences_are_closed_and_reopened() {
        let code = (0..60)
            .map(|i| format!("let x{i} = {i};"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("Here:\n```rust\n{code}\n```\ndone");
        let chunks = chunk_text(&text, 300);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.chars().count() <= 300);
            assert_eq!(c.matches("```").count() % 2, 0, "unbalanced fence in {c}");
        }
        assert!(chunks[1].starts_with("```rust\n"));
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        let text = "é".repeat(5000);
        let chunks = chunk_text(&text, 4000);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].chars().count(), 3996);
    }
}
