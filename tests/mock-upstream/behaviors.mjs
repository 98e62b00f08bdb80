// Which misbehaviour a request asks for. Sources, all merged:
//   - the model name containing a token:      "mock-500", "gpt-4o-mini@slow-stream-50"
//   - the `x-mock-behavior` header:            "x-mock-behavior: 429" (comma-separated for several)
//   - "[mock:<token>]" in the last user message
// Unknown tokens are ignored.
import { setTimeout as delay } from 'node:timers/promises';

export const BEHAVIOR_HEADER = 'x-mock-behavior';
export const DEFAULT_SLOW_FIRST_BYTE_MS = 3000;
export const DEFAULT_SLOW_STREAM_MS = 300;
const MAX_LONG_WORDS = 1_000_000;

// Longer tokens come first and the scan is left to right, so "slow-stream-500"
// is one token rather than also matching the "500" status. The look-arounds stop
// tokens matching inside other words or dates ("gpt-4-0500", "mock-5000").
const TOKEN =
  /(?<![a-z0-9])(?:(slow-first-byte)(?:-(\d+))?|(slow-stream)(?:-(\d+))?|(long)-(\d+)|(401|403|404|413|429|500|503|529|cut-stream|malformed-chunk|error-event|parallel-tools|cache))(?![a-z0-9])/gi;

export function emptyBehavior() {
  return {
    tokens: [],
    status: null, // 401 | 403 | 404 | 413 | 429 | 500 | 503 | 529
    slowFirstByteMs: 0,
    slowStreamMs: 0,
    cutStream: false,
    malformedChunk: false,
    errorEvent: false,
    longWords: null,
    parallelTools: false, // answer a tool request with two tool calls
    cache: false, // Anthropic: report prompt-cache reads and writes in usage
  };
}

/** Merge the tokens found in each source string (non-strings are skipped). */
export function parseBehavior(sources) {
  const b = emptyBehavior();
  for (const src of sources) {
    if (typeof src !== 'string') continue;
    for (const m of src.matchAll(TOKEN)) {
      b.tokens.push(m[0].toLowerCase());
      if (m[1]) b.slowFirstByteMs = m[2] ? Number(m[2]) : DEFAULT_SLOW_FIRST_BYTE_MS;
      else if (m[3]) b.slowStreamMs = m[4] ? Number(m[4]) : DEFAULT_SLOW_STREAM_MS;
      else if (m[5]) b.longWords = Math.min(Number(m[6]), MAX_LONG_WORDS);
      else {
        const t = m[7].toLowerCase();
        if (/^\d+$/.test(t)) b.status ??= Number(t);
        else if (t === 'cut-stream') b.cutStream = true;
        else if (t === 'malformed-chunk') b.malformedChunk = true;
        else if (t === 'error-event') b.errorEvent = true;
        else if (t === 'parallel-tools') b.parallelTools = true;
        else if (t === 'cache') b.cache = true;
      }
    }
  }
  return b;
}

/** Contents of every "[mock:...]" tag in a text. */
export function mockTags(text) {
  return [...String(text ?? '').matchAll(/\[mock:([^\]]*)\]/gi)].map((m) => m[1]);
}

export function behaviorFor({ model, header, lastUserText }) {
  return parseBehavior([header, model, ...mockTags(lastUserText)]);
}

/** Abortable sleep, so a client disconnect or server close ends pending delays. */
export function sleep(ms, signal) {
  return ms > 0 ? delay(ms, undefined, { signal }) : Promise.resolve();
}
