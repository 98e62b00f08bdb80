// Mistral API wire format: chat completions (text and tool calls) and embeddings, under /mistral/v1.
// Reference: https://docs.mistral.ai/api/endpoint/chat        (request fields, response, stream)
//            https://docs.mistral.ai/api/endpoint/embeddings  (input, output_dimension, output_dtype, encoding_format)
//            https://docs.mistral.ai/capabilities/function_calling (tool_calls, 9-char ids)
// Error bodies come from real responses quoted in public issue threads (see README.md):
// the API refuses unknown fields with 422 (pydantic `extra_forbidden`) and bad tool-call ids with 400.
import { BEHAVIOR_HEADER, behaviorFor, sleep } from './behaviors.mjs';
import {
  base64Floats, countWords, embeddingFor, limitPieces, mockId, planToolCalls, replyText, textOf, wordPieces,
} from './common.mjs';
import { dataEvent, openSse, sendCutJson, sendJson } from './sse.mjs';

const EMBEDDING_DIMENSIONS = 16;
const TOOL_CALL_ID = /^[a-zA-Z0-9]{9}$/;

// Fields each request object accepts; anything else is `extra_forbidden`.
const CHAT_FIELDS = [
  'model', 'temperature', 'top_p', 'max_tokens', 'stream', 'stop', 'random_seed', 'metadata', 'messages',
  'response_format', 'tools', 'tool_choice', 'presence_penalty', 'frequency_penalty', 'n', 'prediction',
  'parallel_tool_calls', 'prompt_mode', 'safe_prompt',
];
const MESSAGE_FIELDS = {
  system: ['role', 'content'],
  user: ['role', 'content'],
  assistant: ['role', 'content', 'tool_calls', 'prefix'],
  tool: ['role', 'content', 'tool_call_id', 'name'],
};
const TOOL_CALL_FIELDS = ['id', 'type', 'function', 'index'];
const EMBEDDING_FIELDS = ['model', 'input', 'metadata', 'output_dimension', 'output_dtype', 'encoding_format'];

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `{"object":"error","message":...,"type":...,"param":null,"code":...}` */
function sendError(res, status, message, type, code = null, headers = {}) {
  sendJson(res, status, { object: 'error', message, type, param: null, code }, headers);
}

/** 422: pydantic validation errors wrapped the way the API wraps them. */
function sendValidation(res, detail) {
  sendJson(res, 422, { object: 'error', message: { detail }, type: 'invalid_request_error', param: null, code: null });
}

export function notFound(res) {
  sendJson(res, 404, { detail: 'Not Found' });
}

const extra = (loc, input) => ({ type: 'extra_forbidden', loc: ['body', ...loc], msg: 'Extra inputs are not permitted', input });
const missing = (loc, input) => ({ type: 'missing', loc: ['body', ...loc], msg: 'Field required', input });

function extras(obj, allowed, loc) {
  return Object.keys(obj).filter((k) => !allowed.includes(k)).map((k) => extra([...loc, k], obj[k]));
}

/** Every schema problem (422 detail entries) of a chat request. */
export function chatProblems(body) {
  if (!isObject(body)) return [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }];
  const detail = extras(body, CHAT_FIELDS, []);
  if (typeof body.model !== 'string') detail.push(body.model === undefined ? missing(['model'], body) : { type: 'string_type', loc: ['body', 'model'], msg: 'Input should be a valid string', input: body.model });
  if (!Array.isArray(body.messages)) {
    detail.push(body.messages === undefined ? missing(['messages'], body) : { type: 'list_type', loc: ['body', 'messages'], msg: 'Input should be a valid list', input: body.messages });
    return detail;
  }
  for (const [i, m] of body.messages.entries()) {
    const fields = MESSAGE_FIELDS[m?.role];
    if (!fields) {
      detail.push({
        type: 'union_tag_invalid', loc: ['body', 'messages', i], input: m,
        msg: `Input tag '${m?.role}' found using 'role' does not match any of the expected tags: 'system', 'user', 'assistant', 'tool'`,
      });
      continue;
    }
    detail.push(...extras(m, fields, ['messages', i, m.role]));
    for (const [j, call] of (Array.isArray(m.tool_calls) ? m.tool_calls : []).entries()) {
      if (isObject(call)) detail.push(...extras(call, TOOL_CALL_FIELDS, ['messages', i, 'assistant', 'tool_calls', j]));
    }
  }
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    if (typeof t?.function?.name !== 'string') detail.push(missing(['tools', i, 'function', 'name'], t?.function));
  }
  if (body.max_tokens !== undefined && body.max_tokens !== null && !Number.isInteger(body.max_tokens)) {
    detail.push({ type: 'int_type', loc: ['body', 'max_tokens'], msg: 'Input should be a valid integer', input: body.max_tokens });
  }
  return detail;
}

/** The first tool-call id that breaks the 9-character rule, or null. */
function badToolCallId(messages) {
  for (const m of messages) {
    const ids = m.role === 'assistant' && Array.isArray(m.tool_calls) ? m.tool_calls.map((c) => c?.id)
      : m.role === 'tool' ? [m.tool_call_id] : [];
    for (const id of ids) if (id !== undefined && id !== null && !TOOL_CALL_ID.test(String(id))) return String(id);
  }
  return null;
}

const STATUS_ERRORS = {
  401: [401, null, { detail: 'Unauthorized' }],
  429: [429, { message: 'Rate limit exceeded', type: 'rate_limited', code: '1300' }],
  500: [500, { message: 'Internal server error', type: 'internal_server_error', code: '1000' }],
  503: [503, { message: 'Service unavailable', type: 'service_unavailable', code: '1000' }],
};

function sendStatus(res, status) {
  const [code, err, raw] = STATUS_ERRORS[status] ?? [status, { message: `Mock upstream status ${status}`, type: 'api_error', code: null }];
  if (raw) return sendJson(res, code, raw);
  sendError(res, code, err.message, err.type, err.code);
}

/** Auth and JSON parsing shared by both endpoints; returns the body or undefined once answered. */
function authAndParse(req, res, raw) {
  if (!/^Bearer\s+\S/i.test(req.headers.authorization ?? '')) {
    sendJson(res, 401, { detail: 'Unauthorized' });
    return undefined;
  }
  try {
    return JSON.parse(raw);
  } catch {
    sendValidation(res, [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }]);
    return undefined;
  }
}

function trailingToolResults(messages) {
  const out = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]?.role === 'tool'; i--) out.unshift(textOf(messages[i].content));
  return out.length ? out : null;
}

export function buildReply(body, behavior, n) {
  const promptTokens = Math.max(1, body.messages.reduce((k, m) => k + countWords(textOf(m?.content)), 0));
  const usage = (completion) => ({ prompt_tokens: promptTokens, total_tokens: promptTokens + completion, completion_tokens: completion });
  const results = trailingToolResults(body.messages);
  const tools = (body.tools ?? []).map((t) => ({ name: t.function.name, schema: t.function.parameters }));
  if (tools.length && body.tool_choice !== 'none' && !results) {
    const forced = body.tool_choice?.function?.name ?? null;
    const toolCalls = planToolCalls(tools, { forced, parallel: behavior.parallelTools }).map((c, index) => ({
      id: mockId(`mistral/${n}/${index}`, 9),
      function: { name: c.name, arguments: JSON.stringify(c.args) },
      index,
    }));
    return { content: '', pieces: [], toolCalls, finishReason: 'tool_calls', usage: usage(toolCalls.length) };
  }
  const lastUser = body.messages.findLast((m) => m?.role === 'user');
  const text = replyText({ lastUserText: textOf(lastUser?.content), toolResults: results, behavior });
  const { pieces, truncated } = limitPieces(wordPieces(text), body.max_tokens);
  return { content: pieces.join(''), pieces, toolCalls: null, finishReason: truncated ? 'length' : 'stop', usage: usage(pieces.length) };
}

async function chatCompletions({ req, res, raw, state, signal }) {
  const body = authAndParse(req, res, raw);
  if (body === undefined) return;
  const detail = chatProblems(body);
  if (detail.length) return sendValidation(res, detail);
  const badId = badToolCallId(body.messages);
  if (badId !== null) {
    return sendError(res, 400, `Tool call id was ${badId} but must be a-z, A-Z, 0-9, with a length of 9.`, 'invalid_function_call', '3280');
  }
  const lastUser = body.messages.findLast((m) => m?.role === 'user');
  const behavior = behaviorFor({ model: body.model, header: req.headers[BEHAVIOR_HEADER], lastUserText: textOf(lastUser?.content) });
  await sleep(behavior.slowFirstByteMs, signal);
  if (behavior.status) return sendStatus(res, behavior.status);

  const n = ++state.counter;
  const reply = buildReply(body, behavior, n);
  const base = { id: mockId(`mistral-cmpl/${n}`, 32).toLowerCase(), created: Math.floor(Date.now() / 1000), model: body.model };
  if (body.stream === true) return stream({ res, behavior, reply, base, signal });
  const completion = {
    id: base.id,
    object: 'chat.completion',
    created: base.created,
    model: base.model,
    usage: reply.usage,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: reply.content, tool_calls: reply.toolCalls, prefix: false },
      finish_reason: reply.finishReason,
    }],
  };
  if (behavior.cutStream) return sendCutJson(res, 200, completion);
  sendJson(res, 200, completion);
}

async function stream({ res, behavior, reply, base, signal }) {
  const chunk = (delta, finishReason = null, usage) => ({
    id: base.id,
    object: 'chat.completion.chunk',
    created: base.created,
    model: base.model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...(usage ? { usage } : {}),
  });
  const sse = openSse(res, { behavior, signal });
  await sse.emit(dataEvent(chunk({ role: 'assistant', content: '' })));
  for (const [i, piece] of reply.pieces.entries()) {
    await sse.emit(dataEvent(chunk({ content: piece })));
    if (behavior.cutStream && i === 1) return sse.cut();
    if (i === 0 && behavior.malformedChunk) await sse.emit('data: {"id": "broken\n\n');
    if (i === 0 && behavior.errorEvent) {
      await sse.emit(dataEvent({ object: 'error', message: 'mock upstream error mid-stream', type: 'internal_server_error', param: null, code: '1000' }));
      return sse.end();
    }
  }
  if (behavior.cutStream) return sse.cut();
  // The last chunk carries finish_reason and usage; tool calls arrive whole, in that chunk.
  const last = reply.toolCalls ? { tool_calls: reply.toolCalls } : { content: '' };
  await sse.emit(dataEvent(chunk(last, reply.finishReason, reply.usage)));
  await sse.emit('data: [DONE]\n\n');
  sse.end();
}

function embeddingProblems(body) {
  if (!isObject(body)) return [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }];
  const detail = extras(body, EMBEDDING_FIELDS, []);
  if (typeof body.model !== 'string') detail.push(missing(['model'], body));
  const input = body.input;
  if (!(typeof input === 'string' || (Array.isArray(input) && input.length && input.every((x) => typeof x === 'string')))) {
    detail.push(input === undefined ? missing(['input'], body) : { type: 'string_type', loc: ['body', 'input'], msg: 'Input should be a valid string', input });
  }
  const enumError = (field, allowed) => ({
    type: 'enum', loc: ['body', field], input: body[field], ctx: { expected: allowed.map((a) => `'${a}'`).join(' or ') },
    msg: `Input should be ${allowed.map((a) => `'${a}'`).join(' or ')}`,
  });
  if (body.encoding_format != null && !['float', 'base64'].includes(body.encoding_format)) detail.push(enumError('encoding_format', ['float', 'base64']));
  // The mock only produces float vectors; the API's int8/uint8/binary/ubinary are refused here.
  if (body.output_dtype != null && body.output_dtype !== 'float') detail.push(enumError('output_dtype', ['float']));
  if (body.output_dimension != null && !(Number.isInteger(body.output_dimension) && body.output_dimension > 0)) {
    detail.push({ type: 'greater_than', loc: ['body', 'output_dimension'], msg: 'Input should be greater than 0', input: body.output_dimension, ctx: { gt: 0 } });
  }
  return detail;
}

async function embeddings({ req, res, raw, state, signal }) {
  const body = authAndParse(req, res, raw);
  if (body === undefined) return;
  const detail = embeddingProblems(body);
  if (detail.length) return sendValidation(res, detail);
  const behavior = behaviorFor({ model: body.model, header: req.headers[BEHAVIOR_HEADER] });
  await sleep(behavior.slowFirstByteMs, signal);
  if (behavior.status) return sendStatus(res, behavior.status);
  const n = ++state.counter;
  const inputs = typeof body.input === 'string' ? [body.input] : body.input;
  const dims = body.output_dimension ?? EMBEDDING_DIMENSIONS;
  const tokens = inputs.reduce((k, x) => k + countWords(x), 0);
  sendJson(res, 200, {
    id: mockId(`mistral-embd/${n}`, 32).toLowerCase(),
    object: 'list',
    data: inputs.map((x, index) => {
      const vector = embeddingFor(x, dims);
      return { object: 'embedding', embedding: body.encoding_format === 'base64' ? base64Floats(vector) : vector, index };
    }),
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 },
  });
}

export const routes = {
  'POST /mistral/v1/chat/completions': chatCompletions,
  'POST /mistral/v1/embeddings': embeddings,
};
