// The request plane's Worker on its own (workerd via Miniflare, the built bundle): `/admin` and
// `/admin/...` go to the control plane over the CONTROL binding, unchanged; without the binding
// they get a 404 in OpenAI's error shape, and a control plane that fails gets a 503, never the
// gateway's own routes. The full stack (both Workers) is in tests/e2e.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = join(ROOT, 'edge/cloudflare/build');
const COMPAT_DATE = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date = "(.*)"/m)[1];
const BUILT = existsSync(join(BUILD, 'index.js'));

// A stand-in control plane: echoes what reached it, or fails on `/admin/v1/fail`.
const CONTROL = `export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/admin/v1/fail') throw new Error('control plane down');
    return Response.json({ method: request.method, url: request.url, host: request.headers.get('host'),
      authorization: request.headers.get('authorization'), body: await request.text() });
  },
};`;

describe('the request plane alone', { skip: BUILT ? false : 'no build (scripts/build-worker)' }, () => {
  let mf;
  const worker = (name, bindings = {}) => ({
    name,
    modules: [
      { type: 'ESModule', path: join(BUILD, 'index.js') },
      { type: 'CompiledWasm', path: join(BUILD, 'index_bg.wasm') },
    ],
    modulesRoot: BUILD,
    compatibilityDate: COMPAT_DATE,
    compatibilityFlags: ['nodejs_compat'],
    bindings: { ASC_REGION: 'local', KEY_HASH_SECRET: 'k'.repeat(64) },
    kvNamespaces: { ASC_CONFIG: 'asc-config-unit' },
    ...bindings,
  });
  before(async () => {
    mf = new Miniflare(convertV4MiniflareOptions({
      cf: false,
      workers: [
        worker('alone'),
        worker('joined', { serviceBindings: { CONTROL: 'control' } }),
        { name: 'control', modules: true, script: CONTROL, compatibilityDate: COMPAT_DATE },
      ],
    }));
    await mf.ready;
  });
  after(async () => { await mf?.dispose(); });

  const call = async (name, path, init = {}) => {
    const w = await mf.getWorker(name);
    const r = await w.fetch(`http://127.0.0.1${path}`, init);
    return { status: r.status, code: r.headers.get('x-asc-error-code'), json: await r.json() };
  };

  it('forwards /admin and /admin/... unchanged: method, path and query, headers, body', async () => {
    const body = JSON.stringify({ label: 'ci' });
    const r = await call('joined', '/admin/v1/tenants/demo/keys?limit=5', {
      method: 'POST', headers: { authorization: 'Bearer admin-token', 'content-type': 'application/json' }, body,
    });
    assert.equal(r.status, 200);
    assert.equal(r.json.method, 'POST');
    assert.equal(new URL(r.json.url).pathname + new URL(r.json.url).search, '/admin/v1/tenants/demo/keys?limit=5');
    assert.equal(r.json.authorization, 'Bearer admin-token');
    assert.equal(r.json.body, body);
    assert.equal(new URL((await call('joined', '/admin')).json.url).pathname, '/admin');
    assert.equal(new URL((await call('joined', '/admin/assets/x.js')).json.url).pathname, '/admin/assets/x.js');
  });

  it('keeps the gateway routes: /v1/... and look-alikes of /admin are not forwarded', async () => {
    for (const path of ['/v1/models', '/administrator', '/v1/admin/x']) {
      const r = await call('joined', path);
      assert.equal(r.json.url, undefined, `${path} reached the control plane`);
      assert.ok(r.status >= 400 && r.status < 500, `${path}: ${r.status}`);
      assert.equal(typeof r.json.error.code, 'string');
    }
  });

  it('without a CONTROL binding: 404 unknown_url, shaped like any unknown route', async () => {
    const unknown = await call('alone', '/administrator');
    assert.equal(unknown.status, 404);
    for (const path of ['/admin', '/admin/', '/admin/v1/me']) {
      const r = await call('alone', path);
      assert.equal(r.status, 404, path);
      assert.equal(r.code, 'unknown_url');
      assert.equal(r.json.error.code, 'unknown_url');
      assert.equal(r.json.error.type, unknown.json.error.type);
      assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
      assert.match(r.json.error.message, /no admin plane/);
    }
  });

  it('a control plane that fails: 503 store_unavailable, its error not passed on', async () => {
    const r = await call('joined', '/admin/v1/fail');
    assert.equal(r.status, 503);
    assert.equal(r.code, 'store_unavailable');
    assert.equal(r.json.error.code, 'store_unavailable');
    assert.equal(JSON.stringify(r.json).includes('control plane down'), false);
  });
});
