//! Mistral's chat-completions API as an upstream provider (reference:
//! <https://docs.mistral.ai/api/#tag/chat>). Close to OpenAI's wire format, with differences each
//! module handles:
//!
//! - [`request_from_hub`]: Mistral refuses unknown fields with 422, so the request is written from
//!   an allowlist; OpenAI names are translated (`max_completion_tokens` -> `max_tokens`,
//!   `seed` -> `random_seed`, `tool_choice: "required"` -> `"any"`), and tool-call ids are
//!   rewritten to the 9 letters-or-digits Mistral insists on.
//! - [`response_to_hub`] and [`MistralDecoder`]: content may arrive as an array of chunks (`text`,
//!   `thinking` for reasoning models); `model_length` is OpenAI's `length`; stream tool calls come
//!   whole and without `index`, so each gets its own.
//! - [`parse_error`]: Mistral's error bodies come in several shapes (its own `object: "error"`,
//!   pydantic's 422 `detail` list, a bare `message`).

mod messages;
mod request;
mod response;
mod stream;
mod tool_ids;

pub use request::request_from_hub;
pub use response::{parse_error, response_to_hub};
pub use stream::MistralDecoder;
