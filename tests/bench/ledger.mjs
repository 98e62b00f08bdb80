// Reserve/settle throughput against one tenant's ledger Durable Object on local workerd
// (wrangler dev --local), side by side with the same requests for a tenant without budgets.
// Every budgeted request makes two ledger calls (reserve, settle). Bounded: N requests each.
import { startStack } from '../e2e/harness.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

async function run(url, key) {
  const body = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user', content: 'bench' }] });
  const latencies = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  async function worker() {
    while (next < N) {
      next += 1;
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body,
      });
      await r.arrayBuffer();
      if (r.status !== 200) failures += 1;
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  return { rps: N / seconds, p50: pct(50), p99: pct(99), failures };
}

const stack = await startStack();
try {
  await run(stack.url, stack.keys.demo.key); // warm-up of the isolate
  const plain = await run(stack.url, stack.keys.demo.key);
  const budgeted = await run(stack.url, stack.keys.bigbudget.key);
  const fmt = (x) => x.toFixed(1);
  const rows = [
    ['no budgets (no ledger calls)', plain],
    ['hard budget (reserve + settle per request)', budgeted],
  ];
  console.log(`| tenant | req/s | ledger ops/s | p50 ms | p99 ms | failures |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const [name, r] of rows) {
    const ops = name.startsWith('hard') ? fmt(r.rps * 2) : '0';
    console.log(`| ${name} | ${fmt(r.rps)} | ${ops} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.failures} |`);
  }
  console.log(`\nratio budgeted/plain throughput: ${(budgeted.rps / plain.rps).toFixed(2)} ` +
    `(N=${N}, concurrency=${CONCURRENCY}, through wrangler dev --local)`);
} finally {
  await stack.stop();
}
