//! TLS on the control plane's port: the certificate and key it serves and, for mutual
//! TLS, the CA whose client certificates it requires, read from PEM files and checked at
//! start (a bad file is a configuration error naming its key); then the stream of
//! accepted connections, each one's handshake done before tonic sees it.
//!
//! Tonic's own `Server::tls_config` would wrap the same `TcpIncoming` stream, but its
//! rustls configuration offers only `h2` in ALPN, so a client asking for HTTP/1.1 alone
//! (a Prometheus scraper reading `/metrics`, `curl --http1.1`) fails the handshake, and
//! it builds that configuration on rustls's process-wide crypto provider, which is
//! ambiguous in this build (aws-lc-rs and ring both compiled in: rustls then panics). So
//! the handshake is done here with tokio-rustls on aws-lc-rs, offering `h2` and
//! `http/1.1`. Tonic still receives rustls `TlsStream`s and so still puts the client's
//! certificates in each request's extensions (`TlsConnectInfo`, read by `grpc::peer`).
//!
//! Private keys never appear in a message: errors name the file and what is wrong.

use std::{io, path::Path, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::{
    rustls::{
        self,
        crypto::{aws_lc_rs, CryptoProvider},
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
        server::WebPkiClientVerifier,
        RootCertStore, ServerConfig,
    },
    server::TlsStream,
    TlsAcceptor,
};
use tonic::transport::server::TcpIncoming;
use tracing::{debug, info};

use crate::config::TlsConfig;

/// How long a client may take over its handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at once. Beyond that, new connections wait in the listen queue
/// rather than in memory: a flood of clients that never finish cannot starve the rest
/// for longer than the handshake timeout.
const CONCURRENT_HANDSHAKES: usize = 256;

/// A checked TLS configuration, ready to accept connections.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    mutual: bool,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks the files `config` names: `Ok(None)` when TLS is off (no
    /// certificate and key), an error naming the key (`tls.key_file: …`) when a file
    /// cannot be read, holds nothing usable, or the key does not match the certificate.
    pub fn load(config: &TlsConfig) -> Result<Option<ServerTls>, String> {
        let (cert_file, key_file) = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if config.client_ca_file.is_some() => {
                return Err("tls.client_ca_file: needs tls.cert_file and tls.key_file: \
                            mutual TLS is TLS first"
                    .into())
            }
            (None, None) => return Ok(None),
            (Some(_), None) => return Err("tls.key_file: required with tls.cert_file".into()),
            (None, Some(_)) => return Err("tls.cert_file: required with tls.key_file".into()),
        };
        let chain = read_certificates("tls.cert_file", cert_file)?;
        let expires_at = chain.first().and_then(|leaf| not_after(leaf));
        let key = read_private_key("tls.key_file", key_file)?;
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: no TLS version available: {e}"))?;
        let builder = match &config.client_ca_file {
            Some(ca_file) => builder.with_client_cert_verifier(client_verifier(ca_file, provider)?),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "tls.key_file: {} cannot serve the certificate of tls.cert_file: {e}",
                key_file.display()
            )
        })?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            config: Arc::new(server),
            mutual: config.client_ca_file.is_some(),
            expires_at,
        }))
    }

    /// When the served certificate expires, if it says.
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.expires_at
    }

    /// Whether clients must present a certificate signed by the client CA.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// The connections of `tcp` that complete a TLS handshake, as tonic serves them.
    /// Failed handshakes are logged and dropped; accept errors pass through for tonic to
    /// judge, as they would without TLS.
    pub fn incoming(
        &self,
        tcp: TcpIncoming,
    ) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
        let acceptor = TlsAcceptor::from(self.config.clone());
        tcp.map(move |accepted| {
            let acceptor = acceptor.clone();
            async move {
                let stream = match accepted {
                    Ok(stream) => stream,
                    Err(e) => return Some(Err(e)),
                };
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => Some(Ok(tls)),
                    Ok(Err(e)) => {
                        log_refusal(&peer, &e);
                        None
                    }
                    Err(_) => {
                        debug!(peer, "TLS handshake timed out");
                        None
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENT_HANDSHAKES)
        .filter_map(std::future::ready)
    }
}

/// A refused certificate or protocol is worth an operator's attention; a client that
/// went away mid-handshake (a TCP health check, a port scan) is not.
/// The end of a certificate's validity.
fn not_after(cert: &CertificateDer<'_>) -> Option<chrono::DateTime<chrono::Utc>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    chrono::DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
}

fn log_refusal(peer: &str, error: &io::Error) {
    let refused = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match refused {
        Some(reason) => info!(peer, error = %reason, "TLS handshake refused"),
        None => debug!(peer, error = %error, "TLS handshake failed"),
    }
}

/// Accepts only clients whose certificate chains to a CA in `ca_file`.
fn client_verifier(
    ca_file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for ca in read_certificates("tls.client_ca_file", ca_file)? {
        roots.add(ca).map_err(|e| {
            format!(
                "tls.client_ca_file: {} holds a certificate that cannot be a trust anchor: {e}",
                ca_file.display()
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("tls.client_ca_file: {}: {e}", ca_file.display()))
}

/// Every certificate of a PEM file, in order; at least one.
fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key}: {} is not valid PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{key}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1). The parser's own error
/// could quote the file, so it is not repeated.
fn read_private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        format!(
            "{key}: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            path.display()
        )
    })
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        /// A CA, a server certificate it signed and the server's key, as PEM files.
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text);
            write("ca.pem", ca.pem()).unwrap();
            write("server.pem", cert.pem()).unwrap();
            write("server.key", key.serialize_pem()).unwrap();
            write(
                "other.key",
                rcgen::KeyPair::generate().unwrap().serialize_pem(),
            )
            .unwrap();
            write("empty.pem", String::new()).unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> Option<PathBuf> {
            Some(self.dir.path().join(name))
        }

        fn config(&self, cert: &str, key: &str, client_ca: &str) -> TlsConfig {
            let named = |name: &str| {
                if name.is_empty() {
                    None
                } else {
                    self.path(name)
                }
            };
            TlsConfig {
                cert_file: named(cert),
                key_file: named(key),
                client_ca_file: named(client_ca),
            }
        }
    }

    fn error(config: &TlsConfig) -> String {
        ServerTls::load(config).unwrap_err()
    }

    #[test]
    fn no_files_is_plain_text_and_a_full_set_is_mutual_tls() {
        let files = Files::new();
        assert!(ServerTls::load(&TlsConfig::default()).unwrap().is_none());
        let tls = ServerTls::load(&files.config("server.pem", "server.key", ""));
        assert!(!tls.unwrap().unwrap().is_mutual());
        let mutual = ServerTls::load(&files.config("server.pem", "server.key", "ca.pem"));
        assert!(mutual.unwrap().unwrap().is_mutual());
    }

    #[test]
    fn each_bad_setting_is_named_by_its_key() {
        let files = Files::new();
        let half = error(&files.config("server.pem", "", ""));
        assert_eq!(half, "tls.key_file: required with tls.cert_file");
        let half = error(&files.config("", "server.key", ""));
        assert_eq!(half, "tls.cert_file: required with tls.key_file");
        let alone = error(&files.config("", "", "ca.pem"));
        assert!(alone.starts_with("tls.client_ca_file: needs"), "{alone}");

        let missing = error(&files.config("nope.pem", "server.key", ""));
        assert!(
            missing.starts_with("tls.cert_file: cannot read "),
            "{missing}"
        );
        let empty = error(&files.config("empty.pem", "server.key", ""));
        assert!(empty.contains("holds no PEM certificate"), "{empty}");
        let not_a_key = error(&files.config("server.pem", "server.pem", ""));
        assert!(not_a_key.starts_with("tls.key_file: "), "{not_a_key}");
        assert!(
            not_a_key.contains("holds no PEM private key"),
            "{not_a_key}"
        );
        let mismatch = error(&files.config("server.pem", "other.key", ""));
        assert!(mismatch.starts_with("tls.key_file: "), "{mismatch}");
        let no_ca = error(&files.config("server.pem", "server.key", "empty.pem"));
        assert!(no_ca.starts_with("tls.client_ca_file: "), "{no_ca}");
    }

    #[test]
    fn errors_never_quote_the_private_key() {
        let files = Files::new();
        let key = std::fs::read_to_string(files.path("other.key").unwrap()).unwrap();
        let body: String = key.lines().nth(1).unwrap().chars().take(20).collect();
        let mismatch = error(&files.config("server.pem", "other.key", ""));
        assert!(!mismatch.contains(&body), "{mismatch}");
        let as_certificate = error(&files.config("other.key", "server.key", ""));
        assert!(!as_certificate.contains(&body), "{as_certificate}");
    }
}
