//! A minimal Server-Sent Events decoder over a byte stream, bounded in memory.

/// One dispatched event: its `event:` name (if any) and its joined `data:` lines.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Largest single event we accept; a provider that sends more is broken or hostile.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds bytes; returns the events completed by them. `Err` when an event grows past the cap.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data {
                    out.push(SseEvent {
                        event: self.event.take(),
                        data: std::mem::take(&mut self.data),
                    });
                }
                self.event = None;
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
            if self.data.len() > MAX_EVENT_BYTES {
                return Err("provider sent an oversized stream event".into());
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err("provider sent an oversized stream line".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b"event: a\ndata: {\"x\"").unwrap().is_empty());
        let ev = d.feed(b":1}\r\n\r\ndata: two\ndata: lines\n\n").unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event.as_deref(), Some("a"));
        assert_eq!(ev[0].data, "{\"x\":1}");
        assert_eq!(ev[1].data, "two\nlines");
    }

    #[test]
    fn comments_are_skipped_and_size_is_capped() {
        let mut d = SseDecoder::default();
        assert!(d.feed(b": keepalive\n\n").unwrap().is_empty());
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(d.feed(&big).is_err());
    }
}
