//! What a service check of an allocation reports: the status forced through the admin API
//! (`PUT /_sim/checks`) for the allocations a rule selects, else what the allocation's fault
//! makes it (a hung task fails its checks), else passing. Consul's answers, Nomad's health
//! tracker, `check_restart` and the admin API all read it here.

use super::model::{Alloc, Fault};

/// A check status forced by the admin API for the allocations it selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRule {
    pub service: Option<String>,
    pub allocation: Option<String>,
    /// Node ID or name.
    pub node: Option<String>,
    pub status: &'static str,
}

impl CheckRule {
    pub fn selects(&self, alloc: &Alloc, service: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
            && self.allocation.as_deref().is_none_or(|a| a == alloc.id)
            && self
                .node
                .as_deref()
                .is_none_or(|n| n == alloc.node_id || n == alloc.node_name)
    }
}

/// The health a check of this allocation reports; the newest rule that selects it wins.
pub fn check_status(rules: &[CheckRule], alloc: &Alloc, service: &str) -> &'static str {
    if let Some(rule) = rules.iter().rev().find(|r| r.selects(alloc, service)) {
        return rule.status;
    }
    if alloc.fault == Fault::Hang {
        "critical"
    } else {
        "passing"
    }
}
