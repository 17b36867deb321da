//! How every command reaches Nomad and Consul: one set of flags (with the tools' own
//! environment names) and one place that turns them into a client with its token and TLS.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::clients::http::HttpApi;
use crate::clients::{ConsulClient, NomadClient, Secret, TlsFiles};

#[derive(Args, Debug, Clone)]
pub struct NomadArgs {
    /// Nomad's address
    #[arg(long, env = "NOMAD_ADDR", default_value = crate::clients::nomad::DEFAULT_ADDR)]
    pub nomad_addr: String,
    /// CA certificate (PEM) to trust for an https:// Nomad address
    #[arg(long, env = "NOMAD_CACERT")]
    pub nomad_ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for a Nomad that verifies clients (with --nomad-client-key)
    #[arg(long, env = "NOMAD_CLIENT_CERT")]
    pub nomad_client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM)
    #[arg(long, env = "NOMAD_CLIENT_KEY")]
    pub nomad_client_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ConsulArgs {
    /// Consul's address
    #[arg(long, env = "CONSUL_HTTP_ADDR", default_value = crate::clients::consul::DEFAULT_ADDR)]
    pub consul_addr: String,
    /// CA certificate (PEM) to trust for an https:// Consul address
    #[arg(long, env = "CONSUL_CACERT")]
    pub consul_ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for a Consul that verifies clients (with --consul-client-key)
    #[arg(long, env = "CONSUL_CLIENT_CERT")]
    pub consul_client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM)
    #[arg(long, env = "CONSUL_CLIENT_KEY")]
    pub consul_client_key: Option<PathBuf>,
}

impl NomadArgs {
    /// A client with `NOMAD_TOKEN` and these TLS files; `prepare` adds what the caller needs
    /// before TLS is set up (the controller's metrics, identity and write guard).
    pub fn client(&self, prepare: impl FnOnce(&mut HttpApi)) -> Result<NomadClient, CliError> {
        let mut client = NomadClient::new(&self.nomad_addr, Secret::from_env("NOMAD_TOKEN"));
        prepare(&mut client.http);
        let tls = TlsFiles {
            ca_cert: self.nomad_ca_cert.clone(),
            client_cert: self.nomad_client_cert.clone(),
            client_key: self.nomad_client_key.clone(),
        };
        use_tls(&mut client.http, &tls)?;
        Ok(client)
    }
}

impl ConsulArgs {
    /// A client with `CONSUL_HTTP_TOKEN` and these TLS files (see [`NomadArgs::client`]).
    pub fn client(&self, prepare: impl FnOnce(&mut HttpApi)) -> Result<ConsulClient, CliError> {
        let mut client =
            ConsulClient::new(&self.consul_addr, Secret::from_env("CONSUL_HTTP_TOKEN"));
        prepare(&mut client.http);
        let tls = TlsFiles {
            ca_cert: self.consul_ca_cert.clone(),
            client_cert: self.consul_client_cert.clone(),
            client_key: self.consul_client_key.clone(),
        };
        use_tls(&mut client.http, &tls)?;
        Ok(client)
    }
}

/// TLS problems are usage errors that name the API (a key without its certificate, a file
/// that does not parse).
fn use_tls(http: &mut HttpApi, tls: &TlsFiles) -> Result<(), CliError> {
    http.use_tls(tls)
        .map_err(|e| CliError::Usage(format!("{} TLS: {e}", http.api)))
}
