// A stream abandoned by its client. On workerd the Worker's work is cancelled, so the settle never
// comes; the tenant ledger's alarm charges the reservation and releases it. Under `spin up` the
// component's response task sees the client go and ends the request itself (`Relay::finish`: a
// partial record, charged for what was counted), so the reservation is released at once.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, HOST, hostOptions } from './harness.mjs';

let stack;
before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });

const auth = () => ({ authorization: `Bearer ${stack.keys.budgeted.key}`, 'content-type': 'application/json' });

async function small() {
  const r = await fetch(`${stack.url}/v1/usage`, { headers: auth() });
  return (await r.json()).budgets.find((b) => b.budget_id === 'small');
}

it('is charged, and its reservation reclaimed, within the alarm period', hostOptions(), async () => {
  const before = await small();
  const abort = new AbortController();
  const res = await fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: auth(),
    signal: abort.signal,
    body: JSON.stringify({
      model: 'gpt-4o-mini', max_tokens: 100, stream: true,
      messages: [{ role: 'user', content: '[mock:slow-stream-1000] [mock:long-60] go' }],
    }),
  });
  assert.equal(res.status, 200);
  const reserved = Number(res.headers.get('x-asc-reserved-usd-micros'));
  assert.ok(reserved > 0);
  const reader = res.body.getReader();
  await reader.read();
  abort.abort();
  const open = await small();
  if (HOST === 'spin') {
    const deadline = Date.now() + 5_000;
    let now = open;
    while (now.reserved_micros !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      now = await small();
    }
    assert.equal(now.reserved_micros, 0, 'the component released the reservation when the client left');
    const charged = now.spent_micros - before.spent_micros;
    assert.ok(charged > 0 && charged <= reserved, `charged ${charged} for what was streamed, at most the ${reserved} reserved`);
    return;
  }
  assert.equal(open.reserved_micros, reserved, 'the abandoned stream still holds its reservation');
  // reservation_ttl_ms is 3 s for this tenant; allow the alarm some slack.
  const deadline = Date.now() + 15_000;
  let now = open;
  while (now.reserved_micros !== 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    now = await small();
  }
  assert.equal(now.reserved_micros, 0, 'the alarm released the reservation');
  assert.equal(now.spent_micros - before.spent_micros, reserved, 'charged at the reserved amount');
});
