//! A set of creates, updates and deletes planned against revisions the caller saw, written in
//! as few transactions as etcd allows. Each write compares the revision it was planned against
//! (or the key's absence), so a change someone made in between fails the whole transaction with
//! [`StoreError::Conflict`] instead of being overwritten; the caller plans again.

use crds::{ObjectRef, Resource};
use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};

use super::objects::OBJECTS_PER_TXN;
use super::{Result, Store, StoreError};

#[derive(Clone, Debug)]
pub enum Change {
    /// Creates the object; fails if it exists.
    Create(Resource),
    /// Updates the object, which must still be at its `metadata.resourceVersion`.
    Update(Resource),
    /// Deletes the object with its status and history, if still at `resource_version`.
    Delete {
        object: ObjectRef,
        resource_version: String,
    },
}

impl Store {
    /// Writes `changes`, [`OBJECTS_PER_TXN`] to a transaction. A batch that fits one
    /// transaction lands whole or not at all; a larger one lands chunk by chunk, and a failed
    /// chunk leaves the earlier ones written (each is a complete change on its own).
    pub async fn commit_changes(&self, changes: &[Change]) -> Result<()> {
        for chunk in changes.chunks(OBJECTS_PER_TXN) {
            self.commit_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn commit_chunk(&self, chunk: &[Change]) -> Result<()> {
        let puts: Vec<Resource> = chunk
            .iter()
            .filter_map(|c| match c {
                Change::Create(r) | Change::Update(r) => Some(r.clone()),
                Change::Delete { .. } => None,
            })
            .collect();
        let mut current = self.read_current(&puts).await?.into_iter();
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for change in chunk {
            match change {
                Change::Create(want) | Change::Update(want) => {
                    let have = current.next().flatten();
                    let must_be_new = matches!(change, Change::Create(_));
                    if must_be_new && have.is_some() {
                        return Err(conflict(&want.object_ref(), "(absent)"));
                    }
                    if !must_be_new && have.is_none() {
                        return Err(conflict(
                            &want.object_ref(),
                            &want.metadata().resource_version,
                        ));
                    }
                    self.plan_write(want, have.as_ref(), &mut compares, &mut ops)?;
                }
                Change::Delete {
                    object,
                    resource_version,
                } => {
                    let revision: i64 = resource_version
                        .parse()
                        .map_err(|_| conflict(object, resource_version))?;
                    let key = self.keys.object(object);
                    compares.push(Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        revision,
                    ));
                    ops.push(TxnOp::delete(key, None));
                    ops.push(TxnOp::delete(self.keys.status(object), None));
                    ops.push(TxnOp::delete(
                        self.keys.history_of(object),
                        Some(DeleteOptions::new().with_prefix()),
                    ));
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let response = self
            .kv_txn(Txn::new().when(self.fenced(compares)).and_then(ops))
            .await?;
        if response.succeeded() {
            Ok(())
        } else {
            let stale = conflict(
                &change_ref(&chunk[0]),
                "(changed while the batch was planned)",
            );
            Err(self.failure(stale).await)
        }
    }
}

fn change_ref(change: &Change) -> ObjectRef {
    match change {
        Change::Create(r) | Change::Update(r) => r.object_ref(),
        Change::Delete { object, .. } => object.clone(),
    }
}

fn conflict(object: &ObjectRef, expected: &str) -> StoreError {
    StoreError::Conflict {
        object: object.to_string(),
        expected: expected.to_string(),
    }
}
