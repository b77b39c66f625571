//! Who is on the other end of a call, from what tonic records about its connection in
//! the request's extensions: the client's address, and under TLS the subject of the
//! certificate it presented. Works on `http::Request` and `tonic::Request` alike (both
//! carry `http::Extensions`), so the RPC span and handlers (the audit log's "certificate
//! subject") name a caller the same way.

use std::net::SocketAddr;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// What tonic records for a connection that `tls::ServerTls::incoming` handshook.
type TlsInfo = TlsConnectInfo<TcpConnectInfo>;

/// The client's address, with or without TLS.
pub fn remote_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| extensions.get::<TlsInfo>().map(TlsInfo::get_ref))
        .and_then(TcpConnectInfo::remote_addr)
}

/// The subject of the client's certificate, e.g. `CN=agent-fast, O=Ferry`; `None` on a
/// plain-text connection or when the client presented none (TLS without a client CA).
/// Under mutual TLS, rustls has verified the certificate before any request arrives.
pub fn client_cert_subject(extensions: &http::Extensions) -> Option<String> {
    let certificates = extensions.get::<TlsInfo>()?.peer_certs()?;
    subject(certificates.first()?)
}

/// The subject name of a DER certificate, its attributes in the certificate's order.
fn subject(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    certificate
        .subject()
        .to_string_with_registry(x509_parser::objects::oid_registry())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_subject_reads_as_its_attributes() {
        let mut params = rcgen::CertificateParams::new(vec!["agent.internal".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "agent-fast");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Ferry");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        assert_eq!(
            subject(certificate.der()).as_deref(),
            Some("CN=agent-fast, O=Ferry")
        );
        assert_eq!(subject(b"not a certificate"), None);
    }

    #[test]
    fn a_plain_text_connection_has_an_address_and_no_certificate() {
        let mut extensions = http::Extensions::new();
        assert_eq!(remote_addr(&extensions), None);
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        extensions.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(addr),
        });
        assert_eq!(remote_addr(&extensions), Some(addr));
        assert_eq!(client_cert_subject(&extensions), None);
    }
}
