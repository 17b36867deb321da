//! Following objects until they are done: `nomarch apply --wait` and
//! `nomarch rollout status --watch`.
//!
//! Where an object stands is a pure [`verdict`] over its stored status and the generation being
//! waited for (an ordered rule table); [`follow`] reads the statuses once, then watches them in
//! etcd, so success is seen as soon as the controller records it. On a terminal each object
//! gets a live bar of healthy/desired instances with its phase and the time elapsed; otherwise
//! a plain line whenever what it shows changes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use crds::status::RolloutPhase;
use crds::{ConditionStatus, ConditionType, Kind, ObjectRef, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::say;
use super::CliError;
use crate::store::{RawItem, Store, WatchEvent};

/// Where one object stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending(Progress),
    Succeeded(String),
    Failed(String),
    RolledBack(String),
}

impl Verdict {
    pub fn is_done(&self) -> bool {
        !matches!(self, Verdict::Pending(_))
    }
}

/// What is shown while an object is not done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: String,
    pub healthy: u32,
    pub desired: u32,
}

impl Verdict {
    fn pending(phase: impl Into<String>, (healthy, desired): (u32, u32)) -> Verdict {
        Verdict::Pending(Progress {
            phase: phase.into(),
            healthy,
            desired,
        })
    }
}

/// What is awaited of an object: the controller's verdict on this generation, and, for
/// `nomarch reconcile`, on a reconcile run after the request with this token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awaited {
    pub generation: i64,
    pub request: Option<String>,
}

impl From<i64> for Awaited {
    fn from(generation: i64) -> Awaited {
        Awaited {
            generation,
            request: None,
        }
    }
}

/// What the rules read.
struct Facts<'a> {
    kind: Kind,
    generation: i64,
    status: &'a Status,
}

impl Facts<'_> {
    /// Healthy and desired instances from the status's replica counts.
    fn replicas(&self) -> (u32, u32) {
        self.status
            .workload
            .replicas
            .map_or((0, 0), |r| (r.healthy, r.desired))
    }

    /// The rollout of the awaited generation, if that is what status shows.
    fn own_rollout(&self) -> Option<&crds::status::RolloutStatus> {
        self.status
            .workload
            .rollout
            .as_ref()
            .filter(|r| r.generation == Some(self.generation))
    }

    /// How the awaited generation's newest rollout ended, if it did: the one status shows, or
    /// one already replaced by a newer deployment (Nomad's revert registers one at once).
    fn own_ending(&self) -> Option<(RolloutPhase, u64, String)> {
        if let Some(rollout) = self.own_rollout() {
            return Some((
                rollout.phase,
                rollout.job_version,
                rollout.description.clone(),
            ));
        }
        self.status
            .workload
            .past_rollouts
            .iter()
            .find(|p| p.generation == Some(self.generation))
            .map(|p| (p.phase, p.job_version, String::new()))
    }

    fn condition(&self, type_: ConditionType) -> Option<&crds::Condition> {
        self.status.condition(type_)
    }
}

type WaitRule = (&'static str, fn(&Facts) -> Option<Verdict>);

/// First match wins. Runs only once the controller has observed the awaited generation.
const RULES: &[WaitRule] = &[
    // Nomad refused the job: it will not run until the spec changes.
    ("refused by Nomad", |f| {
        f.condition(ConditionType::Invalid)
            .filter(|c| c.status == ConditionStatus::True)
            .map(|c| Verdict::Failed(format!("refused by Nomad: {}", c.message)))
    }),
    // Stopped on request (`spec.stopped`): done once nothing runs.
    ("stopped", |f| {
        let stopped = f.condition(ConditionType::Stopped)?;
        Some(match stopped.status {
            ConditionStatus::True => Verdict::Succeeded(stopped.message.clone()),
            _ => Verdict::pending(stopped.reason.clone(), (0, 0)),
        })
    }),
    // Nomad rolled this generation back (the record outlives the revert's own deployment).
    ("rolled back", |f| {
        let rollback = f.status.workload.rollback.as_ref()?;
        (rollback.generation == f.generation).then(|| {
            Verdict::RolledBack(format!(
                "failed and Nomad rolled back: {}",
                rollback.message
            ))
        })
    }),
    // A git source is done when the commit is applied, or will not be without a new commit.
    ("git source", |f| {
        if f.kind != Kind::GitSource {
            return None;
        }
        let synced = f.condition(ConditionType::Synced)?;
        match (synced.status, synced.reason.as_str()) {
            (ConditionStatus::True, _) => Some(Verdict::Succeeded(synced.message.clone())),
            (_, "InvalidManifests" | "OwnershipConflict") => {
                Some(Verdict::Failed(synced.message.clone()))
            }
            _ => Some(Verdict::pending(synced.reason.clone(), (0, 0))),
        }
    }),
    // This generation's newest rollout ended (it may already be behind Nomad's revert).
    ("rollout over", |f| {
        let (phase, job_version, said) = f.own_ending()?;
        let said = if said.is_empty() {
            format!("deployment of job version {job_version} {phase:?}")
        } else {
            said
        };
        match phase {
            RolloutPhase::Succeeded => Some(Verdict::Succeeded(format!(
                "rolled out (job version {job_version})"
            ))),
            RolloutPhase::RolledBack => Some(Verdict::RolledBack(said)),
            RolloutPhase::Failed => Some(Verdict::Failed(said)),
            RolloutPhase::Superseded => Some(Verdict::Failed(format!("superseded: {said}"))),
            _ => None,
        }
    }),
    // This generation's rollout is going: its own counts, its phase.
    ("rollout going", |f| {
        let rollout = f.own_rollout()?;
        let phase = match rollout.phase {
            RolloutPhase::AwaitingPromotion => "AwaitingPromotion (nomarch rollout promote)",
            RolloutPhase::Paused => "Paused",
            _ => "Progressing",
        };
        let (desired, healthy) = rollout.healthy_of_desired();
        Some(Verdict::pending(phase, (healthy, desired)))
    }),
    // An App's job moved to a version Nomad has no deployment for yet: every change of an App's
    // job starts one (scheduler/reconcile.go `createDeployment`: an update block, instances
    // wanted, and destructive or in-place updates), so the old one's health says nothing.
    ("rollout not started", |f| {
        let job = f.status.workload.job.as_ref()?;
        let (_, desired) = f.replicas();
        let started = f
            .status
            .workload
            .rollout
            .as_ref()
            .is_some_and(|r| r.job_version >= job.version);
        (f.kind == Kind::App && desired > 0 && !started)
            .then(|| Verdict::pending("Pending (no deployment yet)", f.replicas()))
    }),
    // Nothing to roll out (the job did not change, or the kind has no deployments): Ready.
    ("ready", |f| {
        let ready = f.condition(ConditionType::Ready)?;
        (ready.status == ConditionStatus::True).then(|| Verdict::Succeeded(ready.message.clone()))
    }),
    ("not ready yet", |f| {
        let reason = f
            .condition(ConditionType::Ready)
            .map_or("Pending", |c| c.reason.as_str());
        Some(Verdict::pending(reason, f.replicas()))
    }),
];

/// Where an object stands with regard to what is awaited.
pub fn verdict(kind: Kind, awaited: impl Into<Awaited>, status: Option<&Status>) -> Verdict {
    let Awaited {
        generation,
        request,
    } = awaited.into();
    let seen = status.filter(|s| {
        s.observed_generation.is_some_and(|g| g >= generation)
            && (request.is_none() || s.last_handled_reconcile_at == request)
    });
    let Some(status) = seen else {
        return Verdict::pending("Waiting for the controller", (0, 0));
    };
    let facts = Facts {
        kind,
        generation,
        status,
    };
    RULES
        .iter()
        .find_map(|(_, rule)| rule(&facts))
        .unwrap_or_else(|| Verdict::pending("Pending", (0, 0)))
}

/// How following ended, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    AllSucceeded,
    SomeFailed(Vec<ObjectRef>),
    TimedOut(Vec<ObjectRef>),
}

impl Outcome {
    pub fn into_result(self) -> Result<(), CliError> {
        let names = |objects: Vec<ObjectRef>| {
            objects
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Outcome::AllSucceeded => Ok(()),
            Outcome::SomeFailed(objects) => Err(CliError::RolloutFailed(format!(
                "did not roll out: {}",
                names(objects)
            ))),
            Outcome::TimedOut(objects) => Err(CliError::Timeout(format!(
                "timed out waiting for {}",
                names(objects)
            ))),
        }
    }
}

/// Follows each object until its verdict for the given generation is final, or `timeout`.
pub async fn follow(
    store: &Store,
    targets: &[(ObjectRef, Awaited)],
    timeout: Duration,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let revision = store.revision().await?;
    let mut statuses: BTreeMap<ObjectRef, Option<Status>> = BTreeMap::new();
    for (object, _) in targets {
        let status = store.get(object).await?.and_then(|r| r.status().cloned());
        statuses.insert(object.clone(), status);
    }
    let mut display = Display::new(targets);
    let verdicts = |statuses: &BTreeMap<ObjectRef, Option<Status>>| -> Vec<Verdict> {
        targets
            .iter()
            .map(|(object, awaited)| {
                verdict(object.kind, awaited.clone(), statuses[object].as_ref())
            })
            .collect()
    };
    // One kind followed: only its statuses (an apply of Apps hears nothing of the pubs).
    let first_kind = targets.first().map(|(o, _)| o.kind);
    let one_kind = first_kind.filter(|k| targets.iter().all(|(o, _)| o.kind == *k));
    let prefix = store.keys().statuses(one_kind);
    let mut changes = store.watch_prefix(prefix, revision + 1);
    let deadline = started + timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let now = verdicts(&statuses);
        display.show(&now, started.elapsed());
        if now.iter().all(Verdict::is_done) {
            display.finish();
            let failed: Vec<ObjectRef> = targets
                .iter()
                .zip(&now)
                .filter(|(_, v)| matches!(v, Verdict::Failed(_) | Verdict::RolledBack(_)))
                .map(|((o, _), _)| o.clone())
                .collect();
            return Ok(if failed.is_empty() {
                Outcome::AllSucceeded
            } else {
                Outcome::SomeFailed(failed)
            });
        }
        tokio::select! {
            change = changes.recv() => match change {
                Some(Ok(WatchEvent::Put(item))) => keep_if_followed(store, &mut statuses, &item),
                Some(Ok(WatchEvent::Relisted { items, .. })) => {
                    for item in &items {
                        keep_if_followed(store, &mut statuses, item);
                    }
                }
                Some(Ok(WatchEvent::Delete { .. })) | Some(Err(_)) => {}
                None => return Err(CliError::Runtime("the store's watch ended".into())),
            },
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let now = verdicts(&statuses);
                display.show(&now, started.elapsed());
                display.finish();
                let pending = targets
                    .iter()
                    .zip(&now)
                    .filter(|(_, v)| !v.is_done())
                    .map(|((o, _), _)| o.clone())
                    .collect();
                return Ok(Outcome::TimedOut(pending));
            }
        }
    }
}

/// Records a status change of a followed object; the key says whose it is, so the statuses of
/// every other object are not decoded.
fn keep_if_followed(
    store: &Store,
    statuses: &mut BTreeMap<ObjectRef, Option<Status>>,
    item: &RawItem,
) {
    let followed = store
        .keys()
        .object_ref_of(&item.key)
        .is_some_and(|object| statuses.contains_key(&object));
    if !followed {
        return;
    }
    if let Ok((object, status)) = store.decode_status_item(item) {
        statuses.insert(object, Some(status));
    }
}

/// One line per object, as people read it, with the time followed so far if any.
pub fn describe(object: &ObjectRef, verdict: &Verdict, elapsed: Option<Duration>) -> String {
    let text = match verdict {
        Verdict::Pending(p) if p.desired > 0 => {
            format!("{} {}/{} healthy", p.phase, p.healthy, p.desired)
        }
        Verdict::Pending(p) => p.phase.clone(),
        Verdict::Succeeded(said) => format!("succeeded: {said}"),
        Verdict::Failed(said) => format!("failed: {said}"),
        Verdict::RolledBack(said) => format!("rolled back: {said}"),
    };
    match elapsed {
        Some(elapsed) => format!("{object}: {text} ({}s)", elapsed.as_secs()),
        None => format!("{object}: {text}"),
    }
}

/// Bars on a terminal; otherwise a line whenever what an object shows changes (its elapsed
/// time aside).
enum Display {
    Bars {
        bars: Vec<(ObjectRef, ProgressBar)>,
        _group: MultiProgress,
    },
    Lines {
        objects: Vec<ObjectRef>,
        last: Vec<Option<Verdict>>,
    },
}

impl Display {
    fn new(targets: &[(ObjectRef, Awaited)]) -> Display {
        let objects: Vec<ObjectRef> = targets.iter().map(|(o, _)| o.clone()).collect();
        // Bars draw on standard error; with either stream redirected, plain lines on stdout.
        if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
            return Display::Lines {
                last: vec![None; objects.len()],
                objects,
            };
        }
        let group = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:<24} [{bar:20}] {pos:>3}/{len:<3} {msg}")
            .expect("the template is valid")
            .progress_chars("=> ");
        let bars = objects
            .into_iter()
            .map(|object| {
                let bar = group.add(ProgressBar::new(0).with_style(style.clone()));
                bar.set_prefix(object.to_string());
                (object, bar)
            })
            .collect();
        Display::Bars {
            bars,
            _group: group,
        }
    }

    fn show(&mut self, verdicts: &[Verdict], elapsed: Duration) {
        match self {
            Display::Bars { bars, .. } => {
                for ((object, bar), verdict) in bars.iter().zip(verdicts) {
                    if bar.is_finished() {
                        continue;
                    }
                    match verdict {
                        Verdict::Pending(p) => {
                            bar.set_length(u64::from(p.desired));
                            bar.set_position(u64::from(p.healthy));
                            bar.set_message(format!("{} {}s", p.phase, elapsed.as_secs()));
                        }
                        done => bar.finish_with_message(
                            describe(object, done, Some(elapsed))
                                .trim_start_matches(&format!("{object}: "))
                                .to_string(),
                        ),
                    }
                }
            }
            Display::Lines { objects, last } => {
                for ((object, seen), verdict) in objects.iter().zip(last.iter_mut()).zip(verdicts) {
                    if seen.as_ref() != Some(verdict) {
                        say!("{}", describe(object, verdict, Some(elapsed)));
                        *seen = Some(verdict.clone());
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Display::Bars { bars, .. } = self {
            for (_, bar) in bars {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use crds::status::{GroupRollout, JobRecord, ReplicaCounts, RollbackRecord, RolloutStatus};
    use crds::Condition;

    fn condition(type_: ConditionType, status: bool, reason: &str) -> Condition {
        Condition {
            type_,
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} said"),
            last_transition_time: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    fn app(generation: i64, ready: bool, job_version: u64) -> Status {
        let mut status = Status {
            observed_generation: Some(generation),
            conditions: vec![condition(ConditionType::Ready, ready, "R")],
            ..Status::default()
        };
        status.workload.replicas = Some(ReplicaCounts {
            desired: 3,
            running: 3,
            healthy: if ready { 3 } else { 1 },
        });
        status.workload.job = Some(JobRecord {
            id: "web".into(),
            version: job_version,
            job_modify_index: 10,
        });
        status
    }

    fn rollout(generation: Option<i64>, job_version: u64, phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            deployment_id: "d".into(),
            phase,
            job_version,
            generation,
            groups: [(
                "app".to_string(),
                GroupRollout {
                    desired: 3,
                    healthy: 2,
                    ..GroupRollout::default()
                },
            )]
            .into(),
            deadline: None,
            description: "Nomad said".into(),
        }
    }

    fn kind_of(v: &Verdict) -> &'static str {
        match v {
            Verdict::Pending(_) => "pending",
            Verdict::Succeeded(_) => "succeeded",
            Verdict::Failed(_) => "failed",
            Verdict::RolledBack(_) => "rolled back",
        }
    }

    #[test]
    fn verdicts_follow_the_rule_table() {
        use RolloutPhase::*;
        let with_rollout = |mut s: Status, r: RolloutStatus| {
            s.workload.rollout = Some(r);
            s
        };
        let refused = {
            let mut s = app(2, true, 1);
            s.conditions
                .push(condition(ConditionType::Invalid, true, "RefusedByNomad"));
            s
        };
        let rolled_back = {
            let mut s = with_rollout(app(2, true, 2), rollout(None, 2, Succeeded));
            s.workload.rollback = Some(RollbackRecord {
                job_fingerprint: "f".into(),
                generation: 2,
                message: "progress deadline".into(),
                retry_token: String::new(),
            });
            s
        };
        let cases: Vec<(&str, Kind, Option<Status>, &str)> = vec![
            ("no status yet", Kind::App, None, "pending"),
            (
                "an older generation observed",
                Kind::App,
                Some(app(1, true, 0)),
                "pending",
            ),
            ("refused", Kind::App, Some(refused), "failed"),
            ("rolled back", Kind::App, Some(rolled_back), "rolled back"),
            (
                "its rollout succeeded",
                Kind::App,
                Some(with_rollout(
                    app(2, true, 1),
                    rollout(Some(2), 1, Succeeded),
                )),
                "succeeded",
            ),
            (
                "its rollout failed",
                Kind::App,
                Some(with_rollout(app(2, false, 1), rollout(Some(2), 1, Failed))),
                "failed",
            ),
            (
                "its rollout was superseded",
                Kind::App,
                Some(with_rollout(
                    app(2, false, 1),
                    rollout(Some(2), 1, Superseded),
                )),
                "failed",
            ),
            (
                "its rollout is going though the old set is Ready",
                Kind::App,
                Some(with_rollout(
                    app(2, true, 1),
                    rollout(Some(2), 1, Progressing),
                )),
                "pending",
            ),
            (
                "the job moved, its deployment not seen yet",
                Kind::App,
                Some(with_rollout(
                    app(2, true, 1),
                    rollout(Some(1), 0, Succeeded),
                )),
                "pending",
            ),
            (
                "a new App before its first deployment",
                Kind::App,
                Some(app(1, true, 0)),
                "pending",
            ),
            (
                "the job did not change",
                Kind::App,
                Some(with_rollout(
                    app(3, true, 1),
                    rollout(Some(2), 1, Succeeded),
                )),
                "succeeded",
            ),
            (
                "its rollout rolled back, the revert's deployment shown already",
                Kind::App,
                Some({
                    let mut s = with_rollout(app(2, true, 1), rollout(None, 2, Progressing));
                    s.workload.past_rollouts = vec![crds::status::PastRollout {
                        deployment_id: "d1".into(),
                        job_version: 1,
                        generation: Some(2),
                        phase: RolledBack,
                    }];
                    s
                }),
                "rolled back",
            ),
            ("a ready Pub", Kind::Pub, Some(app(2, true, 1)), "succeeded"),
            (
                "a Pub not ready",
                Kind::Pub,
                Some(app(2, false, 1)),
                "pending",
            ),
        ];
        for (name, kind, status, want) in cases {
            let got = verdict(kind, 2, status.as_ref());
            assert_eq!(kind_of(&got), want, "{name}: {got:?}");
        }
    }

    #[test]
    fn a_git_source_is_done_when_synced_or_stuck_on_its_commit() {
        let source = |ok: bool, reason: &str| Status {
            observed_generation: Some(1),
            conditions: vec![condition(ConditionType::Synced, ok, reason)],
            ..Status::default()
        };
        let cases = [
            (source(true, "Applied"), "succeeded"),
            (source(false, "InvalidManifests"), "failed"),
            (source(false, "OwnershipConflict"), "failed"),
            (source(false, "ApplyFailed"), "pending"),
        ];
        for (status, want) in cases {
            assert_eq!(kind_of(&verdict(Kind::GitSource, 1, Some(&status))), want);
        }
    }

    #[test]
    fn progress_comes_from_the_rollout_of_the_generation() {
        let mut status = app(2, true, 1);
        status.workload.rollout = Some(rollout(Some(2), 1, RolloutPhase::AwaitingPromotion));
        let got = verdict(Kind::App, 2, Some(&status));
        let Verdict::Pending(progress) = &got else {
            panic!("{got:?}")
        };
        assert_eq!((progress.healthy, progress.desired), (2, 3));
        let object = ObjectRef::new(Kind::App, "default", "web");
        assert_eq!(
            describe(&object, &got, Some(Duration::from_secs(7))),
            "app/web: AwaitingPromotion (nomarch rollout promote) 2/3 healthy (7s)"
        );
    }
}
