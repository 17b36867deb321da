//! The etcd store: objects, status, history, events and watches under one key prefix.
//!
//! Every write is a transaction that compares what it read (the object's mod revision, or its
//! absence), so a stale writer gets [`StoreError::Conflict`] instead of overwriting. Every call
//! has a deadline, so an unreachable etcd is an error within seconds, never a hang.

mod changeset;
mod error;
mod events;
mod keys;
mod lease;
mod objects;
mod paging;
mod watch;

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

pub use changeset::Change;
pub use error::{Result, StoreError};
pub use events::{decode_event, Event, EventFilter, EventType, NewEvent};
pub use keys::Keys;
pub use lease::Fence;
pub use objects::{ApplyOutcome, HISTORY_LIMIT};
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
    client: Client,
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
    /// The token etcd hands out expires; it is renewed on the first refusal.
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
        // Unary calls get their own deadline in `call`.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = tls {
            options = options.with_tls(etcd_tls(tls).map_err(|e| unreachable(e.to_string()))?);
        }
        if let Some(user) = user {
            options = options
                .with_user(user.name.clone(), user.password.expose())
                .with_auto_token_refresh(true);
        }
        let connect = Client::connect(endpoints, Some(options));
        let mut client = match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unreachable(root_cause(&e))),
            Err(_) => return Err(unreachable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, client.status()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unreachable(root_cause(&e))),
            Err(_) => return Err(unreachable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
        Ok(Store {
            client,
            keys: Keys::new(prefix),
            endpoints: joined,
            leases: events::LeaseCache::default(),
            fence: Default::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one unary etcd call under the request deadline, mapping transport failures to
    /// `Unreachable` so callers see one clear error.
    async fn call<T, F>(&self, request: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e @ etcd_client::Error::TransportError(_))) => Err(StoreError::Unreachable {
                endpoints: self.endpoints.clone(),
                detail: root_cause(&e),
            }),
            Ok(Err(e @ etcd_client::Error::GRpcStatus(_))) if is_unavailable(&e) => {
                Err(StoreError::Unreachable {
                    endpoints: self.endpoints.clone(),
                    detail: root_cause(&e),
                })
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout(REQUEST_TIMEOUT)),
        }
    }

    /// The current revision of the whole store.
    pub async fn revision(&self) -> Result<i64> {
        let mut kv = self.client.kv_client();
        let response = self.call(kv.get(self.keys.prefix(), None)).await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Compacts history up to `revision` (for tests of watch resumption, and for operators).
    pub async fn compact(&self, revision: i64) -> Result<()> {
        let mut kv = self.client.kv_client();
        self.call(kv.compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        ))
        .await?;
        Ok(())
    }
}

fn is_unavailable(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status) if status.code() == tonic::Code::Unavailable)
}

/// The innermost cause ("Connection refused (os error 111)"), which is what a person can act
/// on; gRPC and hyper wrap it several layers deep.
fn root_cause(e: &etcd_client::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match e {
        etcd_client::Error::GRpcStatus(status)
            if !std::ptr::eq(cause, e as &dyn std::error::Error) =>
        {
            format!("{}: {cause}", status.message())
        }
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        _ => cause.to_string(),
    }
}
