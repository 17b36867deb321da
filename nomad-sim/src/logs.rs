//! Task logs, as a task's log collector writes them into the allocation directory
//! (`alloc/logs/<task>.<stdout|stderr>.<index>`, client/logmon), made from the task's runs: the
//! same runs give the same bytes, so a log read twice, or from an offset, agrees with itself.
//!
//! What a simulated task prints: on standard error, a line when a run starts and one when it
//! ends with its exit code (what a crash loop looks like); on standard output, a line at the
//! start and one every [`LINE_EVERY`] of simulated time while it runs. Each line starts with
//! its simulated time (RFC 3339, milliseconds), so lines of several instances merge in order.
//! Restarts append to the same file, as logmon keeps it across restarts. Rotation
//! (`max_file_size`, 10 MB by default) is not simulated: everything is in file index 0.

use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::model::TaskRun;

/// How often a running task prints a line on standard output (simulated time).
pub const LINE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogType {
    Stdout,
    Stderr,
}

impl LogType {
    /// command/agent/fs_endpoint.go `Logs`: `type` is `stdout` or `stderr`.
    pub fn parse(text: &str) -> Option<LogType> {
        match text {
            "stdout" => Some(LogType::Stdout),
            "stderr" => Some(LogType::Stderr),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Stdout => "stdout",
            LogType::Stderr => "stderr",
        }
    }
}

/// The file a frame says its data came from, relative to the allocation directory.
pub fn file_name(task: &str, log_type: LogType) -> String {
    format!("alloc/logs/{task}.{}.0", log_type.as_str())
}

fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The whole log file of one task and stream at `now`.
pub fn content(
    task: &str,
    image: &str,
    runs: &[TaskRun],
    log_type: LogType,
    now: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    let every = chrono::Duration::from_std(LINE_EVERY).expect("a second fits");
    let mut served = 0u64;
    for (number, run) in runs.iter().enumerate() {
        let end = run.ended.map_or(now, |(at, _)| at.min(now));
        if run.started > now {
            break;
        }
        match log_type {
            LogType::Stderr => {
                let _ = writeln!(
                    out,
                    "{} {task} starting {image} (run {})",
                    stamp(run.started),
                    number + 1
                );
                if let Some((at, code)) = run.ended.filter(|(at, _)| *at <= now) {
                    let _ = writeln!(out, "{} {task} exited with code {code}", stamp(at));
                }
            }
            LogType::Stdout => {
                let _ = writeln!(out, "{} {task} listening", stamp(run.started));
                let mut at = run.started + every;
                while at <= end {
                    served += 1;
                    let _ = writeln!(out, "{} {task} request {served} served", stamp(at));
                    at += every;
                }
            }
        }
    }
    out
}

/// Where a read starts: command/agent/fs_endpoint.go `Logs` and client/fs_endpoint.go
/// `logsImpl`/`findClosest`: from `offset` bytes past the start, or `offset` bytes before the
/// end (`origin=end`), within the file.
pub fn start_at(size: usize, origin_end: bool, offset: i64) -> usize {
    let offset = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
    if origin_end {
        size.saturating_sub(offset)
    } else {
        offset.min(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_log_grows_with_time_and_keeps_what_it_wrote() {
        let runs = vec![
            TaskRun {
                started: at(0),
                ended: Some((at(2), 1)),
            },
            TaskRun {
                started: at(5),
                ended: None,
            },
        ];
        let early = content("web", "nginx:1", &runs, LogType::Stdout, at(6));
        let later = content("web", "nginx:1", &runs, LogType::Stdout, at(9));
        assert!(later.starts_with(&early), "appends only");
        let lines: Vec<&str> = later.lines().collect();
        // Run 1: 0s to 2s, run 2: 5s to now (9s); a line at each start and every second.
        assert_eq!(lines.len(), 3 + 5, "{later}");
        assert!(lines[0].ends_with("web listening"));
        assert!(lines[1].ends_with("web request 1 served"));
        assert!(
            lines[7].ends_with("web request 6 served"),
            "counts across restarts"
        );
        let stderr = content("web", "nginx:1", &runs, LogType::Stderr, at(9));
        let stderr: Vec<&str> = stderr.lines().collect();
        assert_eq!(stderr.len(), 3);
        assert!(stderr[1].ends_with("web exited with code 1"));
        assert!(stderr[2].ends_with("starting nginx:1 (run 2)"));
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(sorted, lines, "the time stamps order the lines");
    }

    #[test]
    fn reads_start_at_the_offset_from_either_end_within_the_file() {
        assert_eq!(start_at(100, false, 10), 10);
        assert_eq!(start_at(100, false, 500), 100);
        assert_eq!(start_at(100, true, 10), 90);
        assert_eq!(start_at(100, true, 500), 0);
        assert_eq!(start_at(100, true, 0), 100);
    }
}
