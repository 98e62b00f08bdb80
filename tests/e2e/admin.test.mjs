// The admin plane end to end on workerd: a local OIDC issuer (tests/e2e/oidc.mjs) signs tokens;
// the Worker fetches its JWKS through the egress gate, maps groups to roles, serves tenants
// (If-Match, history, diff, rollback) and keys (mint once, list, revoke, rotate with overlap) from
// each tenant's admin object, and records every action in the signed audit trail, which
// `asc audit verify` / `asc audit query --operation admin.*` read back.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { files } from './trail.mjs';
import { join } from 'node:path';
import { startStack, ROOT, AUDIT_POLICY, scratchDir } from './harness.mjs';
import { startIssuer } from './oidc.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ASC = join(ROOT, 'target/debug/asc');
const execFileAsync = promisify(execFile);

let idp;
let stack;
let stackVars;
const secretsShown = [];
const tokensUsed = [];
// Keys refused after their rotation's overlap and after their revocation: key id -> error code,
// looked for in the verified trail at the end.
const deadKeys = new Map();

function as(groups, sub = 'alice@example.com', opts = {}) {
  const t = idp.token({ sub, groups }, opts);
  tokensUsed.push(t);
  return t;
}

async function admin(method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string') body = JSON.stringify(body);
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(`${stack.url}/admin/v1${path}`, { method, headers: h, body });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  if (json && typeof json.secret === 'string') secretsShown.push(json.secret);
  return { status: r.status, headers: r.headers, text, json };
}

const ADMIN = ['demo-admins'];

// The key cache TTL (pipeline Settings::key_cache_ttl_ms): an instance that cached a key record
// before it was revoked or given an expiry accepts the key for at most this long (docs/SECURITY.md).
const KEY_CACHE_TTL_MS = 10_000;

/** The error code of the first 401 `call` gets, within the documented bound. The admin call is
 * served elsewhere than the gateway's requests (the control plane's Worker on workerd, another
 * instance on Spin), so an instance that cached the key's record earlier may accept the key
 * until its cache entry lapses, and no longer. */
async function refusedWithin(call) {
  const deadline = Date.now() + KEY_CACHE_TTL_MS + 1000;
  for (;;) {
    const r = await call();
    if (r.status !== 200 || Date.now() >= deadline) {
      assert.equal(r.status, 401);
      return (await r.json()).error.code;
    }
    await r.arrayBuffer();
    await sleep(250);
  }
}

describe('admin plane', () => {
  before(async () => {
    idp = await startIssuer();
    const issuers = [idp.config([
      { group: 'platform', role: 'platform-admin' },
      { group: 'demo-admins', role: 'tenant-admin', tenant: 'demo' },
      { group: 'multi-admins', role: 'tenant-admin', tenant: 'multi' },
      { group: 'demo-devs', role: 'developer', tenant: 'demo' },
      { group: 'demo-finance', role: 'finance', tenant: 'demo' },
      { group: 'demo-auditors', role: 'auditor', tenant: 'demo' },
    ])];
    stackVars = { ADMIN_ISSUERS: JSON.stringify(issuers) };
    stack = await startStack({ vars: stackVars });
  });
  after(async () => {
    await stack?.stop();
    await idp?.close();
  });

  it('refuses bad tokens with 401: issuer, audience, algorithm, expiry, tampering, unknown key', async () => {
    const good = as(ADMIN);
    assert.equal((await admin('GET', '/tenants/demo', { token: good })).status, 200);
    const me = await admin('GET', '/me', { token: good });
    assert.deepEqual(me.json.roles, ['tenant-admin@demo']);

    const missing = await admin('GET', '/tenants/demo');
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error.code, 'missing_admin_token');

    const now = Math.floor(Date.now() / 1000);
    const [h, p, s] = good.split('.');
    const tamperedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url')), groups: ['platform'] })).toString('base64url');
    const stray = idp.strayKey('ES256');
    const bad = {
      'wrong issuer': idp.token({ sub: 'x', groups: ADMIN, iss: 'https://evil.example.com' }),
      'wrong audience': idp.token({ sub: 'x', groups: ADMIN, aud: 'someone-else' }),
      'expired': idp.token({ sub: 'x', groups: ADMIN, iat: now - 900, exp: now - 600 }),
      'not yet valid': idp.token({ sub: 'x', groups: ADMIN, nbf: now + 600 }),
      'no expiry': idp.token({ sub: 'x', groups: ADMIN, exp: undefined }),
      'alg none': idp.unsigned({ sub: 'x', groups: ADMIN }),
      'HS256 keyed with the public key': idp.hs256WithPublicKey({ sub: 'x', groups: ADMIN }),
      'tampered payload': `${h}.${tamperedPayload}.${s}`,
      'tampered signature': `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`,
      'key not in the JWKS': idp.token({ sub: 'x', groups: ADMIN }, { key: stray }),
      'key of another algorithm': idp.token({ sub: 'x', groups: ADMIN }, { key: idp.keys.ES256, header: { alg: 'RS256' } }),
      'not a JWT': 'hello',
    };
    for (const [what, token] of Object.entries(bad)) {
      const r = await admin('GET', '/tenants/demo', { token });
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_admin_token', what);
      assert.equal(r.text.includes(token.split('.')[2] || token), false, `${what}: the token is not echoed`);
    }
    // Every accepted algorithm works.
    for (const alg of ['RS256', 'ES256', 'EdDSA']) {
      const r = await admin('GET', '/tenants/demo', { token: as(ADMIN, 'alice@example.com', { alg }) });
      assert.equal(r.status, 200, `${alg}: ${r.text}`);
    }
  });

  it('fetches the JWKS again when a token names a new key (IdP key rotation)', async () => {
    const rotated = idp.rotate('EdDSA');
    // Unknown kids refetch at most every 5 s per isolate.
    await sleep(5500);
    const before = idp.fetches;
    const r = await admin('GET', '/tenants/demo', { token: as(ADMIN, 'alice@example.com', { key: rotated }) });
    assert.equal(r.status, 200, r.text);
    assert.ok(idp.fetches > before, 'the JWKS was fetched again');
  });

  it('checks role and tenant on every endpoint: 403', async () => {
    const otherAdmin = as(['multi-admins'], 'mallory@example.com');
    for (const [method, path, body] of [
      ['GET', '/tenants/demo'], ['PUT', '/tenants/demo', {}], ['GET', '/tenants/demo/history'],
      ['GET', '/tenants/demo/keys'], ['POST', '/tenants/demo/keys', {}], ['POST', '/tenants/demo/rollback', { version: 1 }],
    ]) {
      const r = await admin(method, path, { token: otherAdmin, body, headers: { 'if-match': '"1"' } });
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.equal(r.json.error.code, 'admin_forbidden');
    }
    // Its own tenant works.
    assert.equal((await admin('GET', '/tenants/multi', { token: otherAdmin })).status, 200);
    // Read roles cannot write; a token with no mapped group can do nothing.
    const finance = as(['demo-finance'], 'fiona@example.com');
    assert.equal((await admin('PUT', '/tenants/demo', { token: finance, body: {}, headers: { 'if-match': '"1"' } })).status, 403);
    assert.equal((await admin('GET', '/tenants/demo/history', { token: finance })).status, 403);
    assert.equal((await admin('GET', '/tenants/demo/history', { token: as(['demo-auditors'], 'aud@example.com') })).status, 200);
    assert.equal((await admin('POST', '/tenants/demo/keys', { token: as(['demo-auditors'], 'aud@example.com'), body: {} })).status, 403);
    assert.equal((await admin('GET', '/tenants/demo', { token: as(['nobody'], 'x@example.com') })).status, 403);
    // A platform admin reaches every tenant.
    assert.equal((await admin('GET', '/tenants/limited', { token: as(['platform'], 'root@example.com') })).status, 200);
  });

  it('puts configs with If-Match, refuses stale and concurrent edits, validates with paths, diffs and rolls back byte for byte', async () => {
    const token = as(ADMIN);
    const v1 = await admin('GET', '/tenants/demo', { token });
    assert.equal(v1.status, 200);
    const version = Number(v1.headers.get('etag').replaceAll('"', ''));
    const base = JSON.parse(v1.text);

    // An odd but valid layout: the bytes are kept exactly.
    const raised = { ...base, budgets: [{ id: 'monthly', applies_to: 'tenant', limit_usd_micros: 500000000, period: 'monthly' }] };
    const oddBytes = `{\n    "schema_version" :1,${JSON.stringify(raised).slice(1).replace('"schema_version":1,', '')}\n`;
    assert.ok(JSON.parse(oddBytes));

    const noMatch = await admin('PUT', '/tenants/demo', { token, body: oddBytes });
    assert.equal(noMatch.status, 428);
    assert.equal(noMatch.json.error.code, 'if_match_required');

    const invalid = await admin('PUT', '/tenants/demo', {
      token, headers: { 'if-match': `"${version}"` },
      body: { ...base, residency: 'eu', budgets: [{ id: 'b', applies_to: 'tenant', limit_usd_micros: -1, period: 'hourly' }] },
    });
    assert.equal(invalid.status, 400, invalid.text);
    assert.equal(invalid.json.error.code, 'invalid_tenant_config');
    const paths = invalid.json.error.details.map((d) => d.path);
    assert.ok(paths.includes('residency'), paths.join());
    assert.ok(paths.some((p) => p.startsWith('budgets[0]')), paths.join());

    const put = await admin('PUT', '/tenants/demo', { token, headers: { 'if-match': `"${version}"` }, body: oddBytes });
    assert.equal(put.status, 200, put.text);
    const v2 = put.json.version.version;
    assert.equal(v2, version + 1);
    assert.equal(put.headers.get('etag'), `"${v2}"`);

    // The same stale version again: 412.
    const stale = await admin('PUT', '/tenants/demo', { token, headers: { 'if-match': `"${version}"` }, body: oddBytes });
    assert.equal(stale.status, 412);
    assert.equal(stale.json.error.code, 'version_mismatch');

    // Two editors at once from the same version: exactly one wins.
    const edits = await Promise.all([1, 2].map((n) => admin('PUT', '/tenants/demo', {
      token: as(ADMIN, `editor${n}@example.com`), headers: { 'if-match': `"${v2}"` },
      body: { ...raised, limits: { requests_per_minute: 1000 + n } },
    })));
    assert.deepEqual(edits.map((e) => e.status).sort(), [200, 412], edits.map((e) => e.text).join('\n'));
    const v3 = v2 + 1;

    const history = await admin('GET', '/tenants/demo/history', { token });
    assert.deepEqual(history.json.versions.map((v) => v.version), [v3, v2, version]);
    assert.equal(history.json.versions[1].author.subject, 'alice@example.com');

    const diff = await admin('GET', `/tenants/demo/diff/${version}/${v2}`, { token });
    assert.equal(diff.status, 200);
    const budgetChange = diff.json.changes.find((c) => c.path === 'budgets');
    assert.ok(budgetChange, JSON.stringify(diff.json.changes));

    // Roll back to v2: a new version whose bytes are v2's exactly.
    const rb = await admin('POST', '/tenants/demo/rollback', { token, headers: { 'if-match': `"${v3}"` }, body: { version: v2 } });
    assert.equal(rb.status, 200, rb.text);
    const now = await admin('GET', '/tenants/demo', { token });
    assert.equal(now.headers.get('etag'), `"${v3 + 1}"`);
    assert.equal(now.text, oddBytes, 'rollback restores the bytes exactly');
    const old = await admin('GET', `/tenants/demo/versions/${version}`, { token });
    assert.equal(old.text, v1.text);
    assert.equal((await admin('GET', '/tenants/demo/versions/999', { token })).status, 404);

    // The request path serves the new config: the budget shows in /v1/usage.
    const usage = await fetch(`${stack.url}/v1/usage`, { headers: { authorization: `Bearer ${stack.keys.demo.key}` } });
    const report = await usage.json();
    assert.ok(report.budgets.some((b) => b.budget_id === 'monthly' && b.limit_micros === 500000000), JSON.stringify(report));
    // Finance reads the tenant's usage and budgets (no key's); auditors may not.
    const fin = await admin('GET', '/tenants/demo/usage', { token: as(['demo-finance'], 'fiona@example.com') });
    assert.equal(fin.status, 200, fin.text);
    assert.ok(fin.json.budgets.some((b) => b.budget_id === 'monthly' && b.limit_micros === 500000000), fin.text);
    assert.equal(fin.json.key_id, undefined);
    assert.equal((await admin('GET', '/tenants/demo/usage', { token: as(['demo-auditors'], 'aud@example.com') })).status, 403);
  });

  it('after a restart, reads older versions from storage when asked: exact bytes, diffs and rollbacks', async () => {
    const token = as(ADMIN);
    const before = await admin('GET', '/tenants/demo/history', { token });
    const versions = before.json.versions.map((v) => v.version);
    assert.ok(versions.length >= 3, before.text);
    const oldest = versions[versions.length - 1];
    const bytes = {};
    for (const v of versions) bytes[v] = (await admin('GET', `/tenants/demo/versions/${v}`, { token })).text;
    // The admin object starts again from storage: it reads every version's description and only
    // the newest's config (on Spin, the store's row, whole).
    await stack.kill();
    await stack.restart(stackVars);
    const after = await admin('GET', '/tenants/demo/history', { token: as(ADMIN) });
    assert.deepEqual(after.json.versions, before.json.versions);
    for (const v of versions) {
      const r = await admin('GET', `/tenants/demo/versions/${v}`, { token });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, bytes[v], `version ${v}, byte for byte`);
    }
    const diff = await admin('GET', `/tenants/demo/diff/${oldest}/${versions[0]}`, { token });
    assert.equal(diff.status, 200, diff.text);
    assert.ok(diff.json.changes.length > 0);
    const rb = await admin('POST', '/tenants/demo/rollback', { token, headers: { 'if-match': `"${versions[0]}"` }, body: { version: oldest } });
    assert.equal(rb.status, 200, rb.text);
    const now = await admin('GET', '/tenants/demo', { token });
    assert.equal(now.headers.get('etag'), `"${versions[0] + 1}"`);
    assert.equal(now.text, bytes[oldest], 'the rollback stored the oldest version\'s bytes');
    // Put the newest back, as the later tests expect it.
    const back = await admin('POST', '/tenants/demo/rollback', { token, headers: { 'if-match': `"${versions[0] + 1}"` }, body: { version: versions[0] } });
    assert.equal(back.status, 200, back.text);
  });

  it('mints keys shown once, lists without secrets, revokes and rotates with overlap', async () => {
    const token = as(ADMIN);
    const minted = await admin('POST', '/tenants/demo/keys', { token, body: { scopes: ['models'], label: 'ci' } });
    assert.equal(minted.status, 201, minted.text);
    const secret = minted.json.secret;
    assert.match(secret, /^asc_[A-Za-z0-9]{38}$/);
    const keyId = minted.json.key.key_id;
    const models = (key) => fetch(`${stack.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal((await models(secret)).status, 200);

    const list = await admin('GET', '/tenants/demo/keys', { token });
    assert.ok(list.json.keys.some((k) => k.key_id === keyId && k.label === 'ci'));
    assert.equal(list.text.includes(secret), false);
    assert.equal(/key_hash|[0-9a-f]{64}/.test(list.text), false, 'no hashes listed');

    // Rotation with an overlap: both keys work; then the old one expires.
    const rotated = await admin('POST', `/tenants/demo/keys/${keyId}/rotate`, { token, body: { overlap_seconds: 2 } });
    assert.equal(rotated.status, 201, rotated.text);
    const next = rotated.json.secret;
    assert.notEqual(next, secret);
    assert.deepEqual(rotated.json.key.scopes, ['models']);
    assert.equal((await models(secret)).status, 200);
    assert.equal((await models(next)).status, 200);
    await sleep(2500);
    assert.equal(await refusedWithin(() => models(secret)), 'expired_api_key');
    deadKeys.set(keyId, 'expired_api_key');

    const revoked = await admin('POST', `/tenants/demo/keys/${rotated.json.key.key_id}/revoke`, { token });
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(await refusedWithin(() => models(next)), 'revoked_api_key');
    deadKeys.set(rotated.json.key.key_id, 'revoked_api_key');

    // Developers act on their own keys only.
    const dev1 = as(['demo-devs'], 'dev1@example.com');
    const dev2 = as(['demo-devs'], 'dev2@example.com');
    const own = await admin('POST', '/tenants/demo/keys', { token: dev1, body: {} });
    assert.equal(own.status, 201, own.text);
    const theirs = await admin('POST', `/tenants/demo/keys/${own.json.key.key_id}/revoke`, { token: dev2 });
    assert.equal(theirs.status, 403);
    const dev2List = await admin('GET', '/tenants/demo/keys', { token: dev2 });
    assert.equal(dev2List.json.keys.length, 0);
    assert.equal((await admin('POST', `/tenants/demo/keys/${own.json.key.key_id}/revoke`, { token: dev1 })).status, 200);
    assert.equal((await admin('POST', '/tenants/demo/keys/k_nope/revoke', { token })).status, 404);
  });

  it('lists keys a page at a time: newest first or in creation order, after a key id, bad parameters refused', async () => {
    const token = as(ADMIN);
    const ids = [];
    for (const label of ['page-a', 'page-b', 'page-c']) {
      const r = await admin('POST', '/tenants/demo/keys', { token, body: { scopes: ['models'], label } });
      assert.equal(r.status, 201, r.text);
      ids.push(r.json.key.key_id);
      await sleep(5); // a later millisecond: creation order is by time, then id
    }
    const page = async (query) => {
      const r = await admin('GET', `/tenants/demo/keys?${query}`, { token });
      assert.equal(r.status, 200, `${query}: ${r.text}`);
      return r.json;
    };
    // The newest first: the three just minted, newest at the top.
    const first = await page('limit=2');
    assert.deepEqual(first.keys.map((k) => k.key_id), [ids[2], ids[1]]);
    assert.equal(first.has_more, true);
    assert.equal(first.last_id, ids[1]);
    const second = await page(`limit=2&after=${first.last_id}`);
    assert.equal(second.keys[0].key_id, ids[0]);
    // Following every page lists each key once, the same as one page of them all, and creation
    // order is the same list reversed.
    const all = (await page('limit=1000')).keys.map((k) => k.key_id);
    const followed = [];
    for (let after = null, more = true; more;) {
      const p = await page(`limit=2${after ? `&after=${after}` : ''}`);
      followed.push(...p.keys.map((k) => k.key_id));
      [after, more] = [p.last_id, p.has_more];
    }
    assert.deepEqual(followed, all);
    assert.equal(new Set(all).size, all.length);
    assert.ok(ids.every((id) => all.includes(id)), 'the three minted here are listed');
    assert.deepEqual((await page('order=asc&limit=1000')).keys.map((k) => k.key_id), [...all].reverse());
    for (const [query, param] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['after=k_000000000000', 'after'], ['order=up', 'order'], ['status=active', 'status']]) {
      const r = await admin('GET', `/tenants/demo/keys?${query}`, { token });
      assert.equal(r.status, 400, `${query}: ${r.text}`);
      assert.equal(r.json.error.code, 'invalid_request', query);
      assert.equal(r.json.error.param, param, query);
    }
  });

  it('the CLI drives the same API: asc tenant get/push/history/diff/rollback, asc key mint/list/revoke', async () => {
    const env = { ...process.env, ASC_ADMIN_URL: stack.url, ASC_ADMIN_TOKEN: as(['multi-admins'], 'cli@example.com') };
    // Asynchronous: the issuer answering the gateway's JWKS fetches runs in this process, and a
    // synchronous child would block it for as long as the CLI waits on the gateway.
    const asc = async (...args) => (await execFileAsync(ASC, args, { env, encoding: 'utf8' })).stdout;
    const dir = scratchDir('asc-admin-cli-');
    const file = join(dir, 'multi.json');
    await asc('tenant', 'get', 'multi', '--out', file);
    const original = readFileSync(file, 'utf8');
    const edited = JSON.stringify({ ...JSON.parse(original), limits: { requests_per_minute: 77 } }, null, 2);
    writeFileSync(file, edited);
    const pushed = JSON.parse(await asc('tenant', 'push', 'multi', file, '--if-match', '1'));
    assert.equal(pushed.version.version, 2);
    // A stale push fails with the API's code; an invalid one lists each error's path.
    await assert.rejects(asc('tenant', 'push', 'multi', file, '--if-match', '1'), (e) => e.stderr.includes('version_mismatch'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...JSON.parse(original), limits: { requests_per_minute: -5 } }));
    await assert.rejects(asc('tenant', 'push', 'multi', join(dir, 'bad.json'), '--if-match', '2'), (e) => e.stderr.includes('limits.requests_per_minute'));
    assert.deepEqual(JSON.parse(await asc('tenant', 'history', 'multi')).versions.map((v) => v.version), [2, 1]);
    const diff = JSON.parse(await asc('tenant', 'diff', 'multi', '1', '2'));
    assert.ok(diff.changes.some((c) => c.path.startsWith('limits')), JSON.stringify(diff));
    await asc('tenant', 'rollback', 'multi', '--to', '1', '--if-match', '2');
    assert.equal(await asc('tenant', 'get', 'multi'), original);

    const minted = await asc('key', 'mint', '--tenant', 'multi', '--scopes', 'models', '--label', 'from-cli');
    const secret = minted.match(/^ASC_API_KEY=(.*)$/m)[1];
    const keyId = minted.match(/^KEY_ID=(.*)$/m)[1];
    secretsShown.push(secret);
    assert.equal((await fetch(`${stack.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } })).status, 200);
    const listed = await asc('key', 'list', '--tenant', 'multi');
    assert.ok(listed.includes(keyId) && !listed.includes(secret));
    // A page of one key a call: the command follows the pages and prints every key once.
    const second = await asc('key', 'mint', '--tenant', 'multi', '--scopes', 'models', '--label', 'from-cli-2');
    secretsShown.push(second.match(/^ASC_API_KEY=(.*)$/m)[1]);
    const listedBoth = await asc('key', 'list', '--tenant', 'multi');
    const byOne = JSON.parse(await asc('key', 'list', '--tenant', 'multi', '--page-size', '1')).keys.map((k) => k.key_id);
    assert.deepEqual(byOne, JSON.parse(listedBoth).keys.map((k) => k.key_id));
    assert.ok(byOne.length >= 2 && byOne.includes(keyId), JSON.stringify(byOne));
    await asc('key', 'revoke', '--tenant', 'multi', keyId);
    assert.equal(await refusedWithin(() => fetch(`${stack.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } })), 'revoked_api_key');
    // Another tenant is refused.
    await assert.rejects(asc('key', 'list', '--tenant', 'demo'), (e) => e.stderr.includes('admin_forbidden'));
  });

  it('asc login: the device code flow saves a token (mode 0600) the admin commands use', async () => {
    idp.login.sub = 'device-user@example.com';
    idp.login.groups = ['multi-admins'];
    const config = scratchDir('asc-login-');
    const env = { ...process.env, XDG_CONFIG_HOME: config, ASC_ADMIN_URL: stack.url };
    delete env.ASC_ADMIN_TOKEN;
    // Asynchronously: the issuer answers the CLI's polls from this process.
    const { stderr } = await execFileAsync(ASC, ['login', '--issuer', idp.url, '--client-id', 'asc-admin'], { env });
    assert.match(stderr, /WDJB-MJHT/);
    const saved = join(config, 'asc', 'admin-token');
    assert.equal(statSync(saved).mode & 0o777, 0o600);
    tokensUsed.push(readFileSync(saved, 'utf8'));
    const { stdout } = await execFileAsync(ASC, ['key', 'list', '--tenant', 'multi'], { env });
    assert.ok(JSON.parse(stdout).keys.length >= 1);
    const me = await admin('GET', '/me', { token: readFileSync(saved, 'utf8') });
    assert.equal(me.json.subject, 'device-user@example.com');
  });

  it('records every admin action in the verified audit trail, never a token or secret', async () => {
    await sleep(AUDIT_POLICY.forwardMs + AUDIT_POLICY.maxAgeMs + AUDIT_POLICY.heartbeatMs + 1000);
    // The admin plane's audit search (the dashboard's): an auditor pages through the config
    // writes; each names the batch object that holds it. Compared below with the verified trail.
    const searched = [];
    let cursor = '';
    do {
      const q = `operation=admin.tenant.put&limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await admin('GET', `/tenants/demo/audit?${q}`, { token: as(['demo-auditors'], 'audrey@example.com') });
      assert.equal(r.status, 200, r.text);
      for (const d of r.json.data) {
        assert.match(d.batch, /^audit\/[a-z0-9-]+\/batches\/\d{20}-\d{20}\.jsonl\.gz$/);
        assert.equal(d.record.tenant_id, 'demo');
        searched.push(d.record.request_id);
      }
      cursor = r.json.next_cursor;
    } while (cursor);
    await stack.shutdown();
    const stoppedAt = Date.now();
    const dir = scratchDir('asc-admin-audit-');
    await stack.downloadAudit(dir);
    const keysArgs = ['--keys', stack.publicKeys, '--now', String(stoppedAt), '--heartbeat-ms', String(AUDIT_POLICY.heartbeatMs)];
    const verified = JSON.parse(execFileSync(ASC, ['audit', 'verify', dir, ...keysArgs, '--json'], { encoding: 'utf8' }));
    assert.equal(verified.ok, true, JSON.stringify(verified.problems));

    const query = (op) => JSON.parse(execFileSync(ASC, ['audit', 'query', dir, ...keysArgs, '--operation', op, '--format', 'json'], { encoding: 'utf8' }));
    const all = query('admin.*');
    const records = (Array.isArray(all) ? all : all.records).map((r) => r.record ?? r);
    assert.ok(records.length >= 30, `${records.length} admin records`);
    assert.ok(records.every((r) => r.operation.startsWith('admin.')));

    // Who raised the budget: the put that changed budgets, with its versions and digest.
    const puts = records.filter((r) => r.operation === 'admin.tenant.put' && r.outcome === 'ok');
    const raise = puts.find((r) => r.admin.changed_paths.includes('budgets'));
    assert.ok(raise, JSON.stringify(puts.map((p) => p.admin)));
    assert.equal(raise.admin.subject, 'alice@example.com');
    assert.equal(raise.admin.issuer, idp.issuer);
    assert.deepEqual(raise.admin.roles, ['tenant-admin@demo']);
    assert.equal(raise.admin.version_after, raise.admin.version_before + 1);
    assert.match(raise.admin.change_sha256, /^[0-9a-f]{64}$/);
    assert.match(raise.admin.config_sha256_after, /^[0-9a-f]{64}$/);
    assert.equal(raise.tenant_id, 'demo');
    // Refusals are recorded too: the other tenant's admin, the stale and the concurrent edit.
    assert.ok(records.some((r) => r.outcome === 'refused' && r.error_code === 'admin_forbidden' && r.admin.subject === 'mallory@example.com'));
    assert.ok(records.filter((r) => r.error_code === 'version_mismatch').length >= 2);
    assert.ok(records.some((r) => r.operation === 'admin.tenant.rollback' && r.outcome === 'ok'));
    const putIds = records.filter((r) => r.operation === 'admin.tenant.put' && r.tenant_id === 'demo').map((r) => r.request_id);
    assert.deepEqual([...searched].sort(), putIds.sort(), 'the search found every config write of demo, once');
    for (const op of ['admin.key.mint', 'admin.key.rotate', 'admin.key.revoke']) {
      assert.ok(query(op).length !== 0, op);
    }
    // Who presented a dead key, and when: the attempts with the rotated-out and the revoked key
    // are in their tenant's verified trail, refused with the code the client got.
    const listed = query('models.list');
    const modelRecords = (Array.isArray(listed) ? listed : listed.records).map((r) => r.record ?? r);
    assert.equal(deadKeys.size, 2);
    for (const [keyId, code] of deadKeys) {
      const attempts = modelRecords.filter((r) => r.key_id === keyId && r.outcome === 'refused');
      assert.ok(attempts.length >= 1, `${keyId}: no refused attempt in the trail`);
      for (const r of attempts) {
        assert.deepEqual([r.tenant_id, r.status, r.error_code], ['demo', 401, code], JSON.stringify(r));
      }
    }

    // Requests refused before their token was verified have no admin or tenant: the region's
    // trail counts them (operation `admin`), by code and client address, never the token.
    const unverifiedListed = query('admin');
    const unverified = (Array.isArray(unverifiedListed) ? unverifiedListed : unverifiedListed.records).map((r) => r.record ?? r);
    const countOf = (code) => unverified.filter((r) => r.error_code === code).reduce((n, r) => n + r.refusals.count, 0);
    assert.ok(countOf('missing_admin_token') >= 1, JSON.stringify(unverified));
    assert.ok(countOf('invalid_admin_token') >= 12, JSON.stringify(unverified));
    for (const r of unverified) {
      assert.deepEqual([r.tenant_id, r.status, r.outcome], [null, 401, 'refused'], JSON.stringify(r));
      assert.equal(r.refusals.client, '127.0.0.1');
    }

    const everything = files(dir).map((f) => (f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f)).toString('utf8')).join('\n')
      + stack.logs.join('');
    for (const s of secretsShown) assert.equal(everything.includes(s), false, 'a minted key appears in the trail or logs');
    for (const t of tokensUsed) assert.equal(everything.includes(t.split('.')[2]), false, 'a token appears in the trail or logs');
  });
});
