// Bundles the dashboard (dashboard/) into OUT/admin/: one ES module and one stylesheet with
// content hashes in their names, and index.html naming them. Usage: node scripts/build-dashboard.mjs OUT
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { basename, join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] || join(root, 'edge/cloudflare/build/control/assets'));
const admin = join(out, 'admin');
rmSync(admin, { recursive: true, force: true });
mkdirSync(join(admin, 'assets'), { recursive: true });
const result = await build({
  entryPoints: [join(root, 'dashboard/src/main.js')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  entryNames: '[name]-[hash]',
  outdir: join(admin, 'assets'),
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs);
const js = outputs.find((o) => o.endsWith('.js'));
const css = outputs.find((o) => o.endsWith('.css'));
if (!js || !css) throw new Error(`expected one .js and one .css output, got ${outputs.join(', ')}`);
const page = readFileSync(join(root, 'dashboard/index.html'), 'utf8')
  .replace('__JS__', basename(js))
  .replace('__CSS__', basename(css));
writeFileSync(join(admin, 'index.html'), page);
const size = (f) => readFileSync(f).length;
console.error(`[asc] dashboard: ${basename(js)} ${size(js)} B, ${basename(css)} ${size(css)} B`);
