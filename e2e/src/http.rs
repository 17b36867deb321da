//! HTTP clients for tests and tools. The workspace builds reqwest with rustls but without a
//! bundled crypto provider (the default one needs a C toolchain with cmake); every client is
//! made here, after rustls' ring provider is installed.

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

pub fn blocking_client() -> reqwest::blocking::Client {
    install_tls();
    reqwest::blocking::Client::new()
}

/// `reqwest::get`, with the provider installed.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

/// A blocking client that trusts the PKI's CA, presenting its client certificate when asked.
pub fn blocking_client_tls(
    pki: &crate::tls::TestPki,
    with_client_cert: bool,
) -> reqwest::blocking::Client {
    install_tls();
    let read = |name: &str| std::fs::read(pki.path(name)).expect("PKI file");
    let ca = reqwest::Certificate::from_pem(&read("ca.pem")).expect("CA PEM");
    let mut builder = reqwest::blocking::Client::builder().add_root_certificate(ca);
    if with_client_cert {
        let mut pem = read("client.pem");
        pem.extend_from_slice(&read("client-key.pem"));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("client PEM"));
    }
    builder.build().expect("TLS client")
}

/// `https` or `http`, for the URLs of a server that does or does not speak TLS.
pub fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}
