//! TLS on the client side: the files a client is given (the CA it trusts the control
//! plane by and, for mutual TLS, its own certificate and key), read and checked before
//! anything is dialled, so that a wrong path or an empty file is reported as such rather
//! than as a failed handshake. Without a CA file, the platform's trusted roots are used.
//!
//! Private keys never appear in a message: errors name the file and what is wrong.

use std::path::{Path, PathBuf};

use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Where a client finds its TLS material; all PEM files, all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates the control plane's certificate must chain to; unset: the
    /// platform's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// The client's own certificate chain, for a control plane that requires one
    /// (mutual TLS). Given with `key_file` or not at all.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// A TLS file that is missing, unreadable or holds nothing usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TlsFileError {
    /// Which setting: `ca_file`, `cert_file` or `key_file`.
    pub field: &'static str,
    /// What is wrong with it, with its path.
    pub reason: String,
}

impl TlsFiles {
    /// True when no file is named.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }

    /// Reads and checks the files: the TLS configuration of a channel to an `https://`
    /// endpoint. The server name checked is the endpoint's host.
    pub fn client_config(&self) -> Result<ClientTlsConfig, TlsFileError> {
        let config = match &self.ca_file {
            Some(path) => {
                let pem = read_certificates("ca_file", path)?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(config),
            (Some(cert), Some(key)) => {
                let cert = read_certificates("cert_file", cert)?;
                let key = read_private_key("key_file", key)?;
                Ok(config.identity(Identity::from_pem(cert, key)))
            }
            (Some(_), None) => Err(invalid("key_file", "required with cert_file".into())),
            (None, Some(_)) => Err(invalid("cert_file", "required with key_file".into())),
        }
    }
}

fn invalid(field: &'static str, reason: String) -> TlsFileError {
    TlsFileError { field, reason }
}

/// The PEM text of a file holding at least one certificate and nothing malformed.
fn read_certificates(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(field, path)?;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate
            .map_err(|e| invalid(field, format!("{} is not valid PEM: {e}", path.display())))?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(invalid(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(pem)
}

/// The PEM text of a file holding a private key. The parser's own error could quote the
/// file, so it is not repeated.
fn read_private_key(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(field, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        invalid(
            field,
            format!(
                "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            ),
        )
    })?;
    Ok(pem)
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| invalid(field, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    fn files(dir: &Path, ca: &str, cert: &str, key: &str) -> TlsFiles {
        let named = |name: &str| (!name.is_empty()).then(|| dir.join(name));
        TlsFiles {
            ca_file: named(ca),
            cert_file: named(cert),
            key_file: named(key),
        }
    }

    fn error(files: &TlsFiles) -> String {
        files.client_config().unwrap_err().to_string()
    }

    #[test]
    fn each_bad_file_is_named_by_its_setting() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        std::fs::write(dir.join("ca.pem"), CERTIFICATE).unwrap();
        std::fs::write(dir.join("client.key"), KEY).unwrap();
        std::fs::write(dir.join("empty.pem"), "").unwrap();

        assert!(files(dir, "ca.pem", "", "").client_config().is_ok());
        assert!(files(dir, "", "", "").client_config().is_ok());
        assert!(files(dir, "ca.pem", "ca.pem", "client.key")
            .client_config()
            .is_ok());
        assert_eq!(
            error(&files(dir, "ca.pem", "ca.pem", "")),
            "key_file: required with cert_file"
        );
        assert_eq!(
            error(&files(dir, "", "", "client.key")),
            "cert_file: required with key_file"
        );
        let missing = error(&files(dir, "nope.pem", "", ""));
        assert!(missing.starts_with("ca_file: cannot read "), "{missing}");
        let empty = error(&files(dir, "empty.pem", "", ""));
        assert!(
            empty.ends_with("empty.pem holds no PEM certificate"),
            "{empty}"
        );
        let no_key = error(&files(dir, "", "ca.pem", "ca.pem"));
        assert!(no_key.starts_with("key_file: "), "{no_key}");
        assert!(no_key.contains("holds no PEM private key"), "{no_key}");
    }
}
