//! Prometheus metrics: reconciles by kind and result, reconcile duration, queue depth, Nomad
//! and Consul requests and latency, drift corrections, and who leads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::clients::stats::{latency_histogram, ApiStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindResult, Counter>,
    pub reconcile_seconds: Family<KindLabel, Histogram>,
    pub queue_depth: Gauge,
    pub drift_corrections: Family<KindLabel, Counter>,
    pub is_leader: Gauge,
    pub repins: Counter,
    pub heals: Counter,
    /// Unix time of each git source's last successful sync: `time() - this` is the sync age.
    pub git_last_sync: Family<SourceLabel, Gauge>,
    pub webhooks_refused: Counter,
    api_requests: Family<ApiLabel, Counter>,
    api_errors: Family<ApiLabel, Counter>,
    api_writes: Family<ApiLabel, Counter>,
    api_seconds: Family<ApiLabel, Histogram>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("nomarch");
        let reconciles = Family::<KindResult, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<KindLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Keys waiting in the work queue",
            queue_depth.clone(),
        );
        let drift_corrections = Family::<KindLabel, Counter>::default();
        registry.register(
            "drift_corrections",
            "Jobs restored after a change outside nomarch",
            drift_corrections.clone(),
        );
        let is_leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this controller reconciles",
            is_leader.clone(),
        );
        let repins = Counter::default();
        registry.register(
            "repins",
            "Pubs moved off a hub that was down, drained or gone",
            repins.clone(),
        );
        let heals = Counter::default();
        registry.register(
            "heals",
            "Allocations stopped because their checks stayed critical",
            heals.clone(),
        );
        let git_last_sync = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "git_last_sync_timestamp_seconds",
            "When each git source last synced a commit (Unix time)",
            git_last_sync.clone(),
        );
        let webhooks_refused = Counter::default();
        registry.register(
            "webhooks_refused",
            "Webhook requests refused for a missing or wrong signature",
            webhooks_refused.clone(),
        );
        let api_requests = Family::<ApiLabel, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to Nomad and Consul",
            api_requests.clone(),
        );
        let api_errors = Family::<ApiLabel, Counter>::default();
        registry.register(
            "api_errors",
            "Failed requests to Nomad and Consul",
            api_errors.clone(),
        );
        let api_writes = Family::<ApiLabel, Counter>::default();
        registry.register(
            "api_writes",
            "Writes to Nomad and Consul",
            api_writes.clone(),
        );
        let api_seconds = Family::<ApiLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "api_request_duration_seconds",
            "Latency of requests to Nomad and Consul",
            api_seconds.clone(),
        );
        // Every kind's series exist from the start, at zero, so that rate() and the alert rules
        // see a zero rather than nothing before the first reconcile or correction.
        for kind in crds::Kind::ALL {
            let kind = kind.as_str().to_string();
            drop(reconciles.get_or_create(&KindResult {
                kind: kind.clone(),
                result: "success".into(),
            }));
            drop(reconcile_seconds.get_or_create(&KindLabel { kind: kind.clone() }));
            drop(drift_corrections.get_or_create(&KindLabel { kind }));
        }
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            queue_depth,
            drift_corrections,
            is_leader,
            repins,
            heals,
            git_last_sync,
            webhooks_refused,
            api_requests,
            api_errors,
            api_writes,
            api_seconds,
        }
    }

    /// The counters a client of `api` feeds.
    pub fn api_stats(&self, api: &str) -> ApiStats {
        let label = ApiLabel {
            api: api.to_string(),
        };
        ApiStats {
            requests: self.api_requests.get_or_create(&label).clone(),
            errors: self.api_errors.get_or_create(&label).clone(),
            writes: self.api_writes.get_or_create(&label).clone(),
            latency: self.api_seconds.get_or_create(&label).clone(),
        }
    }

    pub fn record_reconcile(&self, kind: &str, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&KindResult {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KindLabel { kind: kind.into() })
            .observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("metrics encode to a string");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
