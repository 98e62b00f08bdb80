//! OpenAI's API as an inbound dialect and an upstream provider. The hub is OpenAI's own shape, so
//! the stream side is nearly a pass-through: chunks the gateway leaves unchanged go to an OpenAI
//! client as the exact bytes the upstream sent (unknown fields such as `obfuscation` included).

use serde_json::{Map, Value};

use super::stream::{ClientEncoder, HubEvent, UpstreamDecoder};
use crate::audit::OpenAiUsage;
use crate::audit::Usage;
use crate::error::{ErrorKind, GatewayError};
use crate::json_view::object_view;
use crate::sse::SseEvent;

/// An OpenAI chat request, read for the gateway (the body is the hub request as it is).
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub hub: super::HubRequest,
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// Reads an OpenAI `chat.completions` request: the hub is the body itself.
pub fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("The request body is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(body) = value else {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };
    let model = required_model(&body)?;
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {}
        Some(_) => {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "`messages` must be a non-empty array.",
            )
            .with_param("messages"))
        }
        None => {
            return Err(GatewayError::new(
                ErrorKind::MissingParameter,
                "Missing required parameter: 'messages'.",
            )
            .with_param("messages"))
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                GatewayError::new(ErrorKind::InvalidRequest, "`stream` must be a boolean.")
                    .with_param("stream"),
            )
        }
    };
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ChatRequest {
        hub: body,
        model,
        stream,
        include_usage,
    })
}

/// `model`: a non-empty string, as OpenAI words the errors.
pub fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "`model` must be a non-empty string.",
        )
        .with_param("model")),
        None => Err(GatewayError::new(
            ErrorKind::MissingParameter,
            "You must provide a model parameter.",
        )
        .with_param("model")),
    }
}

/// Reads an OpenAI-compatible upstream's `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub struct OpenAiDecoder {
    usage: Option<Usage>,
}

impl OpenAiDecoder {
    pub fn new() -> Self {
        Self::default()
    }
}

impl UpstreamDecoder for OpenAiDecoder {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<HubEvent>) -> Result<(), GatewayError> {
        if ev.data == "[DONE]" {
            out.push(HubEvent::Done);
            return Ok(());
        }
        if ev.data.is_empty() {
            out.push(HubEvent::KeepAlive);
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(&ev.data).map_err(|_| malformed())?;
        if !chunk.is_object() {
            return Err(malformed());
        }
        if let Some(err) = chunk.get("error") {
            out.push(HubEvent::Error(upstream_stream_error(err)));
            return Ok(());
        }
        if let Some(u) = chunk.get("usage").and_then(Usage::from_openai) {
            self.usage = Some(u);
        }
        out.push(HubEvent::Chunk {
            chunk,
            raw: Some(ev.raw.clone()),
        });
        Ok(())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

fn malformed() -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamBadResponse,
        "The upstream sent a malformed stream event; the stream was ended.",
    )
}

/// An `error` object in a stream event, as the client's error (the provider's message kept; it
/// describes the provider's failure, never the gateway's secrets).
fn upstream_stream_error(err: &Value) -> GatewayError {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream provider failed mid-stream.");
    let kind = match err.get("type").and_then(Value::as_str) {
        Some("rate_limit_error") | Some("rate_limit_exceeded") => ErrorKind::UpstreamRateLimited,
        _ => ErrorKind::UpstreamError,
    };
    GatewayError::new(
        kind,
        format!("The upstream provider failed mid-stream: {message}"),
    )
}

/// Writes hub chunks for an OpenAI client: `data: <chunk>` events and `data: [DONE]`.
#[derive(Debug)]
pub struct OpenAiEncoder {
    /// The client asked for usage (`stream_options.include_usage`); otherwise the usage-only chunk
    /// the gateway asked for is dropped.
    include_usage: bool,
}

impl OpenAiEncoder {
    pub fn new(include_usage: bool) -> Self {
        OpenAiEncoder { include_usage }
    }
}

impl ClientEncoder for OpenAiEncoder {
    fn chunk(&mut self, chunk: &Value, raw: Option<&[u8]>, out: &mut Vec<u8>) {
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| c.is_empty());
        if usage_only && !self.include_usage {
            return;
        }
        match raw {
            Some(bytes) => out.extend_from_slice(bytes),
            None => data_event(chunk, out),
        }
    }

    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": keep-alive\n\n");
    }

    fn done(&mut self, _usage: Option<Usage>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&err.body());
        out.extend_from_slice(b"\n\n");
    }
}

/// `data: <json>` and a blank line.
pub fn data_event(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    crate::json_write::write_value(out, value);
    out.extend_from_slice(b"\n\n");
}

/// An OpenAI-shaped error body (`{"error":{...}}`) from an upstream, as (type, message).
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?.as_object()?;
    let message = err.get("message")?.as_str()?.to_string();
    let kind = err
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("invalid_request_error")
        .to_string();
    Some((kind, message))
}

/// The usage of an OpenAI `chat.completion` whose body goes to the client unchanged: read without
/// building the whole document (every other field is skipped, not allocated).
pub fn reply_usage(body: &[u8]) -> Result<Option<Usage>, GatewayError> {
    object_view!('a, Typed { usage: OpenAiUsage<'a> = "usage" });
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(default)]
        usage: Option<Value>,
    }
    if let Ok(reply) = serde_json::from_slice::<Typed>(body) {
        return Ok(reply.usage.and_then(OpenAiUsage::usage));
    }
    let not_object = || {
        GatewayError::bad_upstream(
            "The upstream provider sent a response that is not a JSON object.",
        )
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(not_object());
    }
    let reply: Reply = serde_json::from_slice(body).map_err(|_| not_object())?;
    Ok(reply.usage.as_ref().and_then(Usage::from_openai))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    fn decode(stream: &str) -> (Vec<HubEvent>, OpenAiDecoder) {
        let mut parser = SseParser::new(1 << 20);
        let mut events = Vec::new();
        parser.feed(stream.as_bytes(), &mut events).expect("parse");
        let mut dec = OpenAiDecoder::new();
        let mut out = Vec::new();
        for ev in &events {
            dec.on_event(ev, &mut out).expect("decode");
        }
        (out, dec)
    }

    #[test]
    fn chunks_keep_their_bytes_and_usage_is_read() {
        let raw = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"obfuscation\":\"x\"}]}\n\n";
        let usage = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n";
        let (events, dec) = decode(&format!("{raw}{usage}: ping\n\ndata: [DONE]\n\n"));
        assert_eq!(events.len(), 4);
        match &events[0] {
            HubEvent::Chunk {
                raw: Some(bytes), ..
            } => assert_eq!(bytes, raw.as_bytes()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(events[2], HubEvent::KeepAlive);
        assert_eq!(events[3], HubEvent::Done);
        let u = dec.usage().expect("usage");
        assert_eq!((u.input_tokens, u.output_tokens), (9, 2));
    }

    #[test]
    fn error_events_and_malformed_json() {
        let (events, _) =
            decode("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n");
        match &events[0] {
            HubEvent::Error(e) => {
                assert_eq!(e.kind, ErrorKind::UpstreamError);
                assert!(e.message.contains("overloaded"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut dec = OpenAiDecoder::new();
        let ev = SseEvent {
            event: None,
            data: "{not json".into(),
            raw: b"data: {not json\n\n".to_vec(),
        };
        let err = dec.on_event(&ev, &mut Vec::new()).expect_err("malformed");
        assert_eq!(err.kind, ErrorKind::UpstreamBadResponse);
    }

    #[test]
    fn encoder_drops_the_usage_chunk_only_when_not_asked_for() {
        let usage_chunk = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 1}});
        let mut out = Vec::new();
        OpenAiEncoder::new(false).chunk(&usage_chunk, None, &mut out);
        assert!(out.is_empty());
        OpenAiEncoder::new(true).chunk(&usage_chunk, None, &mut out);
        assert!(out.starts_with(b"data: {"));
        let mut end = Vec::new();
        OpenAiEncoder::new(true).done(None, &mut end);
        assert_eq!(end, b"data: [DONE]\n\n");
    }

    #[test]
    fn parses_openai_error_bodies() {
        let body = br#"{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":null}}"#;
        assert_eq!(
            parse_error(body),
            Some(("invalid_request_error".into(), "Invalid 'messages'".into()))
        );
        assert_eq!(parse_error(b"<html>"), None);
    }

    #[test]
    fn reply_usage_reads_what_a_value_reads_whatever_the_counts_look_like() {
        use serde_json::json;
        let usages = [
            json!({"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}}),
            json!({"prompt_tokens": 1117, "completion_tokens": 46,
                "prompt_tokens_details": {"cached_tokens": 1024}}),
            json!({"prompt_tokens": 5, "completion_tokens": 2}),
            json!({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": null}),
            json!({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": 7}),
            json!({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": "3"}}),
            json!({"prompt_tokens": 5.5, "completion_tokens": 2}),
            json!({"prompt_tokens": -1, "completion_tokens": 2}),
            json!({"prompt_tokens": null, "completion_tokens": 2}),
            json!({"completion_tokens": 2}),
            json!("usage"),
            json!([5, 2]),
            json!({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": [3]}),
            json!(null),
        ];
        for u in usages {
            let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "usage": u});
            let read = reply_usage(body.to_string().as_bytes()).expect("an object");
            assert_eq!(read, Usage::from_openai(&u), "{u}");
        }
        let read = reply_usage(br#"{"usage": {"prompt_tokens": 3, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}}"#);
        assert_eq!(
            read.expect("an object"),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 4,
                cached_input_tokens: 2,
                cache_write_tokens: 0
            })
        );
        assert_eq!(reply_usage(b"{}").expect("an object"), None);
        // What a `Value` refuses inside `usage` is refused here too, as before the view.
        assert!(reply_usage(
            br#"{"usage": {"prompt_tokens": 1, "completion_tokens": 1, "x": 1e400}}"#
        )
        .is_err());
        // A duplicate key: the last one counts, as in a `Value`.
        let twice =
            br#"{"usage": {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens": 9}}"#;
        assert_eq!(
            reply_usage(twice)
                .expect("an object")
                .map(|u| u.input_tokens),
            Some(9)
        );
        assert!(reply_usage(b"[]").is_err() && reply_usage(b"nope").is_err());
    }
}
