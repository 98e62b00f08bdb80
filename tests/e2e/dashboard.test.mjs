// The dashboard (/admin) in a real browser: Debian's chromium driven by playwright-core, against
// the Worker on workerd with a local OIDC issuer (tests/e2e/oidc.mjs). People sign in through
// the issuer's page (authorization code + PKCE); requests made here through the gateway must show
// up on each page; roles without rights see no tenant-admin controls and the server refuses them;
// the page runs under its Content-Security-Policy without a violation; it works from the keyboard
// and at phone width. Screenshots go to .state/artifacts/dashboard/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, hostOptions, ROOT } from './harness.mjs';
import { startIssuer } from './oidc.mjs';

const CHROMIUM = [process.env.CHROMIUM_BIN, '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .find((p) => p && existsSync(p));
const ARTIFACTS = join(ROOT, '.state/artifacts/dashboard');
const CLIENT_ID = 'asc-dashboard';
const USERS = {
  admin: { sub: 'admin@example.com', groups: ['demo-admins', 'routed-admins'] },
  auditor: { sub: 'auditor@example.com', groups: ['demo-auditors'] },
  developer: { sub: 'dev@example.com', groups: ['demo-devs'] },
  finance: { sub: 'finance@example.com', groups: ['demo-finance'] },
};

function options() {
  const host = hostOptions({ workerOnly: 'the dashboard is served from the Worker\'s static assets' });
  if (host.skip) return host;
  if (!CHROMIUM) return { skip: 'SKIPPED the dashboard browser tests: no chromium (apt-get install chromium, or set CHROMIUM_BIN)' };
  return {};
}

let stack;
let vars;
let idp;
let browser;
const violations = [];

async function newPage(viewport = { width: 1280, height: 900 }, extra = {}, seen = violations) {
  const context = await browser.newContext({ viewport, ...extra });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) seen.push(m.text());
  });
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  return page;
}

/** Signs in through the issuer's page as `who`; returns once the dashboard shows the person. */
async function signIn(page, who, hash = '') {
  await page.goto(`${stack.url}/admin${hash}`);
  await page.getByRole('button', { name: /Sign in with/ }).click();
  await page.getByRole('button', { name: new RegExp(`Sign in as ${USERS[who].sub.replace('.', '\\.')}`) }).click();
  await page.getByText(USERS[who].sub).waitFor();
}

const shot = (page, name) => {
  const path = join(ARTIFACTS, `${name}.png`);
  return page.screenshot({ path, fullPage: true }).then(() => path);
};

async function open(page, id, tenant = 'demo') {
  await page.goto(`${stack.url}/admin/#/${id}?tenant=${tenant}`);
  await page.locator('h1').filter({ hasText: tenant }).waitFor();
}

const chat = (tenant, content, model = 'gpt-4o-mini', key = stack.keys[tenant].key) =>
  fetch(`${stack.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 20, messages: [{ role: 'user', content }] }),
  });

/** The admin API as `who`, with a token the issuer signs directly (for server-side checks). */
async function adminApi(who, method, path, body) {
  const token = idp.token({ sub: USERS[who].sub, groups: USERS[who].groups, aud: CLIENT_ID });
  const r = await fetch(`${stack.url}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json().catch(() => undefined), headers: r.headers };
}

describe('dashboard in a real browser', options(), () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    idp = await startIssuer({ users: Object.values(USERS) });
    const issuers = [idp.config([
      { group: 'demo-admins', role: 'tenant-admin', tenant: 'demo' },
      { group: 'routed-admins', role: 'tenant-admin', tenant: 'routed' },
      { group: 'demo-auditors', role: 'auditor', tenant: 'demo' },
      { group: 'demo-devs', role: 'developer', tenant: 'demo' },
      { group: 'demo-finance', role: 'finance', tenant: 'demo' },
    ], { dashboardClientId: CLIENT_ID })];
    vars = { ADMIN_ISSUERS: JSON.stringify(issuers) };
    stack = await startStack({ vars });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    console.log(`dashboard screenshots: ${ARTIFACTS}`);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    await idp?.close();
  });

  it('is served under a strict Content-Security-Policy, only on the dashboard paths', async () => {
    const r = await fetch(`${stack.url}/admin/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    const csp = r.headers.get('content-security-policy');
    assert.ok(csp, 'a CSP header');
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), csp);
    assert.ok(csp.includes(`connect-src 'self' ${idp.url}`), 'the sign-in issuer is reachable from the page');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    const page = await r.text();
    assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(page), 'no inline script');
    assert.ok(!/\sstyle=/.test(page), 'no inline style');
    const redirect = await fetch(`${stack.url}/admin`, { redirect: 'manual' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get('location'), '/admin/');
    // The admin API is not the dashboard, and the sign-in settings name no roles or tenants.
    const login = await (await fetch(`${stack.url}/admin/v1/login`)).json();
    assert.deepEqual(login.issuers, [{ issuer: idp.issuer, client_id: CLIENT_ID }]);
    assert.equal((await fetch(`${stack.url}/admin/v1/me`)).status, 401);
  });

  it('an admin signs in, edits the config with inline errors, and every page shows the requests made here', async () => {
    const page = await newPage();
    await signIn(page, 'admin');
    await shot(page, '01-signed-in');

    // Config: an invalid edit shows the error at its path; a valid one is stored as a version
    // with the admin as its author.
    await open(page, 'config');
    const editor = page.getByLabel('Config (JSON)');
    const current = JSON.parse(await editor.inputValue());
    const invalid = { ...current, budgets: [{ id: 'monthly', applies_to: 'tenant', limit_usd_micros: -5, period: 'monthly' }] };
    await editor.fill(JSON.stringify(invalid, null, 2));
    await page.getByRole('button', { name: 'Validate' }).click();
    const problem = page.locator('ul.problems li').first();
    await problem.waitFor();
    assert.match(await problem.locator('code.path').textContent(), /^budgets\[0\]\.limit_usd_micros$/);
    assert.equal(await editor.getAttribute('aria-invalid'), 'true');
    // The error names the editor's line holding that member, and takes you there.
    const line = Number(/line (\d+)/.exec(await problem.textContent())[1]);
    assert.match((await editor.inputValue()).split('\n')[line - 1], /"limit_usd_micros": -5/);
    await problem.getByRole('button').click();
    const selected = await editor.evaluate((t) => t.value.slice(t.selectionStart, t.selectionEnd));
    assert.match(selected, /limit_usd_micros/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'config-editor');
    await shot(page, '02-config-invalid');
    const valid = {
      ...current,
      // A soft budget the test's requests cross (the mock's prices: a few micro-USD each), so
      // an alert is raised and nothing is refused.
      budgets: [{ id: 'monthly', applies_to: 'tenant', limit_usd_micros: 20, period: 'monthly', mode: 'soft', alert_at_percent: [50] }],
      guardrails: { detectors: { email: { mode: 'redact' } } },
    };
    await editor.fill(JSON.stringify(valid, null, 2));
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByText(/Saved as version 2/).waitFor();
    const row = page.locator('table.history tbody tr').filter({ has: page.locator('th', { hasText: /^2$/ }) });
    assert.equal(await row.locator('td.author').textContent(), USERS.admin.sub);
    await row.getByRole('button', { name: 'Diff with 1' }).click();
    await page.locator('table.diff').getByText('budgets', { exact: false }).first().waitFor();
    await shot(page, '03-config-history-diff');

    // Real traffic: three requests with an email address (redacted), one for an unknown model.
    for (let i = 0; i < 3; i++) {
      const r = await chat('demo', `write to person${i}@example.com please`);
      assert.equal(r.status, 200, await r.text());
      assert.match(r.headers.get('x-asc-guardrails') || '', /email/);
    }
    assert.equal((await chat('demo', 'hi', 'no-such-model')).status, 404);
    // The routed tenant: its first target is outside the region and the second answers 500, so
    // the third serves and the broken target's circuit counts a failure.
    assert.equal((await chat('routed', 'hello', 'smart')).status, 200);

    // The audit trail ships within a second or so (test shipping policy); wait until the
    // search sees the three requests.
    const deadline = Date.now() + 30_000;
    let found = [];
    while (Date.now() < deadline) {
      const r = await adminApi('admin', 'GET', `/tenants/demo/audit?key_id=${stack.keys.demo.keyId}&operation=chat.completions`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      found = r.json.data;
      if (found.filter((d) => d.record.outcome === 'ok').length >= 3) break;
      await new Promise((ok) => setTimeout(ok, 500));
    }
    assert.ok(found.filter((d) => d.record.outcome === 'ok').length >= 3, `audit search found ${found.length}`);
    for (const d of found) {
      assert.equal(d.record.tenant_id, 'demo');
      assert.ok(!JSON.stringify(d).includes('@example.com please'), 'no prompt text');
    }

    // Spend: the budget shows what the ledger says was spent, above zero, with its period.
    const usage = (await adminApi('admin', 'GET', '/tenants/demo/usage')).json;
    const monthly = usage.budgets.find((b) => b.budget_id === 'monthly');
    assert.ok(monthly.spent_micros > 0, JSON.stringify(monthly));
    await open(page, 'spend');
    const budgetRow = page.locator('table.budgets tbody tr').filter({ has: page.locator('th', { hasText: 'monthly' }) });
    await budgetRow.waitFor();
    assert.equal(Number(await budgetRow.locator('td[data-spent]').getAttribute('data-spent')), monthly.spent_micros);
    assert.match(await budgetRow.textContent(), /monthly/);
    // Spend by key, from this window's requests.
    await page.locator('table.per-key_id').getByText(stack.keys.demo.keyId).waitFor({ timeout: 10_000 })
      .catch(async (e) => { await shot(page, 'failed-spend'); throw e; });
    await page.locator('figure.chart canvas').first().waitFor();
    // The alert raised when the spend crossed 50% of the budget.
    const alerts = (await adminApi('admin', 'GET', '/tenants/demo/alerts')).json.data;
    assert.ok(alerts.some((a) => a.type === 'budget.threshold'), JSON.stringify(alerts));
    await page.locator('table.alerts td.type').getByText('budget.threshold').first().waitFor();
    await shot(page, '04-spend');

    // Traffic: the model's requests (three served, at least) and its latency.
    await open(page, 'traffic');
    const modelRow = page.locator('table.traffic-totals tbody tr').filter({ has: page.locator('th', { hasText: 'gpt-4o-mini' }) });
    await modelRow.waitFor();
    const cells = await modelRow.locator('td').allTextContents();
    assert.ok(Number(cells[1].replace(/,/g, '')) >= 3, cells.join(' | '));
    assert.match(cells[3], /ms$/, 'p50 latency shown');
    await shot(page, '05-traffic');

    // Guardrails: three email redactions, counts only.
    await open(page, 'guardrails');
    const hit = page.locator('table.guardrail-hits tbody tr').filter({ has: page.locator('th', { hasText: 'email' }) });
    await hit.waitFor();
    const [mode, count] = await hit.locator('td').allTextContents();
    assert.equal(mode, 'redact');
    assert.ok(Number(count) >= 3, count);
    assert.ok(!(await page.content()).includes('person0@example.com'), 'never the matched text');
    await shot(page, '06-guardrails');

    // Audit: the requests with the key and model, and how to verify the covering batch.
    await open(page, 'audit');
    await page.getByLabel('Key id').fill(stack.keys.demo.keyId);
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('table.audit-results tbody tr.audit-row');
    await rows.first().waitFor();
    assert.ok(await rows.count() >= 4);
    assert.equal(await rows.first().locator('td.key').textContent(), stack.keys.demo.keyId);
    const models = await page.locator('table.audit-results td.model').allTextContents();
    assert.ok(models.some((m) => m.includes('gpt-4o-mini')), models.join(', '));
    assert.ok(models.some((m) => m.includes('no-such-model')), 'the refused request too');
    await rows.first().getByRole('button', { name: 'Verify…' }).click();
    const batch = await page.locator('.verify code.batch').textContent();
    assert.match(batch, /^audit\/audit-local[a-z0-9-]*\/batches\/\d{20}-\d{20}\.jsonl\.gz$/);
    await page.getByText('asc audit verify ./bucket-copy --keys public-keys.json').waitFor();
    await shot(page, '07-audit');

    // Routes of the routed tenant: targets in order, and the broken target's circuit counted
    // the failure.
    await open(page, 'routes', 'routed');
    const smart = page.locator('table.routes tbody tr').filter({ has: page.locator('th', { hasText: 'smart' }) });
    await smart.waitFor();
    assert.match(await smart.textContent(), /outside.*broken.*claude/);
    const broken = page.locator('table.models tbody tr').filter({ has: page.locator('th', { hasText: /^broken$/ }) });
    assert.match(await broken.textContent(), /closed.*1 consecutive failure/);
    await shot(page, '08-routes');

    // Keys: mint (the secret once, and it works), then revoke.
    await open(page, 'keys');
    await page.getByLabel('Label').fill('dashboard test');
    await page.getByRole('button', { name: 'Mint key' }).click();
    const secret = await page.getByLabel("The new key's secret").inputValue();
    assert.match(secret, /^asc_/);
    assert.equal((await chat('demo', 'hello', 'gpt-4o-mini', secret)).status, 200);
    await shot(page, '09-keys-minted');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    assert.equal(await page.getByLabel("The new key's secret").count(), 0, 'the secret is gone once dismissed');
    const mintedRow = page.locator('table.keys tbody tr').filter({ hasText: 'dashboard test' });
    // Rotate: a replacement's secret, once; it works.
    await mintedRow.first().getByRole('button', { name: /Rotate/ }).click();
    const replacement = await page.getByLabel("The new key's secret").inputValue();
    assert.match(replacement, /^asc_/);
    assert.notEqual(replacement, secret);
    assert.equal((await chat('demo', 'hello', 'gpt-4o-mini', replacement)).status, 200);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    // Revoke the original (still in its overlap): refused once the gateway's cached record lapses
    // (the key cache TTL, 10 s: the control plane's Worker served the revocation, not the
    // isolate that cached the key), and from then on.
    const original = page.locator('table.keys tbody tr').filter({ has: page.locator('td', { hasText: /→/ }) });
    await original.getByRole('button', { name: /Revoke/ }).click();
    await original.getByText('revoked').waitFor();
    const refusedBy = Date.now() + 11_000;
    let status;
    for (;;) {
      const r = await chat('demo', 'hello', 'gpt-4o-mini', secret);
      status = r.status;
      await r.arrayBuffer();
      if (status !== 200 || Date.now() >= refusedBy) break;
      await new Promise((ok) => setTimeout(ok, 250));
    }
    assert.equal(status, 401);
    assert.equal((await chat('demo', 'hello', 'gpt-4o-mini', secret)).status, 401);
    assert.ok(!(await page.content()).includes(secret), 'the secret is not shown again');
    await shot(page, '10-keys-rotated-revoked');

    // More keys than a page (100): the newest are listed first, the rest on "Show more keys".
    const pageOfKeys = [];
    for (let i = 0; i < 100; i += 4) {
      const four = await Promise.all([0, 1, 2, 3].map(() => adminApi('admin', 'POST', '/tenants/demo/keys', { scopes: ['chat'], label: 'batch' })));
      for (const r of four) { assert.equal(r.status, 201); pageOfKeys.push(r.json.key.key_id); }
    }
    const every = (await adminApi('admin', 'GET', '/tenants/demo/keys?limit=1000')).json.keys.map((k) => k.key_id);
    assert.ok(every.length > 100, `${every.length} keys`);
    assert.deepEqual(new Set(every.slice(0, 100)), new Set(pageOfKeys), 'the newest hundred first');
    await open(page, 'config'); // away and back: the keys page loads them again
    await open(page, 'keys');
    const keyRows = page.locator('table.keys tbody tr');
    await keyRows.nth(99).waitFor();
    assert.equal(await keyRows.count(), 100);
    assert.equal(await mintedRow.count(), 0, 'the keys minted first are past the first page');
    await page.getByRole('button', { name: 'Show more keys' }).click();
    await keyRows.nth(every.length - 1).waitFor();
    const shownIds = await page.locator('table.keys tbody tr th code').allTextContents();
    assert.deepEqual(shownIds, every);
    assert.equal(await page.getByRole('button', { name: 'Show more keys' }).count(), 0);
    assert.equal(await mintedRow.count(), 2, 'the key minted here and its replacement');

    // Config rollback from the history: version 1's bytes stored as version 3, by the admin.
    await open(page, 'config');
    const v1 = page.locator('table.history tbody tr').filter({ has: page.locator('th', { hasText: /^1$/ }) });
    await v1.getByRole('button', { name: 'Restore' }).click();
    await page.getByText('Restored version 1 as a new version.').waitFor();
    const v3 = page.locator('table.history tbody tr').filter({ has: page.locator('th', { hasText: /^3$/ }) });
    await v3.waitFor();
    assert.match(await v3.textContent(), /rollback of 1/);
    assert.equal(await v3.locator('td.author').textContent(), USERS.admin.sub);
    await page.context().close();
  });

  it('roles without rights see no tenant-admin controls, and the server refuses them', async () => {
    const page = await newPage();
    await signIn(page, 'auditor');
    await open(page, 'keys');
    await page.locator('table.keys').waitFor();
    assert.equal(await page.getByRole('button', { name: /Revoke/ }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Mint key' }).count(), 0);
    await open(page, 'config');
    await page.getByLabel('Current config').waitFor();
    assert.equal(await page.getByRole('button', { name: /Save/ }).count(), 0);
    assert.equal(await page.getByLabel('Config (JSON)').count(), 0);
    const navLinks = await page.getByRole('navigation').getByRole('link').allTextContents();
    assert.ok(!navLinks.includes('Spend'), `an auditor reads no usage: ${navLinks}`);
    await shot(page, '11-auditor-config');
    await page.context().close();
    const mint = await adminApi('auditor', 'POST', '/tenants/demo/keys', { scopes: ['chat'] });
    assert.equal(mint.status, 403);
    assert.equal(mint.json.error.code, 'admin_forbidden');
    assert.equal((await adminApi('auditor', 'POST', `/tenants/demo/keys/${stack.keys.demo.keyId}/revoke`, {})).status, 403);

    const dev = await newPage();
    await signIn(dev, 'developer');
    await open(dev, 'config');
    await dev.getByRole('button', { name: 'Validate' }).waitFor();
    assert.equal(await dev.getByRole('button', { name: /Save/ }).count(), 0);
    const devNav = await dev.getByRole('navigation').getByRole('link').allTextContents();
    assert.ok(!devNav.includes('Audit'), `a developer does not search the audit trail: ${devNav}`);
    await shot(dev, '12-developer-config');
    await dev.context().close();
    const config = await adminApi('admin', 'GET', '/tenants/demo');
    const put = await fetch(`${stack.url}/admin/v1/tenants/demo`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${idp.token({ sub: USERS.developer.sub, groups: USERS.developer.groups, aud: CLIENT_ID })}`, 'if-match': config.headers.get('etag'), 'content-type': 'application/json' },
      body: JSON.stringify(config.json),
    });
    assert.equal(put.status, 403);
    assert.equal((await adminApi('developer', 'GET', '/tenants/demo/audit')).status, 403);
  });

  it('works from the keyboard with a visible focus', async () => {
    const page = await newPage();
    await signIn(page, 'admin');
    await open(page, 'spend');
    // A fresh load starts at the top: the first Tab reaches the skip link.
    await page.reload();
    await page.locator('h1').filter({ hasText: 'demo' }).waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement.textContent);
    assert.equal(first, 'Skip to content');
    // Tab to the Audit link of the navigation and follow it with Enter.
    let reached = false;
    for (let i = 0; i < 30 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement.tagName === 'A' && document.activeElement.textContent === 'Audit');
    }
    assert.ok(reached, 'the Audit link is reachable with Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused link shows a focus ring');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /Audit/ }).waitFor();
    assert.match(page.url(), /#\/audit/);
    // Preact may commit the heading and run the page's effects in separate tasks: wait (bounded)
    // for the focus rather than read it in between.
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'main', null, { timeout: 5000 }).catch(() => {});
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main', 'focus moves to the new page');
    assert.match(await page.title(), /^Audit — demo — ASC$/);
    // Fields have labels: the search form works from the keyboard too.
    await page.getByLabel('Outcome').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'audit-operation');
    await shot(page, '13-keyboard-focus');
    await page.context().close();
  });

  it('behind Cloudflare Access it needs no sign-in page (Access adds its assertion to each request)', async () => {
    const assertion = idp.token({ sub: USERS.finance.sub, groups: USERS.finance.groups, aud: CLIENT_ID });
    const page = await newPage(undefined, { extraHTTPHeaders: { 'cf-access-jwt-assertion': assertion } });
    await page.goto(`${stack.url}/admin/`);
    await page.getByText(USERS.finance.sub).waitFor();
    assert.equal(await page.getByRole('button', { name: /Sign in with/ }).count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'no token kept in the page');
    const nav = await page.getByRole('navigation').getByRole('link').allTextContents();
    assert.ok(nav.includes('Spend') && !nav.includes('Keys') && !nav.includes('Audit'), `finance: ${nav}`);
    await page.context().close();
  });

  it('is readable at phone width', async () => {
    const page = await newPage({ width: 390, height: 844 }, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await signIn(page, 'admin');
    for (const id of ['spend', 'audit', 'keys']) {
      await open(page, id);
      await page.waitForTimeout(300);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${id}: the page is ${overflow}px wider than the screen`);
      await shot(page, `14-phone-${id}`);
    }
    await page.context().close();
  });

  it('says when a stored change is not in effect yet (the config store refused it)', async () => {
    // KV refuses the admin stores' writes (a fault of the loopback region), then recovers.
    await stack.kill();
    await stack.restart({ ...vars, ASC_FAULT_PUBLISH_REFUSED: '1' });
    try {
      const page = await newPage();
      await signIn(page, 'admin');
      await open(page, 'config');
      const editor = page.getByLabel('Config (JSON)');
      const current = JSON.parse(await editor.inputValue());
      await editor.fill(JSON.stringify({ ...current, limits: { ...current.limits, requests_per_minute: 500 } }, null, 2));
      await page.getByRole('button', { name: 'Save as a new version' }).click();
      const saved = page.locator('#config-problems p.warn');
      await saved.waitFor();
      assert.match(await saved.textContent(), /^Saved as version \d+\. Not in effect yet: the gateway's config store refused the write\./);
      assert.equal(await saved.getAttribute('role'), 'status');
      await open(page, 'keys');
      await page.getByRole('button', { name: 'Mint key' }).click();
      const minted = page.locator('.secret p.warn');
      await minted.waitFor();
      assert.match(await minted.textContent(), /^Not in effect yet/);
      await shot(page, '16-not-published');
    } finally {
      await stack.kill();
      await stack.restart(vars);
    }
  });

  it('saw no Content-Security-Policy violation or page error (and would have seen one)', async () => {
    // The control: inline code injected into the page is refused, and the refusal is seen.
    const control = [];
    const page = await newPage(undefined, {}, control);
    await page.goto(`${stack.url}/admin/`);
    await page.getByRole('button', { name: /Sign in with/ }).waitFor();
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.injected = true';
      document.body.append(s);
      const d = document.createElement('div');
      d.setAttribute('style', 'color: red');
      document.body.append(d);
    });
    // The refusal reaches this process as a console event a little later: wait for it (bounded).
    for (let i = 0; i < 50 && !control.some((m) => /inline script/i.test(m)); i++) await page.waitForTimeout(100);
    assert.equal(await page.evaluate(() => window.injected), undefined, 'the inline script did not run');
    assert.ok(control.some((m) => /inline script/i.test(m)), `the refusal was reported: ${control}`);
    await page.context().close();
    assert.deepEqual(violations, []);
  });
});
