//! The etcd store: objects, status, history, events, watches and API tokens under one key
//! prefix.
//!
//! Every write is a transaction that compares what it read (the object's mod revision, or its
//! absence), so a stale writer gets [`StoreError::Conflict`] instead of overwriting. Every call
//! has a deadline, so an unreachable etcd is an error within seconds, never a hang.

mod changeset;
mod error;
mod events;
mod keys;
mod lease;
mod members;
mod objects;
mod paging;
mod tokens;
mod watch;

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, GetResponse, Txn, TxnResponse};

use members::{Idempotence, Members};

pub use changeset::Change;
pub use error::{Result, StoreError};
pub use events::{decode_event, Event, EventFilter, EventType, NewEvent};
pub use keys::Keys;
pub use lease::Fence;
pub use objects::{ApplyOutcome, HISTORY_LIMIT};
pub use tokens::{new_secret, secret_sha256, Role, TokenRecord, SECRET_PREFIX};
pub use watch::{RawItem, WatchEvent};

pub const DEFAULT_PREFIX: &str = "/nomarch/";
/// The deadline of every unary etcd call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long events live after their last occurrence.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// etcd's TLS options from PEM files (a CA to trust; a client identity for
/// `--client-cert-auth`).
fn etcd_tls(
    files: &crate::clients::TlsFiles,
) -> std::result::Result<etcd_client::TlsOptions, crate::clients::TlsError> {
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = files.ca_pem()? {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = files.identity_pem()? {
        options = options.identity(etcd_client::Identity::from_pem(cert, key));
    }
    Ok(options)
}

/// An etcd user and password, for an etcd with authentication enabled.
pub struct EtcdUser {
    pub name: String,
    pub password: crate::clients::Secret,
}

#[derive(Clone)]
pub struct Store {
    members: std::sync::Arc<Members>,
    keys: Keys,
    endpoints: String,
    leases: events::LeaseCache,
    /// Set while this process leads; shared by every clone (see [`lease`]).
    fence: std::sync::Arc<std::sync::RwLock<Option<Fence>>>,
}

impl Store {
    /// Connects and checks that etcd answers, within [`REQUEST_TIMEOUT`].
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Store> {
        Store::connect_as(endpoints, prefix, None, None).await
    }

    /// As [`Store::connect`], authenticating as this etcd user when etcd has auth enabled.
    /// The token etcd hands out expires; it is renewed on the first refusal. With several
    /// endpoints (the members of one etcd cluster), any one member answering is enough.
    pub async fn connect_as(
        endpoints: &[String],
        prefix: &str,
        user: Option<&EtcdUser>,
        tls: Option<&crate::clients::TlsFiles>,
    ) -> Result<Store> {
        let joined = endpoints.join(",");
        let unreachable = |detail: String| StoreError::Unreachable {
            endpoints: joined.clone(),
            detail,
        };
        if endpoints.is_empty() {
            return Err(unreachable(
                "no endpoints given (use --etcd or NOMARCH_ETCD_ENDPOINTS)".into(),
            ));
        }
        // No per-request timeout on the channel: it would also cut long-lived watch streams.
        // Unary calls get their own deadline in `Members::call`. A member cut off from the
        // others refuses at once ("no leader") instead of serving or hanging.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if let Some(tls) = tls {
            options = options.with_tls(etcd_tls(tls).map_err(|e| unreachable(e.to_string()))?);
        }
        if let Some(user) = user {
            options = options
                .with_user(user.name.clone(), user.password.expose())
                .with_auto_token_refresh(true);
        }
        let store = Store {
            members: std::sync::Arc::new(Members::new(endpoints, options)),
            keys: Keys::new(prefix),
            endpoints: joined,
            leases: events::LeaseCache::default(),
            fence: Default::default(),
        };
        store
            .read(|mut client| async move { client.status().await })
            .await?;
        Ok(store)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A call that changes nothing, asked of the members until one answers (module
    /// [`members`] says how), under [`REQUEST_TIMEOUT`].
    async fn read<T, F, Fut>(&self, request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.members
            .call(Idempotence::Read, REQUEST_TIMEOUT, request)
            .await
    }

    /// A call that writes: asked again only when etcd said it did not carry it out.
    async fn write<T, F, Fut>(&self, request: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.members
            .call(Idempotence::Write, REQUEST_TIMEOUT, request)
            .await
    }

    /// `get` of one key or range.
    async fn kv_get(
        &self,
        key: impl Into<Vec<u8>>,
        options: Option<GetOptions>,
    ) -> Result<GetResponse> {
        let key = key.into();
        self.read(|client| {
            let (key, options) = (key.clone(), options.clone());
            async move {
                client
                    .kv_client()
                    .max_decoding_message_size(paging::MAX_PAGE_BYTES)
                    .get(key, options)
                    .await
            }
        })
        .await
    }

    /// A transaction that may write.
    async fn kv_txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.write(|client| {
            let txn = txn.clone();
            async move { client.kv_client().txn(txn).await }
        })
        .await
    }

    /// A transaction of reads only.
    async fn kv_read_txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.read(|client| {
            let txn = txn.clone();
            async move { client.kv_client().txn(txn).await }
        })
        .await
    }

    /// A new lease of `ttl` seconds.
    async fn grant_ttl(&self, ttl: i64) -> Result<etcd_client::LeaseGrantResponse> {
        self.write(|client| async move { client.lease_client().grant(ttl, None).await })
            .await
    }

    /// The current revision of the whole store.
    pub async fn revision(&self) -> Result<i64> {
        let response = self.kv_get(self.keys.prefix(), None).await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Compacts history up to `revision` (for tests of watch resumption, and for operators).
    pub async fn compact(&self, revision: i64) -> Result<()> {
        self.write(|client| async move {
            let options = etcd_client::CompactionOptions::new().with_physical();
            client.kv_client().compact(revision, Some(options)).await
        })
        .await?;
        Ok(())
    }
}
