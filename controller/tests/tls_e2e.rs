//! TLS everywhere: etcd and nomad-sim (its Nomad and Consul APIs) serve HTTPS and accept only
//! clients with a certificate from the test CA. With the certificates nomarch converges; without
//! them nothing connects, and the error says where.

mod support;

use std::process::Output;

use e2e::etcd::TestEtcd;
use e2e::procs::{ControllerProcess, SimProcess};
use e2e::tls::TestPki;
use serde_json::Value;
use support::{eventually, nomarch_bin, run_nomarch, PREFIX};

fn path(pki: &TestPki, name: &str) -> String {
    pki.path(name).to_str().unwrap().to_string()
}

fn nomarch(etcd: &TestEtcd, env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_nomarch(&etcd.endpoint(), &env, args, stdin)
}

#[test]
fn with_certificates_everything_converges_and_without_them_nothing_connects() {
    let pki = TestPki::new();
    let etcd = TestEtcd::start_tls(&pki);
    let sim = SimProcess::start_tls(&pki, &[]);
    let etcd_tls = vec![
        ("ETCDCTL_CACERT", path(&pki, "ca.pem")),
        ("ETCDCTL_CERT", path(&pki, "client.pem")),
        ("ETCDCTL_KEY", path(&pki, "client-key.pem")),
    ];

    // etcd without a client certificate: refused, and the error is about etcd.
    let refused = nomarch(&etcd, &etcd_tls[..1], &["get", "apps"], None);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("etcd"), "{said}");
    // A key without its certificate is a usage error naming what is missing.
    let incomplete = nomarch(
        &etcd,
        &[etcd_tls[0].clone(), etcd_tls[2].clone()],
        &["get", "apps"],
        None,
    );
    let said = String::from_utf8_lossy(&incomplete.stderr);
    assert!(
        !incomplete.status.success() && said.contains("certificate"),
        "{said}"
    );

    // Nomad without a client certificate: the handshake is refused.
    let anonymous = e2e::http::blocking_client_tls(&pki, false)
        .get(format!("{}/v1/jobs", sim.nomad_url()))
        .send();
    assert!(
        anonymous.is_err(),
        "nomad-sim accepted a client without a certificate"
    );
    let trusted = e2e::http::blocking_client_tls(&pki, true);
    assert_eq!(
        trusted
            .get(format!("{}/v1/jobs", sim.nomad_url()))
            .send()
            .unwrap()
            .status(),
        200
    );

    let app = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  replicas: 1\n";
    let applied = nomarch(&etcd, &etcd_tls, &["apply", "-f", "-"], Some(app));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let mut env: Vec<(&str, String)> = etcd_tls.clone();
    for api in ["NOMAD", "CONSUL"] {
        env.push((
            if api == "NOMAD" {
                "NOMAD_CACERT"
            } else {
                "CONSUL_CACERT"
            },
            path(&pki, "ca.pem"),
        ));
    }
    env.extend([
        ("NOMAD_CLIENT_CERT", path(&pki, "client.pem")),
        ("NOMAD_CLIENT_KEY", path(&pki, "client-key.pem")),
        ("CONSUL_CLIENT_CERT", path(&pki, "client.pem")),
        ("CONSUL_CLIENT_KEY", path(&pki, "client-key.pem")),
    ]);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut controller = ControllerProcess::start_with_env(
        &nomarch_bin(),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &["--resync", "2s"],
        &env_refs,
    );
    controller.wait_leading();
    eventually("web Ready over TLS to etcd, Nomad and Consul", || {
        let output = nomarch(&etcd, &etcd_tls, &["get", "app", "web", "-o", "json"], None);
        let app: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        app["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    let job: Value = trusted
        .get(format!("{}/v1/job/web", sim.nomad_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(job["Meta"]["nomarch.io/managed-by"], "nomarch");
    // Consul's health queries went over TLS too, and none failed (Nomad's first read of the
    // job is a 404, an error by count).
    let consul = |series: &str| controller.metric(&format!("{series}{{api=\"consul\"}}"));
    let (requests, errors) = (
        consul("nomarch_api_requests_total"),
        consul("nomarch_api_errors_total"),
    );
    assert!(
        requests > 0.0 && errors == 0.0,
        "consul: {requests} requests, {errors} errors"
    );

    // The CLI's own Nomad calls (`diff`, `run`) take the same flags: with them `diff` reads
    // the job over TLS; without a client certificate it fails and says why.
    let nomad_addr = ("NOMAD_ADDR", sim.nomad_url());
    let with_tls: Vec<(&str, String)> = env.iter().cloned().chain([nomad_addr.clone()]).collect();
    let diffed = nomarch(&etcd, &with_tls, &["diff", "-f", "-"], Some(app));
    assert_eq!(
        String::from_utf8_lossy(&diffed.stdout),
        "app/web: no changes\n",
        "{}",
        String::from_utf8_lossy(&diffed.stderr)
    );
    let without_cert: Vec<(&str, String)> = etcd_tls
        .iter()
        .cloned()
        .chain([nomad_addr, ("NOMAD_CACERT", path(&pki, "ca.pem"))])
        .collect();
    let refused = nomarch(&etcd, &without_cert, &["diff", "-f", "-"], Some(app));
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.to_lowercase().contains("nomad"), "{said}");
}
