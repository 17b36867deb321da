//! A Nomad job as nomarch renders, registers and reads it: typed where nomarch reads or sets
//! a field, with every other field kept in a flattened catch-all so a read-modify-write never
//! drops what nomarch does not model. Each kind renders one (`kind/<kind>.rs`); the controller
//! registers it and reads live jobs into the same type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields nomarch does not model, as Nomad wrote them.
pub type Extra = Map<String, Value>;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Namespace", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    #[serde(rename = "Meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(rename = "Stop", default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    #[serde(rename = "Status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(
        rename = "ModifyIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub modify_index: Option<u64>,
    #[serde(
        rename = "JobModifyIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub job_modify_index: Option<u64>,
    /// Groups stay JSON: nomarch renders them whole and never edits one field of them.
    #[serde(
        rename = "TaskGroups",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub task_groups: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Job {
    /// The fields typed here, which `Extra` never holds: nomarch sets the first ones, Nomad
    /// the rest.
    pub const TYPED_FIELDS: &'static [&'static str] = &[
        "ID",
        "Namespace",
        "Type",
        "Meta",
        "Stop",
        "Status",
        "Version",
        "ModifyIndex",
        "JobModifyIndex",
        "TaskGroups",
    ];

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .as_ref()
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }
}
