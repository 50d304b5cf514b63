//! Reading a completion request (either API) and the trigger-word rules used when
//! the step queue is empty.

use serde_json::{json, Value};

use super::{split_words, Api, Step};

/// What the fake needs from a completion request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Conversation {
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// Text of the last user message that has any text (tool results skipped).
    pub last_user_text: Option<String>,
    /// Text of the latest tool result, if the conversation has one.
    pub tool_result: Option<String>,
    /// Deterministic estimate: body length / 4, at least 1.
    pub input_tokens: u64,
}

/// Validates the request shape; `Err` is the message for a 400.
pub(super) fn parse(api: Api, body: &Value, body_len: usize) -> Result<Conversation, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "request body must be a JSON object".to_string())?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| "model: field required (string)".to_string())?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| "messages: field required (array)".to_string())?;
    let (last_user_text, tool_result) = match api {
        Api::OpenAi => openai_scan(messages),
        Api::Anthropic => anthropic_scan(messages),
    };
    Ok(Conversation {
        model: model.to_string(),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        last_user_text,
        tool_result,
        input_tokens: (body_len as u64 / 4).max(1),
    })
}

/// A string, or the concatenated `{type:"text",text}` parts of an array.
fn text_of(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        _ => None,
    }
}

fn role(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

fn openai_scan(messages: &[Value]) -> (Option<String>, Option<String>) {
    let user = messages
        .iter()
        .rev()
        .filter(|m| role(m) == Some("user"))
        .find_map(|m| text_of(m.get("content")).filter(|t| !t.is_empty()));
    let tool = messages
        .iter()
        .rev()
        .find(|m| role(m) == Some("tool"))
        .map(|m| text_of(m.get("content")).unwrap_or_default());
    (user, tool)
}

fn anthropic_scan(messages: &[Value]) -> (Option<String>, Option<String>) {
    // text_of only takes `text` blocks, so tool_result blocks never count as user text.
    let user = messages
        .iter()
        .rev()
        .filter(|m| role(m) == Some("user"))
        .find_map(|m| text_of(m.get("content")).filter(|t| !t.is_empty()));
    let tool = messages
        .iter()
        .rev()
        .filter(|m| role(m) == Some("user"))
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .find_map(|blocks| {
            blocks
                .iter()
                .rev()
                .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
        .map(|b| text_of(b.get("content")).unwrap_or_default());
    (user, tool)
}

/// The answer when nothing is queued.
pub(super) fn trigger(api: Api, conv: &Conversation) -> Step {
    let text = conv.last_user_text.as_deref().unwrap_or("");
    if text.contains("TOOLTEST") {
        return match &conv.tool_result {
            None => {
                let id = match api {
                    Api::OpenAi => "call_fake_1",
                    Api::Anthropic => "toolu_fake_1",
                };
                Step::ToolCalls(vec![(
                    id.to_string(),
                    "read".to_string(),
                    json!({"path": "TOOLFILE.txt"}),
                )])
            }
            Some(result) => Step::text(&format!("The file says: {result}")),
        };
    }
    if text.contains("ERR400TEST") {
        return Step::status(400);
    }
    if text.contains("ERRTEST") {
        return Step::status(500);
    }
    if text.contains("SLOWTEST") {
        let words: Vec<String> = (1..=40).map(|i| format!("word{i} ")).collect();
        return Step::Text {
            chunks: split_words(words.concat().trim_end()),
            delay_ms: 50,
        };
    }
    Step::text("Hello from the fake LLM!")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(api: Api, body: Value) -> Conversation {
        let len = body.to_string().len();
        parse(api, &body, len).expect("valid request")
    }

    #[test]
    fn openai_last_user_text_skips_tool_messages() {
        let c = conv(
            Api::OpenAi,
            json!({"model": "m", "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "run "}, {"type": "text", "text": "TOOLTEST"}]},
                {"role": "assistant", "content": null, "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_fake_1", "content": "file body"}
            ]}),
        );
        assert_eq!(c.last_user_text.as_deref(), Some("run TOOLTEST"));
        assert_eq!(c.tool_result.as_deref(), Some("file body"));
        assert!(!c.stream);
    }

    #[test]
    fn anthropic_tool_result_blocks_are_not_user_text() {
        let c = conv(
            Api::Anthropic,
            json!({"model": "m", "stream": true, "messages": [
                {"role": "user", "content": "please TOOLTEST"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "read", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": [{"type": "text", "text": "abc"}]}]}
            ]}),
        );
        assert_eq!(c.last_user_text.as_deref(), Some("please TOOLTEST"));
        assert_eq!(c.tool_result.as_deref(), Some("abc"));
        assert!(c.stream);
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        assert!(parse(Api::OpenAi, &Value::Null, 0).is_err());
        assert!(parse(Api::OpenAi, &json!({"model": "m"}), 10).is_err());
        assert!(parse(Api::Anthropic, &json!({"messages": []}), 10).is_err());
    }

    #[test]
    fn triggers_pick_expected_steps() {
        let mk = |t: &str| Conversation {
            model: "m".into(),
            stream: true,
            include_usage: false,
            last_user_text: Some(t.into()),
            tool_result: None,
            input_tokens: 1,
        };
        assert_eq!(trigger(Api::OpenAi, &mk("x ERR400TEST")), Step::status(400));
        assert_eq!(trigger(Api::OpenAi, &mk("x ERRTEST")), Step::status(500));
        match trigger(Api::Anthropic, &mk("SLOWTEST")) {
            Step::Text { chunks, delay_ms } => {
                assert_eq!(chunks.len(), 40);
                assert_eq!(chunks[1], " word2");
                assert_eq!(delay_ms, 50);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            trigger(Api::OpenAi, &mk("hi")),
            Step::Text {
                chunks: vec![
                    "Hello".into(),
                    " from".into(),
                    " the".into(),
                    " fake".into(),
                    " LLM!".into()
                ],
                delay_ms: 0
            }
        );
    }
}
