// Gateway overhead, side by side in one run, against one fast upstream with one request body:
//   direct to the upstream (the network-hop floor); a pass-through JS Worker and ASC's Worker on the
//   same workerd (the platform floor vs ASC with a realistic tenant); the Portkey gateway and the
//   LiteLLM proxy (peers, installed by scripts/setup-bench) pointed at the same upstream.
// Per target: latency percentiles at concurrency 1, throughput and p99 at BENCH_CONCURRENCY, the CPU
// time its process(es) spent per request, and streaming time-to-first-byte at concurrency 1.
// Load: wrk (one thread) for the non-streaming runs, a keep-alive Node client for the streams.
// Everything listens and is loaded on 127.0.0.1; every run is bounded in time (BENCH_SECONDS).
// Prints a markdown section on stdout; raw numbers go to .state/bench/gateways.json.
//   node tests/bench/gateways.mjs     (scripts/bench runs it; BENCH_TARGETS=direct,asc to narrow)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';
import { ROOT, auditKeyPair } from '../e2e/harness.mjs';
import { SPIN_BIN, startSpin } from '../e2e/spin.mjs';
import { cleanupDirs, cpuMs, freePort, launch, log, procTree, request, sleep } from './lib/proc.mjs';
import { streams, useBodies, wrk } from './lib/load.mjs';
import { profileAsc } from './lib/profile.mjs';
import { report } from './lib/report.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const CONC = Number(process.env.BENCH_CONCURRENCY ?? 16);
// BENCH_AB_ROUNDS=n (3 when ASC_BASELINE_BUILD is set, 0 turns it off): n rounds of the baseline
// and the current build interleaved A B B A, BENCH_AB_SECONDS (3) each at c=CONC, per tenant: the
// median of the rounds' ratios, which the order effect of a single A B A cannot give.
const AB_ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? (process.env.ASC_BASELINE_BUILD ? 3 : 0));
const AB_SECONDS = Number(process.env.BENCH_AB_SECONDS ?? 3);
const STREAM_MAX = Number(process.env.BENCH_STREAM_REQUESTS ?? 300);
const PHASES = (process.env.BENCH_PHASES ?? '1') === '1';
// BENCH_COLD_TRIALS (5; 0 turns it off): fresh workerd runtimes, each started, asked a few first
// requests and stopped: what a new isolate (and a tenant new to it) costs before it is warm.
const COLD_TRIALS = Number(process.env.BENCH_COLD_TRIALS ?? 5);
// BENCH_PROFILE: a V8 CPU profile of ASC's request isolate (its Durable Objects run in the control
// plane's Worker: not in this profile; a build from before the split had them in it) under concurrency-1
// load, through the inspector, listing where its time goes by function (the wasm keeps its name
// section). 'auto' (default): when ASC's added p50 is over 2x the pass-through's; '1': always; '0': never
// (and no inspector port at all). It runs after all measurements of the workerd targets.
const PROFILE_MODE = process.env.BENCH_PROFILE ?? 'auto';
const PROFILE = PROFILE_MODE !== '0';
const ONLY = process.env.BENCH_TARGETS ? process.env.BENCH_TARGETS.split(',') : null;
const BUILD = process.env.ASC_BUILD_DIR ?? join(ROOT, 'edge/cloudflare/build');
const BASELINE = process.env.ASC_BASELINE_BUILD;
const PEERS = join(ROOT, 'tests/bench/peers');
const LITELLM = join(ROOT, '.state/bench/litellm-venv');
const UPSTREAM_KEY = 'sk-bench-upstream-key';
const COMPAT_DATE = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date = "(.*)"/m)[1];
// The Worker's flags as wrangler.toml sets them (nodejs_compat: node:crypto's digest).
const COMPAT_FLAGS = JSON.parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_flags = (\[.*\])/m)?.[1] ?? '[]');

const dir = mkdtempSync(join(tmpdir(), 'asc-bench-'));
cleanupDirs.push(dir);

// One request body for every target: a realistic short chat request, clean of PII (so guardrails
// scan it and let it through). The streaming body is the same plus "stream": true.
// BENCH_PROMPT_KB=n adds ~n KB of retrieved context to the user message (a RAG-sized prompt).
const PROMPT_KB = Number(process.env.BENCH_PROMPT_KB ?? 0);
const CONTEXT_LINE = 'Runbook excerpt: when the 99th percentile latency rises while the median holds, compare ' +
  'garbage collection pauses, connection pool waits and slow downstream calls in the traces of the same minute. ';
const context = PROMPT_KB > 0 ? `Context:\n${CONTEXT_LINE.repeat(Math.ceil((PROMPT_KB * 1024) / CONTEXT_LINE.length))}\n\n` : '';
const messages = [
  { role: 'system', content: 'You are a concise assistant for an internal engineering team. Answer in two sentences at most.' },
  { role: 'user', content: context + 'Our service answers in about 40 ms at the median but the 99th percentile is close to 900 ms. ' +
    'Which three things should we look at first, and how would we tell them apart from each other?' },
];
const BODY = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 64, temperature: 0.2, messages });
const STREAM_BODY = JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 64, temperature: 0.2, messages, stream: true });
const BODY_FILE = join(dir, 'body.json');
writeFileSync(BODY_FILE, BODY);
useBodies(BODY_FILE, STREAM_BODY);


// ---- load ----
/** Checks a target answers the body correctly, then measures it. */
async function measure(t) {
  const res = { name: t.name, note: t.note ?? '' };
  const check = await request(t.url, { headers: t.headers, body: BODY });
  if (check.status !== 200 || !check.text.includes('Benchmarks compare')) {
    throw new Error(`check request: HTTP ${check.status}: ${check.text.slice(0, 200).replace(/\s+/g, ' ')}`);
  }
  log(`${t.name}: warm-up ${WARMUP} s`);
  await wrk(t.url, t.headers, CONC, WARMUP);
  log(`${t.name}: concurrency 1, ${SECONDS} s`);
  res.c1 = await wrk(t.url, t.headers, 1, SECONDS);
  log(`${t.name}: concurrency ${CONC}, ${SECONDS} s`);
  const pids = t.pids ? procTree(t.pids()) : [];
  const cpu0 = cpuMs(pids);
  res.cN = await wrk(t.url, t.headers, CONC, SECONDS);
  res.cpuPerReq = pids.length ? (cpuMs(pids) - cpu0) / res.cN.requests : NaN;
  log(`${t.name}: streams, ${SECONDS} s at most`);
  res.stream = await streams(t.url, t.headers, SECONDS, STREAM_MAX);
  if (res.stream.failures && t.child) {
    // The peer's own words about the failure, if it logged any.
    const why = t.child.out.join('').split('\n').find((l) => /\b\w*Error\b/.test(l));
    if (why) res.stream.firstFailure += `; its log: ${why.trim().slice(0, 160)}`;
  }
  return res;
}

// ---- targets ----
const results = [];
const unavailable = [];
const versions = {};
const phases = [];
const phasesNote = [];
// A collector that accepts every OTLP export and counts it (for the export-cost row).
let otlpSink;
async function otlpSinkUrl() {
  if (!otlpSink) {
    otlpSink = { posts: 0, bytes: 0 };
    otlpSink.server = http.createServer((req, res) => {
      req.on('data', (c) => { otlpSink.bytes += c.length; });
      req.on('end', () => { otlpSink.posts += 1; res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(); });
    });
    await new Promise((r) => otlpSink.server.listen(0, '127.0.0.1', r));
    otlpSink.server.unref();
  }
  return `http://127.0.0.1:${otlpSink.server.address().port}`;
}
const want = (name) => !ONLY || ONLY.includes(name);

async function runTarget(name, setup) {
  if (!want(name)) return;
  let t;
  try {
    t = await setup();
    const res = await measure(t);
    if (t.after) await t.after(res).catch((e) => { res.note += `; feature check failed: ${e.message}`; });
    results.push(res);
  } catch (e) {
    log(`${name}: unavailable: ${e.message}`);
    unavailable.push({ name, why: e.message.split('\n')[0].slice(0, 300) });
  } finally {
    if (t?.stop) await t.stop();
  }
}

log('starting the upstream');
const upstream = await launch('upstream', process.execPath, [join(ROOT, 'tests/bench/upstream.mjs'), '0'], {
  ready: (out) => /listening \d+/.test(out),
});
const UPSTREAM = `http://127.0.0.1:${upstream.out.join('').match(/listening (\d+)/)[1]}`;
const upstreamPid = upstream.proc.pid;

await runTarget('direct', async () => ({
  name: 'direct to the upstream', url: `${UPSTREAM}/v1/chat/completions`,
  headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: () => upstreamPid,
  note: 'the network-hop floor (Node canned responder)',
}));

// The same pass-through Worker on bare workerd (a hand-written config, nothing else in the process):
// a reference for what Miniflare's outbound hop (below) adds to the pass-through floor.
const PASSTHROUGH = `export default {
  // Fetch and return, nothing else.
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.UPSTREAM + url.pathname + url.search, request);
  },
};`;
await runTarget('bareworkerd', async () => {
  const port = await freePort();
  writeFileSync(join(dir, 'passthrough.js'), PASSTHROUGH);
  writeFileSync(join(dir, 'workerd.capnp'), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "worker.js", esModule = embed "passthrough.js")],
      compatibilityDate = "${COMPAT_DATE}",
      bindings = [(name = "UPSTREAM", text = "${UPSTREAM}")],
    )),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
`);
  const bin = join(ROOT, 'node_modules/.bin/workerd');
  const child = await launch('workerd', bin, ['serve', join(dir, 'workerd.capnp')], {
    ready: async () => (await request(`http://127.0.0.1:${port}/healthz`, { method: 'GET' })).status === 200,
  });
  return {
    name: 'pass-through Worker (bare workerd)', url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, child, pids: () => child.proc.pid, stop: () => child.stop(),
    note: 'the same Worker on workerd with a minimal config: no Miniflare outbound hop',
  };
});

// ASC and the pass-through Worker share one workerd, started by Miniflare (the one wrangler bundles).
// Each Worker gets its own direct socket: requests go straight from the socket to the Worker, with no
// Miniflare entry Worker and no Node proxy in the path. KV, Durable Objects (SQLite) and R2 are
// Miniflare's local implementations inside the same workerd process, persisted to a temp folder.
let mf;
let workerd;
let storageNote = 'n/a';
let inspectorPort;
let profileRows = [];
let coldRows = [];
let coldStart = null; // set below when ASC is measured: () => rows
const tenants = {};
const keys = {};
// What a Spin deployment of ASC needs beyond the tenants and keys (its secrets), set below.
const spinSeed = { kv: [], secrets: {} };
if (['passthrough', 'asc', 'spin'].some(want)) {
  const ascCli = process.env.ASC_CLI ?? join(ROOT, 'target/debug/asc');
  if (want('asc') && !existsSync(ascCli)) throw new Error('target/debug/asc is missing: cargo build -p asc-cli');
  const secret = 'b'.repeat(64);
  const model = { provider: 'openai', endpoint: `${UPSTREAM}/v1`, credential: 'OPENAI_API_KEY' };
  const base = (id, extra = {}) => ({ schema_version: 1, tenant_id: id, residency: 'local', models: { 'gpt-4o-mini': model }, ...extra });
  const budgets = [{ id: 'monthly', applies_to: 'tenant', limit_usd_micros: 1e15, period: 'monthly', mode: 'hard', alert_at_percent: [80] }];
  const guardrails = { detectors: { email: { mode: 'redact' }, credit_card: { mode: 'block' } } };
  // The headline tenant: API key auth, routing, a hard monthly budget (reserve + settle in the
  // ledger Durable Object per request), guardrails on requests and responses, audit (always on).
  tenants.bench = base('bench', { budgets, guardrails });
  // For the phase breakdown: the same tenant with features taken away.
  tenants.bare = base('bare');
  tenants.guardonly = base('guardonly', { guardrails });
  tenants.budgetonly = base('budgetonly', { budgets });
  // The headline tenant with the response cache on (the bench body samples at 0.2, hence
  // `nondeterministic`): repeats are hits; `Cache-Control: no-cache` forces misses.
  tenants.cached = base('cached', { budgets, guardrails, cache: { nondeterministic: true } });
  // The headline tenant admitted under leases: one ledger call per lease, not per request.
  tenants.leased = base('leased', { budgets, guardrails, limits: { admission: 'leased' } });
  const signing = auditKeyPair('bench-1');
  const kv = [];
  for (const id of want('asc') || want('spin') ? Object.keys(tenants) : []) {
    const out = execFileSync(ascCli, ['key', 'new', '--tenant', id, '--scopes', 'chat,models,usage'], {
      env: { ...process.env, KEY_HASH_SECRET: secret }, encoding: 'utf8',
    });
    const field = (n) => out.match(new RegExp(`^${n}=(.*)$`, 'm'))[1];
    keys[id] = field('ASC_API_KEY');
    kv.push([`tenant:${id}`, JSON.stringify(tenants[id])], [field('KV_NAME'), field('KV_VALUE')]);
  }
  spinSeed.kv = kv.map(([key, value]) => ({ key, value }));
  spinSeed.secrets = { KEY_HASH_SECRET: secret, OPENAI_API_KEY: UPSTREAM_KEY, AUDIT_SIGNING_KEYS: JSON.stringify(signing.secret) };
  const wranglerVars = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').split('\n[env.')[0].match(/\[vars\]([\s\S]*?)\n\[/)[1];
  const vars = Object.fromEntries([...wranglerVars.matchAll(/^(\w+) = "(.*)"/gm)].map((m) => [m[1], m[2]]));
  const doFloor = `import { DurableObject } from 'cloudflare:workers';
export class Floor extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)');
  }
  async fetch(request) {
    this.ctx.storage.sql.exec('INSERT INTO t (v) VALUES (?)', await request.text());
    return Response.json({ ok: true });
  }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get('do') ?? 0);
    for (let i = 0; i < n; i++) {
      const stub = env.FLOOR.get(env.FLOOR.idFromName(i === n - 1 ? 'audit' : 'ledger'));
      await (await stub.fetch('http://do/', { method: 'POST', body: '{"record":"' + 'x'.repeat(300) + '"}' })).json();
    }
    if (url.searchParams.has('mimic')) return mimic(request, env, url);
    return fetch(env.UPSTREAM + url.pathname, request);
  },
};
// The platform calls a gateway that inspects both bodies cannot avoid, in plain JS: read the request
// body, parse and re-encode it, call the upstream with fresh headers under a deadline, read and
// parse the reply, answer with a new Response. No auth, policy, record or durable call.
async function mimic(request, env, url) {
  const body = JSON.parse(new TextDecoder().decode(await request.arrayBuffer()));
  const abort = new AbortController();
  const deadline = setTimeout(() => abort.abort(), 60000);
  try {
    const reply = await fetch(env.UPSTREAM + url.pathname, {
      method: 'POST', signal: abort.signal, body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', authorization: request.headers.get('authorization') },
    });
    const bytes = await reply.arrayBuffer();
    const usage = JSON.parse(new TextDecoder().decode(bytes)).usage;
    return new Response(bytes, { status: reply.status, headers: { 'content-type': 'application/json', 'x-tokens': String(usage?.total_tokens ?? 0) } });
  } finally {
    clearTimeout(deadline);
  }
}`;
  // Durable Object, KV and R2 state on tmpfs when there is one: the comparison is about compute, not
  // about this machine's disk (production DO writes wait for replication, which no local run has).
  const stateDir = process.env.BENCH_STATE_DIR
    ?? (existsSync('/dev/shm') ? mkdtempSync('/dev/shm/asc-bench-') : join(dir, 'state'));
  storageNote = stateDir.startsWith('/dev/shm') ? 'on tmpfs (/dev/shm)' : `in ${stateDir}`;
  if (!process.env.BENCH_STATE_DIR) cleanupDirs.push(stateDir);
  inspectorPort = PROFILE ? await freePort() : undefined;
  // One ASC deployment on the shared workerd, as its Workers: `build`'s request plane (its own
  // socket) and, from `build/control/`, the control plane that defines the Durable Objects (a
  // build from before the split is one Worker with both). Each gets the deployment's vars plus
  // `extra`; its own buckets and objects; the shared config KV.
  const ascWorkers = async (name, build, extra, { AUDIT_BUCKET, ...requestBuckets }, inspect = false) => {
    const worker = (dir, workerName) => ({
      name: workerName,
      modules: [
        { type: 'ESModule', path: join(dir, 'index.js') },
        { type: 'CompiledWasm', path: join(dir, 'index_bg.wasm') },
      ],
      modulesRoot: dir,
      compatibilityDate: COMPAT_DATE,
      compatibilityFlags: COMPAT_FLAGS,
      bindings: {
        ...vars,
        ...extra,
        KEY_HASH_SECRET: secret,
        OPENAI_API_KEY: UPSTREAM_KEY,
        AUDIT_SIGNING_KEYS: JSON.stringify(signing.secret),
      },
      kvNamespaces: { ASC_CONFIG: 'asc-config-local' },
      ...(inspect ? { unsafeInspectorProxy: true } : {}),
    });
    const objects = (scriptName) => Object.fromEntries([
      ['TENANT_LEDGERS', 'TenantLedger'], ['AUDIT_SEQUENCER', 'AuditSequencer'],
      ['CIRCUIT_BOARDS', 'CircuitBoardObject'], ['TENANT_ADMIN', 'TenantAdmin'],
    ].map(([binding, className]) => [binding, { className, useSQLite: true, ...(scriptName ? { scriptName } : {}) }]));
    const socket = [{ host: '127.0.0.1', port: await freePort() }];
    if (!existsSync(join(build, 'control', 'index.js'))) {
      const { TENANT_ADMIN, ...durableObjects } = objects();
      return [{ ...worker(build, name), r2Buckets: { AUDIT_BUCKET, ...requestBuckets }, durableObjects, unsafeDirectSockets: socket }];
    }
    const control = `${name}-control`;
    const { TENANT_LEDGERS, CIRCUIT_BOARDS } = objects(control);
    return [
      { ...worker(build, name), r2Buckets: requestBuckets, durableObjects: { TENANT_LEDGERS, CIRCUIT_BOARDS },
        serviceBindings: { CONTROL: control }, unsafeDirectSockets: socket },
      { ...worker(join(build, 'control'), control), r2Buckets: { AUDIT_BUCKET }, durableObjects: objects() },
    ];
  };
  mf = new Miniflare(convertV4MiniflareOptions({
    cf: false,
    ...(PROFILE ? { inspectorPort } : {}),
    resourcePersistencePath: stateDir,
    workers: [
      ...(await ascWorkers('asc', BUILD, {}, { AUDIT_BUCKET: 'asc-audit-local', ASC_CACHE: 'asc-cache-local' }, PROFILE)),
      // ASC_BASELINE_BUILD: another build of ASC (e.g. the commit before a change) on the same
      // workerd, same tenants and keys, so before and after are compared in one run.
      ...(BASELINE && want('asc') ? await ascWorkers('ascbase', BASELINE, {}, { AUDIT_BUCKET: 'asc-audit-base', ASC_CACHE: 'asc-cache-base' }) : []),
      // The same build and tenants with the OpenTelemetry export on, to a local collector that
      // accepts everything (otlpSink): what exporting execution records costs.
      ...(want('asc') ? await ascWorkers('ascotlp', BUILD, { OTLP_ENDPOINT: await otlpSinkUrl() },
        { AUDIT_BUCKET: 'asc-audit-otlp', ASC_CACHE: 'asc-cache-otlp' }) : []),
      {
        // For the phase breakdown: the pass-through plus N sequential Durable Object calls, each one
        // SQLite insert (ASC's budgeted non-streamed chat makes 3: ledger reserve, ledger settle,
        // audit append). This is the floor of a design that does N durable round trips per request.
        name: 'dofloor',
        modules: true,
        script: doFloor,
        compatibilityDate: COMPAT_DATE,
        bindings: { UPSTREAM },
        durableObjects: { FLOOR: { className: 'Floor', useSQLite: true } },
        unsafeDirectSockets: [{ host: '127.0.0.1', port: await freePort() }],
      },
      {
        name: 'passthrough',
        modules: true,
        script: PASSTHROUGH,
        compatibilityDate: COMPAT_DATE,
        bindings: { UPSTREAM },
        unsafeDirectSockets: [{ host: '127.0.0.1', port: await freePort() }],
      },
    ],
  }));
  await mf.ready;
  const kvns = await mf.getKVNamespace('ASC_CONFIG', 'asc');
  for (const [k, v] of kv) await kvns.put(k, v);
  // Cold start: a fresh runtime (its own state folder) per trial, so nothing is compiled, cached
  // or open yet; each step below is one request, timed from the client. The runtime's start to
  // ready includes compiling and instantiating every Worker's modules.
  coldStart = async () => {
    const steps = new Map(); // step -> [ms per trial]
    const note = (step, ms) => steps.set(step, [...(steps.get(step) ?? []), ms]);
    const timed = async (step, url, key, method = 'POST') => {
      const t0 = performance.now();
      const r = await request(url, { method, headers: key ? { authorization: `Bearer ${key}` } : {}, body: method === 'POST' ? BODY : undefined });
      if (r.status !== 200) throw new Error(`${step}: HTTP ${r.status}: ${r.text.slice(0, 160)}`);
      note(step, performance.now() - t0);
    };
    const fresh = async (label, workers) => {
      const state = mkdtempSync(existsSync('/dev/shm') ? '/dev/shm/asc-cold-' : join(dir, 'cold-'));
      const t0 = performance.now();
      const m = new Miniflare(convertV4MiniflareOptions({ cf: false, resourcePersistencePath: state, workers }));
      try {
        await m.ready;
        note(`${label}: runtime started until ready (workerd process, modules compiled and instantiated)`, performance.now() - t0);
        return { m, url: String(await m.unsafeGetDirectURL('cold')).replace(/\/$/, ''), state };
      } catch (e) {
        await m.dispose();
        rmSync(state, { recursive: true, force: true });
        throw e;
      }
    };
    for (let trial = 0; trial < COLD_TRIALS; trial++) {
      const passWorkers = [{ name: 'cold', modules: true, script: PASSTHROUGH, compatibilityDate: COMPAT_DATE,
        bindings: { UPSTREAM }, unsafeDirectSockets: [{ host: '127.0.0.1', port: await freePort() }] }];
      for (const [label, workers] of [
        ['pass-through Worker', passWorkers],
        ['ASC (request and control planes)', await ascWorkers('cold', BUILD, {}, { AUDIT_BUCKET: 'asc-audit-cold', ASC_CACHE: 'asc-cache-cold' })],
      ]) {
        const { m, url, state } = await fresh(label, workers);
        try {
          if (label.startsWith('pass')) {
            await timed('pass-through Worker: first POST chat', `${url}/v1/chat/completions`, UPSTREAM_KEY);
            await timed('pass-through Worker: second POST chat', `${url}/v1/chat/completions`, UPSTREAM_KEY);
            continue;
          }
          const ns = await m.getKVNamespace('ASC_CONFIG', 'cold');
          for (const [k, v] of kv) await ns.put(k, v);
          await timed('ASC: first request of the isolate (GET /healthz: no tenant, no upstream)', `${url}/healthz`, null, 'GET');
          await timed('ASC: first chat of a tenant (config and key read from KV and validated, guardrails compiled, its ledger object started, admission)', `${url}/v1/chat/completions`, keys.bench);
          await timed('ASC: the same tenant\'s second chat', `${url}/v1/chat/completions`, keys.bench);
          await timed('ASC: first chat of a second tenant, leased (the same, with a lease call instead of an admission)', `${url}/v1/chat/completions`, keys.leased);
          await timed('ASC: the leased tenant\'s second chat', `${url}/v1/chat/completions`, keys.leased);
        } finally {
          await m.dispose();
          rmSync(state, { recursive: true, force: true });
        }
      }
    }
    return [...steps].map(([step, ms]) => {
      const sorted = [...ms].sort((a, b) => a - b);
      return { step, median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted[sorted.length - 1], n: ms.length };
    });
  };
  workerd = procTree(process.pid).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd'; } catch { return false; }
  });
  versions.workerd = JSON.parse(readFileSync(join(ROOT, 'node_modules/workerd/package.json'), 'utf8')).version;
  versions.miniflare = JSON.parse(readFileSync(join(ROOT, 'node_modules/miniflare/package.json'), 'utf8')).version;
}
const directUrl = async (w) => String(await mf.unsafeGetDirectURL(w)).replace(/\/$/, '');

// BENCH_HOLD=1: start the runtime and the upstream, print the targets' URLs, keys and workerd's
// pids, and wait (until interrupted) instead of measuring: for perf, wrk or a profiler by hand.
if (process.env.BENCH_HOLD === '1' && mf) {
  const urls = {};
  for (const w of ['asc', 'passthrough', 'dofloor', ...(BASELINE ? ['ascbase'] : [])]) urls[w] = await directUrl(w);
  console.log(JSON.stringify({ urls, keys, upstreamKey: UPSTREAM_KEY, workerd, body: BODY }, null, 1));
  // The signal handlers above end the process (and with it the runtime and the upstream).
  await new Promise(() => setInterval(() => {}, 1 << 30));
}

await runTarget('passthrough', async () => ({
  name: 'pass-through Worker (workerd)', url: `${await directUrl('passthrough')}/v1/chat/completions`,
  headers: { authorization: `Bearer ${UPSTREAM_KEY}` }, pids: () => workerd,
  note: 'JS `fetch(request)` and return, on the same workerd as ASC: the platform floor ASC is compared with. ' +
    'Both go out through Miniflare\'s outbound Worker (an in-process hop that strips CF-Connecting-IP)',
}));

// Proof that the headline tenant's features are on: a card number is refused (guardrail), and after
// the run the ledger reports spend (reserve + settle happened).
async function ascFeatureChecks(base) {
  const auth = { authorization: `Bearer ${keys.bench}` };
  const card = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'my card is 4111 1111 1111 1111' }] });
  const blocked = await request(`${base}/v1/chat/completions`, { headers: auth, body: card });
  const usage = await request(`${base}/v1/usage`, { method: 'GET', headers: auth });
  const spent = usage.text.match(/"spent[a-z_]*"\s*:\s*(\d+)/);
  return `checked in this run: a card number got HTTP ${blocked.status} ` +
    `${(blocked.text.match(/"code"\s*:\s*"([^"]+)"/) ?? [])[1] ?? ''}, and GET /v1/usage reported ` +
    `${spent ? `${spent[0].replace(/"/g, '').replace(':', ' = ')} after the run` : `HTTP ${usage.status}`}`;
}
// The baseline build's rows run before the current build's and again after them (A B A): rows
// later in a run come out slower on this machine (the process's heap and the objects' state grow),
// so the current build is compared with both, not with an earlier row alone.
async function baselineRows(when) {
  if (!(BASELINE && want('asc'))) return;
  const label = process.env.ASC_BASELINE_LABEL ?? BASELINE;
  await runTarget('asc', async () => ({
    name: `ASC Worker, baseline build (${label})${when}`,
    url: `${await directUrl('ascbase')}/v1/chat/completions`,
    headers: { authorization: `Bearer ${keys.bench}` }, pids: () => workerd,
    note: 'the same tenant through another build of ASC (ASC_BASELINE_BUILD), on the same workerd, for before/after in one run',
  }));
  await runTarget('asc', async () => ({
    name: `ASC Worker, leased admission, baseline build (${label})${when}`,
    url: `${await directUrl('ascbase')}/v1/chat/completions`,
    headers: { authorization: `Bearer ${keys.leased}` }, pids: () => workerd,
    note: 'the leased tenant through the baseline build, same workerd',
  }));
}
await baselineRows('');
await runTarget('asc', async () => ({
  name: 'ASC Worker (workerd)', url: `${await directUrl('asc')}/v1/chat/completions`,
  headers: { authorization: `Bearer ${keys.bench}` }, pids: () => workerd,
  after: async (res) => { res.note += `; ${await ascFeatureChecks(await directUrl('asc'))}`; },
  note: 'on the same workerd as the row above, its own socket; key auth, routing, a hard monthly budget ' +
    '(admission with its reservation before the upstream call, commit after the response, in the tenant ledger DO), ' +
    'email redaction + card blocking on requests and responses, audit (forwarded from the ledger to the region\'s ' +
    `sequencer shards, signed batches to R2); DO, KV and R2 state ${storageNote}`,
}));
await runTarget('asc', async () => ({
  name: 'ASC Worker, leased admission (workerd)', url: `${await directUrl('asc')}/v1/chat/completions`,
  headers: { authorization: `Bearer ${keys.leased}` }, pids: () => workerd,
  note: 'the same tenant and Worker with `limits.admission = "leased"`: the isolate reserves budget for up to 64 ' +
    'requests in one ledger call and admits them locally; their records and charges reach the ledger after the ' +
    'responses (group commit), the lease is closed and reconciled after its 2 s window',
}));
await baselineRows(', again after the rows above');

const abRows = [];
if (AB_ROUNDS > 0 && BASELINE && want('asc') && mf) {
  const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
  const builds = { a: await directUrl('ascbase'), b: await directUrl('asc') };
  // BENCH_AB_TENANTS=leased (or bench) runs the A/B for one tenant only: more rounds in the time.
  for (const tenant of (process.env.BENCH_AB_TENANTS ?? 'bench,leased').split(',')) {
    const headers = { authorization: `Bearer ${keys[tenant]}` };
    const window = async (which) => {
      const url = `${builds[which]}/v1/chat/completions`;
      await wrk(url, headers, CONC, 1);
      const cpu0 = cpuMs(workerd);
      const r = await wrk(url, headers, CONC, AB_SECONDS);
      const cpu = (cpuMs(workerd) - cpu0) / r.requests;
      // The added-p50 target is at c=1, where a request pays every turn of its own isolate.
      const one = await wrk(url, headers, 1, AB_SECONDS);
      return { rps: r.rps, cpu, p50: one.p50, errors: r.non2xx + r.socketErrors + one.non2xx + one.socketErrors };
    };
    const rounds = [];
    for (let i = 0; i < AB_ROUNDS; i++) {
      const a1 = await window('a'); const b1 = await window('b'); const b2 = await window('b'); const a2 = await window('a');
      rounds.push({ a: [a1, a2], b: [b1, b2] });
      log(`A/B ${tenant} round ${i + 1}: A ${Math.round(a1.rps)}/${Math.round(a2.rps)} B ${Math.round(b1.rps)}/${Math.round(b2.rps)} req/s, ` +
        `c=1 p50 A ${a1.p50.toFixed(3)}/${a2.p50.toFixed(3)} B ${b1.p50.toFixed(3)}/${b2.p50.toFixed(3)} ms`);
    }
    const mean = (pair, k) => (pair[0][k] + pair[1][k]) / 2;
    const rps = rounds.map((r) => mean(r.b, 'rps') / mean(r.a, 'rps'));
    const cpu = rounds.map((r) => mean(r.b, 'cpu') / mean(r.a, 'cpu'));
    const p50 = rounds.map((r) => mean(r.b, 'p50') / mean(r.a, 'p50'));
    abRows.push({
      tenant: tenant === 'leased' ? 'leased admission' : 'write-ahead (default)',
      aRps: median(rounds.map((r) => mean(r.a, 'rps'))), bRps: median(rounds.map((r) => mean(r.b, 'rps'))),
      aCpu: median(rounds.map((r) => mean(r.a, 'cpu'))), bCpu: median(rounds.map((r) => mean(r.b, 'cpu'))),
      rps: median(rps), rpsMin: Math.min(...rps), rpsMax: Math.max(...rps),
      cpu: median(cpu), cpuMin: Math.min(...cpu), cpuMax: Math.max(...cpu),
      aP50: median(rounds.map((r) => mean(r.a, 'p50'))), bP50: median(rounds.map((r) => mean(r.b, 'p50'))),
      p50: median(p50), p50Min: Math.min(...p50), p50Max: Math.max(...p50),
      errors: rounds.reduce((n, r) => n + [...r.a, ...r.b].reduce((m, w) => m + w.errors, 0), 0),
    });
  }
}

if (PHASES && want('asc') && mf) {
  // Where ASC's time goes: the same request through tenants with features taken away, plus the
  // routes that skip the upstream (GET /v1/models appends an audit record; /healthz does nothing).
  const asc = await directUrl('asc');
  const pass = await directUrl('passthrough');
  const floor = await directUrl('dofloor');
  const cases = [
    ['pass-through Worker: POST chat', `${pass}/v1/chat/completions`, UPSTREAM_KEY, 'POST', {}, true],
    ['JS pass-through + 1 DO call (one SQLite insert)', `${floor}/v1/chat/completions?do=1`, UPSTREAM_KEY, 'POST'],
    ['JS gateway floor: request body read, parsed and re-encoded, upstream fetch under a deadline, reply read and parsed, new Response (no durable call)', `${floor}/v1/chat/completions?mimic=1`, UPSTREAM_KEY, 'POST', {}, true],
    ['JS pass-through + 3 DO calls in sequence (what ASC\'s budgeted chat made before the redesign)', `${floor}/v1/chat/completions?do=3`, UPSTREAM_KEY, 'POST'],
    ['ASC GET /healthz (no auth, no audit, no upstream)', `${asc}/healthz`, null, 'GET'],
    ['ASC GET /v1/models (auth + its record = 1 ledger call, no upstream)', `${asc}/v1/models`, keys.bench, 'GET'],
    ['ASC chat, bare tenant (auth, routing, admission = 1 ledger call; commit after the response)', `${asc}/v1/chat/completions`, keys.bare, 'POST'],
    ['ASC chat, + guardrails', `${asc}/v1/chat/completions`, keys.guardonly, 'POST'],
    ['ASC chat, + hard budget (the reservation rides on the same admission call)', `${asc}/v1/chat/completions`, keys.budgetonly, 'POST'],
    ['ASC chat, full tenant (budget + guardrails)', `${asc}/v1/chat/completions`, keys.bench, 'POST', {}, true],
    ['ASC chat, full tenant, leased admission (no ledger call per request)', `${asc}/v1/chat/completions`, keys.leased, 'POST', {}, true],
    ['ASC chat, full tenant + response cache, miss (Cache-Control: no-cache: lookup skipped, answer stored)', `${asc}/v1/chat/completions`, keys.cached, 'POST', { 'cache-control': 'no-cache' }, true],
    ['ASC chat, full tenant + response cache, hit (no upstream call)', `${asc}/v1/chat/completions`, keys.cached, 'POST', {}, true],
    ['ASC chat, full tenant, OpenTelemetry export on (spans + metrics, OTLP/HTTP protobuf in batches to a local collector)', `${await directUrl('ascotlp')}/v1/chat/completions`, keys.bench, 'POST', {}, true],
  ];
  for (const [name, url, key, method, extraHeaders, throughput] of cases) {
    const headers = { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(extraHeaders ?? {}) };
    try {
      const check = await request(url, { method, headers, body: method === 'POST' ? BODY : undefined });
      if (check.status !== 200) throw new Error(`HTTP ${check.status}: ${check.text.slice(0, 160)}`);
      await wrk(url, headers, 1, Math.min(WARMUP, 1), method);
      const cpu0 = cpuMs(workerd);
      const r = await wrk(url, headers, 1, SECONDS, method);
      const row = { name, ...r, cpuPerReq: (cpuMs(workerd) - cpu0) / r.requests };
      if (throughput) row.rps16 = (await wrk(url, headers, CONC, SECONDS, method)).rps;
      phases.push(row);
      log(`phase ${name}: p50 ${r.p50.toFixed(3)} ms`);
    } catch (e) {
      phases.push({ name, error: e.message });
    }
  }
}
if (otlpSink) phasesNote.push(`The OpenTelemetry row's collector received ${otlpSink.posts} exports ` +
  `(${(otlpSink.bytes / 1e6).toFixed(1)} MB of protobuf); the row above it is the same tenant without export.`);
const overTwice = () => {
  const d = results.find((r) => r.name.startsWith('direct'));
  const pt = results.find((r) => r.name === 'pass-through Worker (workerd)');
  const a = results.find((r) => r.name === 'ASC Worker (workerd)');
  return d && pt && a && (a.c1.p50 - d.c1.p50) > 2 * (pt.c1.p50 - d.c1.p50);
};
if (PROFILE && want('asc') && mf && (PROFILE_MODE === '1' || overTwice())) {
  try {
    // BENCH_PROFILE_TENANT=leased profiles the leased tenant instead of the headline one.
    const tenant = process.env.BENCH_PROFILE_TENANT ?? 'bench';
    profileRows = await profileAsc({ inspectorPort, workerd, url: `${await directUrl('asc')}/v1/chat/completions`,
      headers: { authorization: `Bearer ${keys[tenant]}` }, seconds: SECONDS });
  } catch (e) {
    profileRows = [{ error: e.message }];
  }
}
if (mf) { await mf.dispose(); mf = undefined; }
if (coldStart && want('asc') && COLD_TRIALS > 0) {
  log(`cold start: ${COLD_TRIALS} fresh runtimes per target`);
  try {
    coldRows = await coldStart();
  } catch (e) {
    coldRows = [{ error: e.message }];
  }
}

// ASC on Spin: the same component a Spin deployment runs (scripts/bench builds it when it finds a
// Spin CLI, as scripts/test does), under `spin up`, with its key-value store, SQLite database and
// a local S3 server (moto) as the audit bucket; the same tenants and keys as the Worker's rows.
// The deployment's scheduler (the flush endpoint: forwarding, shipping) runs every second. CPU is
// the `spin` process's (moto, the bucket, is another process, as R2 is outside workerd in
// production).
// ASC_BASELINE_SPIN: another build of the Spin component (a .wasm, e.g. the commit before a
// change), measured first with the same three rows on its own fresh state, for before and after
// in one run (labelled with ASC_BASELINE_SPIN_LABEL, else its path).
const SPIN_BASELINE = process.env.ASC_BASELINE_SPIN;
async function spinRows(component, label) {
  const suffix = component ? `, baseline build (${label})` : '';
  // State on tmpfs, as the Worker's rows keep theirs: both compare the gateways, not the disks
  // (on a disk, SQLite's fsync per transaction would dominate).
  const spinDir = mkdtempSync(existsSync('/dev/shm') ? '/dev/shm/asc-bench-spin-' : join(tmpdir(), 'asc-bench-spin-'));
  cleanupDirs.push(spinDir);
  let spin;
  const spinPids = () => procTree(process.pid).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'spin'; } catch { return false; }
  });
  const ready = async (url, proc, logs) => {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`spin up exited (${proc.exitCode}): ${logs.join('').slice(-400)}`);
      try { if ((await request(`${url}/healthz`, { method: 'GET' })).status === 200) return; } catch { /* not up yet */ }
      await sleep(250);
    }
    throw new Error(`spin up was not ready in 90 s: ${logs.join('').slice(-400)}`);
  };
  try {
    spin = await startSpin({
      root: ROOT, dir: spinDir, ports: [await freePort()], motoPort: await freePort(), kv: spinSeed.kv,
      secrets: spinSeed.secrets, waitReady: ready, component,
      // The production audit settings (wrangler.toml; forwarding as spin.toml's default), but a
      // heartbeat that makes the scheduler call the flush endpoint every second.
      policy: { maxRecords: 500, maxAgeMs: 5000, heartbeatMs: 2000, forwardMs: 50 },
    });
    // A Spin built from source offline prints placeholders after its version: keep the version.
    versions.spin = execFileSync(SPIN_BIN, ['--version'], { encoding: 'utf8' }).trim().split(' (')[0];
  } catch (e) {
    unavailable.push({ name: `ASC on Spin${suffix}`, why: e.message.split('\n')[0].slice(0, 300) });
  }
  if (!spin) return;
  await runTarget('spin', async () => ({
    name: `ASC on Spin${suffix} (spin up)`, url: `${spin.url}/v1/chat/completions`,
    headers: { authorization: `Bearer ${keys.bench}` }, pids: spinPids,
    after: component ? undefined : async (res) => { res.note += `; ${await ascFeatureChecks(spin.url)}`; },
    note: component
      ? `the same tenant through another build of the Spin component (ASC_BASELINE_SPIN), on its own fresh state, before this build's rows`
      : `the same tenant (write-ahead admission) through the Spin component under ${versions.spin}: ` +
        'ledger rows in Spin SQLite (compare-and-swap), config and keys in its key-value store, audit to a local S3 server (moto); ' +
        `state ${spinDir.startsWith('/dev/shm') ? 'on tmpfs (/dev/shm)' : `in ${spinDir}`}`,
  }));
  await runTarget('spin', async () => ({
    name: `ASC on Spin, leased admission${suffix} (spin up)`, url: `${spin.url}/v1/chat/completions`,
    headers: { authorization: `Bearer ${keys.leased}` }, pids: spinPids,
    note: 'the leased tenant through the same Spin component',
  }));
  // Some hosts give each request a new instance: everything an instance keeps (connections,
  // settings, ledger states, the tenant's config and compiled guardrails) starts empty.
  await spin.shutdown();
  let fresh = false;
  try {
    await spin.restart({}, ['--max-instance-reuse-count', '1']);
    fresh = true;
  } catch (e) {
    await spin.shutdown().catch(() => {});
    unavailable.push({ name: `ASC on Spin, an instance per request${suffix}`, why: e.message.split('\n')[0].slice(0, 300) });
  }
  if (fresh) {
    await runTarget('spin', async () => ({
      name: `ASC on Spin, an instance per request${suffix} (spin up --max-instance-reuse-count 1)`, url: `${spin.url}/v1/chat/completions`,
      headers: { authorization: `Bearer ${keys.bench}` }, pids: spinPids,
      note: 'the write-ahead tenant through the same component, with a new instance for every request',
    }));
    await spin.shutdown();
  }
  spin.stopMoto();
}

if (want('spin') && SPIN_BIN && spinSeed.kv.length) {
  if (SPIN_BASELINE) await spinRows(SPIN_BASELINE, process.env.ASC_BASELINE_SPIN_LABEL ?? SPIN_BASELINE);
  await spinRows(undefined);
} else if (want('spin')) {
  unavailable.push({ name: 'ASC on Spin', why: SPIN_BIN ? 'no tenants were set up' : 'no Spin CLI (SPIN_BIN; README "Running on Spin")' });
}

await runTarget('portkey', async () => {
  const pkg = join(PEERS, 'node_modules/@portkey-ai/gateway');
  if (!existsSync(join(pkg, 'build/start-server.js'))) throw new Error('not installed (scripts/setup-bench)');
  versions.portkey = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  const port = await freePort();
  const child = await launch('portkey', process.execPath, [join(pkg, 'build/start-server.js'), '--headless', `--port=${port}`], {
    env: { ...process.env, NODE_ENV: 'production' },
    ready: async () => (await request(`http://127.0.0.1:${port}/`, { method: 'GET' })).status < 500,
  });
  return {
    name: `Portkey gateway ${versions.portkey} (Node ${process.versions.node})`, url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${UPSTREAM}/v1` },
    child, pids: () => child.proc.pid, stop: () => child.stop(), note: 'provider openai, custom host = the upstream',
  };
});

await runTarget('litellm', async () => {
  const bin = join(LITELLM, 'bin/litellm');
  if (!existsSync(bin)) throw new Error('not installed (scripts/setup-bench)');
  versions.litellm = execFileSync(join(LITELLM, 'bin/python'), ['-c', 'import importlib.metadata as m; print(m.version("litellm"))'], { encoding: 'utf8' }).trim();
  const port = await freePort();
  const config = join(dir, 'litellm.yaml');
  writeFileSync(config, [
    'model_list:',
    '  - model_name: gpt-4o-mini',
    '    litellm_params:',
    '      model: openai/gpt-4o-mini',
    `      api_base: ${UPSTREAM}/v1`,
    `      api_key: ${UPSTREAM_KEY}`,
    'general_settings:',
    '  master_key: sk-bench-litellm-master',
    'litellm_settings:',
    '  telemetry: false',
    '',
  ].join('\n'));
  const child = await launch('litellm', bin, ['--config', config, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'], {
    env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True', LITELLM_LOG: 'ERROR', LITELLM_TELEMETRY: 'False',
      DO_NOT_TRACK: '1', HF_HUB_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false' },
    ready: async () => (await request(`http://127.0.0.1:${port}/health/liveliness`, { method: 'GET' })).status === 200,
    timeoutMs: 180_000,
  });
  return {
    name: `LiteLLM proxy ${versions.litellm} (1 worker)`, url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { authorization: 'Bearer sk-bench-litellm-master' },
    child, pids: () => child.proc.pid, stop: () => child.stop(), note: 'master key, local cost map, no database',
  };
});

await upstream.stop();

// ---- report ----
// ---- report ----
mkdirSync(join(ROOT, '.state/bench'), { recursive: true });
writeFileSync(join(ROOT, '.state/bench/gateways.json'), JSON.stringify({ results, unavailable, phases, abRows, versions }, null, 2));
console.log(report({
  results, unavailable, phases, phasesNote, abRows, coldRows, profileRows, versions,
  bodyBytes: Buffer.byteLength(BODY), CONC, SECONDS, WARMUP, STREAM_MAX, AB_ROUNDS, AB_SECONDS, BASELINE, COLD_TRIALS,
}));
process.exit(0);
