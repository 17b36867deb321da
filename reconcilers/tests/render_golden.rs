//! Rendering is pinned by golden files: each example App in `manifests/examples/apps/` renders
//! to exactly `tests/golden/app-<name>.json`, with the fingerprint status records for it in
//! `tests/golden/fingerprints.txt`. Run with `BLESS=1` after a deliberate change and read the
//! diff: it is what nomarch will send to Nomad.

use std::path::{Path, PathBuf};

use crds::Resource;
use reconcilers::fingerprint::fingerprint;
use reconcilers::kind::app;
use reconcilers::nomad_job::Job;
use serde_json::json;

/// An App's job as JSON, to read the way Nomad's API names it.
fn render_app(app: &crds::App) -> serde_json::Value {
    serde_json::to_value(app::render_app(app)).expect("jobs serialize")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/apps")
}

#[test]
fn example_apps_render_to_their_golden_jobs() {
    let manifests = crds::load_paths(&[examples()]).expect("examples are valid");
    assert!(manifests.len() >= 3);
    let bless = std::env::var_os("BLESS").is_some();
    let mut changed = Vec::new();
    let mut fingerprints = String::new();
    for manifest in manifests {
        let Resource::App(mut app) = manifest.resource else {
            continue;
        };
        // As stored: the store numbers generations.
        app.metadata.generation = 3;
        let job = app::render_app(&app);
        let rendered = serde_json::to_string_pretty(&job).unwrap() + "\n";
        // What status records as last registered, read as the controller reads it.
        let as_read: Job = serde_json::from_str(&rendered).unwrap();
        fingerprints.push_str(&format!(
            "{} {}\n",
            app.metadata.name,
            fingerprint(&serde_json::to_value(&as_read).unwrap())
        ));
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/app-{}.json", app.metadata.name));
        if bless {
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).unwrap_or_default() != rendered {
            changed.push(golden.display().to_string());
        }
    }
    // A changed fingerprint makes every running controller register every such job again
    // after an upgrade: pinned apart from the jobs, so that is never an accident.
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fingerprints.txt");
    if bless {
        std::fs::write(&pinned, &fingerprints).unwrap();
    } else if std::fs::read_to_string(&pinned).unwrap_or_default() != fingerprints {
        changed.push(pinned.display().to_string());
    }
    assert!(
        changed.is_empty(),
        "rendering changed (BLESS=1 to accept): {changed:?}"
    );
}

#[test]
fn secrets_stay_references_and_literals_stay_literal() {
    let manifests = crds::load_paths(&[examples().join("api.yaml")]).unwrap();
    let Resource::App(app) = &manifests[0].resource else {
        panic!("api is an app")
    };
    let job = render_app(app);
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Env"]["LOG_LEVEL"], "info");
    assert!(
        task["Env"].get("DATABASE_PASSWORD").is_none(),
        "a secret is never an env literal"
    );
    let template = task["Templates"][0]["EmbeddedTmpl"].as_str().unwrap();
    assert!(
        template.contains(r#"nomadVar "nomad/jobs/api""#)
            && template.contains(r#"DATABASE_PASSWORD={{ index . "database_password" }}"#),
        "{template}"
    );
}

/// The one App a manifest text holds.
fn app_from(file: &str, text: &str) -> crds::App {
    match crds::parse_str(file, text).unwrap().remove(0).resource {
        crds::Resource::App(app) => app,
        _ => unreachable!("an App manifest"),
    }
}

/// `spec.nomad` merges into the job, the group and the task: new keys added, maps merged
/// key by key (nomarch's meta and env stay beside the additions), `null` removes.
#[test]
fn overrides_merge_into_the_job_its_group_and_its_task() {
    let text = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: tuned\nspec:\n  image: nginx:1\n  env:\n    - name: MODE\n      value: fast\n  nomad:\n    job:\n      Priority: 70\n      Meta:\n        team: web\n    group:\n      ShutdownDelay: 5000000000\n      ReschedulePolicy: null\n    task:\n      KillTimeout: 30000000000\n      Env:\n        EXTRA: \"1\"\n      Config:\n        work_dir: /srv\n";
    let app = app_from("tuned.yaml", text);
    let job = render_app(&app);
    assert_eq!(job["Priority"], 70);
    assert_eq!(job["Meta"]["team"], "web");
    assert_eq!(
        job["Meta"]["nomarch.io/managed-by"], "nomarch",
        "nomarch's meta stays"
    );
    let group = &job["TaskGroups"][0];
    assert_eq!(group["ShutdownDelay"], 5_000_000_000u64);
    assert!(group.get("ReschedulePolicy").is_none(), "null removes");
    let task = &group["Tasks"][0];
    assert_eq!(task["KillTimeout"], 30_000_000_000u64);
    assert_eq!(task["Env"], json!({"MODE": "fast", "EXTRA": "1"}));
    assert_eq!(task["Config"]["image"], "nginx:1");
    assert_eq!(task["Config"]["work_dir"], "/srv");
}

/// Volumes become the group's requests and the task's mounts, as Nomad's API names them;
/// a job without volumes gets neither key (its fingerprint stays what it was).
#[test]
fn host_volumes_render_as_group_requests_and_task_mounts() {
    let text = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: store\nspec:\n  image: minio/minio\n  volumes:\n    - name: data\n      source: tenant-data\n      mountPath: /data\n    - name: config\n      source: shared-config\n      readOnly: true\n      mountPath: /etc/store\n";
    let app = app_from("store.yaml", text);
    let job = render_app(&app);
    let group = &job["TaskGroups"][0];
    assert_eq!(
        group["Volumes"]["config"],
        json!({"Name": "config", "Type": "host", "Source": "shared-config", "ReadOnly": true})
    );
    assert_eq!(
        group["Tasks"][0]["VolumeMounts"],
        json!([
            {"Volume": "data", "Destination": "/data", "ReadOnly": false},
            {"Volume": "config", "Destination": "/etc/store", "ReadOnly": true},
        ])
    );
    let mut plain = app.clone();
    plain.spec.volumes.clear();
    let plain = render_app(&plain);
    assert!(plain["TaskGroups"][0].get("Volumes").is_none());
    assert!(plain["TaskGroups"][0]["Tasks"][0]
        .get("VolumeMounts")
        .is_none());
}
