// Guardrails end to end on workerd with the mock upstream: what the upstream receives, and a
// streamed response redacted while it still flows.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, hostOptions, HOST } from './harness.mjs';

let stack;
before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });
beforeEach(() => { stack.mock.requests.length = 0; });

const post = (tenant, body) => fetch(`${stack.url}/v1/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${stack.keys[tenant].key}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4o-mini', ...body }),
});
const user = (content) => ({ messages: [{ role: 'user', content }] });

describe(`guardrails on ${HOST}`, hostOptions(), () => {
  it('a blocked prompt never reaches the upstream', async () => {
    const r = await post('guarded', user('my card is 4111 1111 1111 1111'));
    assert.equal(r.status, 400);
    const body = await r.json();
    assert.equal(body.error.code, 'guardrail_credit_card');
    assert.ok(!JSON.stringify(body).includes('4111'));
    assert.equal(stack.mock.requests.length, 0);
  });

  it('a redacted prompt reaches the upstream redacted', async () => {
    const r = await post('guarded', user('mail jane.doe@example.com the report'));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('x-asc-guardrails'), /email;side=request;action=redact;count=1/);
    assert.equal(stack.mock.requests.length, 1);
    const sent = JSON.stringify(stack.mock.requests[0].body);
    assert.ok(!sent.includes('jane.doe@example.com'), sent);
    assert.ok(sent.includes('[EMAIL_1]'), sent);
  });

  it('custom patterns and non-ASCII deny terms apply (compiled by the control plane on the Worker)', async () => {
    const r = await post('patterned', user('patient MRN-12345678 and xMRN-12345678 are stable'));
    assert.equal(r.status, 200, await r.clone().text());
    assert.match(r.headers.get('x-asc-guardrails'), /custom_pattern;name="mrn";side=request;action=redact;count=1/);
    const sent = JSON.stringify(stack.mock.requests[0].body);
    assert.ok(!sent.includes('patient MRN-12345678'), sent);
    assert.ok(sent.includes('[MRN_1]'), sent);
    assert.ok(sent.includes('xMRN-12345678'), 'inside a word, \\b does not match: ' + sent);

    const blocked = await post('patterned', user('status of PROJECT Falcon?'));
    assert.equal(blocked.status, 400);
    const body = await blocked.json();
    assert.equal(body.error.code, 'guardrail_custom_pattern');
    assert.ok(!JSON.stringify(body).includes('Falcon'));
    assert.equal(stack.mock.requests.length, 1, 'the blocked prompt never left');

    // Unicode simple case folding: Ü matches ü (a class the control plane sent).
    const denied = await post('patterned', user('das PROJEKT ÜBER ist geheim'));
    assert.equal(denied.status, 400);
    assert.equal((await denied.json()).error.code, 'guardrail_deny_term');
    assert.equal(stack.mock.requests.length, 1);
  });

  it('a config whose pattern cannot be compiled is refused with its path, never served', async () => {
    const r = await post('badpattern', user('aaa'));
    const body = await r.json();
    assert.equal(body.error.code, 'tenant_config_invalid');
    assert.match(body.error.message, /guardrails\.custom_patterns\[0\]\.regex/);
    assert.match(body.error.message, /unbounded/);
    assert.equal(stack.mock.requests.length, 0);
  });

  it('a streamed response is redacted while its chunks still arrive before the end', async () => {
    const r = await post('guardresp', {
      stream: true,
      ...user('[mock:slow-stream-250] please write to jane.doe@example.com and then to the whole team today'),
    });
    assert.equal(r.status, 200);
    const started = Date.now();
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    const arrivals = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
      text += decoder.decode(value, { stream: true });
    }
    const content = text.split('\n\n')
      .filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]')
      .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '')
      .join('');
    assert.ok(!content.includes('jane.doe'), content);
    assert.match(content, /write to \[EMAIL_1\] and then/);
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
    const total = arrivals.at(-1);
    assert.ok(arrivals.length > 5, `chunks arrived separately (${arrivals.length})`);
    assert.ok(arrivals[0] < total - 1500, `first bytes at ${arrivals[0]} ms, end at ${total} ms`);
    // The upstream did receive the address: only the response side is guarded for this tenant.
    assert.ok(JSON.stringify(stack.mock.requests[0].body).includes('jane.doe@example.com'));
  });
});
