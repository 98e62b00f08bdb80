// SHA-256 per call on workerd, by input size: the sha2 crate compiled to wasm (as in the Worker)
// against node:crypto's createHash (as js/host.js's sha256Into calls it, on a view of wasm
// memory). Each figure: one request that hashes 20,000 times, its wall time over 20,000, minus a
// loop that only makes the view; the median of 7. workerd's clock does not move while code runs,
// so the time is taken from outside. Run from the repository: `node tests/bench/sha-cutoff/run.mjs`
// (after `source scripts/lib.sh`).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, convertV4MiniflareOptions } from 'miniflare';

const HERE = dirname(fileURLToPath(import.meta.url));
execFileSync('cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown', '--quiet'], { cwd: HERE, stdio: 'inherit' });
const built = join(HERE, 'target/wasm32-unknown-unknown/release/sha_cutoff.wasm');
const wasm = join(HERE, 'target/sha.wasm');
execFileSync('wasm-opt', ['-Oz', '--enable-bulk-memory', '--enable-nontrapping-float-to-int', built, '-o', wasm]);

const script = `
import wasm from './sha.wasm';
import { createHash } from 'node:crypto';
const exports = new WebAssembly.Instance(wasm, {}).exports;
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    const len = Number(q.get('len')), n = Number(q.get('n')), how = q.get('how');
    const at = exports.input();
    const memory = new Uint8Array(exports.memory.buffer);
    for (let i = 0; i < len; i++) memory[at + i] = (i * 31) & 255;
    let sum = 0;
    if (how === 'wasm') sum = exports.hash(len, n);
    for (let i = 0; how !== 'wasm' && i < n; i++) {
      const view = new Uint8Array(exports.memory.buffer, at, len);
      sum += how === 'node' ? createHash('sha256').update(view).digest()[0] : view[0];
    }
    return new Response(String(sum));
  },
};`;
const mf = new Miniflare(convertV4MiniflareOptions({
  workers: [{
    name: 'sha',
    modulesRoot: join(HERE, 'target'),
    modules: [
      { type: 'ESModule', path: join(HERE, 'target/index.mjs'), contents: script },
      { type: 'CompiledWasm', path: wasm, contents: readFileSync(wasm) },
    ],
    compatibilityDate: '2025-09-01',
    compatibilityFlags: ['nodejs_compat'],
  }],
}));
const url = await mf.ready;
const N = 20_000;
async function usPerCall(how, len) {
  const start = process.hrtime.bigint();
  await (await fetch(`${url}?how=${how}&len=${len}&n=${N}`)).text();
  return Number(process.hrtime.bigint() - start) / 1e3 / N;
}
async function median(how, len) {
  const runs = [];
  for (let i = 0; i < 7; i++) runs.push(await usPerCall(how, len));
  return runs.sort((a, b) => a - b)[3];
}
for (const how of ['none', 'wasm', 'node']) await usPerCall(how, 64); // warm-up
console.log('| bytes | wasm (sha2 at "z") us | node:crypto us |');
console.log('|---|---|---|');
for (const len of [64, 128, 200, 256, 320, 410, 512, 1024, 4096]) {
  const loop = await median('none', len);
  const inWasm = (await median('wasm', len)) - loop;
  const native = (await median('node', len)) - loop;
  console.log(`| ${len} | ${inWasm.toFixed(2)} | ${native.toFixed(2)} |`);
}
await mf.dispose();
