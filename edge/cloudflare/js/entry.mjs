// The Worker's entry: instantiates ASC's wasm once per isolate and hands it each request, and
// declares the Durable Object classes (RPC-callable, as they extend DurableObject) around their
// Rust halves. Everything else is in Rust (src/) and the platform calls in host.js.
import { DurableObject } from 'cloudflare:workers';
import * as asc from './pkg/asc.js';
import wasmModule from './index_bg.wasm';
import { requestHead, fullResponse } from './host.js';

// wasm-bindgen's executor schedules every wakeup of a Rust future (each settled platform promise)
// with `queueMicrotask`, several times a request. On workerd that call costs ~3 us, a resolved
// promise's `then` ~0.1 us (200k calls of each in one Worker, on the workerd the tests use). A
// callback that throws (a wasm trap inside the executor) then surfaces as an unhandled
// rejection instead of an uncaught error: logged either way, as before not seen by `guard`.
const resolved = Promise.resolve();
globalThis.queueMicrotask = (task) => { resolved.then(task); };

asc.initSync({ module: wasmModule });

// A trap (a Rust panic) leaves the instance unusable: start a fresh one for the next call. The
// objects below rebuild their Rust halves (from storage) when the generation changes.
let generation = 0;
function guard(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    console.error('asc: wasm trapped; reinitialising', e);
    asc.__wbg_reset_state();
    generation += 1;
  }
  throw e;
}

export default {
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

class RustObject extends DurableObject {
  rust() {
    if (this.core === undefined || this.coreGeneration !== generation) {
      this.core = this.create();
      this.coreGeneration = generation;
    }
    return this.core;
  }

  async call(method, ...args) {
    try {
      return await this.rust()[method](...args);
    } catch (e) {
      guard(e);
    }
  }
}

/** A tenant ledger: budgets, write-ahead records of requests in flight, the audit outbox. */
export class TenantLedger extends RustObject {
  create() { return new asc.LedgerObject(this.ctx.storage, this.env); }
  apply(name, op) { return this.call('apply', name, op); }
  alarm() { return this.call('alarm'); }
}

/** One audit stream's sequencer. */
export class AuditSequencer extends RustObject {
  create() { return new asc.SequencerObject(this.ctx.storage, this.env); }
  append(batch) { return this.call('append', batch); }
  ensure(stream) { return this.call('ensure', stream); }
  alarm() { return this.call('alarm'); }
}

/** A tenant's circuit breakers and retry budget. */
export class CircuitBoardObject extends RustObject {
  create() { return new asc.BoardObject(this.ctx.storage); }
  apply(op) { return this.call('apply', op); }
}

/** A tenant's admin store: config versions (If-Match, history, rollback) and key records. */
export class TenantAdmin extends RustObject {
  create() { return new asc.AdminObject(this.ctx.storage, this.env); }
  apply(tenant, op) { return this.call('apply', tenant, op); }
}
