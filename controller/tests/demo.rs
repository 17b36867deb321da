//! `make demo`'s script: it pushes the examples to a local state repository, bootstraps a
//! GitSource, streams events, and leaves nothing running when interrupted.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo's whole process group if the test ends early, so a failed assertion never
/// leaves etcd running.
struct GroupGuard(libc::pid_t);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 > 1 {
            // SAFETY: kill(2) on a negative pid greater than 1 signals only that group.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

#[test]
fn demo_syncs_the_examples_from_git_and_stops_cleanly_on_ctrl_c() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let state = tempfile::tempdir().unwrap();
    let port = e2e::ports::free_port();
    let mut demo = Command::new("bash");
    demo.arg(root.join("scripts/demo.sh"))
        .env("NOMARCH_BIN", env!("CARGO_BIN_EXE_nomarch"))
        .env("NOMARCH_DEMO_ETCD_PORT", port.to_string())
        .env(
            "NOMAD_SIM_BIN",
            e2e::procs::binary("nomad-sim", "nomad-sim"),
        )
        .env(
            "NOMARCH_DEMO_NOMAD_PORT",
            e2e::ports::free_port().to_string(),
        )
        .env(
            "NOMARCH_DEMO_CONSUL_PORT",
            e2e::ports::free_port().to_string(),
        )
        .env(
            "NOMARCH_DEMO_CONTROLLER_PORT",
            e2e::ports::free_port().to_string(),
        )
        .env("NOMARCH_DEMO_STATE", state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so the test can signal it the way a terminal's Ctrl-C does.
        .process_group(0);
    // A terminal starts `make demo` with SIGINT at its default; a test runner launched in the
    // background may have it ignored, and bash cannot trap a signal ignored on entry.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        demo.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut demo = demo.spawn().expect("bash runs the demo");
    let group = demo.id();
    let _guard = GroupGuard(libc::pid_t::try_from(group).expect("pid fits"));
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut transcript = String::new();
    let mut events_seen = 0;
    let mut synced = false;
    while let Some(Ok(line)) = lines.next() {
        transcript.push_str(&line);
        transcript.push('\n');
        synced |= line.contains("Synced") && line.contains("gitsource/state");
        if line.contains("Normal") && line.contains("Registered") {
            events_seen += 1;
        }
        if synced && events_seen == 10 {
            break;
        }
    }
    assert!(
        transcript.contains("gitsource/state created"),
        "{transcript}"
    );
    assert!(
        transcript.contains("10 created, 0 configured"),
        "one sync creates every example object:\n{transcript}"
    );
    assert!(
        transcript.contains("Authorization: Bearer nomarch_"),
        "the demo prints an API token:\n{transcript}"
    );
    // The dashboard's address, which answers with its sign-in page.
    let dashboard = transcript
        .lines()
        .find_map(|l| l.strip_prefix("Dashboard: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the demo prints the dashboard's address:\n{transcript}"));
    let page = e2e::http::blocking_client()
        .get(format!("{dashboard}login"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("Sign in"));
    assert!(
        transcript.contains("pub-alice"),
        "get pubs shows the pubs:\n{transcript}"
    );
    // The first three rows after `get apps -o wide`'s header: every app Ready on nomad-sim.
    let apps_table: Vec<&str> = transcript
        .lines()
        .skip_while(|l| !l.contains("get apps -o wide"))
        .skip(2)
        .take(3)
        .collect();
    assert!(
        apps_table.len() == 3 && apps_table.iter().all(|l| l.contains(" True ")),
        "the apps converge on nomad-sim:\n{transcript}"
    );
    assert_eq!(
        events_seen, 10,
        "one Registered event per example object:\n{transcript}"
    );

    // Straight to the group: never through a `kill` binary, whose parsing of negative PIDs
    // differs between implementations (and `-1` would mean every process).
    let pgid = libc::pid_t::try_from(group).expect("pid fits");
    assert!(pgid > 1, "refusing to signal process group {pgid}");
    // SAFETY: kill(2) with a negative pid signals exactly that process group.
    let interrupted = unsafe { libc::kill(-pgid, libc::SIGINT) };
    assert_eq!(
        interrupted,
        0,
        "kill(2) failed: {}",
        std::io::Error::last_os_error()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if demo.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
    assert!(rest.contains("nothing is left running"), "{rest}");
    // Nothing of the demo's may survive: no process in its group, nothing on its etcd port.
    let survivors = Command::new("pgrep")
        .args(["-g", &group.to_string()])
        .output()
        .unwrap();
    assert!(
        survivors.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&survivors.stdout)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "etcd still listens on {port}"
    );
}
