//! Objects, their status and their history.
//!
//! `apply` writes a batch of objects in one transaction that compares every object it read, so
//! a batch lands whole or not at all, and concurrent writers never overwrite each other.

use chrono::Utc;
use crds::{Kind, ObjectRef, Resource, Status};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use super::{Result, Store, StoreError};

/// Previous generations kept per object.
pub const HISTORY_LIMIT: i64 = 10;
/// Objects per transaction: each takes at most three operations, and etcd's default
/// `--max-txn-ops` is 128.
pub const OBJECTS_PER_TXN: usize = 40;
/// Attempts when a concurrent writer got in between our read and our write.
const APPLY_ATTEMPTS: usize = 5;

/// What `apply` did to one object, in kubectl's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        }
    }
}

impl Store {
    pub async fn get(&self, r: &ObjectRef) -> Result<Option<Resource>> {
        let txn = Txn::new().and_then([
            TxnOp::get(self.keys.object(r), None),
            TxnOp::get(self.keys.status(r), None),
        ]);
        let response = self.kv_read_txn(txn).await?;
        let mut replies = range_replies(response.op_responses());
        let status = replies.pop().and_then(|kvs| kvs.into_iter().next());
        let Some(object) = replies.pop().and_then(|kvs| kvs.into_iter().next()) else {
            return Ok(None);
        };
        Ok(Some(decode_object(&object, status.as_ref())?))
    }

    /// As [`Store::get`], for an object that must exist: `NotFound` naming it otherwise.
    pub async fn get_existing(&self, r: &ObjectRef) -> Result<Resource> {
        self.get(r)
            .await?
            .ok_or_else(|| StoreError::NotFound(r.to_string()))
    }

    /// Every object (of one kind, or all), with status, sorted by kind, namespace and name.
    /// Also returns the revision the listing was read at, to start a watch from.
    pub async fn list(&self, kind: Option<Kind>) -> Result<(Vec<Resource>, i64)> {
        // Objects and statuses in pages, both at the objects' revision, so they agree.
        let (objects, revision) = self.list_paged(&self.keys.objects(kind), None).await?;
        let (statuses, _) = self
            .list_paged(&self.keys.statuses(kind), Some(revision))
            .await?;
        let status_by_ref: std::collections::HashMap<ObjectRef, &KeyValue> = statuses
            .iter()
            .filter_map(|kv| Some((self.keys.object_ref_of(kv.key_str().ok()?)?, kv)))
            .collect();
        let mut resources = Vec::with_capacity(objects.len());
        for object in &objects {
            let r = key_ref(self, object)?;
            resources.push(decode_object(object, status_by_ref.get(&r).copied())?);
        }
        resources.sort_by_key(|r| r.object_ref());
        Ok((resources, revision))
    }

    /// Creates or updates each object so that its spec, labels and annotations are as given.
    ///
    /// - `generation` is bumped only when the spec changes; the previous generation is kept in
    ///   history (the last [`HISTORY_LIMIT`]).
    /// - An unchanged object is not written at all.
    /// - A `metadata.resourceVersion` in the input makes that object's write conditional on it:
    ///   a stale one fails with [`StoreError::Conflict`] and nothing in the batch is written.
    /// - Batches larger than [`OBJECTS_PER_TXN`] are written in several transactions.
    pub async fn apply(&self, desired: &[Resource]) -> Result<Vec<(ObjectRef, ApplyOutcome)>> {
        let mut outcomes = Vec::with_capacity(desired.len());
        for chunk in desired.chunks(OBJECTS_PER_TXN) {
            outcomes.extend(self.apply_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    async fn apply_chunk(&self, desired: &[Resource]) -> Result<Vec<(ObjectRef, ApplyOutcome)>> {
        let mut last_conflict = None;
        // The outcomes of a write whose answer was lost (a member died with it): the next read
        // tells whether it landed, since it compared every revision it was based on.
        let mut lost: Option<Vec<(ObjectRef, ApplyOutcome)>> = None;
        for _ in 0..APPLY_ATTEMPTS {
            let current = self.read_current(desired).await?;
            if let Some(sent) = lost.take() {
                let landed = desired.iter().zip(&current).all(|(want, have)| {
                    have.as_ref()
                        .is_some_and(|(have, _)| same_content(want, have))
                });
                if landed {
                    return Ok(sent);
                }
            }
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            let mut outcomes = Vec::new();
            for (want, have) in desired.iter().zip(&current) {
                let outcome = self.plan_write(want, have.as_ref(), &mut compares, &mut ops)?;
                outcomes.push((want.object_ref(), outcome));
            }
            if ops.is_empty() {
                return Ok(outcomes);
            }
            let written = self
                .kv_txn(Txn::new().when(self.fenced(compares)).and_then(ops))
                .await;
            match written {
                Ok(response) if response.succeeded() => return Ok(outcomes),
                Ok(_) => {}
                Err(StoreError::Unknown { .. }) => {
                    lost = Some(outcomes);
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.lost_fence().await {
                return Err(StoreError::Fenced);
            }
            last_conflict = Some(
                outcomes
                    .first()
                    .map(|(r, _)| r.to_string())
                    .unwrap_or_default(),
            );
        }
        Err(StoreError::Conflict {
            object: last_conflict.unwrap_or_default(),
            expected: format!("(still changing after {APPLY_ATTEMPTS} attempts)"),
        })
    }

    /// Reads every object of a batch in one round trip, at one revision.
    pub(super) async fn read_current(
        &self,
        desired: &[Resource],
    ) -> Result<Vec<Option<(Resource, i64)>>> {
        let gets: Vec<TxnOp> = desired
            .iter()
            .map(|r| TxnOp::get(self.keys.object(&r.object_ref()), None))
            .collect();
        let response = self.kv_read_txn(Txn::new().and_then(gets)).await?;
        range_replies(response.op_responses())
            .into_iter()
            .map(|kvs| match kvs.into_iter().next() {
                Some(kv) => Ok(Some((decode_object(&kv, None)?, kv.mod_revision()))),
                None => Ok(None),
            })
            .collect()
    }

    /// Adds the compares and writes that move one object from `have` to `want`.
    pub(super) fn plan_write(
        &self,
        want: &Resource,
        have: Option<&(Resource, i64)>,
        compares: &mut Vec<Compare>,
        ops: &mut Vec<TxnOp>,
    ) -> Result<ApplyOutcome> {
        let r = want.object_ref();
        let key = self.keys.object(&r);
        let expected_version = &want.metadata().resource_version;
        let Some((current, revision)) = have else {
            if !expected_version.is_empty() {
                return Err(StoreError::NotFound(format!(
                    "{r} (resourceVersion {expected_version} was given)"
                )));
            }
            let mut created = want.clone();
            let meta = created.metadata_mut();
            meta.generation = 1;
            meta.uid = uuid::Uuid::new_v4().to_string();
            meta.creation_timestamp = Some(Utc::now());
            meta.generation_timestamp = meta.creation_timestamp;
            compares.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            ops.push(TxnOp::put(key, encode_object(&created), None));
            return Ok(ApplyOutcome::Created);
        };
        if !expected_version.is_empty() && expected_version != &revision.to_string() {
            return Err(StoreError::Conflict {
                object: r.to_string(),
                expected: expected_version.clone(),
            });
        }
        if same_content(want, current) {
            return Ok(ApplyOutcome::Unchanged);
        }
        let spec_changed = current.spec_json() != want.spec_json();
        let have_meta = current.metadata();
        let mut updated = want.clone();
        let meta = updated.metadata_mut();
        meta.uid = have_meta.uid.clone();
        meta.creation_timestamp = have_meta.creation_timestamp;
        meta.generation = have_meta.generation + i64::from(spec_changed);
        meta.generation_timestamp = if spec_changed {
            Some(Utc::now())
        } else {
            have_meta.generation_timestamp
        };
        compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            *revision,
        ));
        ops.push(TxnOp::put(key, encode_object(&updated), None));
        if spec_changed {
            ops.push(TxnOp::put(
                self.keys.history(&r, have_meta.generation),
                encode_object(current),
                None,
            ));
            let expired = have_meta.generation - HISTORY_LIMIT;
            if expired > 0 {
                ops.push(TxnOp::delete(self.keys.history(&r, expired), None));
            }
        }
        Ok(ApplyOutcome::Configured)
    }

    /// Deletes an object with its status and history. With `expected_version`, only if the
    /// object is still at that resourceVersion.
    pub async fn delete(&self, r: &ObjectRef, expected_version: Option<&str>) -> Result<()> {
        // Set when a delete was sent and its answer lost: gone now means it landed.
        let mut lost = false;
        for _ in 0..APPLY_ATTEMPTS {
            let current = self.kv_get(self.keys.object(r), None).await?;
            let Some(revision) = current.kvs().first().map(KeyValue::mod_revision) else {
                if lost {
                    return Ok(());
                }
                return Err(StoreError::NotFound(r.to_string()));
            };
            if let Some(expected) = expected_version {
                if expected != revision.to_string() {
                    return Err(StoreError::Conflict {
                        object: r.to_string(),
                        expected: expected.to_string(),
                    });
                }
            }
            let txn = Txn::new()
                .when(self.fenced(vec![Compare::mod_revision(
                    self.keys.object(r),
                    CompareOp::Equal,
                    revision,
                )]))
                .and_then([
                    TxnOp::delete(self.keys.object(r), None),
                    TxnOp::delete(self.keys.status(r), None),
                    TxnOp::delete(
                        self.keys.history_of(r),
                        Some(DeleteOptions::new().with_prefix()),
                    ),
                ]);
            match self.kv_txn(txn).await {
                Ok(response) if response.succeeded() => return Ok(()),
                Ok(_) => {}
                Err(StoreError::Unknown { .. }) => {
                    lost = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.lost_fence().await {
                return Err(StoreError::Fenced);
            }
        }
        Err(StoreError::Conflict {
            object: r.to_string(),
            expected: "(still changing)".into(),
        })
    }

    /// Writes an object's status, only while the object exists. Never touches the object, so
    /// its `generation` and `resourceVersion` stay as they are.
    /// Returns the revision the status was written at.
    pub async fn put_status(&self, r: &ObjectRef, status: &Status) -> Result<i64> {
        let value = serde_json::to_vec(status).expect("status serializes");
        let txn = Txn::new()
            .when(self.fenced(vec![Compare::create_revision(
                self.keys.object(r),
                CompareOp::Greater,
                0,
            )]))
            .and_then([TxnOp::put(self.keys.status(r), value, None::<PutOptions>)]);
        let response = self.kv_txn(txn).await?;
        if response.succeeded() {
            Ok(response.header().map_or(0, |h| h.revision()))
        } else {
            Err(self.failure(StoreError::NotFound(r.to_string())).await)
        }
    }

    /// Previous generations of an object, oldest first.
    pub async fn history(&self, r: &ObjectRef) -> Result<Vec<Resource>> {
        let response = self
            .kv_get(
                self.keys.history_of(r),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        response
            .kvs()
            .iter()
            .map(|kv| decode_object(kv, None))
            .collect()
    }
}

fn range_replies(responses: Vec<TxnOpResponse>) -> Vec<Vec<KeyValue>> {
    responses
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(mut get) => get.take_kvs(),
            _ => Vec::new(),
        })
        .collect()
}

fn key_ref(store: &Store, kv: &KeyValue) -> Result<ObjectRef> {
    let key = kv.key_str().unwrap_or_default();
    store
        .keys
        .object_ref_of(key)
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_string(),
            detail: "not an object key".into(),
        })
}

/// The stored form: the object without status or resourceVersion (both come from elsewhere).
fn encode_object(resource: &Resource) -> Vec<u8> {
    let mut clean = resource.clone();
    clean.set_status(None);
    clean.metadata_mut().resource_version.clear();
    serde_json::to_vec(&clean).expect("objects serialize")
}

pub(super) fn decode_object(object: &KeyValue, status: Option<&KeyValue>) -> Result<Resource> {
    let corrupt = |kv: &KeyValue, detail: String| StoreError::Corrupt {
        key: kv.key_str().unwrap_or("?").to_string(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_slice(object.value()).map_err(|e| corrupt(object, e.to_string()))?;
    let mut resource = Resource::from_json(value).map_err(|e| corrupt(object, e))?;
    resource.metadata_mut().resource_version = object.mod_revision().to_string();
    if let Some(status) = status {
        let parsed: Status =
            serde_json::from_slice(status.value()).map_err(|e| corrupt(status, e.to_string()))?;
        resource.set_status(Some(parsed));
    }
    Ok(resource)
}

impl Store {
    /// An object from a watch item (its mod revision becomes the resourceVersion).
    pub fn decode_object_item(&self, item: &super::RawItem) -> Result<Resource> {
        let corrupt = |detail: String| StoreError::Corrupt {
            key: item.key.clone(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&item.value).map_err(|e| corrupt(e.to_string()))?;
        let mut resource = Resource::from_json(value).map_err(corrupt)?;
        resource.metadata_mut().resource_version = item.mod_revision.to_string();
        Ok(resource)
    }

    /// A status from a watch item, with the object it belongs to.
    pub fn decode_status_item(&self, item: &super::RawItem) -> Result<(ObjectRef, Status)> {
        let corrupt = |detail: String| StoreError::Corrupt {
            key: item.key.clone(),
            detail,
        };
        let object = self
            .keys
            .object_ref_of(&item.key)
            .ok_or_else(|| corrupt("not a status key".into()))?;
        let status = serde_json::from_slice(&item.value).map_err(|e| corrupt(e.to_string()))?;
        Ok((object, status))
    }
}

impl Store {
    /// Puts raw bytes at a key outside nomarch's tables (benchmarks use it for their floor).
    pub async fn apply_raw(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let key = key.to_string();
        self.write(|client| {
            let (key, value) = (key.clone(), value.clone());
            async move { client.kv_client().put(key, value, None).await }
        })
        .await?;
        Ok(())
    }
}

/// Whether an object already has the spec, labels and annotations wanted (what apply writes).
fn same_content(want: &Resource, have: &Resource) -> bool {
    let (want_meta, have_meta) = (want.metadata(), have.metadata());
    have.spec_json() == want.spec_json()
        && have_meta.labels == want_meta.labels
        && have_meta.annotations == want_meta.annotations
}
