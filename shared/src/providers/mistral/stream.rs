//! Mistral's SSE stream -> hub `chat.completion.chunk`s.
//!
//! Mistral streams `data: {chunk}` events ending with `data: [DONE]`, close to OpenAI's, but:
//! - `delta.content` may be a list of chunks (`text`, `thinking`): made a string (and
//!   `reasoning_content`), as in [`super::response_to_hub`];
//! - a tool call usually arrives whole in one delta, without `index`; several calls may share a
//!   delta (or all say `index: 0`). Some models served by Mistral stream a call in pieces instead:
//!   a first delta with the `id`, then `arguments` fragments with only an `index`. Each call gets
//!   its own OpenAI `index` (0, 1, ... per choice, in order), fragments follow their call;
//! - usage comes in the last chunk next to `finish_reason` (no `stream_options` needed): it is kept
//!   for [`UpstreamDecoder::usage`] and sent as OpenAI's separate usage-only chunk (`choices: []`)
//!   just before the end, so the client side can decide whether to show it;
//! - `finish_reason: "model_length"` is `length`; `"error"` ends the stream with a terminal error.
//!
//! State is per choice and per tool call (indexes), never the text.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::response::{
    arguments, finish_reason, generation_failed, hub_usage, read_usage, split_content,
};
use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::stream::{HubEvent, UpstreamDecoder};
use crate::sse::SseEvent;

#[derive(Debug, Default)]
pub struct MistralDecoder {
    usage: Option<Usage>,
    /// `id`, `created`, `model` of the last chunk, for the usage-only chunk.
    id: Value,
    created: Value,
    model: Value,
    /// By choice index.
    choices: BTreeMap<u64, ChoiceTools>,
}

/// Tool-call index bookkeeping for one choice.
#[derive(Debug, Default)]
struct ChoiceTools {
    /// How many calls this choice has started.
    started: u64,
    /// The upstream `index` of each started call that had one -> our index.
    by_upstream: Vec<(u64, u64)>,
    /// Our index of the call started last (fragments without an index belong to it).
    last: Option<u64>,
}

impl MistralDecoder {
    pub fn new() -> Self {
        MistralDecoder {
            id: json!(""),
            created: json!(0),
            model: json!(""),
            ..Default::default()
        }
    }

    fn tools_for(&mut self, choice: u64) -> &mut ChoiceTools {
        self.choices.entry(choice).or_default()
    }

    fn chunk(
        &mut self,
        v: &Map<String, Value>,
        out: &mut Vec<HubEvent>,
    ) -> Result<(), GatewayError> {
        for (key, slot) in [
            ("id", &mut self.id),
            ("created", &mut self.created),
            ("model", &mut self.model),
        ] {
            if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
                *slot = x.clone();
            }
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(read_usage(u).ok_or_else(|| {
                GatewayError::bad_upstream("Mistral's stream usage has no `prompt_tokens`")
            })?);
        }
        let choices = v
            .get("choices")
            .and_then(Value::as_array)
            .ok_or_else(|| GatewayError::bad_upstream("a Mistral stream chunk has no `choices`"))?;
        let mut failed = false;
        let mut out_choices = Vec::with_capacity(choices.len());
        for (i, c) in choices.iter().enumerate() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let delta = c.get("delta").and_then(Value::as_object);
            let mut d = Map::new();
            if let Some(delta) = delta {
                if let Some(role) = delta.get("role").filter(|r| r.is_string()) {
                    d.insert("role".into(), role.clone());
                }
                let (text, reasoning) = split_content(delta.get("content"))?;
                if let Some(r) = reasoning {
                    d.insert("reasoning_content".into(), Value::String(r));
                }
                if let Some(t) = text {
                    d.insert("content".into(), Value::String(t));
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    if !calls.is_empty() {
                        let tools = self.tools_for(index);
                        let calls = calls
                            .iter()
                            .map(|call| tool_call_delta(call, tools))
                            .collect::<Result<Vec<_>, _>>()?;
                        d.insert("tool_calls".into(), Value::Array(calls));
                    }
                }
            }
            let finish = match c.get("finish_reason").and_then(Value::as_str) {
                Some("error") => {
                    failed = true;
                    Value::Null
                }
                Some(r) => json!(finish_reason(r)),
                None => Value::Null,
            };
            out_choices.push(json!({
                "index": index,
                "delta": d,
                "finish_reason": finish,
                "logprobs": null,
            }));
        }
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": out_choices,
        });
        // A chunk that carried only usage (and no choices) is reported by the usage-only chunk.
        if !choices.is_empty() {
            out.push(HubEvent::Chunk { chunk, raw: None });
        }
        if failed {
            out.push(HubEvent::Error(generation_failed()));
        }
        Ok(())
    }
}

/// One tool-call delta in OpenAI's shape, with our per-choice index. A delta with an `id` starts
/// a call; one without continues the call its upstream `index` names, or else the last one.
fn tool_call_delta(call: &Value, tools: &mut ChoiceTools) -> Result<Value, GatewayError> {
    let upstream = call.get("index").and_then(Value::as_u64);
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && *id != "null");
    let f = call.get("function");
    let name = f
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let args = arguments(f.and_then(|f| f.get("arguments")));
    let known = upstream.and_then(|u| {
        tools
            .by_upstream
            .iter()
            .find(|(k, _)| *k == u)
            .map(|(_, ours)| *ours)
    });
    let continues = match (id, known, tools.last) {
        (Some(_), _, _) => None,
        (None, Some(ours), _) => Some(ours),
        (None, None, last) => last,
    };
    match continues {
        Some(ours) => {
            let mut function = Map::new();
            if let Some(n) = name {
                function.insert("name".into(), json!(n));
            }
            function.insert("arguments".into(), json!(args));
            Ok(json!({"index": ours, "function": function}))
        }
        None => {
            let id = id.ok_or_else(|| {
                GatewayError::bad_upstream("a Mistral tool call starts without an `id`")
            })?;
            let name = name.ok_or_else(|| {
                GatewayError::bad_upstream("a Mistral tool call starts without a function name")
            })?;
            let ours = tools.started;
            tools.started += 1;
            tools.last = Some(ours);
            if let Some(u) = upstream {
                match tools.by_upstream.iter_mut().find(|(k, _)| *k == u) {
                    Some(slot) => slot.1 = ours,
                    None => tools.by_upstream.push((u, ours)),
                }
            }
            Ok(json!({
                "index": ours,
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": args},
            }))
        }
    }
}

impl UpstreamDecoder for MistralDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<HubEvent>) -> Result<(), GatewayError> {
        let data = ev.data.trim();
        if data.is_empty() {
            out.push(HubEvent::KeepAlive);
            return Ok(());
        }
        if data == "[DONE]" {
            if let Some(u) = &self.usage {
                out.push(HubEvent::Chunk {
                    chunk: json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": hub_usage(u),
                    }),
                    raw: None,
                });
            }
            out.push(HubEvent::Done);
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            GatewayError::bad_upstream(format!("Mistral sent a stream event that is not JSON: {e}"))
        })?;
        let o = v.as_object().ok_or_else(|| {
            GatewayError::bad_upstream("Mistral sent a stream event that is not a JSON object")
        })?;
        let is_error = o
            .get("object")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("error"))
            || o.get("error").is_some_and(Value::is_object)
            || (!o.contains_key("choices")
                && (o.contains_key("message") || o.contains_key("detail")));
        if is_error {
            let (kind, message) = super::parse_error(data.as_bytes())
                .unwrap_or_else(|| ("error".into(), "Mistral sent an error event".into()));
            out.push(HubEvent::Error(GatewayError::new(
                ErrorKind::UpstreamError,
                format!("Mistral stream error ({kind}): {message}"),
            )));
            return Ok(());
        }
        self.chunk(o, out)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
