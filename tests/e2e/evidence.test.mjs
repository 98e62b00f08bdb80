// Compliance evidence from a real run (workerd, or Spin with ASC_E2E_HOST=spin): requests through the Worker (served, blocked by
// a guardrail, refused), the audit bucket read back as an auditor would, an evidence pack built
// for the period with `asc evidence pack`, checked with `asc evidence verify`, and a change to any
// file of it detected.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, ROOT, AUDIT_POLICY, hostOptions, HOST, scratchDir } from './harness.mjs';

const ASC = join(ROOT, 'target/debug/asc');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function chat(stack, tenant, content) {
  return fetch(`${stack.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys[tenant].key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
  });
}

describe(`evidence pack from a real run on ${HOST}`, hostOptions(), () => {
  it('packs the period, verifies, and catches a changed file', async () => {
    const from = Date.now() - 1000;
    const stack = await startStack();
    const dir = scratchDir('asc-evidence-');
    try {
      for (let i = 0; i < 4; i++) {
        const r = await chat(stack, 'demo', `hello ${i}`);
        assert.equal(r.status, 200);
        await r.arrayBuffer();
      }
      const blocked = await chat(stack, 'guarded', 'card 4111 1111 1111 1111');
      assert.equal(blocked.status, 400);
      await blocked.arrayBuffer();
      const leaky = await chat(stack, 'leaky', 'hi');
      assert.equal(leaky.status, 403, 'a target outside the region is refused, never contacted');
      await leaky.arrayBuffer();
      await sleep(AUDIT_POLICY.forwardMs + AUDIT_POLICY.maxAgeMs + AUDIT_POLICY.heartbeatMs + 1000);
    } finally {
      await stack.shutdown();
    }
    try {
      const to = Date.now() + 1000;
      const bucket = join(dir, 'bucket');
      await stack.downloadAudit(bucket);
      const keygen = execFileSync(ASC, ['audit', 'keygen', '--key-id', 'evidence-e2e'], { encoding: 'utf8' });
      const field = (n) => keygen.match(new RegExp(`^${n}=(.*)$`, 'm'))[1];
      writeFileSync(join(dir, 'evidence-signing-key.json'), field('AUDIT_SIGNING_KEY'));
      writeFileSync(join(dir, 'evidence-keys.json'), `[${field('AUDIT_PUBLIC_KEY')}]`);
      // The key records as KV holds them (the harness stores the `revoked` key's as revoked).
      const records = Object.entries(stack.keys).map(([name, k]) => (name === 'revoked' ? { ...k.record, status: 'revoked' } : k.record));
      writeFileSync(join(dir, 'key-records.json'), JSON.stringify(records));

      const pack = join(dir, 'pack');
      execFileSync(ASC, ['evidence', 'pack', bucket, '--keys', stack.publicKeys,
        '--heartbeat-ms', String(AUDIT_POLICY.heartbeatMs), '--from', String(from), '--to', String(to),
        '--out', pack, '--signing-key', join(dir, 'evidence-signing-key.json'),
        '--key-records', join(dir, 'key-records.json')], { encoding: 'utf8' });
      const read = (name) => JSON.parse(readFileSync(join(pack, name), 'utf8'));

      assert.equal(read('verification.json').ok, true);
      const summary = read('summary.json');
      assert.equal(summary.requests, 6);
      assert.equal(summary.by_tenant.demo, 4);
      assert.deepEqual(summary.blocked_by_guardrail, { credit_card: 1 });
      const residency = read('residency.json');
      assert.equal(residency.ok, true, JSON.stringify(residency.flagged));
      const local = residency.regions.find((r) => r.region === 'local');
      assert.ok(local.hosts_contacted.every((h) => h.host === '127.0.0.1' && h.allowed));
      const keys = read('keys.json').keys;
      const demoKey = keys.find((k) => k.key_id === stack.keys.demo.keyId);
      assert.equal(demoKey.requests, 4);
      assert.deepEqual(demoKey.scopes, ['chat', 'models', 'usage']);
      assert.ok(keys.some((k) => k.key_id === stack.keys.revoked.keyId && k.status === 'revoked' && k.requests === 0));
      const packText = ['summary.json', 'keys.json', 'config-versions.json'].map((n) => readFileSync(join(pack, n), 'utf8')).join('');
      assert.ok(!packText.includes(stack.keys.demo.key), 'no API key in the pack');
      assert.ok(!packText.includes('key_hash'), 'no key hashes in the pack');

      const verify = () => spawnSync(ASC, ['evidence', 'verify', pack, '--keys', join(dir, 'evidence-keys.json')], { encoding: 'utf8' });
      let v = verify();
      assert.equal(v.status, 0, v.stdout + v.stderr);
      const path = join(pack, 'residency.json');
      writeFileSync(path, readFileSync(path, 'utf8').replace('"ok": true', '"ok": false'));
      v = verify();
      assert.equal(v.status, 1);
      assert.match(v.stdout, /residency\.json: changed/);
    } finally {
      // Closes the mock upstream and removes the state folder: the test process can exit.
      await stack.stop();
    }
  });
});
