//! NomadJobs end to end against etcd, nomad-sim and the controller: jobs people already wrote
//! (HCL parsed by Nomad's `/v1/jobs/parse`, or Nomad's JSON) registered, reverted when edited
//! behind nomarch's back, deleted with their object; what another actor owns left alone (an
//! autoscaled count, ignored paths); and what Nomad refuses refused before anything is written,
//! at its line in the manifest.

mod support;

use serde_json::{json, Value};
use support::{condition, eventually, settle, StateRepo, World};

/// A jobspec as people keep it in their repos, embedded as a block scalar.
fn hcl_job(name: &str, image: &str, extra_group: &str) -> String {
    format!(
        r#"apiVersion: nomarch.io/v1alpha1
kind: NomadJob
metadata:
  name: {name}
spec:
  hcl: |
    job "{name}" {{
      datacenters = ["dc1"]
      group "web" {{
        count = 2
{extra_group}
        network {{
          port "http" {{ to = 8080 }}
        }}
        task "web" {{
          driver = "docker"
          config {{
            image = "{image}"
            ports = ["http"]
          }}
          resources {{
            cpu    = 100
            memory = 128
          }}
        }}
      }}
    }}
"#
    )
}

fn image(job: &Value) -> Value {
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"].clone()
}

#[test]
fn an_hcl_job_is_registered_reverted_and_deregistered_with_its_object() {
    let world = World::start(&[]);
    world.apply(&hcl_job("shop", "nginx:1.27", ""));
    eventually("shop Ready", || world.is_ready("nomadjob", "shop"));
    let job = world.nomad("/v1/job/shop");
    assert_eq!(image(&job), "nginx:1.27");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    assert_eq!(job["Meta"]["nomarch.io/kind"], "NomadJob");
    assert_eq!(world.running_allocs("shop").len(), 2);
    let status = world.object("nomadjob", "shop")["status"].clone();
    assert_eq!(status["replicas"]["desired"], 2, "{status}");

    // Edited behind nomarch's back: reverted, and said.
    let mut edited = world.nomad("/v1/job/shop");
    edited["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:evil");
    assert_eq!(world.put_nomad("/v1/job/shop", json!({"Job": edited})), 200);
    eventually("the image restored", || {
        image(&world.nomad("/v1/job/shop")) == "nginx:1.27"
    });
    eventually("the correction said", || {
        world.events().contains("changed outside nomarch")
    });

    // A change to the jobspec is a spec change.
    world.apply(&hcl_job("shop", "nginx:1.28", ""));
    eventually("the new image registered", || {
        image(&world.nomad("/v1/job/shop")) == "nginx:1.28"
    });

    world.nomarch(&["delete", "nomadjob", "shop"], None);
    eventually("shop stopped", || {
        world.nomad("/v1/job/shop")["Stop"] == true
    });
}

#[test]
fn a_json_job_keeps_its_ignored_paths_and_nothing_else() {
    let world = World::start(&[]);
    let manifest = r#"apiVersion: nomarch.io/v1alpha1
kind: NomadJob
metadata:
  name: api
spec:
  ignoreDifferences:
    - /TaskGroups/0/Tasks/0/Config/image
  job:
    Datacenters: [dc1]
    TaskGroups:
      - Name: api
        Count: 1
        Tasks:
          - Name: api
            Driver: docker
            Config:
              image: api:1
            Resources:
              CPU: 100
              MemoryMB: 64
"#;
    world.apply(manifest);
    eventually("api Ready", || world.is_ready("nomadjob", "api"));
    assert_eq!(image(&world.nomad("/v1/job/api")), "api:1");

    // A deploy tool outside nomarch sets the image, and someone scales by hand.
    let mut edited = world.nomad("/v1/job/api");
    edited["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("api:2");
    edited["TaskGroups"][0]["Count"] = json!(3);
    assert_eq!(world.put_nomad("/v1/job/api", json!({"Job": edited})), 200);
    eventually("the count restored", || {
        world.nomad("/v1/job/api")["TaskGroups"][0]["Count"] == 1
    });
    assert_eq!(
        image(&world.nomad("/v1/job/api")),
        "api:2",
        "the ignored image is the deploy tool's"
    );

    // Stopped and started as the other kinds are (the job registered with `Stop`).
    world.nomarch(&["stop", "nomadjob/api"], None);
    assert_eq!(world.nomad("/v1/job/api")["Stop"], true);
    assert!(world.running_allocs("api").is_empty());
    world.nomarch(&["start", "nomadjob/api"], None);
    eventually("api runs again", || world.running_allocs("api").len() == 1);
}

#[test]
fn an_autoscaled_count_is_left_to_the_autoscaler() {
    let world = World::start(&[]);
    let scaling = "        scaling {\n          min = 1\n          max = 5\n        }\n";
    world.apply(&hcl_job("scaled", "nginx:1.27", scaling));
    eventually("scaled Ready", || world.is_ready("nomadjob", "scaled"));
    // Nomad refuses to scale while the job's deployment runs (job_endpoint.go `Scale`).
    eventually("the deployment done", || {
        world.nomad("/v1/job/scaled/deployment")["Status"] == "successful"
    });

    // The autoscaler's write: Nomad's scale endpoint.
    let answer = world
        .http
        .post(format!("{}/v1/job/scaled/scale", world.sim.nomad_url()))
        .json(&json!({"Count": 4, "Target": {"Group": "web"}, "Message": "autoscaler"}))
        .send()
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().unwrap_or_default()
    );
    eventually("four running", || world.running_allocs("scaled").len() == 4);
    // Several resyncs later the count stands and nothing was corrected.
    settle();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(world.nomad("/v1/job/scaled")["TaskGroups"][0]["Count"], 4);
    assert!(!world.events().contains("DriftCorrected"));

    // A spec change registers the new job with the autoscaler's count.
    world.apply(&hcl_job("scaled", "nginx:1.28", scaling));
    eventually("the new image registered", || {
        image(&world.nomad("/v1/job/scaled")) == "nginx:1.28"
    });
    assert_eq!(world.nomad("/v1/job/scaled")["TaskGroups"][0]["Count"], 4);

    // Outside the policy's bounds Nomad refuses the autoscaler itself.
    let too_many = world
        .http
        .post(format!("{}/v1/job/scaled/scale", world.sim.nomad_url()))
        .json(&json!({"Count": 9, "Target": {"Group": "web"}}))
        .send()
        .unwrap();
    assert_eq!(too_many.status(), 400);
    assert!(too_many
        .text()
        .unwrap()
        .contains("group count was greater than scaling policy maximum: 9 > 5"));
}

#[test]
fn what_nomad_refuses_is_refused_at_apply_where_it_is_written() {
    let world = World::start(&[]);
    // HCL Nomad cannot read: the error is at its line in the manifest, nothing is written.
    let typo = hcl_job("typo", "nginx:1", "").replace("count = 2", "cont = 2");
    let output = world.nomarch_exit(&["apply", "-f", "-"], Some(&typo));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `cont` is HCL line 4, column 5; the block starts on the manifest's line 7, column 5.
    assert!(
        stderr.contains("<stdin>:10:9: spec.hcl: Failed to parse job: input.hcl:4,5-9: Unsupported argument; An argument named \"cont\" is not expected here."),
        "{stderr}"
    );
    assert!(
        world.object("nomadjob", "typo").is_null(),
        "nothing written"
    );

    // A job Nomad's validation refuses, beside a valid App: neither is written.
    let starved = r#"apiVersion: nomarch.io/v1alpha1
kind: App
metadata:
  name: fine
spec:
  image: nginx:1
---
apiVersion: nomarch.io/v1alpha1
kind: NomadJob
metadata:
  name: starved
spec:
  job:
    TaskGroups:
      - Name: g
        Tasks:
          - Name: t
            Driver: docker
            Config: {image: x}
            Resources: {CPU: 100, MemoryMB: 1}
"#;
    let output = world.nomarch_exit(&["apply", "-f", "-"], Some(starved));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.job: Nomad refuses the job:")
            && stderr.contains("minimum MemoryMB value is 10"),
        "{stderr}"
    );
    assert!(world.object("app", "fine").is_null(), "all or nothing");

    // Another job's ID inside the HCL.
    let renamed = hcl_job("one", "nginx:1", "").replace("job \"one\"", "job \"two\"");
    let output = world.nomarch_exit(&["apply", "-f", "-"], Some(&renamed));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a NomadJob's job ID is its name"),
        "{stderr}"
    );
}

#[test]
fn diff_shows_what_a_nomadjob_would_change() {
    let world = World::start(&[]);
    world.apply(&hcl_job("shown", "nginx:1.27", ""));
    eventually("shown Ready", || world.is_ready("nomadjob", "shown"));
    let same = world.nomarch_exit(
        &["diff", "-f", "-"],
        Some(&hcl_job("shown", "nginx:1.27", "")),
    );
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let changed = world.nomarch_exit(
        &["diff", "-f", "-"],
        Some(&hcl_job("shown", "nginx:1.28", "")),
    );
    assert_eq!(changed.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&changed.stdout);
    assert!(stdout.contains("nginx:1.28"), "{stdout}");
}

/// The JSON form of a small job, as a manifest.
fn json_job(name: &str, image: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: NomadJob\nmetadata:\n  name: {name}\nspec:\n  job:\n    TaskGroups:\n      - Name: {name}\n        Tasks:\n          - Name: {name}\n            Driver: docker\n            Config: {{image: \"{image}\"}}\n            Resources: {{CPU: 100, MemoryMB: 64}}\n"
    )
}

#[test]
fn a_state_repo_of_nomadjobs_is_synced_checked_by_nomad_and_pruned() {
    let cache = tempfile::tempdir().unwrap();
    let mut world = World::without_controller(&[]);
    world.restart_controller_with(&["--git-cache", cache.path().to_str().unwrap()]);
    let repo = StateRepo::new();
    repo.write("jobs/shop.yaml", &hcl_job("shop", "nginx:1.27", ""));
    repo.write("jobs/api.yaml", &json_job("api", "api:1"));
    repo.push("two Nomad jobs");
    world.apply(&format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: {}\n  branch: main\n  path: jobs\n  interval: 1s\n  prune: true\n",
        repo.url()
    ));
    eventually("both jobs run", || {
        world.is_ready("nomadjob", "shop") && world.is_ready("nomadjob", "api")
    });

    // A commit whose HCL Nomad cannot read applies nothing, and says where.
    repo.write(
        "jobs/shop.yaml",
        &hcl_job("shop", "nginx:1.28", "").replace("count = 2", "cont = 2"),
    );
    repo.write("jobs/api.yaml", &json_job("api", "api:2"));
    repo.push("a typo");
    eventually("the sync refused", || {
        let status = world.object("gitsource", "state")["status"].clone();
        let synced = condition(&status, "Synced");
        synced["status"] == "False"
            && synced["message"]
                .as_str()
                .is_some_and(|m| m.contains("jobs/shop.yaml:10:9") && m.contains("cont"))
    });
    assert_eq!(
        image(&world.nomad("/v1/job/api")),
        "api:1",
        "nothing of the commit applied"
    );

    // The fix lands whole; then a removal prunes.
    repo.write("jobs/shop.yaml", &hcl_job("shop", "nginx:1.28", ""));
    repo.push("fixed");
    eventually("both edits in Nomad", || {
        image(&world.nomad("/v1/job/shop")) == "nginx:1.28"
            && image(&world.nomad("/v1/job/api")) == "api:2"
    });
    repo.remove("jobs/api.yaml");
    repo.push("api retired");
    eventually("api pruned and its job stopped", || {
        world.object("nomadjob", "api").is_null() && world.nomad("/v1/job/api")["Stop"] == true
    });
}

#[test]
fn a_batch_job_is_ready_once_registered_and_its_run_ends() {
    let world = World::start(&["--batch-duration", "1s"]);
    world.apply(
        "apiVersion: nomarch.io/v1alpha1\nkind: NomadJob\nmetadata:\n  name: migrate\nspec:\n  hcl: |\n    job \"migrate\" {\n      type = \"batch\"\n      group \"migrate\" {\n        task \"migrate\" {\n          driver = \"docker\"\n          config { image = \"migrate:1\" }\n          resources {\n            cpu    = 100\n            memory = 64\n          }\n        }\n      }\n    }\n",
    );
    eventually("migrate Ready", || world.is_ready("nomadjob", "migrate"));
    eventually("its run complete", || {
        world
            .nomad("/v1/job/migrate/allocations")
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["ClientStatus"] == "complete")
    });
    assert!(
        world.is_ready("nomadjob", "migrate"),
        "still Ready once it ended"
    );
    assert!(
        !world.events().contains("DriftCorrected"),
        "a finished run is not drift"
    );
}
