// A black-box HTTP fuzzer against the Worker on workerd (issue 20): several thousand seeded
// hostile requests across every endpoint and dialect (mutated and truncated JSON, deep nesting,
// invalid UTF-8, huge and odd numbers, long strings, odd paths, methods and auth headers).
// Asserts: no 5xx, no dropped connection, no hang, no secret or canary in any response or in the
// Worker's log, no wasm trap, the gateway healthy afterwards, and the audit trail still verifies
// with every record's strings bounded.
//
// The seed is fixed in CI; `ASC_FUZZ_SEED=<n>` runs another one, `ASC_FUZZ_CASES=<n>` more cases.
// A failure prints the seed and the case, so it can be replayed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { gunzipSync, brotliDecompressSync, inflateSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { files, verify } from './trail.mjs';
import { join } from 'node:path';
import { startStack, UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY, MISTRAL_UPSTREAM_KEY, AUDIT_POLICY, hostOptions, scratchDir } from './harness.mjs';
import { downloadAuditBucket } from './r2.mjs';

const SEED = Number(process.env.ASC_FUZZ_SEED ?? 20260420) >>> 0;
const CASES = Number(process.env.ASC_FUZZ_CASES ?? 3000);
const CONCURRENCY = 6;
const TIMEOUT_MS = 20_000;
// Sent in prompts: it may come back in a completion (the mock echoes), never in the Worker's log.
const PROMPT_CANARY = 'sk-live-CANARY-hostile-51c0ffee';
// Audit record strings are bounded to 256 bytes (audit::bound).
const MAX_FIELD_BYTES = 256;

/** mulberry32: a small seeded PRNG, so every case can be replayed from the seed. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (xs) => xs[int(xs.length)];
  return { next, int, pick, chance: (p) => next() < p };
}

// Tenants whose upstreams are healthy: any 5xx from them is the gateway's fault.
const TENANTS = ['demo', 'multi', 'tiny', 'guarded', 'guardresp', 'limited', 'budgeted'];
const MODELS = ['gpt-4o-mini', 'claude-haiku-4-5', 'mistral-small-latest', 'text-embedding-3-small',
  'mistral-embed', 'smart', 'nope', '', 'GPT-4O-MINI', 'gpt-4o-mini ', 'gpt-4o-mini\u0000', '../gpt-4o-mini'];

const HUGE_NUMBERS = ['9223372036854775808', '18446744073709551615', '18446744073709551616', '1e308', '1e309',
  '-1', '0', '-0', '1.5', '4294967296', '9007199254740993', '340282366920938463463374607431768211456',
  '0.0000001', '-9223372036854775809', '123456789012345678901234567890', '1E400', 'NaN', 'Infinity', '"1"', 'null',
  'true', '[]', '{}'];

const PATHS = ['/v1/chat/completions', '/v1/messages', '/v1/embeddings', '/v1/route/explain', '/v1/models',
  '/v1/usage', '/healthz'];
const ODD_PATHS = ['/', '//v1/chat/completions', '/v1/chat/completions/', '/v1/chat/completions?x=1',
  '/v1/../v1/models', '/v1/%2e%2e/models', '/V1/CHAT/COMPLETIONS', '/v1/chat%2Fcompletions', '/v1/models/gpt-4o-mini',
  '/v2/chat/completions', '/v1/chat/completions%00', '/__scheduled', '/__asc/audit/flush', '/v1/' + 'a'.repeat(5000),
  '/v1/chat/completions#frag', '/%ff%fe', '/v1/usage?tenant=other', '/.well-known/x', '*'];

function baseBody(r, path) {
  const model = r.pick(MODELS);
  const text = r.chance(0.3) ? `please keep ${PROMPT_CANARY} safe` : r.pick(['hi', 'Hello there', 'a'.repeat(r.int(3000)),
    'mail me at jane@example.com', 'card 4111 1111 1111 1111', '\u202e\u200b\ud83d\ude00 emoji', '{"json":"in text"}']);
  if (path === '/v1/messages') {
    return { model, max_tokens: r.int(2000) + 1, messages: [{ role: 'user', content: text }],
      ...(r.chance(0.3) ? { stream: true } : {}), ...(r.chance(0.2) ? { system: text } : {}) };
  }
  if (path === '/v1/embeddings') {
    return { model, input: r.chance(0.5) ? text : [text, 'second'],
      ...(r.chance(0.3) ? { encoding_format: r.pick(['float', 'base64', 'binary', 7]) } : {}) };
  }
  const body = { model, messages: [{ role: r.pick(['user', 'system', 'assistant', 'tool', 'developer', 'x']), content: text }] };
  if (r.chance(0.3)) body.stream = true;
  if (r.chance(0.2)) body.stream_options = r.pick([{ include_usage: true }, { include_usage: 'yes' }, null, 5]);
  if (r.chance(0.2)) body.tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
  if (r.chance(0.1)) body.user = 'u'.repeat(r.int(20_000));
  return body;
}

/** A JSON text with a hostile number put into one numeric field. */
function hugeNumber(r, path) {
  const body = baseBody(r, path);
  const field = r.pick(['max_tokens', 'max_completion_tokens', 'n', 'temperature', 'top_p', 'seed', 'dimensions',
    'top_k', 'presence_penalty', 'logprobs', 'top_logprobs']);
  body[field] = '__NUM__';
  return JSON.stringify(body).replace('"__NUM__"', r.pick(HUGE_NUMBERS));
}

function deepNesting(r) {
  const depth = r.pick([64, 127, 128, 129, 1000, 50_000]);
  const [open, close] = r.pick([['[', ']'], ['{"a":', '}']]);
  const inner = open.repeat(depth) + '1' + close.repeat(depth);
  return r.chance(0.5) ? inner : `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${inner}}]}`;
}

/** Byte-level mutations of a valid body: flips, deletions, insertions, truncation. */
function mutate(r, bytes) {
  const out = Buffer.from(bytes);
  const rounds = 1 + r.int(6);
  let buf = out;
  for (let i = 0; i < rounds && buf.length > 0; i++) {
    const at = r.int(buf.length);
    switch (r.int(5)) {
      case 0: buf[at] = r.int(256); break;
      case 1: buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + r.int(8))]); break;
      case 2: buf = Buffer.concat([buf.subarray(0, at), Buffer.from(r.pick(['"', '{', '}', '[', ']', ',', ':', '\\', '\\u', '\\ud800',
        '\u0000', 'null', '1e999', '\xff\xfe', '"model":"x",', '"stream":true,'])), buf.subarray(at)]); break;
      case 3: buf = buf.subarray(0, at); break;
      default: buf[at] ^= 1 << r.int(8);
    }
  }
  return buf;
}

function invalidUtf8(r, path) {
  const json = Buffer.from(JSON.stringify(baseBody(r, path)));
  const bad = r.pick([[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf], [0x80]]);
  const at = json.indexOf('"content"') > 0 ? json.indexOf('"content"') + 11 : Math.max(1, r.int(json.length));
  return Buffer.concat([json.subarray(0, at), Buffer.from(bad), json.subarray(at)]);
}

function wrongTypes(r, path) {
  const body = baseBody(r, path);
  const field = r.pick(['model', 'messages', 'input', 'stream', 'tools', 'system', 'max_tokens', 'tool_choice',
    'response_format', 'stop', 'metadata']);
  body[field] = r.pick([null, 1, -1, true, 'x', [], {}, [null], [{}], [[[]]], { role: 'user' }, 'x'.repeat(10_000)]);
  return JSON.stringify(body);
}

function authHeaders(r, keys) {
  const tenant = r.pick(TENANTS);
  const key = keys[tenant].key;
  const other = keys[r.pick(TENANTS)].key;
  // Half the cases carry a valid key, so they reach the parsers behind authentication.
  if (r.chance(0.5)) return { tenant, headers: r.chance(0.8) ? { authorization: `Bearer ${key}` } : { 'x-api-key': key } };
  switch (r.int(14)) {
    case 0: return { tenant, headers: {} };
    case 1: return { tenant, headers: { authorization: `bearer ${key}` } };
    case 2: return { tenant, headers: { authorization: `BEARER  ${key}  ` } };
    case 3: return { tenant, headers: { authorization: key } };
    case 4: return { tenant, headers: { authorization: `Bearer ${key.slice(0, -1)}${key.endsWith('a') ? 'b' : 'a'}` } };
    case 5: return { tenant, headers: { authorization: `Bearer ${key.slice(0, r.int(key.length))}` } };
    case 6: return { tenant, headers: { authorization: `Bearer ${key}`, 'x-api-key': other } };
    case 7: return { tenant, headers: { 'x-api-key': key, authorization: 'Bearer asc_nope' } };
    case 8: return { tenant, headers: { authorization: `Basic ${Buffer.from(`x:${key}`).toString('base64')}` } };
    case 9: return { tenant, headers: { authorization: `Bearer ${keys.revoked.key}` } };
    case 10: return { tenant, headers: { authorization: `Bearer ${'asc_' + 'A'.repeat(r.int(9000))}` } };
    case 11: return { tenant, headers: { 'x-api-key': `${key}` } };
    case 12: return { tenant, headers: { authorization: `Bearer ${key}` } };
    default: return { tenant, headers: { authorization: `Bearer ${key}` } };
  }
}

function oddHeaders(r) {
  const h = {};
  if (r.chance(0.2)) h['x-asc-workload'] = r.pick(['extraction', 'w'.repeat(r.int(12_000)), '', '\t', '../x']);
  if (r.chance(0.15)) h.traceparent = r.pick(['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'ff-' + 'f'.repeat(100), 'garbage', '00--', 'x'.repeat(8000)]);
  if (r.chance(0.1)) h.tracestate = 'k=' + 'v'.repeat(r.int(10_000));
  if (r.chance(0.15)) h['anthropic-version'] = r.pick(['2023-06-01', '2099-12-31', 'x', '', '2023-06-01, 2023-01-01']);
  if (r.chance(0.05)) h['anthropic-beta'] = 'prompt-caching-2024-07-31';
  if (r.chance(0.2)) h['content-type'] = r.pick(['application/json', 'text/plain', 'application/json; charset=latin1',
    'multipart/form-data; boundary=x', '']);
  if (r.chance(0.05)) h.host = r.pick(['evil.example.com', 'us.asc.example.com', '127.0.0.1:1', '']);
  if (r.chance(0.05)) h['x-request-id'] = 'client-chosen-' + 'r'.repeat(r.int(5000));
  if (r.chance(0.05)) h['accept-encoding'] = 'gzip, br, zstd';
  return h;
}

/** One case: method, path, headers, body bytes. */
function makeCase(r, keys) {
  const path = r.chance(0.08) ? r.pick(ODD_PATHS) : r.pick(PATHS);
  const method = r.chance(0.9) ? (['/v1/models', '/v1/usage', '/healthz'].includes(path) ? 'GET' : 'POST')
    : r.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND']);
  const { tenant, headers } = authHeaders(r, keys);
  Object.assign(headers, oddHeaders(r));
  let kind = 'none';
  let body = null;
  if (!['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(method)) {
    kind = r.pick(['valid', 'mutated', 'mutated', 'truncated', 'number', 'number', 'nesting', 'utf8', 'types', 'empty', 'large']);
    const valid = () => Buffer.from(JSON.stringify(baseBody(r, path)));
    switch (kind) {
      case 'valid': body = valid(); break;
      case 'mutated': body = mutate(r, valid()); break;
      case 'truncated': { const v = valid(); body = v.subarray(0, r.int(v.length)); break; }
      case 'number': body = Buffer.from(hugeNumber(r, path)); break;
      case 'nesting': body = Buffer.from(deepNesting(r)); break;
      case 'utf8': body = invalidUtf8(r, path); break;
      case 'types': body = Buffer.from(wrongTypes(r, path)); break;
      case 'empty': body = Buffer.alloc(0); break;
      default: body = Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'z'.repeat(300_000 + r.int(2_000_000)) }] }));
    }
  }
  return { method, path, headers, body, kind, tenant };
}

/** The body as sent before workerd compressed it (some cases ask for gzip or brotli). */
function decode(encoding, body) {
  if (!encoding || body.length === 0) return body;
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'br') return brotliDecompressSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  throw new Error('unexpected encoding');
}

// One connection per case: after a reply sent before a request's body was read (a 401 to a 2 MB
// body), the local dev server's HTTP layer (not the Worker) parses the unread bytes as the next
// request on a kept-alive connection and answers 400 "invalid HTTP method parsed".
const agent = new Agent({ keepAlive: false, maxSockets: CONCURRENCY });

/**
 * The local dev server's (wrangler/Miniflare's, not the Worker's) answer to a request line it
 * could not parse: plain text, no `x-request-id` (the Worker puts one on every reply).
 */
function devServerArtifact(res) {
  return res.status === 400 && !res.headers?.['x-request-id']
    && String(res.headers?.['content-type']).startsWith('text/plain')
    && res.body.toString('utf8') === 'invalid HTTP method parsed';
}

/** Sends a case; resolves to { status, body, ms } or { error }. */
function send(url, c) {
  return new Promise((resolve) => {
    const started = Date.now();
    let req;
    try {
      req = httpRequest(`${url}${c.path.startsWith('/') ? '' : '/'}${c.path}`, {
        method: c.method, headers: c.headers, agent, timeout: TIMEOUT_MS,
      }, (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => {
          let body = Buffer.concat(parts);
          try { body = decode(res.headers['content-encoding'], body); } catch (e) {
            resolve({ error: `undecodable ${res.headers['content-encoding']} body: ${e.message}` });
            return;
          }
          resolve({ status: res.statusCode, headers: res.headers, body, ms: Date.now() - started });
        });
        res.on('error', (e) => resolve({ error: `response: ${e.code ?? e.message}` }));
        res.on('aborted', () => resolve({ error: 'response aborted' }));
      });
    } catch (e) {
      // Node refuses to send it (e.g. a header value it will not encode): not the gateway's case.
      resolve({ unsendable: e.code ?? e.message });
      return;
    }
    req.on('timeout', () => { req.destroy(new Error('timed out')); });
    req.on('error', (e) => resolve({ error: `request: ${e.code ?? e.message}` }));
    if (c.body) req.end(c.body); else req.end();
  });
}

/** Every string value in a record, with its path (`content`, recorded only by policy, excluded). */
function strings(value, path = '', out = []) {
  if (typeof value === 'string') out.push([path, value]);
  else if (Array.isArray(value)) value.forEach((v, i) => strings(v, `${path}[${i}]`, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (k !== 'content') strings(v, `${path}.${k}`, out);
  }
  return out;
}

// The Worker's log and its local R2 state are read directly: workerd only.
const HOSTILE_HOST = hostOptions({ workerOnly: 'reads the Worker log and its local R2 state' });

describe('hostile input', HOSTILE_HOST, () => {
  let stack;
  before(async () => { if (!HOSTILE_HOST.skip) stack = await startStack(); });
  after(async () => { await stack?.stop(); });

  const post = async (path, body, tenant = 'demo', headers = {}) => {
    const res = await fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys[tenant].key}`, 'content-type': 'application/json', ...headers },
      body,
    });
    return { status: res.status, text: await res.text() };
  };

  it('counts beyond 64 bits or any output limit are a 400 naming the field, never a 5xx', async () => {
    const messages = '[{"role":"user","content":"hi"}]';
    const cases = [
      ['/v1/chat/completions', 'max_tokens', '9223372036854775808'],
      ['/v1/chat/completions', 'max_tokens', '18446744073709551616'],
      ['/v1/chat/completions', 'max_completion_tokens', '9223372036854775808'],
      ['/v1/chat/completions', 'n', '9223372036854775808'],
      ['/v1/chat/completions', 'n', '129'],
      ['/v1/messages', 'max_tokens', '9223372036854775808'],
      ['/v1/messages', 'max_tokens', '1e30'],
    ];
    for (const [path, field, value] of cases) {
      const r = await post(path, `{"model":"gpt-4o-mini","${field}":${value},"messages":${messages}}`, 'demo',
        { 'anthropic-version': '2023-06-01' });
      assert.equal(r.status, 400, `${path} ${field}=${value}: ${r.text}`);
      const err = JSON.parse(r.text).error;
      assert.equal(err.param, field, `${path} ${field}=${value}: ${r.text}`);
      assert.ok(!/floating point|invalid type|expected u64/.test(err.message), err.message);
    }
  });

  it('an upstream redirect is not followed: the egress gate approved one URL', async () => {
    stack.mock.requests.length = 0;
    const r = await post('/v1/chat/completions', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}', 'redirecting');
    assert.ok(r.status >= 400 && r.status < 600 && r.status !== 307, `${r.status} ${r.text}`);
    const paths = stack.mock.requests.map((q) => q.path);
    assert.deepEqual(paths, ['/redirect/v1/chat/completions']);
  });

  it(`${CASES} seeded hostile requests (seed ${SEED}): no 5xx, no drop, no leak, healthy after, trail verifies`, async () => {
    const r = prng(SEED);
    const histogram = new Map();
    const kinds = new Map();
    const failures = [];
    const canaries = [UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY, MISTRAL_UPSTREAM_KEY,
      ...Object.values(stack.keys).map((k) => k.key)];
    let unsendable = 0;
    let devServerRetries = 0;
    const served = new Set();
    let slowest = 0;
    const started = Date.now();
    try {
      const cases = Array.from({ length: CASES }, (_, i) => ({ i, ...makeCase(r, stack.keys) }));
      let next = 0;
      const worker = async () => {
        while (next < cases.length) {
          const c = cases[next++];
          let res = await send(stack.url, c);
          if (devServerArtifact(res)) {
            // Not the Worker's answer (see the agent above): the dev server's own HTTP layer read
            // a neighbour's unread body bytes as this request. Send the case once more.
            devServerRetries++;
            res = await send(stack.url, c);
          }
          if (res.unsendable) { unsendable++; continue; }
          const label = res.error ? 'dropped' : String(res.status);
          histogram.set(label, (histogram.get(label) ?? 0) + 1);
          kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
          const what = `case ${c.i} (seed ${SEED}): ${c.method} ${c.path.slice(0, 80)} kind=${c.kind} tenant=${c.tenant}`;
          if (res.error) { failures.push(`${what}: ${res.error}`); continue; }
          slowest = Math.max(slowest, res.ms);
          if (res.status === 200 && c.path !== '/healthz') served.add(res.headers['x-request-id']);
          if (res.status >= 500) failures.push(`${what}: ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
          const text = res.body.toString('latin1') + JSON.stringify(res.headers);
          for (const canary of canaries) {
            if (text.includes(canary)) failures.push(`${what}: a secret (${canary.slice(0, 10)}...) in the response`);
          }
          if (res.status >= 400 && c.method !== 'HEAD' && res.status !== 421 && res.body.length > 0) {
            // Errors are OpenAI-shaped (or Anthropic-shaped, which carries the same `error` object).
            let parsed;
            try { parsed = JSON.parse(res.body.toString('utf8')); } catch { parsed = null; }
            if (!parsed?.error?.code && !parsed?.error?.type) failures.push(`${what}: ${res.status} error body not in OpenAI's shape: ${JSON.stringify(res.headers)} ${res.body.toString('latin1').slice(0, 200)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const elapsed = Date.now() - started;
      console.log(`hostile: ${CASES} cases (seed ${SEED}) in ${elapsed} ms; ${unsendable} not sendable by Node; ${devServerRetries} resent after the dev server misread them; slowest ${slowest} ms`);
      console.log(`hostile: status histogram ${JSON.stringify(Object.fromEntries([...histogram].sort()))}`);
      console.log(`hostile: body kinds ${JSON.stringify(Object.fromEntries([...kinds].sort()))}`);

      // Healthy afterwards: health, and a plain request served.
      const health = await fetch(`${stack.url}/healthz`);
      assert.equal(health.status, 200);
      const ok = await fetch(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.keys.multi.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still there?' }] }),
      });
      assert.equal(ok.status, 200, await ok.text());
      // Past the ledgers' forward delay, one batch age and one heartbeat (reservations of
      // budgeted requests cut short expire in 3 s).
      await new Promise((res) => setTimeout(res, 3000 + AUDIT_POLICY.forwardMs + AUDIT_POLICY.maxAgeMs + AUDIT_POLICY.heartbeatMs + 1000));
    } finally {
      agent.destroy();
      await stack.shutdown();
    }
    try {
      assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures`);
      const logs = stack.logs.join('');
      for (const canary of [...canaries, PROMPT_CANARY]) {
        assert.ok(!logs.includes(canary), `${canary.slice(0, 12)}... appears in the Worker's log`);
      }
      assert.ok(!/wasm trapped|panicked/.test(logs), 'no panic in the Worker');

      const stoppedAt = Date.now();
      const dir = scratchDir('asc-hostile-');
      await downloadAuditBucket(stack.persist, dir);
      const report = verify(dir, stack.publicKeys, stoppedAt);
      assert.equal(report.ok, true, JSON.stringify(report.problems ?? report, null, 1).slice(0, 2000));
      const chained = files(dir).filter((f) => f.includes('/batches/'))
        .flatMap((f) => gunzipSync(readFileSync(f)).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      // Every request served is in the trail (those refused before a tenant is known are not
      // audited: docs/ARCHITECTURE.md, known gaps).
      const recorded = new Set(chained.map((e) => e.record.request_id));
      const missing = [...served].filter((id) => !recorded.has(id));
      assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${served.size} served requests are not in the trail`);
      for (const e of chained) {
        for (const [path, s] of strings(e.record)) {
          assert.ok(Buffer.byteLength(s) <= MAX_FIELD_BYTES, `${path} holds ${Buffer.byteLength(s)} bytes`);
        }
      }
      const everything = files(dir).map((f) => (f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f)).toString('utf8')).join('\n');
      for (const canary of [...canaries, PROMPT_CANARY]) {
        assert.ok(!everything.includes(canary), `${canary.slice(0, 12)}... appears in the audit bucket`);
      }
      console.log(`hostile: ${chained.length} audit records chained; trail verifies`);
    } finally {
      await stack.stop();
      stack = undefined;
    }
  });
});
