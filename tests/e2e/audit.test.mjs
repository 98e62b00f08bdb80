// The audit trail end to end on workerd: every request leaves exactly one chained record in the
// R2 bucket (in one of the region's audit streams, each gap-free from 1), verified by the
// `asc audit verify` CLI; killing the Worker mid-flush again and again, or between a response and
// its commit, loses and duplicates nothing; canary secrets and personal data never reach the
// bucket or logs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startStack, UPSTREAM_KEY, hostOptions, scratchDir, HOST, ROOT } from './harness.mjs';
import { files, entries, verify, drain, assertGapFreePerStream } from './trail.mjs';

const CANARY_SECRET = 'sk-live-CANARY-9f8e7d6c5b4a';
const CANARY_EMAIL = 'jane.canary@example.com';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const REFUSED_MODELS = ['gpt-4o-mni', 'gpt-4o-m\u00efni-\u2713-\u6a21\u578b-\u{1f9ea}'];

function chatBody(text, extra = {}) {
  return JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }], ...extra });
}

function chat(stack, text, extra = {}, tenant = 'demo') {
  return fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys[tenant].key}`, 'content-type': 'application/json' },
    body: chatBody(text, extra),
  });
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

describe('audit trail', hostOptions(), () => {
  it('N requests leave exactly N chained, signed records, and no canary anywhere', async () => {
    const stack = await startStack();
    const ids = [];
    const digests = new Map(); // request id -> SHA-256 of the body sent and of the reply received
    try {
      for (let i = 0; i < 30; i++) {
        // Short and long bodies: the Worker hashes below 512 bytes in wasm, above with node:crypto.
        const text = i % 3 === 0 ? `My key is ${CANARY_SECRET}, mail ${CANARY_EMAIL}`
          : i % 3 === 1 ? `hello ${i}: ${'retrieved context '.repeat(60)}` : `hello ${i}`;
        const extra = i % 5 === 0 ? { stream: true } : {};
        const r = await chat(stack, text, extra);
        const received = Buffer.from(await r.arrayBuffer());
        ids.push(r.headers.get('x-request-id'));
        digests.set(r.headers.get('x-request-id'), { prompt: sha256(chatBody(text, extra)), response: sha256(received) });
      }
      // Refused requests of a known tenant are recorded too, with the model as the client named
      // it, beyond ASCII included (it crosses into the ledger and the sequencer as UTF-8).
      for (let i = 0; i < 5; i++) {
        const r = await chat(stack, 'hi', { model: REFUSED_MODELS[i % 2] });
        assert.equal(r.status, 404);
        ids.push(r.headers.get('x-request-id'));
      }
      await drain(stack);
    } finally {
      await stack.shutdown();
    }
    try {
      const stoppedAt = Date.now();
      const dir = scratchDir('asc-audit-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, stoppedAt);
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));

      const chained = entries(dir);
      assert.equal(chained.length, ids.length, 'exactly one record per request');
      assertGapFreePerStream(chained);
      // Every shard of the region started and heartbeats, with records or without.
      const streams = report.streams.map((st) => st.stream).sort();
      assert.deepEqual(streams, ['audit-local-0-of-4', 'audit-local-1-of-4', 'audit-local-2-of-4', 'audit-local-3-of-4']);
      assert.deepEqual(new Set(chained.map((e) => e.record.request_id)), new Set(ids));
      const refused = chained.filter((e) => e.record.outcome === 'refused');
      assert.equal(refused.length, 5);
      assert.deepEqual(refused.map((e) => e.record.requested_model).sort(),
        [REFUSED_MODELS[0], REFUSED_MODELS[0], REFUSED_MODELS[0], REFUSED_MODELS[1], REFUSED_MODELS[1]].sort());
      assert.ok(chained.every((e) => e.record.prompt_sha256?.length === 64), 'prompts only as hashes');
      // The digests are of the exact bytes: the request body as sent, the reply as received
      // (streamed or not, redacted or not).
      for (const [id, digest] of digests) {
        const { record } = chained.find((e) => e.record.request_id === id);
        assert.equal(record.prompt_sha256, digest.prompt, `${id}: prompt_sha256`);
        assert.equal(record.response_sha256, digest.response, `${id}: response_sha256`);
      }

      const everything = files(dir).map((f) => (f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f)).toString('utf8')).join('\n')
        + stack.logs.join('');
      for (const canary of [CANARY_SECRET, CANARY_EMAIL, UPSTREAM_KEY, stack.keys.demo.key]) {
        assert.equal(everything.split(canary).length - 1, 0, `${canary.slice(0, 12)}... appears in the audit objects or logs`);
      }
    } finally {
      await stack.stop();
    }
  });

  it('counts refusals before a tenant is known into the region\'s verified trail, never the key', async () => {
    // A well-formed key nobody issued (minted under another secret, never stored).
    const out = execFileSync(join(ROOT, 'target/debug/asc'), ['key', 'new', '--tenant', 'ghost', '--scopes', 'chat'], {
      env: { ...process.env, KEY_HASH_SECRET: 'c'.repeat(64) }, encoding: 'utf8',
    });
    const stranger = out.match(/^ASC_API_KEY=(.*)$/m)[1];
    const stack = await startStack();
    const ids = new Map(); // request id -> error code
    const attempt = async (auth) => {
      // A client cannot pose as another address on Spin: Spin appends its own spin-client-addr.
      const headers = { 'content-type': 'application/json', 'cf-connecting-ip': '203.0.113.7', 'spin-client-addr': '6.6.6.6:1' };
      if (auth) headers.authorization = auth;
      const r = await fetch(`${stack.url}/v1/chat/completions`, { method: 'POST', headers, body: chatBody('hi') });
      const body = await r.json();
      assert.equal(r.status, 401);
      ids.set(r.headers.get('x-request-id'), body.error.code);
    };
    try {
      for (let i = 0; i < 4; i++) await attempt(null);
      for (let i = 0; i < 3; i++) await attempt(`Bearer ${stranger}`);
      await attempt(`Bearer ${CANARY_SECRET}`);
      const wrongRegion = await chat(stack, 'hi', {}, 'euonly');
      assert.equal(wrongRegion.status, 403);
      ids.set(wrongRegion.headers.get('x-request-id'), (await wrongRegion.json()).error.code);
      // The isolate's window (2 s on workerd) before the ledger, then the usual shipping.
      await drain(stack, 2500);
    } finally {
      await stack.shutdown();
    }
    try {
      const dir = scratchDir('asc-audit-refusals-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, Date.now());
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));
      const chained = entries(dir);
      assertGapFreePerStream(chained);
      const region = chained.map((e) => e.record).filter((r) => r.refusals);
      for (const r of region) {
        assert.equal(r.tenant_id, null, JSON.stringify(r));
        assert.equal(r.region, 'local');
        assert.equal(r.outcome, 'refused');
        // Spin adds the connection's address and port after any the client sent (the port is
        // dropped). Cloudflare always sets CF-Connecting-IP itself; wrangler dev sets it only
        // when the request has none, so here the attempts' own header shows, and the
        // connection's on the request sent without one.
        if (HOST === 'spin') assert.equal(r.refusals.client, '127.0.0.1');
        else assert.equal(r.refusals.client, r.error_code === 'wrong_region' ? '127.0.0.1' : '203.0.113.7');
      }
      // Every attempt counted, under the code its client got: one record per group on workerd
      // (first attempt's id), one per attempt on Spin.
      const counted = (code) => region.filter((r) => r.error_code === code).reduce((n, r) => n + r.refusals.count, 0);
      assert.equal(counted('missing_api_key'), 4);
      assert.equal(counted('invalid_api_key'), 4);
      assert.equal(counted('wrong_region'), 1);
      for (const r of region) assert.equal(ids.get(r.request_id), r.error_code, 'each record names an attempt refused with its code');
      const unknown = region.filter((r) => r.error_code === 'invalid_api_key' && r.refusals.key_hash_prefix);
      assert.equal(unknown.reduce((n, r) => n + r.refusals.count, 0), 3, 'the stranger\'s attempts, by its hash prefix');
      assert.equal(new Set(unknown.map((r) => r.refusals.key_hash_prefix)).size, 1);
      assert.match(unknown[0].refusals.key_hash_prefix, /^[0-9a-f]{16}$/);
      assert.equal(region.find((r) => r.error_code === 'wrong_region').key_id, stack.keys.euonly.keyId, 'a live key of a tenant kept elsewhere, by its id');
      const everything = files(dir).map((f) => (f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f)).toString('utf8')).join('\n')
        + stack.logs.join('');
      for (const secret of [stranger, CANARY_SECRET]) {
        assert.equal(everything.split(secret).length - 1, 0, `${secret.slice(0, 12)}... appears in the audit objects or logs`);
      }
    } finally {
      await stack.stop();
    }
  });

  it('survives the Worker being killed mid-flush again and again: no gap, no duplicate', async () => {
    const stack = await startStack();
    const answered = new Set();
    const kills = Number(process.env.AUDIT_KILLS ?? 20);
    try {
      for (let round = 0; round < kills; round++) {
        if (round > 0) await stack.restart();
        const inflight = Array.from({ length: 8 }, (_, i) => chat(stack, `round ${round} request ${i}`, {}, 'crashy')
          .then(async (r) => { await r.arrayBuffer(); if (r.status === 200) answered.add(r.headers.get('x-request-id')); })
          .catch(() => { /* cut off by the kill */ }));
        // Let some requests finish and a batch (max age 300 ms) start shipping, then crash.
        await sleep(150 + ((round * 97) % 400));
        await stack.kill();
        await Promise.allSettled(inflight);
      }
      await stack.restart();
      // Requests cut off by a kill are given up on 3 s after admission (the tenant's TTL).
      await drain(stack, 3000);
    } finally {
      await stack.shutdown();
    }
    try {
      const stoppedAt = Date.now();
      const dir = scratchDir('asc-audit-kill-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, stoppedAt);
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));
      const chained = entries(dir);
      assertGapFreePerStream(chained);
      const ids = chained.map((e) => e.record.request_id);
      assert.equal(new Set(ids).size, ids.length, 'no request recorded twice');
      for (const id of answered) assert.ok(ids.includes(id), `answered request ${id} is in the trail`);
      assert.ok(answered.size > 0);
    } finally {
      await stack.stop();
    }
  });

  it('survives the isolate dying between a response and its commit: charged in full, recorded once', async () => {
    // Work after each response is held back 5 s (a fault only the loopback region honours), and
    // the Worker is killed inside that window: the responses went out, the commits never ran.
    const stack = await startStack({ vars: { ASC_FAULT_AFTER_DELAY_MS: 5000 } });
    const answered = new Map();
    try {
      for (let i = 0; i < 6; i++) {
        const r = await chat(stack, `answered then lost ${i}`, {}, 'crashy');
        assert.equal(r.status, 200);
        await r.arrayBuffer();
        answered.set(r.headers.get('x-request-id'), Number(r.headers.get('x-asc-reserved-usd-micros')));
      }
      await stack.kill();
      await stack.restart();
      await drain(stack, 3000);
      const usage = await (await fetch(`${stack.url}/v1/usage`, {
        headers: { authorization: `Bearer ${stack.keys.crashy.key}` },
      })).json();
      const spent = usage.budgets.find((b) => b.budget_id === 'huge').spent_micros;
      const reserved = [...answered.values()].reduce((a, b) => a + b, 0);
      assert.ok(reserved > 0);
      assert.equal(spent, reserved, 'each lost commit is charged its reservation in full');
      await drain(stack);
    } finally {
      await stack.shutdown();
    }
    try {
      const dir = scratchDir('asc-audit-lost-commit-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, Date.now());
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));
      const chained = entries(dir);
      assertGapFreePerStream(chained);
      for (const [id] of answered) {
        const records = chained.filter((e) => e.record.request_id === id);
        assert.equal(records.length, 1, `${id} is recorded exactly once`);
        assert.equal(records[0].record.outcome, 'partial');
        assert.equal(records[0].record.error_code, 'request_unfinished');
        assert.equal(records[0].record.settled_usd_micros, answered.get(id));
      }
    } finally {
      await stack.stop();
    }
  });
});
