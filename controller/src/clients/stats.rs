//! Request counters of one remote API: the metrics registry creates them per API label, and the
//! client feeds them on every request.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Request counters of one remote API, shared with its client.
#[derive(Clone, Debug)]
pub struct ApiStats {
    pub requests: Counter,
    pub errors: Counter,
    pub writes: Counter,
    pub latency: Histogram,
}

impl Default for ApiStats {
    fn default() -> Self {
        ApiStats {
            requests: Counter::default(),
            errors: Counter::default(),
            writes: Counter::default(),
            latency: latency_histogram(),
        }
    }
}

/// Request latency buckets: 0.5 ms doubling sixteen times.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}
