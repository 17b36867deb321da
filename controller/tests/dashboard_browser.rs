//! The dashboard in a real browser (headless Chromium over WebDriver) against a running
//! controller, etcd and nomad-sim: sign in with a token, see the overview, open an App, watch
//! an event arrive without a reload after a change in etcd, suspend and resume it as an
//! operator, be refused as a viewer, see a tenant's token held to its namespace, and be signed
//! out when the token is revoked. Screenshots of the main pages land in the test's output
//! folder (`target/tmp/dashboard-screenshots/`).

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use support::{eventually, is_ready, World};

/// Text with every run of white space made one space (table cells come tab-separated).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn app(namespace: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    tier: front\nspec:\n  image: {image}\n  replicas: 2\n"
    )
}

struct Dashboard<'a> {
    world: &'a World,
    browser: Browser,
}

impl Dashboard<'_> {
    fn url(&self, path: &str) -> String {
        let port = self.world.controller.as_ref().unwrap().port;
        format!("http://127.0.0.1:{port}{path}")
    }

    fn goto(&self, path: &str) {
        self.browser.goto(&self.url(path));
    }

    /// Fills in the sign-in form and sends it.
    fn submit_token(&self, secret: &str) {
        self.goto("/login");
        self.browser.type_into("#token", secret);
        self.browser.click("form.signin button");
    }

    /// Signs in and waits for the overview (so the session cookie is set before the next
    /// navigation).
    fn sign_in(&self, secret: &str) {
        self.submit_token(secret);
        self.browser.wait_for_url(&self.url("/"));
    }

    fn sign_out(&self) {
        self.browser.click("form.signout button");
        self.browser.wait_for_url("/login");
    }

    /// The page's main text.
    fn main(&self) -> String {
        self.browser.text("main")
    }
}

#[test]
fn the_dashboard_in_a_browser() {
    let world = World::start(&[]);
    assert_eq!(
        world.put_nomad("/v1/namespace/alice", serde_json::json!({"Name": "alice"})),
        200
    );
    world.apply(&app("default", "web", "nginx:1"));
    world.apply(&app("alice", "shop", "nginx:1"));
    world.apply("apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: room\nspec:\n  tenant: room\n  image: ssb/room:1\n  resources:\n    cpu: 200\n    memory: 1024\n  hubSelector:\n    nodeClass: hub\n");
    eventually("both apps ready", || {
        let shop = world.nomarch(&["get", "app", "shop", "-n", "alice", "-o", "json"], None);
        world.ready("web") && serde_json::from_slice(&shop.stdout).is_ok_and(|shop| is_ready(&shop))
    });
    let operator = world.token("ops", &["--all", "--role", "operator"]);
    let viewer = world.token("looker", &["--all", "--role", "viewer"]);
    let tenant = world.token("alice", &["--namespace", "alice", "--role", "operator"]);
    let dashboard = Dashboard {
        world: &world,
        browser: Browser::start(1280, 1000),
    };
    let browser = &dashboard.browser;

    // Not signed in: every page leads to the sign-in form; a wrong token is refused there.
    dashboard.goto("/ui/app");
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    dashboard.submit_token("nomarch_0000");
    browser.wait_for_text("main", "unknown, revoked or expired");

    // The overview: both apps counted and healthy, nothing failing.
    dashboard.sign_in(&operator);
    browser.wait_for_text("main h1", "Overview");
    let overview = dashboard.main();
    assert!(overview.contains("Nothing is failing."), "{overview}");
    let apps_row = words(&browser.text("table.counts tbody tr:first-child"));
    assert!(apps_row.starts_with("Apps 2 0 0 2"), "{apps_row}");
    assert!(browser
        .text("header")
        .contains("ops · operator · all namespaces"));
    browser.screenshot("overview");

    // Hubs: the pub on its hub, and what is left of the hub after the pub's promise.
    eventually("the pub has a hub", || {
        world.object("pub", "room")["status"]["hub"]["name"].is_string()
    });
    let hub = world.object("pub", "room")["status"]["hub"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    dashboard.goto("/ui/hubs");
    let row = words(&browser.text("main table tbody tr"));
    assert!(
        row.starts_with(&format!("{hub} ready default/room")),
        "{row}"
    );
    let node = world.nomad(&format!(
        "/v1/node/{}",
        world.object("pub", "room")["status"]["hub"]["id"]
            .as_str()
            .unwrap()
    ));
    let cpu = node["NodeResources"]["Cpu"]["CpuShares"].as_u64().unwrap();
    assert!(row.contains(&format!("{} of {cpu}", cpu - 200)), "{row}");

    // The list, filtered by label and by words.
    dashboard.goto("/ui/app?l=tier%3Dfront");
    let list = browser.text("table.objects tbody");
    assert!(list.contains("web") && list.contains("shop"), "{list}");
    browser.type_into("input[name=q]", "sho");
    browser.click("form.filter button");
    browser.wait_for_text("p.count", "1 apps");
    assert!(!browser.text("table.objects tbody").contains("web"));
    dashboard.goto("/ui/app");
    browser.screenshot("apps");

    // An App's page: healthy, its conditions and allocations.
    browser.click("table.objects a[href='/ui/app/default/web']");
    browser.wait_for_text("main h1", "App web");
    browser.wait_for_text("p.summary", "Healthy");
    let page = dashboard.main();
    assert!(
        page.contains("Conditions") && page.contains("Ready"),
        "{page}"
    );
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#allocations ~ table tbody tr').length")
            .as_u64(),
        Some(2),
        "two allocations listed"
    );
    browser.screenshot("app");

    // Its logs: the last lines of both instances, then new ones appended as they are written.
    browser.click("p.links a[href$='/logs']");
    browser.wait_for_text("main h1", "Logs of app/web");
    let before = browser.text("#log").lines().count();
    assert!(before > 0, "lines read");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while browser.text("#log").lines().count() <= before {
        assert!(std::time::Instant::now() < deadline, "no followed line");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    browser.screenshot("logs");
    dashboard.goto("/ui/app/default/web");

    // The diff against Nomad: in step.
    browser.click("p.links a[href$='/diff']");
    browser.wait_for_text("main h1", "Diff of app/web");
    browser.wait_for_text("p.summary", "No change to Nomad's job");
    dashboard.goto("/ui/app/default/web");

    // Live: a change written to etcd (a new image) shows up on the open page without a
    // reload; a marker set in the page survives, so it was not navigated away.
    browser.script("window.nomarchMarker = 'still here'; return null");
    world.apply(&app("default", "web", "nginx:2"));
    browser.wait_for_text("#live-events", "Updated");
    browser.wait_for_text("#events-list", "Updated");
    assert_eq!(
        browser.script("return window.nomarchMarker"),
        serde_json::json!("still here")
    );
    browser.wait_for_text("main pre", "nginx:2");

    // Suspend and resume as an operator, each confirmed first.
    browser.click("ul.actions a[href$='/confirm/suspend']");
    browser.wait_for_text("main", "nomarch stops changing app/web");
    browser.screenshot("confirm");
    browser.click("form.confirm button");
    browser.wait_for_text("p.done", "Suspended.");
    browser.wait_for_text("p.summary", "Suspended");
    let stored = world.app("web");
    assert_eq!(
        stored["metadata"]["annotations"]["nomarch.io/suspended"], "true",
        "{stored}"
    );
    browser.click("ul.actions a[href$='/confirm/resume']");
    browser.click("form.confirm button");
    browser.wait_for_text("p.done", "Resumed.");
    eventually("resumed in etcd", || {
        world.app("web")["metadata"]["annotations"]
            .get("nomarch.io/suspended")
            .is_none()
    });
    // The history lists both generations; undo to the first, confirmed, puts nginx:1 back as
    // generation 3.
    let history = words(&browser.text("table.history tbody"));
    assert!(
        history.starts_with("2 ") && history.contains("nginx:2"),
        "{history}"
    );
    browser.click("a[href$='/confirm/undo?generation=1']");
    browser.wait_for_text(
        "main",
        "Generation 1's spec of app/web is applied again, as generation 3",
    );
    browser.click("form.confirm button");
    browser.wait_for_text("p.done", "Rolled back");
    browser.wait_for_text("main pre", "nginx:1");
    assert_eq!(world.app("web")["spec"]["image"], "nginx:1");
    browser.wait_for_text("table.history tbody tr:first-child", "3");

    // An operator may not delete: no such button.
    assert!(!browser.exists("ul.actions a[href$='/confirm/delete']"));
    dashboard.sign_out();

    // A viewer reads and is offered no action; the confirmation page itself refuses.
    dashboard.sign_in(&viewer);
    dashboard.goto("/ui/app/default/web");
    browser.wait_for_text("p.summary", "Healthy");
    assert!(!browser.exists("ul.actions"), "no actions for a viewer");
    dashboard.goto("/ui/app/default/web/confirm/suspend");
    browser.wait_for_text("main", "is viewer; this needs operator");
    dashboard.goto("/");
    dashboard.sign_out();

    // A tenant's token: its namespace only, someone else's object is not found, no hubs.
    dashboard.sign_in(&tenant);
    browser.wait_for_text("main h1", "Overview");
    let apps_row = words(&browser.text("table.counts tbody tr:first-child"));
    assert!(apps_row.starts_with("Apps 1 "), "{apps_row}");
    dashboard.goto("/ui/app");
    let list = browser.text("table.objects tbody");
    assert!(list.contains("shop") && !list.contains("web"), "{list}");
    dashboard.goto("/ui/app/default/web");
    browser.wait_for_text("main", "not found");
    assert!(!browser.exists("header a[href='/ui/hubs']"));
    dashboard.goto("/ui/app/alice/shop");
    browser.wait_for_text("p.summary", "Healthy");
    assert!(browser.exists("ul.actions a[href$='/confirm/suspend']"));

    // Phone-sized: the page still reads (no sideways scroll of the whole page).
    browser.resize(390, 844);
    let overflow =
        browser.script("return document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(
        overflow,
        serde_json::json!(true),
        "the page fits a phone's width"
    );
    browser.screenshot("app-phone");
    browser.resize(1280, 1000);

    // Revoking the token ends its open session at the next request.
    world.nomarch(&["token", "revoke", "alice"], None);
    dashboard.goto("/ui/app/alice/shop");
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
}
