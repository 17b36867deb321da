//! Client TLS from PEM files: a CA to trust and, for servers that verify clients (Nomad's
//! `verify_https_client`, etcd's `--client-cert-auth`), a certificate and its key. The files'
//! contents never appear in errors; their paths do.

use std::path::{Path, PathBuf};

/// A client certificate's PEM and its key's PEM.
pub type IdentityPem = (Vec<u8>, Vec<u8>);

#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {detail}")]
    File {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("a client certificate needs its key and a key its certificate (got only the {given})")]
    Incomplete { given: &'static str },
}

/// A file's bytes, or an error that names it.
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// The CA's PEM, when one is given.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, TlsError> {
        self.ca_cert
            .as_deref()
            .map(|path| read("CA certificate", path))
            .transpose()
    }

    /// The client certificate's and key's PEM, when given (both or neither).
    pub fn identity_pem(&self) -> Result<Option<IdentityPem>, TlsError> {
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Ok(Some((
                read("client certificate", cert)?,
                read("client key", key)?,
            ))),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: "certificate",
            }),
            (None, Some(_)) => Err(TlsError::Incomplete { given: "key" }),
            (None, None) => Ok(None),
        }
    }

    /// A reqwest client builder that trusts the CA and presents the identity.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        let invalid =
            |what: &'static str, path: &Option<PathBuf>, e: reqwest::Error| TlsError::File {
                what,
                path: path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                detail: format!("not usable PEM ({e})"),
            };
        if let Some(pem) = self.ca_pem()? {
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| invalid("CA certificate", &self.ca_cert, e))?;
            builder = builder.add_root_certificate(ca);
        }
        if let Some((mut cert, key)) = self.identity_pem()? {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let identity = reqwest::Identity::from_pem(&cert)
                .map_err(|e| invalid("client certificate", &self.client_cert, e))?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}
