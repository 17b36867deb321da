//! Tables, YAML and JSON for people and scripts.

use super::say;
use chrono::{DateTime, Utc};
use crds::status::ReplicaCounts;
use crds::Resource;

/// One table row: (header, cell) pairs in column order.
pub type Row = Vec<(&'static str, String)>;

pub fn print_table(rows: &[Row]) {
    for line in table_lines(rows) {
        say!("{line}");
    }
}

/// The table as lines: the header, then one line per row, columns padded to their widest cell.
pub fn table_lines(rows: &[Row]) -> Vec<String> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].1.chars().count())
                .chain([first[i].0.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("   ").trim_end().to_string()
    };
    let mut lines = vec![line(first.iter().map(|(h, _)| *h).collect())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(|(_, c)| c.as_str()).collect())),
    );
    lines
}

/// `-` until the controller has written a Ready condition.
/// The condition `get` shows: `Synced` for git sources, `Ready` for what runs.
fn ready(resource: &Resource) -> (&'static str, String) {
    let (header, condition) = resource.shown_condition();
    let value = resource
        .status()
        .and_then(|s| s.condition(condition))
        .map_or("-".to_string(), |c| c.status.to_string());
    (header, value)
}

/// A commit as people quote it.
fn short_commit(commit: Option<&str>) -> String {
    commit.map_or("-".into(), |c| c.chars().take(12).collect())
}

pub fn age(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(since) = since else {
        return "-".into();
    };
    let seconds = (now - since).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// What `get` shows per kind; `wide` adds the spec's key fields and bookkeeping.
pub fn summary_columns(resource: &Resource, wide: bool, with_namespace: bool) -> Row {
    let meta = resource.metadata();
    let mut row: Row = Vec::new();
    if with_namespace {
        row.push(("NAMESPACE", meta.namespace.clone()));
    }
    row.push(("NAME", meta.name.clone()));
    row.extend(resource.columns());
    row.push(ready(resource));
    row.push(("STATE", reconcilers::operator::state(resource).to_string()));
    row.push(("AGE", age(meta.creation_timestamp, Utc::now())));
    if wide {
        row.push(resource.wide_column());
        if let Resource::GitSource(g) = resource {
            let applied = g
                .status
                .as_ref()
                .and_then(|s| s.git.last_applied_commit.as_deref());
            row.push(("APPLIED", short_commit(applied)));
        } else {
            let source = match reconcilers::source_sync::Owner::of(resource) {
                reconcilers::source_sync::Owner::Source(s) => format!("{}/{}", s.namespace, s.name),
                reconcilers::source_sync::Owner::Hand => "-".into(),
            };
            row.push(("SOURCE", source));
            let commit = meta.annotations.get(reconcilers::meta::COMMIT);
            row.push(("COMMIT", short_commit(commit.map(String::as_str))));
        }
        if matches!(resource, Resource::App(_) | Resource::Pub(_)) {
            let workload = resource.status().map(|s| &s.workload);
            let replicas = workload.and_then(|w| w.replicas);
            let count = |field: fn(&ReplicaCounts) -> u32| {
                replicas.map_or("-".into(), |r| field(&r).to_string())
            };
            row.push(("RUNNING", count(|r| r.running)));
            row.push(("HEALTHY", count(|r| r.healthy)));
            let job_text = workload
                .and_then(|w| w.job.as_ref())
                .map(|j| format!("{} v{} @{}", j.id, j.version, j.job_modify_index))
                .unwrap_or_else(|| "-".into());
            row.push(("JOB", job_text));
        }
        row.push(("GENERATION", meta.generation.to_string()));
        let observed = resource
            .status()
            .and_then(|s| s.observed_generation)
            .map_or("-".into(), |g| g.to_string());
        row.push(("OBSERVED", observed));
        row.push(("RESOURCEVERSION", meta.resource_version.clone()));
    }
    row
}

pub fn render_yaml(objects: &[Resource], single: bool) -> String {
    let render = |r: &Resource| serde_saphyr::to_string(r).expect("objects serialize to YAML");
    if single {
        return objects.first().map(render).unwrap_or_default();
    }
    objects
        .iter()
        .map(|r| format!("---\n{}", render(r)))
        .collect()
}

pub fn render_json(objects: &[Resource], single: bool) -> String {
    let value = if single {
        objects.first().map(Resource::to_json).unwrap_or_default()
    } else {
        serde_json::json!({"kind": "List", "items": objects.iter().map(Resource::to_json).collect::<Vec<_>>()})
    };
    serde_json::to_string_pretty(&value).expect("JSON renders")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        let ago = |s: i64| age(Some(now - chrono::Duration::seconds(s)), now);
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(600), "10m");
        assert_eq!(ago(3 * 3600), "3h");
        assert_eq!(ago(3 * 86400), "3d");
        assert_eq!(age(None, now), "-");
    }
}
