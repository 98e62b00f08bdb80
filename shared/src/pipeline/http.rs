//! The request the adapter hands the core, and the reply the core hands back.

use super::relay::Relay;
pub use crate::host::find_header;
use crate::host::ByteSource;

/// An inbound client request. The body is read by the pipeline only after authentication, and
/// only up to the tenant's size limit.
pub struct Inbound<B> {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> Inbound<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Content-Length`, when the client sent a well-formed one.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
}

/// What the adapter sends to the client.
pub struct Reply<S: ByteSource> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody<S>,
    /// Internal detail of a failure, for the adapter's log (with the request id); never sent.
    pub diagnostic: Option<String>,
}

pub enum ReplyBody<S: ByteSource> {
    Full(Vec<u8>),
    /// Pump with `Relay::next` until it returns `None`, each chunk to the client at once; then
    /// (or when the client goes away) `Relay::finish`, after the response.
    Stream(Box<Relay<S>>),
}

impl<S: ByteSource> Reply<S> {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The line an adapter logs for a reply that failed on the gateway's side (a 5xx): request
    /// id, status, error code and the internal diagnostic. `None` for any other reply.
    pub fn failure_log_line(&self) -> Option<String> {
        if self.status < 500 {
            return None;
        }
        Some(format!(
            "asc: {} {} {}{}",
            self.header(crate::headers::REQUEST_ID).unwrap_or("-"),
            self.status,
            self.header(crate::headers::ERROR_CODE).unwrap_or("-"),
            self.diagnostic
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
        ))
    }

    pub fn full_body(&self) -> Option<&[u8]> {
        match &self.body {
            ReplyBody::Full(b) => Some(b),
            ReplyBody::Stream(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Chunks;

    fn reply(status: u16, diagnostic: Option<&str>) -> Reply<Chunks> {
        Reply {
            status,
            headers: vec![
                ("x-request-id".into(), "req_1".into()),
                ("x-asc-error-code".into(), "store_unavailable".into()),
            ],
            body: ReplyBody::Full(Vec::new()),
            diagnostic: diagnostic.map(str::to_string),
        }
    }

    #[test]
    fn only_gateway_failures_are_logged_with_their_request_id_and_diagnostic() {
        assert_eq!(
            reply(503, Some("ledger call failed: timeout")).failure_log_line(),
            Some("asc: req_1 503 store_unavailable: ledger call failed: timeout".to_string())
        );
        assert_eq!(
            reply(500, None).failure_log_line(),
            Some("asc: req_1 500 store_unavailable".to_string())
        );
        assert_eq!(reply(429, Some("refused")).failure_log_line(), None);
    }
}
