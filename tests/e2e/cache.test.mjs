// The response cache end to end on workerd, through the official SDKs: a repeated deterministic
// request is answered from the region's R2 cache bucket without an upstream call (whole and
// streamed, OpenAI and Anthropic dialects), tenants never share entries, Cache-Control bypasses
// work, a stored answer is the redacted one, and every request (hit, miss or bypass) is one
// verified audit record naming the entry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { files } from './trail.mjs';
import { join } from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStack, ROOT, AUDIT_POLICY, hostOptions, HOST, scratchDir } from './harness.mjs';

let stack;
const ids = [];
const openai = (tenant = 'cached') =>
  new OpenAI({ apiKey: stack.keys[tenant].key, baseURL: stack.baseURL, maxRetries: 0 });
const ask = (text, extra = {}) => ({
  model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: text }], ...extra,
});
const upstreamCalls = () => stack.mock.requests.length;

async function create(tenant, body) {
  const { data, response } = await openai(tenant).chat.completions.create(body).withResponse();
  ids.push(response.headers.get('x-request-id'));
  return { data, cache: response.headers.get('x-asc-cache'), cost: response.headers.get('x-asc-cost-usd-micros') };
}

// An entry is stored after its response. A Worker isolate keeps its own copy, so its next request
// hits at once; a Spin instance serves one request, so the next one reads the database, and a loaded
// machine can send it before the write lands. On Spin, wait until the database holds an entry it did
// not hold before the miss.
const cachedNow = () => new Set(stack.cacheNames?.() ?? []);
async function entryStored(namesBefore) {
  if (!stack.cacheNames) return;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if ([...cachedNow()].some((n) => !namesBefore.has(n))) return;
    assert.ok(Date.now() < deadline, 'the miss stored no entry within 15 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });

describe(`response cache on ${HOST}`, hostOptions(), () => {
  it('a repeated request is a hit: no upstream call, same answer, free', async () => {
    const before = upstreamCalls();
    const names = cachedNow();
    const miss = await create('cached', ask('what is the capital of France?'));
    assert.equal(miss.cache, 'miss');
    assert.equal(upstreamCalls(), before + 1);
    await entryStored(names);
    const hit = await create('cached', ask('what is the capital of France?'));
    assert.equal(hit.cache, 'hit');
    assert.equal(hit.cost, '0');
    assert.equal(upstreamCalls(), before + 1, 'the hit made no upstream call');
    assert.equal(hit.data.choices[0].message.content, miss.data.choices[0].message.content);
    assert.notEqual(hit.data.id, miss.data.id);
    assert.deepEqual(hit.data.usage, miss.data.usage);
  });

  it('a hit streams through the SDK when the client asks for a stream', async () => {
    const before = upstreamCalls();
    const { data: stream, response } = await openai().chat.completions
      .create(ask('what is the capital of France?', { stream: true, stream_options: { include_usage: true } }))
      .withResponse();
    ids.push(response.headers.get('x-request-id'));
    assert.equal(response.headers.get('x-asc-cache'), 'hit');
    let text = '';
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.match(text, /capital of France/);
    assert.ok(usage?.total_tokens > 0, 'the usage chunk');
    assert.equal(upstreamCalls(), before);
  });

  it('the Anthropic SDK gets hits in its own shape', async () => {
    const anthropic = new Anthropic({ apiKey: stack.keys.cached.key, baseURL: stack.url, maxRetries: 0 });
    const body = { model: 'gpt-4o-mini', max_tokens: 64, temperature: 0, messages: [{ role: 'user', content: 'name a colour' }] };
    const names = cachedNow();
    const first = await anthropic.messages.create(body).withResponse();
    ids.push(first.response.headers.get('x-request-id'));
    await entryStored(names);
    const before = upstreamCalls();
    const second = await anthropic.messages.create(body).withResponse();
    ids.push(second.response.headers.get('x-request-id'));
    assert.equal(second.response.headers.get('x-asc-cache'), 'hit');
    assert.equal(upstreamCalls(), before);
    assert.equal(second.data.type, 'message');
    assert.equal(second.data.content[0].text, first.data.content[0].text);
  });

  it('another tenant never gets the first one\'s entry', async () => {
    const before = upstreamCalls();
    const other = await create('cached2', ask('what is the capital of France?'));
    assert.equal(other.cache, 'miss');
    assert.equal(upstreamCalls(), before + 1);
    // A tenant without a cache: no cache header at all.
    const plain = await create('demo', ask('what is the capital of France?'));
    assert.equal(plain.cache, null);
  });

  it('Cache-Control no-store and no-cache bypass and refresh', async () => {
    const post = (cc) => fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.cached.key}`, 'content-type': 'application/json', 'cache-control': cc },
      body: JSON.stringify(ask('what is the capital of France?')),
    });
    const before = upstreamCalls();
    const noStore = await post('no-store');
    ids.push(noStore.headers.get('x-request-id'));
    assert.equal(noStore.headers.get('x-asc-cache'), 'bypass');
    await noStore.arrayBuffer();
    const noCache = await post('no-cache');
    ids.push(noCache.headers.get('x-request-id'));
    assert.equal(noCache.headers.get('x-asc-cache'), 'miss');
    await noCache.arrayBuffer();
    assert.equal(upstreamCalls(), before + 2);
  });

  it('an answer redacted on its way out is stored redacted', async () => {
    const names = cachedNow();
    const miss = await create('cached', ask('please mail jane.doe@example.com'));
    assert.ok(!miss.data.choices[0].message.content.includes('jane.doe@example.com'));
    await entryStored(names);
    const hit = await create('cached', ask('please mail jane.doe@example.com'));
    assert.equal(hit.cache, 'hit');
    assert.equal(hit.data.choices[0].message.content, miss.data.choices[0].message.content);
  });

  it('the cache bucket holds only redacted entries under each tenant\'s prefix, and the audit trail verifies', async () => {
    // Past one forward, one batch age and one heartbeat: everything has shipped.
    await new Promise((r) => setTimeout(r, AUDIT_POLICY.forwardMs + AUDIT_POLICY.maxAgeMs + AUDIT_POLICY.heartbeatMs + 1000));
    await stack.shutdown();
    const cacheDir = scratchDir('asc-cache-');
    const names = await stack.downloadCache(cacheDir);
    assert.ok(names.length >= 4, names.join(', '));
    assert.ok(names.every((n) => /^(cached|cached2)\/[0-9a-f]{64}$/.test(n)), names.join(', '));
    for (const f of files(cacheDir)) {
      assert.ok(!readFileSync(f, 'utf8').includes('jane.doe@example.com'), `${f} holds the unredacted answer`);
    }

    const auditDir = scratchDir('asc-audit-');
    await stack.downloadAudit(auditDir);
    const out = execFileSync(join(ROOT, 'target/debug/asc'), ['audit', 'query', auditDir,
      '--keys', stack.publicKeys, '--heartbeat-ms', String(AUDIT_POLICY.heartbeatMs), '--tenant', 'cached',
      '--format', 'json'], { encoding: 'utf8' });
    const rows = JSON.parse(out);
    assert.ok(rows.every((r) => r.verified));
    const byId = new Map(rows.map((r) => [r.record.request_id, r.record]));
    const cachedIds = ids.filter((id) => byId.has(id));
    assert.ok(cachedIds.length >= 9, `records for ${cachedIds.length} of the cached tenant's requests`);
    const notes = cachedIds.map((id) => byId.get(id).cache);
    assert.ok(notes.every(Boolean), 'every request of a cached tenant records its cache outcome');
    const hits = notes.filter((n) => n.outcome === 'hit');
    const stored = notes.filter((n) => n.outcome === 'miss' && n.stored);
    assert.ok(hits.length >= 4 && stored.length >= 3, JSON.stringify(notes));
    for (const h of hits) assert.ok(stored.some((s) => s.key === h.key), 'each hit names an entry a miss stored');
    assert.ok(notes.some((n) => n.outcome === 'bypass' && n.reason === 'no_store'));
  });
});
