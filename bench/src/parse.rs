//! Manifest parsing at size: one file holding 1,000 and then 8,000 Apps, as `nomarch apply`
//! and the git sync read them. The floor is the YAML scanner alone over the same text (what
//! any YAML loader pays); the ratio is what positions, validation and defaults add. A third
//! figure compares the big file with eight times the small one, so work that grows faster
//! than the file (a quadratic slip once took `apply` of 1,000 manifests to 30 s) shows as a
//! ratio above 1.

use std::time::Instant;

use anyhow::bail;

use crate::figures::Figure;

const SIZES: [usize; 2] = [1_000, 8_000];
/// The best of a few runs: the figure is the parser's cost, not the machine's noise.
const RUNS: usize = 3;

pub fn run(figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let mut parsed_ms = Vec::new();
    for apps in SIZES {
        let text = apps_file(apps);
        let scan = best_of(|| {
            let events = saphyr_parser::Parser::new_from_str(&text).count();
            Ok(events > 0)
        })?;
        let parse = best_of(|| match crds::manifest::parse_str("bench.yaml", &text) {
            Ok(manifests) if manifests.len() == apps => Ok(true),
            Ok(manifests) => bail!("parsed {} of {apps} Apps", manifests.len()),
            Err(errors) => bail!("the generated file is invalid: {}", errors[0]),
        })?;
        figures.push(Figure {
            scenario: "parse",
            name: format!("parse + validate one file of {apps} Apps"),
            value: parse,
            unit: "ms",
            floor: Some(scan),
        });
        parsed_ms.push(parse);
    }
    let growth = (SIZES[1] / SIZES[0]) as f64;
    figures.push(Figure {
        scenario: "parse",
        name: format!(
            "{} Apps against {growth}x the time of {} (linear = 1.0)",
            SIZES[1], SIZES[0]
        ),
        value: parsed_ms[1],
        unit: "ms",
        floor: Some(parsed_ms[0] * growth),
    });
    Ok(())
}

/// Milliseconds of the fastest of `RUNS` calls; a call that fails stops the scenario.
fn best_of(mut call: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let started = Instant::now();
        if !call()? {
            bail!("nothing was read");
        }
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

/// `apps` App documents in one stream, each with the fields a real one carries.
fn apps_file(apps: usize) -> String {
    (0..apps)
        .map(|i| {
            format!(
                "---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i}\n  \
                 labels:\n    team: t{team}\nspec:\n  image: registry.example/app-{i}:1.{i}\n  \
                 replicas: {replicas}\n  resources:\n    cpu: 100\n    memory: 128\n  \
                 ports:\n    - name: http\n      containerPort: 8080\n  \
                 env:\n    - name: LOG_LEVEL\n      value: info\n    - name: REGION\n      \
                 value: eu-{team}\n  health:\n    type: http\n    port: http\n    \
                 path: /healthz\n",
                team = i % 7,
                replicas = i % 3 + 1,
            )
        })
        .collect()
}
