//! The work queue: keys to reconcile, each at most once in the queue (the earliest deadline
//! wins) and never handed out twice at the same time. A key added while it is being processed
//! comes back once the current run ends. Failures back off per key, exponentially with jitter.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::due::DueSet;

/// How a run ended, and so when the key comes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Converged: nothing until something changes (or the periodic resync).
    Done,
    /// Converging: look again after this long.
    RequeueAfter(Duration),
    /// A transient failure: retry with this key's backoff.
    Retry,
    /// A terminal failure: not retried until the object changes.
    GiveUp,
}

pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

struct State<K> {
    /// Keys waiting, with when they are due.
    due: DueSet<K>,
    /// Keys being processed now.
    active: HashSet<K>,
    /// Keys added while active: requeued (at this deadline) when their run ends.
    again: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
    closed: bool,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    changed: Notify,
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub fn new() -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                due: DueSet::default(),
                active: HashSet::new(),
                again: HashMap::new(),
                failures: HashMap::new(),
                closed: false,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reconcile `key` now.
    pub fn add(&self, key: K) {
        self.add_at(key, Instant::now());
    }

    pub fn add_after(&self, key: K, delay: Duration) {
        self.add_at(key, Instant::now() + delay);
    }

    fn add_at(&self, key: K, at: Instant) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if state.active.contains(&key) {
            let entry = state.again.entry(key).or_insert(at);
            if at < *entry {
                *entry = at;
            }
        } else {
            state.due.set_earliest(key, at);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Waits for the next due key and marks it active. `None` once the queue is shut down.
    pub async fn next(&self) -> Option<K> {
        loop {
            // Register interest before looking, so an add in between is not missed.
            let notified = self.changed.notified();
            let wait = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let now = Instant::now();
                match state.due.earliest() {
                    Some((key, at)) if at <= now => {
                        state.due.remove(&key);
                        state.active.insert(key.clone());
                        return Some(key);
                    }
                    Some((_, at)) => Some(at),
                    None => None,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends a run of `key` and schedules what comes next.
    pub fn done(&self, key: &K, outcome: Outcome) {
        let mut state = self.lock();
        state.active.remove(key);
        let now = Instant::now();
        let next = match outcome {
            Outcome::Done => {
                state.failures.remove(key);
                None
            }
            Outcome::RequeueAfter(delay) => {
                state.failures.remove(key);
                Some(now + delay)
            }
            Outcome::Retry => {
                let failures = state.failures.entry(key.clone()).or_insert(0);
                *failures += 1;
                Some(now + backoff(*failures))
            }
            Outcome::GiveUp => {
                state.failures.remove(key);
                None
            }
        };
        let requested = state.again.remove(key);
        let at = match (next, requested) {
            // A change that arrived during the run wins over a backoff: it may be the fix.
            (_, Some(requested)) => Some(requested),
            (next, None) => next,
        };
        if let Some(at) = at {
            if !state.closed {
                state.due.set(key.clone(), at);
            }
        }
        drop(state);
        self.changed.notify_one();
    }

    /// The runs in flight were cut off (leadership lost): their keys are due again, so the next
    /// term reconciles them. Without this they would stay "active" forever.
    pub fn requeue_cut_off(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let cut_off: Vec<K> = state.active.drain().collect();
        for key in cut_off {
            state.again.remove(&key);
            state.due.set_earliest(key, now);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Stops handing out keys; `next` returns `None` from now on.
    pub fn shut_down(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }
}

/// The delay before retry number `attempt` (1-based): exponential from [`BACKOFF_MIN`] to
/// [`BACKOFF_MAX`], with jitter so keys that failed together do not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(BACKOFF_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn duplicates_collapse_and_the_earliest_deadline_wins() {
        let queue = WorkQueue::new();
        queue.add_after("a", Duration::from_secs(10));
        queue.add_after("a", Duration::from_secs(1));
        queue.add_after("a", Duration::from_secs(5));
        assert_eq!(queue.len(), 1);
        let started = Instant::now();
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_never_handed_out_twice_at_once() {
        let queue = WorkQueue::new();
        queue.add("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.next().await, Some("b"), "a is active; b goes first");
        let waiting = tokio::time::timeout(Duration::from_secs(60), queue.next()).await;
        assert!(waiting.is_err(), "a must wait for its run to end");
        queue.done(&"a", Outcome::Done);
        assert_eq!(
            queue.next().await,
            Some("a"),
            "the add during the run comes back after it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runs_cut_off_by_a_lost_lease_come_back() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.next().await, Some("a"));
        queue.add("a");
        queue.requeue_cut_off();
        let mut next = vec![queue.next().await, queue.next().await];
        next.sort();
        assert_eq!(next, [Some("a"), Some("b")]);
        let waiting = tokio::time::timeout(Duration::from_secs(60), queue.next()).await;
        assert!(waiting.is_err(), "a comes back once, not twice");
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_backoff() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.next().await.unwrap();
        queue.done(&"a", Outcome::Retry);
        queue.next().await.unwrap();
        queue.done(&"a", Outcome::Retry);
        assert_eq!(queue.failures(&"a"), 2);
        queue.next().await.unwrap();
        queue.done(&"a", Outcome::Done);
        assert_eq!(queue.failures(&"a"), 0);
        assert!(queue.is_empty(), "done means: not until something changes");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        assert!(
            first >= BACKOFF_MIN && first <= BACKOFF_MIN * 2,
            "{first:?}"
        );
        assert!(backoff(6) >= BACKOFF_MIN * 32, "{:?}", backoff(6));
        assert!(backoff(60) <= BACKOFF_MAX * 2, "capped (with jitter)");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_longer_each_time() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.next().await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..6 {
            let failed_at = Instant::now();
            queue.done(&"a", Outcome::Retry);
            queue.next().await.unwrap();
            waits.push(failed_at.elapsed());
        }
        // Each wait lies in [d, 2d) for a d that doubles: never shorter than the one before.
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert!(waits[0] >= BACKOFF_MIN);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_failures_are_not_retried_and_shutdown_ends_next() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.next().await.unwrap();
        queue.done(&"a", Outcome::GiveUp);
        assert!(queue.is_empty());
        queue.shut_down();
        assert_eq!(queue.next().await, None);
    }
}
