// End to end on workerd (wrangler dev --local) with the mock upstream, using the official OpenAI
// SDK as the client. Run through scripts/test, which builds the Worker and the CLI first.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { startStack, UPSTREAM_KEY, hostOptions, HOST } from './harness.mjs';

let stack;
const client = (key, opts = {}) => new OpenAI({ apiKey: key, baseURL: stack.baseURL, maxRetries: 0, ...opts });
const hello = (text = 'Hello from the SDK') => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] });

async function post(path, body, headers = {}) {
  const res = await fetch(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

const bearer = (name) => ({ authorization: `Bearer ${stack.keys[name].key}` });

async function expectSdkError(promise, status, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, `status for ${code}: ${err.message}`);
    assert.equal(err.code, code);
    return true;
  });
}

before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });
beforeEach(() => { stack.mock.requests.length = 0; });

describe(`OpenAI SDK against ASC on ${HOST}`, hostOptions(), () => {
  it('gets a chat completion, with usage and x-request-id', async () => {
    const { data, response } = await client(stack.keys.demo.key).chat.completions.create(hello()).withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices[0].message.content, 'Mock reply to: Hello from the SDK');
    assert.equal(data.choices[0].finish_reason, 'stop');
    // The mock counts whitespace-separated words: 4 in, 7 out ("Mock reply to: Hello from the SDK").
    assert.deepEqual([data.usage.prompt_tokens, data.usage.completion_tokens], [4, 7]);
    assert.match(response.headers.get('x-request-id'), /^req_[0-9a-f]{24}$/);
    assert.equal(stack.mock.requests.length, 1);
    const upstream = stack.mock.requests[0];
    assert.equal(upstream.path, '/v1/chat/completions');
    assert.equal(upstream.headers.authorization, `Bearer ${UPSTREAM_KEY}`, 'the upstream sees the gateway credential');
    assert.ok(!JSON.stringify(upstream).includes(stack.keys.demo.key), 'the client key never reaches the upstream');
    // A complete body goes out with its length, not chunked: on Spin a chunked body's closing
    // chunk could leave as a small write of its own, held up to 40 ms by Nagle's algorithm.
    assert.equal(upstream.headers['content-length'], String(upstream.bytes));
    assert.equal(upstream.headers['transfer-encoding'], undefined);
  });

  it('streams chunk by chunk, role first, usage when asked', async () => {
    const stream = await client(stack.keys.demo.key).chat.completions.create({
      ...hello('Stream this please'), stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'Mock reply to: Stream this please');
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    assert.equal(finish.choices[0].finish_reason, 'stop');
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 6);
  });

  it('forwards the first chunk before the upstream has finished', async () => {
    // 400 ms between upstream chunks, 7 chunks after the role chunk: the stream takes > 2.5 s.
    const res = await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer('demo'), 'content-type': 'application/json' },
      body: JSON.stringify({ ...hello('[mock:slow-stream-400] one two three'), stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /text\/event-stream/);
    const started = Date.now();
    const reader = res.body.getReader();
    const arrivals = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - started);
      text += new TextDecoder().decode(value);
    }
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
    assert.ok(arrivals.length > 3, `chunks arrived separately (${arrivals.length})`);
    const total = arrivals.at(-1);
    assert.ok(total > 2000, `the upstream stream is slow (${total} ms)`);
    assert.ok(arrivals[0] < total - 1500, `first bytes at ${arrivals[0]} ms, end at ${total} ms`);
  });

  it('propagates W3C traceparent upstream', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await client(stack.keys.demo.key, {
      defaultHeaders: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    }).chat.completions.create(hello());
    const sent = stack.mock.requests[0].headers.traceparent;
    assert.match(sent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    assert.ok(!sent.includes('00f067aa0ba902b7'), 'ASC is the new parent span');
  });

  it('lists only the tenant\'s approved models', async () => {
    const page = await client(stack.keys.demo.key).models.list();
    assert.deepEqual(page.data.map((m) => m.id).sort(), ['gpt-4o', 'gpt-4o-mini']);
  });

  it('ends a cut stream with an error the SDK raises, never [DONE]', async () => {
    const stream = await client(stack.keys.demo.key).chat.completions.create({
      ...hello('[mock:cut-stream] a b c d e'), stream: true,
    });
    let text = '';
    await assert.rejects(async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    }, (err) => err instanceof OpenAI.APIError);
    assert.ok(text.length > 0 && text.length < 'Mock reply to: a b c d e'.length, `partial text: ${text}`);
  });
});

describe('errors: OpenAI shape, stable code, right status', hostOptions(), () => {
  it('missing, malformed, unknown and revoked keys are 401', async () => {
    const none = await post('/v1/chat/completions', hello());
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, 'missing_api_key');
    assert.equal(none.json.error.type, 'authentication_error');
    await expectSdkError(client('asc_notavalidkey').chat.completions.create(hello()), 401, 'invalid_api_key');
    const typo = stack.keys.demo.key.slice(0, -1) + (stack.keys.demo.key.endsWith('a') ? 'b' : 'a');
    await expectSdkError(client(typo).chat.completions.create(hello()), 401, 'invalid_api_key');
    await expectSdkError(client(stack.keys.revoked.key).chat.completions.create(hello()), 401, 'revoked_api_key');
    assert.equal(stack.mock.requests.length, 0);
  });

  it('x-api-key is accepted like Bearer', async () => {
    const r = await post('/v1/chat/completions', hello(), { 'x-api-key': stack.keys.demo.key });
    assert.equal(r.status, 200);
  });

  it('a key without the chat scope is 403', async () => {
    await expectSdkError(client(stack.keys.modelsOnly.key).chat.completions.create(hello()), 403, 'insufficient_scope');
  });

  it('bad JSON and missing fields are 400', async () => {
    const bad = await post('/v1/chat/completions', '{"model": ', bearer('demo'));
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'invalid_json');
    const noModel = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }, bearer('demo'));
    assert.deepEqual([noModel.status, noModel.json.error.code, noModel.json.error.param], [400, 'missing_required_parameter', 'model']);
  });

  it('unknown models are 404, unapproved ones 403', async () => {
    await expectSdkError(client(stack.keys.demo.key).chat.completions.create({ ...hello(), model: 'gpt-4o-mni' }), 404, 'model_not_found');
    await expectSdkError(client(stack.keys.demo.key).chat.completions.create({ ...hello(), model: 'gpt-4.1' }), 403, 'model_not_approved');
  });

  it('a body over the tenant limit is 413 and never reaches the upstream', async () => {
    const big = hello('x'.repeat(4096));
    const r = await post('/v1/chat/completions', big, bearer('tiny'));
    assert.deepEqual([r.status, r.json.error.code], [413, 'request_too_large']);
    assert.equal(stack.mock.requests.length, 0);
  });

  it('upstream 500 is 502, upstream 429 keeps Retry-After, a slow upstream is 504', async () => {
    const failed = await post('/v1/chat/completions', hello('[mock:500] hi'), bearer('demo'));
    assert.deepEqual([failed.status, failed.json.error.code], [502, 'upstream_error']);
    const limited = await post('/v1/chat/completions', hello('[mock:429] hi'), bearer('demo'));
    assert.deepEqual([limited.status, limited.json.error.code], [429, 'upstream_rate_limited']);
    assert.equal(limited.headers.get('retry-after'), '2');
    const slow = await post('/v1/chat/completions', { ...hello('[mock:slow-first-byte-3000] hi'), model: 'gpt-4o' }, bearer('demo'));
    assert.deepEqual([slow.status, slow.json.error.code], [504, 'upstream_timeout']);
  });

  it('unknown routes are 404 and every response carries x-request-id', async () => {
    const r = await fetch(`${stack.url}/v1/nothing`, { headers: bearer('demo') });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, 'unknown_url');
    assert.match(r.headers.get('x-request-id'), /^req_/);
    const health = await fetch(`${stack.url}/healthz`);
    assert.deepEqual(await health.json(), { status: 'ok', region: 'local' });
    assert.match(health.headers.get('x-request-id'), /^req_/);
  });

  it('request-rate limits hold across requests (Durable Object counter) with Retry-After', async () => {
    const statuses = [];
    let last;
    for (let i = 0; i < 3; i++) {
      last = await post('/v1/chat/completions', hello(), bearer('limited'));
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(last.json.error.code, 'rate_limit_exceeded');
    const retry = Number(last.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `retry-after ${retry}`);
  });
});

describe('regions fail closed', hostOptions(), () => {
  function rawGet(path, host, key) {
    return new Promise((ok, fail) => {
      const url = new URL(stack.url);
      const req = httpRequest({ host: url.hostname, port: url.port, path, headers: { host, authorization: `Bearer ${key}` } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => ok({ status: res.statusCode, json: JSON.parse(body) }));
      });
      req.on('error', fail);
      req.end();
    });
  }

  it('a Host of another region is 421', async () => {
    const r = await rawGet('/v1/models', 'eu.asc.example.com', stack.keys.demo.key);
    assert.deepEqual([r.status, r.json.error.code], [421, 'misdirected_request']);
  });

  it('a tenant pinned to another region is 403 naming its hostname', async () => {
    const r = await post('/v1/chat/completions', hello(), bearer('euonly'));
    assert.deepEqual([r.status, r.json.error.code], [403, 'wrong_region']);
    assert.match(r.json.error.message, /https:\/\/eu\.asc\.example\.com/);
    assert.equal(stack.mock.requests.length, 0);
  });

  it('a config pointing outside the region is refused before anything is sent', async () => {
    const r = await post('/v1/chat/completions', hello(), bearer('leaky'));
    // Refused at plan time: no target of the request lies inside the region.
    assert.deepEqual([r.status, r.json.error.code], [403, 'no_target_in_region']);
    assert.match(r.json.error.message, /api\.openai\.com.*allowlist/);
    assert.equal(stack.mock.requests.length, 0);
  });
});
