//! The kinds: one file per kind, and the one list that names them all.
//!
//! A kind's file holds its spec and its [`KindSpec`]: the rules a type cannot express, what
//! `nomarch get` and `nomarch describe` show of it, whether it can be stopped and which task
//! `nomarch logs` reads. The list, [`for_each_kind!`](crate::for_each_kind), gives every kind
//! its variant in [`Kind`] and [`Resource`], its CLI names and its title; [`Resource`]'s
//! methods reach a kind only through its [`KindSpec`]. Adding a kind here is its file, its
//! `mod` line and its line in the list.

mod app;
mod cronjob;
mod gitsource;
mod nomadjob;
mod pubs;

pub use app::AppSpec;
pub use cronjob::{ConcurrencyPolicy, CronJobSpec};
pub use gitsource::GitSourceSpec;
pub use nomadjob::NomadJobSpec;
pub use pubs::{HubSelector, OnHubLoss, PlacementPolicy, PubSpec, Reallocation};

use std::fmt::Debug;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::{Kind, Object, ObjectMeta, ObjectRef};
use crate::status::{ConditionType, Status};
use crate::validate::{validate_metadata, Problem, Problems};

/// Every kind, once: `Variant(Spec): [singular, aliases...], "Title";`. The singular names
/// keys, CLI output (`app/web`) and schema files; the aliases are what people may type; the
/// title heads the dashboard's list. `meta.rs` makes [`Kind`] of it and this module
/// [`Resource`]; a callback macro receives the whole list.
#[macro_export]
macro_rules! for_each_kind {
    ($then:ident) => {
        $then! {
            App(AppSpec): ["app", "apps"], "Apps";
            Pub(PubSpec): ["pub", "pubs"], "Pubs";
            CronJob(CronJobSpec): ["cronjob", "cronjobs", "cj"], "Cron jobs";
            GitSource(GitSourceSpec): ["gitsource", "gitsources", "gs"], "Git sources";
            NomadJob(NomadJobSpec): ["nomadjob", "nomadjobs", "nj"], "Nomad jobs";
        }
    };
}

/// A column of `nomarch get`: its header and this object's value.
pub type Column = (&'static str, String);

/// What a kind says about itself beyond its fields. Implemented once per kind, in its file.
pub trait KindSpec:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + JsonSchema + InResource + 'static
{
    /// Semantic rules the types cannot express (the metadata has been checked already).
    fn validate(object: &Object<Self>, problems: &mut Problems);
    /// `nomarch get`'s columns of this kind, after `NAME`.
    fn columns(&self) -> Vec<Column>;
    /// The spec column `nomarch get -o wide` adds.
    fn wide_column(&self) -> Column;
    /// `nomarch describe`'s summary of the spec, a line each.
    fn summary(&self) -> Vec<String>;
    /// The task `nomarch logs` reads when none is named, or why there is none to read.
    fn default_task() -> Result<&'static str, &'static str>;
    /// The condition `nomarch get` shows, and its header: `Ready` for what runs.
    fn shown_condition() -> (&'static str, ConditionType) {
        ("READY", ConditionType::Ready)
    }
    /// `spec.stopped`, for a kind that runs until stopped.
    fn stopped(&self) -> Option<bool> {
        None
    }
    /// `spec.stopped` to set (`nomarch stop`/`start`), or a hint on what stops this kind
    /// instead (said after "it does not run until stopped").
    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        Err("")
    }
    /// Whether its instances carry a health check (`describe` then reads their checks).
    fn has_health(&self) -> bool {
        false
    }
}

/// Where a kind's objects sit in [`Resource`]: written by the list, not by hand.
pub trait InResource: Sized {
    const KIND: Kind;
    fn into_resource(object: Object<Self>) -> Resource;
    fn from_resource(resource: Resource) -> Option<Object<Self>>;
    fn in_resource(resource: &Resource) -> Option<&Object<Self>>;
}

/// Work generic over a kind's spec type, run for a kind chosen at run time ([`for_kind`]).
pub trait ForKind {
    type Output;
    fn run<S: KindSpec>(self) -> Self::Output;
}

/// Any kind's object, behind one face: what [`Resource`] asks of whichever it holds.
trait AnyObject {
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    fn status(&self) -> Option<&Status>;
    fn set_status(&mut self, status: Option<Status>);
    fn spec_json(&self) -> serde_json::Value;
    fn to_json(&self) -> serde_json::Value;
    fn validate(&self, problems: &mut Problems);
    fn columns(&self) -> Vec<Column>;
    fn wide_column(&self) -> Column;
    fn summary(&self) -> Vec<String>;
    fn shown_condition(&self) -> (&'static str, ConditionType);
    fn stopped(&self) -> Option<bool>;
    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str>;
    fn has_health(&self) -> bool;
}

impl<S: KindSpec> AnyObject for Object<S> {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
    fn set_status(&mut self, status: Option<Status>) {
        self.status = status;
    }
    fn spec_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).expect("specs always serialize")
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("objects always serialize")
    }
    fn validate(&self, problems: &mut Problems) {
        S::validate(self, problems)
    }
    fn columns(&self) -> Vec<Column> {
        self.spec.columns()
    }
    fn wide_column(&self) -> Column {
        self.spec.wide_column()
    }
    fn summary(&self) -> Vec<String> {
        self.spec.summary()
    }
    fn shown_condition(&self) -> (&'static str, ConditionType) {
        S::shown_condition()
    }
    fn stopped(&self) -> Option<bool> {
        self.spec.stopped()
    }
    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        self.spec.stopped_mut()
    }
    fn has_health(&self) -> bool {
        self.spec.has_health()
    }
}

/// [`Resource`], the aliases (`App` for `Object<AppSpec>`), [`InResource`] per kind and the
/// per-kind matches, from the list.
macro_rules! define_resource {
    ($($variant:ident($spec:ident): [$($name:literal),+], $title:literal;)+) => {
        $(pub type $variant = Object<$spec>;)+

        /// An object of any kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Resource {
            $($variant($variant),)+
        }

        $(
            impl InResource for $spec {
                const KIND: Kind = Kind::$variant;
                fn into_resource(object: Object<Self>) -> Resource {
                    Resource::$variant(object)
                }
                fn from_resource(resource: Resource) -> Option<Object<Self>> {
                    match resource {
                        Resource::$variant(object) => Some(object),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
                fn in_resource(resource: &Resource) -> Option<&Object<Self>> {
                    match resource {
                        Resource::$variant(object) => Some(object),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )+

        impl Resource {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Resource::$variant(_) => Kind::$variant,)+
                }
            }

            fn object(&self) -> &dyn AnyObject {
                match self {
                    $(Resource::$variant(object) => object,)+
                }
            }

            fn object_mut(&mut self) -> &mut dyn AnyObject {
                match self {
                    $(Resource::$variant(object) => object,)+
                }
            }

            /// Reads an object written by `to_json` (the store's format). Manifests from people go
            /// through `manifest::parse_*`, which reports positions.
            pub fn from_json(value: serde_json::Value) -> Result<Resource, String> {
                let kind_name = value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                let kind = Kind::from_kind_name(&kind_name)
                    .ok_or_else(|| format!("unknown kind `{kind_name}`"))?;
                let resource = match kind {
                    $(Kind::$variant => serde_json::from_value(value).map(Resource::$variant),)+
                };
                resource.map_err(|e| e.to_string())
            }
        }

        impl serde::Serialize for Resource {
            fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
                match self {
                    $(Resource::$variant(object) => object.serialize(serializer),)+
                }
            }
        }

        /// The task `nomarch logs` reads when none is named, or why a kind has none.
        pub fn default_task(kind: Kind) -> Result<&'static str, &'static str> {
            match kind {
                $(Kind::$variant => <$spec as KindSpec>::default_task(),)+
            }
        }

        /// Runs `work` with the spec type of `kind`: for what needs the type, not an object
        /// (a schema, a default).
        pub fn for_kind<W: ForKind>(kind: Kind, work: W) -> W::Output {
            match kind {
                $(Kind::$variant => work.run::<$spec>(),)+
            }
        }
    };
}

crate::for_each_kind!(define_resource);

impl Resource {
    pub fn metadata(&self) -> &ObjectMeta {
        self.object().metadata()
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        self.object_mut().metadata_mut()
    }

    pub fn status(&self) -> Option<&Status> {
        self.object().status()
    }

    pub fn set_status(&mut self, status: Option<Status>) {
        self.object_mut().set_status(status)
    }

    /// Whether this is the object `target` names, without building its reference.
    pub fn is(&self, target: &ObjectRef) -> bool {
        let meta = self.metadata();
        self.kind() == target.kind && meta.name == target.name && meta.namespace == target.namespace
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(
            self.kind(),
            &self.metadata().namespace,
            &self.metadata().name,
        )
    }

    /// The spec as JSON, with defaults filled in: two specs are the same desired state exactly
    /// when these are equal.
    pub fn spec_json(&self) -> serde_json::Value {
        self.object().spec_json()
    }

    pub fn to_json(&self) -> serde_json::Value {
        self.object().to_json()
    }

    /// Everything wrong with the object that its types cannot say: the metadata's rules, then
    /// its kind's. Empty when it is valid.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Problems::default();
        validate_metadata(self.metadata(), &mut problems);
        self.object().validate(&mut problems);
        problems.into_vec()
    }

    /// `nomarch get`'s columns of this kind, after `NAME`.
    pub fn columns(&self) -> Vec<Column> {
        self.object().columns()
    }

    /// The spec column `nomarch get -o wide` adds.
    pub fn wide_column(&self) -> Column {
        self.object().wide_column()
    }

    /// `nomarch describe`'s summary of the spec, a line each.
    pub fn summary(&self) -> Vec<String> {
        self.object().summary()
    }

    /// The condition `nomarch get` shows, and its header.
    pub fn shown_condition(&self) -> (&'static str, ConditionType) {
        self.object().shown_condition()
    }

    /// `spec.stopped`, or `None` for a kind that does not run until stopped.
    pub fn stopped(&self) -> Option<bool> {
        self.object().stopped()
    }

    /// `spec.stopped` to set, or a hint on what stops this kind instead.
    pub fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        self.object_mut().stopped_mut()
    }

    /// Whether its instances carry a health check.
    pub fn has_health(&self) -> bool {
        self.object().has_health()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The kind a spec type says it is.
    struct KindOf;

    impl ForKind for KindOf {
        type Output = Kind;
        fn run<S: KindSpec>(self) -> Kind {
            S::KIND
        }
    }

    /// What the list makes: each kind's names read back as that kind, no two kinds share a
    /// name or a title, and running work for a kind runs it with that kind's spec type.
    #[test]
    fn the_list_names_each_kind_once_and_maps_it_to_its_spec() {
        let mut names = HashSet::new();
        let mut titles = HashSet::new();
        for kind in Kind::ALL {
            assert_eq!(Kind::from_cli_name(kind.singular()), Some(kind));
            assert_eq!(Kind::from_cli_name(kind.as_str()), Some(kind), "any case");
            assert_eq!(Kind::from_kind_name(kind.as_str()), Some(kind));
            assert!(names.insert(kind.singular()), "{kind} named twice");
            assert!(titles.insert(kind.title()), "{kind} titled twice");
            assert_eq!(for_kind(kind, KindOf), kind);
        }
        assert_eq!(Kind::from_cli_name("cj"), Some(Kind::CronJob), "aliases");
        assert_eq!(Kind::from_cli_name("deployment"), None);
    }

    /// `Resource` reaches each kind through its `KindSpec`: what runs until stopped can be
    /// stopped, and the rest say what stops them instead.
    #[test]
    fn resource_asks_the_kind() {
        let read = |value: serde_json::Value| Resource::from_json(value).unwrap();
        let mut app = read(serde_json::json!({
            "apiVersion": "nomarch.io/v1alpha1", "kind": "App", "metadata": {"name": "web"}, "spec": {"image": "nginx:1", "replicas": 3},
        }));
        assert_eq!(app.columns(), vec![("REPLICAS", "3".to_string())]);
        assert_eq!(app.stopped(), Some(false));
        *app.stopped_mut().unwrap() = true;
        assert_eq!(app.stopped(), Some(true));
        assert_eq!(default_task(Kind::App), Ok("app"));
        let mut cron = read(serde_json::json!({
            "apiVersion": "nomarch.io/v1alpha1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "@daily", "task": {"image": "busybox:1"}},
        }));
        assert_eq!(cron.stopped(), None);
        assert!(cron.stopped_mut().unwrap_err().contains("spec.suspend"));
        assert_eq!(cron.shown_condition().0, "READY");
        assert!(default_task(Kind::GitSource).is_err());
    }
}
