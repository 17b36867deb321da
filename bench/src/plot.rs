//! `bench/results.svg`: the apply → registered latency distribution (as a CDF, next to its
//! floor) and the cold-start convergence curve, from the same run as the table.

use std::path::Path;

use plotters::prelude::*;

/// What the plot shows; either half may be missing when its scenario did not run.
#[derive(Default)]
pub struct PlotData {
    /// Sorted apply → registered latencies, in ms, and the floor's p50.
    pub latencies: Option<(Vec<f64>, f64)>,
    /// (seconds since the controller started, objects Ready), and the total.
    pub convergence: Option<(Vec<(f64, usize)>, usize)>,
}

pub fn write(path: &Path, data: &PlotData, caption: &str) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(caption, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(550);
    if let Some((latencies, floor)) = &data.latencies {
        latency_cdf(&left, latencies, *floor)?;
    }
    if let Some((curve, total)) = &data.convergence {
        convergence(&right, curve, *total)?;
    }
    root.present()?;
    Ok(())
}

fn latency_cdf<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    sorted: &[f64],
    floor: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let max = sorted.last().copied().unwrap_or(1.0).max(floor) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption("apply → registered (CDF)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..max, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds")
        .y_desc("fraction of updates")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = sorted.len().max(1) as f64;
    chart
        .draw_series(LineSeries::new(
            sorted
                .iter()
                .enumerate()
                .map(|(i, v)| (*v, (i + 1) as f64 / n)),
            &BLUE,
        ))?
        .label("nomarch")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(vec![(floor, 0.0), (floor, 1.0)], &RED))?
        .label("floor p50 (etcd put→watch + register)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn convergence<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    curve: &[(f64, usize)],
    total: usize,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let end = curve.last().map_or(1.0, |(t, _)| *t).max(1.0) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("cold start: {total} objects Ready"),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..end, 0f64..(total as f64 * 1.05))?;
    chart
        .configure_mesh()
        .x_desc("seconds since the controller started")
        .y_desc("objects Ready")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart.draw_series(LineSeries::new(
        curve.iter().map(|(t, n)| (*t, *n as f64)),
        &GREEN,
    ))?;
    Ok(())
}
