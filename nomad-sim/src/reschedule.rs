//! When a failed allocation may be replaced, as the servers decide it: nomad/structs/structs.go
//! `Allocation.NextRescheduleTime` (the failure time plus `NextDelay`, eligible while the
//! reschedule policy has attempts left in its interval, or is unlimited), with the delay
//! growing by the policy's `delay_function` up to `max_delay` and starting over after a quiet
//! spell. The scheduler replaces a failed allocation whose time is at most
//! `rescheduleWindowSize` away, and leaves a follow-up evaluation for a later one
//! (scheduler/reconcile_util.go `updateByReschedulable`, reconcile.go `createLostLaterEvals`).

use serde_json::{json, Value};

const SECOND: i64 = 1_000_000_000;
/// reconcile.go `rescheduleWindowSize`: a reschedule due this soon happens now.
pub const WINDOW: i64 = SECOND;
/// reconcile.go `batchedFailedAllocWindowSize`: follow-ups this close share an evaluation.
pub const BATCH_WINDOW: i64 = 5 * SECOND;
/// structs.go `maxPastRescheduleEvents`: what an unlimited policy's tracker keeps.
const MAX_PAST_EVENTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayFunction {
    Constant,
    Exponential,
    Fibonacci,
}

/// structs.go `ReschedulePolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReschedulePolicy {
    pub attempts: u64,
    pub interval: i64,
    pub delay: i64,
    pub delay_function: DelayFunction,
    pub max_delay: i64,
    pub unlimited: bool,
}

impl ReschedulePolicy {
    /// The group's policy; absent fields as `DefaultServiceJobReschedulePolicy` and
    /// `DefaultBatchJobReschedulePolicy` have them (system jobs never reschedule).
    pub fn of(job_type: &str, group: Option<&Value>) -> ReschedulePolicy {
        let policy = group.and_then(|g| g.get("ReschedulePolicy"));
        let int = |key: &str| policy.and_then(|p| p.get(key)).and_then(Value::as_i64);
        let (attempts, interval, delay, function, max_delay, unlimited) = match job_type {
            "service" => (0, 0, 30 * SECOND, "exponential", 3600 * SECOND, true),
            "batch" => (1, 24 * 3600 * SECOND, 5 * SECOND, "constant", 0, false),
            _ => (0, 0, 0, "constant", 0, false),
        };
        let function = policy
            .and_then(|p| p.get("DelayFunction"))
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .unwrap_or(function);
        ReschedulePolicy {
            attempts: int("Attempts").unwrap_or(attempts).max(0) as u64,
            interval: int("Interval").unwrap_or(interval),
            delay: int("Delay").unwrap_or(delay),
            delay_function: match function {
                "exponential" => DelayFunction::Exponential,
                "fibonacci" => DelayFunction::Fibonacci,
                _ => DelayFunction::Constant,
            },
            max_delay: int("MaxDelay").unwrap_or(max_delay),
            unlimited: policy
                .and_then(|p| p.get("Unlimited"))
                .and_then(Value::as_bool)
                .unwrap_or(unlimited),
        }
    }

    fn enabled(&self) -> bool {
        self.attempts > 0 || self.unlimited
    }
}

/// One entry of an allocation's `RescheduleTracker.Events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub time: i64,
    pub delay: i64,
}

impl Attempt {
    pub fn from_json(event: &Value) -> Attempt {
        let int = |key: &str| event.get(key).and_then(Value::as_i64).unwrap_or(0);
        Attempt {
            time: int("RescheduleTime"),
            delay: int("Delay"),
        }
    }
}

/// structs.go `Allocation.NextDelay`: the delay before the next replacement, from the
/// allocation's past attempts; `failed_at` is its `LastEventTime`.
pub fn next_delay(policy: &ReschedulePolicy, past: &[Attempt], failed_at: i64) -> i64 {
    let Some(last) = past.last() else {
        return policy.delay;
    };
    let grown = match policy.delay_function {
        DelayFunction::Constant => return policy.delay,
        DelayFunction::Exponential => last.delay * 2,
        DelayFunction::Fibonacci => match past {
            [.., before, last]
                if before.delay == policy.max_delay && last.delay == policy.delay =>
            {
                last.delay
            }
            [.., before, last] => before.delay + last.delay,
            _ => policy.delay,
        },
    };
    if policy.max_delay > 0 && grown > policy.max_delay {
        // Capped; a failure long after the last attempt starts the series over.
        if failed_at - last.time > policy.max_delay {
            return policy.delay;
        }
        return policy.max_delay;
    }
    grown
}

/// structs.go `RescheduleTracker.rescheduleInfo`: attempts inside the interval before
/// `failed_at`.
fn attempts_in_interval(policy: &ReschedulePolicy, past: &[Attempt], failed_at: i64) -> u64 {
    past.iter()
        .filter(|a| failed_at - a.time < policy.interval)
        .count() as u64
}

/// When a failed allocation may be replaced, and whether it may at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The policy allows no more replacements: the failed allocation stays as it is.
    Never,
    /// Replace at this time (nanoseconds since the epoch), after `delay`.
    At { time: i64, delay: i64 },
}

/// structs.go `Allocation.NextRescheduleTime` / `nextRescheduleTime`.
pub fn next_reschedule(policy: &ReschedulePolicy, past: &[Attempt], failed_at: i64) -> Next {
    if !policy.enabled() {
        return Next::Never;
    }
    let delay = next_delay(policy, past, failed_at);
    let eligible = policy.unlimited
        || past.is_empty()
        || (attempts_in_interval(policy, past, failed_at) < policy.attempts
            && delay < policy.interval);
    if eligible {
        Next::At {
            time: failed_at + delay,
            delay,
        }
    } else {
        Next::Never
    }
}

/// scheduler/generic_sched.go `updateRescheduleTracker`: the previous allocation's events a
/// replacement carries on (with attempts set, those inside the interval; otherwise the last
/// five), then this attempt.
pub fn carried_events(
    previous: &[Value],
    policy: &ReschedulePolicy,
    now: i64,
    attempt: Value,
) -> Vec<Value> {
    let mut events: Vec<Value> = if policy.attempts > 0 {
        previous
            .iter()
            .filter(|e| {
                e.get("RescheduleTime")
                    .and_then(Value::as_i64)
                    .is_some_and(|t| policy.interval > 0 && now - t <= policy.interval)
            })
            .cloned()
            .collect()
    } else {
        let skip = previous.len().saturating_sub(MAX_PAST_EVENTS);
        previous[skip..].to_vec()
    };
    events.push(attempt);
    events
}

/// One `RescheduleEvent`.
pub fn event(prev_alloc: &str, prev_node: &str, now: i64, delay: i64) -> Value {
    json!({
        "PrevAllocID": prev_alloc,
        "PrevNodeID": prev_node,
        "RescheduleTime": now,
        "Delay": delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(function: DelayFunction) -> ReschedulePolicy {
        ReschedulePolicy {
            attempts: 0,
            interval: 0,
            delay: 5,
            delay_function: function,
            max_delay: 40,
            unlimited: true,
        }
    }

    fn past(delays: &[i64]) -> Vec<Attempt> {
        delays
            .iter()
            .enumerate()
            .map(|(i, d)| Attempt {
                time: 100 + i as i64,
                delay: *d,
            })
            .collect()
    }

    /// structs_test.go `TestAllocation_NextDelay`'s shapes.
    #[test]
    fn delays_grow_by_the_delay_function_up_to_the_cap() {
        use DelayFunction::*;
        let cases = [
            ("first failure: the delay", Exponential, vec![], 110, 5),
            ("constant", Constant, vec![5, 5], 110, 5),
            ("exponential doubles", Exponential, vec![5, 10], 110, 20),
            (
                "exponential caps",
                Exponential,
                vec![5, 10, 20, 40],
                110,
                40,
            ),
            (
                "a failure long after the last attempt starts over",
                Exponential,
                vec![5, 10, 20, 40],
                1_000,
                5,
            ),
            ("fibonacci adds", Fibonacci, vec![5, 5, 10], 110, 15),
            ("fibonacci caps", Fibonacci, vec![20, 30], 110, 40),
            ("fibonacci after a reset", Fibonacci, vec![40, 5], 110, 5),
        ];
        for (why, function, delays, failed_at, want) in cases {
            assert_eq!(
                next_delay(&policy(function), &past(&delays), failed_at),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn attempts_count_inside_the_interval() {
        let limited = ReschedulePolicy {
            attempts: 2,
            interval: 50,
            unlimited: false,
            ..policy(DelayFunction::Constant)
        };
        assert_eq!(
            next_reschedule(&limited, &[], 100),
            Next::At {
                time: 105,
                delay: 5
            },
            "no attempt yet"
        );
        assert_eq!(
            next_reschedule(&limited, &past(&[5, 5]), 110),
            Next::Never,
            "two attempts inside the interval"
        );
        assert_eq!(
            next_reschedule(&limited, &past(&[5, 5]), 200),
            Next::At {
                time: 205,
                delay: 5
            },
            "the attempts fell out of the interval"
        );
        let disabled = ReschedulePolicy {
            attempts: 0,
            unlimited: false,
            ..limited
        };
        assert_eq!(next_reschedule(&disabled, &[], 100), Next::Never);
    }
}
