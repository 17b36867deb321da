//! API tokens (`nomarch token create|list|revoke`): one record per token under
//! `tokens/{name}`, holding only the SHA-256 of its secret. The secret itself is printed once
//! by `create` and kept nowhere.

use chrono::{DateTime, Utc};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Result, Store, StoreError};

/// What a token may do, each role including the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads objects, status, events and logs.
    Viewer,
    /// Also acts: reconcile, suspend and resume, stop and start, rollout actions, run.
    Operator,
    /// Also applies and deletes.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A token as stored: who it is for, what it may do, never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub name: String,
    /// The one namespace it sees; `None`: every namespace.
    pub namespace: Option<String>,
    pub role: Role,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
}

impl TokenRecord {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// The prefix every secret starts with, so a leaked one is recognisable (secret scanners).
pub const SECRET_PREFIX: &str = "nomarch_";

/// A new secret: the prefix and 32 random bytes in hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    fn token_key(&self, name: &str) -> String {
        format!("{}tokens/{name}", self.keys.prefix())
    }

    /// Stores a new token; a token of that name already there is a conflict (revoke it first).
    pub async fn create_token(&self, record: &TokenRecord) -> Result<()> {
        let key = self.token_key(&record.name);
        let put = TxnOp::put(
            key.clone(),
            serde_json::to_vec(record).expect("tokens serialize"),
            None,
        );
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([put]);
        if self.kv_txn(txn).await?.succeeded() {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                object: format!("token {}", record.name),
                expected: "none (a token of that name exists; revoke it first)".into(),
            })
        }
    }

    /// Every token, by name.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let prefix = format!("{}tokens/", self.keys.prefix());
        let (items, _) = self.list_raw(&prefix).await?;
        items
            .iter()
            .map(|item| {
                serde_json::from_slice(&item.value).map_err(|e| StoreError::Corrupt {
                    key: item.key.clone(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Removes a token; whether there was one.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let key = self.token_key(name);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Greater, 0)])
            .and_then([TxnOp::delete(key, None)]);
        Ok(self.kv_txn(txn).await?.succeeded())
    }

    /// The token whose secret this is (compared in constant time), expired or not.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<TokenRecord>> {
        self.token_by_hash(&secret_sha256(secret)).await
    }

    /// The token whose secret hashes to `wanted` (a dashboard session keeps only the hash).
    pub async fn token_by_hash(&self, wanted: &str) -> Result<Option<TokenRecord>> {
        Ok(self
            .list_tokens()
            .await?
            .into_iter()
            .find(|t| bool::from(t.secret_sha256.as_bytes().ct_eq(wanted.as_bytes()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_stored_only_as_their_hash() {
        let (one, two) = (new_secret(), new_secret());
        assert!(one.starts_with(SECRET_PREFIX));
        assert_eq!(one.len(), SECRET_PREFIX.len() + 64);
        assert_ne!(one, two);
        let hash = secret_sha256(&one);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&one[SECRET_PREFIX.len()..]));
        assert_eq!(hash, secret_sha256(&one));
    }

    #[test]
    fn roles_include_the_ones_before_them() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        let record = TokenRecord {
            name: "t".into(),
            namespace: None,
            role: Role::Viewer,
            created: Utc::now(),
            expires: Some(Utc::now() - chrono::Duration::seconds(1)),
            secret_sha256: String::new(),
        };
        assert!(record.is_expired(Utc::now()));
    }
}
