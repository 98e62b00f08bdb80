// What both of ASC's Workers do first: instantiate their wasm once per isolate, and serve each
// request through its `handle`. The request plane's entry is entry.mjs, the control plane's
// (the Durable Objects, the admin plane) control.mjs; each is bundled with its own build.
// Nothing here is imported from host.js: wasm-bindgen bundles its own copy of that file, so an
// import here would put a second copy of what it uses in the bundle.
const NUL = '\u0000';

/** `method NUL path NUL name NUL value ...` for the core's `Inbound` (`handle`'s `head`). */
export function requestHead(request) {
  const url = new URL(request.url);
  // The admin plane reads query strings (analytics, alerts, audit, keys); the gateway's paths never do.
  const path = url.pathname.startsWith('/admin/') ? url.pathname + url.search : url.pathname;
  let head = request.method + NUL + path;
  let host = false;
  for (const [name, value] of request.headers) {
    if (name === 'host') host = true;
    head += NUL + name + NUL + value;
  }
  // Workers expose the Host only through the URL on some paths; the core must see it.
  if (!host) head += NUL + 'host' + NUL + url.host;
  return head;
}

// wasm-bindgen's executor polls every Rust future (each request's, each object's call) from a
// microtask it schedules with `queueMicrotask`, several times a request. `start` replaces that
// function: on workerd the call costs ~3 us, a resolved promise's `then` ~0.1 us (200k calls of
// each in one Worker, on the workerd the tests use), and a trap inside a future would otherwise
// surface only as an unhandled rejection (see `start`).
const resolved = Promise.resolve();

/** A wasm trap: a Rust panic (`panic = "abort"`) or a wasm fault. The instance is unusable. */
const isTrap = (e) => e instanceof WebAssembly.RuntimeError;

/**
 * Starts `asc` (a wasm-bindgen module) on `wasmModule` and returns the Worker's default export,
 * `guard`, which restarts the instance after a trap caught by a caller, `watched`, which makes a
 * call into the instance fail when the instance restarts before it settles, and `generation()`,
 * the number of restarts, so objects can rebuild their Rust halves.
 *
 * After a trap the instance's memory may hold borrows and half-made changes that every later
 * call would trip over, so it is replaced (`__wbg_reset_state`), whoever catches the trap: a
 * caller (`guard`) or the microtask that polled the trapping future. The futures in flight die
 * with the old instance, so the calls waiting for them (requests, object calls) fail at once
 * (the request's gateway 500 and its ledger's safety nets, as for a killed isolate) instead of
 * hanging until the runtime cancels them; microtasks and promise outcomes meant for the old
 * instance are dropped: their pointers and slot ids would mean other things in the new one.
 */
export function start(asc, wasmModule) {
  asc.initSync({ module: wasmModule });
  let generation = 0;
  const inFlight = new Set(); // the reject functions of calls waiting on this instance
  // Rust futures waiting on promises are woken through this (src/wait.rs; host.js's
  // `awaitInto`). One function per instance: a promise the instance before a restart awaited
  // still settles later, and must not reach the new instance's slots, which reuse its ids.
  const installSettled = () => {
    globalThis.__ascSettled = (id, value, ok) => {
      try {
        asc.asc_settled(id, value, ok);
      } catch (e) {
        if (!isTrap(e)) throw e;
        restart(e);
      }
    };
  };
  function restart(e) {
    console.error('asc: wasm trapped; reinitialising', e);
    asc.__wbg_reset_state();
    installSettled();
    generation += 1;
    const lost = new Error('asc: the wasm instance trapped while this call was in flight', { cause: e });
    const failing = [...inFlight];
    inFlight.clear();
    for (const fail of failing) fail(lost);
  }
  installSettled();
  globalThis.queueMicrotask = (task) => {
    const queuedIn = generation;
    resolved.then(() => {
      if (queuedIn !== generation) return;
      try {
        task();
      } catch (e) {
        if (!isTrap(e)) throw e;
        restart(e);
      }
    });
  };
  function guard(e) {
    if (isTrap(e)) restart(e);
    throw e;
  }
  /** `promise` (a call into the instance), failed if the instance restarts before it settles. */
  function watched(promise) {
    return new Promise((resolve, reject) => {
      inFlight.add(reject);
      promise.then(
        (value) => { inFlight.delete(reject); resolve(value); },
        (error) => { inFlight.delete(reject); reject(error); },
      );
    });
  }
  const worker = {
    async fetch(request, env, ctx) {
      try {
        return await watched(asc.handle(requestHead(request), request, env, ctx));
      } catch (e) {
        try { guard(e); } catch { /* logged */ }
        const body = JSON.stringify({ error: { message: 'The gateway failed on this request.', type: 'api_error', param: null, code: 'internal_error' } });
        return new Response(body, { status: 500, headers: { 'content-type': 'application/json', 'x-asc-error-code': 'internal_error' } });
      }
    },
  };
  if (asc.sweep_alerts) {
    // The request plane's cron (wrangler.toml `[triggers]`): alerts no request carried.
    worker.scheduled = (controller, env, ctx) => {
      ctx.waitUntil(watched(asc.sweep_alerts(env, ctx)).catch((e) => {
        try { guard(e); } catch { console.error('asc: the alert sweep failed', e); }
      }));
    };
  }
  return { worker, guard, watched, generation: () => generation };
}
