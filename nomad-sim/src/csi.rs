//! CSI volumes: registered volumes (`nomad volume register`, or the `--config` file), the
//! node plugins clients run, claims, and what placement asks of them.
//!
//! Modelled: registration (`PUT /v1/volume/csi/:id`, nomad/csi_endpoint.go `Register`: the
//! plugin must be named, an access and an attachment mode given); reading volumes with their
//! claims; scheduler/feasible.go `CSIVolumeChecker.isFeasible` (the volume must exist, the node
//! run its plugin healthy, a writer find the volume write-schedulable with a free write claim,
//! unless the claim blocking it is this job's own); structs/csi.go `WriteSchedulable`,
//! `HasFreeWriteClaims` over the volume's requested capability. A claim is an allocation using
//! the volume that its client has not yet stopped: Nomad's volumewatcher releases a claim once
//! the client reports the allocation terminal; here that release is immediate. Not modelled:
//! controller plugins, topologies, snapshots, `MaxVolumes` (unlimited), mount options.

use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult};
use crate::model::{Alloc, CsiVolume, Node};

/// Access modes a writer may claim (structs/csi.go `WriteSchedulable`).
const WRITER_MODES: &[&str] = &[
    "single-node-writer",
    "multi-node-single-writer",
    "multi-node-multi-writer",
];
/// structs/csi.go `CSIVolumeAccessMode*`.
const ACCESS_MODES: &[&str] = &[
    "single-node-reader-only",
    "single-node-writer",
    "multi-node-reader-only",
    "multi-node-single-writer",
    "multi-node-multi-writer",
];

impl CsiVolume {
    fn write_schedulable(&self) -> bool {
        WRITER_MODES.contains(&self.access_mode.as_str())
    }

    /// Only a multi-writer volume takes another writer while one holds it.
    fn has_free_write_claims(&self, writers: usize) -> bool {
        self.access_mode == "multi-node-multi-writer" || writers == 0
    }
}

/// The CSI volume requests of a task group: (source, read-only).
fn csi_requests(group: &Value) -> Vec<(String, bool)> {
    group
        .get("Volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|volumes| volumes.values())
        .filter(|request| request.get("Type").and_then(Value::as_str) == Some("csi"))
        .map(|request| {
            let source = request.get("Source").and_then(Value::as_str).unwrap_or("");
            let read_only = request
                .get("ReadOnly")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (source.to_string(), read_only)
        })
        .collect()
}

impl Cluster {
    fn register_csi_volume(&mut self, volume: CsiVolume) {
        self.csi_volumes
            .insert((volume.namespace.clone(), volume.id.clone()), volume);
    }

    /// The allocations claiming volume `id`, readers and writers: those whose group asks for
    /// it and whose client has not stopped them.
    fn claims(&self, namespace: &str, id: &str) -> (Vec<&Alloc>, Vec<&Alloc>) {
        let (mut readers, mut writers) = (Vec::new(), Vec::new());
        for alloc in self.allocs.values() {
            if alloc.namespace != namespace || alloc.client_status.is_terminal() {
                continue;
            }
            // The claim is the allocation's, made with the job version it runs.
            let Some(group) = alloc.group_spec() else {
                continue;
            };
            for (source, read_only) in csi_requests(group) {
                if source == id {
                    if read_only {
                        readers.push(alloc);
                    } else {
                        writers.push(alloc);
                    }
                }
            }
        }
        (readers, writers)
    }

    /// `CSIVolumeChecker.isFeasible` for `group` of job `job_id` on `node`: why not, if not.
    pub fn csi_volumes_fit(
        &self,
        namespace: &str,
        job_id: &str,
        group: &Value,
        node: &Node,
    ) -> Result<(), String> {
        for (source, read_only) in csi_requests(group) {
            let Some(volume) = self
                .csi_volumes
                .get(&(namespace.to_string(), source.clone()))
            else {
                return Err(format!("missing CSI Volume {source}"));
            };
            if !node.csi_plugins.contains(&volume.plugin_id) {
                return Err(format!(
                    "CSI plugin {} is missing from client {}",
                    volume.plugin_id, node.id
                ));
            }
            if read_only {
                continue;
            }
            if !volume.write_schedulable() {
                return Err(format!(
                    "CSI volume {} is unschedulable or is read-only",
                    volume.id
                ));
            }
            let (_, writers) = self.claims(namespace, &volume.id);
            if !volume.has_free_write_claims(writers.len())
                && writers.iter().any(|a| a.job_id != job_id)
            {
                return Err(format!(
                    "CSI volume {} has exhausted its available writer claims",
                    volume.id
                ));
            }
        }
        Ok(())
    }

    /// `GET /v1/volume/csi/:id`: the volume with its claims.
    pub fn render_csi_volume(&self, volume: &CsiVolume) -> Value {
        let (readers, writers) = self.claims(&volume.namespace, &volume.id);
        let ids = |allocs: &[&Alloc]| -> Map<String, Value> {
            allocs.iter().map(|a| (a.id.clone(), Value::Null)).collect()
        };
        let mut stub = self.csi_stub(volume, &readers, &writers);
        stub["ReadAllocs"] = Value::Object(ids(&readers));
        stub["WriteAllocs"] = Value::Object(ids(&writers));
        stub["Allocations"] = json!(readers
            .iter()
            .chain(writers.iter())
            .map(|a| crate::render::alloc_stub(a))
            .collect::<Vec<_>>());
        stub
    }

    /// One volume of `GET /v1/volumes?type=csi`.
    pub fn render_csi_stub(&self, volume: &CsiVolume) -> Value {
        let (readers, writers) = self.claims(&volume.namespace, &volume.id);
        self.csi_stub(volume, &readers, &writers)
    }

    fn csi_stub(&self, volume: &CsiVolume, readers: &[&Alloc], writers: &[&Alloc]) -> Value {
        let nodes_healthy = self
            .nodes
            .values()
            .filter(|n| n.csi_plugins.contains(&volume.plugin_id))
            .count();
        json!({
            "ID": volume.id,
            "Name": volume.name,
            "Namespace": volume.namespace,
            "ExternalID": volume.id,
            "PluginID": volume.plugin_id,
            "Provider": volume.plugin_id,
            "Schedulable": nodes_healthy > 0,
            "AccessMode": if writers.is_empty() && readers.is_empty() { "" } else { volume.access_mode.as_str() },
            "AttachmentMode": volume.attachment_mode,
            "RequestedCapabilities": [{"AccessMode": volume.access_mode, "AttachmentMode": volume.attachment_mode}],
            "CurrentReaders": readers.len(),
            "CurrentWriters": writers.len(),
            "NodesHealthy": nodes_healthy,
            "NodesExpected": nodes_healthy,
            "ControllerRequired": false,
            "CreateIndex": volume.create_index,
            "ModifyIndex": volume.modify_index,
        })
    }

    /// `PUT /v1/volume/csi/:id` (nomad/csi_endpoint.go `Register` → structs `CSIVolume.Validate`).
    pub fn register_csi_request(&mut self, id: &str, body: &Value) -> ApiResult<Value> {
        let volume = body
            .get("Volumes")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .ok_or_else(|| ApiError::bad_request("missing volume definition"))?;
        let text = |key: &str| volume.get(key).and_then(Value::as_str).unwrap_or("");
        let mut errors = Vec::new();
        if text("ID").is_empty() {
            errors.push("missing volume id".to_string());
        }
        if text("PluginID").is_empty() {
            errors.push("missing plugin id".to_string());
        }
        let capability = volume
            .get("RequestedCapabilities")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        let mode = |key: &str| {
            capability
                .and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (access_mode, attachment_mode) = (mode("AccessMode"), mode("AttachmentMode"));
        if capability.is_none() {
            errors.push("must include at least one capability block".to_string());
        } else if !ACCESS_MODES.contains(&access_mode.as_str()) {
            errors.push(format!("unknown access mode {access_mode:?}"));
        }
        if !errors.is_empty() {
            return Err(ApiError::bad_request(format!(
                "validation: {}",
                crate::validate::multierror(&errors)
            )));
        }
        if text("ID") != id {
            return Err(ApiError::bad_request("volume ID does not match the URL"));
        }
        let namespace = volume
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        let index = self.bump();
        self.register_csi_volume(CsiVolume {
            id: id.to_string(),
            namespace,
            name: volume
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_string(),
            plugin_id: text("PluginID").to_string(),
            access_mode,
            attachment_mode: if attachment_mode.is_empty() {
                "file-system".into()
            } else {
                attachment_mode
            },
            create_index: index,
            modify_index: index,
        });
        Ok(json!({"Index": index, "LastContact": 0, "KnownLeader": true}))
    }
}
