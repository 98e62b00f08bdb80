// Budgets end to end: the tenant's ledger under concurrent load (on workerd its Durable Object;
// under Spin one SQLite database shared by two `spin up` replicas, requests spread over both).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, hostOptions } from './harness.mjs';

let stack;
before(async () => { if (!hostOptions().skip) stack = await startStack({ replicas: 2 }); });
after(async () => { await stack?.stop(); });

const auth = () => ({ authorization: `Bearer ${stack.keys.budgeted.key}`, 'content-type': 'application/json' });
const body = (extra = {}) => JSON.stringify({
  model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'Hello budget' }], ...extra,
});

async function usage() {
  const r = await fetch(`${stack.url}/v1/usage`, { headers: auth() });
  assert.equal(r.status, 200);
  const report = await r.json();
  return report.budgets.find((b) => b.budget_id === 'small');
}

// Commits run after the responses (ctx.waitUntil on workerd, a task after the response on Spin,
// where two replicas and each instance's batched ledger calls settle concurrently): the last
// responses' reservations are released within moments, not before the client has its answer.
// A commit that never lands keeps its reservation until expiry (minutes), so a bound of 5 s
// still catches a lost one.
async function settledUsage() {
  const until = Date.now() + 5000;
  for (;;) {
    const small = await usage();
    if (small.reserved_micros === 0 || Date.now() > until) return small;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('hard budgets hold under concurrency', hostOptions(), () => {
  it('2,000 concurrent requests: spend <= budget, and the usage API equals the sum of charges', async () => {
    const total = 2000;
    const concurrency = 32;
    let next = 0;
    const results = [];
    async function worker() {
      while (next < total) {
        next += 1;
        const r = await fetch(`${stack.urls[next % stack.urls.length]}/v1/chat/completions`, { method: 'POST', headers: auth(), body: body() });
        const json = await r.json();
        results.push({ status: r.status, cost: r.headers.get('x-asc-cost-usd-micros'), code: json.error?.code });
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker));
    assert.equal(results.length, total);
    const served = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    assert.equal(served.length + refused.length, total, `only 200 and 429: ${JSON.stringify(results.filter((r) => r.status !== 200 && r.status !== 429).slice(0, 3))}`);
    assert.ok(refused.every((r) => r.code === 'budget_exceeded'));
    assert.ok(served.length > 0 && refused.length > 0, `served ${served.length}, refused ${refused.length}`);
    const charged = served.reduce((sum, r) => sum + Number(r.cost), 0);
    const small = await settledUsage();
    assert.equal(small.reserved_micros, 0, 'every reservation settled');
    assert.equal(small.spent_micros, charged, 'the usage API agrees with the charges in the responses');
    assert.ok(small.spent_micros <= small.limit_micros, `spent ${small.spent_micros} <= ${small.limit_micros}`);
    assert.ok(small.alerts_reached.includes(80));
    // Drive it to exhaustion one request at a time (in-flight requests may have settled below
    // their worst case and left room), then nothing more is admitted.
    let status = 200;
    for (let i = 0; i < 200 && status === 200; i++) {
      status = (await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: auth(), body: body() })).status;
    }
    assert.equal(status, 429);
    const exhausted = await settledUsage();
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers: auth(), body: body() });
      assert.equal(r.status, 429);
      assert.equal((await r.json()).error.code, 'budget_exceeded');
      assert.ok(Number(r.headers.get('retry-after')) > 0);
    }
    const final = await usage();
    assert.equal(final.spent_micros, exhausted.spent_micros, 'refused requests cost nothing');
    assert.ok(final.spent_micros <= final.limit_micros);
  });
});
