// The audit trail as a test reads it back: the bucket's objects, their chained entries, the
// `asc audit verify` CLI's report, and waiting until everything has shipped.
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { ROOT, AUDIT_POLICY } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path));
    else out.push(path);
  }
  return out;
}

/** Every chained entry in the downloaded batches, in object-name order. */
export function entries(dir) {
  return files(dir)
    .filter((f) => f.includes('/batches/'))
    .sort()
    .flatMap((f) => gunzipSync(readFileSync(f)).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

/** `asc audit verify --json`; it exits 1 when it finds problems, with the report on stdout. */
export function verify(dir, publicKeys, nowMs) {
  const args = ['audit', 'verify', dir, '--keys', publicKeys, '--now', String(nowMs),
    '--heartbeat-ms', String(AUDIT_POLICY.heartbeatMs), '--json'];
  try {
    return JSON.parse(execFileSync(join(ROOT, 'target/debug/asc'), args, { encoding: 'utf8' }));
  } catch (e) {
    if (e.status === 1 && e.stdout) return JSON.parse(e.stdout);
    throw e;
  }
}

export async function drain(stack, extraMs = 0) {
  // Past the ledgers' forward delay, one batch age and one heartbeat, so everything has shipped.
  await sleep(extraMs + AUDIT_POLICY.forwardMs + AUDIT_POLICY.maxAgeMs + AUDIT_POLICY.heartbeatMs + 1000);
}

/** Each stream's records are numbered 1, 2, 3... with no gap. */
export function assertGapFreePerStream(chained) {
  const byStream = new Map();
  for (const e of chained) {
    if (!byStream.has(e.stream)) byStream.set(e.stream, []);
    byStream.get(e.stream).push(e.sequence);
  }
  for (const [stream, seqs] of byStream) {
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), `${stream} is gap-free from 1`);
  }
  return byStream;
}
