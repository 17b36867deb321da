//! Rendering is pinned by golden files: each example App in `manifests/examples/apps/` renders
//! to exactly `tests/golden/app-<name>.json`. Run with `BLESS=1` after a deliberate change and
//! read the diff: it is what nomarch will send to Nomad.

use std::path::{Path, PathBuf};

use crds::Resource;
use reconcilers::render::app::render_app;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/apps")
}

#[test]
fn example_apps_render_to_their_golden_jobs() {
    let manifests = crds::load_paths(&[examples()]).expect("examples are valid");
    assert!(manifests.len() >= 3);
    let bless = std::env::var_os("BLESS").is_some();
    let mut changed = Vec::new();
    for manifest in manifests {
        let Resource::App(mut app) = manifest.resource else {
            continue;
        };
        // As stored: the store numbers generations.
        app.metadata.generation = 3;
        let rendered = serde_json::to_string_pretty(&render_app(&app)).unwrap() + "\n";
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/app-{}.json", app.metadata.name));
        if bless {
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).unwrap_or_default() != rendered {
            changed.push(golden.display().to_string());
        }
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
