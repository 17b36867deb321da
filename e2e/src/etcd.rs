//! A real etcd (Debian's `etcd-server`) for tests: its own ports, its own data dir, gone when the
//! value is dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

pub struct TestEtcd {
    data: tempfile::TempDir,
    /// The member's name and the `--initial-cluster` it starts with (itself alone, or every
    /// member of a [`TestEtcdCluster`]).
    name: String,
    initial_cluster: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` when clients must speak TLS.
    metrics_port: u16,
    /// Server certificate, key and the CA clients must be signed by (`--client-cert-auth`).
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl TestEtcd {
    /// Starts etcd and waits until it answers `/health`. Panics with etcd's own log when it
    /// does not come up, so a broken install reads as such.
    pub fn start() -> TestEtcd {
        TestEtcd::launch(None)
    }

    /// etcd serving clients over TLS with the PKI's server certificate, and accepting only
    /// clients whose certificate its CA signed.
    pub fn start_tls(pki: &crate::tls::TestPki) -> TestEtcd {
        TestEtcd::launch(Some((
            pki.path("server.pem"),
            pki.path("server-key.pem"),
            pki.ca(),
        )))
    }

    fn launch(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> TestEtcd {
        let mut etcd = TestEtcd::unstarted("test", tls);
        etcd.initial_cluster = format!("test={}", etcd.peer_url());
        etcd.spawn();
        etcd
    }

    fn unstarted(name: &str, tls: Option<(PathBuf, PathBuf, PathBuf)>) -> TestEtcd {
        TestEtcd {
            data: tempfile::tempdir().expect("temp dir for etcd"),
            name: name.to_string(),
            initial_cluster: String::new(),
            client_port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            tls,
            child: None,
        }
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// `http(s)://127.0.0.1:PORT`, for `--etcd` and `NOMARCH_ETCD_ENDPOINTS`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the server (SIGKILL: the harshest case for clients) and keeps its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("etcd.log")
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_healthy();
    }

    fn spawn_process(&mut self) {
        let binary = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string());
        let client = self.endpoint();
        let peer = self.peer_url();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let mut command = Command::new(&binary);
        if let Some((cert, key, ca)) = &self.tls {
            command
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--trusted-ca-file={}", ca.display()))
                .arg("--client-cert-auth")
                .arg(format!(
                    "--listen-metrics-urls=http://127.0.0.1:{}",
                    self.metrics_port
                ));
        }
        let child = command
            .arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.data.path().join("member").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{binary}` ({e}); run `make deps` to install etcd-server")
            });
        self.child = Some(child);
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("etcd exited with {status}:\n{}", self.log());
                }
            }
            if self.healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy within 20s:\n{}", self.log());
    }

    fn healthy(&self) -> bool {
        let port = if self.tls.is_some() {
            self.metrics_port
        } else {
            self.client_port
        };
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// etcd's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// A real etcd cluster of several members on loopback, as a production install runs it: any one
/// member can be stopped (and restarted with its data) while the others keep quorum.
pub struct TestEtcdCluster {
    members: Vec<TestEtcd>,
}

impl TestEtcdCluster {
    /// Starts `size` members and waits until every one answers `/health` (which needs quorum).
    pub fn start(size: usize) -> TestEtcdCluster {
        let mut members: Vec<TestEtcd> = (0..size)
            .map(|i| TestEtcd::unstarted(&format!("member{i}"), None))
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for member in &mut members {
            member.initial_cluster = initial_cluster.clone();
            member.spawn_process();
        }
        for member in &mut members {
            member.wait_healthy();
        }
        TestEtcdCluster { members }
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(TestEtcd::endpoint).collect()
    }

    pub fn member(&mut self, index: usize) -> &mut TestEtcd {
        &mut self.members[index]
    }

    /// The index of the member that leads now, as the running members report it; `None`
    /// while there is no leader.
    pub fn leader(&self) -> Option<usize> {
        let ids: Vec<Option<(String, String)>> = self
            .members
            .iter()
            .map(TestEtcd::member_and_leader)
            .collect();
        let leader = ids.iter().flatten().map(|(_, leader)| leader).next()?;
        ids.iter()
            .position(|id| id.as_ref().is_some_and(|(member, _)| member == leader))
    }

    /// A member that is running and not the leader.
    pub fn follower(&self) -> usize {
        let leader = self.leader().expect("the cluster has a leader");
        (0..self.members.len())
            .find(|&i| i != leader && self.members[i].child.is_some())
            .expect("a running follower")
    }
}

impl TestEtcd {
    /// This member's ID and the leader's, from etcd's JSON gateway (`/v3/maintenance/status`).
    fn member_and_leader(&self) -> Option<(String, String)> {
        self.child.as_ref()?;
        let mut stream = TcpStream::connect(("127.0.0.1", self.client_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(
                b"POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                  Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            )
            .ok()?;
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        let body = reply.split("\r\n\r\n").nth(1)?;
        let status: serde_json::Value = serde_json::from_str(body).ok()?;
        let member = status["header"]["member_id"].as_str()?.to_string();
        let leader = status["leader"].as_str()?.to_string();
        (leader != "0").then_some((member, leader))
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}
