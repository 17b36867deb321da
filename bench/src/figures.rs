//! Figures, percentiles and timing helpers shared by the scenarios.

use std::time::Instant;

/// One reported figure.
pub struct Figure {
    pub scenario: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub floor: Option<f64>,
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        self.floor.filter(|f| *f > 0.0).map(|f| self.value / f)
    }
}

/// The p50 and p99 of `sorted` millisecond samples against their floors; `name` gets the
/// percentile's label ("p50", "p99") and places it in the figure's name.
pub fn p50_p99(
    scenario: &'static str,
    name: impl Fn(&str) -> String,
    sorted: &[f64],
    floors: (f64, f64),
) -> [Figure; 2] {
    [("p50", 0.5, floors.0), ("p99", 0.99, floors.1)].map(|(label, p, floor)| Figure {
        scenario,
        name: name(label),
        value: percentile(sorted, p),
        unit: "ms",
        floor: Some(floor),
    })
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

/// Times `samples` sequential calls; returns milliseconds, sorted.
pub async fn latencies<F, Fut>(samples: usize, mut call: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        call(i).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Resident and peak memory of a process, from /proc.
pub fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
