//! HTTP clients for tests and tools, made after rustls' ring provider is installed (the async
//! client and the installer are nomad-sim's, which its binary needs too).

pub use nomad_sim::net::{client, install_tls, scheme};

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
