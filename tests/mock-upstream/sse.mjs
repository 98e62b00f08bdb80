// Writing responses: JSON bodies, truncated JSON bodies, and server-sent event streams
// that honour the misbehaviour timings (slow-stream) and client disconnects.
import { sleep } from './behaviors.mjs';

export function sendJson(res, status, obj, headers = {}) {
  const buf = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length, ...headers });
  res.end(buf);
}

/** cut-stream for JSON replies: promise the whole body, deliver half of it, then drop the connection. */
export function sendCutJson(res, status, obj, headers = {}) {
  const buf = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length, ...headers });
  res.write(buf.subarray(0, buf.length >> 1), () => res.destroy());
}

/** `data: {...}` block (OpenAI, Mistral). */
export const dataEvent = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
/** `event: name` + `data: {...}` block (Anthropic). */
export const namedEvent = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;

/**
 * Start an SSE response. Returns {emit(text), cut(), end()}.
 * Each emit resolves once handed to the socket: events go out one by one (nothing
 * buffered), long streams get backpressure, and cut() knows the earlier events
 * really left before it drops the connection. slow-stream waits between events.
 */
export function openSse(res, { headers = {}, behavior, signal }) {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    ...headers,
  });
  res.flushHeaders();
  const write = (text) => new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(text, (err) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
  let first = true;
  return {
    async emit(text) {
      if (!first) await sleep(behavior.slowStreamMs, signal);
      first = false;
      signal.throwIfAborted();
      await write(text);
    },
    cut: () => res.destroy(),
    end: () => res.end(),
  };
}
