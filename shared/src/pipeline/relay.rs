//! Streams an upstream's SSE response to the client event by event, as it arrives. A provider
//! decoder turns each upstream event into hub chunks; the guard redacts them; a client encoder
//! writes them in the caller's dialect (an unchanged OpenAI chunk goes to an OpenAI client as the
//! upstream's exact bytes). The relay watches for usage, upstream `error` events, malformed
//! events and a missing end, and ends a broken stream with a terminal error event (never a clean
//! end). Once the stream is over (or the client has gone), [`Relay::finish`] ends the request's
//! exchange: it settles the charge and records the outcome, after the response.

use sha2::{Digest, Sha256};

use crate::audit::{Outcome, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::guard::ResponseGuard;
use crate::host::HostError;
use crate::host::{ByteSource, Host};
use crate::pipeline::cached::StreamStore;
use crate::pipeline::{Counted, Exchange};
use crate::providers::stream::{ClientEncoder, HubEvent, UpstreamDecoder};
use crate::sse::SseParser;

/// Largest single event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// What the relay saw, for the audit record and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub events: u64,
    pub done: bool,
    pub usage: Option<Usage>,
    /// Why the stream ended badly, if it did.
    pub failure: Option<ErrorKind>,
    /// The client went away before the end.
    pub abandoned: bool,
    /// Content seen, for a charge when the upstream never reported usage.
    pub counted: Counted,
    /// What the request is charged (the cost, capped at the reservation).
    pub charged_micros: Option<u64>,
}

/// A stream being relayed. The adapter pumps it with `next` until it returns `None`.
pub struct Relay<S: ByteSource> {
    source: S,
    parser: SseParser,
    summary: StreamStats,
    /// The request's record and charge, ended by `finish`.
    exchange: Exchange,
    finished: bool,
    decoder: Box<dyn UpstreamDecoder>,
    encoder: Box<dyn ClientEncoder>,
    /// SHA-256 of the bytes sent to the client, for the audit record.
    sent: Sha256,
    /// The guardrails on the response, or (when responses are not scanned) the request's
    /// decisions, for the audit record.
    guard: ResponseGuard,
    /// The response cache's capture, when a clean end may be stored.
    store: Option<StreamStore>,
}

impl<S: ByteSource> Relay<S> {
    pub(crate) fn new(
        source: S,
        exchange: Exchange,
        decoder: Box<dyn UpstreamDecoder>,
        encoder: Box<dyn ClientEncoder>,
        guard: ResponseGuard,
    ) -> Self {
        Relay {
            source,
            parser: SseParser::new(MAX_EVENT_BYTES),
            summary: StreamStats::default(),
            exchange,
            finished: false,
            decoder,
            encoder,
            sent: Sha256::new(),
            guard,
            store: None,
        }
    }

    /// Captures what the client is sent, to store it in the response cache if the stream
    /// ends cleanly.
    pub(crate) fn storing(mut self, store: Option<StreamStore>) -> Self {
        self.store = store;
        self
    }

    /// The next bytes for the client, or `None` when the stream is over. Reads only the
    /// upstream: the request is ended by [`Relay::finish`].
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        while !self.finished {
            let chunk = self.source.next_chunk().await;
            let out = match chunk {
                Ok(Some(bytes)) => self.on_bytes(&bytes),
                Ok(None) => self.on_end(),
                Err(_) => self.fail(ErrorKind::UpstreamUnreachable),
            };
            self.sent.update(&out);
            if !out.is_empty() {
                return Some(out);
            }
        }
        None
    }

    /// [`Relay::next`], noting when the first byte went out (time to first token).
    pub async fn next_timed<H: Host>(&mut self, host: &H) -> Option<Vec<u8>> {
        let out = self.next().await;
        if out.is_some() && self.exchange.record.detail.ttft_ms.is_none() {
            let started = self.exchange.record.record.timestamp_ms;
            self.exchange.record.detail.ttft_ms = Some(host.now().millis().saturating_sub(started));
        }
        out
    }

    pub fn stats(&self) -> &StreamStats {
        &self.summary
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        let parsed = self.parser.feed(bytes, &mut events);
        let mut out = Vec::new();
        let mut hub = Vec::new();
        for ev in events {
            if self.finished {
                break;
            }
            self.summary.events += 1;
            hub.clear();
            if self.decoder.on_event(&ev, &mut hub).is_err() {
                out.extend(self.fail(ErrorKind::UpstreamBadResponse));
                break;
            }
            for event in hub.drain(..) {
                if self.finished {
                    break;
                }
                self.on_hub_event(event, &mut out);
            }
        }
        self.summary.usage = self.decoder.usage();
        if parsed.is_err() && !self.finished {
            // Oversized or non-UTF-8 event: nothing sensible can follow it.
            out.extend(self.fail(ErrorKind::UpstreamBadResponse));
        }
        out
    }

    fn on_hub_event(&mut self, event: HubEvent, out: &mut Vec<u8>) {
        match event {
            HubEvent::Chunk { mut chunk, raw } => {
                let rewritten = match &mut self.guard {
                    ResponseGuard::Scanning(g) => g.on_chunk(&mut chunk),
                    ResponseGuard::Off(_) => false,
                };
                self.count_content(&chunk);
                if let Some(store) = &mut self.store {
                    store.capture.on_chunk(&chunk);
                }
                let raw = if rewritten { None } else { raw };
                self.encoder.chunk(&chunk, raw.as_deref(), out);
            }
            HubEvent::KeepAlive => self.encoder.keep_alive(out),
            HubEvent::Done => {
                self.flush_guard(out);
                self.summary.done = true;
                self.finished = true;
                self.summary.usage = self.decoder.usage();
                self.encoder.done(self.summary.usage, out);
            }
            HubEvent::Error(err) => {
                self.flush_guard(out);
                self.finished = true;
                self.summary.failure = Some(err.kind);
                self.encoder.error(&err, out);
            }
        }
    }

    fn count_content(&mut self, chunk: &serde_json::Value) {
        let Some(choices) = chunk.get("choices").and_then(|c| c.as_array()) else {
            return;
        };
        for choice in choices {
            let delta = choice.get("delta");
            let text = delta
                .and_then(|d| d.get("content"))
                .and_then(|c| c.as_str());
            let args = delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(|t| t.as_array())
                .map(|calls| {
                    calls
                        .iter()
                        .filter_map(|c| c.pointer("/function/arguments").and_then(|a| a.as_str()))
                        .map(str::len)
                        .sum::<usize>()
                })
                .unwrap_or(0);
            let bytes = text.map(str::len).unwrap_or(0) + args;
            if bytes > 0 {
                self.summary.counted.content_events += 1;
                self.summary.counted.content_bytes += bytes as u64;
            }
        }
    }

    fn on_end(&mut self) -> Vec<u8> {
        self.summary.usage = self.decoder.usage();
        if self.summary.done || self.finished {
            self.finished = true;
            return Vec::new();
        }
        self.fail(ErrorKind::UpstreamError)
    }

    /// Text the guard still holds back, as a final chunk (before the end or an error).
    fn flush_guard(&mut self, out: &mut Vec<u8>) {
        if let ResponseGuard::Scanning(g) = &mut self.guard {
            if let Some(chunk) = g.finish() {
                self.encoder.chunk(&chunk, None, out);
            }
        }
    }

    /// Ends the stream with a terminal error event the client's SDK raises on.
    fn fail(&mut self, kind: ErrorKind) -> Vec<u8> {
        let mut out = Vec::new();
        self.flush_guard(&mut out);
        self.finished = true;
        self.summary.failure = Some(kind);
        let message = match kind {
            ErrorKind::UpstreamBadResponse => {
                "The upstream sent a malformed stream event; the stream was ended."
            }
            _ => "The upstream stream ended before it was complete.",
        };
        self.encoder
            .error(&GatewayError::new(kind, message), &mut out);
        out
    }

    /// Ends the request, after the stream: settles what it cost and records its outcome in the
    /// ledger. Call it once the stream is over, or when the client has gone (the stream is then
    /// recorded as partial). If it never runs, the ledger gives up on the request at its expiry.
    pub async fn finish<H: Host>(
        &mut self,
        gw: &crate::pipeline::Gateway,
        host: &H,
    ) -> Result<(), HostError> {
        if !self.finished {
            // The client left mid-stream.
            self.finished = true;
            self.summary.abandoned = true;
            self.summary.usage = self.decoder.usage();
        }
        if self.summary.failure.is_some() || self.summary.abandoned {
            // A stream cut short may carry only the usage its start reported (Anthropic's
            // `message_start` says 1 output token): charge at least what was relayed, or a
            // client that leaves before the end would get its output nearly free.
            if let Some(usage) = self.summary.usage.as_mut() {
                usage.output_tokens = usage
                    .output_tokens
                    .max(self.summary.counted.output_tokens_estimate());
            }
        }
        let (_, _, charged) = self.exchange.cost(self.summary.usage, self.summary.counted);
        self.summary.charged_micros = Some(charged);
        let record = &mut self.exchange.record;
        record.detail.response_sha256 = Some(crate::hexstr::encode(&self.sent.clone().finalize()));
        let decisions = self.guard.findings();
        crate::pipeline::record_guardrails(record, decisions);
        record.record.usage = self.summary.usage;
        let failure = match self.summary.failure {
            Some(kind) => Some(kind.code()),
            None if self.summary.abandoned => Some("stream_abandoned"),
            None => None,
        };
        match failure {
            None => record.record.outcome = Outcome::Ok,
            Some(code) => {
                record.record.outcome = Outcome::Partial;
                record.record.error_code = Some(code.to_string());
            }
        }
        let now = host.now().millis();
        let clean = failure.is_none();
        let to_store = match self.store.take() {
            Some(store) if clean => store.finish(&mut self.exchange, now, self.summary.usage),
            _ => None,
        };
        self.exchange.timing.mark("stream", now);
        let ending = self
            .exchange
            .ending_op(now, self.summary.usage, self.summary.counted);
        let observed = self.exchange.execution_record(now);
        let mut delivered = Ok(());
        let committed = match ending {
            Some((ledger, op, _)) => match host.ledger_after_response(&ledger, op).await {
                Ok(alerts) => {
                    // A failed delivery is the ledger's to retry (it was told); reported last.
                    let failures = self.exchange.deliver_handed_over(gw, host, alerts).await;
                    if let Some(e) = failures.into_iter().next() {
                        delivered = Err(e);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            None => Ok(()),
        };
        let committed = match observed.and_then(|r| gw.observe(r)) {
            Some(wait_ms) => committed.and(gw.flush_telemetry(host, wait_ms).await),
            None => committed,
        };
        // The record is committed first: a failed cache write only costs a later miss.
        if let Some((key, entry, expires_ms)) = to_store {
            let stored = host.cache_put(&key, &entry, expires_ms).await;
            return committed.and(stored).and(delivered);
        }
        committed.and(delivered)
    }
}
