// Starts the whole stack for end-to-end tests: the mock upstream (in process), the config store
// seeded with test tenants and keys, and the gateway: the Worker on workerd via
// `wrangler dev --local`, or with ASC_E2E_HOST=spin the Spin component under `spin up` (tests/e2e/spin.mjs).
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { start as startMock } from '../mock-upstream/server.mjs';
import { downloadAuditBucket } from './r2.mjs';
import { SPIN_BIN, SKIP_REASON, startSpin } from './spin.mjs';

/** Which runtime the scenarios run on: `worker` (workerd) or `spin`. */
export const HOST = process.env.ASC_E2E_HOST === 'spin' ? 'spin' : 'worker';
/**
 * For `describe(name, hostOptions(), ...)`: on Spin without a Spin CLI, the suite is skipped
 * with a plain reason. `workerOnly` / `spinOnly` mark scenarios that only make sense on one host.
 */
export function hostOptions({ workerOnly, spinOnly } = {}) {
  if (HOST === 'spin' && workerOnly) return { skip: `Worker only: ${workerOnly}` };
  if (HOST !== 'spin' && spinOnly) return { skip: `Spin only: ${spinOnly}` };
  if (HOST === 'spin' && !SPIN_BIN) return { skip: SKIP_REASON };
  return {};
}

// Scratch directories of the tests (downloaded audit buckets, CLI configs holding admin tokens):
// removed when the test process exits, so runs leave nothing in the temp directory.
// ASC_KEEP_SCRATCH=1 keeps them for a look after a failure.
const scratchDirs = [];
process.on('exit', () => {
  if (process.env.ASC_KEEP_SCRATCH === '1') return;
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A new directory under the temp directory, removed when the test process exits. */
export function scratchDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const UPSTREAM_KEY = 'sk-upstream-CANARY-e2e-4b1d';
export const ANTHROPIC_UPSTREAM_KEY = 'sk-ant-upstream-CANARY-e2e-77c2';
export const MISTRAL_UPSTREAM_KEY = 'mistral-upstream-CANARY-e2e-91fa';
const ASC_CLI = join(ROOT, 'target/debug/asc');

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
    srv.on('error', fail);
  });
}

/**
 * The control plane's Worker for one stack: wrangler.control.toml copied into `dir/control/`
 * (its paths made absolute) beside a `.dev.vars` with the stack's secrets and `vars`, because
 * `wrangler dev`'s `--var` and `--env-file` reach only the first config's Worker. Returns the
 * copy's path.
 */
function controlConfig(dir, secretsText, vars) {
  const out = join(dir, 'control');
  mkdirSync(out, { recursive: true });
  // ASC_CONTROL_BUILD: another build's control plane (e.g. a baseline's, for a bench).
  const build = process.env.ASC_CONTROL_BUILD;
  const config = readFileSync(join(ROOT, 'wrangler.control.toml'), 'utf8')
    .replace(/^(main|directory) = "(edge\/[^"]+)"$/gm, (_, key, path) => `${key} = "${build
      ? join(build, path.replace('edge/cloudflare/build/control/', ''))
      : join(ROOT, path)}"`)
    .replace(/^command = "bash scripts\/build-worker"$/m, `command = "bash ${join(ROOT, 'scripts/build-worker')}"`);
  writeFileSync(join(out, 'wrangler.toml'), config);
  const quoted = (v) => (/^[\w.:/-]*$/.test(String(v)) ? String(v) : `'${v}'`);
  writeFileSync(join(out, '.dev.vars'), secretsText +
    Object.entries(vars).map(([k, v]) => `${k}=${quoted(v)}\n`).join(''));
  return join(out, 'wrangler.toml');
}

function wrangler(args, env, opts = {}) {
  return execFileSync(join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
}

/** Mints a key with the real CLI; returns { key, keyId, kvName, record }. */
function mintKey(tenant, secret, scopes = 'chat,models,usage') {
  const out = execFileSync(ASC_CLI, ['key', 'new', '--tenant', tenant, '--scopes', scopes], {
    env: { ...process.env, KEY_HASH_SECRET: secret },
    encoding: 'utf8',
  });
  const field = (name) => out.match(new RegExp(`^${name}=(.*)$`, 'm'))[1];
  return {
    key: field('ASC_API_KEY'),
    keyId: field('KEY_ID'),
    kvName: field('KV_NAME'),
    record: JSON.parse(field('KV_VALUE')),
  };
}

function tenant(id, mockUrl, overrides = {}) {
  return {
    schema_version: 1,
    tenant_id: id,
    residency: 'local',
    models: {
      'gpt-4o-mini': { provider: 'openai', endpoint: `${mockUrl}/v1`, credential: 'OPENAI_API_KEY' },
      // Same upstream, short timeout: for the 504 test.
      'gpt-4o': { provider: 'openai', endpoint: `${mockUrl}/v1`, credential: 'OPENAI_API_KEY', upstream_model: 'gpt-4o-2024-08-06', timeout_ms: 700 },
    },
    ...overrides,
  };
}

async function waitReady(url, proc, logs, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${HOST} exited (${proc.exitCode}):\n${logs.join('')}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.status === 200) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${HOST} was not ready in ${timeoutMs} ms:\n${logs.join('')}`);
}

/** An Ed25519 audit signing key: the secret spec for the Worker, the public entry for auditors. */
export function auditKeyPair(keyId = 'e2e-1') {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const b64 = (url) => Buffer.from(url, 'base64url').toString('base64');
  const seed = b64(privateKey.export({ format: 'jwk' }).d);
  const pub = b64(publicKey.export({ format: 'jwk' }).x);
  return {
    secret: [{ key_id: keyId, seed, not_before_ms: 0, not_after_ms: null }],
    public: [{ key_id: keyId, public_key: pub, not_before_ms: 0, not_after_ms: null }],
  };
}

/** Audit shipping policy for tests: short batches and heartbeats. */
export const AUDIT_POLICY = { maxRecords: 50, maxAgeMs: 300, heartbeatMs: 2000, forwardMs: 100 };

/**
 * Starts the mock upstream and the Worker on workerd. `vars` are extra Worker vars for the first
 * launch (e.g. a fault to inject); `restart(vars)` relaunches with others. On Spin, `replicas`
 * starts that many `spin up` processes on the same stores (`stack.urls`); workerd runs one.
 * `scheduled` lets `stack.sweep()` run the Worker's cron (`wrangler dev --test-scheduled`).
 */
export async function startStack({ vars = {}, replicas = 1, extraTenants, secrets = {}, scheduled = false } = {}) {
  const mock = await startMock({ port: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'asc-e2e-'));
  const secret = randomBytes(32).toString('hex');
  const env = {
    ...process.env,
    WRANGLER_SEND_METRICS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    WRANGLER_LOG_PATH: join(dir, 'logs'),
    ASC_SKIP_BUILD: '1',
  };

  const tenants = {
    demo: tenant('demo', mock.url),
    tiny: tenant('tiny', mock.url, { limits: { max_request_bytes: 1024 } }),
    limited: tenant('limited', mock.url, { limits: { requests_per_minute: 2 } }),
    euonly: tenant('euonly', mock.url, { residency: 'eu' }),
    // A small hard budget: a few hundred requests' worth. Reservations expire after 3 s on the
    // Worker (the abandoned-stream test waits for the alarm). On Spin the component ends an
    // abandoned stream itself, and under 32 concurrent requests on a loaded 2-core machine its
    // slowest responses took ~3.5 s: a 3 s TTL would give up on live requests and charge their
    // reservations in full, so the budget test could not compare charges.
    budgeted: tenant('budgeted', mock.url, {
      limits: { reservation_ttl_ms: HOST === 'spin' ? 30_000 : 3000 },
      budgets: [{ id: 'small', applies_to: 'tenant', limit_usd_micros: 3000, period: 'monthly', mode: 'hard', alert_at_percent: [80] }],
    }),
    // For benchmarks: every request reserves and settles in the ledger, never refused.
    bigbudget: tenant('bigbudget', mock.url, {
      budgets: [{ id: 'huge', applies_to: 'tenant', limit_usd_micros: 1e15, period: 'monthly' }],
    }),
    // For crash tests: requests left unfinished are given up on 3 s after admission.
    crashy: tenant('crashy', mock.url, {
      limits: { reservation_ttl_ms: 3000 },
      budgets: [{ id: 'huge', applies_to: 'tenant', limit_usd_micros: 1e15, period: 'monthly' }],
    }),
    // Guardrails on requests and responses; and on responses only (so the mock echoes PII back).
    guarded: tenant('guarded', mock.url, {
      guardrails: { detectors: { email: { mode: 'redact' }, credit_card: { mode: 'block' } } },
    }),
    // Custom patterns and a deny term with non-ASCII letters: the request plane's Worker gets
    // the patterns' DFAs and the letters' case classes compiled from the control plane.
    patterned: tenant('patterned', mock.url, {
      guardrails: {
        deny_terms: ['projekt über'],
        custom_patterns: [
          { name: 'mrn', regex: String.raw`\bMRN-[0-9]{8}\b`, mode: 'redact', placeholder: 'MRN' },
          { name: 'codename', regex: '(?i)project[ -]falcon', mode: 'block', placeholder: 'CODE' },
        ],
      },
    }),
    // A config written straight to the store with a pattern no config may hold (unbounded).
    badpattern: tenant('badpattern', mock.url, {
      guardrails: { custom_patterns: [{ name: 'any', regex: 'a+', mode: 'redact', placeholder: 'A' }] },
    }),
    guardresp: tenant('guardresp', mock.url, {
      guardrails: { detectors: { email: { mode: 'redact' } }, apply_to: { requests: false, responses: true } },
    }),
    // One model per provider, each behind its own mock wire format.
    multi: tenant('multi', mock.url, {
      models: {
        'gpt-4o-mini': { provider: 'openai', endpoint: `${mock.url}/v1`, credential: 'OPENAI_API_KEY' },
        'claude-haiku-4-5': { provider: 'anthropic', endpoint: `${mock.url}/anthropic/v1`, credential: 'ANTHROPIC_API_KEY' },
        'mistral-small-latest': { provider: 'mistral', endpoint: `${mock.url}/mistral/v1`, credential: 'MISTRAL_API_KEY' },
        'text-embedding-3-small': { provider: 'openai', endpoint: `${mock.url}/v1`, credential: 'OPENAI_API_KEY' },
        'mistral-embed': { provider: 'mistral', endpoint: `${mock.url}/mistral/v1`, credential: 'MISTRAL_API_KEY' },
      },
    }),
    // Routes: a primary that always fails (the mock answers 500 to model "mock-500") with an
    // Anthropic fallback; a primary whose streams are cut mid-way; an alias by workload.
    routed: tenant('routed', mock.url, {
      models: {
        broken: { provider: 'openai', endpoint: `${mock.url}/v1`, credential: 'OPENAI_API_KEY', upstream_model: 'mock-500' },
        cutter: { provider: 'openai', endpoint: `${mock.url}/v1`, credential: 'OPENAI_API_KEY', upstream_model: 'gpt-4o-mini@cut-stream' },
        claude: { provider: 'anthropic', endpoint: `${mock.url}/anthropic/v1`, credential: 'ANTHROPIC_API_KEY', upstream_model: 'claude-haiku-4-5' },
        outside: { provider: 'openai', endpoint: 'https://api.openai.com/v1', credential: 'OPENAI_API_KEY' },
      },
      routes: {
        smart: { targets: ['outside', 'broken', 'claude'], retry: { max_attempts: 3 } },
        streaming: { targets: ['cutter', 'claude'] },
      },
      routing: { breaker: { failure_threshold: 1000 } },
    }),
    // The response cache, with answers redacted on their way out (stored redacted); and a second
    // cached tenant that must never see the first one's entries.
    cached: tenant('cached', mock.url, {
      cache: {},
      guardrails: { detectors: { email: { mode: 'redact' } }, apply_to: { requests: false, responses: true } },
    }),
    cached2: tenant('cached2', mock.url, { cache: {} }),
    // Its upstream answers 307 to another path of the same mock: never followed.
    redirecting: tenant('redirecting', mock.url, {
      models: { 'gpt-4o-mini': { provider: 'openai', endpoint: `${mock.url}/redirect/v1`, credential: 'OPENAI_API_KEY' } },
    }),
    leaky: tenant('leaky', mock.url, {
      models: { 'gpt-4o-mini': { provider: 'openai', endpoint: 'https://api.openai.com/v1', credential: 'OPENAI_API_KEY' } },
    }),
  };
  // Tests add their own tenants: `extraTenants(mockUrl)` -> { id: overrides of tenant() }.
  for (const [id, overrides] of Object.entries(extraTenants ? extraTenants(mock.url) : {})) {
    tenants[id] = tenant(id, mock.url, overrides);
  }
  const keys = {};
  const kv = [];
  for (const [id, config] of Object.entries(tenants)) {
    kv.push({ key: `tenant:${id}`, value: JSON.stringify(config) });
    keys[id] = mintKey(id, secret);
    kv.push({ key: keys[id].kvName, value: JSON.stringify(keys[id].record) });
  }
  keys.revoked = mintKey('demo', secret);
  kv.push({ key: keys.revoked.kvName, value: JSON.stringify({ ...keys.revoked.record, status: 'revoked' }) });
  keys.modelsOnly = mintKey('demo', secret, 'models');
  kv.push({ key: keys.modelsOnly.kvName, value: JSON.stringify(keys.modelsOnly.record) });

  const signing = auditKeyPair();
  const publicKeys = join(dir, 'audit-public-keys.json');
  writeFileSync(publicKeys, JSON.stringify(signing.public));
  if (HOST === 'spin') {
    const spin = await startSpin({
      root: ROOT,
      dir,
      ports: await Promise.all(Array.from({ length: replicas }, freePort)),
      motoPort: await freePort(),
      kv,
      secrets: {
        KEY_HASH_SECRET: secret,
        OPENAI_API_KEY: UPSTREAM_KEY,
        ANTHROPIC_API_KEY: ANTHROPIC_UPSTREAM_KEY,
        MISTRAL_API_KEY: MISTRAL_UPSTREAM_KEY,
        AUDIT_SIGNING_KEYS: JSON.stringify(signing.secret),
        ...secrets,
      },
      policy: AUDIT_POLICY,
      vars,
      waitReady,
    });
    return {
      ...spin,
      baseURL: `${spin.url}/v1`,
      mock,
      keys,
      publicKeys,
      dir,
      async stop() {
        await spin.shutdown();
        spin.stopMoto();
        await mock.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  const persist = join(dir, 'state');
  const bulk = join(dir, 'kv.json');
  writeFileSync(bulk, JSON.stringify(kv));
  wrangler(['kv', 'bulk', 'put', '--local', '--persist-to', persist, '--binding', 'ASC_CONFIG', bulk], env);
  const envFile = join(dir, 'dev.env');
  const secretsText = `KEY_HASH_SECRET=${secret}\nOPENAI_API_KEY=${UPSTREAM_KEY}\n` +
    `ANTHROPIC_API_KEY=${ANTHROPIC_UPSTREAM_KEY}\nMISTRAL_API_KEY=${MISTRAL_UPSTREAM_KEY}\n` +
    `AUDIT_SIGNING_KEYS='${JSON.stringify(signing.secret)}'\n` +
    Object.entries(secrets).map(([k, v]) => `${k}=${v}\n`).join('');
  writeFileSync(envFile, secretsText);
  const auditVars = {
    AUDIT_BATCH_MAX_RECORDS: AUDIT_POLICY.maxRecords,
    AUDIT_BATCH_MAX_AGE_MS: AUDIT_POLICY.maxAgeMs,
    AUDIT_HEARTBEAT_MS: AUDIT_POLICY.heartbeatMs,
    AUDIT_FORWARD_MS: AUDIT_POLICY.forwardMs,
  };
  const port = await freePort();
  const logs = [];
  let proc;
  const url = `http://127.0.0.1:${port}`;
  async function launch(extra = {}) {
    const allVars = { ...auditVars, ...extra };
    const varArgs = Object.entries(allVars).flatMap(([k, v]) => ['--var', `${k}:${v}`]);
    proc = spawn(
      join(ROOT, 'node_modules/.bin/wrangler'),
      ['dev', '-c', join(ROOT, 'wrangler.toml'), '-c', controlConfig(dir, secretsText, allVars),
        '--local', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist,
        '--env-file', envFile, '--show-interactive-dev-session=false', '--inspector-port', String(await freePort()),
        ...(scheduled ? ['--test-scheduled'] : []), ...varArgs],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    proc.stdout.on('data', (d) => logs.push(d.toString()));
    proc.stderr.on('data', (d) => logs.push(d.toString()));
    await waitReady(url, proc, logs);
  }
  async function halt(signal) {
    try { process.kill(-proc.pid, signal); } catch { /* already gone */ }
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', r)));
  }
  await launch(vars);

  return {
    url,
    urls: [url],
    baseURL: `${url}/v1`,
    mock,
    keys,
    logs,
    persist,
    publicKeys,
    dir,
    /** Kills the Worker's processes at once (SIGKILL), as a crash would. */
    async kill() { await halt('SIGKILL'); },
    async restart(extra = {}) { await launch(extra); },
    /** Runs the request plane's cron once (the alert sweep); needs `scheduled`. */
    async sweep() {
      if (!scheduled) throw new Error('startStack({ scheduled: true }) runs the cron');
      const r = await fetch(`${url}/__scheduled?cron=*+*+*+*+*`);
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`/__scheduled answered ${r.status}`);
    },
    /** Copies the audit bucket (wrangler's local R2, read after wrangler stopped) into `outDir`. */
    async downloadAudit(outDir) { return downloadAuditBucket(persist, outDir); },
    /** Copies the response cache (local R2 bucket asc-cache-local) into `outDir`. */
    async downloadCache(outDir) { return downloadAuditBucket(persist, outDir, 'asc-cache-local', ''); },
    async shutdown() { await halt('SIGTERM'); },
    async stop() {
      await halt('SIGTERM');
      await mock.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { readFileSync };
