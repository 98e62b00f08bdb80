//! Mapping tables checked against Anthropic's "Handling stop reasons", "Errors" and "Prompt
//! caching" pages and OpenAI's chat-completions reference.

use serde_json::json;

use super::*;

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        assert_eq!(finish_reason(stop), finish, "{stop}");
    }
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    assert_eq!(stop_reason("stop", false), "end_turn");
    assert_eq!(stop_reason("stop", true), "stop_sequence");
    assert_eq!(stop_reason("length", false), "max_tokens");
    assert_eq!(stop_reason("tool_calls", false), "tool_use");
    // A tool call must never turn into end_turn, even when a stop sequence is known.
    assert_eq!(stop_reason("tool_calls", true), "tool_use");
    assert_eq!(stop_reason("content_filter", false), "refusal");
}

#[test]
fn anthropic_usage_excludes_cache_tokens_openai_includes_them() {
    // Prompt caching: total input = input_tokens + cache_creation + cache_read.
    let u = usage_from_anthropic(&json!({
        "input_tokens": 21, "output_tokens": 393,
        "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 0
    }));
    assert_eq!(u.input_tokens, 21 + 188086);
    assert_eq!(u.cache_write_tokens, 188086);
    assert_eq!(u.cached_input_tokens, 0);
    let u = usage_from_anthropic(&json!({
        "input_tokens": 10, "output_tokens": 5,
        "cache_creation_input_tokens": 3, "cache_read_input_tokens": 100
    }));
    let openai = usage_to_openai(&u);
    assert_eq!(openai["prompt_tokens"], 113);
    assert_eq!(openai["completion_tokens"], 5);
    assert_eq!(openai["total_tokens"], 118);
    assert_eq!(openai["prompt_tokens_details"]["cached_tokens"], 100);
    let back = usage_to_anthropic(&u);
    assert_eq!(
        back,
        json!({"input_tokens": 10, "output_tokens": 5,
               "cache_read_input_tokens": 100, "cache_creation_input_tokens": 3})
    );
}

#[test]
fn error_types_follow_the_status() {
    for (status, ty) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
        (405, "invalid_request_error"),
    ] {
        assert_eq!(anthropic_error_type(status), ty, "{status}");
    }
}

#[test]
fn upstream_errors_map_to_kinds() {
    let body = |ty: &str| {
        format!(
            r#"{{"type":"error","error":{{"type":"{ty}","message":"m"}},"request_id":"req_1"}}"#
        )
    };
    let cases = [
        (400, "invalid_request_error", ErrorKind::InvalidRequest),
        (401, "authentication_error", ErrorKind::UpstreamAuth),
        (403, "permission_error", ErrorKind::UpstreamAuth),
        (404, "not_found_error", ErrorKind::ModelNotFound),
        (413, "request_too_large", ErrorKind::BodyTooLarge),
        (429, "rate_limit_error", ErrorKind::UpstreamRateLimited),
        (500, "api_error", ErrorKind::UpstreamError),
        (529, "overloaded_error", ErrorKind::UpstreamError),
    ];
    for (status, ty, kind) in cases {
        let err = upstream_error(status, body(ty).as_bytes());
        assert_eq!(err.kind, kind, "{ty}");
        assert!(err.message.contains(ty) && err.message.ends_with(": m"));
    }
    // A body that is not Anthropic's error shape: decided by the status alone.
    assert_eq!(
        upstream_error(429, b"<html>").kind,
        ErrorKind::UpstreamRateLimited
    );
    assert_eq!(upstream_error(503, b"").kind, ErrorKind::UpstreamError);
    assert!(upstream_error(529, b"").kind.retryable());
}
