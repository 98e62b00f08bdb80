// The two Workers of each region, as wrangler reads their configs (wrangler.toml: the request
// plane; wrangler.control.toml: the control plane): they must name each other, agree on every var
// (each validates the deployment itself and fails closed on a bad value, so a difference would
// mean two regions in one deployment), share the config KV, and keep the objects and the audit
// bucket on the control plane only, in the region's storage jurisdiction.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
