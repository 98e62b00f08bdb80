//! A stored answer: the completion (as the hub's OpenAI `chat.completion`, after response-side
//! redaction) or the embeddings reply, with its usage and expiry. A completion is replayed in
//! the caller's dialect, whole or as a stream of chunks.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::Usage;

pub const ENTRY_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A chat completion (served to chat and messages callers alike).
    Completion,
    /// An OpenAI-shaped embeddings reply.
    Embeddings,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Completion => "completion",
            EntryKind::Embeddings => "embeddings",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    pub kind: EntryKind,
    pub stored_ms: u64,
    pub expires_ms: u64,
    pub provider: String,
    /// The model the upstream reported serving.
    pub served_model: String,
    pub usage: Option<Usage>,
    pub body: Value,
}

impl Entry {
    pub fn encode(&self) -> Option<Vec<u8>> {
        crate::json_ser::to_vec(self).ok()
    }

    /// An entry of `kind` still fresh at `now_ms`; anything else (expired, another version or
    /// kind, unreadable) is a miss.
    pub fn decode(bytes: &[u8], kind: EntryKind, now_ms: u64) -> Option<Entry> {
        let entry: Entry = serde_json::from_slice(bytes).ok()?;
        (entry.version == ENTRY_VERSION && entry.kind == kind && entry.expires_ms > now_ms)
            .then_some(entry)
    }
}

/// A stored `chat.completion` as the `chat.completion.chunk`s a stream of it would have carried:
/// per choice, one chunk with the role, content and tool calls, then one with its finish reason.
/// Then, when the completion has usage, the usage-only chunk (`choices: []`) OpenAI ends a
/// stream with; the caller's encoder passes it on only when the client asked for it.
pub fn replay_chunks(completion: &Value) -> Vec<Value> {
    let id = completion.get("id").cloned().unwrap_or(Value::Null);
    let created = completion.get("created").cloned().unwrap_or(json!(0));
    let model = completion.get("model").cloned().unwrap_or(Value::Null);
    let fingerprint = completion.get("system_fingerprint").cloned();
    let chunk = |choice: Value| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        });
        if let Some(fp) = &fingerprint {
            crate::providers::set_field(&mut c, "system_fingerprint", fp.clone());
        }
        c
    };
    let mut out = Vec::new();
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let message = choice.get("message").cloned().unwrap_or(json!({}));
        let mut delta = serde_json::Map::new();
        delta.insert(
            "role".into(),
            message.get("role").cloned().unwrap_or(json!("assistant")),
        );
        if let Some(content) = message.get("content").filter(|c| !c.is_null()) {
            delta.insert("content".into(), content.clone());
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let indexed: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(n, call)| {
                    let mut call = call.clone();
                    crate::providers::set_field(&mut call, "index", json!(n));
                    call
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(indexed));
        }
        out.push(chunk(json!({
            "index": index,
            "delta": Value::Object(delta),
            "finish_reason": null,
        })));
        out.push(chunk(json!({
            "index": index,
            "delta": {},
            "finish_reason": choice.get("finish_reason").cloned().unwrap_or(json!("stop")),
        })));
    }
    if let Some(usage) = completion.get("usage").filter(|u| !u.is_null()) {
        let mut last = chunk(json!(null));
        crate::providers::set_field(&mut last, "choices", json!([]));
        crate::providers::set_field(&mut last, "usage", usage.clone());
        out.push(last);
    }
    out
}
