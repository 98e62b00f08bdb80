// A wasm trap (a Rust panic) in the request plane. wasm-bindgen polls Rust futures from
// microtasks, so a trap inside a request's future is not thrown to the fetch handler: without
// boot.js's watch on those microtasks the trapping request never answers, nor do the requests in
// flight on the same instance. Now the isolate starts a new instance, the requests in flight on
// the old one fail at once with the gateway's 500, and the next requests are served. Worker only:
// Spin gives each request its own component instance, so a trap ends that request alone.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, hostOptions } from './harness.mjs';

const TRAP_PATH = '/v1/_e2e/trap';
const ONLY = hostOptions({ workerOnly: 'a trap restarts the isolate\'s one wasm instance' });
let stack;
before(async () => { if (!ONLY.skip) stack = await startStack({ vars: { ASC_FAULT_TRAP_PATH: TRAP_PATH } }); });
after(async () => { await stack?.stop(); });

const auth = () => ({ authorization: `Bearer ${stack.keys.demo.key}`, 'content-type': 'application/json' });
const chat = (content, signal) => fetch(`${stack.url}/v1/chat/completions`, {
  method: 'POST',
  headers: auth(),
  signal,
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
});

/** Fails, rather than waits for ever, when `promise` does not settle within `ms` (a hang). */
function settlesWithin(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`${what}: no answer after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

async function assertInternalError(response) {
  assert.equal(response.status, 500);
  const body = await response.json();
  assert.equal(body.error.code, 'internal_error');
  assert.equal(body.error.type, 'api_error');
  assert.equal(response.headers.get('x-asc-error-code'), 'internal_error');
}

it('answers the trapping request and those in flight with a 500, then serves the next ones', ONLY, async () => {
  // Served before the trap: the instance works.
  const first = await chat('before the trap');
  assert.equal(first.status, 200);
  await first.arrayBuffer();

  // In flight on the instance when it traps: its upstream answers 3 s later.
  const abort = new AbortController();
  const inFlight = chat('[mock:slow-first-byte-3000] caught in the trap', abort.signal);
  await new Promise((r) => setTimeout(r, 300));
  try {
    const trapped = await settlesWithin(fetch(`${stack.url}${TRAP_PATH}`, { method: 'POST', headers: auth(), body: '{}' }), 10_000, 'the trapping request');
    await assertInternalError(trapped);
    // Its future died with the old instance: it fails now instead of hanging.
    await assertInternalError(await settlesWithin(inFlight, 10_000, 'the request in flight'));
  } finally {
    abort.abort();
  }

  // The new instance serves, with every kind of wait a request makes (body, ledger, upstream).
  const after = await Promise.all([1, 2, 3, 4].map((i) => settlesWithin(chat(`after the trap ${i}`), 10_000, `request ${i} after the trap`)));
  for (const r of after) {
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.object, 'chat.completion');
  }
  const usage = await settlesWithin(fetch(`${stack.url}/v1/usage`, { headers: auth() }), 10_000, 'usage after the trap');
  assert.equal(usage.status, 200);
  // A second trap is handled the same way (the watch is set up again for the new instance).
  await assertInternalError(await settlesWithin(fetch(`${stack.url}${TRAP_PATH}`, { method: 'POST', headers: auth(), body: '{}' }), 10_000, 'a second trap'));
  const again = await settlesWithin(chat('after the second trap'), 10_000, 'a request after the second trap');
  assert.equal(again.status, 200);
  await again.arrayBuffer();
});
