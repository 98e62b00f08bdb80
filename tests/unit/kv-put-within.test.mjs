// objects.js's `kvPutWithin` (the admin store's KV writes) against a fake KV binding: a write
// answered in time resolves to `undefined`, a refused one throws, and one with no answer by the
// deadline resolves to 'unanswered' (the Rust side then keeps its key queued: the write may still
// land). The timer is cleared either way.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvPutWithin } from '../../edge/cloudflare/js/objects.js';

const kv = (put) => ({ ASC_CONFIG: { put } });

describe('kvPutWithin', () => {
  it('resolves to undefined once KV has written the value', async () => {
    const written = [];
    const env = kv(async (key, value) => { written.push([key, value]); });
    assert.equal(await kvPutWithin(env, 'ASC_CONFIG', 'key:h', '{"status":"revoked"}', 1000), undefined);
    assert.deepEqual(written, [['key:h', '{"status":"revoked"}']]);
  });

  it('throws what KV threw when it refused the write', async () => {
    const env = kv(async () => { throw new Error('KV PUT failed: 429 Too Many Requests'); });
    await assert.rejects(kvPutWithin(env, 'ASC_CONFIG', 'tenant:t', '{}', 1000), /429/);
  });

  it("resolves to 'unanswered' when KV has not answered by the deadline", async () => {
    const env = kv(() => new Promise(() => {}));
    const started = Date.now();
    assert.equal(await kvPutWithin(env, 'ASC_CONFIG', 'tenant:t', '{}', 50), 'unanswered');
    assert.ok(Date.now() - started >= 45, 'it waited for the deadline');
  });
});
