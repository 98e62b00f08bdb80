// Every inbound dialect against every provider, on workerd with the mock upstream: the official
// OpenAI SDK and the official Anthropic SDK each do a plain call, a stream and a tool-call round
// trip against OpenAI, Anthropic and Mistral targets, and parse every reply. Expected texts and
// token counts follow the mock's documented rules (tests/mock-upstream/README.md): the reply
// quotes the last user text ("Mock reply to: <text>"), tokens are whitespace-separated words.
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startStack, UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY, MISTRAL_UPSTREAM_KEY, hostOptions } from './harness.mjs';

let stack;
const openai = () => new OpenAI({ apiKey: stack.keys.multi.key, baseURL: stack.baseURL, maxRetries: 0 });
const anthropic = () => new Anthropic({ apiKey: stack.keys.multi.key, baseURL: stack.url, maxRetries: 0 });

before(async () => { if (!hostOptions().skip) stack = await startStack(); });
after(async () => { await stack?.stop(); });
beforeEach(() => { stack.mock.requests.length = 0; });

// model -> what the upstream must have seen.
const PROVIDERS = {
  'gpt-4o-mini': { path: '/v1/chat/completions', auth: (h) => h.authorization === `Bearer ${UPSTREAM_KEY}` },
  'claude-haiku-4-5': {
    path: '/anthropic/v1/messages',
    auth: (h) => h['x-api-key'] === ANTHROPIC_UPSTREAM_KEY && h['anthropic-version'] === '2023-06-01',
  },
  'mistral-small-latest': { path: '/mistral/v1/chat/completions', auth: (h) => h.authorization === `Bearer ${MISTRAL_UPSTREAM_KEY}` },
};

const WEATHER = {
  name: 'get_weather',
  description: 'Current weather for a city',
  schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function upstreamCall() {
  assert.equal(stack.mock.requests.length, 1, 'exactly one upstream call');
  return stack.mock.requests[0];
}

function checkUpstream(model) {
  const call = upstreamCall();
  assert.equal(call.path, PROVIDERS[model].path);
  assert.ok(PROVIDERS[model].auth(call.headers), `upstream credential for ${model}`);
  assert.ok(!JSON.stringify(call).includes(stack.keys.multi.key), 'the client key never reaches the upstream');
  return call;
}

for (const model of Object.keys(PROVIDERS)) {
  describe(`OpenAI SDK -> ${model}`, hostOptions(), () => {
    it('chat completion with usage', async () => {
      const res = await openai().chat.completions.create({
        model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello from the SDK' }],
        temperature: 0.5, max_tokens: 50,
      });
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.choices[0].message.role, 'assistant');
      assert.equal(res.choices[0].message.content, 'Mock reply to: Hello from the SDK');
      assert.equal(res.choices[0].finish_reason, 'stop');
      // Prompt: "Be brief." + "Hello from the SDK" = 6 words; reply: 7 words.
      assert.equal(res.usage.prompt_tokens, 6);
      assert.equal(res.usage.completion_tokens, 7);
      assert.equal(res.usage.total_tokens, 13);
      const call = checkUpstream(model);
      if (model === 'claude-haiku-4-5') {
        assert.equal(call.body.system, 'Be brief.');
        assert.equal(call.body.max_tokens, 50);
      }
    });

    it('streams with the role first and usage when asked', async () => {
      const stream = await openai().chat.completions.create({
        model, messages: [{ role: 'user', content: 'Stream this please' }], stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      assert.equal(chunks[0].choices[0].delta.role, 'assistant');
      const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.equal(text, 'Mock reply to: Stream this please');
      const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
      assert.deepEqual(finish, ['stop']);
      const usage = chunks.at(-1).usage;
      assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [3, 6]);
      assert.equal(chunks.at(-1).choices.length, 0);
      checkUpstream(model);
    });

    it('streams without usage when not asked', async () => {
      const stream = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: 'No usage' }], stream: true });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      assert.ok(chunks.every((c) => c.choices.length === 1), 'no usage-only chunk');
    });

    it('tool call round trip, streamed and parallel', async () => {
      const tools = [{ type: 'function', function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.schema } }];
      const messages = [{ role: 'user', content: 'Weather in Paris and London? [mock:parallel-tools]' }];
      const stream = await openai().chat.completions.create({ model, messages, tools, stream: true });
      const calls = [];
      let finish;
      for await (const c of stream) {
        const choice = c.choices[0];
        if (!choice) continue;
        finish = choice.finish_reason ?? finish;
        for (const d of choice.delta.tool_calls ?? []) {
          calls[d.index] ??= { id: '', name: '', arguments: '' };
          if (d.id) calls[d.index].id = d.id;
          if (d.function?.name) calls[d.index].name = d.function.name;
          calls[d.index].arguments += d.function?.arguments ?? '';
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(calls.length, 2, 'two parallel calls, each with its own index');
      assert.deepEqual(calls.map((c) => JSON.parse(c.arguments)), [{ city: 'Paris' }, { city: 'London' }]);
      assert.ok(calls.every((c) => c.name === 'get_weather' && c.id));
      assert.notEqual(calls[0].id, calls[1].id);
      stack.mock.requests.length = 0;
      const res = await openai().chat.completions.create({
        model, tools,
        messages: [
          ...messages,
          { role: 'assistant', content: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) },
          { role: 'tool', tool_call_id: calls[0].id, content: 'Sunny, 21C' },
          { role: 'tool', tool_call_id: calls[1].id, content: 'Rain, 14C' },
        ],
      });
      assert.equal(res.choices[0].finish_reason, 'stop');
      assert.equal(res.choices[0].message.content, 'Mock reply to tool result: Sunny, 21C | Rain, 14C');
      checkUpstream(model);
    });
  });

  describe(`Anthropic SDK -> ${model}`, hostOptions(), () => {
    it('message with usage', async () => {
      const msg = await anthropic().messages.create({
        model, max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello from the SDK' }],
      });
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.model, model);
      assert.deepEqual(msg.content, [{ type: 'text', text: 'Mock reply to: Hello from the SDK' }]);
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.input_tokens, 6);
      assert.equal(msg.usage.output_tokens, 7);
      const call = checkUpstream(model);
      if (model !== 'claude-haiku-4-5') {
        assert.deepEqual(call.body.messages[0], { role: 'system', content: 'Be brief.' });
      }
    });

    it('streams events the SDK assembles, with usage', async () => {
      const stream = anthropic().messages.stream({
        model, max_tokens: 64, messages: [{ role: 'user', content: 'Stream this please' }],
      });
      const types = [];
      stream.on('streamEvent', (e) => types.push(e.type));
      const msg = await stream.finalMessage();
      assert.equal(types[0], 'message_start');
      assert.equal(types.at(-1), 'message_stop');
      assert.equal(msg.content[0].text, 'Mock reply to: Stream this please');
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, 6);
      assert.equal(msg.usage.input_tokens, 3);
      checkUpstream(model);
    });

    it('tool use round trip, streamed and parallel', async () => {
      const tools = [{ name: WEATHER.name, description: WEATHER.description, input_schema: WEATHER.schema }];
      const messages = [{ role: 'user', content: 'Weather in Paris and London? [mock:parallel-tools]' }];
      const msg = await anthropic().messages.stream({ model, max_tokens: 200, tools, messages }).finalMessage();
      assert.equal(msg.stop_reason, 'tool_use');
      const uses = msg.content.filter((b) => b.type === 'tool_use');
      assert.equal(uses.length, 2);
      assert.deepEqual(uses.map((u) => u.input), [{ city: 'Paris' }, { city: 'London' }]);
      assert.ok(uses.every((u) => u.name === 'get_weather' && u.id));
      stack.mock.requests.length = 0;
      const reply = await anthropic().messages.create({
        model, max_tokens: 200, tools,
        messages: [
          ...messages,
          { role: 'assistant', content: msg.content },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: uses[0].id, content: 'Sunny, 21C' },
              { type: 'tool_result', tool_use_id: uses[1].id, content: 'Rain, 14C' },
            ],
          },
        ],
      });
      assert.equal(reply.stop_reason, 'end_turn');
      assert.equal(reply.content[0].text, 'Mock reply to tool result: Sunny, 21C | Rain, 14C');
      checkUpstream(model);
    });
  });
}

describe('errors and refusals across dialects', hostOptions(), () => {
  it('an upstream error event mid-stream ends the Anthropic SDK stream with an error', async () => {
    const stream = anthropic().messages.stream({
      model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi [mock:error-event]' }],
    });
    await assert.rejects(stream.finalMessage());
  });

  it('a cut stream from Mistral ends the OpenAI SDK stream with an error, never a clean end', async () => {
    const stream = await openai().chat.completions.create({
      model: 'mistral-small-latest', stream: true, messages: [{ role: 'user', content: 'Hi there friend [mock:cut-stream]' }],
    });
    await assert.rejects(async () => { for await (const _ of stream) { /* drain */ } });
  });

  it('a field the provider cannot take is a 400 naming it, and nothing is sent', async () => {
    await assert.rejects(
      openai().chat.completions.create({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'x' }], logprobs: true }),
      (err) => err.status === 400 && err.code === 'unsupported_parameter' && err.param === 'logprobs',
    );
    assert.equal(stack.mock.requests.length, 0);
  });

  it('gateway errors on /v1/messages have Anthropic\'s shape, with the stable code', async () => {
    await assert.rejects(
      anthropic().messages.create({ model: 'gpt-unknown', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
      (err) => err.status === 404 && err.error?.type === 'error' && err.error?.error?.type === 'not_found_error'
        && err.error?.error?.code === 'model_not_found',
    );
  });

  it('an upstream 529 reaches the Anthropic SDK as a retryable server error', async () => {
    await assert.rejects(
      anthropic().messages.create({ model: 'claude-haiku-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'x [mock:529]' }] }),
      (err) => err.status >= 500,
    );
  });

  it('Anthropic cache tokens reach both dialects', async () => {
    const msg = await anthropic().messages.create({
      model: 'claude-haiku-4-5', max_tokens: 20, messages: [{ role: 'user', content: 'Cached prompt [mock:cache]' }],
    });
    assert.equal(msg.usage.cache_read_input_tokens, 1024);
    assert.equal(msg.usage.cache_creation_input_tokens, 256);
    const res = await openai().chat.completions.create({
      model: 'claude-haiku-4-5', messages: [{ role: 'user', content: 'Cached prompt [mock:cache]' }],
    });
    // OpenAI counts cached tokens inside prompt_tokens: 3 words + 1024 read + 256 written.
    assert.equal(res.usage.prompt_tokens, 3 + 1024 + 256);
    assert.equal(res.usage.prompt_tokens_details.cached_tokens, 1024);
  });
});

describe('embeddings', hostOptions(), () => {
  for (const model of ['text-embedding-3-small', 'mistral-embed']) {
    it(`OpenAI SDK embeddings via ${model} (base64 by default, decoded by the SDK)`, async () => {
      const res = await openai().embeddings.create({ model, input: ['first text', 'second one here'] });
      assert.equal(res.object, 'list');
      assert.equal(res.data.length, 2);
      assert.deepEqual(res.data.map((d) => d.index), [0, 1]);
      for (const d of res.data) {
        assert.ok(Array.isArray(d.embedding) && d.embedding.length > 0);
        assert.ok(d.embedding.every(Number.isFinite));
      }
      assert.equal(res.usage.prompt_tokens, 5);
      const floats = await openai().embeddings.create({ model, input: 'first text', encoding_format: 'float' });
      // The same text gives the same vector, whichever encoding carried it.
      assert.deepEqual(floats.data[0].embedding.map((x) => Math.fround(x)), res.data[0].embedding.map((x) => Math.fround(x)));
    });
  }

  it('embeddings on an Anthropic model are refused: Anthropic has no embeddings API', async () => {
    await assert.rejects(
      openai().embeddings.create({ model: 'claude-haiku-4-5', input: 'x' }),
      (err) => err.status === 400 && err.code === 'unsupported_operation',
    );
    assert.equal(stack.mock.requests.length, 0);
  });
});
