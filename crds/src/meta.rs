//! The Kubernetes-style envelope every object shares: kind, metadata, spec and a status that
//! only the controller writes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::Status;

pub const API_VERSION: &str = "nomarch.io/v1alpha1";
pub const DEFAULT_NAMESPACE: &str = "default";

/// [`Kind`] from the list of kinds (`kinds/mod.rs` `for_each_kind!`): its variants, names and
/// titles.
macro_rules! define_kind {
    ($($variant:ident($spec:ident): [$singular:literal $(, $alias:literal)*], $title:literal;)+) => {
        /// The resource kinds nomarch reconciles.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
        )]
        pub enum Kind {
            $($variant,)+
        }

        impl Kind {
            pub const ALL: [Kind; [$(Kind::$variant),+].len()] = [$(Kind::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => stringify!($variant),)+
                }
            }

            /// The lower-case name used in keys, CLI output (`app/web`) and schema file names.
            pub fn singular(self) -> &'static str {
                match self {
                    $(Kind::$variant => $singular,)+
                }
            }

            /// The plural a person reads in the dashboard's menu and titles.
            pub fn title(self) -> &'static str {
                match self {
                    $(Kind::$variant => $title,)+
                }
            }

            /// Accepts what people type at a CLI: `app`, `apps`, `App`, `cj`, `gitsources`, ...
            pub fn from_cli_name(name: &str) -> Option<Kind> {
                let lower = name.to_ascii_lowercase();
                let kind = match lower.as_str() {
                    $($singular $(| $alias)* => Kind::$variant,)+
                    _ => return None,
                };
                Some(kind)
            }
        }
    };
}

crate::for_each_kind!(define_kind);

impl Kind {
    pub fn from_kind_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity and bookkeeping of an object. People write `name`, `namespace`, `labels` and
/// `annotations`; the store sets the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// DNS label: lower-case letters, digits and `-`, at most 63 characters.
    pub name: String,
    /// The Nomad namespace the object's job lives in.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Short key/value tags (values at most 63 characters) for selecting objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form key/value notes (256 KiB in all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Bumped by the store each time `spec` changes. Set by the store.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// The etcd revision of the stored object; send it back to make a write conditional.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Set by the store on creation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Set by the store on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// When this generation began: the spec's last change. Set by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_timestamp: Option<DateTime<Utc>>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl ObjectMeta {
    pub fn new(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: default_namespace(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            generation: 0,
            resource_version: String::new(),
            uid: String::new(),
            creation_timestamp: None,
            generation_timestamp: None,
        }
    }
}

/// Points at one object: `app/web` in namespace `default`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `app/web`, or `app/web -n staging` outside the default namespace, as people type it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)?;
        if self.namespace != DEFAULT_NAMESPACE {
            write!(f, " -n {}", self.namespace)?;
        }
        Ok(())
    }
}

/// One object of one kind: the envelope around a typed spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    /// Always `nomarch.io/v1alpha1`.
    pub api_version: String,
    pub kind: Kind,
    pub metadata: ObjectMeta,
    pub spec: S,
    /// Written by the controller only; ignored when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl<S> Object<S> {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(self.kind, &self.metadata.namespace, &self.metadata.name)
    }
}
