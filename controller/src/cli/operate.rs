//! Day-2 acts on one object: `stop`/`start` (its `spec.stopped`), `suspend`/`resume` (nomarch
//! sets it aside) and `reconcile` (look again now). Each writes the stored object
//! check-and-set on the revision it read, then, unless told not to, follows the controller's
//! answer with the same verdicts as `apply --wait`.

use std::time::Duration;

use crds::{ObjectRef, Resource};
use reconcilers::operator::{is_suspended, RECONCILE_REQUESTED, SUSPENDED};
use reconcilers::source_sync::Owner;

use super::wait::{self, Awaited};
use super::{say, CliError};
use crate::store::Store;

/// How long to follow the controller's answer; `None`: do not.
pub type Follow = Option<Duration>;

/// Writes `changed` over the stored object it was read from (check-and-set on its revision);
/// returns the generation now stored.
async fn write(store: &Store, mut changed: Resource) -> Result<i64, CliError> {
    let object = changed.object_ref();
    changed.set_status(None);
    store.apply(&[changed]).await?;
    Ok(store.get_existing(&object).await?.metadata().generation)
}

async fn follow(
    store: &Store,
    object: &ObjectRef,
    awaited: Awaited,
    follow: Follow,
) -> Result<(), CliError> {
    match follow {
        Some(timeout) => wait::follow(store, &[(object.clone(), awaited)], timeout)
            .await?
            .into_result(),
        None => Ok(()),
    }
}

/// `nomarch stop` / `nomarch start`: sets `spec.stopped` as a new generation of each object.
/// Every object is checked before any is written (a cron job among apps writes nothing). For
/// an object a GitSource owns, the repository decides, unless that source is suspended (then
/// the next sync after `resume` puts the repository's value back).
pub async fn set_stopped(
    store: &Store,
    objects: &[ObjectRef],
    stopped: bool,
    wait_for: Follow,
) -> Result<(), CliError> {
    let mut changed = Vec::new();
    for object in objects {
        let mut resource = store.get_existing(object).await?;
        let source_suspended = source_suspended(store, &resource).await?;
        let change = reconcilers::operator::set_stopped(&mut resource, stopped, source_suspended)
            .map_err(CliError::Usage)?;
        if !change {
            say!(
                "{object} is {} already",
                if stopped { "stopped" } else { "started" }
            );
            continue;
        }
        resource.set_status(None);
        changed.push(resource);
    }
    // One write, each object compared on the revision it was read at.
    store.apply(&changed).await?;
    let mut targets = Vec::new();
    for object in objects {
        let generation = store.get_existing(object).await?.metadata().generation;
        if changed.iter().any(|r| r.object_ref() == *object) {
            say!(
                "{object} {} (generation {generation})",
                if stopped { "stopping" } else { "starting" }
            );
        }
        targets.push((object.clone(), Awaited::from(generation)));
    }
    match wait_for {
        Some(timeout) => wait::follow(store, &targets, timeout).await?.into_result(),
        None => Ok(()),
    }
}

/// Whether the GitSource that owns `resource` (if any) is suspended: then its objects may be
/// changed by hand until it resumes.
pub async fn source_suspended(store: &Store, resource: &Resource) -> Result<bool, CliError> {
    let Owner::Source(source) = Owner::of(resource) else {
        return Ok(false);
    };
    Ok(store
        .get(&source)
        .await?
        .is_some_and(|s| is_suspended(s.metadata())))
}

/// `nomarch suspend` / `nomarch resume`: the suspend annotation. Allowed for objects a
/// GitSource owns: it is not desired state, and the sync keeps it.
pub async fn set_suspended(
    store: &Store,
    object: &ObjectRef,
    suspended: bool,
) -> Result<(), CliError> {
    let mut resource = store.get_existing(object).await?;
    if is_suspended(resource.metadata()) == suspended {
        say!(
            "{object} is {} already",
            if suspended {
                "suspended"
            } else {
                "not suspended"
            }
        );
        return Ok(());
    }
    let annotations = &mut resource.metadata_mut().annotations;
    if suspended {
        annotations.insert(SUSPENDED.to_string(), "true".to_string());
    } else {
        annotations.remove(SUSPENDED);
    }
    write(store, resource).await?;
    say!(
        "{object} {}",
        if suspended {
            "suspended: nomarch changes nothing for it until `nomarch resume`; what runs keeps running"
        } else {
            "resumed"
        }
    );
    Ok(())
}

/// `nomarch reconcile`: asks for a reconcile now (for a GitSource, a fetch now) with a new
/// token in the request annotation, and follows it until the controller has handled that
/// token. `with_source` first does the same for the GitSource that owns the object.
pub async fn reconcile_now(
    store: &Store,
    object: &ObjectRef,
    with_source: bool,
    wait_for: Follow,
) -> Result<(), CliError> {
    let resource = store.get_existing(object).await?;
    if with_source {
        let Owner::Source(source) = Owner::of(&resource) else {
            return Err(CliError::Usage(format!(
                "{object} was applied by hand: it has no source to fetch first"
            )));
        };
        request(store, &source, wait_for).await?;
    }
    request(store, object, wait_for).await
}

async fn request(store: &Store, object: &ObjectRef, wait_for: Follow) -> Result<(), CliError> {
    let mut resource = store.get_existing(object).await?;
    if is_suspended(resource.metadata()) {
        return Err(CliError::Usage(format!(
            "{object} is suspended: `nomarch resume {}/{}` first",
            object.kind, object.name
        )));
    }
    let token = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    resource
        .metadata_mut()
        .annotations
        .insert(RECONCILE_REQUESTED.to_string(), token.clone());
    let generation = write(store, resource).await?;
    say!("{object}: reconcile requested");
    let awaited = Awaited {
        generation,
        request: Some(token),
    };
    follow(store, object, awaited, wait_for).await
}
