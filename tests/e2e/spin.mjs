// The Spin side of the end-to-end harness: the component under `spin up` (a Spin CLI named by
// SPIN_BIN), its key-value store seeded in Spin's own SQLite layout, its SQLite database in a temp
// folder, and a local S3-compatible server (moto) as the audit bucket, read back for the verifier.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

/** The Spin CLI to run, or undefined (the Spin scenarios are then skipped). */
export const SPIN_BIN = process.env.SPIN_BIN && existsSync(process.env.SPIN_BIN) ? process.env.SPIN_BIN : undefined;
export const SKIP_REASON = 'SPIN_BIN is not set to a Spin CLI: the Spin scenarios did not run';

const MOTO_PYTHON = () => join(process.env.MOTO_VENV ?? '', 'bin/python');
const BUCKET = 'asc-audit-local';

function python(root, script, args, input) {
  return execFileSync(MOTO_PYTHON(), ['-c', script, ...args], { cwd: root, encoding: 'utf8', input });
}

/**
 * Writes `entries` ([{key, value}]) into a Spin key-value store file as Spin's default backend
 * keeps it (table spin_key_value(store, key, value), spin crates/key-value-spin/src/store.rs).
 */
export function seedKeyValue(root, dbPath, store, entries) {
  python(root, `
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))")
for e in json.load(sys.stdin):
    db.execute("INSERT OR REPLACE INTO spin_key_value VALUES (?, ?, ?)", (sys.argv[2], e["key"], e["value"].encode()))
db.commit()
`, [dbPath, store], JSON.stringify(entries));
}

function listening(port) {
  return new Promise((ok) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); ok(true); });
    socket.on('error', () => ok(false));
  });
}

/** Waits for moto to listen, then creates the user, its key and the bucket; prints the key. */
async function provision(root, proc, log, port, endpoint) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`moto_server exited:\n${log.join('')}`);
    // A TCP connect, not a request: moto counts requests towards INITIAL_NO_AUTH_ACTION_COUNT.
    if (await listening(port)) break;
    if (Date.now() > deadline) throw new Error(`moto_server did not start:\n${log.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return python(root, `
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="asc-audit")
key = iam.create_access_key(UserName="asc-audit")["AccessKey"]
iam.put_user_policy(UserName="asc-audit", PolicyName="audit-bucket", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket=sys.argv[2])
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
`, [endpoint, BUCKET]);
}

/** Starts moto with a user allowed s3:* and the audit bucket; returns its endpoint and keys. */
async function startMoto(root, port, dir) {
  const log = [];
  const proc = spawn(join(process.env.MOTO_VENV ?? '', 'bin/moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    // Signatures are checked from the 4th action on: everything after creating the user, its key
    // and its policy must be signed with that key.
    env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  proc.stdout.on('data', (d) => log.push(d.toString()));
  proc.stderr.on('data', (d) => log.push(d.toString()));
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = () => { try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ } };
  let out;
  try {
    out = await provision(root, proc, log, port, endpoint);
  } catch (e) {
    stop();
    throw e;
  }
  const keys = JSON.parse(out);
  return {
    endpoint,
    accessKeyId: keys.id,
    secretAccessKey: keys.secret,
    stop,
    /** Copies every object under `prefix` into `outDir`, as an auditor would; returns the names. */
    download(outDir, prefix = 'audit/') {
      return JSON.parse(python(root, `
import json, os, sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
names = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[4], Prefix=sys.argv[5]):
    for o in page.get("Contents", []):
        path = os.path.join(sys.argv[6], o["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(sys.argv[4], o["Key"], path)
        names.append(o["Key"])
print(json.dumps(names))
`, [endpoint, keys.id, keys.secret, BUCKET, prefix, outDir]));
    },
  };
}

/**
 * Starts the component under `spin up` for the local region, one `spin up` per port in `ports`
 * (replicas of one deployment: the same stores, so limits must hold across them). `kv` seeds the
 * config store; `secrets` are the deployment's secrets by their core names; `policy` the audit
 * shipping policy.
 */
export async function startSpin({ root, dir, ports, motoPort, kv, secrets, policy, vars = {}, waitReady, component }) {
  const wasm = component ?? join(root, 'target/wasm32-wasip2/spin/asc_spin.wasm');
  if (!existsSync(wasm)) throw new Error(`no component at ${wasm}: run scripts/check-spin (or cargo build -p asc-spin --target wasm32-wasip2 --profile spin)`);
  // Another component (a baseline build for the bench) runs from a copy of the manifest with
  // only its source changed (to an absolute path; `spin up` reads no other path from it).
  let manifest = join(root, 'spin.toml');
  if (component) {
    manifest = join(dir, 'spin.toml');
    const text = readFileSync(join(root, 'spin.toml'), 'utf8');
    const swapped = text.replace(/^source = "target\/wasm32-wasip2\/spin\/asc_spin\.wasm"$/m, `source = ${JSON.stringify(wasm)}`);
    if (swapped === text) throw new Error('spin.toml: the component source line was not found');
    writeFileSync(manifest, swapped);
  }
  const moto = await startMoto(root, motoPort, dir);
  try {
    seedKeyValue(root, join(dir, 'asc_config.db'), 'asc_config', kv);
  } catch (e) {
    moto.stop();
    throw e;
  }
  const kvPath = join(dir, 'asc_config.db');
  const runtimeConfig = join(dir, 'runtime-config.toml');
  writeFileSync(runtimeConfig, `[key_value_store.asc_config]\ntype = "spin"\npath = ${JSON.stringify(kvPath)}\n\n` +
    `[sqlite_database.asc_state]\ntype = "spin"\npath = ${JSON.stringify(join(dir, 'asc_state.db'))}\n`);
  // Secrets as a deployment passes them (SPIN_VARIABLE_*, never in a file); the rest as variables.
  const flushToken = randomBytes(24).toString('hex');
  const env = { ...process.env };
  for (const [name, value] of Object.entries({
    ...secrets,
    AUDIT_BUCKET_ACCESS_KEY_ID: moto.accessKeyId,
    AUDIT_BUCKET_SECRET_ACCESS_KEY: moto.secretAccessKey,
    AUDIT_FLUSH_TOKEN: flushToken,
  })) env[`SPIN_VARIABLE_${name}`] = value;
  const variables = {
    audit_bucket_endpoint: moto.endpoint,
    audit_shards: 4,
    audit_batch_max_records: policy.maxRecords,
    audit_batch_max_age_ms: policy.maxAgeMs,
    audit_heartbeat_ms: policy.heartbeatMs,
    audit_forward_ms: policy.forwardMs,
  };
  const logs = [];
  let procs = [];
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const url = urls[0];
  // The Worker's fault vars by their Spin variable names (ASC_FAULT_AFTER_DELAY_MS is
  // asc_fault_after_delay_ms), and more `spin up` flags, for one launch.
  async function launch(extra = {}, upArgs = []) {
    const faults = Object.entries(extra).flatMap(([k, v]) => ['--variable', `${k.toLowerCase()}=${v}`]);
    procs = ports.map((port, i) => {
      const args = ['up', '--from', manifest, '--listen', `127.0.0.1:${port}`,
        '--runtime-config-file', runtimeConfig, '--state-dir', join(dir, `spin-state-${i}`),
        '--log-dir', join(dir, `spin-logs-${i}`), '--follow', 'asc',
        '--variable', `@${join(root, 'regions/spin/local.variables.toml')}`,
        ...Object.entries(variables).flatMap(([k, v]) => ['--variable', `${k}=${v}`]), ...faults,
        // ASC_SPIN_UP_ARGS: more `spin up` flags (e.g. instance reuse), for measuring them.
        ...(process.env.ASC_SPIN_UP_ARGS ?? '').split(/\s+/).filter(Boolean), ...upArgs];
      const proc = spawn(SPIN_BIN, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      proc.stdout.on('data', (d) => logs.push(d.toString()));
      proc.stderr.on('data', (d) => logs.push(d.toString()));
      return proc;
    });
    await Promise.all(procs.map((proc, i) => waitReady(urls[i], proc, logs)));
    schedule();
  }
  // The scheduler a Spin deployment runs (deploy/spin: a CronJob or a systemd timer): it calls
  // the flush endpoint, which gives up on expired requests, forwards every ledger and ships what
  // is due, heartbeats included. Here twice per heartbeat period.
  let timer;
  function schedule() {
    timer = setInterval(async () => {
      try {
        const r = await fetch(`${url}/__asc/audit/flush`, { method: 'POST', headers: { authorization: `Bearer ${flushToken}` } });
        await r.arrayBuffer();
        if (r.status !== 200) logs.push(`[harness] flush endpoint answered ${r.status}\n`);
      } catch { /* down (killed or restarting) */ }
    }, Math.max(250, policy.heartbeatMs / 2));
  }
  async function halt(signal) {
    clearInterval(timer);
    await Promise.all(procs.map(async (proc) => {
      try { process.kill(-proc.pid, signal); } catch { /* already gone */ }
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', r)));
    }));
  }
  try {
    await launch(vars);
  } catch (e) {
    moto.stop();
    throw e;
  }
  return {
    url,
    urls,
    logs,
    async kill() { await halt('SIGKILL'); },
    async restart(extra = {}, upArgs = []) { await launch(extra, upArgs); },
    flushToken,
    /** What a deployment's scheduler does (it also runs on its own here, twice a heartbeat). */
    async sweep() {
      const r = await fetch(`${url}/__asc/audit/flush`, { method: 'POST', headers: { authorization: `Bearer ${flushToken}` } });
      await r.arrayBuffer();
    },
    async shutdown() { await halt('SIGTERM'); },
    async downloadAudit(outDir) { return moto.download(outDir); },
    /** Copies the response cache (a table in the region's SQLite database) into `outDir`, one file per entry. */
    async downloadCache(outDir) {
      return JSON.parse(python(root, `
import json, os, sqlite3, sys
names = []
for name, entry in sqlite3.connect(sys.argv[1]).execute("SELECT name, entry FROM asc_response_cache"):
    path = os.path.join(sys.argv[2], name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(entry)
    names.append(name)
print(json.dumps(names))
`, [join(dir, 'asc_state.db'), outDir]));
    },
    /**
     * The names of the response cache's entries, read while Spin serves: the database is in WAL
     * mode, so this reader never blocks Spin's writers.
     */
    cacheNames() {
      return JSON.parse(python(root, `
import json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(json.dumps([name for (name,) in db.execute("SELECT name FROM asc_response_cache")]))
`, [join(dir, 'asc_state.db')]));
    },
    stopMoto() { moto.stop(); },
  };
}
