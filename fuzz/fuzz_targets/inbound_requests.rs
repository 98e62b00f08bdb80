//! Client request bodies through every inbound parser (OpenAI chat, Anthropic messages, OpenAI
//! embeddings) and, where one parses, through every provider's request writer. Errors are fine;
//! panics are not, and every error must be a client error (4xx).
#![no_main]

use asc_core::providers::{anthropic, embeddings, mistral, openai};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let check = |e: asc_core::GatewayError| assert!((400..500).contains(&e.status()), "{e}");
    match openai::parse_chat_request(data) {
        Ok(r) => {
            let _ = anthropic::outbound::request_from_hub(&r.hub, "m", 4096).map_err(check);
            let _ = mistral::request_from_hub(&r.hub, "m").map_err(check);
        }
        Err(e) => check(e),
    }
    match anthropic::inbound::request_to_hub(data) {
        Ok(r) => {
            let _ = anthropic::outbound::request_from_hub(&r.hub, "m", 4096).map_err(check);
            let _ = mistral::request_from_hub(&r.hub, "m").map_err(check);
        }
        Err(e) => check(e),
    }
    match embeddings::parse_request(data) {
        Ok(r) => {
            let _ = embeddings::openai_request(&r, "m").map_err(check);
            let _ = embeddings::mistral_request(&r, "m").map_err(check);
        }
        Err(e) => check(e),
    }
});
