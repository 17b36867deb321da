//! The dashboard's pages as HTML, from what the handlers read: functions into `maud` markup
//! (which escapes every value it is given), pure but for the time each page is stamped with
//! (the script ignores events older than its page). No inline script or style: the page's one
//! script and one stylesheet are files (`assets/`), so the Content-Security-Policy can refuse
//! everything inline.

use chrono::{DateTime, Utc};
use crds::status::RolloutPhase;
use crds::{Kind, ObjectRef, Resource, Status};
use maud::{html, Markup, DOCTYPE};

use super::summary::{Health, HubRow, Overview, Verdict};
use crate::clients::nomad_types::AllocStub;
use crate::store::{Event, Role, TokenRecord};

/// Who is looking, and what their forms must carry.
pub struct Viewer<'a> {
    pub token: &'a TokenRecord,
    pub csrf: &'a str,
}

impl Viewer<'_> {
    pub fn may(&self, role: Role) -> bool {
        self.token.role >= role
    }

    /// Whether the token sees every namespace (the hubs page is cluster-wide).
    pub fn sees_all(&self) -> bool {
        self.token.namespace.is_none()
    }
}

pub fn object_path(object: &ObjectRef) -> String {
    format!(
        "/ui/{}/{}/{}",
        object.kind.singular(),
        object.namespace,
        object.name
    )
}

/// Every page: the menu, who is signed in, the content, and a live region the script fills
/// from the event stream named by `stream` (none on pages that do not follow events).
pub fn layout(viewer: Option<&Viewer>, title: &str, stream: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · nomarch" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body data-stream=[stream] data-now=(Utc::now().to_rfc3339()) {
                a.skip href="#content" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/" { "nomarch" }
                        @if let Some(viewer) = viewer {
                            ul {
                                li { a href="/" { "Overview" } }
                                @for kind in Kind::ALL {
                                    li { a href={ "/ui/" (kind.singular()) } { (kind.title()) } }
                                }
                                @if viewer.sees_all() {
                                    li { a href="/ui/hubs" { "Hubs" } }
                                }
                            }
                            form.signout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                span.who {
                                    (viewer.token.name) " · " (viewer.token.role.as_str())
                                    " · " (viewer.token.namespace.as_deref().unwrap_or("all namespaces"))
                                }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="content" tabindex="-1" {
                    h1 { (title) }
                    div id="live-body" { (body) }
                    @if stream.is_some() {
                        section.live aria-labelledby="live" {
                            h2 id="live" { "Live" }
                            ol id="live-events" aria-live="polite" {}
                        }
                    }
                }
            }
        }
    }
}

pub fn sign_in(message: Option<&str>) -> Markup {
    layout(
        None,
        "Sign in",
        None,
        html! {
            @if let Some(message) = message {
                p.error role="alert" { (message) }
            }
            form.signin method="post" action="/login" {
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="off" required
                    placeholder="nomarch_…";
                p.hint { "Made with " code { "nomarch token create NAME --role viewer|operator|admin" } "." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn badge(verdict: &Verdict) -> Markup {
    let class = format!("badge {}", verdict.health.as_str().to_lowercase());
    html! {
        span class=(class) title=(verdict.message) {
            span aria-hidden="true" { (verdict.health.sign()) " " }
            (verdict.health.as_str())
            @if verdict.health != Health::Healthy && verdict.health != Health::Pending {
                " · " (verdict.reason)
            }
        }
    }
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

pub fn overview(viewer: &Viewer, overview: &Overview) -> Markup {
    let body = html! {
        section aria-labelledby="kinds" {
            h2 id="kinds" { "Objects" }
            table.counts {
                thead { tr {
                    th scope="col" { "Kind" }
                    th scope="col" { "Total" }
                    @for health in Health::ALL { th scope="col" { (health.as_str()) } }
                } }
                tbody {
                    @for kind in Kind::ALL {
                        @let counts = overview.counts.get(&kind);
                        @let total: usize = counts.map_or(0, |c| c.values().sum());
                        tr {
                            th scope="row" { a href={ "/ui/" (kind.singular()) } { (kind.title()) } }
                            td { (total) }
                            @for health in Health::ALL {
                                @let n = counts.and_then(|c| c.get(&health)).copied().unwrap_or(0);
                                td {
                                    @if n > 0 {
                                        a href={ "/ui/" (kind.singular()) "?health=" (health.as_str()) } { (n) }
                                    } @else { "0" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="failing" {
            h2 id="failing" { "Failing now (" (overview.failing_total) ")" }
            @if overview.failing.is_empty() {
                p { "Nothing is failing." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Object" } th scope="col" { "Health" } th scope="col" { "Why" } } }
                    tbody {
                        @for (object, verdict) in &overview.failing {
                            tr {
                                td { a href=(object_path(object)) { (object.to_string()) " (" (object.namespace) ")" } }
                                td { (badge(verdict)) }
                                td { (verdict.message) }
                            }
                        }
                    }
                }
                @if overview.failing_total > overview.failing.len() {
                    p { "…and " (overview.failing_total - overview.failing.len()) " more: see the lists." }
                }
            }
        }
        section aria-labelledby="sources" {
            h2 id="sources" { "Git sources" }
            @if overview.sources.is_empty() {
                p { "No git sources." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Source" } th scope="col" { "Repository" } th scope="col" { "Applied commit" } th scope="col" { "Last error" } } }
                    tbody {
                        @for source in &overview.sources {
                            tr {
                                td { a href=(object_path(&source.object)) { (source.object.namespace) "/" (source.object.name) } }
                                td { (source.repository) " (" (source.branch) ")" }
                                td { code { (source.applied_commit.as_deref().map_or("-", |c| &c[..c.len().min(12)])) } }
                                td { (source.error.as_deref().unwrap_or("-")) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(
        Some(viewer),
        "Overview",
        Some("/api/v1/events/stream"),
        body,
    )
}

/// One row of a list page.
pub struct Row {
    pub resource: Resource,
    pub status: Option<Status>,
    pub verdict: Verdict,
}

pub struct ListPage<'a> {
    pub kind: Kind,
    pub rows: &'a [Row],
    /// How many matched in all (rows are one page of them).
    pub matched: usize,
    pub page: usize,
    pub pages: usize,
    pub search: &'a str,
    pub labels: &'a str,
    pub health: &'a str,
    pub error: Option<&'a str>,
    pub now: DateTime<Utc>,
}

fn ready_text(status: Option<&Status>) -> String {
    status
        .and_then(|s| s.workload.replicas.as_ref())
        .map_or("-".to_string(), |r| format!("{}/{}", r.healthy, r.desired))
}

pub fn list(viewer: &Viewer, page: &ListPage) -> Markup {
    let kind = page.kind.singular();
    let query = |number: usize| {
        format!(
            "/ui/{kind}?q={}&l={}&health={}&page={number}",
            urlencode(page.search),
            urlencode(page.labels),
            urlencode(page.health)
        )
    };
    let body = html! {
        form.filter method="get" action={ "/ui/" (kind) } role="search" {
            label { "Search " input type="search" name="q" value=(page.search) placeholder="name or namespace"; }
            label { "Labels " input type="text" name="l" value=(page.labels) placeholder="tier=web,!legacy"; }
            label { "Health "
                select name="health" {
                    option value="" selected[page.health.is_empty()] { "any" }
                    @for health in Health::ALL {
                        option value=(health.as_str()) selected[page.health.eq_ignore_ascii_case(health.as_str())] { (health.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(error) = page.error {
            p.error role="alert" { (error) }
        }
        p.count { (page.matched) " " (page.kind.title().to_lowercase()) }
        table.objects {
            thead { tr {
                th scope="col" { "Namespace" }
                th scope="col" { "Name" }
                th scope="col" { "Health" }
                th scope="col" { "State" }
                th scope="col" { "Ready" }
                th scope="col" { "Created" }
            } }
            tbody {
                @for row in page.rows {
                    @let meta = row.resource.metadata();
                    tr {
                        td { (meta.namespace) }
                        td { a href=(object_path(&row.resource.object_ref())) { (meta.name) } }
                        td { (badge(&row.verdict)) }
                        td { (reconcilers::operator::state_with(&row.resource, row.status.as_ref())) }
                        td { (ready_text(row.status.as_ref())) }
                        td { (meta.creation_timestamp.map_or("-".to_string(), |t| ago(page.now, t))) }
                    }
                }
            }
        }
        @if page.pages > 1 {
            nav.pages aria-label="Pages" {
                @if page.page > 1 { a rel="prev" href=(query(page.page - 1)) { "← Previous" } }
                span { "Page " (page.page) " of " (page.pages) }
                @if page.page < page.pages { a rel="next" href=(query(page.page + 1)) { "Next →" } }
            }
        }
    };
    let stream = format!("/api/v1/events/stream?kind={kind}");
    layout(Some(viewer), page.kind.title(), Some(&stream), body)
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An act a button offers: its name, what the button says, what it will do, and the role.
pub struct Offer {
    pub act: &'static str,
    pub label: &'static str,
    pub what: String,
    pub needs: Role,
}

/// The acts that apply to this object now, each with what it will do.
pub fn offers(resource: &Resource) -> Vec<Offer> {
    let object = resource.object_ref();
    let suspended = reconcilers::operator::is_suspended(resource.metadata());
    let mut offers = Vec::new();
    if !suspended {
        offers.push(Offer {
            act: "reconcile",
            label: "Reconcile now",
            what: format!("The controller looks at {object} again now, as if it had changed."),
            needs: Role::Operator,
        });
        offers.push(Offer {
            act: "suspend",
            label: "Suspend",
            what: format!("nomarch stops changing {object}: no drift revert, no healing, no re-pin. What runs keeps running."),
            needs: Role::Operator,
        });
    } else {
        offers.push(Offer {
            act: "resume",
            label: "Resume",
            what: format!("nomarch reconciles {object} again, reverting whatever drifted while it was suspended."),
            needs: Role::Operator,
        });
    }
    let stopped = resource.stopped();
    match stopped {
        Some(false) => offers.push(Offer {
            act: "stop",
            label: "Stop",
            what: format!("{object}'s Nomad job is registered stopped (spec.stopped: true): every instance stops, nothing is healed or moved, until it is started."),
            needs: Role::Operator,
        }),
        Some(true) => offers.push(Offer {
            act: "start",
            label: "Start",
            what: format!("{object}'s Nomad job runs again (spec.stopped: false)."),
            needs: Role::Operator,
        }),
        None => {}
    }
    let workload = resource.status().map(|s| &s.workload);
    let rolling = workload
        .and_then(|w| w.rollout.as_ref())
        .is_some_and(|r| !r.phase.is_terminal());
    if stopped == Some(false) && !rolling && matches!(resource, Resource::App(_) | Resource::Pub(_))
    {
        offers.push(Offer {
            act: "restart",
            label: "Restart",
            what: format!("Every running instance of {object} restarts in place, a batch at a time (maxParallel), each batch once the one before runs and passes its checks again. Each step arrives as an event."),
            needs: Role::Operator,
        });
    }
    if workload.is_some_and(|w| w.rollback.is_some()) {
        offers.push(Offer {
            act: "retry",
            label: "Retry rollout",
            what: format!("nomarch registers {object}'s rolled-back version again, for a cause outside the spec that is fixed now."),
            needs: Role::Operator,
        });
    }
    let awaiting = workload
        .and_then(|w| w.rollout.as_ref())
        .is_some_and(|r| r.phase == RolloutPhase::AwaitingPromotion);
    if awaiting {
        offers.push(Offer {
            act: "promote",
            label: "Promote",
            what: format!(
                "Nomad promotes {object}'s new version: the old instances are replaced by it."
            ),
            needs: Role::Operator,
        });
    }
    if let Resource::CronJob(cron) = resource {
        if !cron.spec.suspend {
            offers.push(Offer {
                act: "run",
                label: "Run now",
                what: format!("Nomad launches {object} once, now, besides its schedule."),
                needs: Role::Operator,
            });
        }
    }
    offers.push(Offer {
        act: "delete",
        label: "Delete",
        what: format!(
            "{object} is deleted; the controller stops its Nomad job unless it is protected."
        ),
        needs: Role::Admin,
    });
    offers
}

/// `undo` to `generation` (by default the one before the current), offered per history row.
pub fn undo_offer(resource: &Resource, generation: Option<i64>) -> Offer {
    let object = resource.object_ref();
    let wanted = generation.unwrap_or(resource.metadata().generation - 1);
    Offer {
        act: "undo",
        label: "Undo",
        what: format!(
            "Generation {wanted}'s spec of {object} is applied again, as generation {}; labels and annotations stay as they are.",
            resource.metadata().generation + 1
        ),
        needs: Role::Operator,
    }
}

pub struct ObjectPage<'a> {
    pub resource: &'a Resource,
    pub verdict: &'a Verdict,
    pub allocations: Option<&'a [AllocStub]>,
    pub events: &'a [Event],
    /// The stored generations, oldest first.
    pub history: &'a [reconcilers::history::Row],
    pub spec_yaml: &'a str,
    pub status_yaml: &'a str,
    /// What the last act did, said once after it.
    pub done: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub fn object(viewer: &Viewer, page: &ObjectPage) -> Markup {
    let resource = page.resource;
    let object = resource.object_ref();
    let status = resource.status();
    let path = object_path(&object);
    let body = html! {
        @if let Some(done) = page.done {
            p.done role="status" { (done) }
        }
        p.summary {
            (badge(page.verdict)) " "
            span.state { "State: " (reconcilers::operator::state(resource)) }
            " · namespace " (object.namespace)
            " · resourceVersion " code { (resource.metadata().resource_version) }
        }
        @if !page.verdict.message.is_empty() {
            p.why { (page.verdict.message) }
        }
        @if resource.kind() != Kind::GitSource {
            p.links {
                a href={ (path) "/logs" } { "Logs" } " · "
                a href={ (path) "/diff" } { "Diff against Nomad" }
            }
        }
        @let offers: Vec<Offer> = offers(resource).into_iter().filter(|o| viewer.may(o.needs)).collect();
        @if !offers.is_empty() {
            section aria-labelledby="actions" {
                h2 id="actions" { "Actions" }
                ul.actions {
                    @for offer in &offers {
                        li { a.button href={ (path) "/confirm/" (offer.act) } { (offer.label) } }
                    }
                }
            }
        }
        section aria-labelledby="conditions" {
            h2 id="conditions" { "Conditions" }
            @match status.filter(|s| !s.conditions.is_empty()) {
                None => p { "No conditions yet." },
                Some(status) => table {
                    thead { tr { th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Since" } } }
                    tbody {
                        @for c in &status.conditions {
                            tr {
                                th scope="row" { (c.type_.as_str()) }
                                td { (c.status.to_string()) }
                                td { (c.reason) }
                                td { (c.message) }
                                td { (ago(page.now, c.last_transition_time)) }
                            }
                        }
                    }
                },
            }
        }
        @if let Some(rollout) = status.and_then(|s| s.workload.rollout.as_ref()) {
            @let (desired, healthy) = rollout.healthy_of_desired();
            section aria-labelledby="rollout" {
                h2 id="rollout" { "Rollout" }
                p {
                    "Version " (rollout.job_version) ": " (format!("{:?}", rollout.phase))
                    " · " (healthy) " of " (desired) " healthy"
                    @if !rollout.description.is_empty() { " · " (rollout.description) }
                }
                progress max=(desired.max(1)) value=(healthy) aria-label="Healthy instances of the rollout" {}
            }
        }
        @if let Some(allocations) = page.allocations {
            section aria-labelledby="allocations" {
                h2 id="allocations" { "Allocations" }
                @if allocations.is_empty() {
                    p { "None." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "ID" } th scope="col" { "Group" } th scope="col" { "Node" } th scope="col" { "Version" } th scope="col" { "Client" } th scope="col" { "Desired" } } }
                        tbody {
                            @for a in allocations {
                                tr {
                                    td { code { (&a.id[..a.id.len().min(8)]) } }
                                    td { (a.task_group) }
                                    td { (a.node_name) }
                                    td { (a.job_version) }
                                    td { (a.client_status) }
                                    td { (a.desired_status) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="events" {
            h2 id="events" { "Events" }
            ol.events id="events-list" aria-live="polite" {
                @for event in page.events.iter().rev() {
                    li data-type=(format!("{:?}", event.type_)) {
                        span.when { (ago(page.now, event.last_timestamp)) } " "
                        strong { (event.reason) } " " (event.message)
                        @if event.count > 1 { " (×" (event.count) ")" }
                    }
                }
            }
        }
        @if !page.history.is_empty() {
            @let undoable = viewer.may(Role::Operator)
                && reconcilers::operator::synced_refusal(resource, "").is_none();
            @let current = resource.metadata().generation;
            section aria-labelledby="history" {
                h2 id="history" { "History" }
                table.history {
                    thead { tr {
                        th scope="col" { "Generation" } th scope="col" { "Time" } th scope="col" { "Commit" }
                        th scope="col" { "Job version" } th scope="col" { "Outcome" } th scope="col" { "Change" }
                        @if undoable { th scope="col" { span.visually-hidden { "Undo" } } }
                    } }
                    tbody {
                        @for row in page.history.iter().rev() {
                            tr {
                                th scope="row" { (row.generation) }
                                td { (row.time) }
                                td { code { (row.commit) } }
                                td { (row.job_version) }
                                td { (row.outcome) }
                                td { (row.change) }
                                @if undoable {
                                    td { @if row.generation != current {
                                        a.button href={ (path) "/confirm/undo?generation=" (row.generation) } { "Undo to " (row.generation) }
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="spec" {
            h2 id="spec" { "Spec" }
            pre { code { (page.spec_yaml) } }
        }
        @if !page.status_yaml.is_empty() {
            details {
                summary { "Status as stored" }
                pre { code { (page.status_yaml) } }
            }
        }
    };
    let stream = format!(
        "/api/v1/events/stream?kind={}&namespace={}&name={}",
        object.kind.singular(),
        urlencode(&object.namespace),
        urlencode(&object.name)
    );
    layout(
        Some(viewer),
        &format!("{} {}", object.kind.as_str(), object.name),
        Some(&stream),
        body,
    )
}

pub fn confirm(
    viewer: &Viewer,
    resource: &Resource,
    offer: &Offer,
    generation: Option<i64>,
) -> Markup {
    let object = resource.object_ref();
    let path = object_path(&object);
    let body = html! {
        p.what { (offer.what) }
        form.confirm method="post" action={ (path) "/act" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="act" value=(offer.act);
            input type="hidden" name="resourceVersion" value=(resource.metadata().resource_version);
            @if let Some(generation) = generation {
                input type="hidden" name="generation" value=(generation);
            }
            button type="submit" autofocus { (offer.label) }
            " "
            a href=(path) { "Cancel" }
        }
    };
    layout(
        Some(viewer),
        &format!("{} {}?", offer.label, object),
        None,
        body,
    )
}

pub struct LogsPage<'a> {
    pub object: &'a ObjectRef,
    pub task: &'a str,
    pub stderr: bool,
    /// The lines read so far, each with its instance when several are read.
    pub lines: &'a [(String, String)],
    pub several: bool,
    /// Why nothing could be read (no task named for a NomadJob, no instance yet).
    pub error: Option<&'a str>,
}

/// An object's logs: the last lines of its running instances, then followed live by the
/// script (from the API's `follow=true`, which the page names in `data-follow`).
pub fn logs(viewer: &Viewer, page: &LogsPage) -> Markup {
    let path = object_path(page.object);
    let stream = if page.stderr { "stderr" } else { "stdout" };
    let follow = format!(
        "/api/v1/objects/{}/{}/{}/logs?follow=true&tail=0&task={}&stderr={}",
        page.object.kind.singular(),
        urlencode(&page.object.namespace),
        urlencode(&page.object.name),
        urlencode(page.task),
        page.stderr
    );
    let body = html! {
        p { a href=(path) { "← " (page.object.to_string()) } }
        form.filter method="get" action={ (path) "/logs" } {
            label { "Task " input type="text" name="task" value=(page.task) placeholder="the task's name"; }
            label { "Stream "
                select name="stderr" {
                    option value="false" selected[!page.stderr] { "stdout" }
                    option value="true" selected[page.stderr] { "stderr" }
                }
            }
            button type="submit" { "Show" }
        }
        @if let Some(error) = page.error {
            p.error role="alert" { (error) }
        } @else {
            p.count { (page.lines.len()) " lines of " (stream) ", newest last; new lines follow." }
            pre.log id="log" data-follow=(follow) aria-live="polite" {
                @for (instance, line) in page.lines {
                    @if page.several { span.instance { (&instance[..instance.len().min(8)]) } " " }
                    (line) "\n"
                }
            }
        }
    };
    layout(
        Some(viewer),
        &format!("Logs of {}", page.object),
        None,
        body,
    )
}

/// What the controller would change in Nomad now (`nomarch diff`).
pub fn diff(viewer: &Viewer, object: &ObjectRef, planned: &crate::ops::diff::Planned) -> Markup {
    let body = html! {
        p { a href=(object_path(object)) { "← " (object.to_string()) } }
        p.summary {
            @if planned.changes { strong { "Nomad's job would change" } } @else { "No change to Nomad's job" }
            " · rule: " code { (planned.rule) }
        }
        pre.diff { code { (planned.text()) } }
    };
    layout(Some(viewer), &format!("Diff of {object}"), None, body)
}

pub fn hubs(viewer: &Viewer, rows: &[HubRow], nodes: usize) -> Markup {
    let body = html! {
        p { (rows.len()) " of " (nodes) " nodes hold pubs." }
        table {
            thead { tr {
                th scope="col" { "Hub" } th scope="col" { "Ready" } th scope="col" { "Pubs" }
                th scope="col" { "CPU free (MHz)" } th scope="col" { "Memory free (MB)" }
            } }
            tbody {
                @for row in rows {
                    @let (cpu, memory) = row.free();
                    tr {
                        th scope="row" { (row.name) }
                        td { @if row.ready { "ready" } @else { "not ready" } @if !row.schedulable { " · ineligible" } }
                        td { @for (i, p) in row.pubs.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href=(object_path(p)) { (p.namespace) "/" (p.name) }
                        } }
                        td { (cpu) " of " (row.total.0) }
                        td { (memory) " of " (row.total.1) }
                    }
                }
            }
        }
    };
    layout(
        Some(viewer),
        "Hubs",
        Some("/api/v1/events/stream?kind=pub"),
        body,
    )
}

/// A refusal or failure as a page (its status code is the response's).
pub fn problem(viewer: Option<&Viewer>, title: &str, message: &str) -> Markup {
    layout(
        viewer,
        title,
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Resource {
        crds::parse_str("t.yaml", text).unwrap().remove(0).resource
    }

    fn acts(resource: &Resource) -> Vec<&'static str> {
        offers(resource).into_iter().map(|o| o.act).collect()
    }

    /// What each object is offered follows its kind and state: stop or start, restart only
    /// while nothing rolls out, run for a cron job, resume instead of the rest when suspended.
    #[test]
    fn offers_follow_the_kind_and_the_state() {
        let mut app = parsed(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n",
        );
        assert_eq!(
            acts(&app),
            ["reconcile", "suspend", "stop", "restart", "delete"]
        );
        let mut status = Status::default();
        status.workload.rollout = Some(crds::status::RolloutStatus {
            deployment_id: "d".into(),
            phase: RolloutPhase::AwaitingPromotion,
            job_version: 1,
            generation: Some(2),
            groups: Default::default(),
            deadline: None,
            description: String::new(),
        });
        app.set_status(Some(status));
        assert_eq!(
            acts(&app),
            ["reconcile", "suspend", "stop", "promote", "delete"]
        );
        if let Resource::App(a) = &mut app {
            a.spec.stopped = true;
        }
        app.set_status(None);
        assert_eq!(acts(&app), ["reconcile", "suspend", "start", "delete"]);
        app.metadata_mut()
            .annotations
            .insert(reconcilers::operator::SUSPENDED.into(), "true".into());
        assert_eq!(acts(&app), ["resume", "start", "delete"]);
        let cron = parsed(
            "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: backup\nspec:\n  schedule: \"@daily\"\n  task:\n    image: restic:1\n",
        );
        assert_eq!(acts(&cron), ["reconcile", "suspend", "run", "delete"]);
    }
}
