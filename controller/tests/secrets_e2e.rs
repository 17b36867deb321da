//! Credentials end to end: etcd with authentication on, Nomad and Consul requiring an ACL token,
//! a webhook secret in a Nomad variable. Everything converges with them, fails clearly without
//! them, and no value of them appears in anything nomarch prints: the controller's log (at
//! debug level), CLI output and errors, events, `--help`, metrics and HTTP answers.

mod support;

use std::process::Output;

use e2e::etcd::TestEtcd;
use e2e::procs::{ControllerProcess, SimProcess};
use serde_json::{json, Value};
use support::{eventually, nomarch_bin, run_nomarch, sign, PREFIX};

const NOMAD_TOKEN: &str = "acl-7d0c2f5e-token-value";
const ETCD_PASSWORD: &str = "etcd-pw-4b9e1a";
const WEBHOOK_SECRET: &str = "hook-secret-9c3f";

fn enable_etcd_auth(endpoint: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        client.user_add("root", ETCD_PASSWORD, None).await.unwrap();
        client.user_grant_role("root", "root").await.unwrap();
        client.auth_enable().await.unwrap();
    });
}

struct Run {
    etcd: TestEtcd,
    sim: SimProcess,
    /// Everything nomarch printed or answered, for the final search.
    seen: Vec<String>,
}

impl Run {
    fn nomarch(&mut self, args: &[&str], stdin: Option<&str>, password: Option<&str>) -> Output {
        let nomad = self.sim.nomad_url();
        let mut env = vec![("NOMAD_ADDR", nomad.as_str()), ("NOMAD_TOKEN", NOMAD_TOKEN)];
        if let Some(password) = password {
            env.extend([
                ("NOMARCH_ETCD_USER", "root"),
                ("NOMARCH_ETCD_PASSWORD", password),
            ]);
        }
        let output = run_nomarch(&self.etcd.endpoint(), &env, args, stdin);
        self.seen
            .push(String::from_utf8_lossy(&output.stdout).into_owned());
        self.seen
            .push(String::from_utf8_lossy(&output.stderr).into_owned());
        output
    }

    fn authorized(&mut self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.nomarch(args, stdin, Some(ETCD_PASSWORD));
        assert!(
            output.status.success(),
            "nomarch {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn ready(&mut self, name: &str) -> bool {
        let text = self.authorized(&["get", "app", name, "-o", "json"], None);
        let app: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        app["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }
}

#[test]
fn credentials_work_and_never_appear_in_any_output() {
    let etcd = TestEtcd::start();
    enable_etcd_auth(&etcd.endpoint());
    let sim = SimProcess::start(&["--acl-token", NOMAD_TOKEN]);
    let mut run = Run {
        etcd,
        sim,
        seen: Vec::new(),
    };

    // Without the password, and with a wrong one: a clear refusal, nothing written.
    let missing = run.nomarch(&["get", "apps"], None, None);
    assert!(!missing.status.success());
    let wrong = run.nomarch(&["get", "apps"], None, Some("not-the-password"));
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("etcd"), "{said}");
    let no_password = run_nomarch(
        &run.etcd.endpoint(),
        &[("NOMARCH_ETCD_USER", "root")],
        &["get", "apps"],
        None,
    );
    let said = String::from_utf8_lossy(&no_password.stderr);
    assert!(said.contains("NOMARCH_ETCD_PASSWORD"), "{said}");

    let variable = json!({"Path": "nomarch/webhooks/state", "Items": {"secret": WEBHOOK_SECRET}});
    let http = e2e::http::blocking_client();
    let status = http
        .put(format!(
            "{}/v1/var/nomarch/webhooks/state",
            run.sim.nomad_url()
        ))
        .header("X-Nomad-Token", NOMAD_TOKEN)
        .json(&variable)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let mut controller = ControllerProcess::start_with_env(
        &nomarch_bin(),
        &run.etcd.endpoint(),
        PREFIX,
        &run.sim,
        &["--resync", "2s"],
        &[
            ("NOMAD_TOKEN", NOMAD_TOKEN),
            ("CONSUL_HTTP_TOKEN", NOMAD_TOKEN),
            ("NOMARCH_ETCD_USER", "root"),
            ("NOMARCH_ETCD_PASSWORD", ETCD_PASSWORD),
            ("RUST_LOG", "debug"),
        ],
    );
    controller.wait_leading();

    let app = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  replicas: 1\n";
    let source = "apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: file:///nonexistent/state.git\n  branch: main\n  path: .\n  interval: 1h\n  webhookSecretRef:\n    name: nomarch/webhooks/state\n    key: secret\n";
    run.authorized(&["apply", "-f", "-"], Some(&format!("{app}---\n{source}")));
    eventually("web Ready through ACLs and etcd auth", || run.ready("web"));

    // The webhook: refused with a wrong signature, accepted with the right one.
    let url = format!(
        "http://127.0.0.1:{}/api/v1/webhooks/git/state",
        controller.port
    );
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    for (signature, expected) in [
        (sign(&body, "wrong"), 401),
        (sign(&body, WEBHOOK_SECRET), 202),
    ] {
        let response = http
            .post(&url)
            .header("X-Hub-Signature-256", signature)
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
        run.seen.push(response.text().unwrap());
    }

    for args in [
        &["events"][..],
        &["get", "apps", "-o", "yaml"],
        &["get", "gitsources", "-o", "json"],
        &["--help"],
        &["controller", "--help"],
        &["apply", "--help"],
    ] {
        run.authorized(args, None);
    }
    run.seen.push(controller.metrics());
    controller.stop();
    run.seen.push(controller.process.log_text());

    let everything = run.seen.join("\n");
    assert!(
        everything.contains("web") && everything.len() > 10_000,
        "the search must cover a real run ({} bytes)",
        everything.len()
    );
    for (what, value) in [
        ("Nomad/Consul token", NOMAD_TOKEN),
        ("etcd password", ETCD_PASSWORD),
        ("webhook secret", WEBHOOK_SECRET),
    ] {
        let found = everything.find(value);
        assert!(
            found.is_none(),
            "the {what} appears in nomarch's output: …{}…",
            found.map_or("", |at| &everything[at.saturating_sub(200)..at])
        );
    }
}
