// The platform's floor under a tenant ledger call: what one Durable Object event costs on the local
// workerd with no write, one SQLite row written, and the rows a write-ahead ledger call writes
// (totals + the request's row, a forwarded row deleted), through the same synchronous SQL API
// host.js uses. Sequential calls from a Worker on the same workerd, so each figure is one event's
// full cost: RPC in, the writes, the implicit transaction's commit, RPC out.
//   node tests/bench/do-sql.mjs       (BENCH_CALLS=3000 per row, two rounds)
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../e2e/harness.mjs';

const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const COMPAT_DATE = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date = "(.*)"/m)[1];

const script = `
import { DurableObject } from 'cloudflare:workers';
const RECORD = 'x'.repeat(1400);
const TOTALS = 't'.repeat(160);
export class Store extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS asc_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
    this.n = 0;
  }
  nothing() { return ++this.n; }
  oneRow() {
    const n = ++this.n;
    this.sql.exec('INSERT OR REPLACE INTO asc_kv (key, value) VALUES (?, ?)', 'totals', TOTALS + n);
    return n;
  }
  ledgerCall() {
    const n = ++this.n;
    this.sql.exec('INSERT OR REPLACE INTO asc_kv (key, value) VALUES (?, ?),(?, ?)', 'totals', TOTALS + n, 'r:req_' + n, RECORD + n);
    if (n > 100) this.sql.exec('DELETE FROM asc_kv WHERE key IN (?)', 'r:req_' + (n - 100));
    return n;
  }
}
export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const what = q.get('what');
    const stub = env.STORE.get(env.STORE.idFromName(what));
    const calls = Number(q.get('calls'));
    for (let i = 0; i < calls; i++) await stub[what]();
    return new Response('ok');
  },
};`;

const state = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/asc-do-sql-') : mkdtempSync(join(tmpdir(), 'asc-do-sql-'));
const mf = new Miniflare(convertV4MiniflareOptions({
  cf: false,
  resourcePersistencePath: state,
  workers: [{
    name: 'do-sql', modules: true, script, compatibilityDate: COMPAT_DATE,
    durableObjects: { STORE: { className: 'Store', useSQLite: true } },
  }],
}));
try {
  await mf.ready;
  const rows = [
    ['nothing', 'an RPC call, no write'],
    ['oneRow', 'one row written (160 B)'],
    ['ledgerCall', 'a write-ahead ledger call\'s rows: 2 written (160 B + 1.4 KB), 1 deleted'],
  ];
  const results = new Map();
  for (let round = 0; round < 2; round++) {
    for (const [what] of rows) {
      const started = performance.now();
      const r = await mf.dispatchFetch(`http://bench/?what=${what}&calls=${CALLS}`);
      if ((await r.text()) !== 'ok') throw new Error(`${what}: ${r.status}`);
      const us = ((performance.now() - started) * 1000) / CALLS;
      results.set(what, [...(results.get(what) ?? []), us]);
    }
  }
  console.log(`| Durable Object event (${CALLS} sequential calls, two rounds) | us per call |`);
  console.log('|---|---|');
  for (const [what, label] of rows) {
    console.log(`| ${label} | ${results.get(what).map((x) => x.toFixed(0)).join(' / ')} |`);
  }
} finally {
  await mf.dispose();
  rmSync(state, { recursive: true, force: true });
}
