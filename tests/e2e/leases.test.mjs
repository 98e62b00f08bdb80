// Leased admission (`limits.admission = "leased"`) on workerd, with the official OpenAI SDK:
// concurrent requests admitted under leases hold a hard budget exactly, every answered request
// is chained once and names its lease, each lease's own record reconciles its counts; and when
// the isolate dies after its responses, before their commits, each lease it held is charged what
// it held and chained as `lease_unreconciled`. Spin serves one request per instance, so a leased
// tenant is admitted write-ahead there (checked in the core's tests); these run on the Worker.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, hostOptions, scratchDir } from './harness.mjs';
import { entries, verify, drain, assertGapFreePerStream } from './trail.mjs';

const HUGE = [{ id: 'huge', applies_to: 'tenant', limit_usd_micros: 1e15, period: 'monthly' }];

function client(stack, tenant) {
  return new OpenAI({ apiKey: stack.keys[tenant].key, baseURL: stack.baseURL, maxRetries: 0 });
}

/** Runs `n` chat completions, `concurrency` at a time; the raw responses' headers and status. */
async function burst(stack, tenant, n, concurrency, maxTokens = 50) {
  const openai = client(stack, tenant);
  const out = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      const { response } = await openai.chat.completions
        .create({ model: 'gpt-4o-mini', max_tokens: maxTokens, messages: [{ role: 'user', content: `lease ${i}` }] })
        .withResponse()
        .catch((e) => ({ response: { status: e.status, headers: e.headers } }));
      const header = (name) => (response.headers.get ? response.headers.get(name) : response.headers?.[name]);
      out.push({ status: response.status, id: header('x-request-id'), cost: Number(header('x-asc-cost-usd-micros') ?? 0), reserved: Number(header('x-asc-reserved-usd-micros') ?? 0) });
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

async function budgetUsage(stack, tenant, id) {
  const usage = await (await fetch(`${stack.url}/v1/usage`, { headers: { authorization: `Bearer ${stack.keys[tenant].key}` } })).json();
  return usage.budgets.find((b) => b.budget_id === id);
}

describe('leased admission', hostOptions({ workerOnly: 'an instance serves one request on Spin: leased tenants are admitted write-ahead' }), () => {
  it('admits concurrent requests under leases: exact charges, one record each, leases reconciled', async () => {
    const stack = await startStack({
      extraTenants: () => ({
        leasing: { limits: { admission: 'leased', lease_window_ms: 500 }, budgets: HUGE },
        // A budget a few dozen requests deep: leases shrink as it runs out, never over-spend.
        leantight: {
          limits: { admission: 'leased', lease_window_ms: 500 },
          budgets: [{ id: 'tight', applies_to: 'tenant', limit_usd_micros: 400, period: 'monthly', mode: 'hard' }],
        },
      }),
    });
    let served;
    let tight;
    try {
      served = await burst(stack, 'leasing', 60, 8);
      assert.ok(served.every((r) => r.status === 200), JSON.stringify(served.filter((r) => r.status !== 200)));
      // max_tokens 100: a worst case of ~80 micro-USD, an actual cost of a few: ~60 fit.
      tight = await burst(stack, 'leantight', 120, 8, 100);
      // Past every lease window: the isolate closed its leases, nothing is held any more.
      await drain(stack, 1000);
      const huge = await budgetUsage(stack, 'leasing', 'huge');
      assert.equal(huge.spent_micros, served.reduce((a, r) => a + r.cost, 0), 'charged exactly what the clients were told');
      assert.equal(huge.reserved_micros, 0);
      const small = await budgetUsage(stack, 'leantight', 'tight');
      const ok = tight.filter((r) => r.status === 200);
      const refused = tight.filter((r) => r.status === 429);
      assert.ok(ok.length > 5 && refused.length > 0, `${ok.length} served, ${refused.length} refused`);
      assert.equal(small.spent_micros, ok.reduce((a, r) => a + r.cost, 0));
      assert.ok(small.spent_micros <= 400, `never over the hard budget: ${small.spent_micros}`);
      assert.equal(small.reserved_micros, 0);
      await drain(stack);
    } finally {
      await stack.shutdown();
    }
    try {
      const dir = scratchDir('asc-leases-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, Date.now());
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));
      assert.deepEqual(report.lease_gaps, [], 'every lease reconciled');
      const chained = entries(dir);
      assertGapFreePerStream(chained);
      for (const [tenant, answered] of [['leasing', served], ['leantight', tight]]) {
        const mine = chained.filter((e) => e.record.tenant_id === tenant);
        const leases = mine.filter((e) => e.record.operation === 'lease');
        const requests = mine.filter((e) => e.record.operation === 'chat.completions');
        assert.ok(leases.length >= 1);
        // Every request answered 200 is chained exactly once, naming a lease of its tenant.
        const leaseIds = new Set(leases.map((e) => e.record.lease.id));
        for (const r of answered.filter((x) => x.status === 200)) {
          const found = requests.filter((e) => e.record.request_id === r.id);
          assert.equal(found.length, 1, `${r.id} chained once`);
          assert.ok(leaseIds.has(found[0].record.lease.id), 'names a lease whose record is chained');
        }
        // Each lease's record reconciles: admitted = reported = the records naming it.
        for (const l of leases) {
          assert.equal(l.record.outcome, 'ok', JSON.stringify(l.record));
          const named = requests.filter((e) => e.record.lease?.id === l.record.lease.id).length;
          assert.equal(l.record.lease.admitted, named);
          assert.equal(l.record.lease.reported, named);
          assert.ok(named <= l.record.lease.granted);
        }
      }
      // Refused requests are recorded by the ledger, from the request that asked for a lease.
      const refusedIds = tight.filter((r) => r.status === 429).map((r) => r.id);
      for (const id of refusedIds) {
        const found = chained.filter((e) => e.record.request_id === id);
        assert.equal(found.length, 1);
        assert.equal(found[0].record.error_code, 'budget_exceeded');
      }
    } finally {
      await stack.stop();
    }
  });

  it('survives the isolate dying after its responses: leases charged what they held, recorded as unreconciled', async () => {
    // Work after each response (commits, the lease's close) is held back 5 s, and the Worker is
    // killed inside that window. Leases are given up on 3 s after their window.
    const stack = await startStack({
      vars: { ASC_FAULT_AFTER_DELAY_MS: 5000 },
      extraTenants: () => ({
        leasecrash: { limits: { admission: 'leased', reservation_ttl_ms: 3000, lease_window_ms: 1000 }, budgets: HUGE },
      }),
    });
    let answered;
    let spent;
    try {
      answered = await burst(stack, 'leasecrash', 12, 1);
      assert.ok(answered.every((r) => r.status === 200));
      await stack.kill();
      await stack.restart();
      await drain(stack, 4000);
      const huge = await budgetUsage(stack, 'leasecrash', 'huge');
      assert.equal(huge.reserved_micros, 0, 'nothing stays held');
      await drain(stack);
      spent = huge.spent_micros;
    } finally {
      await stack.shutdown();
    }
    try {
      const dir = scratchDir('asc-leases-lost-');
      await stack.downloadAudit(dir);
      const report = verify(dir, stack.publicKeys, Date.now());
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1));
      const chained = entries(dir).filter((e) => e.record.tenant_id === 'leasecrash');
      const leases = chained.filter((e) => e.record.operation === 'lease');
      assert.ok(leases.length >= 1);
      // The verifier lists each as a declared gap, with the key that held it.
      assert.deepEqual(report.lease_gaps.map((g) => g.lease_id).sort(), leases.map((l) => l.record.lease.id).sort());
      assert.ok(report.lease_gaps.every((g) => g.key_id === stack.keys.leasecrash.keyId && g.admitted === null));
      for (const l of leases) {
        assert.equal(l.record.outcome, 'partial');
        assert.equal(l.record.error_code, 'lease_unreconciled');
        assert.equal(l.record.lease.admitted, undefined, 'the isolate never said how many it admitted');
        assert.equal(l.record.lease.reported, 0);
        // What the lease held is charged in full: never less than what its requests could cost.
        assert.equal(l.record.settled_usd_micros, l.record.reserved_usd_micros);
      }
      // The requests' own commits were lost with the isolate: each lease's record bounds them.
      const granted = leases.reduce((a, l) => a + l.record.lease.granted, 0);
      assert.ok(granted >= answered.length, `${granted} granted covers ${answered.length} answered`);
      assert.equal(spent, leases.reduce((a, l) => a + l.record.settled_usd_micros, 0));
      const maxCharge = answered.reduce((a, r) => a + r.reserved, 0);
      assert.ok(spent >= maxCharge, 'charged at least every answered request\'s worst case');
    } finally {
      await stack.stop();
    }
  });
});
