// OpenAI tool calls and embeddings (the text chat format is covered in server.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { start } from './server.mjs';
import { poster, readEvents, weatherSchema } from './test-helpers.mjs';

let srv;
let post;
before(async () => {
  srv = await start({ port: 0 });
  post = poster(srv, { authorization: 'Bearer sk-test' });
});
after(() => srv.close());

const ask = (text, extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }], ...extra });
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', parameters: weatherSchema } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

async function chunks(res) {
  const { blocks, error } = await readEvents(res);
  assert.equal(error, null);
  assert.equal(blocks.at(-1).data, '[DONE]');
  return blocks.slice(0, -1).map((b) => JSON.parse(b.data));
}

test('tool call reply: content null, tool_calls, finish_reason tool_calls', async () => {
  const c = await (await post('/v1/chat/completions', ask('weather?', { tools: TOOLS }))).json();
  const [choice] = c.choices;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  const [call] = choice.message.tool_calls;
  assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
  assert.deepEqual(call, { id: call.id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } });
  assert.ok(c.usage.completion_tokens > 0);
});

test('tool_choice none answers in text; a named tool_choice picks that tool', async () => {
  const none = await (await post('/v1/chat/completions', ask('hi', { tools: TOOLS, tool_choice: 'none' }))).json();
  assert.equal(none.choices[0].message.content, 'Mock reply to: hi');
  const named = await (await post('/v1/chat/completions',
    ask('hi', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_time' } } }))).json();
  assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_time');
});

test('streamed parallel tool calls: header delta then argument pieces, one index per call', async () => {
  const cs = await chunks(await post('/v1/chat/completions', ask('both [mock:parallel-tools]', { tools: TOOLS, stream: true })));
  const first = cs[0].choices[0].delta;
  assert.equal(first.role, 'assistant');
  assert.equal(first.content, null);
  assert.equal(cs.at(-1).choices[0].finish_reason, 'tool_calls');
  assert.deepEqual(cs.at(-1).choices[0].delta, {});
  const deltas = cs.slice(0, -1).flatMap((c) => c.choices[0].delta.tool_calls ?? []);
  const calls = [];
  for (const d of deltas) {
    if (d.id) {
      assert.deepEqual(Object.keys(d), ['index', 'id', 'type', 'function']);
      assert.deepEqual(d.function, { name: d.function.name, arguments: '' });
      assert.equal(d.index, calls.length, 'a new call takes the next index');
      calls.push({ id: d.id, name: d.function.name, arguments: '' });
    } else {
      assert.deepEqual(Object.keys(d), ['index', 'function']);
      assert.deepEqual(Object.keys(d.function), ['arguments']);
      calls[d.index].arguments += d.function.arguments;
    }
  }
  assert.deepEqual(calls.map((c) => [c.name, JSON.parse(c.arguments)]), [['get_weather', { city: 'Paris' }], ['get_time', { tz: 'London' }]]);
  assert.ok(deltas.length >= 6, 'arguments arrive in several pieces');
});

test('tool result round trip quotes every trailing tool message', async () => {
  const c = await (await post('/v1/chat/completions', ask('', {
    tools: TOOLS,
    messages: [
      { role: 'user', content: 'weather and time?' },
      { role: 'assistant', content: null, tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
      ] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: 'noon' }] },
    ],
  }))).json();
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.choices[0].message.content, 'Mock reply to tool result: sunny | noon');
});

test('embeddings: float by default, base64 little-endian float32, dimensions, token-id input', async () => {
  const body = { model: 'text-embedding-3-small', input: ['hello world', 'bye'] };
  const res = await post('/v1/embeddings', body);
  assert.equal(res.status, 200);
  const e = await res.json();
  assert.deepEqual(Object.keys(e), ['object', 'data', 'model', 'usage']);
  assert.equal(e.object, 'list');
  assert.deepEqual(e.usage, { prompt_tokens: 3, total_tokens: 3 });
  assert.deepEqual(e.data.map((d) => [d.object, d.index, d.embedding.length]), [['embedding', 0, 16], ['embedding', 1, 16]]);
  assert.ok(Math.abs(Math.hypot(...e.data[0].embedding) - 1) < 1e-6);
  assert.notDeepEqual(e.data[0].embedding, e.data[1].embedding);

  const b64 = await (await post('/v1/embeddings', { ...body, encoding_format: 'base64' })).json();
  const floats = new Float32Array(new Uint8Array(Buffer.from(b64.data[0].embedding, 'base64')).buffer);
  assert.deepEqual(Array.from(floats), e.data[0].embedding);

  const small = await (await post('/v1/embeddings', { ...body, input: 'x', dimensions: 4 })).json();
  assert.equal(small.data[0].embedding.length, 4);
  const ids = await (await post('/v1/embeddings', { ...body, input: [1, 2, 3] })).json();
  assert.equal(ids.data.length, 1);
  assert.equal(ids.usage.prompt_tokens, 3);
});

test('embeddings errors: auth, bad encoding_format, missing input, status tokens', async () => {
  assert.equal((await post('/v1/embeddings', { model: 'm', input: 'x' }, { authorization: undefined })).status, 401);
  const bad = await post('/v1/embeddings', { model: 'm', input: 'x', encoding_format: 'hex' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.param, 'encoding_format');
  assert.equal((await post('/v1/embeddings', { model: 'm' })).status, 400);
  assert.equal((await post('/v1/embeddings', { model: 'mock-429', input: 'x' })).status, 429);
});
