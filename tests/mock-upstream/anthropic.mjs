// Anthropic Messages API wire format.
// Reference: https://docs.claude.com/en/api/messages            (request, Message object)
//            https://docs.claude.com/en/docs/build-with-claude/streaming   (event sequence, input_json_delta)
//            https://docs.claude.com/en/api/errors              (error shape, statuses, request_id)
//            https://docs.claude.com/en/api/versioning          (anthropic-version header)
//            https://docs.claude.com/en/docs/agents-and-tools/tool-use/implement-tool-use (tool_use / tool_result)
import { BEHAVIOR_HEADER, behaviorFor, sleep } from './behaviors.mjs';
import { countWords, limitPieces, mockId, planToolCalls, replyText, splitText, textOf, wordPieces } from './common.mjs';
import { namedEvent, openSse, sendCutJson, sendJson } from './sse.mjs';

const MAX_BODY_BYTES = 32 * 1024 * 1024; // the Messages API's request size limit
const CACHE_READ_TOKENS = 1024; // usage reported with the `cache` token
const CACHE_CREATION_TOKENS = 256;
const TOP_LEVEL = new Set([
  'model', 'messages', 'max_tokens', 'system', 'metadata', 'stop_sequences', 'stream', 'temperature',
  'top_p', 'top_k', 'tools', 'tool_choice', 'thinking', 'service_tier',
]);
const BLOCK_TYPES = ['text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'];

const ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};
const STATUS_MESSAGES = {
  401: 'invalid x-api-key',
  403: 'Your API key does not have permission to use the specified resource.',
  404: (model) => `model: ${model}`,
  413: 'Request exceeds the maximum allowed number of bytes.',
  429: 'This request would exceed the rate limit for your organization (org-mock) of 50 requests per minute. ' +
    'For details, refer to: https://docs.claude.com/en/api/rate-limits.',
  500: 'Internal server error',
  529: 'Overloaded',
};
const RATE_LIMIT_HEADERS = {
  'retry-after': '2',
  'anthropic-ratelimit-requests-limit': '50',
  'anthropic-ratelimit-requests-remaining': '0',
  'anthropic-ratelimit-requests-reset': '2030-01-01T00:00:02Z',
};

function sendError(res, status, message, { type = ERROR_TYPES[status] ?? 'api_error', requestId = 'req_011Mock', headers = {} } = {}) {
  sendJson(res, status, { type: 'error', error: { type, message }, request_id: requestId }, { 'request-id': requestId, ...headers });
}

export function notFound(res) {
  sendError(res, 404, 'Not Found');
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The first problem with a request body as the API words it ("<path>: <what>"), or null. */
export function validate(body) {
  if (!isObject(body)) return 'Input should be a valid dictionary or object to extract fields from';
  for (const key of Object.keys(body)) if (!TOP_LEVEL.has(key)) return `${key}: Extra inputs are not permitted`;
  if (body.model === undefined) return 'model: Field required';
  if (typeof body.model !== 'string') return 'model: Input should be a valid string';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (!Number.isInteger(body.max_tokens)) return 'max_tokens: Input should be a valid integer';
  if (body.max_tokens < 1) return 'max_tokens: Input should be greater than or equal to 1';
  if (body.messages === undefined) return 'messages: Field required';
  if (!Array.isArray(body.messages)) return 'messages: Input should be a valid list';
  if (body.messages.length === 0) return 'messages: at least one message is required';
  for (const [i, m] of body.messages.entries()) {
    const problem = validateMessage(m, i, body.messages[i - 1]);
    if (problem) return problem;
  }
  if (body.messages[0].role !== 'user') return 'messages: first message must use the "user" role';
  if (body.system !== undefined && typeof body.system !== 'string') {
    if (!Array.isArray(body.system)) return 'system: Input should be a valid string or a valid list';
    const bad = body.system.findIndex((b) => b?.type !== 'text' || typeof b.text !== 'string');
    if (bad !== -1) return `system.${bad}: Input should be a text block`;
  }
  for (const [name, lo, hi] of [['temperature', 0, 1], ['top_p', 0, 1]]) {
    const v = body[name];
    if (v === undefined) continue;
    if (typeof v !== 'number') return `${name}: Input should be a valid number`;
    if (v < lo) return `${name}: Input should be greater than or equal to ${lo}`;
    if (v > hi) return `${name}: Input should be less than or equal to ${hi}`;
  }
  if (body.top_k !== undefined && !(Number.isInteger(body.top_k) && body.top_k >= 0)) return 'top_k: Input should be a valid integer';
  if (body.stream !== undefined && typeof body.stream !== 'boolean') return 'stream: Input should be a valid boolean';
  if (body.stop_sequences !== undefined &&
    !(Array.isArray(body.stop_sequences) && body.stop_sequences.every((s) => typeof s === 'string'))) {
    return 'stop_sequences: Input should be a valid list of strings';
  }
  if (body.metadata !== undefined) {
    if (!isObject(body.metadata)) return 'metadata: Input should be a valid dictionary';
    for (const key of Object.keys(body.metadata)) if (key !== 'user_id') return `metadata.${key}: Extra inputs are not permitted`;
  }
  return validateTools(body);
}

function validateMessage(m, i, prev) {
  if (!isObject(m)) return `messages.${i}: Input should be a valid dictionary`;
  for (const key of Object.keys(m)) if (key !== 'role' && key !== 'content') return `messages.${i}.${key}: Extra inputs are not permitted`;
  if (m.role !== 'user' && m.role !== 'assistant') {
    return `messages.${i}.role: Input should be 'user' or 'assistant'`;
  }
  if (typeof m.content === 'string') return null;
  if (!Array.isArray(m.content)) return `messages.${i}.content: Field required`;
  for (const [j, block] of m.content.entries()) {
    const where = `messages.${i}.content.${j}`;
    if (!BLOCK_TYPES.includes(block?.type)) {
      return `${where}: Input tag '${block?.type}' found using 'type' does not match any of the expected tags: ` +
        BLOCK_TYPES.map((t) => `'${t}'`).join(', ');
    }
    if (block.type === 'text' && typeof block.text !== 'string') return `${where}.text: Field required`;
    if (block.type === 'tool_use') {
      if (m.role !== 'assistant') return `${where}: tool_use blocks can only be in assistant messages`;
      if (typeof block.id !== 'string' || typeof block.name !== 'string' || !isObject(block.input)) {
        return `${where}.tool_use: id, name and input are required`;
      }
    }
    if (block.type === 'tool_result') {
      if (m.role !== 'user') return `${where}: tool_result blocks can only be in user messages`;
      const used = (Array.isArray(prev?.content) ? prev.content : []).filter((b) => b?.type === 'tool_use').map((b) => b.id);
      if (!used.includes(block.tool_use_id)) {
        return `${where}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${block.tool_use_id}. ` +
          'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.';
      }
    }
  }
  return null;
}

function validateTools(body) {
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) return 'tools: Input should be a valid list';
    for (const [i, t] of body.tools.entries()) {
      // Server tools (web_search_..., bash_..., ...) have a versioned type and no input_schema.
      if (t?.type !== undefined && t.type !== 'custom') continue;
      if (typeof t?.name !== 'string') return `tools.${i}.custom.name: Field required`;
      if (!isObject(t.input_schema)) return `tools.${i}.custom.input_schema: Field required`;
    }
  }
  const choice = body.tool_choice;
  if (choice !== undefined) {
    if (!isObject(choice) || !['auto', 'any', 'tool', 'none'].includes(choice.type)) {
      return "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'";
    }
    if (choice.type === 'tool' && typeof choice.name !== 'string') return 'tool_choice.tool.name: Field required';
    if (choice.type !== 'none' && !body.tools?.length) return 'tool_choice may only be specified while providing tools.';
  }
  return null;
}

/** Text of a content string or blocks, tool results included (for token counts and quoting). */
function contentText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((b) => (b?.type === 'tool_result' ? textOf(b.content) : b?.type === 'text' ? b.text : '')).join('\n');
}

/** The assistant's content blocks and the token pieces to stream for them. */
export function buildReply(body, behavior, n) {
  const last = body.messages.at(-1);
  const results = last.role === 'user' && Array.isArray(last.content)
    ? last.content.filter((b) => b?.type === 'tool_result').map((b) => textOf(b.content))
    : [];
  const tools = (body.tools ?? []).filter((t) => t.input_schema).map((t) => ({ name: t.name, schema: t.input_schema }));
  const inputTokens = Math.max(1, countWords(contentText(body.system)) +
    body.messages.reduce((k, m) => k + countWords(contentText(m.content)), 0));
  const usage = {
    input_tokens: inputTokens,
    cache_creation_input_tokens: behavior.cache ? CACHE_CREATION_TOKENS : 0,
    cache_read_input_tokens: behavior.cache ? CACHE_READ_TOKENS : 0,
  };

  if (tools.length && body.tool_choice?.type !== 'none' && results.length === 0) {
    const forced = body.tool_choice?.type === 'tool' ? body.tool_choice.name : null;
    const calls = planToolCalls(tools, { forced, parallel: behavior.parallelTools });
    const intro = `I'll call ${calls[0].name}.`;
    const blocks = [
      { type: 'text', text: intro, pieces: wordPieces(intro) },
      ...calls.map((c, i) => {
        const json = JSON.stringify(c.args);
        return { type: 'tool_use', id: `toolu_01${mockId(`anthropic/${n}/${i}`, 22)}`, name: c.name, input: c.args, pieces: ['', ...splitText(json)] };
      }),
    ];
    const output = blocks.reduce((k, b) => k + b.pieces.length, 0);
    return { blocks, stopReason: 'tool_use', stopSequence: null, usage: { ...usage, output_tokens: output } };
  }

  const text = replyText({ lastUserText: contentText(last.content), toolResults: results.length ? results : null, behavior });
  let pieces = wordPieces(text);
  let stopReason = 'end_turn';
  let stopSequence = null;
  // A stop sequence ends the reply just before it.
  for (const seq of body.stop_sequences ?? []) {
    const at = seq ? text.indexOf(seq) : -1;
    if (at === -1) continue;
    pieces = wordPieces(text.slice(0, at));
    stopReason = 'stop_sequence';
    stopSequence = seq;
    break;
  }
  const limited = limitPieces(pieces, body.max_tokens);
  if (limited.truncated) {
    pieces = limited.pieces;
    stopReason = 'max_tokens';
    stopSequence = null;
  }
  return {
    blocks: [{ type: 'text', text: pieces.join(''), pieces }],
    stopReason,
    stopSequence,
    usage: { ...usage, output_tokens: pieces.length },
  };
}

const publicBlock = ({ pieces, ...block }) => block;

async function messages({ req, res, raw, state, signal }) {
  const n = ++state.counter;
  const requestId = `req_011Mock${mockId(`anthropic-req/${n}`, 16)}`;
  const fail = (status, message, extra = {}) => sendError(res, status, message, { requestId, ...extra });
  const key = req.headers['x-api-key'] ?? (/^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1]);
  if (!key) return fail(401, 'x-api-key header is required');
  if (!req.headers['anthropic-version']) return fail(400, 'anthropic-version: header is required');
  if (Buffer.byteLength(raw) > MAX_BODY_BYTES) return fail(413, STATUS_MESSAGES[413]);
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return fail(400, 'There was an issue with your request body: invalid JSON');
  }
  const problem = validate(body);
  if (problem) return fail(400, problem);

  const lastUser = body.messages.findLast((m) => m.role === 'user');
  const behavior = behaviorFor({ model: body.model, header: req.headers[BEHAVIOR_HEADER], lastUserText: contentText(lastUser?.content) });
  await sleep(behavior.slowFirstByteMs, signal);
  if (behavior.status) {
    const message = STATUS_MESSAGES[behavior.status] ?? `Mock upstream status ${behavior.status}`;
    return fail(behavior.status, typeof message === 'function' ? message(body.model) : message,
      behavior.status === 429 ? { headers: RATE_LIMIT_HEADERS } : {});
  }

  const reply = buildReply(body, behavior, n);
  const message = {
    id: `msg_01${mockId(`anthropic/${n}`, 22)}`,
    type: 'message',
    role: 'assistant',
    model: body.model,
    content: reply.blocks.map(publicBlock),
    stop_reason: reply.stopReason,
    stop_sequence: reply.stopSequence,
    usage: reply.usage,
  };
  const headers = { 'request-id': requestId };
  if (body.stream === true) return stream({ res, behavior, reply, message, headers, signal });
  if (behavior.cutStream) return sendCutJson(res, 200, message, headers);
  sendJson(res, 200, message, headers);
}

async function stream({ res, behavior, reply, message, headers, signal }) {
  const sse = openSse(res, { headers, behavior, signal });
  const send = (obj) => sse.emit(namedEvent(obj.type, obj));
  await send({
    type: 'message_start',
    message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...message.usage, output_tokens: 1 } },
  });
  let deltas = 0;
  for (const [index, block] of reply.blocks.entries()) {
    const start = block.type === 'text' ? { type: 'text', text: '' } : { type: 'tool_use', id: block.id, name: block.name, input: {} };
    await send({ type: 'content_block_start', index, content_block: start });
    if (index === 0) await send({ type: 'ping' });
    for (const piece of block.pieces) {
      const delta = block.type === 'text' ? { type: 'text_delta', text: piece } : { type: 'input_json_delta', partial_json: piece };
      await send({ type: 'content_block_delta', index, delta });
      deltas++;
      if (behavior.cutStream && deltas === 2) return sse.cut();
      if (deltas === 1 && behavior.malformedChunk) {
        await sse.emit('event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"ty\n\n');
      }
      if (deltas === 1 && behavior.errorEvent) {
        await send({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
        return sse.end();
      }
    }
    await send({ type: 'content_block_stop', index });
  }
  if (behavior.cutStream) return sse.cut();
  await send({
    type: 'message_delta',
    delta: { stop_reason: reply.stopReason, stop_sequence: reply.stopSequence },
    usage: { output_tokens: reply.usage.output_tokens },
  });
  await send({ type: 'message_stop' });
  sse.end();
}

/** "METHOD /path" -> handler. Also served under /anthropic so a tenant can point at .../anthropic/v1. */
export const routes = {
  'POST /v1/messages': messages,
  'POST /anthropic/v1/messages': messages,
};
