// host.js's ledger calls against a fake Durable Object namespace: while one call to a ledger is in
// flight, the operations of other requests wait and go together in the next call, each with its
// own reply; commits queued for the ledger ride along; a failed call fails exactly the
// operations it carried; the carrying call is handed to the request's waitUntil; a carrier lets
// go after a second, and a stalled one is taken over.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ledgerCall, ledgerCommit } from '../../edge/cloudflare/js/host.js';

const NUL = '\u0000';

/** A namespace whose objects answer `apply(name, ops)` with `reply:<op>` per op, after `gate`. */
function fakeLedgers() {
  const calls = [];
  let gate = Promise.resolve();
  let failNext = false;
  const ns = {
    idFromName: (name) => name,
    get: () => ({
      async apply(name, joined) {
        const ops = joined.split(NUL);
        calls.push({ name, ops });
        await gate;
        if (failNext) {
          failNext = false;
          throw new Error('ledger object reset');
        }
        return ops.map((op) => `reply:${op}`).join(NUL);
      },
    }),
  };
  return {
    env: { TENANT_LEDGERS: ns },
    calls,
    hold() {
      let open;
      gate = new Promise((resolve) => { open = resolve; });
      return () => { gate = Promise.resolve(); open(); };
    },
    failNextCall() { failNext = true; },
    /** Later calls go through; a call already held stays held. */
    passLater() { gate = Promise.resolve(); },
  };
}

function fakeCtx() {
  const kept = [];
  return { kept, waitUntil: (p) => kept.push(p) };
}

describe('ledger calls from one isolate', () => {
  it('a lone call goes at once, as one operation, kept alive by waitUntil', async () => {
    const l = fakeLedgers();
    const ctx = fakeCtx();
    assert.equal(await ledgerCall(l.env, ctx, undefined, 'solo', 'a'), 'reply:a');
    assert.deepEqual(l.calls, [{ name: 'solo', ops: ['a'] }]);
    assert.equal(ctx.kept.length, 1);
  });

  it('operations arriving during a call wait for it and go together in the next, each with its own reply', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const first = ledgerCall(l.env, fakeCtx(), undefined, 't', 'op0');
    const waiters = ['op1', 'op2', 'op3'].map((op) => ledgerCall(l.env, fakeCtx(), undefined, 't', op));
    // Another ledger's call is not held up behind this one: it is sent while 't' is in flight.
    const other = ledgerCall(l.env, fakeCtx(), undefined, 'u', 'x');
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(l.calls.map((c) => c.name), ['t', 'u']);
    release();
    assert.equal(await other, 'reply:x');
    assert.deepEqual(await Promise.all([first, ...waiters]), ['reply:op0', 'reply:op1', 'reply:op2', 'reply:op3']);
    assert.deepEqual(l.calls.filter((c) => c.name === 't').map((c) => c.ops), [['op0'], ['op1', 'op2', 'op3']]);
  });

  it('commits queued for the ledger ride on the next call, before the operations that waited', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const first = ledgerCall(l.env, fakeCtx(), undefined, 'c', 'admit0');
    // A commit whose own timer is later than the next call.
    const committed = ledgerCommit(l.env, undefined, 'c', 'commit-x', 200);
    const waiter = ledgerCall(l.env, fakeCtx(), undefined, 'c', 'admit1');
    release();
    assert.equal(await first, 'reply:admit0');
    assert.equal(await waiter, 'reply:admit1');
    assert.deepEqual(l.calls.map((c) => c.ops), [['admit0'], ['commit-x', 'admit1']]);
    // The commit's own timer then finds nothing left to send.
    await committed;
    assert.equal(l.calls.length, 2);
  });

  it('a commit timer sends only its own queue: the queue begun after a call took one keeps its whole window', async () => {
    const l = fakeLedgers();
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    // Queue A (timer at 100 ms) is taken along by an admission at once.
    const commitA = ledgerCommit(l.env, undefined, 'g', 'commit-a', 100);
    assert.equal(await ledgerCall(l.env, fakeCtx(), undefined, 'g', 'admit'), 'reply:admit');
    // Queue B begins at 50 ms (its timer at 150 ms); A's timer, at 100 ms, must leave it alone.
    await sleep(50);
    const commitB = ledgerCommit(l.env, undefined, 'g', 'commit-b', 100);
    await sleep(75);
    assert.deepEqual(l.calls.map((c) => c.ops), [['commit-a', 'admit']]);
    // So a commit queued at 125 ms still rides with B.
    const commitC = ledgerCommit(l.env, undefined, 'g', 'commit-c', 100);
    await Promise.all([commitA, commitB, commitC]);
    assert.deepEqual(l.calls.map((c) => c.ops), [['commit-a', 'admit'], ['commit-b', 'commit-c']]);
  });

  it('a failed call fails the operations it carried, and the next ones still go', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const first = ledgerCall(l.env, fakeCtx(), undefined, 'f', 'a');
    const carriedAndFailed = [ledgerCall(l.env, fakeCtx(), undefined, 'f', 'b'), ledgerCall(l.env, fakeCtx(), undefined, 'f', 'c')];
    l.failNextCall();
    release();
    // The first call fails; its waiters go in the next call, which succeeds.
    await assert.rejects(first, /ledger object reset/);
    assert.deepEqual(await Promise.all(carriedAndFailed), ['reply:b', 'reply:c']);
    assert.equal(await ledgerCall(l.env, fakeCtx(), undefined, 'f', 'd'), 'reply:d');
    assert.deepEqual(l.calls.map((c) => c.ops), [['a'], ['b', 'c'], ['d']]);
  });

  it('the request that started a call answers when its own reply is in, not when the queue is empty', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const first = ledgerCall(l.env, fakeCtx(), undefined, 'o', 'op0');
    const second = ledgerCall(l.env, fakeCtx(), undefined, 'o', 'op1');
    release();
    const releaseSecond = l.hold();
    // The second call (op1) is held; the first request has its reply all the same.
    assert.equal(await first, 'reply:op0');
    assert.deepEqual(l.calls.map((c) => c.ops), [['op0'], ['op1']]);
    releaseSecond();
    assert.equal(await second, 'reply:op1');
  });

  it('a carrier hands the queue over after a second; the first waiter carries on', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const firstCtx = fakeCtx();
    const first = ledgerCall(l.env, firstCtx, undefined, 'h', 'op0');
    const waiterCtx = fakeCtx();
    const waiter = ledgerCall(l.env, waiterCtx, undefined, 'h', 'op1');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    release();
    assert.equal(await first, 'reply:op0');
    assert.equal(await waiter, 'reply:op1');
    // The waiter's own request made the second call (its waitUntil holds it).
    assert.equal(waiterCtx.kept.length, 1);
    assert.deepEqual(l.calls.map((c) => c.ops), [['op0'], ['op1']]);
    // And the ledger's queue is idle again: the next call goes at once.
    assert.equal(await ledgerCall(l.env, fakeCtx(), undefined, 'h', 'op2'), 'reply:op2');
  });

  it('a carrier that makes no progress for 5 s is taken over by a waiter', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const stuck = ledgerCall(l.env, fakeCtx(), undefined, 's', 'op0');
    const waiterCtx = fakeCtx();
    const waiter = ledgerCall(l.env, waiterCtx, undefined, 's', 'op1');
    l.passLater();
    // The first call never answers; after the stall limit the waiter sends its own.
    assert.equal(await waiter, 'reply:op1');
    assert.equal(waiterCtx.kept.length, 1);
    assert.deepEqual(l.calls.map((c) => c.ops), [['op0'], ['op1']]);
    release();
    assert.equal(await stuck, 'reply:op0');
  });

  it('a call carries at most 64 operations; the rest go in the call after it', async () => {
    const l = fakeLedgers();
    const release = l.hold();
    const first = ledgerCall(l.env, fakeCtx(), undefined, 'm', 'op0');
    const rest = Array.from({ length: 100 }, (_, i) => ledgerCall(l.env, fakeCtx(), undefined, 'm', `op${i + 1}`));
    release();
    const replies = await Promise.all([first, ...rest]);
    assert.deepEqual(replies, Array.from({ length: 101 }, (_, i) => `reply:op${i}`));
    assert.deepEqual(l.calls.map((c) => c.ops.length), [1, 64, 36]);
  });
});
