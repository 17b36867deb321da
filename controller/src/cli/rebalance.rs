//! `nomarch rebalance pubs`: even out hub usage (a hub that came back or joined gets work).
//! The moves are planned by `reconcilers::rebalance` from the pubs' statuses and Nomad's node
//! list; `--dry-run` prints them. Otherwise each moving pub gets the `nomarch.io/move-to`
//! annotation (check-and-set), the controller moves it as it moves any pub (paced, never onto a
//! full hub), and once it is there the annotation is removed again.

use std::time::Duration;

use crds::{ObjectRef, Resource};
use reconcilers::operator::MOVE_TO;
use reconcilers::rebalance::{plan, Limits, Move, PlacedPub};

use super::{connect, say, CliError, NamespaceArgs};
use crate::clients::QueryOptions;
use crate::runtime::nodes::hub_from;
use crate::store::Store;
use crds::select::Selector;

/// How often a rebalance looks at whether its pubs arrived.
const ARRIVAL_CHECK: Duration = Duration::from_millis(500);

pub struct RebalanceArgs {
    pub namespace: NamespaceArgs,
    pub selector: Option<Selector>,
    pub dry_run: bool,
    pub limits: Limits,
    pub timeout: Duration,
}

pub async fn run(
    store: &Store,
    nomad_args: &connect::NomadArgs,
    args: &RebalanceArgs,
) -> Result<(), CliError> {
    let (objects, _) = store.list(Some(crds::Kind::Pub)).await?;
    let pubs: Vec<crds::Pub> = objects
        .into_iter()
        .filter_map(|r| match r {
            Resource::Pub(p) => Some(p),
            _ => None,
        })
        .collect();
    let nomad = nomad_args.client(|_| {})?;
    let nodes = nomad
        .nodes(QueryOptions::default().param("resources", "true"))
        .await
        .map_err(|e| CliError::Runtime(format!("Nomad: {e}")))?
        .value;
    let needs_meta = pubs.iter().any(|p| !p.spec.hub_selector.meta.is_empty());
    let mut hubs = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let meta = match needs_meta {
            true => Some(
                nomad
                    .node_meta(&node.id)
                    .await
                    .map_err(|e| CliError::Runtime(format!("Nomad: {e}")))?,
            ),
            false => None,
        };
        hubs.push(hub_from(node, meta));
    }
    let placed: Vec<PlacedPub> = pubs
        .iter()
        .filter_map(|p| {
            let hub = p.status.as_ref()?.hub.hub.as_ref()?;
            let chosen = args.namespace.matches(&p.metadata.namespace)
                && args
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&p.metadata.labels));
            Some(PlacedPub::of(p, &hub.id, !chosen))
        })
        .collect();
    let moves = plan(&hubs, &placed, args.limits);
    let name_of = |id: &str| {
        hubs.iter()
            .find(|h| h.id == id)
            .map_or(id.to_string(), |h| h.name.clone())
    };
    if moves.is_empty() {
        say!("hubs are as even as moves can make them: nothing to move");
        return Ok(());
    }
    for m in &moves {
        say!("{}: {} → {}", m.object, name_of(&m.from), name_of(&m.to));
    }
    if args.dry_run {
        say!("(dry run: nothing moved)");
        return Ok(());
    }
    for m in &moves {
        annotate(store, &m.object, Some(&name_of(&m.to))).await?;
    }
    let arrived = wait_for_arrival(store, &moves, args.timeout).await?;
    for m in &moves {
        if arrived.contains(&m.object) {
            annotate(store, &m.object, None).await?;
            say!("{}: moved to {}", m.object, name_of(&m.to));
        }
    }
    let late: Vec<String> = moves
        .iter()
        .filter(|m| !arrived.contains(&m.object))
        .map(|m| m.object.to_string())
        .collect();
    if late.is_empty() {
        Ok(())
    } else {
        Err(CliError::Timeout(format!(
            "not moved within the timeout (the controller keeps trying while `{MOVE_TO}` stays): {}",
            late.join(", ")
        )))
    }
}

/// Sets (or removes) a pub's move-to annotation, check-and-set on the revision read.
async fn annotate(store: &Store, object: &ObjectRef, hub: Option<&str>) -> Result<(), CliError> {
    let Some(mut resource) = store.get(object).await? else {
        return Ok(());
    };
    let annotations = &mut resource.metadata_mut().annotations;
    match hub {
        Some(hub) => annotations.insert(MOVE_TO.to_string(), hub.to_string()),
        None => annotations.remove(MOVE_TO),
    };
    resource.set_status(None);
    store.apply(&[resource]).await?;
    Ok(())
}

/// The pubs whose status shows them on their new hub within `timeout`.
async fn wait_for_arrival(
    store: &Store,
    moves: &[Move],
    timeout: Duration,
) -> Result<Vec<ObjectRef>, CliError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut arrived = Vec::new();
        for m in moves {
            let on = store
                .get(&m.object)
                .await?
                .and_then(|r| r.status().and_then(|s| s.hub.hub.clone()))
                .map(|h| h.id);
            if on.as_deref() == Some(m.to.as_str()) {
                arrived.push(m.object.clone());
            }
        }
        if arrived.len() == moves.len() || tokio::time::Instant::now() >= deadline {
            return Ok(arrived);
        }
        tokio::time::sleep(ARRIVAL_CHECK).await;
    }
}
