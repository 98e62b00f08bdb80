// What both of ASC's Workers do first: instantiate their wasm once per isolate, and serve each
// request through its `handle`. The request plane's entry is entry.mjs, the control plane's
// (the Durable Objects, the admin plane) control.mjs; each is bundled with its own build.
import { requestHead, fullResponse } from './host.js';

// wasm-bindgen's executor schedules every wakeup of a Rust future (each settled platform promise)
// with `queueMicrotask`, several times a request. On workerd that call costs ~3 us, a resolved
// promise's `then` ~0.1 us (200k calls of each in one Worker, on the workerd the tests use). A
// callback that throws (a wasm trap inside the executor) then surfaces as an unhandled
// rejection instead of an uncaught error: logged either way, as before not seen by `guard`.
const resolved = Promise.resolve();
globalThis.queueMicrotask = (task) => { resolved.then(task); };

/**
 * Starts `asc` (a wasm-bindgen module) on `wasmModule` and returns the Worker's default export
 * and `guard`, which restarts the instance after a trap (a Rust panic leaves it unusable) and
 * counts restarts in `generation()`, so objects can rebuild their Rust halves.
 */
export function start(asc, wasmModule) {
  asc.initSync({ module: wasmModule });
  // Rust futures waiting on promises are woken through this (src/wait.rs; host.js's
  // `awaitInto`). One function per instance: a promise the instance before a restart awaited
  // still settles later, and must not reach the new instance's slots, which reuse its ids.
  const installSettled = () => {
    globalThis.__ascSettled = (id, value, ok) => asc.asc_settled(id, value, ok);
  };
  installSettled();
  let generation = 0;
  function guard(e) {
    if (e instanceof WebAssembly.RuntimeError) {
      console.error('asc: wasm trapped; reinitialising', e);
      asc.__wbg_reset_state();
      installSettled();
      generation += 1;
    }
    throw e;
  }
  const worker = {
    async fetch(request, env, ctx) {
      try {
        return await asc.handle(requestHead(request), request, env, ctx);
      } catch (e) {
        try { guard(e); } catch { /* logged */ }
        const body = JSON.stringify({ error: { message: 'The gateway failed on this request.', type: 'api_error', param: null, code: 'internal_error' } });
        return fullResponse(500, 'content-type\u0000application/json\u0000x-asc-error-code\u0000internal_error', new TextEncoder().encode(body));
      }
    },
  };
  if (asc.sweep_alerts) {
    // The request plane's cron (wrangler.toml `[triggers]`): alerts no request carried.
    worker.scheduled = (controller, env, ctx) => {
      ctx.waitUntil(asc.sweep_alerts(env, ctx).catch((e) => {
        try { guard(e); } catch { console.error('asc: the alert sweep failed', e); }
      }));
    };
  }
  return { worker, guard, generation: () => generation };
}
