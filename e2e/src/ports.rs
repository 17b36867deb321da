//! Free loopback ports for test servers.

use std::net::TcpListener;

/// A port that was free a moment ago. The OS hands out ephemeral ports in sequence, so the
/// window for another process to take it before the test binds it is small.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}
