//! The `nomad-sim` binary: a cluster from `--config`, and `nomad-sim ctl` driving faults.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(nomad: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(e2e::procs::binary("nomad-sim", "nomad-sim"))
        .args(["ctl", "--addr", nomad])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(if output.status.success() {
        &output.stdout
    } else {
        &output.stderr
    })
    .to_string();
    (output.status.success(), text)
}

fn state(nomad: &str) -> Value {
    let (ok, text) = ctl(nomad, &["state"]);
    assert!(ok, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn config_file_cluster_and_ctl_faults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.json");
    std::fs::write(
        &config,
        r#"{"nodes": [{"name": "hub-a", "class": "hub", "meta": {"zone": "a"}, "memory": 2048}, {"name": "hub-b", "class": "hub"}]}"#,
    )
    .unwrap();
    let (nomad_port, consul_port) = (e2e::ports::free_port(), e2e::ports::free_port());
    let nomad = format!("http://127.0.0.1:{nomad_port}");
    let child = Command::new(e2e::procs::binary("nomad-sim", "nomad-sim"))
        .arg("--config")
        .arg(&config)
        .args([
            "--nomad-addr",
            &format!("127.0.0.1:{nomad_port}"),
            "--consul-addr",
            &format!("127.0.0.1:{consul_port}"),
        ])
        .args(["--heartbeat-ttl", "200ms", "--heartbeat-grace", "200ms"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ctl(&nomad, &["state"]).0 {
        assert!(Instant::now() < deadline, "nomad-sim did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let nodes = state(&nomad)["Nodes"].as_array().unwrap().clone();
    let names: Vec<&str> = nodes.iter().map(|n| n["Name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"hub-a") && names.contains(&"hub-b"));
    let hub_a = nodes.iter().find(|n| n["Name"] == "hub-a").unwrap();
    assert_eq!(
        (hub_a["NodeClass"].as_str(), hub_a["Meta"]["zone"].as_str()),
        (Some("hub"), Some("a"))
    );
    assert_eq!(hub_a["NodeResources"]["Memory"]["MemoryMB"], 2048);

    let (ok, text) = ctl(
        &nomad,
        &["add-node", "hub-c", "--class", "hub", "--meta", "zone=c"],
    );
    assert!(ok, "{text}");
    assert_eq!(state(&nomad)["Nodes"].as_array().unwrap().len(), 3);

    let (ok, text) = ctl(&nomad, &["kill-node", "hub-a"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let down = state(&nomad)["Nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Name"] == "hub-a" && n["Status"] == "down");
        if down {
            break;
        }
        assert!(Instant::now() < deadline, "hub-a never went down");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ok, text) = ctl(&nomad, &["kill-node", "no-such-node"]);
    assert!(!ok);
    assert!(
        text.contains("404") && text.contains("node not found"),
        "{text}"
    );
    let (ok, text) = ctl(&nomad, &["set-check", "sideways", "--service", "web"]);
    assert!(
        !ok && text.contains("status must be passing, warning or critical"),
        "{text}"
    );
}
