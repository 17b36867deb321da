//! Floors that leave nomarch out: Apps rendered as the controller renders them, without its
//! meta (so a running controller leaves them alone), to register straight to nomad-sim.

use anyhow::bail;
use controller::clients::nomad_types::Job;

/// The jobs of the Apps in a manifest text.
pub fn unmanaged_jobs(manifests: &str) -> anyhow::Result<Vec<Job>> {
    let parsed = crds::parse_str("direct.yaml", manifests).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    parsed
        .into_iter()
        .map(|m| match m.resource {
            crds::Resource::App(app) => {
                let mut job: Job = reconcilers::kind::app::render_app(&app);
                job.meta = None;
                Ok(job)
            }
            _ => bail!("only apps"),
        })
        .collect()
}
