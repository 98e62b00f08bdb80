// The control plane's Worker: the Durable Object classes (RPC-callable, as they extend
// DurableObject) around their Rust halves (src/objects/), and the admin plane and dashboard
// (src/control.rs), reached only through the request plane's CONTROL service binding.
import { DurableObject } from 'cloudflare:workers';
import * as asc from './pkg/asc.js';
import wasmModule from './index_bg.wasm';
import { start } from './boot.js';

const { worker, guard, watched, generation } = start(asc, wasmModule);
export default worker;

// The two large inputs (a ledger's group of operations, a sequencer's batch of records: tens to
// hundreds of KB) cross into wasm as UTF-8 encoded natively. Passed as strings, wasm-bindgen copies
// their ASCII one character at a time in JS: ~7% of this isolate's samples under leased load.
const utf8 = new TextEncoder();

class RustObject extends DurableObject {
  rust() {
    if (this.core === undefined || this.coreGeneration !== generation()) {
      this.core = this.create();
      this.coreGeneration = generation();
    }
    return this.core;
  }

  async call(method, ...args) {
    try {
      return await watched(this.rust()[method](...args));
    } catch (e) {
      guard(e);
    }
  }
}

/** A tenant ledger: budgets, write-ahead records of requests in flight, the audit outbox. */
export class TenantLedger extends RustObject {
  create() { return new asc.LedgerObject(this.ctx.storage, this.env); }
  apply(name, op) { return this.call('apply', name, utf8.encode(op)); }
  alarm() { return this.call('alarm'); }
}

/** One audit stream's sequencer. */
export class AuditSequencer extends RustObject {
  create() { return new asc.SequencerObject(this.ctx.storage, this.env); }
  append(batch) { return this.call('append', utf8.encode(batch)); }
  ensure(stream) { return this.call('ensure', stream); }
  alarm() { return this.call('alarm'); }
}

/** A tenant's circuit breakers and retry budget. */
export class CircuitBoardObject extends RustObject {
  create() { return new asc.BoardObject(this.ctx.storage); }
  apply(op) { return this.call('apply', op); }
}

/**
 * A tenant's admin store: config versions (If-Match, history, rollback) and key records. Calls
 * and alarms run one at a time, KV writes included, so a value never overtakes a newer one.
 */
export class TenantAdmin extends RustObject {
  create() { return new asc.AdminObject(this.ctx.storage, this.env); }
  apply(tenant, op) { return this.oneAtATime('apply', tenant, op); }
  alarm() { return this.oneAtATime('alarm'); }

  // A callback that throws would reset the object (and fail the calls waiting behind it): the
  // error is carried out and thrown after, to this call only (an alarm's is retried).
  async oneAtATime(method, ...args) {
    let failure;
    const result = await this.ctx.blockConcurrencyWhile(async () => {
      try {
        return await this.call(method, ...args);
      } catch (e) {
        failure = e;
        return undefined;
      }
    });
    if (failure !== undefined) throw failure;
    return result;
  }
}
