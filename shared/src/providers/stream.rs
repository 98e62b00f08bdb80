//! Streaming translation seams. An upstream stream is decoded event by event into hub events
//! (OpenAI `chat.completion.chunk`s); a client stream is encoded from hub events into the
//! caller's dialect. Both sides keep only bounded state (per tool call and per choice, never the
//! text), so memory does not grow with the stream.

use serde_json::Value;

use crate::audit::Usage;
use crate::error::GatewayError;
use crate::sse::SseEvent;

/// What a decoded upstream event means for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// A `chat.completion.chunk`. `raw` holds the exact upstream event bytes when the chunk is
    /// the upstream's own OpenAI-shaped event, so an OpenAI client can be sent it untouched.
    Chunk { chunk: Value, raw: Option<Vec<u8>> },
    /// A comment or keep-alive (`: ping`, Anthropic `ping`): passed on where the dialect has one.
    KeepAlive,
    /// The upstream finished the stream cleanly (`[DONE]`, Anthropic `message_stop`).
    Done,
    /// The upstream sent an error event: the stream ends with a terminal error.
    Error(GatewayError),
}

/// Reads one provider's SSE events into hub events.
pub trait UpstreamDecoder {
    /// Decodes one complete upstream event. An `Err` is a malformed event: the relay ends the
    /// stream with a terminal error.
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<HubEvent>) -> Result<(), GatewayError>;
    /// The usage the upstream has reported so far (with cached and cache-write tokens).
    fn usage(&self) -> Option<Usage>;
}

/// Writes hub events as the client's dialect.
pub trait ClientEncoder {
    /// One chunk. `raw` is the upstream's own bytes for an unchanged OpenAI-shaped chunk.
    fn chunk(&mut self, chunk: &Value, raw: Option<&[u8]>, out: &mut Vec<u8>);
    /// A keep-alive, if the dialect has one.
    fn keep_alive(&mut self, out: &mut Vec<u8>);
    /// The clean end of the stream, with the usage the upstream reported.
    fn done(&mut self, usage: Option<Usage>, out: &mut Vec<u8>);
    /// A terminal error: the client's SDK must raise, never see a clean end.
    fn error(&mut self, err: &GatewayError, out: &mut Vec<u8>);
}
