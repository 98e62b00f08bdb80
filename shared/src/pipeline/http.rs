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

    pub fn full_body(&self) -> Option<&[u8]> {
        match &self.body {
            ReplyBody::Full(b) => Some(b),
            ReplyBody::Stream(_) => None,
        }
    }
}
