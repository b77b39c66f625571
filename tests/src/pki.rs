//! Certificates made on the fly with `rcgen` for the TLS tests, written as PEM files in a
//! private temporary directory: a CA, a server certificate it signed for `localhost` and
//! `127.0.0.1`, and client certificates it signed, current or expired. A second `Pki`
//! is "another CA", whose certificates the first one's control plane must refuse.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use ferry_sdk::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use tokio::net::TcpStream;
use tokio_rustls::{
    client::TlsStream,
    rustls::{
        crypto::aws_lc_rs,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
        ClientConfig, RootCertStore,
    },
    TlsConnector,
};

/// The organization every subject names, so a test can expect `CN=<name>, O=Ferry`.
pub const ORGANIZATION: &str = "Ferry";

/// A certificate authority and the files of what it signed.
pub struct Pki {
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// Numbers the files, so that each certificate issued has its own.
    issued: AtomicUsize,
    dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA whose subject is `CN=<name> CA`.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name = subject(&format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("generating the CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("self-signing the CA");
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("writing the CA");
        Pki {
            name: name.to_owned(),
            ca,
            issued: AtomicUsize::new(0),
            dir,
        }
    }

    /// The CA certificate, as a PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `localhost` and `127.0.0.1`: (certificate, key) files.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server parameters");
        self.issue("server", params)
    }

    /// A client certificate with subject `CN=<common_name>, O=Ferry`, and this CA to
    /// trust the server by.
    pub fn client(&self, common_name: &str) -> TlsFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name = subject(common_name);
        self.client_files(common_name, params)
    }

    /// Like [`Pki::client`], but valid only during 2020.
    pub fn expired_client(&self, common_name: &str) -> TlsFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name = subject(common_name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        self.client_files(&format!("{common_name}-expired"), params)
    }

    fn client_files(&self, name: &str, params: CertificateParams) -> TlsFiles {
        let (cert_file, key_file) = self.issue(name, params);
        TlsFiles {
            ca_file: Some(self.ca_file()),
            cert_file: Some(cert_file),
            key_file: Some(key_file),
        }
    }

    fn issue(&self, name: &str, params: CertificateParams) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("generating a key");
        let cert = params
            .signed_by(&key, &self.ca)
            .unwrap_or_else(|e| panic!("{} CA signing {name}: {e}", self.name));
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let cert_file = self.dir.path().join(format!("{name}-{n}.pem"));
        let key_file = self.dir.path().join(format!("{name}-{n}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("writing a certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("writing a key");
        (cert_file, key_file)
    }
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, ORGANIZATION);
    name
}

/// A TLS connection to a control plane on `localhost` that offers only `http/1.1` in
/// ALPN (as a Prometheus scraper does) and presents the client certificate of `files`,
/// if any.
pub async fn connect_http1(stream: TcpStream, files: &TlsFiles) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    let ca_file = files
        .ca_file
        .as_ref()
        .expect("a CA file to trust the server by");
    for ca in CertificateDer::pem_file_iter(ca_file).expect("reading the CA file") {
        roots
            .add(ca.expect("a PEM certificate"))
            .expect("a usable CA certificate");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("reading the client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM certificates");
            let key = PrivateKeyDer::from_pem_file(key).expect("reading the client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a client certificate and its key")
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").expect("a server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .expect("TLS handshake for /metrics")
}
