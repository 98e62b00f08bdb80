// The two Workers of each region, as wrangler reads their configs (wrangler.toml: the request
// plane; wrangler.control.toml: the control plane): they must name each other, agree on every var
// (each validates the deployment itself and fails closed on a bad value, so a difference would
// mean two regions in one deployment), share the config KV, and keep the objects and the audit
// bucket on the control plane only, in the region's storage jurisdiction.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unstable_readConfig as readConfig } from 'wrangler';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const REQUEST = join(ROOT, 'wrangler.toml');
const CONTROL = join(ROOT, 'wrangler.control.toml');

// The regions deployed (`[env.<id>]`) plus the top level (the loopback development region).
const envs = (file) => [undefined, ...[...readFileSync(file, 'utf8').matchAll(/^\[env\.(\w+)\]$/gm)].map((m) => m[1])];
const read = (config, env) => readConfig({ config, env }, { hideWarnings: true });

describe('wrangler configs: the request and control planes of each region', () => {
  it('deploy the same regions', () => {
    assert.deepEqual(envs(REQUEST), envs(CONTROL));
    assert.ok(envs(REQUEST).length >= 3, 'the local, eu and us regions at least');
  });

  for (const env of envs(REQUEST)) {
    const label = env ?? 'top level (local)';
    it(`${label}: name each other, agree on vars, and split the bindings`, () => {
      const request = read(REQUEST, env);
      const control = read(CONTROL, env);
      assert.equal(control.name, `${request.name}-control`);
      assert.deepEqual(request.vars, control.vars);
      const region = request.vars.ASC_REGION;
      assert.ok(region, 'ASC_REGION is set');

      // The request plane forwards /admin to the control plane and calls its objects.
      assert.deepEqual(request.services.map((s) => ({ ...s })), [{ binding: 'CONTROL', service: control.name }]);
      const defined = new Set(control.durable_objects.bindings.map((b) => b.class_name));
      const created = new Set((control.migrations ?? []).flatMap((m) => m.new_sqlite_classes ?? []));
      assert.deepEqual([...defined].sort(), [...created].sort(), 'every class the control plane binds has its migration');
      assert.ok(request.durable_objects.bindings.length > 0);
      for (const b of request.durable_objects.bindings) {
        assert.equal(b.script_name, control.name, `${b.name} names the control plane's Worker`);
        assert.ok(defined.has(b.class_name), `${b.class_name} is defined by the control plane`);
        const own = control.durable_objects.bindings.find((c) => c.class_name === b.class_name);
        assert.equal(own.name, b.name, 'the same binding name in both Workers');
      }
      assert.equal(control.durable_objects.bindings.some((b) => b.script_name), false);
      assert.equal((request.migrations ?? []).length, 0, 'the request plane defines no objects');

      // One config KV; the audit bucket only on the control plane; the cache only on the request plane.
      const kv = (c) => c.kv_namespaces.find((k) => k.binding === 'ASC_CONFIG')?.id;
      assert.ok(kv(request));
      assert.equal(kv(control), kv(request));
      const buckets = (c) => Object.fromEntries(c.r2_buckets.map((b) => [b.binding, b]));
      assert.deepEqual(Object.keys(buckets(request)), ['ASC_CACHE']);
      assert.deepEqual(Object.keys(buckets(control)), ['AUDIT_BUCKET']);
      if (env !== undefined) {
        const jurisdiction = readFileSync(join(ROOT, 'regions', `${region}.toml`), 'utf8')
          .match(/^storage_jurisdiction = "(\w+)"/m)[1];
        assert.equal(buckets(request).ASC_CACHE.jurisdiction, jurisdiction);
        assert.equal(buckets(control).AUDIT_BUCKET.jurisdiction, jurisdiction);
      }

      // The alert sweep runs on the request plane (the webhook secrets are there), every minute.
      assert.deepEqual(request.triggers?.crons, ['* * * * *']);
      assert.deepEqual(control.triggers?.crons ?? [], []);

      // Only the request plane is reachable from outside; the dashboard's files are the control plane's.
      assert.equal(control.workers_dev, false);
      assert.equal((control.routes ?? []).length, 0, 'the control plane has no routes');
      assert.equal(control.assets?.binding, 'ASSETS');
      assert.equal(request.assets, undefined);
      assert.equal(request.main.endsWith('edge/cloudflare/build/index.js'), true);
      assert.equal(control.main.endsWith('edge/cloudflare/build/control/index.js'), true);
    });
  }
});

// What `wrangler deploy` would upload for a real region (`--dry-run`: bundled, nothing sent):
// the control plane's bundle exports every class the two configs bind, the request plane's
// exports none, and the request plane's wasm has none of the objects' or the admin plane's code.
const BUILT = existsSync(join(ROOT, 'edge/cloudflare/build/control/index.js'));
describe('wrangler deploy --dry-run: what each Worker uploads', { skip: BUILT ? false : 'no build (scripts/build-worker)' }, () => {
  const bundle = (config) => {
    const out = mkdtempSync(join(tmpdir(), 'asc-dry-run-'));
    try {
      execFileSync(join(ROOT, 'node_modules/.bin/wrangler'),
        ['deploy', '--dry-run', '--env', 'eu', '-c', config, '--outdir', out],
        { cwd: ROOT, env: { ...process.env, ASC_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false' }, stdio: 'pipe' });
      const js = readFileSync(join(out, 'index.js'), 'utf8');
      const exported = js.slice(js.lastIndexOf('export {')).match(/\{([^}]*)\}/)[1]
        .split(',').map((e) => e.trim().split(/\s+as\s+/).pop()).filter(Boolean);
      const wasm = readdirSync(out).find((f) => f.endsWith('.wasm'));
      const wasmExports = WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(join(out, wasm))))
        .map((e) => e.name);
      return { exported, wasmExports };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  };

  it('the control plane exports the objects; the request plane only its fetch handler', () => {
    const classes = read(CONTROL, 'eu').durable_objects.bindings.map((b) => b.class_name).sort();
    const control = bundle(CONTROL);
    const request = bundle(REQUEST);
    assert.deepEqual(control.exported.filter((e) => e !== 'default').sort(), classes);
    assert.deepEqual(request.exported, ['default']);
    // wasm-bindgen exports a struct's constructor as `<name>_new`.
    for (const object of ['ledgerobject_new', 'sequencerobject_new', 'boardobject_new', 'adminobject_new']) {
      assert.ok(control.wasmExports.includes(object), `control plane: ${object}`);
      assert.equal(request.wasmExports.includes(object), false, `request plane: no ${object}`);
    }
    assert.ok(request.wasmExports.includes('handle') && control.wasmExports.includes('handle'));
    assert.ok(request.wasmExports.includes('streamrelay_next'), 'the request plane relays streams');
  });
});
