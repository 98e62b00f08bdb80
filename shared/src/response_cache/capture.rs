//! Rebuilds a streamed completion from the chunks the client was sent (after response-side
//! redaction), so a stream can be stored like a whole reply. Bounded: past the entry size limit
//! the capture gives up and nothing is stored.

use serde_json::{json, Map, Value};

#[derive(Debug, Default)]
struct Choice {
    role: Option<String>,
    content: String,
    /// By the chunk's `index`: id, name, arguments.
    tool_calls: Vec<(Option<String>, String, String)>,
    finish_reason: Option<String>,
}

#[derive(Debug)]
pub struct StreamCapture {
    limit: usize,
    bytes: usize,
    overflowed: bool,
    id: Option<Value>,
    model: Option<Value>,
    created: Option<Value>,
    system_fingerprint: Option<Value>,
    choices: Vec<Choice>,
}

/// More choices than any provider allows (`n` is at most 128 at OpenAI).
const MAX_CHOICES: usize = 128;

impl StreamCapture {
    pub fn new(limit_bytes: u64) -> Self {
        StreamCapture {
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            bytes: 0,
            overflowed: false,
            id: None,
            model: None,
            created: None,
            system_fingerprint: None,
            choices: Vec::new(),
        }
    }

    /// Takes in one `chat.completion.chunk` as sent to the client.
    pub fn on_chunk(&mut self, chunk: &Value) {
        if self.overflowed {
            return;
        }
        for (field, slot) in [
            ("id", &mut self.id),
            ("model", &mut self.model),
            ("created", &mut self.created),
            ("system_fingerprint", &mut self.system_fingerprint),
        ] {
            if slot.is_none() {
                *slot = chunk.get(field).filter(|v| !v.is_null()).cloned();
            }
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index >= MAX_CHOICES {
                self.overflowed = true;
                return;
            }
            if self.choices.len() <= index {
                self.choices.resize_with(index + 1, Choice::default);
            }
            let Some(slot) = self.choices.get_mut(index) else {
                return;
            };
            let mut added = 0;
            if let Some(delta) = choice.get("delta") {
                if let Some(role) = delta.get("role").and_then(Value::as_str) {
                    slot.role = Some(role.to_string());
                }
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    slot.content.push_str(text);
                    added += text.len();
                }
                for call in delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let n = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if n >= MAX_CHOICES {
                        self.overflowed = true;
                        return;
                    }
                    if slot.tool_calls.len() <= n {
                        slot.tool_calls
                            .resize_with(n + 1, || (None, String::new(), String::new()));
                    }
                    let Some(entry) = slot.tool_calls.get_mut(n) else {
                        return;
                    };
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        entry.0 = Some(id.to_string());
                    }
                    if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                        entry.1.push_str(name);
                        added += name.len();
                    }
                    if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str)
                    {
                        entry.2.push_str(args);
                        added += args.len();
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                slot.finish_reason = Some(reason.to_string());
            }
            self.bytes += added;
            if self.bytes > self.limit {
                self.overflowed = true;
                self.choices.clear();
                return;
            }
        }
    }

    /// The `chat.completion` the stream amounted to, or `None` when it outgrew the limit or
    /// some choice never finished.
    pub fn completion(&self, usage: Option<Value>) -> Option<Value> {
        if self.overflowed
            || self.choices.is_empty()
            || self.choices.iter().any(|c| c.finish_reason.is_none())
        {
            return None;
        }
        let choices: Vec<Value> = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut message = Map::new();
                message.insert(
                    "role".into(),
                    json!(c.role.as_deref().unwrap_or("assistant")),
                );
                let has_calls = !c.tool_calls.is_empty();
                message.insert(
                    "content".into(),
                    if c.content.is_empty() && has_calls {
                        Value::Null
                    } else {
                        json!(c.content)
                    },
                );
                if has_calls {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .iter()
                        .map(|(id, name, args)| {
                            json!({
                                "id": id,
                                "type": "function",
                                "function": {"name": name, "arguments": args},
                            })
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({
                    "index": i,
                    "message": Value::Object(message),
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        let mut out = json!({
            "id": self.id.clone().unwrap_or(Value::Null),
            "object": "chat.completion",
            "created": self.created.clone().unwrap_or(json!(0)),
            "model": self.model.clone().unwrap_or(Value::Null),
            "choices": choices,
        });
        if let Some(fp) = &self.system_fingerprint {
            crate::providers::set_field(&mut out, "system_fingerprint", fp.clone());
        }
        if let Some(usage) = usage {
            crate::providers::set_field(&mut out, "usage", usage);
        }
        Some(out)
    }

    /// Whether any choice ended asking for tool calls.
    pub fn ends_in_tool_calls(&self) -> bool {
        self.choices
            .iter()
            .any(|c| c.finish_reason.as_deref() == Some("tool_calls"))
    }
}
