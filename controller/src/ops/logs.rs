//! An object's logs, for `nomarch logs KIND/NAME`, the API and the dashboard: what its
//! instances print, read through Nomad's client filesystem API ([`crate::clients::logs`]).
//!
//! Which instances ([`Selection`]): those running (or, when none runs, the newest, so a crash
//! loop's last words show), every one Nomad still has (`--all`), or one (`--instance ID`,
//! a prefix). Lines of several instances are merged in order of the time stamp a line starts
//! with; a line without one stays after the line before it. `tail` keeps each instance's last
//! lines, `since` drops lines stamped before it. [`follow`] sends new lines as they are
//! written, and picks up instances that start meanwhile (a replacement, a rollout, the next
//! cron run) as the job's allocations change, until its receiver goes away.
//!
//! The merging, tails and time filter are pure ([`merge`], [`LogLines`]); the rest is I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::{Kind, Resource};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::clients::logs::LogRequest;
use crate::clients::nomad_types::AllocStub;
use crate::clients::{ApiError, NomadClient, QueryOptions};

/// How often a follow looks for instances that started meanwhile.
const NEW_INSTANCE_CHECK: Duration = Duration::from_secs(1);
/// How long an instance that ended is still followed, for its last lines.
const ENDED_GRACE: Duration = Duration::from_secs(3);

/// Why logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The request does not fit the object (no task named for a NomadJob, a git source).
    #[error("{0}")]
    Usage(String),
    /// No such instance, or none at all.
    #[error("{0}")]
    NotFound(String),
    #[error("Nomad: {0}")]
    Nomad(#[from] ApiError),
}

/// One line and the instance (allocation ID) it came from.
pub type Line = (String, String);

/// Which instances to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Those running; the newest when none runs.
    Running,
    /// Every instance Nomad still has.
    All,
    /// The one whose ID starts with this.
    One(String),
}

/// What to read, as the command line (or the API's query) said it.
#[derive(Clone, Debug)]
pub struct LogsArgs {
    pub selection: Selection,
    pub follow: bool,
    pub since: Option<Duration>,
    pub tail: Option<usize>,
    pub stderr: bool,
    pub task: Option<String>,
}

/// The instances to read, newest last.
pub fn choose(allocs: &[AllocStub], selection: &Selection) -> Result<Vec<AllocStub>, String> {
    let mut sorted: Vec<AllocStub> = allocs.to_vec();
    sorted.sort_by_key(|a| a.create_index);
    match selection {
        Selection::All => Ok(sorted),
        Selection::Running => {
            let running: Vec<AllocStub> = sorted
                .iter()
                .filter(|a| a.desired_status == "run" && a.client_status == "running")
                .cloned()
                .collect();
            Ok(if running.is_empty() {
                sorted.last().cloned().into_iter().collect()
            } else {
                running
            })
        }
        Selection::One(prefix) => {
            let found: Vec<AllocStub> = sorted
                .into_iter()
                .filter(|a| a.id.starts_with(prefix.as_str()))
                .collect();
            match found.len() {
                1 => Ok(found),
                0 => Err(format!("no instance's ID starts with {prefix}")),
                n => Err(format!(
                    "{n} instances' IDs start with {prefix}; give more of it"
                )),
            }
        }
    }
}

/// The time stamp a log line starts with (RFC 3339), if it has one.
pub fn leading_time(line: &str) -> Option<DateTime<Utc>> {
    let word = line.split_whitespace().next()?;
    DateTime::parse_from_rfc3339(word.trim_matches(['[', ']']))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One instance's lines, with the time each belongs to: its own stamp, or the one of the line
/// before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLines {
    pub instance: String,
    pub lines: Vec<(Option<DateTime<Utc>>, String)>,
}

impl LogLines {
    pub fn new(instance: &str, text: &str) -> LogLines {
        let mut current = None;
        let lines = text
            .lines()
            .map(|line| {
                if let Some(time) = leading_time(line) {
                    current = Some(time);
                }
                (current, line.to_string())
            })
            .collect();
        LogLines {
            instance: instance.to_string(),
            lines,
        }
    }

    /// Drops lines that belong to a time before `cutoff`.
    pub fn since(mut self, cutoff: DateTime<Utc>) -> LogLines {
        self.lines
            .retain(|(time, _)| time.is_none_or(|t| t >= cutoff));
        self
    }

    /// Keeps the last `n` lines.
    pub fn tail(mut self, n: usize) -> LogLines {
        let excess = self.lines.len().saturating_sub(n);
        self.lines.drain(..excess);
        self
    }
}

/// Every instance's lines in one order: by time, lines without any time first, equal times in
/// the order of the instances given; each instance's own order is kept.
pub fn merge(instances: &[LogLines]) -> Vec<(String, String)> {
    // Sort keys: the line's time, then which instance, then where in it.
    type Key = (Option<DateTime<Utc>>, usize, usize);
    let mut all: Vec<(Key, &LogLines, &str)> = instances
        .iter()
        .enumerate()
        .flat_map(|(i, instance)| {
            instance
                .lines
                .iter()
                .enumerate()
                .map(move |(n, (time, line))| ((*time, i, n), instance, line.as_str()))
        })
        .collect();
    all.sort_by_key(|(key, _, _)| *key);
    all.into_iter()
        .map(|(_, instance, line)| (instance.instance.clone(), line.to_string()))
        .collect()
}

/// The first eight characters of an allocation ID, as Nomad's CLI shows them.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// The Nomad job(s) whose allocations are the object's instances.
async fn instances(nomad: &NomadClient, resource: &Resource) -> Result<Vec<AllocStub>, ApiError> {
    let object = resource.object_ref();
    let id = reconcilers::meta::job_id(&object);
    let namespace = &object.namespace;
    let mut allocs = nomad
        .job_allocations(namespace, &id, QueryOptions::default())
        .await?
        .value;
    if object.kind == Kind::CronJob {
        // Runs are the periodic job's children: `<id>/periodic-<time>`.
        let prefix = format!("{id}/periodic-");
        let children = nomad
            .jobs(QueryOptions::namespace(namespace).param("prefix", &prefix))
            .await?
            .value;
        for child in children {
            allocs.extend(
                nomad
                    .job_allocations(namespace, &child.id, QueryOptions::default())
                    .await?
                    .value,
            );
        }
    }
    Ok(allocs)
}

/// The task whose log is read when none is named.
pub fn default_task(kind: Kind) -> Result<&'static str, LogsError> {
    crds::kinds::default_task(kind).map_err(|why| LogsError::Usage(why.into()))
}

/// The whole log of one instance, and the offset past it.
async fn read_all(nomad: &NomadClient, request: &LogRequest) -> Result<(String, u64), ApiError> {
    let mut stream = Box::pin(nomad.logs(request).await?);
    let mut bytes = Vec::new();
    let mut end = request.offset;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes.extend_from_slice(&chunk.data);
        end = chunk.end.max(end);
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), end))
}

/// What was read, and where each instance's log ended (a [`follow`] goes on from there).
pub struct Read {
    pub lines: Vec<Line>,
    pub offsets: BTreeMap<String, u64>,
    /// Whether lines come from several instances (then people want each line's instance).
    pub several: bool,
}

/// What the object's chosen instances have written so far, merged.
pub async fn read(
    nomad: &NomadClient,
    resource: &Resource,
    args: &LogsArgs,
) -> Result<Read, LogsError> {
    let object = resource.object_ref();
    let task = task_of(resource, args)?;
    let allocs = instances(nomad, resource).await?;
    if allocs.is_empty() && !args.follow {
        return Err(LogsError::NotFound(format!(
            "{object} has no instances in Nomad (nothing was placed, or its job is gone)"
        )));
    }
    let chosen = choose(&allocs, &args.selection).map_err(LogsError::NotFound)?;
    let cutoff = args
        .since
        .and_then(|since| chrono::Duration::from_std(since).ok())
        .map(|since| Utc::now() - since);
    let mut read = Vec::new();
    let mut offsets: BTreeMap<String, u64> = BTreeMap::new();
    for alloc in &chosen {
        match read_all(nomad, &request(resource, &task, args, alloc, 0, false)).await {
            Ok((text, end)) => {
                offsets.insert(alloc.id.clone(), end);
                let mut lines = LogLines::new(&alloc.id, &text);
                if let Some(cutoff) = cutoff {
                    lines = lines.since(cutoff);
                }
                if let Some(n) = args.tail {
                    lines = lines.tail(n);
                }
                read.push(lines);
            }
            // Not started yet: nothing to show; a follow picks it up once it runs.
            Err(ApiError::NotFound(_)) if args.follow => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Read {
        lines: merge(&read),
        offsets,
        several: !matches!(args.selection, Selection::One(_)),
    })
}

fn task_of(resource: &Resource, args: &LogsArgs) -> Result<String, LogsError> {
    match &args.task {
        Some(task) => Ok(task.clone()),
        None => Ok(default_task(resource.kind())?.to_string()),
    }
}

fn request(
    resource: &Resource,
    task: &str,
    args: &LogsArgs,
    alloc: &AllocStub,
    offset: u64,
    follow: bool,
) -> LogRequest {
    LogRequest {
        alloc_id: alloc.id.clone(),
        namespace: resource.metadata().namespace.clone(),
        task: task.to_string(),
        stderr: args.stderr,
        follow,
        offset,
    }
}

/// Follows one instance's log, sending what arrives (or why it could not be read) tagged with
/// its allocation ID.
fn spawn_follow(
    nomad: NomadClient,
    request: LogRequest,
    sender: mpsc::Sender<(String, Result<Vec<u8>, ApiError>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = request.alloc_id.clone();
        let stream = match nomad.logs(&request).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = sender.send((id, Err(e))).await;
                return;
            }
        };
        let mut stream = Box::pin(stream);
        while let Some(chunk) = stream.next().await {
            if sender
                .send((id.clone(), chunk.map(|c| c.data)))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// Follows the instances read so far from where the read ended (`offsets`), and every instance
/// that starts later (from its start), sending each whole line to `sink`; returns once `sink`
/// is closed (its reader went away), or when Nomad fails for good.
pub async fn follow(
    nomad: &NomadClient,
    resource: &Resource,
    args: &LogsArgs,
    mut offsets: BTreeMap<String, u64>,
    sink: mpsc::Sender<Line>,
) -> Result<(), LogsError> {
    let task = task_of(resource, args)?;
    let (sender, mut receiver) = mpsc::channel::<(String, Result<Vec<u8>, ApiError>)>(64);
    let mut followed: BTreeSet<String> = BTreeSet::new();
    let mut ended: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    let mut tasks: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut partial: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut check = tokio::time::interval(NEW_INSTANCE_CHECK);
    let outcome = loop {
        tokio::select! {
            _ = sink.closed() => break Ok(()),
            _ = check.tick() => {
                let allocs = match instances(nomad, resource).await {
                    Ok(allocs) => allocs,
                    // Nomad away for a moment: the streams open carry on, look again later.
                    Err(e) if e.is_transient() => continue,
                    Err(e) => break Err(e.into()),
                };
                let wanted = match &args.selection {
                    Selection::One(_) => choose(&allocs, &args.selection).unwrap_or_default(),
                    _ => allocs.iter().filter(|a| a.client_status == "running" || offsets.contains_key(&a.id)).cloned().collect(),
                };
                let new: Vec<&AllocStub> = wanted.iter().filter(|a| !followed.contains(&a.id)).collect();
                for alloc in new {
                    let offset = offsets.get(&alloc.id).copied().unwrap_or(0);
                    offsets.insert(alloc.id.clone(), offset);
                    followed.insert(alloc.id.clone());
                    let request = request(resource, &task, args, alloc, offset, true);
                    tasks.insert(alloc.id.clone(), spawn_follow(nomad.clone(), request, sender.clone()));
                }
                // An instance that ended is followed a little longer, for its last lines.
                let now = tokio::time::Instant::now();
                for alloc in allocs.iter().filter(|a| followed.contains(&a.id)) {
                    let over = matches!(alloc.client_status.as_str(), "complete" | "failed" | "lost");
                    if over {
                        ended.entry(alloc.id.clone()).or_insert(now);
                    }
                }
                ended.retain(|id, since| {
                    if now.duration_since(*since) < ENDED_GRACE {
                        return true;
                    }
                    if let Some(task) = tasks.remove(id) {
                        task.abort();
                    }
                    false
                });
            }
            Some((id, item)) = receiver.recv() => match item {
                Ok(data) => {
                    // Where to pick up should the stream have to be opened again.
                    *offsets.entry(id.clone()).or_default() += data.len() as u64;
                    let buffer = partial.entry(id.clone()).or_default();
                    buffer.extend_from_slice(&data);
                    let mut gone = false;
                    while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=newline).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        if sink.send((id.clone(), text)).await.is_err() {
                            gone = true;
                            break;
                        }
                    }
                    if gone {
                        break Ok(());
                    }
                }
                // Not started yet, or gone: look again at the next check.
                Err(_) => {
                    followed.remove(&id);
                }
            },
        }
    };
    for task in tasks.into_values() {
        task.abort();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, index: u64, client: &str) -> AllocStub {
        serde_json::from_value(serde_json::json!({
            "ID": id, "JobID": "web", "ClientStatus": client, "DesiredStatus": "run", "CreateIndex": index
        }))
        .unwrap()
    }

    #[test]
    fn running_instances_or_else_the_newest() {
        let allocs = [
            alloc("aaa", 1, "failed"),
            alloc("bbb", 2, "running"),
            alloc("ccc", 3, "running"),
        ];
        let ids = |chosen: Vec<AllocStub>| chosen.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(
            ids(choose(&allocs, &Selection::Running).unwrap()),
            ["bbb", "ccc"]
        );
        assert_eq!(
            ids(choose(&allocs, &Selection::All).unwrap()),
            ["aaa", "bbb", "ccc"]
        );
        let crashed = [alloc("aaa", 1, "failed"), alloc("bbb", 2, "failed")];
        assert_eq!(ids(choose(&crashed, &Selection::Running).unwrap()), ["bbb"]);
        assert_eq!(
            ids(choose(&allocs, &Selection::One("cc".into())).unwrap()),
            ["ccc"]
        );
        assert!(choose(&allocs, &Selection::One("zz".into())).is_err());
        let twins = [alloc("abc1", 1, "running"), alloc("abc2", 2, "running")];
        assert!(choose(&twins, &Selection::One("abc".into()))
            .unwrap_err()
            .contains("2 instances"));
    }

    /// Lines merge by their time stamps; a line without one stays after the line before it.
    #[test]
    fn lines_of_several_instances_merge_in_time_order() {
        let a = LogLines::new(
            "a",
            "2026-12-06T10:00:00.000Z a1\n  continued\n2026-12-06T10:00:02.000Z a2\n",
        );
        let b = LogLines::new(
            "b",
            "2026-12-06T10:00:01.000Z b1\n2026-12-06T10:00:03Z b2\n",
        );
        let merged: Vec<String> = merge(&[a.clone(), b.clone()])
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            merged,
            [
                "2026-12-06T10:00:00.000Z a1",
                "  continued",
                "2026-12-06T10:00:01.000Z b1",
                "2026-12-06T10:00:02.000Z a2",
                "2026-12-06T10:00:03Z b2"
            ]
        );
        let cutoff = DateTime::parse_from_rfc3339("2026-12-06T10:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let since: Vec<String> = a
            .clone()
            .since(cutoff)
            .lines
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            since,
            ["2026-12-06T10:00:02.000Z a2"],
            "the continuation goes with its line"
        );
        let tail: Vec<String> = a.tail(1).lines.into_iter().map(|(_, l)| l).collect();
        assert_eq!(tail, ["2026-12-06T10:00:02.000Z a2"]);
        let untimed = LogLines::new("c", "plain\nlines\n");
        assert_eq!(merge(&[untimed]).len(), 2);
    }
}
