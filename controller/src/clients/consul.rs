//! Consul's health API, with blocking queries: where nomarch learns that a check went critical.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::http::{HttpApi, Indexed, QueryOptions};
use super::nomad_types::Extra;
use super::secret::Secret;

pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8500";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    /// `passing`, `warning` or `critical`.
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(rename = "ServiceName", default)]
    pub service_name: String,
    #[serde(rename = "Output", default)]
    pub output: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    #[serde(rename = "Node")]
    pub node: serde_json::Value,
    #[serde(rename = "Service")]
    pub service: serde_json::Value,
    #[serde(rename = "Checks", default)]
    pub checks: Vec<HealthCheck>,
}

impl ServiceEntry {
    /// The service instance ID; Nomad's registrations embed the allocation ID in it.
    pub fn service_id(&self) -> &str {
        self.service
            .get("ID")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct ConsulClient {
    pub http: HttpApi,
}

impl ConsulClient {
    pub fn new(address: &str, token: Option<Secret>) -> ConsulClient {
        ConsulClient {
            http: HttpApi::new("consul", address, token, "X-Consul-Token", "X-Consul-Index"),
        }
    }

    /// `CONSUL_HTTP_ADDR` and `CONSUL_HTTP_TOKEN`, as the Consul CLI reads them.
    pub fn from_env() -> ConsulClient {
        let address =
            std::env::var("CONSUL_HTTP_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_string());
        ConsulClient::new(&address, Secret::from_env("CONSUL_HTTP_TOKEN"))
    }

    pub async fn health_service(
        &self,
        name: &str,
        passing_only: bool,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<ServiceEntry>>, ApiError> {
        let options = if passing_only {
            options.param("passing", "true")
        } else {
            options
        };
        self.http
            .get(&format!("/v1/health/service/{name}"), &options)
            .await
    }

    /// Whether each allocation's service checks pass, by allocation ID (the node's own
    /// checks aside). An allocation not in the catalog is not in the map.
    pub async fn checks_by_alloc(&self, service: &str) -> Result<HashMap<String, bool>, ApiError> {
        let entries = self
            .health_service(service, false, QueryOptions::default())
            .await?
            .value;
        let mut checks = HashMap::new();
        for entry in entries {
            let Some(alloc) = alloc_id_of_service(entry.service_id()) else {
                continue;
            };
            let passing = entry
                .checks
                .iter()
                .filter(|c| !c.service_id.is_empty())
                .all(|c| c.status == "passing");
            checks.insert(alloc.to_string(), passing);
        }
        Ok(checks)
    }

    /// Every check in a state (`any`, `passing`, `warning`, `critical`).
    pub async fn health_state(
        &self,
        state: &str,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<HealthCheck>>, ApiError> {
        self.http
            .get(&format!("/v1/health/state/{state}"), &options)
            .await
    }
}

/// The allocation a Nomad-registered service instance belongs to:
/// `_nomad-task-<alloc id>-<task>-<service>-<port>`.
pub fn alloc_id_of_service(service_id: &str) -> Option<&str> {
    let rest = service_id.strip_prefix("_nomad-task-")?;
    // Allocation IDs are UUIDs: 36 characters.
    rest.get(..36)
        .filter(|id| id.chars().filter(|c| *c == '-').count() == 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_allocation_in_a_nomad_service_id() {
        let id = "_nomad-task-177160af-26f6-619f-9c9f-5e46d1104395-redis-example-cache-redis-db";
        assert_eq!(
            super::alloc_id_of_service(id),
            Some("177160af-26f6-619f-9c9f-5e46d1104395")
        );
        assert_eq!(super::alloc_id_of_service("redis"), None);
    }
}
