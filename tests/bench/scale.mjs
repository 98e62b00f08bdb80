// Scale: what one audit stream (sequencer Durable Object) and one tenant ledger object sustain, and
// how the region's audited records/s grow with the number of audit shards. ASC's own Durable
// Object classes (the built Worker), driven by RPC from a small driver Worker on the same workerd,
// with DO, KV and R2 state on tmpfs. Batches of records are what ledgers forward (one call carries
// many records); each call is appended, chained, stored, and shipped to R2 with signed digests by
// the sequencer's alarm as in production.
//
// Shards: N streams, spread over P = min(N, cores) workerd processes (one workerd runs its
// isolate on one thread, so one process can never show more than one core's worth; on
// Cloudflare every object runs apart). Prints markdown; bounded by BENCH_SECONDS per run.
//   node tests/bench/scale.mjs        (scripts/bench runs it)
// SCALE_ONLY=ledger runs only the ledger rows; SCALE_PROFILE=1 also takes a sampling CPU profile of
// the objects' isolate during the write-ahead ledger row (.state/bench/ledger.cpuprofile; build
// with names for readable wasm frames: ASC_WASM_OPT="-Oz -g" scripts/build-worker).
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, auditKeyPair } from '../e2e/harness.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CALLERS = Number(process.env.BENCH_CONCURRENCY ?? 16);
const BUILD = process.env.ASC_BUILD_DIR ?? join(ROOT, 'edge/cloudflare/build');
// The Worker that defines the objects: the control plane's (a build from before the split has one).
const OBJECTS_BUILD = existsSync(join(BUILD, 'control', 'index.js')) ? join(BUILD, 'control') : BUILD;
const CORES = cpus().length;
const ONLY_LEDGER = process.env.SCALE_ONLY === 'ledger';
const PROFILE = process.env.SCALE_PROFILE === '1';
const log = (...a) => console.error('[scale]', ...a);
const COMPAT_DATE = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date = "(.*)"/m)[1];
// The Worker's flags as wrangler.toml sets them (nodejs_compat: node:crypto's digest).
const COMPAT_FLAGS = JSON.parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_flags = (\[.*\])/m)?.[1] ?? '[]');

const DRIVER = `
import { ledgerCall, ledgerCommit } from './edge/cloudflare/js/host.js';
const T0 = Date.now();
function record(source, n) {
  return '{"schema_version":1,"request_id":"req_' + source + '_' + n + '","timestamp_ms":' + (T0 + n) +
    ',"region":"local","tenant_id":"acme","key_id":"k_1","operation":"chat.completions",' +
    '"requested_model":"gpt-4o-mini","served_model":"gpt-4o-mini-2024-07-18","provider":"openai",' +
    '"endpoint_host":"api.openai.com","stream":false,"outcome":"ok","status":200,"error_code":null,' +
    '"usage":{"input_tokens":412,"output_tokens":64,"cached_input_tokens":0,"cache_write_tokens":0},' +
    '"latency_ms":312,"policy_version":"4b1d","trace_id":"0af7651916cd43dd8448eb211c80319c",' +
    '"attempts":[{"provider":"openai","endpoint_host":"api.openai.com","model":"gpt-4o-mini-2024-07-18","status":200,"error_code":null,"latency_ms":300}],' +
    '"reserved_usd_micros":120,"settled_usd_micros":80,"price_table_version":"2026-11-01",' +
    '"prompt_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",' +
    '"response_sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}';
}
function budgets() {
  return '[{"key":"monthly","budget_id":"monthly","limit_micros":1000000000000000,"period":"monthly","mode":"hard","alert_percents":[]}]';
}
export default {
  async fetch(request, env, ctx) {
    const q = new URL(request.url).searchParams;
    if (q.get('what') === 'append') {
      const stream = q.get('stream');
      const source = q.get('source');
      const first = Number(q.get('first'));
      const n = Number(q.get('n'));
      const records = [];
      for (let i = 0; i < n; i++) records.push(record(source, first + i));
      const batch = '{"stream":"' + stream + '","source":"' + source + '","first_seq":' + first +
        ',"records":[' + records.join(',') + ']}';
      const ack = await env.SEQ.get(env.SEQ.idFromName(stream)).append(batch);
      return new Response(ack);
    }
    // A request's two ledger operations, as the gateway sends them: admission, then commit.
    const name = q.get('ledger');
    const id = q.get('id');
    const now = Date.now();
    const stub = env.LEDGER.get(env.LEDGER.idFromName(name));
    if (q.get('leased')) {
      // An isolate under leased admission: one call carrying a lease for n requests, their n
      // commits (group commit) and the lease's close, as host.js joins them (NUL-separated).
      const n = Number(q.get('leased'));
      const lease = 'lease_' + id;
      const ops = ['{"op":"lease","now_ms":' + now + ',"lease_id":"' + lease + '","record":' +
        record(id, 0).replace('"outcome":"ok"', '"outcome":"partial"') +
        ',"reserve":{"request_id":"' + id + '","now_ms":' + now + ',"amount_micros":120,"tokens":476,"requests":1,"budgets":' + budgets() +
        ',"requests_per_minute":[],"tokens_per_minute":[],"expires_ms":' + (now + 900000) + '},"want_requests":' + n +
        ',"usable_ms":2000,"grace_ms":900000}'];
      for (let i = 0; i < n; i++) {
        ops.push('{"op":"commit","now_ms":' + now + ',"record":' + record(id + '_' + i, 0) + ',"actual_micros":80,"actual_tokens":476,"lease":"' + lease + '"}');
      }
      ops.push('{"op":"close_lease","now_ms":' + now + ',"close":{"lease_id":"' + lease + '","admitted":' + n + '}}');
      const replies = await stub.apply(name, ops.join('\u0000'));
      if (!replies.startsWith('{"reply":"leased"')) throw new Error(replies.slice(0, 200));
      return new Response(replies.slice(0, 20));
    }
    const rec = record(id, 0).replace('"outcome":"ok"', '"outcome":"partial"');
    const admit = '{"op":"admit","now_ms":' + now + ',"expires_ms":' + (now + 900000) + ',"record":' + rec +
      ',"reserve":{"request_id":"req_' + id + '_0","now_ms":' + now + ',"amount_micros":120,"tokens":476,"budgets":' + budgets() +
      ',"requests_per_minute":[],"tokens_per_minute":[],"expires_ms":' + (now + 900000) + '}}';
    const commit = '{"op":"commit","now_ms":' + now + ',"record":' + record(id, 0) + ',"actual_micros":80,"actual_tokens":476}';
    if (q.get('pipelined')) {
      // As the gateway sends them: the admission through host.js (pipelined with the other
      // callers' admissions), the commit queued after the response to ride on a later call.
      const a = await ledgerCall(env, ctx, undefined, name, admit);
      if (!a.startsWith('{"reply":"admitted"')) throw new Error(a.slice(0, 200));
      const sending = ledgerCommit(env, undefined, name, commit, 5);
      if (sending) ctx.waitUntil(sending);
      return new Response(a.slice(0, 20));
    }
    const a = await stub.apply(name, admit);
    const c = await stub.apply(name, commit);
    return new Response(a.slice(0, 20) + ' ' + c.slice(0, 20));
  },
};`;

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => ok(port)); });
  });
}

/** Runs `work` under a sampling CPU profile of the 'asc' isolate (the objects) of process `p`. */
async function profiled(p, file, work) {
  const targets = await (await fetch(`http://127.0.0.1:${p.inspectorPort}/json`)).json();
  const target = targets.find((t) => t.webSocketDebuggerUrl.endsWith('/asc')) ?? targets[0];
  const { default: WS } = await import('ws');
  // Miniflare's inspector proxy wants an Origin it knows.
  const ws = new WS(target.webSocketDebuggerUrl, { headers: { origin: 'http://localhost' } });
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('inspector: no connection')); });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(String(m.data));
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  };
  const call = (method, params = {}) => new Promise((ok, fail) => {
    id += 1;
    pending.set(id, (msg) => (msg.error ? fail(new Error(`${method}: ${msg.error.message}`)) : ok(msg.result)));
    ws.send(JSON.stringify({ id, method, params }));
  });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  await call('Profiler.start');
  const out = await work();
  const { profile } = await call('Profiler.stop');
  ws.close();
  mkdirSync(join(ROOT, '.state/bench'), { recursive: true });
  writeFileSync(join(ROOT, '.state/bench', file), JSON.stringify(profile));
  log(`profile: .state/bench/${file}`);
  return out;
}

async function start(index) {
  const inspectorPort = PROFILE && index === 0 ? await freePort() : undefined;
  const state = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/asc-scale-') : mkdtempSync(join(tmpdir(), 'asc-scale-'));
  const signing = auditKeyPair('scale-1');
  const mf = new Miniflare(convertV4MiniflareOptions({
    cf: false,
    resourcePersistencePath: state,
    ...(inspectorPort ? { inspectorPort } : {}),
    workers: [
      {
        name: 'asc',
        modules: [
          { type: 'ESModule', path: join(OBJECTS_BUILD, 'index.js') },
          { type: 'CompiledWasm', path: join(OBJECTS_BUILD, 'index_bg.wasm') },
        ],
        modulesRoot: OBJECTS_BUILD,
        compatibilityDate: COMPAT_DATE,
        compatibilityFlags: COMPAT_FLAGS,
        bindings: {
          ASC_REGION: 'local', AUDIT_FORWARD_MS: '200', AUDIT_BATCH_MAX_RECORDS: '500',
          AUDIT_BATCH_MAX_AGE_MS: '5000', AUDIT_HEARTBEAT_MS: '60000', AUDIT_SHARDS: '1',
          KEY_HASH_SECRET: 'c'.repeat(64), AUDIT_SIGNING_KEYS: JSON.stringify(signing.secret),
        },
        kvNamespaces: { ASC_CONFIG: 'asc-config-scale' },
        r2Buckets: { AUDIT_BUCKET: 'asc-audit-scale' },
        durableObjects: {
          TENANT_LEDGERS: { className: 'TenantLedger', useSQLite: true },
          AUDIT_SEQUENCER: { className: 'AuditSequencer', useSQLite: true },
          CIRCUIT_BOARDS: { className: 'CircuitBoardObject', useSQLite: true },
        },
      },
      {
        name: 'driver',
        // The driver imports host.js itself, to send ledger operations as the gateway does.
        modules: [
          { type: 'ESModule', path: join(ROOT, 'driver.mjs'), contents: DRIVER },
          { type: 'ESModule', path: join(ROOT, 'edge/cloudflare/js/host.js') },
        ],
        modulesRoot: ROOT,
        compatibilityDate: COMPAT_DATE,
        compatibilityFlags: COMPAT_FLAGS,
        durableObjects: {
          SEQ: { className: 'AuditSequencer', scriptName: 'asc', useSQLite: true },
          LEDGER: { className: 'TenantLedger', scriptName: 'asc', useSQLite: true },
          TENANT_LEDGERS: { className: 'TenantLedger', scriptName: 'asc', useSQLite: true },
        },
        unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
      },
    ],
  }));
  await mf.ready;
  const url = String(await mf.unsafeGetDirectURL('driver')).replace(/\/$/, '');
  log(`workerd ${index} ready`);
  return { mf, url, state, inspectorPort };
}

/** `callers` loops for SECONDS, each sending requests `make(caller, n)` builds; counts units. */
async function load(callers, make) {
  const deadline = performance.now() + SECONDS * 1000;
  let units = 0;
  let calls = 0;
  let failures = 0;
  let firstFailure = '';
  const started = performance.now();
  await Promise.all(Array.from({ length: callers }, async (_, c) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const { url, count } = make(c, n);
      try {
        const r = await fetch(url, { method: 'POST' });
        const text = await r.text();
        if (r.status === 200) { units += count; calls += 1; } else { failures += 1; firstFailure ||= text.slice(0, 200); }
      } catch (e) { failures += 1; firstFailure ||= e.message; }
    }
  }));
  const s = (performance.now() - started) / 1000;
  return { perSecond: units / s, callsPerSecond: calls / s, failures, firstFailure };
}

const f0 = (x) => Math.round(x).toLocaleString('en-US');
const processes = [];
try {
  const maxProcs = ONLY_LEDGER ? 1 : Math.min(2, CORES);
  for (let i = 0; i < maxProcs; i++) processes.push(await start(i));
  const seq = processes[0];
  if (!ONLY_LEDGER) await streams(maxProcs);
  await ledgers(seq);
} finally {
  for (const p of processes) {
    await p.mf.dispose().catch(() => {});
    rmSync(p.state, { recursive: true, force: true });
  }
}

async function streams(maxProcs) {

  console.log('### One audit stream: records/s by batch size');
  console.log();
  console.log(`One sequencer object, ${CALLERS} concurrent callers (each a ledger forwarding its batches), ${SECONDS} s per row.`);
  console.log();
  console.log('| records per call | calls/s | records/s | failures |');
  console.log('|---|---|---|---|');
  const seq = processes[0];
  for (const batch of [1, 16, 128]) {
    const r = await load(CALLERS, (c, n) => ({
      url: `${seq.url}/?what=append&stream=audit-local-b${batch}&source=l${c}&first=${n * batch + 1}&n=${batch}`,
      count: batch,
    }));
    console.log(`| ${batch} | ${f0(r.callsPerSecond)} | ${f0(r.perSecond)} | ${r.failures}${r.firstFailure ? ` (${r.firstFailure})` : ''} |`);
  }

  console.log();
  console.log('### Audited records/s through one region by number of shards');
  console.log();
  console.log(`${CALLERS * 2} ledgers forwarding batches of 32 records, each to the shard its id hashes to; shards spread over ` +
    `min(N, ${maxProcs}) workerd processes (this machine has ${CORES} cores).`);
  console.log();
  console.log('| shards (N) | workerd processes | records/s | records/s per shard | failures |');
  console.log('|---|---|---|---|---|');
  const BATCH = 32;
  for (const shards of [1, 4, 16]) {
    const procs = Math.min(shards, maxProcs);
    const r = await load(CALLERS * 2, (c, n) => {
      const k = c % shards;
      const p = processes[k % procs];
      return {
        url: `${p.url}/?what=append&stream=audit-local-${k}-of-${shards}&source=s${shards}l${c}&first=${n * BATCH + 1}&n=${BATCH}`,
        count: BATCH,
      };
    });
    console.log(`| ${shards} | ${procs} | ${f0(r.perSecond)} | ${f0(r.perSecond / shards)} | ${r.failures}${r.firstFailure ? ` (${r.firstFailure})` : ''} |`);
  }

}

async function ledgers(seq) {
  console.log();
  console.log('### One tenant ledger object: admission + commit');
  console.log();
  const writeAhead = () => load(CALLERS, (c, n) => ({ url: `${seq.url}/?ledger=acme&id=c${c}n${n}`, count: 1 }));
  const led = PROFILE ? await profiled(seq, 'ledger.cpuprofile', writeAhead) : await writeAhead();
  const pipelined = await load(CALLERS, (c, n) => ({ url: `${seq.url}/?ledger=acme-pipelined&id=c${c}n${n}&pipelined=1`, count: 1 }));
  console.log('| sent | requests/s (admit + commit each) | ledger ops/s | failures |');
  console.log('|---|---|---|---|');
  console.log(`| one call per operation | ${f0(led.perSecond)} | ${f0(led.perSecond * 2)} | ${led.failures}${led.firstFailure ? ` (${led.firstFailure})` : ''} |`);
  console.log(`| as host.js sends them (admissions pipelined, commits riding on later calls) | ${f0(pipelined.perSecond)} | ${f0(pipelined.perSecond * 2)} | ${pipelined.failures}${pipelined.firstFailure ? ` (${pipelined.firstFailure})` : ''} |`);
  console.log();
  console.log(`(${CALLERS} concurrent callers, ${SECONDS} s; each request writes its opening record and reservation, ` +
    'then its settle and final record; the alarm forwards the outbox to the audit stream every 200 ms. ' +
    'The second row is one isolate sending its callers\' operations through host.js: while a call is in flight, ' +
    'the admissions that arrive wait and go together in the next call.)');
  console.log();
  console.log('### One tenant ledger object: leased admission');
  console.log();
  const LEASED = 16;
  const leased = await load(CALLERS, (c, n) => ({ url: `${seq.url}/?ledger=acme-leased&id=c${c}n${n}&leased=${LEASED}`, count: LEASED }));
  console.log('| requests/s | ledger calls/s | failures |');
  console.log('|---|---|---|');
  console.log(`| ${f0(leased.perSecond)} | ${f0(leased.perSecond / LEASED)} | ${leased.failures}${leased.firstFailure ? ` (${leased.firstFailure})` : ''} |`);
  console.log();
  console.log(`(${CALLERS} concurrent callers, ${SECONDS} s; each call is one isolate's group: a lease for ${LEASED} requests, ` +
    `their ${LEASED} commits and the lease's close, as host.js sends them; a real isolate takes a lease per 64 requests ` +
    'and sends commits as they come, in groups of up to 64 within 25 ms.)');
}
