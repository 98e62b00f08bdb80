// The scheduler examples a Spin deployment ships (deploy/spin): the Kubernetes CronJob's script
// and the systemd unit's command, run as written against `spin up`, call the flush endpoint with
// the token and succeed; without the right token they fail (curl --fail), so a broken schedule
// shows in the job's or the journal's status.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, ROOT, hostOptions } from './harness.mjs';

const options = hostOptions({ spinOnly: 'the Worker is driven by Durable Object alarms, not a scheduler' });
let stack;
before(async () => { if (!options.skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });

/** The CronJob container's script (the block under `- |`), with its 30 s pause shortened. */
function cronScript() {
  const yaml = readFileSync(join(ROOT, 'deploy/spin/flush-cronjob.yaml'), 'utf8');
  const lines = yaml.split('\n');
  const start = lines.findIndex((l) => l.trim() === '- |') + 1;
  const indent = lines[start].match(/^ */)[0].length;
  const body = [];
  for (const l of lines.slice(start)) {
    if (l.trim() !== '' && l.match(/^ */)[0].length < indent) break;
    body.push(l.slice(indent));
  }
  assert.match(body.join('\n'), /sleep 30/);
  return body.join('\n').replace('sleep 30', 'sleep 0');
}

/** The systemd unit's ExecStart, unescaped as systemd does (%% and C escapes), as argv. */
function unitCommand() {
  const unit = readFileSync(join(ROOT, 'deploy/spin/asc-flush.service'), 'utf8');
  const line = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  const m = line.match(/^ExecStart=\/bin\/sh -c '(.*)'$/);
  assert.ok(m, line);
  return m[1].replaceAll('%%', '%').replaceAll('\\\\', '\\');
}

function run(script, token) {
  try {
    const out = execFileSync('/bin/sh', ['-c', script], {
      env: { PATH: process.env.PATH, ASC_URL: stack.url, ASC_FLUSH_TOKEN: token },
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { ok: true, out };
  } catch (e) {
    return { ok: false, out: `${e.stdout}${e.stderr}` };
  }
}

describe('scheduler examples for Spin', options, () => {
  it('the CronJob script flushes with the token and fails without it', () => {
    const good = run(cronScript(), stack.flushToken);
    assert.ok(good.ok, good.out);
    assert.match(good.out, /"shipped":\d+/);
    const bad = run(cronScript(), 'not-the-token');
    assert.equal(bad.ok, false);
    assert.match(bad.out, /401/);
  });

  it('the systemd unit command flushes with the token and fails without it', () => {
    const good = run(unitCommand(), stack.flushToken);
    assert.ok(good.ok, good.out);
    assert.match(good.out, /"shipped":\d+/);
    assert.equal(run(unitCommand(), 'not-the-token').ok, false);
  });
});
