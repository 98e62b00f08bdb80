// Admin changes whose writes to the config store (KV) fail, end to end on workerd and Spin: the
// change is stored and recorded and answered with `published: false`, the request path still
// reads the old records, and once the store takes writes again the host's own retry (the admin
// store's Durable Object alarm; Spin's flush endpoint) publishes them, with no further admin
// call. The fault `ASC_FAULT_PUBLISH_REFUSED=1` (loopback region only) makes every admin-store
// write to KV fail; the runtime is killed and restarted to turn it on and off, as an outage and
// a recovery would.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { startStack, ROOT, scratchDir } from './harness.mjs';
import { startIssuer } from './oidc.mjs';

const execFileAsync = promisify(execFile);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The longest a stored change may wait for its retry once KV is back: the alarm's first
// retries (5 s, 10 s) or the harness's flush every second, the key cache (10 s), a restart.
const RECOVERY_MS = 60_000;

let idp;
let stack;
let vars;

async function admin(method, path, token, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${stack.url}/admin/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, text, json: JSON.parse(text) };
}

async function models(secret) {
  const r = await fetch(`${stack.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
  const json = await r.json();
  return { status: r.status, code: json.error?.code };
}

/** Polls `call` until `ok` holds of its result, for up to RECOVERY_MS; the last result. */
async function eventually(call, ok) {
  const deadline = Date.now() + RECOVERY_MS;
  for (;;) {
    const r = await call();
    if (ok(r) || Date.now() > deadline) return r;
    await sleep(500);
  }
}

describe('admin changes the config store refused', () => {
  before(async () => {
    idp = await startIssuer();
    vars = { ADMIN_ISSUERS: JSON.stringify([idp.config([{ group: 'demo-admins', role: 'tenant-admin', tenant: 'demo' }])]) };
    stack = await startStack({ vars });
  });
  after(async () => {
    await stack?.stop();
    await idp?.close();
  });

  it('are stored and recorded, answered as not published, and published by the retry once KV is back', async () => {
    const token = idp.token({ sub: 'alice@example.com', groups: ['demo-admins'] });
    const first = await admin('POST', '/tenants/demo/keys', token, {});
    assert.equal(first.status, 201, first.text);
    assert.equal(first.json.published, true);
    assert.equal((await models(first.json.secret)).status, 200);

    // KV refuses the admin stores' writes.
    await stack.kill();
    await stack.restart({ ...vars, ASC_FAULT_PUBLISH_REFUSED: '1' });
    const revoked = await admin('POST', `/tenants/demo/keys/${first.json.key.key_id}/revoke`, token);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.json.key.status, 'revoked');
    assert.equal(revoked.json.published, false);
    const minted = await admin('POST', '/tenants/demo/keys', token, {});
    assert.equal(minted.status, 201, minted.text);
    assert.equal(minted.json.published, false);
    // The store has both; the request path does not have the new key.
    const listed = await admin('GET', '/tenants/demo/keys', token);
    const status = Object.fromEntries(listed.json.keys.map((k) => [k.key_id, k.status]));
    assert.equal(status[first.json.key.key_id], 'revoked');
    assert.equal(status[minted.json.key.key_id], 'active');
    assert.deepEqual(await models(minted.json.secret), { status: 401, code: 'invalid_api_key' });
    // The CLI says so on a config push (asynchronous: the issuer runs in this process).
    const env = { ...process.env, ASC_ADMIN_URL: stack.url, ASC_ADMIN_TOKEN: token };
    const asc = (...args) => execFileAsync(join(ROOT, 'target/debug/asc'), args, { env, encoding: 'utf8' });
    const file = join(scratchDir('asc-publish-'), 'demo.json');
    await asc('tenant', 'get', 'demo', '--out', file);
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), limits: { requests_per_minute: 77 } }));
    const pushed = await asc('tenant', 'push', 'demo', file, '--if-match', '1');
    assert.equal(JSON.parse(pushed.stdout).published, false);
    assert.match(pushed.stderr, /warning: stored and recorded, but the gateway's config store refused the write/);

    // KV is back. No admin call is made: the retry alone publishes both.
    await stack.kill();
    await stack.restart(vars);
    const works = await eventually(() => models(minted.json.secret), (r) => r.status === 200);
    assert.equal(works.status, 200, 'the key minted during the outage works');
    const refused = await eventually(() => models(first.json.secret), (r) => r.status === 401);
    assert.deepEqual(refused, { status: 401, code: 'revoked_api_key' });
  });
});
