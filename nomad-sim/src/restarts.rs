//! What a task's restart tracker decides when the task fails, as the client's
//! client/allocrunner/taskrunner/restarts/restarts.go `RestartTracker.GetState` decides it:
//! restart after the policy's `delay` (plus up to 25% jitter) while the failures in the current
//! `interval` stay within `attempts`; past them, mode `fail` gives up (the allocation fails and
//! the reschedule policy takes over) and mode `delay` waits for the next interval.
//!
//! A failure is a task that exited non-zero or a `check_restart` restart
//! (client/serviceregistration/watcher.go restarts with `failure = true`, counted like an exit).
//! A restart asked for through the API is not a failure and is not counted here.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// restarts.go `jitter`: the share of `delay` added at random.
const JITTER: f64 = 0.25;
const SECOND: i64 = 1_000_000_000;

/// structs.go `RestartPolicy`, as the group carries it after canonicalization.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    pub attempts: u64,
    /// Nanoseconds.
    pub interval: i64,
    pub delay: i64,
    /// `fail` or `delay`.
    pub mode_fail: bool,
}

impl RestartPolicy {
    /// The group's policy; what canonicalization fills in when a field is absent
    /// (api/tasks.go `defaultServiceJobRestartPolicy`, `defaultBatchJobRestartPolicy`).
    pub fn of(job_type: &str, group: Option<&Value>) -> RestartPolicy {
        let batch = matches!(job_type, "batch" | "sysbatch");
        let policy = group.and_then(|g| g.get("RestartPolicy"));
        let int = |key: &str| policy.and_then(|p| p.get(key)).and_then(Value::as_i64);
        RestartPolicy {
            attempts: int("Attempts").unwrap_or(if batch { 3 } else { 2 }).max(0) as u64,
            interval: int("Interval").unwrap_or(if batch {
                24 * 3600 * SECOND
            } else {
                30 * 60 * SECOND
            }),
            delay: int("Delay").unwrap_or(15 * SECOND),
            mode_fail: policy.and_then(|p| p.get("Mode")).and_then(Value::as_str) != Some("delay"),
        }
    }
}

/// restarts.go's `count` and `startTime`: failures in the current interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracker {
    pub interval_start: DateTime<Utc>,
    pub count: u64,
}

impl Tracker {
    /// `NewRestartTracker`: the interval starts when the task runner does.
    pub fn new(now: DateTime<Utc>) -> Tracker {
        Tracker {
            interval_start: now,
            count: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `TaskRestarting`, after `delay_nanos`; `reason` is empty within the policy.
    Restart { delay_nanos: i64, reason: String },
    /// `TaskNotRestarting`: the allocation fails.
    GiveUp { reason: String },
}

impl Decision {
    /// structs.go `TaskEvent.PopulateEventDisplayMessage` for the event it emits.
    pub fn message(&self) -> String {
        match self {
            Decision::Restart {
                delay_nanos,
                reason,
            } => {
                let within = format!(
                    "Task restarting in {}",
                    super::validate::go_duration(*delay_nanos)
                );
                if reason.is_empty() {
                    within
                } else {
                    format!("{reason} - {within}")
                }
            }
            Decision::GiveUp { reason } => reason.clone(),
        }
    }
}

/// What the tracker knows at one failure, after the interval check and `count++`.
struct Failure<'a> {
    policy: &'a RestartPolicy,
    tracker: Tracker,
    now: DateTime<Utc>,
    /// In `[0, 1)`: `rand.Int63n(delay) / delay`.
    random: f64,
}

type Rule = (&'static str, fn(&Failure) -> Option<Decision>);

/// `GetState` for a failure, in its order (first match wins).
const RULES: &[Rule] = &[
    // "Hot path if no attempts are expected".
    ("no attempts", |f| {
        (f.policy.attempts == 0).then(|| Decision::GiveUp {
            reason: "Policy allows no restarts".into(),
        })
    }),
    // More failures than attempts in this interval, mode `fail`.
    ("exceeded, mode fail", |f| {
        (f.tracker.count > f.policy.attempts && f.policy.mode_fail).then(|| Decision::GiveUp {
            reason: format!(
                "Exceeded allowed attempts {} in interval {} and mode is \"fail\"",
                f.policy.attempts,
                super::validate::go_duration(f.policy.interval)
            ),
        })
    }),
    // Mode `delay`: wait for the next interval (`getDelay`).
    ("exceeded, mode delay", |f| {
        (f.tracker.count > f.policy.attempts).then(|| {
            let end = f.tracker.interval_start + chrono::Duration::nanoseconds(f.policy.interval);
            Decision::Restart {
                delay_nanos: (end - f.now).num_nanoseconds().unwrap_or(0).max(0),
                reason: "Exceeded allowed attempts, applying a delay".into(),
            }
        })
    }),
    // Within the policy: `delay` plus jitter.
    ("within policy", |f| {
        let delay = f.policy.delay.max(1);
        Some(Decision::Restart {
            delay_nanos: delay + (((delay as f64) * f.random) * JITTER) as i64,
            reason: String::new(),
        })
    }),
];

/// One failure: the tracker moves to a new interval when the old one ended, counts the
/// failure, and the rules decide. `random` is in `[0, 1)`.
pub fn on_failure(
    policy: &RestartPolicy,
    tracker: &mut Tracker,
    now: DateTime<Utc>,
    random: f64,
) -> Decision {
    if policy.attempts > 0 {
        let end = tracker.interval_start + chrono::Duration::nanoseconds(policy.interval);
        if now > end {
            *tracker = Tracker::new(now);
        }
        tracker.count += 1;
    }
    let failure = Failure {
        policy,
        tracker: *tracker,
        now,
        random,
    };
    RULES
        .iter()
        .find_map(|(_, rule)| rule(&failure))
        .expect("the last rule always decides")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u64, mode_fail: bool) -> RestartPolicy {
        RestartPolicy {
            attempts,
            interval: 60 * SECOND,
            delay: 10 * SECOND,
            mode_fail,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_000 + seconds, 0).unwrap()
    }

    /// restarts_test.go's cases: within policy, exceeded with each mode, a new interval, and
    /// a policy without attempts.
    #[test]
    fn failures_follow_get_state() {
        let mut tracker = Tracker::new(at(0));
        let fail = policy(2, true);
        let first = on_failure(&fail, &mut tracker, at(1), 0.0);
        assert_eq!(first.message(), "Task restarting in 10s");
        let second = on_failure(&fail, &mut tracker, at(12), 0.999);
        match &second {
            Decision::Restart { delay_nanos, .. } => {
                assert!(
                    (10 * SECOND..=12_500_000_000).contains(delay_nanos),
                    "jitter at most 25%: {delay_nanos}"
                )
            }
            other => panic!("restarts within policy: {other:?}"),
        }
        assert_eq!(
            on_failure(&fail, &mut tracker, at(30), 0.0),
            Decision::GiveUp {
                reason: "Exceeded allowed attempts 2 in interval 1m0s and mode is \"fail\"".into()
            }
        );

        let mut tracker = Tracker::new(at(0));
        let delay = policy(1, false);
        on_failure(&delay, &mut tracker, at(5), 0.0);
        let waits = on_failure(&delay, &mut tracker, at(20), 0.0);
        assert_eq!(
            waits.message(),
            "Exceeded allowed attempts, applying a delay - Task restarting in 40s",
            "until the interval ends"
        );

        let mut tracker = Tracker::new(at(0));
        on_failure(&fail, &mut tracker, at(1), 0.0);
        on_failure(&fail, &mut tracker, at(2), 0.0);
        assert!(
            matches!(
                on_failure(&fail, &mut tracker, at(70), 0.0),
                Decision::Restart { .. }
            ),
            "a new interval starts the count over"
        );
        assert_eq!(tracker.count, 1);

        let mut tracker = Tracker::new(at(0));
        assert_eq!(
            on_failure(&policy(0, true), &mut tracker, at(1), 0.0).message(),
            "Policy allows no restarts"
        );
    }
}
