//! Awaiting a JS promise without wasm-bindgen's `JsFuture`. `JsFuture` makes two `Closure`s per
//! await: each a JS function wrapper registered with (and, once called, unregistered from) a
//! `FinalizationRegistry`, plus a crossing to destroy it, an `Rc` and two boxes in wasm memory.
//! Here host.js settles a promise with plain arrow functions into one exported function
//! (`asc_settled`, handed to host.js once by boot.js), which stores the outcome in a slot of a
//! per-isolate table and wakes the task: one crossing, no closures, no finalizers. A promise that
//! never settles keeps its task (through the waker in its slot) for the isolate's life, where a
//! `JsFuture`'s finalizer could free it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use js_sys::Promise;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/host.js")]
extern "C" {
    /// `promise.then(v => settled(id, v, true), e => settled(id, e, false))`.
    #[wasm_bindgen(js_name = awaitInto)]
    fn await_into(promise: &Promise, id: u32);
}

enum Slot {
    Free,
    /// Not settled; the task to wake when it is.
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
    /// Its future was dropped first: the outcome is dropped when it comes.
    Abandoned,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    fn take(&mut self) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Slot::Waiting(None);
                id
            }
            None => {
                self.slots.push(Slot::Waiting(None));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, id: u32) {
        self.slots[id as usize] = Slot::Free;
        self.free.push(id);
    }
}

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
}

/// Where host.js reports a settled promise. Outcomes of promises an instance awaited before a
/// restart (after a trap) never arrive here: host.js drops them, as their ids may be this
/// instance's. An id this instance never handed out, or one already freed, is ignored.
#[wasm_bindgen]
pub fn asc_settled(id: u32, value: JsValue, ok: bool) {
    let waker = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        let slot = s.slots.get_mut(id as usize)?;
        match std::mem::replace(slot, Slot::Free) {
            Slot::Waiting(waker) => {
                *slot = Slot::Settled(if ok { Ok(value) } else { Err(value) });
                waker
            }
            Slot::Abandoned => {
                s.release(id);
                None
            }
            other => {
                *slot = other;
                None
            }
        }
    });
    // Woken outside the borrow: the executor may poll another future that waits here.
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A promise's outcome, as a future.
pub struct Wait {
    id: u32,
    done: bool,
}

impl Wait {
    pub fn new(promise: Promise) -> Self {
        let id = SLOTS.with(|s| s.borrow_mut().take());
        await_into(&promise, id);
        Wait { id, done: false }
    }
}

impl Future for Wait {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Its slot may be another future's by now.
        debug_assert!(!self.done, "a Wait polled after it was ready");
        let id = self.id;
        let ready = SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let slot = &mut s.slots[id as usize];
            match std::mem::replace(slot, Slot::Free) {
                Slot::Settled(outcome) => {
                    s.release(id);
                    Some(outcome)
                }
                Slot::Waiting(_) => {
                    *slot = Slot::Waiting(Some(cx.waker().clone()));
                    None
                }
                // Not reachable while this future holds the slot; fail rather than hang.
                Slot::Free | Slot::Abandoned => {
                    Some(Err(JsValue::from_str("asc: a promise's slot was lost")))
                }
            }
        });
        match ready {
            Some(outcome) => {
                self.done = true;
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id;
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            match s.slots[id as usize] {
                Slot::Settled(_) => s.release(id),
                Slot::Waiting(_) => s.slots[id as usize] = Slot::Abandoned,
                Slot::Free | Slot::Abandoned => {}
            }
        });
    }
}

/// Runs the work after a response as far as it goes without waiting, now, and hands the rest, if
/// any, to `ctx.waitUntil`. Most requests' work ends without waiting (a commit queued for another
/// request's ledger call), and then costs no promise, no spawned task and no `waitUntil`. Running
/// it before the Response is returned delays nothing the client sees: workerd sends the
/// response only once the isolate's microtasks (where a spawned task would run it) are done.
pub(crate) fn run_after(
    ctx: &wasm_bindgen::JsValue,
    work: impl std::future::Future<Output = ()> + 'static,
) {
    let mut work = Box::pin(work);
    // A waker that does nothing: a future that waits registers it, and is polled again, with
    // the executor's waker, by the task below, which every wait here re-registers on (wait.rs).
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if std::future::Future::poll(work.as_mut(), &mut cx).is_ready() {
        return;
    }
    crate::js::wait_until(
        ctx,
        wasm_bindgen_futures::future_to_promise(async move {
            work.await;
            Ok(wasm_bindgen::JsValue::UNDEFINED)
        }),
    );
}
