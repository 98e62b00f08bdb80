import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start } from './server.mjs';
import { poster, readEvents, weatherSchema } from './test-helpers.mjs';

let srv;
let post;
before(async () => {
  srv = await start({ port: 0 });
  post = poster(srv, { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01' });
});
after(() => srv.close());

const ask = (text, extra = {}) => ({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: text }], ...extra });
const TOOLS = [
  { name: 'get_weather', description: 'Weather for a city', input_schema: weatherSchema },
  { name: 'get_time', input_schema: { type: 'object', properties: { tz: { type: 'string' } } } },
];

async function assertError(res, status, type, message) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ['type', 'error', 'request_id']);
  assert.equal(body.type, 'error');
  assert.deepEqual(Object.keys(body.error), ['type', 'message']);
  assert.equal(body.error.type, type);
  if (message instanceof RegExp) assert.match(body.error.message, message);
  else if (message !== undefined) assert.equal(body.error.message, message);
  assert.match(body.request_id, /^req_/);
  assert.equal(res.headers.get('request-id'), body.request_id);
  return body.error;
}

/** Parse an Anthropic stream: named events whose data `type` equals the event name. */
async function events(res) {
  const { blocks, error } = await readEvents(res);
  const parsed = blocks.map((b) => {
    const data = JSON.parse(b.data);
    assert.equal(data.type, b.event, 'event name and data type agree');
    return data;
  });
  return { events: parsed, error };
}

test('non-streaming message object', async () => {
  const res = await post('/v1/messages', { ...ask('hello  there'), system: 'be brief' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('request-id'), /^req_/);
  const m = await res.json();
  assert.deepEqual(Object.keys(m), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage']);
  assert.match(m.id, /^msg_01[A-Za-z0-9]{22}$/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'claude-sonnet-4-5');
  assert.deepEqual(m.content, [{ type: 'text', text: 'Mock reply to: hello  there' }]);
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.stop_sequence, null);
  assert.deepEqual(m.usage, { input_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 5 });
});

test('the /anthropic prefix, Bearer auth and system blocks', async () => {
  const res = await post('/anthropic/v1/messages', { ...ask('hi'), system: [{ type: 'text', text: 'sys' }] },
    { 'x-api-key': undefined, authorization: 'Bearer sk-ant-oat' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).content[0].text, 'Mock reply to: hi');
});

test('max_tokens and stop_sequences end the reply with their stop_reason', async () => {
  const short = await (await post('/v1/messages', ask('one two three', { max_tokens: 2 }))).json();
  assert.equal(short.content[0].text, 'Mock reply');
  assert.equal(short.stop_reason, 'max_tokens');
  assert.equal(short.usage.output_tokens, 2);
  const stopped = await (await post('/v1/messages', ask('alpha STOP beta', { stop_sequences: ['STOP'] }))).json();
  assert.equal(stopped.content[0].text, 'Mock reply to: alpha ');
  assert.equal(stopped.stop_reason, 'stop_sequence');
  assert.equal(stopped.stop_sequence, 'STOP');
});

test('[mock:cache] reports prompt-cache tokens', async () => {
  const m = await (await post('/v1/messages', ask('cached [mock:cache]'))).json();
  assert.ok(m.usage.cache_read_input_tokens > 0);
  assert.ok(m.usage.cache_creation_input_tokens > 0);
});

test('stream: exact event sequence, text deltas join to the reply', async () => {
  const plain = await (await post('/v1/messages', ask('stream these words'))).json();
  const res = await post('/v1/messages', ask('stream these words', { stream: true }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const { events: ev, error } = await events(res);
  assert.equal(error, null);
  const types = ev.map((e) => e.type);
  assert.deepEqual(types, [
    'message_start', 'content_block_start', 'ping',
    ...Array(plain.usage.output_tokens).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
  const start = ev[0].message;
  assert.deepEqual(start.content, []);
  assert.equal(start.stop_reason, null);
  assert.equal(start.usage.input_tokens, plain.usage.input_tokens);
  assert.deepEqual(ev[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  const text = ev.filter((e) => e.type === 'content_block_delta').map((e) => {
    assert.equal(e.index, 0);
    assert.equal(e.delta.type, 'text_delta');
    return e.delta.text;
  }).join('');
  assert.equal(text, plain.content[0].text);
  assert.deepEqual(ev.at(-2), {
    type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: plain.usage.output_tokens },
  });
});

test('tools: a text block then a tool_use with schema-valid input', async () => {
  const m = await (await post('/v1/messages', ask('weather?', { tools: TOOLS }))).json();
  assert.equal(m.stop_reason, 'tool_use');
  assert.equal(m.content.length, 2);
  assert.equal(m.content[0].type, 'text');
  const [use] = m.content.slice(1);
  assert.deepEqual(Object.keys(use), ['type', 'id', 'name', 'input']);
  assert.match(use.id, /^toolu_01[A-Za-z0-9]{22}$/);
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris' });
});

test('tool_choice {type:"tool"} picks the tool; {type:"none"} answers in text', async () => {
  const forced = await (await post('/v1/messages', ask('time?', { tools: TOOLS, tool_choice: { type: 'tool', name: 'get_time' } }))).json();
  assert.equal(forced.content[1].name, 'get_time');
  assert.deepEqual(forced.content[1].input, { tz: 'Paris' });
  const none = await (await post('/v1/messages', ask('hi', { tools: TOOLS, tool_choice: { type: 'none' } }))).json();
  assert.equal(none.stop_reason, 'end_turn');
});

test('parallel-tools: two tool_use blocks streamed as input_json_delta pieces with their own index', async () => {
  const plain = await (await post('/v1/messages', ask('both [mock:parallel-tools]', { tools: TOOLS }))).json();
  const uses = plain.content.filter((b) => b.type === 'tool_use');
  assert.deepEqual(uses.map((u) => [u.name, u.input]), [['get_weather', { city: 'Paris' }], ['get_time', { tz: 'London' }]]);
  assert.notEqual(uses[0].id, uses[1].id);

  const { events: ev } = await events(await post('/v1/messages', ask('both [mock:parallel-tools]', { tools: TOOLS, stream: true })));
  const starts = ev.filter((e) => e.type === 'content_block_start');
  assert.deepEqual(starts.map((s) => s.index), [0, 1, 2]);
  for (const [k, use] of uses.entries()) {
    const index = k + 1;
    const block = starts[index].content_block;
    assert.deepEqual(block, { type: 'tool_use', id: block.id, name: use.name, input: {} });
    assert.match(block.id, /^toolu_01/);
    const deltas = ev.filter((e) => e.type === 'content_block_delta' && e.index === index);
    assert.ok(deltas.length >= 3, 'input arrives in several pieces');
    assert.ok(deltas.every((d) => d.delta.type === 'input_json_delta'));
    assert.deepEqual(JSON.parse(deltas.map((d) => d.delta.partial_json).join('')), use.input);
  }
  assert.notEqual(starts[1].content_block.id, starts[2].content_block.id);
  assert.equal(ev.find((e) => e.type === 'message_delta').delta.stop_reason, 'tool_use');
  // Each block is closed before the next one opens.
  const order = ev.filter((e) => e.index !== undefined && e.type !== 'content_block_delta').map((e) => `${e.type}:${e.index}`);
  assert.deepEqual(order, ['content_block_start:0', 'content_block_stop:0', 'content_block_start:1', 'content_block_stop:1', 'content_block_start:2', 'content_block_stop:2']);
});

test('tool_result round trip: the reply quotes the results', async () => {
  const first = await (await post('/v1/messages', ask('weather? [mock:parallel-tools]', { tools: TOOLS }))).json();
  const uses = first.content.filter((b) => b.type === 'tool_use');
  const body = ask('', {
    tools: TOOLS,
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: first.content },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: uses[0].id, content: '21C and sunny' },
          { type: 'tool_result', tool_use_id: uses[1].id, content: [{ type: 'text', text: '14:00' }] },
        ],
      },
    ],
  });
  const m = await (await post('/v1/messages', body)).json();
  assert.equal(m.stop_reason, 'end_turn');
  assert.deepEqual(m.content, [{ type: 'text', text: 'Mock reply to tool result: 21C and sunny | 14:00' }]);

  body.messages[2].content[0].tool_use_id = 'toolu_unknown';
  await assertError(await post('/v1/messages', body), 400, 'invalid_request_error', /unexpected `tool_use_id`.*toolu_unknown/);
});

test('auth: 401 without a key; 400 without anthropic-version', async () => {
  await assertError(await post('/v1/messages', ask('hi'), { 'x-api-key': undefined }), 401, 'authentication_error', 'x-api-key header is required');
  await assertError(await post('/v1/messages', ask('hi'), { 'anthropic-version': undefined }), 400, 'invalid_request_error',
    'anthropic-version: header is required');
});

test('validation: 400 invalid_request_error naming the field', async () => {
  const cases = [
    [{ model: 'c', messages: [{ role: 'user', content: 'x' }] }, 'max_tokens: Field required'],
    [ask('x', { max_tokens: 0 }), 'max_tokens: Input should be greater than or equal to 1'],
    [ask('x', { max_tokens: 1.5 }), 'max_tokens: Input should be a valid integer'],
    [ask('x', { stream_options: {} }), 'stream_options: Extra inputs are not permitted'],
    [ask('x', { user: 'u' }), 'user: Extra inputs are not permitted'],
    [ask('x', { messages: [] }), 'messages: at least one message is required'],
    [ask('x', { messages: [{ role: 'assistant', content: 'x' }] }), 'messages: first message must use the "user" role'],
    [ask('x', { messages: [{ role: 'system', content: 'x' }] }), "messages.0.role: Input should be 'user' or 'assistant'"],
    [ask('x', { temperature: 1.5 }), 'temperature: Input should be less than or equal to 1'],
    [ask('x', { tools: [{ name: 't' }] }), 'tools.0.custom.input_schema: Field required'],
    [ask('x', { tool_choice: { type: 'tool' }, tools: TOOLS }), 'tool_choice.tool.name: Field required'],
    [ask('x', { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }), /messages\.0\.content\.0: Input tag 'image_url'/],
  ];
  for (const [body, message] of cases) await assertError(await post('/v1/messages', body), 400, 'invalid_request_error', message);
  await assertError(await post('/v1/messages', '{oops'), 400, 'invalid_request_error');
});

test('unknown paths are 404 not_found_error under /anthropic', async () => {
  await assertError(await post('/anthropic/v1/nope', {}), 404, 'not_found_error');
});

test('status tokens answer in Anthropic error shape', async () => {
  const limited = await post('/v1/messages', { ...ask('hi'), model: 'claude-429' });
  assert.equal(limited.headers.get('retry-after'), '2');
  await assertError(limited, 429, 'rate_limit_error');
  await assertError(await post('/v1/messages', ask('hi [mock:529]')), 529, 'overloaded_error', 'Overloaded');
  await assertError(await post('/v1/messages', ask('hi'), { 'x-mock-behavior': '500' }), 500, 'api_error');
  await assertError(await post('/v1/messages', ask('hi [mock:403]')), 403, 'permission_error');
  await assertError(await post('/v1/messages', ask('hi [mock:413]')), 413, 'request_too_large');
});

test('error-event: an overloaded_error event after the first delta, no message_stop', async () => {
  const { events: ev, error } = await events(await post('/v1/messages', ask('one two', { stream: true }), { 'x-mock-behavior': 'error-event' }));
  assert.equal(error, null);
  assert.deepEqual(ev.map((e) => e.type), ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error']);
  assert.deepEqual(ev.at(-1), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
});

test('cut-stream: the connection drops after two deltas without message_stop', async () => {
  const { blocks, error } = await readEvents(await post('/v1/messages', ask('one two three', { stream: true }), { 'x-mock-behavior': 'cut-stream' }));
  assert.ok(error, 'stream should fail');
  assert.deepEqual(blocks.map((b) => b.event), ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta']);
  const cut = await post('/v1/messages', ask('one [mock:cut-stream]'));
  assert.equal(cut.status, 200);
  await assert.rejects(cut.text());
});

test('malformed-chunk: invalid JSON in one data line, then the stream completes', async () => {
  const { blocks, error } = await readEvents(await post('/v1/messages', ask('x y [mock:malformed-chunk]', { stream: true })));
  assert.equal(error, null);
  const bad = blocks.filter((b) => { try { JSON.parse(b.data); return false; } catch { return true; } });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].event, 'content_block_delta');
  assert.equal(blocks.at(-1).event, 'message_stop');
});

test('slow-stream spaces events; long-<n> streams n deltas', async () => {
  const t0 = performance.now();
  const { events: ev } = await events(await post('/v1/messages', ask('a', { stream: true }), { 'x-mock-behavior': 'slow-stream-40' }));
  assert.ok(performance.now() - t0 >= 40 * (ev.length - 1) - 20);
  const long = await (await post('/v1/messages', { ...ask('hi', { max_tokens: 10000 }), model: 'claude@long-300' })).json();
  assert.equal(long.usage.output_tokens, 300);
});
