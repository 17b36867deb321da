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
        let data = tempfile::tempdir().expect("temp dir for etcd");
        let mut etcd = TestEtcd {
            data,
            client_port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            tls,
            child: None,
        };
        etcd.spawn();
        etcd
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
        let binary = std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string());
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
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
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.data.path().join("member").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{binary}` ({e}); run `make deps` to install etcd-server")
            });
        self.child = Some(child);
        self.wait_healthy();
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

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}
