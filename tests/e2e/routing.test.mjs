// Routing on workerd with the misbehaving mock upstream: a primary failing with 500 is served by
// the fallback (here another provider), a stream cut mid-way ends with a terminal error event and
// is never retried, out-of-region targets are never tried, and /v1/route/explain tells why.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, hostOptions, HOST } from './harness.mjs';

let stack;
const client = () => new OpenAI({ apiKey: stack.keys.routed.key, baseURL: stack.baseURL, maxRetries: 0 });

before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });
beforeEach(() => { stack.mock.requests.length = 0; });

describe(`routing and failover on ${HOST}`, hostOptions(), () => {
  it('a primary failing with 500 is served by the fallback', async () => {
    const { data, response } = await client().chat.completions.create({
      model: 'smart', messages: [{ role: 'user', content: 'Hello fallback' }],
    }).withResponse();
    assert.equal(data.choices[0].message.content, 'Mock reply to: Hello fallback');
    assert.equal(response.headers.get('x-asc-route'), 'smart');
    assert.equal(response.headers.get('x-asc-target'), 'claude');
    assert.equal(response.headers.get('x-asc-attempts'), '2');
    assert.equal(response.headers.get('x-asc-provider'), 'anthropic');
    // The out-of-region target was never tried; the failing primary once, then the fallback.
    assert.deepEqual(stack.mock.requests.map((r) => r.path), ['/v1/chat/completions', '/anthropic/v1/messages']);
    assert.equal(stack.mock.requests[0].body.model, 'mock-500');
  });

  it('a stream cut mid-way ends with a terminal error event and is not retried', async () => {
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.routed.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'streaming', stream: true, messages: [{ role: 'user', content: 'one two three four five six' }] }),
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /"delta"/, 'content arrived before the cut');
    const events = text.trim().split('\n\n');
    assert.match(events.at(-1), /^data: \{"error":/);
    assert.ok(!text.includes('[DONE]'));
    assert.equal(stack.mock.requests.length, 1, 'no fallback after the first byte');
    // The SDK raises on it.
    const stream = await client().chat.completions.create({ model: 'streaming', stream: true, messages: [{ role: 'user', content: 'again please' }] });
    await assert.rejects(async () => { for await (const _ of stream) { /* drain */ } });
  });

  it('route/explain names every target considered and why, and calls nothing', async () => {
    const res = await fetch(`${stack.baseURL}/route/explain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.routed.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: 'x' }] }),
    });
    assert.equal(res.status, 200);
    const v = await res.json();
    assert.equal(v.decision, 'route');
    assert.deepEqual(v.candidates, ['broken', 'claude']);
    assert.equal(v.considered[0].model, 'outside');
    assert.match(v.considered[0].excluded, /allowlist/);
    assert.equal(stack.mock.requests.length, 0);
  });
});
