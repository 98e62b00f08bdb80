//! Anthropic SSE events from an upstream -> hub `chat.completion.chunk`s.
//!
//! Each `tool_use` block becomes a hub tool call whose `index` counts the tool_use blocks of the
//! message (0, 1, ...), and keeps that index for all its argument deltas. State is bounded: one
//! entry per tool call, never the text.

use serde_json::{json, Value};

use super::{error_kind, finish_reason, usage_from_anthropic, usage_to_openai, EXT_STOP_SEQUENCE};
use crate::audit::Usage;
use crate::error::GatewayError;
use crate::providers::set_field;
use crate::providers::stream::{HubEvent, UpstreamDecoder};
use crate::sse::SseEvent;

pub struct AnthropicDecoder {
    created_s: u64,
    id: String,
    model: String,
    /// The usage fields Anthropic reported so far (message_start, then cumulative message_delta).
    usage: Option<Value>,
    /// Anthropic block index -> hub tool-call index, and whether its input had any JSON yet.
    tool_blocks: Vec<(u64, u64, bool)>,
}

impl AnthropicDecoder {
    /// `created_s`: the current time in Unix seconds, reported as each chunk's `created`.
    pub fn new(created_s: u64) -> Self {
        AnthropicDecoder {
            created_s,
            id: String::new(),
            model: String::new(),
            usage: None,
            tool_blocks: Vec::new(),
        }
    }

    fn chunk(&self, choices: Value) -> HubEvent {
        let chunk = json!({
            "id": format!("chatcmpl-{}", self.id),
            "object": "chat.completion.chunk",
            "created": self.created_s,
            "model": self.model,
            "choices": choices,
        });
        HubEvent::Chunk { chunk, raw: None }
    }

    fn delta(&self, delta: Value) -> HubEvent {
        self.chunk(json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": null }]))
    }

    fn merge_usage(&mut self, u: &Value) {
        let Some(new) = u.as_object() else { return };
        let current = self.usage.get_or_insert_with(|| json!({}));
        for (k, v) in new {
            if !v.is_null() {
                set_field(current, k, v.clone());
            }
        }
    }

    fn block_index(data: &Value) -> Result<u64, GatewayError> {
        data.get("index").and_then(Value::as_u64).ok_or_else(|| {
            GatewayError::bad_upstream("an Anthropic content block event has no index")
        })
    }
}

impl UpstreamDecoder for AnthropicDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<HubEvent>) -> Result<(), GatewayError> {
        if ev.data.is_empty() {
            if ev.event.is_none() || ev.event.as_deref() == Some("ping") {
                out.push(HubEvent::KeepAlive);
            }
            return Ok(());
        }
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|_| GatewayError::bad_upstream("an Anthropic stream event is not JSON"))?;
        let ty = data
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match ty {
            "message_start" => {
                let m = data
                    .get("message")
                    .ok_or_else(|| GatewayError::bad_upstream("message_start without a message"))?;
                self.id = m
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.model = m
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.tool_blocks.clear();
                if let Some(u) = m.get("usage") {
                    self.merge_usage(u);
                }
                out.push(self.delta(json!({ "role": "assistant", "content": "" })));
            }
            "content_block_start" => {
                let index = Self::block_index(&data)?;
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.delta(json!({ "content": text })));
                        }
                    }
                    Some("tool_use") => {
                        let k = self.tool_blocks.len() as u64;
                        // Anthropic starts every tool_use block with `input: {}` and streams the
                        // input as deltas; a compatible upstream that sends it whole here has it
                        // passed on as the first arguments.
                        let whole = block
                            .get("input")
                            .and_then(Value::as_object)
                            .filter(|input| !input.is_empty())
                            .map(|input| Value::Object(input.clone()).to_string());
                        self.tool_blocks.push((index, k, whole.is_some()));
                        let call = json!({
                            "index": k,
                            "id": block.get("id").and_then(Value::as_str).unwrap_or(""),
                            "type": "function",
                            "function": {
                                "name": block.get("name").and_then(Value::as_str).unwrap_or(""),
                                "arguments": whole.unwrap_or_default(),
                            },
                        });
                        out.push(self.delta(json!({ "tool_calls": [call] })));
                    }
                    other => {
                        return Err(GatewayError::bad_upstream(format!(
                            "the Anthropic stream holds a `{}` block ASC cannot pass on",
                            other.unwrap_or("untyped")
                        )))
                    }
                }
            }
            "content_block_delta" => {
                let index = Self::block_index(&data)?;
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        out.push(self.delta(json!({ "content": text })));
                    }
                    Some("input_json_delta") => {
                        let block = self
                            .tool_blocks
                            .iter_mut()
                            .find(|(b, _, _)| *b == index)
                            .ok_or_else(|| {
                                GatewayError::bad_upstream(
                                    "input_json_delta for a block that is no tool_use",
                                )
                            })?;
                        let partial = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        block.2 |= !partial.is_empty();
                        let k = block.1;
                        let call = json!({ "index": k, "function": { "arguments": partial } });
                        out.push(self.delta(json!({ "tool_calls": [call] })));
                    }
                    other => {
                        return Err(GatewayError::bad_upstream(format!(
                            "the Anthropic stream holds a `{}` delta ASC cannot pass on",
                            other.unwrap_or("untyped")
                        )))
                    }
                }
            }
            "content_block_stop" => {
                // A tool without parameters streams only `partial_json: ""`: its arguments would
                // reach the client as "", which is not JSON (the whole reply maps `input: {}`
                // to "{}"). Give it "{}" as its block ends.
                let index = Self::block_index(&data)?;
                let empty = self
                    .tool_blocks
                    .iter_mut()
                    .find(|(b, _, had_json)| *b == index && !had_json);
                if let Some(block) = empty {
                    block.2 = true;
                    let call = json!({ "index": block.1, "function": { "arguments": "{}" } });
                    out.push(self.delta(json!({ "tool_calls": [call] })));
                }
            }
            "message_delta" => {
                if let Some(u) = data.get("usage") {
                    self.merge_usage(u);
                }
                let d = data.get("delta").unwrap_or(&Value::Null);
                if let Some(reason) = d.get("stop_reason").and_then(Value::as_str) {
                    let mut choice = json!({
                        "index": 0,
                        "delta": {},
                        "logprobs": null,
                        "finish_reason": finish_reason(reason),
                    });
                    if let Some(seq) = d.get("stop_sequence").and_then(Value::as_str) {
                        set_field(&mut choice, EXT_STOP_SEQUENCE, json!(seq));
                    }
                    out.push(self.chunk(json!([choice])));
                }
            }
            "message_stop" => {
                if let Some(u) = self.usage() {
                    let mut usage_chunk = self.chunk(json!([]));
                    if let HubEvent::Chunk { chunk, .. } = &mut usage_chunk {
                        set_field(chunk, "usage", usage_to_openai(&u));
                    }
                    out.push(usage_chunk);
                }
                out.push(HubEvent::Done);
            }
            "ping" => out.push(HubEvent::KeepAlive),
            "error" => {
                let e = data.get("error").unwrap_or(&Value::Null);
                let ety = e.get("type").and_then(Value::as_str).unwrap_or("");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                let err =
                    GatewayError::new(error_kind(None, ety), format!("anthropic {ety}: {msg}"));
                out.push(HubEvent::Error(err));
            }
            // Anthropic may add event types (versioning policy): ignore the unknown ones.
            _ => {}
        }
        Ok(())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(usage_from_anthropic)
    }
}
