//! Real processes for end-to-end tests: nomad-sim and `nomarch controller`, on free loopback
//! ports, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// A workspace binary next to the running test (target/<profile>/NAME). Under cargo it is
/// (re)built first, once per test process: running one package's tests does not rebuild
/// another package's binaries, and a stale simulator would test yesterday's code.
pub fn binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
    let parent = exe.parent().expect("an executable lives in a folder");
    let profile_dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("target/<profile>")
    } else {
        parent
    };
    if let Ok(cargo) = std::env::var("CARGO") {
        static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if !built.iter().any(|b| b == name) {
            let mut command = Command::new(cargo);
            command.args(["build", "--quiet", "-p", package, "--bin", name]);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                command.arg("--release");
            }
            let status = command.status().expect("cargo runs");
            assert!(status.success(), "building {name} failed");
            built.push(name.to_string());
        }
    }
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing; build it with `cargo build -p {package}`",
        path.display()
    );
    path
}

/// Waits until `ready`; a process that exits first fails with its own log.
fn wait_up(process: &mut Process, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(
            process.is_running(),
            "{what} exited:\n{}",
            process.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "{what} did not come up:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    http_get(port, path).is_some_and(|answer| {
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
    })
}

/// The whole HTTP/1.0 answer (status line, headers, body), or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    Some(answer)
}

/// A child process that is killed on drop.
pub struct Process {
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    fn spawn(mut command: Command, name: &str) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a signal (`libc::SIGTERM` for a graceful stop) to this process only.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        assert!(pid > 1, "no process to signal");
        // SAFETY: kill(2) with a positive pid signals exactly that process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the process to exit; its exit code, or `None` if it is still running after
    /// `limit` (then it is killed).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct SimProcess {
    pub process: Process,
    pub nomad_port: u16,
    pub consul_port: u16,
    /// Whether it serves HTTPS.
    pub tls: bool,
}

impl SimProcess {
    /// nomad-sim over HTTPS with the PKI's server certificate, requiring client certificates
    /// signed by its CA.
    pub fn start_tls(pki: &crate::tls::TestPki, extra: &[&str]) -> SimProcess {
        let (cert, key, ca) = (pki.path("server.pem"), pki.path("server-key.pem"), pki.ca());
        let mut args: Vec<&str> = vec![
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
            "--tls-client-ca",
            ca.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        SimProcess::launch(&args, true)
    }

    pub fn start(extra: &[&str]) -> SimProcess {
        SimProcess::launch(extra, false)
    }

    fn launch(extra: &[&str], tls: bool) -> SimProcess {
        let (nomad_port, consul_port) = (free_port(), free_port());
        let mut command = Command::new(binary("nomad-sim", "nomad-sim"));
        command
            .args([
                "--nomad-addr",
                &format!("127.0.0.1:{nomad_port}"),
                "--consul-addr",
                &format!("127.0.0.1:{consul_port}"),
            ])
            .args(extra);
        if !extra.contains(&"--start-delay") {
            command.args(["--start-delay", "100ms"]);
        }
        let mut process = Process::spawn(command, "nomad-sim");
        wait_up(&mut process, "nomad-sim", || {
            if tls {
                // Without a client certificate only the port can be seen to listen.
                std::net::TcpStream::connect(("127.0.0.1", nomad_port)).is_ok()
            } else {
                http_ok(nomad_port, "/v1/status/leader")
            }
        });
        SimProcess {
            process,
            nomad_port,
            consul_port,
            tls,
        }
    }

    pub fn nomad_url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            crate::http::scheme(self.tls),
            self.nomad_port
        )
    }

    pub fn consul_url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            crate::http::scheme(self.tls),
            self.consul_port
        )
    }
}

pub struct ControllerProcess {
    pub process: Process,
    pub port: u16,
}

impl ControllerProcess {
    /// Starts `nomarch controller` (binary path from the caller: only the controller package
    /// knows it) and waits until it is ready.
    pub fn start(
        nomarch: &Path,
        etcd: &str,
        prefix: &str,
        sim: &SimProcess,
        extra: &[&str],
    ) -> ControllerProcess {
        Self::start_with_env(nomarch, etcd, prefix, sim, extra, &[])
    }

    /// As [`ControllerProcess::start`], with more environment (tokens, credentials).
    pub fn start_with_env(
        nomarch: &Path,
        etcd: &str,
        prefix: &str,
        sim: &SimProcess,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ControllerProcess {
        Self::start_custom(nomarch, etcd, prefix, sim, extra, &|command| {
            command.envs(env.iter().copied());
        })
    }

    /// As [`ControllerProcess::start`], with the command adjusted first (environment, user).
    pub fn start_custom(
        nomarch: &Path,
        etcd: &str,
        prefix: &str,
        sim: &SimProcess,
        extra: &[&str],
        customize: &dyn Fn(&mut Command),
    ) -> ControllerProcess {
        let port = free_port();
        let mut command = Command::new(nomarch);
        customize(&mut command);
        command
            .env("NOMARCH_ETCD_ENDPOINTS", etcd)
            .env("NOMARCH_PREFIX", prefix)
            .env("NOMAD_ADDR", sim.nomad_url())
            .env("CONSUL_HTTP_ADDR", sim.consul_url())
            .env("RUST_LOG", "info")
            .args(["controller", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra);
        let mut process = Process::spawn(command, "controller");
        wait_up(&mut process, "the controller", || http_ok(port, "/readyz"));
        ControllerProcess { process, port }
    }

    /// Waits until this controller leads (a predecessor killed without resigning holds the
    /// lease until its TTL runs out).
    pub fn wait_leading(&mut self) {
        wait_up(&mut self.process, "the controller's leadership", || {
            http_get(self.port, "/readyz").is_some_and(|a| a.contains("(leading)"))
        });
    }

    /// A graceful stop, as a rolling restart does it: SIGTERM, then the lease is given up.
    pub fn stop(&mut self) {
        self.process.signal(libc::SIGTERM);
        self.process.wait(Duration::from_secs(20));
    }

    /// The value of the first metric line that starts with `series` (name and labels), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The metrics text.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }
}
