//! Ledger operations of the requests one instance serves at once go to the store together.
//!
//! Spin runs up to 16 requests at a time in one instance, and every budgeted request writes its
//! tenant's ledger twice (admission, commit). Each write is a compare-and-swap on the ledger's
//! row: run one by one, concurrent requests of one tenant lose the swap to each other and re-run
//! it (load, parse, apply, store again), so at 16 requests in flight most of the instance's time
//! went into lost swaps (`scripts/bench`, the Spin rows). Here one operation per ledger is in
//! flight from the instance; the operations that arrive meanwhile wait, and the next call takes
//! all of them (up to `BATCH_MAX`), applies them in order to one loaded state and stores it with
//! one swap. Each operation still gets its own reply, as if applied alone in that order (what the
//! Durable Object does with the Worker's pipelined calls).
//!
//! No task of its own: the request whose operation starts a call carries it, answers the others
//! of its batch, and hands the queue to the first request still waiting, giving it its operation
//! back to lead the next call. So every request carries at most the call its own operation is in.
//! A waiting request that went away (its future dropped) is skipped and its operation withdrawn,
//! never applied. A carrier that goes away mid-call fails the operations it carried (the store may
//! or may not have taken them: their requests fail closed, and an admission the store did take
//! expires in the ledger, as one whose request died does) and hands the queue on.
//!
//! Forwarding a ledger's records (several operations on its row of their own) takes a turn in the
//! same queue ([`LedgerQueues::hold`]): run beside a call, each side found the state the other
//! had just taken, read and parsed the row again, and lost swaps to it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;

use asc_core::host::HostError;
use asc_core::ledger::{LedgerOp, LedgerReply};
use futures::channel::oneshot;

/// At most this many operations go in one call.
pub const BATCH_MAX: usize = 64;

type Outcome = Result<LedgerReply, HostError>;

enum Turn {
    /// The operation was applied (or its call failed).
    Done(Outcome),
    /// The queue is yours: lead the next call with your operation.
    Carry(Box<LedgerOp>),
    /// The queue is yours to hold (see [`LedgerQueues::hold`]).
    Hold,
}

/// What a waiter waits for.
#[allow(
    clippy::large_enum_variant,
    reason = "the operation moves into its call's batch; a box would add an allocation per queued operation"
)]
enum Want {
    /// Its operation applied, in a call.
    Apply(LedgerOp),
    /// The queue to itself, for work of its own on the ledger.
    Hold,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(Want, oneshot::Sender<Turn>)>,
    /// A request is carrying a call for this ledger.
    carried: bool,
}

/// The instance's queues, by ledger.
#[derive(Default)]
pub struct LedgerQueues(RefCell<HashMap<String, Queue>>);

impl LedgerQueues {
    /// Applies `op` to `ledger` with whatever operations wait for it. `run` applies a batch in
    /// order and returns one reply per operation (or fails them all).
    pub async fn apply<F, Fut>(&self, ledger: &str, op: LedgerOp, run: F) -> Outcome
    where
        F: FnOnce(Vec<LedgerOp>) -> Fut,
        Fut: Future<Output = Result<Vec<LedgerReply>, HostError>>,
    {
        let waiting = {
            let mut queues = self.0.borrow_mut();
            let queue = queues.entry(ledger.to_string()).or_default();
            if queue.carried {
                let (tx, rx) = oneshot::channel();
                queue.waiting.push_back((Want::Apply(op), tx));
                Err(rx)
            } else {
                queue.carried = true;
                Ok(op)
            }
        };
        let own = match waiting {
            Ok(op) => op,
            Err(rx) => match Waiting::new(rx, self, ledger).turn().await {
                Ok(Turn::Done(outcome)) => return outcome,
                Ok(Turn::Carry(op)) => *op,
                // Only a holder is handed `Hold`; were this handed it, the queue still moves on.
                Ok(Turn::Hold) => {
                    self.hand_on_unheld(ledger);
                    return Err(interrupted());
                }
                Err(oneshot::Canceled) => return Err(interrupted()),
            },
        };
        let mut carrier = Carrier {
            queues: self,
            ledger,
            others: Vec::new(),
            finished: false,
        };
        let mut ops = vec![own];
        {
            let mut queues = self.0.borrow_mut();
            let queue = queues.entry(ledger.to_string()).or_default();
            // Up to the first holder: what waits behind it goes after its turn.
            while ops.len() < BATCH_MAX
                && matches!(queue.waiting.front(), Some((Want::Apply(_), _)))
            {
                let Some((Want::Apply(op), tx)) = queue.waiting.pop_front() else {
                    break;
                };
                // A request that went away withdraws its operation.
                if !tx.is_canceled() {
                    ops.push(op);
                    carrier.others.push(tx);
                }
            }
        }
        let count = ops.len();
        let outcome = run(ops).await;
        carrier.finish(outcome, count)
    }

    /// Runs `work` with `ledger`'s queue to itself: after the call in flight (and any operations
    /// or holders queued before it), with the operations that arrive meanwhile waiting until it
    /// is done. `work` must not apply operations to `ledger` through this queue.
    pub async fn hold<T>(&self, ledger: &str, work: impl Future<Output = T>) -> T {
        let waiting = {
            let mut queues = self.0.borrow_mut();
            let queue = queues.entry(ledger.to_string()).or_default();
            if queue.carried {
                let (tx, rx) = oneshot::channel();
                queue.waiting.push_back((Want::Hold, tx));
                Some(rx)
            } else {
                queue.carried = true;
                None
            }
        };
        if let Some(rx) = waiting {
            match Waiting::new(rx, self, ledger).turn().await {
                Ok(Turn::Hold) => {}
                // Not handed the queue to hold (cannot happen: a holder's sender is only used to
                // hand it on, with `Hold`): pass on a turn meant for an operation, then run
                // anyway, as before this queue existed; the store's compare-and-swap keeps the
                // row consistent.
                other => {
                    if matches!(other, Ok(Turn::Carry(_))) {
                        self.hand_on_unheld(ledger);
                    }
                    return work.await;
                }
            }
        }
        // Hands the queue on when done, or if this is dropped midway.
        let _held = Carrier {
            queues: self,
            ledger,
            others: Vec::new(),
            finished: false,
        };
        work.await
    }
}

impl LedgerQueues {
    /// Hands `ledger`'s queue on for a waiter that was handed it and will not use it.
    fn hand_on_unheld(&self, ledger: &str) {
        Carrier {
            queues: self,
            ledger,
            others: Vec::new(),
            finished: true,
        }
        .hand_on();
    }
}

/// A waiter's receiver. Dropped after its turn was sent but before it took it (its request went
/// away in between), it hands the queue on as the carrier or holder would have.
struct Waiting<'q> {
    rx: oneshot::Receiver<Turn>,
    queues: &'q LedgerQueues,
    ledger: &'q str,
}

impl<'q> Waiting<'q> {
    fn new(rx: oneshot::Receiver<Turn>, queues: &'q LedgerQueues, ledger: &'q str) -> Self {
        Waiting { rx, queues, ledger }
    }

    async fn turn(mut self) -> Result<Turn, oneshot::Canceled> {
        (&mut self.rx).await
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(Some(Turn::Carry(_) | Turn::Hold)) = self.rx.try_recv() {
            self.queues.hand_on_unheld(self.ledger);
        }
    }
}

/// The request carrying a call; hands the queue on however it ends.
struct Carrier<'q> {
    queues: &'q LedgerQueues,
    ledger: &'q str,
    /// The reply channels of the batch's other operations, in order.
    others: Vec<oneshot::Sender<Turn>>,
    finished: bool,
}

impl Carrier<'_> {
    /// Answers the batch's other operations and returns the carrier's own outcome.
    fn finish(mut self, outcome: Result<Vec<LedgerReply>, HostError>, count: usize) -> Outcome {
        self.finished = true;
        let others = std::mem::take(&mut self.others);
        let outcome = outcome.and_then(|replies| {
            if replies.len() == count {
                Ok(replies)
            } else {
                Err(HostError::Store(
                    "ledger batch: a reply per operation was expected".into(),
                ))
            }
        });
        let own = match outcome {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                let own = replies.next().ok_or_else(interrupted);
                for (tx, reply) in others.into_iter().zip(replies) {
                    let _ = tx.send(Turn::Done(Ok(reply)));
                }
                own
            }
            Err(e) => {
                for tx in others {
                    let _ = tx.send(Turn::Done(Err(e.clone())));
                }
                Err(e)
            }
        };
        self.hand_on();
        own
    }

    /// Gives the queue to the first request still waiting, or marks it free.
    fn hand_on(&self) {
        let mut queues = self.queues.0.borrow_mut();
        let Some(queue) = queues.get_mut(self.ledger) else {
            return;
        };
        while let Some((want, tx)) = queue.waiting.pop_front() {
            let turn = match want {
                Want::Apply(op) => Turn::Carry(Box::new(op)),
                Want::Hold => Turn::Hold,
            };
            // A waiter that went away hands its operation back: withdrawn, try the next.
            if tx.send(turn).is_ok() {
                return;
            }
        }
        queues.remove(self.ledger);
    }
}

impl Drop for Carrier<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Cut short mid-call: the others hear `Canceled` (their requests fail closed).
            self.others.clear();
            self.hand_on();
        }
    }
}

fn interrupted() -> HostError {
    HostError::Store("the ledger call carrying this operation was interrupted".into())
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use asc_core::ledger::{LedgerOp, LedgerReply};
    use futures::channel::oneshot;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;
    use futures::FutureExt;

    use super::*;

    /// Distinct operations (`Alerts { limit: n }` stands for request n's operation) and a reply
    /// that names the operation it answers.
    fn op(n: u32) -> LedgerOp {
        LedgerOp::Alerts { limit: n as usize }
    }

    fn reply_for(op: &LedgerOp) -> LedgerReply {
        match op {
            LedgerOp::Alerts { limit } => LedgerReply::Committed {
                charged_micros: Some(*limit as u64),
                on_time: true,
                alerts: Vec::new(),
            },
            _ => unreachable!(),
        }
    }

    fn text(outcome: &Outcome) -> String {
        match outcome {
            Ok(LedgerReply::Committed {
                charged_micros: Some(n),
                ..
            }) => format!("applied t{n}"),
            other => format!("{other:?}"),
        }
    }

    /// A store whose calls finish when the test says so; records the batches it was given.
    #[derive(Default)]
    struct Store {
        batches: RefCell<Vec<Vec<String>>>,
        gates: RefCell<VecDeque<oneshot::Sender<Result<(), HostError>>>>,
    }

    impl Store {
        async fn run(&self, ops: Vec<LedgerOp>) -> Result<Vec<LedgerReply>, HostError> {
            let names = ops
                .iter()
                .map(|o| text(&Ok(reply_for(o))).replace("applied ", ""))
                .collect();
            self.batches.borrow_mut().push(names);
            let (tx, rx) = oneshot::channel();
            self.gates.borrow_mut().push_back(tx);
            rx.await.expect("gate")?;
            Ok(ops.iter().map(reply_for).collect())
        }

        fn open_next(&self, result: Result<(), HostError>) {
            let gate = self
                .gates
                .borrow_mut()
                .pop_front()
                .expect("a call in flight");
            let _ = gate.send(result);
        }
    }

    struct Harness {
        pool: LocalPool,
        queues: Rc<LedgerQueues>,
        store: Rc<Store>,
        outcomes: Rc<RefCell<Vec<(u32, String)>>>,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                pool: LocalPool::new(),
                queues: Rc::new(LedgerQueues::default()),
                store: Rc::new(Store::default()),
                outcomes: Rc::new(RefCell::new(Vec::new())),
            }
        }

        /// Starts request `n`'s operation on `ledger`; returns a handle that drops it if asked.
        fn start(&mut self, n: u32, ledger: &'static str) -> futures::future::AbortHandle {
            let (queues, store, outcomes) = (
                self.queues.clone(),
                self.store.clone(),
                self.outcomes.clone(),
            );
            let (task, handle) = futures::future::abortable(async move {
                let outcome = queues
                    .apply(ledger, op(n), |ops| async move { store.run(ops).await })
                    .await;
                outcomes.borrow_mut().push((n, text(&outcome)));
            });
            self.pool
                .spawner()
                .spawn_local(task.map(|_| ()))
                .expect("spawn");
            self.pool.run_until_stalled();
            handle
        }

        /// Starts holder `n` on `ledger`: it notes `held hn` once it has the queue, and lets go
        /// when `release` is sent.
        fn hold(
            &mut self,
            n: u32,
            ledger: &'static str,
        ) -> (futures::future::AbortHandle, oneshot::Sender<()>) {
            let (queues, outcomes) = (self.queues.clone(), self.outcomes.clone());
            let (release, released) = oneshot::channel::<()>();
            let (task, handle) = futures::future::abortable(async move {
                let work = async {
                    outcomes.borrow_mut().push((n, format!("held h{n}")));
                    let _ = released.await;
                };
                queues.hold(ledger, work).await;
                outcomes.borrow_mut().push((n, format!("let go h{n}")));
            });
            self.pool
                .spawner()
                .spawn_local(task.map(|_| ()))
                .expect("spawn");
            self.pool.run_until_stalled();
            (handle, release)
        }

        fn settle(&mut self) {
            self.pool.run_until_stalled();
        }

        fn log(&self) -> Vec<String> {
            self.outcomes
                .borrow()
                .iter()
                .map(|(_, t)| t.clone())
                .collect()
        }

        fn batches(&self) -> Vec<Vec<String>> {
            self.store.batches.borrow().clone()
        }

        fn outcome(&self, n: u32) -> Option<String> {
            self.outcomes
                .borrow()
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, t)| t.clone())
        }
    }

    #[test]
    fn operations_arriving_during_a_call_go_together_in_the_next_each_with_its_reply() {
        let mut h = Harness::new();
        h.start(1, "acme");
        h.start(2, "acme");
        h.start(3, "acme");
        assert_eq!(h.batches(), vec![vec!["t1"]], "one call in flight");
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(1).as_deref(), Some("applied t1"));
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t2", "t3"]]);
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(2).as_deref(), Some("applied t2"));
        assert_eq!(h.outcome(3).as_deref(), Some("applied t3"));
        // The queue is free again: the next operation starts a call at once.
        h.start(4, "acme");
        assert_eq!(h.batches().len(), 3);
    }

    #[test]
    fn another_ledger_is_not_held_up() {
        let mut h = Harness::new();
        h.start(1, "acme");
        h.start(2, "globex");
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t2"]]);
    }

    #[test]
    fn a_failed_call_fails_exactly_its_operations_and_later_ones_still_go() {
        let mut h = Harness::new();
        h.start(1, "acme");
        h.start(2, "acme");
        h.store.open_next(Err(HostError::Store("disk full".into())));
        h.settle();
        assert!(h.outcome(1).expect("answered").contains("disk full"));
        // 2 leads the next call and is applied.
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(2).as_deref(), Some("applied t2"));
    }

    #[test]
    fn a_request_that_went_away_while_waiting_is_withdrawn_not_applied() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let gone = h.start(2, "acme");
        h.start(3, "acme");
        gone.abort();
        h.settle();
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t3"]]);
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(3).as_deref(), Some("applied t3"));
        assert_eq!(h.outcome(2), None);
    }

    #[test]
    fn a_waiter_handed_the_queue_after_it_went_away_passes_it_on() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let gone = h.start(2, "acme");
        h.start(3, "acme");
        h.start(4, "acme");
        // 2 goes away just as the call ends: the hand-over skips it.
        gone.abort();
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t3", "t4"]]);
    }

    #[test]
    fn a_carrier_cut_short_fails_what_it_carried_and_hands_the_queue_on() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let two = h.start(2, "acme");
        h.start(3, "acme");
        h.store.open_next(Ok(()));
        h.settle();
        // 2 carries [2, 3], and its request goes away mid-call.
        assert_eq!(
            h.batches().last().cloned(),
            Some(vec!["t2".into(), "t3".into()])
        );
        h.start(5, "acme");
        two.abort();
        h.settle();
        let stale = h.store.gates.borrow_mut().pop_front().expect("2's call");
        assert!(stale.send(Ok(())).is_err(), "nobody awaits the cut call");
        assert!(
            h.outcome(3).expect("3 answered").contains("interrupted"),
            "{:?}",
            h.outcome(3)
        );
        assert_eq!(h.outcome(2), None);
        // 5 was handed the queue and leads its own call.
        assert_eq!(h.batches().last().cloned(), Some(vec!["t5".into()]));
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(5).as_deref(), Some("applied t5"));
    }

    #[test]
    fn a_call_takes_at_most_batch_max_operations() {
        let mut h = Harness::new();
        h.start(0, "acme");
        for n in 1..=(BATCH_MAX as u32 + 5) {
            h.start(n, "acme");
        }
        h.store.open_next(Ok(()));
        h.settle();
        let second = h.batches()[1].clone();
        assert_eq!(second.len(), BATCH_MAX);
        assert_eq!(second.first().map(String::as_str), Some("t1"));
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.batches()[2].len(), 5);
    }

    #[test]
    fn a_holder_waits_for_the_call_in_flight_and_operations_arriving_wait_for_it() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let (_, release) = h.hold(100, "acme");
        assert_eq!(
            h.log(),
            Vec::<String>::new(),
            "not while 1's call is in flight"
        );
        h.start(2, "acme");
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.log(), vec!["applied t1", "held h100"]);
        h.start(3, "acme");
        assert_eq!(h.batches(), vec![vec!["t1"]], "2 and 3 wait for the holder");
        release.send(()).expect("holding");
        h.settle();
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t2", "t3"]]);
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(
            h.log(),
            vec![
                "applied t1",
                "held h100",
                "let go h100",
                "applied t2",
                "applied t3"
            ]
        );
    }

    #[test]
    fn operations_queued_before_a_holder_go_before_it_and_later_ones_after() {
        let mut h = Harness::new();
        h.start(1, "acme");
        h.start(2, "acme");
        let (_, release) = h.hold(100, "acme");
        h.start(3, "acme");
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(
            h.batches(),
            vec![vec!["t1"], vec!["t2"]],
            "3 is behind the holder"
        );
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.outcome(100).as_deref(), Some("held h100"));
        release.send(()).expect("holding");
        h.settle();
        assert_eq!(h.batches().last().cloned(), Some(vec!["t3".into()]));
        // Free with nothing in flight: a holder has the queue at once.
        h.store.open_next(Ok(()));
        h.settle();
        let (_, release) = h.hold(101, "acme");
        assert_eq!(h.log().last().map(String::as_str), Some("held h101"));
        drop(release);
        h.settle();
        assert_eq!(h.log().last().map(String::as_str), Some("let go h101"));
    }

    #[test]
    fn a_holder_dropped_midway_or_gone_before_its_turn_hands_the_queue_on() {
        let mut h = Harness::new();
        let (holding, _release) = h.hold(100, "acme");
        h.start(1, "acme");
        assert!(h.batches().is_empty());
        holding.abort();
        h.settle();
        assert_eq!(h.batches(), vec![vec!["t1"]], "1 has the queue");
        // One that went away while waiting is skipped.
        let (gone, _release2) = h.hold(101, "acme");
        h.start(2, "acme");
        gone.abort();
        h.store.open_next(Ok(()));
        h.settle();
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t2"]]);
        assert_eq!(h.outcome(101), None);
    }

    #[test]
    fn a_holder_gone_after_it_was_handed_the_queue_passes_it_on() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let (holding, _release) = h.hold(100, "acme");
        // 1's call ends and hands the queue to 100, whose request goes away before it runs.
        h.store.open_next(Ok(()));
        holding.abort();
        h.settle();
        assert_eq!(h.outcome(100), None, "the holder never ran");
        h.start(2, "acme");
        assert_eq!(h.batches(), vec![vec!["t1"], vec!["t2"]], "2 has the queue");
    }

    #[test]
    fn a_waiter_gone_after_it_was_handed_the_queue_passes_it_on_and_is_not_applied() {
        let mut h = Harness::new();
        h.start(1, "acme");
        let gone = h.start(2, "acme");
        h.store.open_next(Ok(()));
        gone.abort();
        h.settle();
        h.start(3, "acme");
        assert_eq!(
            h.batches(),
            vec![vec!["t1"], vec!["t3"]],
            "3 has the queue, 2 withdrawn"
        );
        assert_eq!(h.outcome(2), None);
    }
}
