//! GitOps end to end: a real bare git repository that the test pushes to with the git CLI, real
//! etcd, nomad-sim and the controller. Pushes create, update and prune; a bad file applies
//! nothing; webhooks must be signed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{condition, eventually, git, sign, StateRepo, World};

fn app(name: &str, image: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  replicas: 1\n"
    )
}

fn source(url: &str, interval: &str, prune: bool, extra: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: {url}\n  branch: main\n  path: apps\n  interval: {interval}\n  prune: {prune}\n{extra}"
    )
}

/// A World whose controller keeps its git mirrors in a folder of the test's.
fn world(cache: &Path) -> World {
    let mut world = World::without_controller(&[]);
    world.restart_controller_with(&["--git-cache", cache.to_str().unwrap()]);
    world
}

/// The commit an app's spec came from (its `nomarch.io/commit` annotation), once the controller
/// has run that generation into Nomad; null before. The commit is not in the job's meta: Nomad
/// would restart every instance each time it changed.
fn running_commit(world: &World, name: &str) -> Value {
    let object = world.object("app", name);
    let observed = !object.is_null()
        && object["status"]["observedGeneration"] == object["metadata"]["generation"];
    if observed && !world.nomad(&format!("/v1/job/{name}")).is_null() {
        object["metadata"]["annotations"]["nomarch.io/commit"].clone()
    } else {
        Value::Null
    }
}

fn source_status(world: &World) -> Value {
    world.object("gitsource", "state")["status"].clone()
}

#[test]
fn pushes_create_update_and_prune_jobs() {
    let cache = tempfile::tempdir().unwrap();
    let world = world(cache.path());
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    repo.write("apps/api.yaml", &app("api", "api:1"));
    repo.write("README.md", "not a manifest, and outside `path`\n");
    let first = repo.push("web and api");
    world.apply(&source(&repo.url(), "1s", true, ""));

    eventually(
        "the pushed apps run in Nomad, their objects carrying the commit",
        || {
            running_commit(&world, "web") == first.as_str()
                && running_commit(&world, "api") == first.as_str()
        },
    );
    let web = world.object("app", "web");
    assert_eq!(web["metadata"]["labels"]["nomarch.io/source-name"], "state");
    let wide = String::from_utf8_lossy(&world.nomarch(&["get", "apps", "-o", "wide"], None).stdout)
        .to_string();
    assert!(
        wide.contains(&first[..12]),
        "get -o wide shows the commit:\n{wide}"
    );

    // An edit: a new commit id on the edited app; the untouched one keeps its commit and its
    // job is not registered again.
    let api_version = world.nomad("/v1/job/api")["Version"].clone();
    repo.write("apps/web.yaml", &app("web", "nginx:1.28"));
    let second = repo.push("web 1.28");
    eventually("the edit reaches Nomad", || {
        running_commit(&world, "web") == second.as_str()
    });
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "nginx:1.28"
    );
    assert_eq!(running_commit(&world, "api"), first.as_str());
    assert_eq!(world.nomad("/v1/job/api")["Version"], api_version);

    // A removal with prune on: object and job go.
    repo.remove("apps/api.yaml");
    let third = repo.push("drop api");
    eventually("the removed app is deregistered", || {
        world.object("app", "api").is_null()
            && world.nomad("/v1/job/api")["Stop"] != false
            && source_status(&world)["lastAppliedCommit"] == third.as_str()
    });

    // Prune off: a removal leaves the object and its job alone.
    world.apply(&source(&repo.url(), "1s", false, ""));
    repo.remove("apps/web.yaml");
    repo.write("apps/other.yaml", &app("other", "other:1"));
    let fourth = repo.push("drop web, prune off");
    eventually("the commit is applied", || {
        source_status(&world)["lastAppliedCommit"] == fourth.as_str()
    });
    assert!(!world.object("app", "web").is_null(), "kept with prune off");
    assert_eq!(running_commit(&world, "web"), second.as_str());
    let message = condition(&source_status(&world), "Synced")["message"].clone();
    assert!(
        message.as_str().unwrap().contains("left in place"),
        "{message}"
    );
}

#[test]
fn a_bad_file_applies_nothing_until_a_good_push() {
    let cache = tempfile::tempdir().unwrap();
    let world = world(cache.path());
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    let good = repo.push("web");
    world.apply(&source(&repo.url(), "1s", true, ""));
    eventually("web runs", || {
        running_commit(&world, "web") == good.as_str()
    });
    let web_before = world.object("app", "web");
    let writes_before = world.writes().len();

    // One valid edit and one invalid new file in the same commit.
    repo.write("apps/web.yaml", &app("web", "nginx:9.99"));
    repo.write(
        "apps/worker.yaml",
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: worker\nspec:\n  image: w:1\n  replicaz: 2\n",
    );
    let bad = repo.push("web edit plus a typo");
    eventually("the source reports the bad file", || {
        let status = source_status(&world);
        status["lastAttemptedCommit"] == bad.as_str()
            && condition(&status, "Synced")["status"] == "False"
    });
    let synced = condition(&source_status(&world), "Synced");
    let message = synced["message"].as_str().unwrap();
    assert_eq!(synced["reason"], "InvalidManifests");
    assert!(
        message.contains("apps/worker.yaml:7:3: spec.replicaz") && message.contains(&bad[..12]),
        "file:line:col, field and commit in the message: {message}"
    );
    eventually("a SyncFailed event", || {
        world.events().contains("SyncFailed")
    });
    // Nothing of that commit landed anywhere.
    support::settle();
    let web_after = world.object("app", "web");
    assert_eq!(web_after["metadata"], web_before["metadata"]);
    assert!(world.object("app", "worker").is_null());
    assert_eq!(world.writes().len(), writes_before, "no Nomad writes");
    assert_eq!(source_status(&world)["lastAppliedCommit"], good.as_str());

    // The fix applies.
    repo.write(
        "apps/worker.yaml",
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: worker\nspec:\n  image: w:1\n  replicas: 2\n",
    );
    let fixed = repo.push("fix the typo");
    eventually("the fixed commit applies", || {
        running_commit(&world, "worker") == fixed.as_str()
            && running_commit(&world, "web") == fixed.as_str()
    });

    // An object applied by hand is never taken over: the commit that claims it applies nothing.
    world.apply(&app("manual", "m:1"));
    repo.write("apps/manual.yaml", &app("manual", "m:2"));
    let claiming = repo.push("claim a hand-applied app");
    eventually("the source reports the conflict", || {
        let status = source_status(&world);
        status["lastAttemptedCommit"] == claiming.as_str()
            && condition(&status, "Synced")["reason"] == "OwnershipConflict"
    });
    let manual = world.object("app", "manual");
    assert_eq!(manual["spec"]["image"], "m:1");
    assert!(manual["metadata"]["labels"]["nomarch.io/source-name"].is_null());
}

#[test]
fn webhooks_must_be_signed_and_a_signed_one_syncs_at_once() {
    let cache = tempfile::tempdir().unwrap();
    let world = world(cache.path());
    const SECRET: &str = "hook-s3cret-value";
    let status = world.put_nomad(
        "/v1/var/nomarch/webhooks/state",
        json!({"Path": "nomarch/webhooks/state", "Items": {"secret": SECRET}}),
    );
    assert_eq!(status, 200);
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    let first = repo.push("web");
    // An hour between polls: only the webhook can bring the next commit in time.
    let hook_ref = "webhookSecretRef:\n    name: nomarch/webhooks/state\n    key: secret\n";
    world.apply(&source(&repo.url(), "1h", true, &format!("  {hook_ref}")));
    eventually("the first sync, on creation", || {
        source_status(&world)["lastAppliedCommit"] == first.as_str()
    });

    repo.write("apps/api.yaml", &app("api", "api:1"));
    let second = repo.push("api");
    let port = world.controller.as_ref().unwrap().port;
    let url = format!("http://127.0.0.1:{port}/api/v1/webhooks/git/state");
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let post = |signature: Option<String>| {
        let mut request = world.http.post(&url).body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(post(None), 401, "no signature");
    assert_eq!(post(Some(sign(&body, "wrong"))), 401, "wrong secret");
    assert_eq!(post(Some("sha256=nothex".into())), 401, "malformed");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        source_status(&world)["lastAppliedCommit"],
        first.as_str(),
        "refused webhooks trigger nothing"
    );
    assert!(world.object("app", "api").is_null());

    let too_big = vec![b' '; 6 * 1024 * 1024];
    // A client of its own: the server closes this connection after refusing, and a pooled
    // connection closed under it would fail the next request of a shared client.
    let answer = e2e::http::blocking_client()
        .post(&url)
        .header("X-Hub-Signature-256", sign(&too_big, SECRET))
        .body(too_big)
        .send();
    match answer {
        Ok(response) => assert_eq!(
            response.status(),
            413,
            "a body over 5 MiB is refused before anything reads it"
        ),
        // The server answers 413 and closes the connection without reading the rest of the
        // body; a client still uploading then sees the connection end before the answer
        // (timing decides which). The server must still be there: the requests below use it.
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }

    let delivered = |delivery: &str| {
        world
            .http
            .post(&url)
            .header("X-Hub-Signature-256", sign(&body, SECRET))
            .header("X-GitHub-Delivery", delivery)
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(delivered("d-1"), 202);
    assert_eq!(delivered("d-1"), 409, "the same delivery again is a replay");
    assert_eq!(
        post(Some(sign(&body, SECRET))),
        202,
        "no delivery ID: accepted"
    );
    eventually("the signed webhook syncs the new commit", || {
        source_status(&world)["lastAppliedCommit"] == second.as_str()
            && !world.object("app", "api").is_null()
    });

    // The hook script a bare repo on this host uses does the same on every push.
    let hook = repo.bare.join("hooks/post-receive");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/hooks/post-receive"),
        &hook,
    )
    .unwrap();
    git(&repo.bare, &["config", "nomarch.webhookUrl", &url]);
    git(&repo.bare, &["config", "nomarch.webhookSecret", SECRET]);
    repo.write("apps/db.yaml", &app("db", "redis:7"));
    let third = repo.push("db");
    eventually("the post-receive hook's webhook syncs the push", || {
        source_status(&world)["lastAppliedCommit"] == third.as_str()
    });

    // The secret never shows in what the controller says.
    let log = world.controller.as_ref().unwrap().process.log_text();
    assert!(
        !log.contains(SECRET),
        "the webhook secret leaked into the log"
    );
    assert!(!world.events().contains(SECRET));
}

/// A suspended source fetches nothing; `nomarch reconcile --with-source` fetches the owning
/// source now (its poll an hour away) and then reconciles the object; a synced object is
/// stopped in the repository, or by hand while its source is suspended.
#[test]
fn a_suspended_source_fetches_nothing_and_reconcile_with_source_fetches_now() {
    let cache = tempfile::tempdir().unwrap();
    let world = world(cache.path());
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    let first = repo.push("web");
    world.apply(&source(&repo.url(), "1s", true, ""));
    eventually("web runs the first commit", || {
        running_commit(&world, "web") == first.as_str()
    });

    world.nomarch(&["suspend", "gitsource/state"], None);
    eventually("the source is suspended", || {
        condition(&source_status(&world), "Suspended")["status"] == "True"
    });
    let stop = world.nomarch_exit(&["stop", "app/web", "--timeout", "60s"], None);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "allowed while the source is suspended"
    );
    repo.write("apps/web.yaml", &app("web", "nginx:1.28"));
    let second = repo.push("web 1.28");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        source_status(&world)["lastFetchedCommit"],
        first.as_str(),
        "no fetch while suspended (the interval is 1s)"
    );
    assert_eq!(world.object("app", "web")["spec"]["stopped"], true);

    world.nomarch(&["resume", "gitsource/state"], None);
    eventually(
        "resumed, the source fetches and applies the new commit",
        || source_status(&world)["lastAppliedCommit"] == second.as_str(),
    );
    let web = world.object("app", "web");
    assert_eq!(web["spec"]["image"], "nginx:1.28");
    assert!(
        web["spec"]["stopped"].is_null(),
        "the repository's spec is back (it says nothing of stopped): {web}"
    );

    // An hour between polls: only a request fetches a new commit now.
    world.apply(&source(&repo.url(), "1h", true, ""));
    eventually("the source settled at its new generation", || {
        let source = world.object("gitsource", "state");
        source["status"]["observedGeneration"] == source["metadata"]["generation"]
            && condition(&source["status"], "Synced")["status"] == "True"
    });
    repo.write("apps/web.yaml", &app("web", "nginx:1.29"));
    let third = repo.push("web 1.29");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(source_status(&world)["lastFetchedCommit"], second.as_str());
    let reconcile = world.nomarch_exit(
        &["reconcile", "app/web", "--with-source", "--timeout", "60s"],
        None,
    );
    let said = String::from_utf8_lossy(&reconcile.stdout).to_string();
    assert_eq!(reconcile.status.code(), Some(0), "{said}");
    assert!(said.contains("gitsource/state: succeeded"), "{said}");
    assert!(said.contains("app/web: succeeded"), "{said}");
    assert_eq!(source_status(&world)["lastAppliedCommit"], third.as_str());
    assert_eq!(world.object("app", "web")["spec"]["image"], "nginx:1.29");

    // With the source active, stopping by hand is refused, naming the way that works.
    let refused = world.nomarch_exit(&["stop", "app/web"], None);
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("set spec.stopped: true in the repository")
            && said.contains("nomarch suspend gitsource/state"),
        "{said}"
    );
}

#[test]
fn fetch_failures_are_reported_and_keep_the_last_good_state() {
    let cache = tempfile::tempdir().unwrap();
    let world = world(cache.path());
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    let good = repo.push("web");

    let reported = |reason: &str, type_: &str| {
        let status = source_status(&world);
        condition(&status, type_)["reason"] == reason
            && condition(&status, type_)["status"] == "False"
    };
    // A branch that does not exist.
    world.apply(&source(&repo.url(), "1s", true, "").replace("branch: main", "branch: nope"));
    eventually("BranchNotFound", || reported("BranchNotFound", "Fetched"));
    // A secret that does not exist: nothing is fetched, and the status names the secret.
    let secret = "  secretRef:\n    name: nomarch/git/missing\n    key: token\n";
    world.apply(&source(&repo.url(), "1s", true, secret));
    eventually("SecretNotFound", || reported("SecretNotFound", "Fetched"));
    assert!(condition(&source_status(&world), "Fetched")["message"]
        .as_str()
        .unwrap()
        .contains("nomarch/git/missing"));
    // A folder the commit does not have.
    world.apply(&source(&repo.url(), "1s", true, "").replace("path: apps", "path: nowhere"));
    eventually("PathNotFound", || reported("PathNotFound", "Synced"));
    assert!(world.object("app", "web").is_null(), "nothing was applied");

    // A good sync, then the repository disappears: the source says so, the objects stay.
    world.apply(&source(&repo.url(), "1s", true, ""));
    eventually("the good commit applies", || {
        source_status(&world)["lastAppliedCommit"] == good.as_str()
    });
    std::fs::rename(&repo.bare, repo.bare.with_extension("moved")).unwrap();
    eventually("FetchFailed", || reported("FetchFailed", "Fetched"));
    assert!(
        !world.object("app", "web").is_null(),
        "the last good state stays"
    );
    assert!(world.events().contains("SyncFailed"));

    // Back again, and force-pushed to a rewritten history: the source follows the branch.
    std::fs::rename(repo.bare.with_extension("moved"), &repo.bare).unwrap();
    git(&repo.work, &["checkout", "-q", "--orphan", "rewritten"]);
    repo.write("apps/web.yaml", &app("web", "nginx:2"));
    git(&repo.work, &["add", "-A"]);
    git(&repo.work, &["commit", "-q", "-m", "history rewritten"]);
    git(
        &repo.work,
        &["push", "-q", "--force", "origin", "rewritten:main"],
    );
    eventually("the force-pushed commit applies", || {
        world.object("app", "web")["spec"]["image"] == "nginx:2"
            && condition(&source_status(&world), "Fetched")["status"] == "True"
    });
}

/// Waits for `Fetched=False reason CacheUnavailable` and checks its message names the cause.
fn cache_unavailable_is_reported(world: &World, cause: &str) {
    eventually("the git cache failure is reported", || {
        let fetched = condition(&source_status(world), "Fetched");
        fetched["status"] == "False" && fetched["reason"] == "CacheUnavailable"
    });
    let fetched = condition(&source_status(world), "Fetched");
    assert!(
        fetched["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains(cause)),
        "{fetched}"
    );
}

/// A real, tiny file system (tmpfs) for the git cache, unmounted when dropped.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn new(size: &str) -> TinyDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        TinyDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes until the file system refuses: the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_under_the_mirror_fails_clearly_and_recovers_when_space_returns() {
    let disk = TinyDisk::new("2m");
    let cache = disk.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let filler = disk.fill();
    let world = world(&cache);
    let repo = StateRepo::new();
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    repo.write("apps/api.yaml", &app("api", "api:1"));
    let commit = repo.push("two apps");
    world.apply(&source(&repo.url(), "1h", true, ""));

    cache_unavailable_is_reported(&world, "git cache");
    assert!(world.app_or_null("web").is_null(), "nothing applied");

    // Space comes back: the retry (a transient failure, backed off) syncs without a push.
    std::fs::remove_file(filler).unwrap();
    eventually("synced once there is room", || {
        source_status(&world)["lastAppliedCommit"] == commit.as_str()
    });
    assert!(!world.app_or_null("web").is_null() && !world.app_or_null("api").is_null());
}

#[test]
fn a_git_cache_without_write_permission_fails_clearly_and_recovers_when_granted() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Root ignores permissions, so as root the controller runs as `nobody`.
    let as_root = unsafe { libc::geteuid() } == 0;
    let open_to_all = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    open_to_all(dir.path());
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o555)).unwrap();
    let repo = StateRepo::new();
    open_to_all(repo._dir.path());
    repo.write("apps/web.yaml", &app("web", "nginx:1.27"));
    let commit = repo.push("web");
    if as_root {
        // git (and libgit2) refuse repositories owned by another user.
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&repo.bare)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut world = World::without_controller(&[]);
    world.controller = Some(e2e::procs::ControllerProcess::start_custom(
        &support::nomarch_bin(),
        &world.etcd.endpoint(),
        support::PREFIX,
        &world.sim,
        &["--resync", "2s", "--git-cache", cache.to_str().unwrap()],
        &|command| {
            // A service user's own home: libgit2 reads ~/.gitconfig, and root's is not theirs.
            command.env("HOME", dir.path());
            if as_root {
                command.uid(65534).gid(65534);
            }
        },
    ));
    world.apply(&source(&repo.url(), "1h", true, ""));

    cache_unavailable_is_reported(&world, "permission denied");

    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    eventually("synced once the cache can be written", || {
        source_status(&world)["lastAppliedCommit"] == commit.as_str()
    });
}
