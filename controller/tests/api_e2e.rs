//! The HTTP API against a running controller: tokens made with `nomarch token create`, each
//! role against each act, a tenant's token that sees only its namespace, and tokens refused
//! once revoked or expired. Denied by default: no token, no answer.

mod support;

use reqwest::blocking::RequestBuilder;
use reqwest::StatusCode;
use serde_json::Value;
use support::{eventually, World};

fn app(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  image: nginx:1\n"
    )
}

struct Api<'a> {
    world: &'a World,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        let port = self.world.controller.as_ref().unwrap().port;
        format!("http://127.0.0.1:{port}/api/v1{path}")
    }

    fn send(&self, request: RequestBuilder, secret: Option<&str>) -> (StatusCode, Value) {
        let request = match secret {
            Some(secret) => request.bearer_auth(secret),
            None => request,
        };
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn get(&self, path: &str, secret: Option<&str>) -> (StatusCode, Value) {
        self.send(self.world.http.get(self.url(path)), secret)
    }

    fn post(&self, path: &str, secret: Option<&str>) -> (StatusCode, Value) {
        self.send(self.world.http.post(self.url(path)), secret)
    }

    fn post_body(&self, path: &str, body: &str, secret: &str) -> (StatusCode, Value) {
        let request = self.world.http.post(self.url(path)).body(body.to_string());
        self.send(request, Some(secret))
    }

    fn delete(&self, path: &str, secret: &str) -> (StatusCode, Value) {
        self.send(self.world.http.delete(self.url(path)), Some(secret))
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn tokens_roles_and_namespaces_decide_what_the_api_answers() {
    let world = World::start(&[]);
    for ns in ["alice", "bob"] {
        assert_eq!(
            world.put_nomad(
                &format!("/v1/namespace/{ns}"),
                serde_json::json!({"Name": ns})
            ),
            200
        );
    }
    world.apply(&format!(
        "{}---\n{}",
        app("alice", "web"),
        app("bob", "web")
    ));
    let api = Api { world: &world };

    // Denied by default.
    let (status, body) = api.get("/objects", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = api.get("/objects", Some("nomarch_not-a-token"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let viewer = world.token("viewer", &["--all", "--role", "viewer"]);
    let operator = world.token("operator", &["--all", "--role", "operator"]);
    let tenant = world.token("alice", &["--namespace", "alice", "--role", "operator"]);
    let listed = String::from_utf8(world.nomarch(&["token", "list"], None).stdout).unwrap();
    assert!(listed.contains("alice\toperator\talice"), "{listed}");
    assert!(
        !listed.contains(&viewer) && !listed.contains(&tenant),
        "secrets are never listed"
    );

    // A viewer reads everything and may not act.
    let (status, list) = api.get("/objects?kind=app", Some(&viewer));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), ["alice/web", "bob/web"]);
    // A page at a time, in order, the next from `continue`; a label selector narrows.
    let (_, first) = api.get("/objects?kind=app&limit=1", Some(&viewer));
    assert_eq!(names(&first), ["alice/web"]);
    let after = first["continue"].as_str().unwrap().to_string();
    assert_eq!(after, "app/alice/web");
    let (_, second) = api.get(
        &format!("/objects?kind=app&limit=1&continue={after}"),
        Some(&viewer),
    );
    assert_eq!(names(&second), ["bob/web"]);
    assert!(
        second.get("continue").is_none(),
        "the last page says no more"
    );
    let (_, sorted) = api.get(
        "/objects?kind=app&sortBy=metadata.namespace&limit=1",
        Some(&viewer),
    );
    assert_eq!(names(&sorted), ["alice/web"]);
    assert_eq!(sorted["continue"], "offset:1");
    let (_, rest) = api.get(
        "/objects?kind=app&sortBy=metadata.namespace&limit=1&continue=offset:1",
        Some(&viewer),
    );
    assert_eq!(names(&rest), ["bob/web"]);
    let (status, _) = api.get(
        "/objects?kind=app&sortBy=metadata.namespace&continue=app/alice/web",
        Some(&viewer),
    );
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a sorted listing's place is an offset"
    );
    let (_, none) = api.get("/objects?labelSelector=tier%3Ddb", Some(&viewer));
    assert_eq!(names(&none), Vec::<String>::new());
    let (_, all) = api.get("/objects?labelSelector=%21tier", Some(&viewer));
    assert_eq!(names(&all), ["alice/web", "bob/web"]);
    let (status, _) = api.get("/objects?labelSelector=tier%20in%20(a)", Some(&viewer));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.get("/objects?continue=nonsense", Some(&viewer));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, one) = api.get("/objects/app/bob/web", Some(&viewer));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["spec"]["image"], "nginx:1");
    let (status, body) = api.post("/objects/app/bob/web/suspend", Some(&viewer));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("needs operator"));

    // An operator acts: suspended as `nomarch suspend` would, and resumed.
    let (status, body) = api.post("/objects/app/bob/web/suspend", Some(&operator));
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = |name: &str| {
        String::from_utf8(world.nomarch(&["get", "apps", "-n", "bob"], None).stdout)
            .unwrap()
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(state("web").contains("Suspended"), "{}", state("web"));
    let (status, _) = api.post("/objects/app/bob/web/resume", Some(&operator));
    assert_eq!(status, StatusCode::OK);
    assert!(state("web").contains("Active"));
    let (status, _) = api.post(
        "/objects/app/bob/web/reconcile?resourceVersion=1",
        Some(&operator),
    );
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a stale resourceVersion is refused"
    );

    // A tenant's token sees and acts on its own namespace only; others' objects do not exist.
    let (status, list) = api.get("/objects", Some(&tenant));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), ["alice/web"]);
    let (status, _) = api.get("/objects/app/bob/web", Some(&tenant));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.post("/objects/app/bob/web/suspend", Some(&tenant));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.post("/objects/app/alice/web/reconcile", Some(&tenant));
    assert_eq!(status, StatusCode::OK);

    // Revoked: refused from the next request on.
    world.nomarch(&["token", "revoke", "alice"], None);
    let (status, _) = api.get("/objects", Some(&tenant));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = world.nomarch_exit(&["token", "revoke", "alice"], None);
    assert!(!again.status.success());

    // Expired: refused once its time is up.
    let brief = world.token("brief", &["--all", "--role", "admin", "--expires", "1s"]);
    let (status, _) = api.get("/objects", Some(&brief));
    assert_eq!(status, StatusCode::OK);
    eventually("the brief token expired", || {
        api.get("/objects", Some(&brief)).0 == StatusCode::UNAUTHORIZED
    });
}

#[test]
fn admins_apply_and_delete_operators_run_and_bad_manifests_say_where() {
    let world = World::start(&[]);
    let api = Api { world: &world };
    let admin = world.token("admin", &["--all", "--role", "admin"]);
    let operator = world.token("operator", &["--all", "--role", "operator"]);
    let tenant_admin = world.token("alice", &["--namespace", "alice", "--role", "admin"]);
    let web = app("default", "web");

    // Applying is an admin's: the same validation and all-or-nothing rule as `nomarch apply`.
    let (status, _) = api.post_body("/apply", &web, &operator);
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.post_body("/apply", &web, &tenant_admin);
    assert_eq!(status, StatusCode::NOT_FOUND, "another namespace: {body}");
    let broken = format!(
        "{web}---\n{}",
        app("default", "api").replace("nginx:1", "''")
    );
    let (status, body) = api.post_body("/apply", &broken, &admin);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("request:15:3: spec.image"), "{error}");
    assert!(
        world.object("app", "web").is_null(),
        "nothing of a bad batch is written"
    );
    let (status, body) = api.post_body("/apply", &web, &admin);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"][0]["outcome"], "created");
    eventually("web Ready", || world.ready("web"));

    // What Nomad holds: the job, its allocations, its deployment.
    let (status, held) = api.get("/objects/app/default/web/nomad", Some(&operator));
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["job"]["ID"], "web");
    assert_eq!(held["allocations"][0]["JobID"], "web");
    assert!(held["deployment"]["ID"].is_string(), "{held}");
    let (status, _) = api.get("/objects/app/default/nothing/nomad", Some(&operator));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The diff against Nomad: nothing while in step; a new spec the controller has not
    // written (it is suspended) shows as the job Nomad would get.
    let (status, diff) = api.get("/objects/app/default/web/diff", Some(&operator));
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["changes"], false, "{diff}");
    let (status, _) = api.post("/objects/app/default/web/suspend", Some(&operator));
    assert_eq!(status, StatusCode::OK);
    // (An apply writes the annotations it is given: the manifest keeps it suspended.)
    let changed = web.replace("nginx:1", "nginx:2").replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    nomarch.io/suspended: \"true\"\n",
    );
    let (status, body) = api.post_body("/apply", &changed, &admin);
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, diff) = api.get("/objects/app/default/web/diff", Some(&operator));
    assert_eq!(diff["changes"], true, "{diff}");
    let text = diff["text"].as_str().unwrap();
    assert!(
        text.contains("would register job web") && text.contains("nginx:2"),
        "{text}"
    );
    let (status, _) = api.post("/objects/app/default/web/resume", Some(&operator));
    assert_eq!(status, StatusCode::OK);
    eventually("nginx:2 registered", || {
        world.nomad("/v1/job/web")["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "nginx:2"
    });

    // Running a cron job now is an operator's.
    let cron = "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: backup\nspec:\n  schedule: \"0 3 * * *\"\n  task:\n    image: restic:1\n";
    let (status, _) = api.post_body("/apply", cron, &admin);
    assert_eq!(status, StatusCode::OK);
    eventually("the periodic job registered", || {
        !world.nomad("/v1/job/backup").is_null()
    });
    let (status, body) = api.post("/objects/cronjob/default/backup/run", Some(&operator));
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("a run launched", || {
        world
            .nomad("/v1/jobs?prefix=backup/periodic-")
            .as_array()
            .is_some_and(|jobs| !jobs.is_empty())
    });
    let (status, _) = api.post("/objects/app/default/web/run", Some(&operator));
    assert_eq!(status, StatusCode::CONFLICT, "only cron jobs run now");

    // Stop and start: spec.stopped, as `nomarch stop`/`start` (the job registered stopped,
    // then running again); a second stop changes nothing; a cron job is refused in the CLI's
    // words.
    let (status, body) = api.post("/objects/app/default/web/stop", Some(&operator));
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("web's job registered stopped", || {
        world.nomad("/v1/job/web")["Stop"] == true
    });
    assert_eq!(world.app("web")["spec"]["stopped"], true);
    let (status, body) = api.post("/objects/app/default/web/stop", Some(&operator));
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );
    let (status, body) = api.post("/objects/cronjob/default/backup/stop", Some(&operator));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("spec.suspend"),
        "{body}"
    );
    let (status, _) = api.post("/objects/app/default/web/start", Some(&operator));
    assert_eq!(status, StatusCode::OK);
    eventually("web runs again", || {
        world.nomad("/v1/job/web")["Stop"] == false && world.ready("web")
    });

    // The history: created, nginx:2, stopped, started; an undo to a generation not kept says which are.
    let (status, history) = api.get("/objects/app/default/web/history", Some(&operator));
    assert_eq!(status, StatusCode::OK);
    let generations: Vec<i64> = history["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["generation"].as_i64().unwrap())
        .collect();
    assert_eq!(generations, [1, 2, 3, 4]);
    assert_eq!(history["generations"][2]["change"], "+stopped: true");
    let (status, body) = api.post(
        "/objects/app/default/web/undo?generation=9",
        Some(&operator),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("kept: 1, 2"),
        "{body}"
    );

    // A restart: refused while the start's rollout runs, then the instance restarted in
    // place after the answer, each step an event.
    let mut answer = Value::Null;
    eventually("the restart accepted once the rollout is over", || {
        let (status, body) = api.post("/objects/app/default/web/restart", Some(&operator));
        answer = body;
        status == StatusCode::OK
    });
    assert_eq!(answer["instances"], 1, "{answer}");
    eventually("Restarted recorded", || {
        world.events().contains("Restarted")
    });
    let events = world.events();
    assert!(events.contains("InstanceRestarted"), "{events}");
    let (status, body) = api.post("/objects/cronjob/default/backup/restart", Some(&operator));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only apps and pubs"),
        "{body}"
    );

    // Retry and promote say why when they do not apply.
    let (status, body) = api.post("/objects/app/default/web/retry", Some(&operator));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no rolled-back rollout"),
        "{body}"
    );
    let (status, body) = api.post("/objects/cronjob/default/backup/promote", Some(&operator));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only apps and Nomad jobs roll out"),
        "{body}"
    );

    // Deleting is an admin's, and compares the resourceVersion when given.
    let (status, _) = api.delete("/objects/app/default/web", &operator);
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.delete("/objects/app/default/web?resourceVersion=1", &admin);
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api.delete("/objects/app/default/web", &admin);
    assert_eq!(status, StatusCode::OK);
    eventually("web's job stopped", || {
        world.nomad("/v1/job/web")["Stop"] == true
    });
}

/// Each operation the OpenAPI description names is served (a request without a token is 401,
/// never 404 or 405), and a path it does not name is not.
#[test]
fn the_openapi_description_matches_what_is_served() {
    let world = World::start(&[]);
    let api = Api { world: &world };
    let (status, described) = api.get("/openapi.json", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(described["openapi"], "3.1.0");
    let port = world.controller.as_ref().unwrap().port;
    let mut operations = 0;
    for (path, methods) in described["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{kind}", "app")
            .replace("{namespace}", "default")
            .replace("{name}", "web")
            .replace("{act}", "suspend");
        let url = format!("http://127.0.0.1:{port}{concrete}");
        for method in methods.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = world
                .http
                .request(method.clone(), &url)
                .send()
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            operations += 1;
        }
    }
    assert_eq!(operations, 10);
    let (status, _) = api.get("/objects/app/default", None);
    assert_eq!(status, StatusCode::NOT_FOUND, "not an operation");
}

/// Hostile input with an admin's token: path tricks in names, bad kinds and actions,
/// malformed and oversized bodies. Each is refused with a 4xx naming the problem, never a 5xx
/// or a panic, and nothing is written.
#[test]
fn hostile_requests_are_refused_cleanly() {
    let world = World::start(&[]);
    let api = Api { world: &world };
    let admin = world.token("admin", &["--all", "--role", "admin"]);
    let long = "a".repeat(10_000);
    let gets = [
        "/objects/app/default/..".to_string(),
        "/objects/app/..%2F..%2Fetc/passwd".to_string(),
        "/objects/app/default/%00".to_string(),
        format!("/objects/app/default/{long}"),
        "/objects/nokind/default/web".to_string(),
        "/objects?kind=%ff".to_string(),
        "/objects?kind=nokind".to_string(),
    ];
    for path in &gets {
        let (status, _) = api.get(path, Some(&admin));
        assert!(
            status.is_client_error(),
            "GET {}: {status}",
            &path[..path.len().min(60)]
        );
    }
    let (status, _) = api.post("/objects/app/default/web/explode", Some(&admin));
    assert!(status.is_client_error(), "{status}");
    let bodies = [
        "{".to_string(),
        "kind: [".to_string(),
        "\u{0}\u{1}binary".to_string(),
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: ../../etc\nspec:\n  image: x\n".to_string(),
        format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {long}\nspec:\n  image: x\n"),
        String::new(),
    ];
    for body in &bodies {
        let (status, answer) = api.post_body("/apply", body, &admin);
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}: {answer}",
            &body[..body.len().min(40)]
        );
    }
    // Larger than a manifest file may be: refused before it is read whole.
    // (The server answers before reading it and closes the connection: not one to reuse.)
    let huge = "#".repeat(5 * 1024 * 1024);
    let request = world
        .http
        .post(api.url("/apply"))
        .header("connection", "close")
        .body(huge);
    let (status, _) = api.send(request, Some(&admin));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, list) = api.get("/objects", Some(&admin));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), Vec::<String>::new(), "nothing was written");
}
