//! The dashboard's safety over plain HTTP (the browser test covers what people see): the
//! session cookie's flags, the security headers and Content-Security-Policy, the CSRF secret
//! and `Origin` checks on every form, a session that reads the API but cannot write through
//! it, and sign-out ending the session on the server.

mod support;

use controller::dashboard::pages::urlencode;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use support::{eventually, World};

struct Site {
    base: String,
    /// No redirects followed, no cookie jar: each test step says what it sends.
    http: Client,
}

impl Site {
    fn new(world: &World) -> Site {
        let port = world.controller.as_ref().unwrap().port;
        Site {
            base: format!("http://127.0.0.1:{port}"),
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().unwrap()
    }

    fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
        form: &[(&str, &str)],
    ) -> Response {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().unwrap()
    }

    /// Signs in; returns the `Cookie` header to send and the `Set-Cookie` the server gave.
    fn sign_in(&self, secret: &str) -> (String, String) {
        let response = self.post("/login", None, Some(&self.base), &[("token", secret)]);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        let pair = set.split(';').next().unwrap().to_string();
        (pair, set)
    }

    /// The CSRF secret in a page's forms.
    fn csrf(&self, cookie: &str, path: &str) -> String {
        let page = self.get(path, Some(cookie)).text().unwrap();
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with the CSRF secret");
        let rest = &page[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn app(name: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n"
    )
}

#[test]
fn sessions_forms_and_headers_keep_the_dashboard_safe() {
    let world = World::start(&[]);
    world.apply(&app("web"));
    let secret = world.token("ops", &["--all", "--role", "operator"]);
    let site = Site::new(&world);

    // Pages need a session; assets do not. Every answer carries the headers.
    let page = site.get("/", None);
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let login = site.get("/login", None);
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    assert_eq!(login.headers()["cache-control"], "no-store");
    let html = login.text().unwrap();
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "nothing inline"
    );
    let script = site.get("/assets/dashboard.js", None);
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));

    // A wrong token signs nobody in; a sign-in from another site is refused.
    let wrong = site.post(
        "/login",
        None,
        Some(&site.base),
        &[("token", "nomarch_nope")],
    );
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let elsewhere = site.post(
        "/login",
        None,
        Some("http://evil.example"),
        &[("token", &secret)],
    );
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert!(elsewhere.headers().get("set-cookie").is_none());

    // The cookie: HttpOnly, SameSite=Strict, and not the token.
    let (cookie, set) = site.sign_in(&secret);
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(&secret[8..]), "the cookie is not the token");
    let overview = site.get("/", Some(&cookie));
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(
        !overview.text().unwrap().contains(&secret[8..]),
        "no token in a page"
    );

    // The session reads the API (the page's event stream uses it) but cannot write through
    // it: an API write needs the bearer token.
    let port = world.controller.as_ref().unwrap().port;
    let api = format!("http://127.0.0.1:{port}/api/v1/objects/app/default/web");
    let read = site
        .http
        .get(&api)
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = site
        .http
        .post(format!("{api}/suspend"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);

    // A form without the session's CSRF secret, or from another origin, changes nothing.
    let act = "/ui/app/default/web/act";
    let forged = site.post(
        act,
        Some(&cookie),
        None,
        &[("act", "suspend"), ("csrf", "guess")],
    );
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let csrf = site.csrf(&cookie, "/ui/app/default/web/confirm/suspend");
    let foreign = site.post(
        act,
        Some(&cookie),
        Some("http://evil.example"),
        &[("act", "suspend"), ("csrf", &csrf)],
    );
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(world.app("web")["metadata"]["annotations"]
        .get("nomarch.io/suspended")
        .is_none());

    // With both, the act is done, and a stale resourceVersion is refused.
    let stale = site.post(
        act,
        Some(&cookie),
        Some(&site.base),
        &[
            ("act", "suspend"),
            ("csrf", &csrf),
            ("resourceVersion", "1"),
        ],
    );
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let done = site.post(
        act,
        Some(&cookie),
        Some(&site.base),
        &[("act", "suspend"), ("csrf", &csrf)],
    );
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        "/ui/app/default/web?done=suspend"
    );
    eventually("suspended in etcd", || {
        world.app("web")["metadata"]["annotations"]["nomarch.io/suspended"] == "true"
    });
    // An operator's session may not delete, whatever the form says.
    let delete = site.post(
        act,
        Some(&cookie),
        Some(&site.base),
        &[("act", "delete"), ("csrf", &csrf)],
    );
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert!(!world.app("web").is_null());

    // Sign-out needs the page's secret too, then the session is gone on the server.
    let stray = site.post(
        "/logout",
        Some(&cookie),
        Some(&site.base),
        &[("csrf", "guess")],
    );
    assert_eq!(stray.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        site.get("/", Some(&cookie)).status(),
        StatusCode::OK,
        "a stray sign-out does nothing"
    );
    site.post(
        "/logout",
        Some(&cookie),
        Some(&site.base),
        &[("csrf", &csrf)],
    );
    assert_eq!(site.get("/", Some(&cookie)).status(), StatusCode::SEE_OTHER);
    assert_eq!(
        site.http
            .get(&api)
            .header("cookie", &cookie)
            .send()
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
