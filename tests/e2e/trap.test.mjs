// A wasm trap (a Rust panic), in the request plane and in a Durable Object. wasm-bindgen polls
// Rust futures from microtasks, so a trap inside a future is not thrown to its caller: without
// boot.js's watch on those microtasks the trapping request never answers, and the instance goes
// on with what the panic left borrowed. Now the isolate starts a new instance, the requests and
// object calls in flight on the old one fail at once, and the next ones are served. Worker only:
// Spin gives each request its own component instance, so a trap ends that request alone.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, hostOptions } from './harness.mjs';

const TRAP_PATH = '/v1/_e2e/trap';
const ONLY = hostOptions({ workerOnly: 'a trap restarts the isolate\'s one wasm instance' });
let stack;
// The first operation on tenant `crashy`'s ledger (a hard budget) panics once, holding the ledger.
const TRAP_LEDGER = 'crashy';
before(async () => {
  if (!ONLY.skip) stack = await startStack({ vars: { ASC_FAULT_TRAP_PATH: TRAP_PATH, ASC_FAULT_TRAP_LEDGER: TRAP_LEDGER } });
});
after(async () => { await stack?.stop(); });

const auth = (tenant = 'demo') => ({ authorization: `Bearer ${stack.keys[tenant].key}`, 'content-type': 'application/json' });
const chat = (content, signal, tenant = 'demo') => fetch(`${stack.url}/v1/chat/completions`, {
  method: 'POST',
  headers: auth(tenant),
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

it('a trap in a ledger object restarts the objects\' instance: the ledger is read again from storage and serves', ONLY, async () => {
  // Its first operation (this admission) traps with the ledger borrowed: without the restart every
  // later operation on it would trip over that borrow. The request fails closed, promptly.
  const trapped = await settlesWithin(chat('the ledger traps', undefined, TRAP_LEDGER), 40_000, 'the request whose ledger trapped');
  assert.equal(trapped.status, 503);
  const error = (await trapped.json()).error;
  assert.equal(error.code, 'store_unavailable');
  // The same ledger, read again from its storage by the new instance, admits and settles.
  const served = [];
  for (let i = 0; i < 3; i++) {
    const r = await settlesWithin(chat(`after the ledger's trap ${i}`, undefined, TRAP_LEDGER), 10_000, `request ${i} after the ledger's trap`);
    assert.equal(r.status, 200);
    served.push(Number(r.headers.get('x-asc-reserved-usd-micros')));
    await r.arrayBuffer();
  }
  assert.ok(served.every((m) => m > 0), 'each was admitted with a reservation by the ledger');
  const usage = await settlesWithin(fetch(`${stack.url}/v1/usage`, { headers: auth(TRAP_LEDGER) }), 10_000, 'usage after the ledger\'s trap');
  assert.equal(usage.status, 200);
  const huge = (await usage.json()).budgets.find((b) => b.budget_id === 'huge');
  // Charged for what was served, and only that: the trapped admission held nothing.
  assert.ok(huge.spent_micros + huge.reserved_micros > 0);
  assert.ok(huge.spent_micros + huge.reserved_micros <= served.reduce((a, b) => a + b, 0));
  // Another tenant's ledger, in the same instance, serves too.
  const other = await settlesWithin(chat('another tenant'), 10_000, 'another tenant after the ledger\'s trap');
  assert.equal(other.status, 200);
  await other.arrayBuffer();
});
