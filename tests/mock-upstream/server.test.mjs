import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { start } from './server.mjs';
import { parseBehavior } from './behaviors.mjs';

let srv;
before(async () => { srv = await start({ port: 0 }); });
after(() => srv.close());
beforeEach(async () => { await fetch(`${srv.url}/__mock/requests`, { method: 'DELETE' }); });

const AUTH = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };

function chat(body, headers = {}) {
  return fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...AUTH, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const ask = (text, extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }], ...extra });

/** Read an SSE body as raw `data:` payloads, with arrival times; a broken connection is returned, not thrown. */
async function readSse(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const events = [];
  let buf = '';
  let error = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) !== -1) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        assert.ok(block.startsWith('data: '), `unexpected SSE block ${JSON.stringify(block)}`);
        events.push({ data: block.slice(6), at: performance.now() });
      }
    }
  } catch (err) {
    error = err;
  }
  return { events, data: events.map((e) => e.data), error, rest: buf };
}

const contentOf = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');

async function assertOpenAIError(res, status, type, code) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.error.type, type);
  assert.equal(body.error.code, code);
  return body.error;
}

test('CLI prints one listening line and exits cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./server.mjs', import.meta.url)), '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => { out += d; });
  while (!out.includes('\n')) await once(child.stdout, 'data');
  const m = /^mock-upstream listening on (http:\/\/127\.0\.0\.1:(\d+))\n$/.exec(out);
  assert.ok(m, `unexpected output ${JSON.stringify(out)}`);
  assert.notEqual(Number(m[2]), 0);
  const res = await fetch(`${m[1]}/healthz`);
  assert.equal(await res.text(), 'ok');
  child.kill('SIGTERM');
  const [code, signal] = await once(child, 'exit');
  assert.equal(code, 0);
  assert.equal(signal, null);
  assert.equal(out, m[0]);
});

test('GET /healthz and GET /v1/models', async () => {
  const health = await fetch(`${srv.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'ok');

  const models = await (await fetch(`${srv.url}/v1/models`)).json();
  assert.equal(models.object, 'list');
  assert.ok(models.data.length > 0);
  for (const m of models.data) {
    assert.deepEqual(Object.keys(m), ['id', 'object', 'created', 'owned_by']);
    assert.equal(m.object, 'model');
    assert.ok(Number.isInteger(m.created));
    assert.equal(m.owned_by, 'mock');
  }
});

test('unknown paths are 404 in OpenAI error shape', async () => {
  await assertOpenAIError(await fetch(`${srv.url}/v1/nope`), 404, 'invalid_request_error', null);
  await assertOpenAIError(await fetch(`${srv.url}/v1/chat/completions`), 404, 'invalid_request_error', null);
});

test('chat completions require a bearer token', async () => {
  for (const authorization of [undefined, '', 'Bearer ', 'Basic abc']) {
    const headers = { 'content-type': 'application/json' };
    if (authorization !== undefined) headers.authorization = authorization;
    const res = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(ask('hi')) });
    const err = await assertOpenAIError(res, 401, 'invalid_request_error', 'invalid_api_key');
    assert.equal(err.param, null);
  }
});

test('invalid bodies are 400 naming the parameter', async () => {
  let err = await assertOpenAIError(await chat('{not json'), 400, 'invalid_request_error', 'invalid_json');
  assert.equal(err.param, null);
  err = await assertOpenAIError(await chat({ messages: [{ role: 'user', content: 'x' }] }), 400,
    'invalid_request_error', 'missing_required_parameter');
  assert.equal(err.param, 'model');
  err = await assertOpenAIError(await chat({ model: 'm' }), 400, 'invalid_request_error', 'missing_required_parameter');
  assert.equal(err.param, 'messages');
  err = await assertOpenAIError(await chat({ model: 'm', messages: [] }), 400, 'invalid_request_error', 'empty_array');
  assert.equal(err.param, 'messages');
  err = await assertOpenAIError(await chat({ model: 7, messages: [{ role: 'user', content: 'x' }] }), 400,
    'invalid_request_error', 'invalid_type');
  assert.equal(err.param, 'model');
});

test('non-streaming chat.completion shape, content and usage', async () => {
  const body = {
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'an answer' },
      { role: 'user', content: [{ type: 'text', text: 'hello  there' }, { type: 'image_url', image_url: { url: 'x' } }] },
    ],
  };
  const res = await chat(body);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const c = await res.json();
  const before = Math.floor(Date.now() / 1000);
  assert.match(c.id, /^chatcmpl-mock-\d+$/);
  assert.equal(c.object, 'chat.completion');
  assert.ok(Number.isInteger(c.created) && Math.abs(c.created - before) <= 5);
  assert.equal(c.model, 'gpt-4o-mini');
  assert.equal(typeof c.system_fingerprint, 'string');
  assert.deepEqual(c.choices, [{
    index: 0,
    message: { role: 'assistant', content: 'Mock reply to: hello  there', refusal: null },
    logprobs: null,
    finish_reason: 'stop',
  }]);
  assert.deepEqual(c.usage, {
    prompt_tokens: 8, // be brief / first question / an answer / hello there
    completion_tokens: 5,
    total_tokens: 13,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  });

  const next = await (await chat(ask('again'))).json();
  assert.equal(Number(next.id.split('-').pop()), Number(c.id.split('-').pop()) + 1);
});

test('reply quotes at most 200 chars of the last user message; prompt_tokens is at least 1', async () => {
  const c = await (await chat(ask('x'.repeat(250)))).json();
  assert.equal(c.choices[0].message.content, 'Mock reply to: ' + 'x'.repeat(200));
  const empty = await (await chat(ask(''))).json();
  assert.equal(empty.usage.prompt_tokens, 1);
});

test('max_tokens / max_completion_tokens truncate with finish_reason length', async () => {
  for (const limit of [{ max_tokens: 2 }, { max_completion_tokens: 2 }]) {
    const c = await (await chat(ask('one two three', limit))).json();
    assert.equal(c.choices[0].message.content, 'Mock reply');
    assert.equal(c.choices[0].finish_reason, 'length');
    assert.equal(c.usage.completion_tokens, 2);
  }
  const roomy = await (await chat(ask('one', { max_tokens: 100 }))).json();
  assert.equal(roomy.choices[0].finish_reason, 'stop');
});

test('streaming: role chunk, one chunk per word, finish chunk, [DONE]', async () => {
  const plain = await (await chat(ask('stream  these\nfew words'))).json();
  const res = await chat(ask('stream  these\nfew words', { stream: true }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('content-length'), null);
  const { data, error, rest } = await readSse(res);
  assert.equal(error, null);
  assert.equal(rest, '');
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  const first = chunks[0];
  for (const c of chunks) {
    assert.deepEqual(Object.keys(c), ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices']);
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.id, first.id);
    assert.equal(c.created, first.created);
    assert.equal(c.model, 'gpt-4o-mini');
    assert.equal(c.system_fingerprint, plain.system_fingerprint);
  }
  assert.deepEqual(first.choices, [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]);
  const words = chunks.slice(1, -1);
  assert.equal(words.length, plain.usage.completion_tokens);
  for (const w of words) {
    assert.deepEqual(Object.keys(w.choices[0].delta), ['content']);
    assert.equal(w.choices[0].finish_reason, null);
  }
  assert.deepEqual(words.map((w) => w.choices[0].delta.content), ['Mock ', 'reply ', 'to: ', 'stream  ', 'these\n', 'few ', 'words']);
  assert.equal(contentOf(words), plain.choices[0].message.content);
  assert.deepEqual(chunks.at(-1).choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
});

test('streaming with include_usage: usage null on every chunk, then a usage-only chunk', async () => {
  const plain = await (await chat(ask('count me', { max_tokens: 4 }))).json();
  const res = await chat(ask('count me', { stream: true, max_tokens: 4, stream_options: { include_usage: true } }));
  const { data } = await readSse(res);
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, plain.usage);
  for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
  assert.equal(contentOf(chunks.slice(0, -1)), plain.choices[0].message.content);
});

test('requests are recorded and can be cleared', async () => {
  await chat(ask('record me'), { 'x-extra': 'yes' });
  await fetch(`${srv.url}/somewhere?q=1`, { method: 'POST', body: 'not json' });
  const log = await (await fetch(`${srv.url}/__mock/requests`)).json();
  assert.equal(log.length, 2);
  assert.equal(log[0].method, 'POST');
  assert.equal(log[0].path, '/v1/chat/completions');
  assert.equal(log[0].headers.authorization, 'Bearer sk-test');
  assert.equal(log[0].headers['x-extra'], 'yes');
  assert.deepEqual(log[0].body, ask('record me'));
  assert.equal(log[1].path, '/somewhere?q=1');
  assert.equal(log[1].body, 'not json');

  const del = await fetch(`${srv.url}/__mock/requests`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assert.deepEqual(await (await fetch(`${srv.url}/__mock/requests`)).json(), []);
});

test('429 via model name, with retry-after headers', async () => {
  const res = await chat({ ...ask('hi'), model: 'mock-429' });
  assert.equal(res.headers.get('retry-after'), '2');
  assert.equal(res.headers.get('retry-after-ms'), '2000');
  await assertOpenAIError(res, 429, 'requests', 'rate_limit_exceeded');
});

test('500 via model suffix, 503 via header, 500 via [mock:] tag', async () => {
  await assertOpenAIError(await chat({ ...ask('hi'), model: 'gpt-4o-mini@500' }), 500, 'server_error', null);
  await assertOpenAIError(await chat(ask('hi'), { 'x-mock-behavior': '503' }), 503, 'server_error', null);
  await assertOpenAIError(await chat(ask('please [mock:500] now', { stream: true })), 500, 'server_error', null);
  // Only the last user message counts.
  const earlier = {
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: '[mock:500]' }, { role: 'user', content: 'fine' }],
  };
  assert.equal((await chat(earlier)).status, 200);
});

test('slow-first-byte-<ms> delays the response headers', async () => {
  const t0 = performance.now();
  const res = await chat(ask('hi'), { 'x-mock-behavior': 'slow-first-byte-300' });
  assert.ok(performance.now() - t0 >= 280, 'headers arrived too early');
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'Mock reply to: hi');
});

test('slow-stream-<ms> spaces out chunks, each flushed as written', async () => {
  const t0 = performance.now();
  const res = await chat({ ...ask('a b', { stream: true }), model: 'mock-slow-stream-100' });
  const { events, data } = await readSse(res);
  assert.equal(data.at(-1), '[DONE]');
  assert.equal(events.length, 8); // role + 5 words + finish + [DONE]
  assert.ok(events.at(-1).at - t0 >= 680, 'stream finished too fast');
  // Arrival spacing shows each event was flushed on its own rather than buffered.
  const gaps = events.slice(1).map((e, i) => e.at - events[i].at);
  for (const gap of gaps) assert.ok(gap >= 50, `chunks arrived together (gap ${gap.toFixed(0)} ms)`);
});

test('cut-stream (streaming) drops the connection after two content chunks', async () => {
  const res = await chat(ask('one two three', { stream: true }), { 'x-mock-behavior': 'cut-stream' });
  assert.equal(res.status, 200);
  const { data, error } = await readSse(res);
  assert.ok(error, 'stream should fail');
  const chunks = data.map((d) => JSON.parse(d));
  assert.equal(chunks.length, 3);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(contentOf(chunks), 'Mock reply ');
});

test('cut-stream (non-streaming) sends a short body for its content-length', async () => {
  const res = await chat({ ...ask('hi'), model: 'mock-cut-stream' });
  assert.equal(res.status, 200);
  assert.ok(Number(res.headers.get('content-length')) > 0);
  await assert.rejects(res.text());
});

test('malformed-chunk inserts invalid JSON after the first content chunk, then completes', async () => {
  const res = await chat(ask('x [mock:malformed-chunk] y', { stream: true }));
  const { data, error } = await readSse(res);
  assert.equal(error, null);
  assert.equal(data[2], '{"id": "broken');
  assert.throws(() => JSON.parse(data[2]));
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.filter((_, i) => i !== 2).slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(contentOf(chunks), 'Mock reply to: x [mock:malformed-chunk] y');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

test('error-event sends an error object mid-stream and ends without [DONE]', async () => {
  const res = await chat(ask('hi', { stream: true }), { 'x-mock-behavior': 'error-event' });
  const { data, error } = await readSse(res);
  assert.equal(error, null);
  assert.equal(data.length, 3);
  assert.equal(JSON.parse(data[1]).choices[0].delta.content, 'Mock ');
  assert.deepEqual(JSON.parse(data[2]), {
    error: { message: 'mock upstream error mid-stream', type: 'server_error', param: null, code: null },
  });
});

test('long-<n> replies with n words, streamed as n chunks', async () => {
  const c = await (await chat({ ...ask('hi'), model: 'mock-long-5' })).json();
  assert.equal(c.choices[0].message.content, 'word1 word2 word3 word4 word5');
  assert.equal(c.usage.completion_tokens, 5);

  const res = await chat({ ...ask('hi', { stream: true }), model: 'gpt-4o-mini@long-5000' });
  const { data } = await readSse(res);
  assert.equal(data.at(-1), '[DONE]');
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(chunks.length, 5000 + 2);
  const text = contentOf(chunks);
  assert.ok(text.startsWith('word1 word2 '));
  assert.ok(text.endsWith(' word5000'));
});

test('behaviour token parsing', () => {
  assert.equal(parseBehavior(['mock-500']).status, 500);
  assert.equal(parseBehavior(['gpt-4o-mini@429']).status, 429);
  assert.equal(parseBehavior(['gpt-4-0503-preview']).status, null);
  assert.equal(parseBehavior(['mock-5000']).status, null);
  const slow = parseBehavior(['mock-slow-stream-500']);
  assert.equal(slow.status, null);
  assert.equal(slow.slowStreamMs, 500);
  assert.equal(parseBehavior(['slow-stream']).slowStreamMs, 300);
  assert.equal(parseBehavior(['slow-first-byte']).slowFirstByteMs, 3000);
  assert.equal(parseBehavior(['x-slow-first-byte-25']).slowFirstByteMs, 25);
  assert.equal(parseBehavior(['long-context-model']).longWords, null);
  const many = parseBehavior(['cut-stream, malformed-chunk', 'm@error-event', 'long-7']);
  assert.deepEqual(
    [many.cutStream, many.malformedChunk, many.errorEvent, many.longWords],
    [true, true, true, 7],
  );
});
