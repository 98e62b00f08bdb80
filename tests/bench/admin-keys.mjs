// The admin store as a tenant's keys accumulate: mints/s through the admin API (4 clients at
// once, as a provisioning script would) while the tenant holds 0 to ADMIN_KEYS keys, and how long
// a page of 1,000 keys takes at the end. A store whose change rewrites every key slows as keys
// accumulate; one that writes a row per key should not. The ratio compares the last band with the
// first, in the same run; with ASC_BASELINE_BUILD (another build, its control plane), that build
// is measured first, in the same run. Prints markdown.
//   node tests/bench/admin-keys.mjs        (scripts/bench runs it; ASC_E2E_HOST=spin for Spin)
// ADMIN_KEYS (6000) keys in bands of ADMIN_KEYS_BAND (1000).
import { join } from 'node:path';
import { startStack } from '../e2e/harness.mjs';
import { startIssuer } from '../e2e/oidc.mjs';

const TOTAL = Number(process.env.ADMIN_KEYS ?? 6000);
const BAND = Number(process.env.ADMIN_KEYS_BAND ?? 1000);
const CLIENTS = 4;
const log = (...a) => console.error('[admin-keys]', ...a);

const BASELINE = process.env.ASC_BASELINE_BUILD;
const BASELINE_LABEL = process.env.ASC_BASELINE_LABEL ?? 'baseline';

/** Mints TOTAL keys for one tenant of a fresh stack; mints/s by band, and a page's time at the end. */
async function measure(controlBuild) {
  if (controlBuild) process.env.ASC_CONTROL_BUILD = controlBuild;
  else delete process.env.ASC_CONTROL_BUILD;
  const idp = await startIssuer();
  const stack = await startStack({
    vars: { ADMIN_ISSUERS: JSON.stringify([idp.config([{ group: 'bench-admins', role: 'tenant-admin', tenant: 'demo' }])]) },
  });
  // A fresh token now and then: a run outlasts one token's five minutes.
  let token = null;
  let tokenAt = 0;
  const bearer = () => {
    if (Date.now() - tokenAt > 60_000) {
      token = idp.token({ sub: 'bench@example.com', groups: ['bench-admins'] });
      tokenAt = Date.now();
    }
    return `Bearer ${token}`;
  };
  const url = (path) => `${stack.url}/admin/v1/tenants/demo${path}`;
  try {
    const bands = [];
    let minted = 0;
    while (minted < TOTAL) {
      const band = Math.min(BAND, TOTAL - minted);
      let next = 0;
      const started = performance.now();
      const client = async () => {
        while (next < band) {
          const i = minted + next++;
          const r = await fetch(url('/keys'), {
            method: 'POST',
            headers: { authorization: bearer(), 'content-type': 'application/json' },
            body: JSON.stringify({ scopes: ['chat'], tags: ['bu:research'], label: `service-${i}` }),
          });
          const text = await r.text();
          if (r.status !== 201) throw new Error(`mint ${i}: ${r.status} ${text.slice(0, 200)}`);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
      const seconds = (performance.now() - started) / 1000;
      bands.push({ from: minted, to: minted + band, perSecond: band / seconds });
      minted += band;
      log(`${controlBuild ?? 'this build'}: ${minted} keys, ${(band / seconds).toFixed(1)} mints/s`);
    }
    // A build from before pages lists every key in one reply, whatever the limit.
    const listed = performance.now();
    const page = await fetch(url('/keys?limit=1000'), { headers: { authorization: bearer() } });
    const body = await page.text();
    const listMs = performance.now() - listed;
    if (page.status !== 200) throw new Error(`list: ${page.status} ${body.slice(0, 200)}`);
    return { bands, listMs, listBytes: body.length };
  } finally {
    await stack.stop();
    await idp.close();
  }
}

const runs = [];
if (BASELINE) runs.push({ label: BASELINE_LABEL, ...(await measure(join(BASELINE, 'control'))) });
runs.push({ label: 'this build', ...(await measure(null)) });

console.log(`${TOTAL.toLocaleString('en')} keys minted for one tenant through \`POST /admin/v1/tenants/<t>/keys\`, ${CLIENTS} clients at once`);
console.log(`(each mint: its write-ahead record through the tenant's ledger, the admin store's write, the key's record to the config store).`);
console.log();
console.log(`| keys the tenant held | ${runs.map((r) => `${r.label}: mints/s`).join(' | ')} |`);
console.log(`|---|${runs.map(() => '---').join('|')}|`);
runs[0].bands.forEach((b, i) => {
  console.log(`| ${b.from.toLocaleString('en')}-${b.to.toLocaleString('en')} | ${runs.map((r) => r.bands[i].perSecond.toFixed(1)).join(' | ')} |`);
});
console.log(`| last band / first | ${runs.map((r) => (r.bands[r.bands.length - 1].perSecond / r.bands[0].perSecond).toFixed(2)).join(' | ')} |`);
console.log(`| \`GET .../keys?limit=1000\` at the end | ${runs.map((r) => `${r.listMs.toFixed(0)} ms, ${r.listBytes.toLocaleString('en')} B`).join(' | ')} |`);
console.log();
console.log('A last/first ratio of 1.00: a mint costs the same however many keys the tenant holds.');
