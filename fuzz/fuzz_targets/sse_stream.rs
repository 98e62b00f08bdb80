//! Upstream stream bytes, split at fuzzer-chosen points, through the SSE parser and each
//! provider's decoder into each client encoder. Nothing may panic; the parser's buffer stays
//! within its limit; and the output for the split input equals the output for the whole input.
#![no_main]

use asc_core::providers::anthropic::inbound::AnthropicEncoder;
use asc_core::providers::anthropic::outbound::AnthropicDecoder;
use asc_core::providers::mistral::MistralDecoder;
use asc_core::providers::openai::{OpenAiDecoder, OpenAiEncoder};
use asc_core::providers::stream::{ClientEncoder, HubEvent, UpstreamDecoder};
use asc_core::sse::SseParser;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fn translate(selector: u8, pieces: &[&[u8]]) -> Vec<u8> {
    let mut decoder: Box<dyn UpstreamDecoder> = match selector % 3 {
        0 => Box::new(OpenAiDecoder::new()),
        1 => Box::new(AnthropicDecoder::new(1)),
        _ => Box::new(MistralDecoder::new()),
    };
    let mut encoder: Box<dyn ClientEncoder> = match (selector / 3) % 3 {
        0 => Box::new(OpenAiEncoder::new(false)),
        1 => Box::new(OpenAiEncoder::new(true)),
        _ => Box::new(AnthropicEncoder::new("m", "msg_1".into())),
    };
    let mut parser = SseParser::new(LIMIT);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut hub = Vec::new();
    for piece in pieces {
        events.clear();
        let parsed = parser.feed(piece, &mut events);
        assert!(parser.pending() <= LIMIT + piece.len());
        for ev in &events {
            hub.clear();
            if decoder.on_event(ev, &mut hub).is_err() {
                out.extend_from_slice(b"<malformed>");
                return out;
            }
            for h in hub.drain(..) {
                match h {
                    HubEvent::Chunk { chunk, raw } => encoder.chunk(&chunk, raw.as_deref(), &mut out),
                    HubEvent::KeepAlive => encoder.keep_alive(&mut out),
                    HubEvent::Done => {
                        encoder.done(decoder.usage(), &mut out);
                        return out;
                    }
                    HubEvent::Error(e) => {
                        encoder.error(&e, &mut out);
                        return out;
                    }
                }
            }
        }
        if parsed.is_err() {
            out.extend_from_slice(b"<bad-event>");
            return out;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // [selector][n cuts][n cut bytes][stream]
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) * stream.len() / 256)
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for p in points {
        pieces.push(&stream[last..p]);
        last = p;
    }
    pieces.push(&stream[last..]);
    let whole = translate(selector, &[stream]);
    let split = translate(selector, &pieces);
    assert_eq!(whole, split, "a split changed the translation");
});
