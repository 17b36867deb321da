//! The App: a long-running service of `replicas` instances behind a Consul service.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, KindSpec};
use crate::meta::Object;
use crate::validate::{
    dns_label_problem, validate_container, validate_health, validate_nomad, validate_placement,
    validate_ports, validate_route, validate_update, validate_volumes, Problems, MAX_REPLICAS,
};
use crate::workload::{
    summary_lines, with_container, HealthCheck, NomadOverrides, Placement, Port, Resources, Route,
    UpdateStrategy, Volume,
};
use crate::yaml::join_index;

with_container! {
    /// A long-running service: `replicas` instances of one container behind a Consul service.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct AppSpec {
        ..container(
            resources_default = "Resources::default",
            resources_doc = "CPU and memory per instance."
        ),
        /// Instances to run (at most 1000).
        #[serde(default = "one")]
        pub replicas: u32,
        /// Ports the container listens on; names are referred to by `health` and `route`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<Port>,
        /// Health check registered with the service; drives readiness and healing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub health: Option<HealthCheck>,
        /// Public route through Traefik.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub route: Option<Route>,
        /// Where instances may run.
        #[serde(default)]
        pub placement: Placement,
        /// Rolling update and healing limits.
        #[serde(default)]
        pub update: UpdateStrategy,
        /// Apps (same namespace) that must be Ready before this one is registered.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub depends_on: Vec<String>,
        /// Host volumes to mount; instances go only to nodes that offer them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub volumes: Vec<Volume>,
        /// Nomad fields the kind does not model, merged into what nomarch renders.
        #[serde(default, skip_serializing_if = "NomadOverrides::is_empty")]
        pub nomad: NomadOverrides,
        /// Run nothing, keep everything else: the Nomad job is stopped (not purged) and nothing
        /// is healed until this is false again (`nomarch stop` / `nomarch start`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub stopped: bool,
    }
}

fn one() -> u32 {
    1
}

impl AppSpec {
    /// The group, and its one task, inside every App job.
    pub const GROUP: &'static str = "app";
}

impl KindSpec for AppSpec {
    fn validate(object: &Object<Self>, p: &mut Problems) {
        validate_app(&object.spec, &object.metadata.name, p)
    }

    fn columns(&self) -> Vec<Column> {
        vec![("REPLICAS", self.replicas.to_string())]
    }

    fn wide_column(&self) -> Column {
        ("IMAGE", self.image.clone())
    }

    fn summary(&self) -> Vec<String> {
        let mut items = vec![
            format!("image: {}", self.image),
            format!("replicas: {}", self.replicas),
            format!(
                "resources: {} MHz, {} MB",
                self.resources.cpu, self.resources.memory
            ),
            format!(
                "update: {:?}, maxParallel {}",
                self.update.strategy, self.update.max_parallel
            ),
        ];
        if let Some(route) = &self.route {
            items.push(format!("route: {}", route.host));
        }
        if !self.depends_on.is_empty() {
            items.push(format!("dependsOn: {}", self.depends_on.join(", ")));
        }
        items.extend(summary_lines(&self.volumes, &self.env, &self.nomad));
        items
    }

    fn default_task() -> Result<&'static str, &'static str> {
        Ok(Self::GROUP)
    }

    fn stopped(&self) -> Option<bool> {
        Some(self.stopped)
    }

    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        Ok(&mut self.stopped)
    }

    fn has_health(&self) -> bool {
        self.health.is_some()
    }
}

fn validate_app(spec: &AppSpec, own_name: &str, p: &mut Problems) {
    validate_container(spec.container(), "spec", p);
    p.check(spec.replicas <= MAX_REPLICAS, "spec.replicas", || {
        format!("must be at most {MAX_REPLICAS} (is {})", spec.replicas)
    });
    validate_ports(&spec.ports, p);
    if let Some(health) = &spec.health {
        validate_health(health, &spec.ports, p);
    }
    if let Some(route) = &spec.route {
        validate_route(route, &spec.ports, p);
    }
    validate_placement(&spec.placement, "spec.placement", p);
    validate_update(&spec.update, p);
    validate_volumes(&spec.volumes, spec.replicas, p);
    validate_nomad(&spec.nomad, "spec", p);
    let mut seen = HashSet::new();
    for (i, dep) in spec.depends_on.iter().enumerate() {
        let path = join_index("spec.dependsOn", i);
        if let Some(problem) = dns_label_problem(dep) {
            p.add(&path, problem);
        }
        p.check(dep != own_name, &path, || {
            "an app cannot depend on itself".into()
        });
        p.check(seen.insert(dep), &path, || {
            format!("`{dep}` is listed twice")
        });
    }
}
