//! Hub `chat.completion.chunk`s -> Anthropic SSE events for an Anthropic client.
//!
//! `message_start` comes first; text opens a `text` block, each hub tool call (by its `index`)
//! opens its own `tool_use` block and its argument deltas become `input_json_delta`s on that
//! block. A block is closed when another one opens. If a hub stream sends argument deltas for a
//! tool call whose block was already closed (interleaved parallel calls), they are still sent on
//! that call's block index: Anthropic's SDKs accumulate deltas by index. State is bounded: one
//! entry per tool call, never the text.

use serde_json::{json, Value};

use super::inbound::error_value;
use super::{stop_reason, usage_to_anthropic, EXT_STOP_SEQUENCE};
use crate::audit::Usage;
use crate::error::GatewayError;
use crate::providers::stream::ClientEncoder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Tool,
}

pub struct AnthropicEncoder {
    model: String,
    message_id: String,
    started: bool,
    /// The block currently open: (Anthropic block index, kind).
    open: Option<(u64, Block)>,
    next_block: u64,
    /// Hub tool-call index -> Anthropic block index.
    tool_blocks: Vec<(u64, u64)>,
    finish_reason: Option<String>,
    stop_sequence: Option<String>,
    /// Usage seen in a hub usage chunk, used when `done` gets none.
    chunk_usage: Option<Usage>,
    refused: bool,
}

fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    crate::json_write::write_value(out, data);
    out.extend_from_slice(b"\n\n");
}

impl AnthropicEncoder {
    /// `model` is the name the client asked for; `message_id` the `msg_...` id to report.
    pub fn new(model: &str, message_id: String) -> Self {
        AnthropicEncoder {
            model: model.to_string(),
            message_id,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            finish_reason: None,
            stop_sequence: None,
            chunk_usage: None,
            refused: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "type": "message_start",
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": 0, "output_tokens": 0 },
            }
        });
        event(out, "message_start", &message);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            let data = json!({ "type": "content_block_stop", "index": index });
            event(out, "content_block_stop", &data);
        }
    }

    fn open_block(&mut self, kind: Block, content_block: Value, out: &mut Vec<u8>) -> u64 {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        let data = json!({ "type": "content_block_start", "index": index, "content_block": content_block });
        event(out, "content_block_start", &data);
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some((index, Block::Text)) => index,
            _ => self.open_block(Block::Text, json!({ "type": "text", "text": "" }), out),
        };
        let data = json!({
            "type": "content_block_delta",
            "index": index,
            "delta": { "type": "text_delta", "text": text },
        });
        event(out, "content_block_delta", &data);
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let hub_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let known = self
            .tool_blocks
            .iter()
            .find(|(h, _)| *h == hub_index)
            .map(|(_, b)| *b);
        let index = match known {
            Some(b) => b,
            None => {
                let id = call.get("id").and_then(Value::as_str).unwrap_or("");
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let block = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
                let b = self.open_block(Block::Tool, block, out);
                self.tool_blocks.push((hub_index, b));
                b
            }
        };
        let args = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !args.is_empty() {
            let data = json!({
                "type": "content_block_delta",
                "index": index,
                "delta": { "type": "input_json_delta", "partial_json": args },
            });
            event(out, "content_block_delta", &data);
        }
    }
}

impl ClientEncoder for AnthropicEncoder {
    fn chunk(&mut self, chunk: &Value, _raw: Option<&[u8]>, out: &mut Vec<u8>) {
        self.start(out);
        if let Some(u) = chunk.get("usage").and_then(Usage::from_openai) {
            self.chunk_usage = Some(u);
        }
        // ASC refuses `n` > 1 for Anthropic clients: only choice 0 exists.
        let choices = chunk.get("choices").and_then(Value::as_array);
        let Some(choice) = choices
            .into_iter()
            .flatten()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            if !text.is_empty() {
                self.text(text, out);
            }
        }
        // OpenAI's `refusal` deltas are the model's answer, ending as Anthropic's `refusal`.
        if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
            self.refused = true;
            if !text.is_empty() {
                self.text(text, out);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_call(call, out);
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_string());
        }
        if let Some(s) = choice.get(EXT_STOP_SEQUENCE).and_then(Value::as_str) {
            self.stop_sequence = Some(s.to_string());
        }
    }

    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        event(out, "ping", &json!({ "type": "ping" }));
    }

    fn done(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let finish = match self.finish_reason.as_deref() {
            None | Some("stop") if self.refused => "content_filter",
            f => f.unwrap_or("stop"),
        };
        let usage = usage.or(self.chunk_usage).unwrap_or_default();
        let data = json!({
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(finish, self.stop_sequence.is_some()),
                "stop_sequence": self.stop_sequence,
            },
            "usage": usage_to_anthropic(&usage),
        });
        event(out, "message_delta", &data);
        event(out, "message_stop", &json!({ "type": "message_stop" }));
    }

    fn error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        event(out, "error", &error_value(err));
    }
}
