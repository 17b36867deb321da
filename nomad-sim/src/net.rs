//! HTTP clients and URL schemes. The workspace builds reqwest with rustls but without a
//! bundled crypto provider (the default one needs a C toolchain with cmake); every client is
//! made after rustls' ring provider is installed.

/// Installs the ring provider once per process.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> reqwest::Client {
    install_tls();
    reqwest::Client::new()
}

/// `https` or `http`, for the URLs of a server that does or does not speak TLS.
pub fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}
