//! Provider mappers: pure translation between the dialects clients speak and the wire formats
//! upstreams speak. Bytes and JSON in, bytes and JSON out; no I/O.
//!
//! The hub is OpenAI's chat-completions shape: every inbound dialect is read into a hub request
//! (a `chat.completions` request body), the guard and the budget work on the hub, and each
//! provider module writes its own request from it. Responses travel the other way: provider
//! response -> hub `chat.completion` (or stream of `chat.completion.chunk`s) -> the caller's
//! dialect. Same-dialect pairs cost one parse: OpenAI to OpenAI relays stream events untouched.
//!
//! A field that cannot be carried across is refused with a 400 (`unsupported_parameter`), never
//! dropped silently; the one exception is Anthropic's `cache_control`, a cost hint other providers
//! have no use for (see [`anthropic`]).

pub mod anthropic;
pub mod embeddings;
pub mod mistral;
pub mod openai;
pub mod stream;

use serde_json::{Map, Value};

/// The dialect a client speaks to ASC (decided by the path it calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST /v1/chat/completions`, `POST /v1/embeddings`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// Which wire format an upstream target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// OpenAI's API, or any endpoint compatible with it.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Mistral's API (close to OpenAI's, stricter about fields and tool-call ids).
    Mistral,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Mistral];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Mistral => "mistral",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the provider serves embeddings (Anthropic has no embeddings API).
    pub fn has_embeddings(self) -> bool {
        !matches!(self, Provider::Anthropic)
    }
}

/// A hub request: an OpenAI `chat.completions` request body with `model` set to the name the
/// client asked for.
pub type HubRequest = Map<String, Value>;

/// `object[key] = value` for an object the mapper built itself (`json!({ ... })`), without
/// `IndexMut`'s panic on a value that is not an object: such a value is left as it is.
pub(crate) fn set_field(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}
