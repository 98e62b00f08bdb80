// Helpers shared by the mock's own tests.
import assert from 'node:assert/strict';

export function poster(srv, defaults = {}) {
  // A header given as undefined is left out (to test its absence).
  const clean = (h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined));
  return (path, body, headers = {}) => fetch(`${srv.url}${path}`, {
    method: 'POST',
    headers: clean({ 'content-type': 'application/json', ...defaults, ...headers }),
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/**
 * Read an SSE body into blocks {event, data} (event is null for data-only blocks);
 * a broken connection is returned as `error`, not thrown.
 */
export async function readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const blocks = [];
  let buf = '';
  let error = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) !== -1) {
        const lines = buf.slice(0, i).split('\n');
        buf = buf.slice(i + 2);
        const event = lines[0].startsWith('event: ') ? lines.shift().slice(7) : null;
        assert.equal(lines.length, 1, `one data line per block, got ${JSON.stringify(lines)}`);
        assert.ok(lines[0].startsWith('data: '), `unexpected SSE line ${JSON.stringify(lines[0])}`);
        blocks.push({ event, data: lines[0].slice(6) });
      }
    }
  } catch (err) {
    error = err;
  }
  return { blocks, error, rest: buf };
}

export const weatherSchema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] };
