//! `nomarch rollout restart KIND/NAME`: prints each step of [`crate::ops::restart`].

use std::time::Duration;

use crds::ObjectRef;

use super::say;
use super::{connect, CliError, StoreArgs};
use crate::ops::restart::{self, RestartError, Target};

fn cli_error(e: RestartError) -> CliError {
    match e {
        RestartError::Refused(why) => CliError::Usage(why),
        RestartError::Failed(why) => CliError::Runtime(why),
        RestartError::Timeout(why) => CliError::Timeout(why),
    }
}

pub async fn run(
    store_args: &StoreArgs,
    object: &ObjectRef,
    nomad_args: &connect::NomadArgs,
    consul_args: &connect::ConsulArgs,
    timeout: Duration,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let resource = store.get_existing(object).await?;
    let target = Target::of(&resource).map_err(cli_error)?;
    let nomad = nomad_args.client(|_| {})?;
    let consul = consul_args.client(|_| {})?;
    let batches = target.plan(&nomad).await.map_err(cli_error)?;
    restart::restart(&nomad, &consul, &target, &batches, timeout, |step| {
        say!("{}", step.text(object))
    })
    .await
    .map_err(cli_error)
}
