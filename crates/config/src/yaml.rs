//! A YAML document as a tree whose every node remembers where it stood in the file,
//! so that validation errors can name `config.yaml:LINE:COL`.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    /// A scalar and whether it was quoted (quoted scalars are always strings).
    Scalar(String, bool),
    Seq(Vec<Node>),
    /// Entries in file order: key, key position, value.
    Map(Vec<(String, Pos, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// A plain scalar that YAML reads as null (`~`, `null`, empty).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s, false) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar(..) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Why the text is not a YAML document we can use.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Deepest nesting of mappings and sequences accepted (the real schema needs six levels).
pub const MAX_DEPTH: usize = 32;
/// Most scalars, mappings and sequences in one file (a real config has a few hundred).
pub const MAX_NODES: usize = 10_000;

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(
        Pos,
        Vec<(String, Pos, Node)>,
        Option<(String, Pos)>,
        std::collections::HashSet<String>,
    ),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    nodes: usize,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos,
                message: message.into(),
            });
        }
    }

    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending, seen)) => match pending.take() {
                None => match node.value {
                    Value::Scalar(key, _) => {
                        if !seen.insert(key.clone()) {
                            let msg = format!("duplicate key `{key}`");
                            self.fail(node.pos, msg);
                        } else {
                            *pending = Some((key, node.pos));
                        }
                    }
                    _ => self.fail(node.pos, "mapping keys must be plain strings"),
                },
                Some((key, key_pos)) => entries.push((key, key_pos, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from(mark);
        if matches!(
            ev,
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return self.fail(pos, format!("too many entries (more than {MAX_NODES})"));
            }
        }
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            return self.fail(
                pos,
                format!("nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    self.fail(pos, "anchors and tags are not supported in config.yaml");
                    return;
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_node(Node {
                    pos,
                    value: Value::Scalar(value, quoted),
                });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                self.fail(pos, "anchors are not supported in config.yaml");
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(pos, Vec::new())),
            Event::MappingStart(..) => {
                self.stack
                    .push(Frame::Map(pos, Vec::new(), None, Default::default()))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, items)) = self.stack.pop() {
                    self.push_node(Node {
                        pos: p,
                        value: Value::Seq(items),
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, entries, _, _)) = self.stack.pop() {
                    self.push_node(Node {
                        pos: p,
                        value: Value::Map(entries),
                    });
                }
            }
            Event::Alias(_) => self.fail(pos, "aliases are not supported in config.yaml"),
            Event::DocumentStart if self.root.is_some() => {
                self.fail(pos, "config.yaml must hold a single YAML document")
            }
            _ => {}
        }
    }
}

/// Parses YAML text into a positioned tree. An empty document yields `None`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    // Events are pulled one at a time rather than through `Parser::load`, which recurses once
    // per nesting level (a stack overflow on `[[[[…`) and stops only at the end of the input.
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            pos: Pos::from(*e.marker()),
            message: e.info().to_string(),
        })?;
        if ev == Event::StreamEnd {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("gateway:\n  port: 5\n").unwrap().unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0, "gateway");
        assert_eq!(entries[0].1, Pos { line: 1, col: 1 });
        let Value::Map(inner) = &entries[0].2.value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].1, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].2.pos, Pos { line: 2, col: 9 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate key `a`"));
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }

    #[test]
    fn empty_document_is_none() {
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}
