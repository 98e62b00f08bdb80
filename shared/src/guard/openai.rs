//! The guard on OpenAI's chat-completions dialect: which parts of a request, a response and a
//! stream chunk are text, and the request limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::findings::Findings;
use super::policy::GuardPolicy;
use super::reply_view;
use super::scanner::Scanner;
use super::stream::StreamRedactor;
use super::Side;
use crate::error::{ErrorKind, GatewayError};

/// Checks and redacts a chat-completions request body in place: the output-token limit
/// (`max_tokens`, `max_completion_tokens`), the input size limit (characters of all text
/// content), then every text (`messages[].content` as a string or `text` parts, whatever the
/// role: system, developer, user, assistant, tool results; and tool-call `function.arguments`).
/// Returns the 400 of a limit or a block-mode rule; decisions go to `findings`.
pub fn check_chat_request(
    policy: &GuardPolicy,
    body: &mut Map<String, Value>,
    findings: &mut Findings,
) -> Result<(), GatewayError> {
    if let Some(limit) = policy.max_output_tokens {
        for param in ["max_tokens", "max_completion_tokens"] {
            let asked = body.get(param).and_then(Value::as_f64);
            if asked.is_some_and(|n| n > limit as f64) {
                return Err(GatewayError::new(
                    ErrorKind::MaxTokensOverLimit,
                    format!("`{param}` is above this tenant's limit of {limit} output tokens; ask for at most {limit}."),
                )
                .with_param(param));
            }
        }
    }
    if policy.max_input_chars.is_none() && !policy.scans_requests() {
        // Nothing reads the texts: do not walk the messages for them.
        return Ok(());
    }
    let mut texts = Vec::new();
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for (i, m) in messages.iter_mut().enumerate() {
            if let Some(m) = m.as_object_mut() {
                message_texts(m, &format!("messages[{i}]"), &mut texts);
            }
        }
    }
    if let Some(limit) = policy.max_input_chars {
        let total: u64 = texts.iter().map(|(_, s)| s.chars().count() as u64).sum();
        if total > limit {
            return Err(GatewayError::new(
                ErrorKind::InputTooLong,
                format!("The messages hold {total} characters of text; this tenant allows at most {limit}. Shorten the input."),
            )
            .with_param("messages"));
        }
    }
    if !policy.scans_requests() {
        return Ok(());
    }
    let scanner = policy.scanner();
    for (location, text) in texts {
        // Look-alike digits and invisible separators: when the folded text holds something to
        // act on, the folded text is what is acted on (see `fold`).
        if let Some(folded) = super::fold::fold(text) {
            let found = !matches!(
                scanner.redact(&folded, Side::Request, &mut Findings::default()),
                Ok(None)
            );
            if found {
                *text = folded;
            }
        }
        match scanner.redact(text, Side::Request, findings) {
            Ok(Some(redacted)) => *text = redacted,
            Ok(None) => {}
            Err(blocked) => return Err(blocked.to_error(&location)),
        }
    }
    Ok(())
}

/// Redacts (and flags) the text of a `chat.completion` response body in place:
/// `choices[].message.content` and tool-call arguments. A response is never blocked after the
/// fact: block-mode rules redact, and their decisions say so. Returns whether anything changed.
pub fn redact_chat_response(
    policy: &GuardPolicy,
    body: &mut Value,
    findings: &mut Findings,
) -> bool {
    if !policy.scans_responses() {
        return false;
    }
    let mut texts = Vec::new();
    if let Some(Value::Array(choices)) = body.get_mut("choices") {
        for (i, c) in choices.iter_mut().enumerate() {
            if let Some(Value::Object(m)) = c.get_mut("message") {
                message_texts(m, &format!("choices[{i}].message"), &mut texts);
            }
        }
    }
    let mut changed = false;
    for (_, text) in texts {
        if let Ok(Some(redacted)) = policy.scanner().redact(text, Side::Response, findings) {
            *text = redacted;
            changed = true;
        }
    }
    changed
}

/// [`redact_chat_response`] on the body's bytes, for the common case where the policy scans
/// responses and the reply has nothing to redact: its flags are recorded and the upstream's bytes
/// stay as they are. `Unread` (nothing recorded) when a text would be redacted or the body is not
/// a shape [`reply_view`] takes: the caller parses the reply and redacts it.
pub fn scan_chat_reply(policy: &GuardPolicy, body: &[u8], findings: &mut Findings) -> ReplyScan {
    let Some(view) = reply_view::read(body) else {
        return ReplyScan::Unread;
    };
    if !policy.scans_responses()
        || policy
            .scanner()
            .flag_unredacted_response(&view.texts, findings)
    {
        ReplyScan::Unchanged { usage: view.usage }
    } else {
        ReplyScan::Unread
    }
}

/// What [`scan_chat_reply`] found.
#[derive(Debug, PartialEq)]
pub enum ReplyScan {
    /// Nothing to redact; the flags are recorded. The reply's usage.
    Unchanged { usage: Option<crate::audit::Usage> },
    /// Take the `Value` path.
    Unread,
}

/// The text fields of one message, with their locations.
fn message_texts<'m>(
    m: &'m mut Map<String, Value>,
    at: &str,
    out: &mut Vec<(String, &'m mut String)>,
) {
    for (key, v) in m.iter_mut() {
        match (key.as_str(), v) {
            ("content", Value::String(s)) => out.push((format!("{at}.content"), s)),
            ("content", Value::Array(parts)) => {
                for (j, part) in parts.iter_mut().enumerate() {
                    let Some(part) = part.as_object_mut() else {
                        continue;
                    };
                    let field = match part.get("type").and_then(Value::as_str) {
                        Some("text") => "text",
                        Some("refusal") => "refusal",
                        _ => continue,
                    };
                    if let Some(Value::String(s)) = part.get_mut(field) {
                        out.push((format!("{at}.content[{j}].{field}"), s));
                    }
                }
            }
            ("tool_calls", Value::Array(calls)) => {
                for (j, call) in calls.iter_mut().enumerate() {
                    if let Some(Value::String(s)) = call.pointer_mut("/function/arguments") {
                        out.push((format!("{at}.tool_calls[{j}].function.arguments"), s));
                    }
                }
            }
            ("function_call", call) => {
                if let Some(Value::String(s)) = call.get_mut("arguments") {
                    out.push((format!("{at}.function_call.arguments"), s));
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct ChoiceStreams {
    content: Option<StreamRedactor>,
    tool_args: BTreeMap<u64, StreamRedactor>,
    finished: bool,
}

/// What watches a streamed response: the guard when the policy scans responses, or nothing (the
/// stream passes through untouched and the request's findings are kept for its record).
#[derive(Debug)]
pub enum ResponseGuard {
    Scanning(OpenAiStreamGuard),
    Off(Findings),
}

impl ResponseGuard {
    pub fn new(policy: &GuardPolicy, findings: Findings) -> Self {
        if policy.scans_responses() {
            ResponseGuard::Scanning(OpenAiStreamGuard::new(policy, findings))
        } else {
            ResponseGuard::Off(findings)
        }
    }

    pub fn findings(&self) -> &Findings {
        match self {
            ResponseGuard::Scanning(g) => g.findings(),
            ResponseGuard::Off(f) => f,
        }
    }
}

/// Redacts a streamed chat completion chunk by chunk (`chat.completion.chunk` JSON, as the relay
/// parses it): one [`StreamRedactor`] per choice for `delta.content` and one per tool call for
/// `delta.tool_calls[].function.arguments`. Text that could still be part of a match is held back
/// and released with later chunks; the chunk that carries a choice's `finish_reason` also carries
/// everything still held for that choice.
pub struct OpenAiStreamGuard {
    scanner: Arc<Scanner>,
    findings: Findings,
    choices: BTreeMap<u64, ChoiceStreams>,
    /// `id`, `object`, `created`, `model`, `system_fingerprint` of the last chunk, for `finish`.
    envelope: Map<String, Value>,
}

impl std::fmt::Debug for OpenAiStreamGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiStreamGuard")
            .field("choices", &self.choices.len())
            .field("findings", &self.findings)
            .finish_non_exhaustive()
    }
}

impl OpenAiStreamGuard {
    /// A guard continuing the request's `findings`.
    fn new(policy: &GuardPolicy, findings: Findings) -> Self {
        OpenAiStreamGuard {
            scanner: policy.scanner().clone(),
            findings,
            choices: BTreeMap::new(),
            envelope: Map::new(),
        }
    }

    /// Rewrites one parsed chunk in place. Returns whether it changed (if not, the relay may
    /// forward the original bytes).
    pub fn on_chunk(&mut self, chunk: &mut Value) -> bool {
        for key in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(v) = chunk.get(key) {
                self.envelope.insert(key.to_string(), v.clone());
            }
        }
        let Some(Value::Array(choices)) = chunk.get_mut("choices") else {
            return false;
        };
        let mut changed = false;
        for (pos, choice) in choices.iter_mut().enumerate() {
            let Some(choice) = choice.as_object_mut() else {
                continue;
            };
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let finishing = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            let streams = self.choices.entry(index).or_default();
            if streams.finished {
                continue;
            }
            let has_delta = matches!(choice.get("delta"), Some(Value::Object(_)));
            if !has_delta && !finishing {
                continue;
            }
            let delta = choice
                .entry("delta")
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(delta) = delta.as_object_mut() else {
                continue;
            };
            changed |= rewrite_delta(&self.scanner, streams, delta, finishing, &mut self.findings);
            streams.finished = finishing;
        }
        changed
    }

    /// The stream ended. Returns a last chunk carrying the text still held back for choices that
    /// never got a `finish_reason` (send it before `[DONE]` or the terminal error), if any.
    pub fn finish(&mut self) -> Option<Value> {
        let mut out = Vec::new();
        for (&index, streams) in self.choices.iter_mut() {
            if streams.finished {
                continue;
            }
            let mut delta = Map::new();
            rewrite_delta(&self.scanner, streams, &mut delta, true, &mut self.findings);
            streams.finished = true;
            if !delta.is_empty() {
                out.push(
                    serde_json::json!({"index": index, "delta": delta, "finish_reason": null}),
                );
            }
        }
        if out.is_empty() {
            return None;
        }
        let mut chunk = self.envelope.clone();
        chunk.insert("choices".into(), Value::Array(out));
        Some(Value::Object(chunk))
    }

    pub fn findings(&self) -> &Findings {
        &self.findings
    }

    pub fn into_findings(self) -> Findings {
        self.findings
    }
}

/// Passes one choice's delta through its redactors; with `flush`, appends everything held back.
fn rewrite_delta(
    scanner: &Arc<Scanner>,
    streams: &mut ChoiceStreams,
    delta: &mut Map<String, Value>,
    flush: bool,
    findings: &mut Findings,
) -> bool {
    let mut changed = false;
    let new = || StreamRedactor::new(scanner.clone());
    // A tool call starting (its first delta carries its `id`) ends the text and the calls before
    // it: what they still hold back goes out in this delta, ahead of the new call. Held any
    // longer it would follow the call, which an Anthropic client sees as a new text block after
    // the tool_use block, or as input for a block already stopped. Text and each call are
    // segments of their own (Anthropic's blocks), each scanned whole.
    let new_calls: Vec<u64> = match delta.get("tool_calls") {
        Some(Value::Array(calls)) => calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get("id").is_some_and(|id| !id.is_null()))
            .map(|(pos, c)| c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64))
            .collect(),
        _ => Vec::new(),
    };
    let flush_content = flush || !new_calls.is_empty();
    if let Some(Value::String(text)) = delta.get_mut("content") {
        let r = streams.content.get_or_insert_with(new);
        let mut out = r.push(text, findings);
        if flush_content {
            out.push_str(&r.finish(findings));
        }
        if out != *text {
            *text = out;
            changed = true;
        }
    } else if flush_content {
        if let Some(r) = streams.content.as_mut() {
            let rest = r.finish(findings);
            if !rest.is_empty() {
                delta.insert("content".into(), Value::String(rest));
                changed = true;
            }
        }
    }
    // The earlier calls' held-back arguments (their redactors finished now, their entries put
    // ahead of the new call's below).
    let ended = if !flush && !new_calls.is_empty() {
        let mut ended = Vec::new();
        for (&index, r) in streams.tool_args.iter_mut() {
            if new_calls.contains(&index) {
                continue;
            }
            let rest = r.finish(findings);
            if !rest.is_empty() {
                ended.push(serde_json::json!({"index": index, "function": {"arguments": rest}}));
            }
        }
        ended
    } else {
        Vec::new()
    };
    if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
        for (pos, call) in calls.iter_mut().enumerate() {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                let r = streams.tool_args.entry(index).or_insert_with(new);
                let mut out = r.push(args, findings);
                if flush {
                    out.push_str(&r.finish(findings));
                }
                if out != *args {
                    *args = out;
                    changed = true;
                }
            }
        }
        if !ended.is_empty() {
            calls.splice(0..0, ended);
            changed = true;
        }
    }
    if flush {
        for (&index, r) in streams.tool_args.iter_mut() {
            // Calls whose arguments were in this delta are flushed already; this is for the rest.
            let rest = r.finish(findings);
            if rest.is_empty() {
                continue;
            }
            let calls = delta
                .entry("tool_calls")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(calls) = calls else {
                continue;
            };
            let here = calls
                .iter_mut()
                .find(|c| c.get("index").and_then(Value::as_u64) == Some(index) && c.is_object());
            match here {
                Some(Value::Object(call)) => {
                    let function = call
                        .entry("function")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(f) = function {
                        f.insert("arguments".into(), Value::String(rest));
                    }
                }
                _ => {
                    calls.push(serde_json::json!({"index": index, "function": {"arguments": rest}}))
                }
            }
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
