import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start } from './server.mjs';
import { poster, readEvents, weatherSchema } from './test-helpers.mjs';

let srv;
let post;
before(async () => {
  srv = await start({ port: 0 });
  post = poster(srv, { authorization: 'Bearer mistral-key' });
});
after(() => srv.close());

const CHAT = '/mistral/v1/chat/completions';
const ask = (text, extra = {}) => ({ model: 'mistral-small-latest', messages: [{ role: 'user', content: text }], ...extra });
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', parameters: weatherSchema } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

async function chunks(res) {
  const { blocks, error } = await readEvents(res);
  assert.equal(error, null);
  assert.ok(blocks.every((b) => b.event === null), 'data-only events');
  assert.equal(blocks.at(-1).data, '[DONE]');
  return blocks.slice(0, -1).map((b) => JSON.parse(b.data));
}

test('non-streaming chat.completion shape and usage', async () => {
  const res = await post(CHAT, { ...ask('hello there'), temperature: 0.2, random_seed: 7, safe_prompt: false });
  assert.equal(res.status, 200);
  const c = await res.json();
  assert.match(c.id, /^[a-z0-9]{32}$/);
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.model, 'mistral-small-latest');
  assert.ok(Number.isInteger(c.created));
  assert.deepEqual(c.choices, [{
    index: 0,
    message: { role: 'assistant', content: 'Mock reply to: hello there', tool_calls: null, prefix: false },
    finish_reason: 'stop',
  }]);
  assert.deepEqual(c.usage, { prompt_tokens: 2, total_tokens: 7, completion_tokens: 5 });
});

test('stream: role chunk, word chunks, last chunk with finish_reason and usage, [DONE]', async () => {
  const plain = await (await post(CHAT, ask('few words here'))).json();
  const res = await post(CHAT, ask('few words here', { stream: true }));
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const cs = await chunks(res);
  for (const c of cs) {
    assert.deepEqual(Object.keys(c).slice(0, 5), ['id', 'object', 'created', 'model', 'choices']);
    assert.equal(c.object, 'chat.completion.chunk');
  }
  assert.deepEqual(cs[0].choices, [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
  const last = cs.at(-1);
  assert.deepEqual(last.choices, [{ index: 0, delta: { content: '' }, finish_reason: 'stop' }]);
  assert.deepEqual(last.usage, plain.usage);
  assert.ok(cs.slice(0, -1).every((c) => c.usage === undefined), 'only the last chunk has usage');
  assert.equal(cs.map((c) => c.choices[0].delta.content).join(''), plain.choices[0].message.content);
});

test('tool call: 9-char id, finish_reason tool_calls; round trip quotes the tool result', async () => {
  const c = await (await post(CHAT, ask('weather?', { tools: TOOLS, tool_choice: 'auto' }))).json();
  const msg = c.choices[0].message;
  assert.equal(c.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls.length, 1);
  const [call] = msg.tool_calls;
  assert.match(call.id, /^[a-zA-Z0-9]{9}$/);
  assert.deepEqual(call, { id: call.id, function: { name: 'get_weather', arguments: '{"city":"Paris"}' }, index: 0 });

  const next = await (await post(CHAT, ask('', {
    tools: TOOLS,
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: '', tool_calls: [{ ...call, type: 'function' }] },
      { role: 'tool', name: 'get_weather', tool_call_id: call.id, content: 'rain, 12C' },
    ],
  }))).json();
  assert.equal(next.choices[0].finish_reason, 'stop');
  assert.equal(next.choices[0].message.content, 'Mock reply to tool result: rain, 12C');
});

test('parallel-tools: both calls arrive whole in the last chunk, with distinct indexes', async () => {
  const cs = await chunks(await post(CHAT, ask('both [mock:parallel-tools]', { tools: TOOLS, stream: true })));
  assert.equal(cs.length, 2);
  const last = cs.at(-1);
  assert.equal(last.choices[0].finish_reason, 'tool_calls');
  assert.ok(last.usage.completion_tokens > 0);
  const calls = last.choices[0].delta.tool_calls;
  assert.deepEqual(calls.map((c) => [c.index, c.function.name, JSON.parse(c.function.arguments)]),
    [[0, 'get_weather', { city: 'Paris' }], [1, 'get_time', { tz: 'London' }]]);
  assert.ok(calls.every((c) => /^[a-zA-Z0-9]{9}$/.test(c.id)));
  assert.notEqual(calls[0].id, calls[1].id);
});

test('strict schema: unknown fields are 422 extra_forbidden, all listed', async () => {
  const res = await post(CHAT, ask('x', { stream_options: { include_usage: true }, user: 'u', max_completion_tokens: 5, seed: 1, logprobs: true }));
  assert.equal(res.status, 422);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ['object', 'message', 'type', 'param', 'code']);
  assert.equal(body.object, 'error');
  assert.equal(body.type, 'invalid_request_error');
  assert.deepEqual(body.message.detail.map((d) => [d.type, d.loc.join('.'), d.msg]), [
    ['extra_forbidden', 'body.stream_options', 'Extra inputs are not permitted'],
    ['extra_forbidden', 'body.user', 'Extra inputs are not permitted'],
    ['extra_forbidden', 'body.max_completion_tokens', 'Extra inputs are not permitted'],
    ['extra_forbidden', 'body.seed', 'Extra inputs are not permitted'],
    ['extra_forbidden', 'body.logprobs', 'Extra inputs are not permitted'],
  ]);
  const named = await (await post(CHAT, ask('x', { messages: [{ role: 'user', content: 'x', name: 'bob' }] }))).json();
  assert.deepEqual(named.message.detail[0].loc, ['body', 'messages', 0, 'user', 'name']);
  const noModel = await post(CHAT, { messages: [{ role: 'user', content: 'x' }] });
  assert.equal(noModel.status, 422);
  assert.deepEqual((await noModel.json()).message.detail[0].loc, ['body', 'model']);
});

test('tool-call ids that are not 9 letters or digits are refused', async () => {
  for (const id of ['call_abc123', 'abc', 'abcdefgh_']) {
    const res = await post(CHAT, ask('', {
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: '', tool_calls: [{ id, function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: id, content: 'r' },
      ],
    }));
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      object: 'error',
      message: `Tool call id was ${id} but must be a-z, A-Z, 0-9, with a length of 9.`,
      type: 'invalid_function_call',
      param: null,
      code: '3280',
    });
  }
});

test('auth and unknown paths', async () => {
  const res = await post(CHAT, ask('x'), { authorization: undefined });
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { detail: 'Unauthorized' });
  const nope = await post('/mistral/v1/nope', {});
  assert.equal(nope.status, 404);
});

test('status tokens, error-event, cut-stream, malformed-chunk', async () => {
  const limited = await post(CHAT, { ...ask('x'), model: 'mistral-429' });
  assert.equal(limited.status, 429);
  assert.deepEqual(await limited.json(), { object: 'error', message: 'Rate limit exceeded', type: 'rate_limited', param: null, code: '1300' });
  assert.equal((await post(CHAT, ask('x [mock:500]'))).status, 500);

  const { blocks } = await readEvents(await post(CHAT, ask('a b', { stream: true }), { 'x-mock-behavior': 'error-event' }));
  assert.equal(blocks.length, 3);
  assert.equal(JSON.parse(blocks[2].data).object, 'error');

  const cut = await readEvents(await post(CHAT, ask('a b c', { stream: true }), { 'x-mock-behavior': 'cut-stream' }));
  assert.ok(cut.error);
  assert.equal(cut.blocks.length, 3);

  const bad = await readEvents(await post(CHAT, ask('a b [mock:malformed-chunk]', { stream: true })));
  assert.throws(() => JSON.parse(bad.blocks[2].data));
  assert.equal(bad.blocks.at(-1).data, '[DONE]');
});

test('embeddings: list shape, deterministic unit vectors, base64 float32', async () => {
  const body = { model: 'mistral-embed', input: ['hello world', 'bye'], output_dimension: 8 };
  const res = await post('/mistral/v1/embeddings', body);
  assert.equal(res.status, 200);
  const e = await res.json();
  assert.deepEqual(Object.keys(e), ['id', 'object', 'data', 'model', 'usage']);
  assert.equal(e.object, 'list');
  assert.deepEqual(e.usage, { prompt_tokens: 3, total_tokens: 3, completion_tokens: 0 });
  assert.deepEqual(e.data.map((d) => [d.object, d.index, d.embedding.length]), [['embedding', 0, 8], ['embedding', 1, 8]]);
  assert.ok(Math.abs(Math.hypot(...e.data[0].embedding) - 1) < 1e-6);
  const again = await (await post('/mistral/v1/embeddings', body)).json();
  assert.deepEqual(again.data, e.data);

  const b64 = await (await post('/mistral/v1/embeddings', { ...body, encoding_format: 'base64' })).json();
  const buf = Buffer.from(b64.data[0].embedding, 'base64');
  assert.deepEqual(Array.from({ length: 8 }, (_, i) => buf.readFloatLE(i * 4)), e.data[0].embedding);

  for (const extra of [{ encoding_format: 'hex' }, { dimensions: 8 }, { user: 'u' }]) {
    assert.equal((await post('/mistral/v1/embeddings', { ...body, ...extra })).status, 422);
  }
});
