//! TLS plumbing for tests against a server started with
//! [`TestServer::start_tls`](crate::TestServer::start_tls): an HTTP client for the
//! SDK that trusts the test certificate, and raw HTTP/1.1 or HTTP/2 connections
//! whose peer certificate and negotiated protocol a test can inspect.
//!
//! Contract: nothing here trusts anything but the PEM certificates it is given (no
//! platform roots, no "accept any certificate"), so a completed handshake proves
//! that the server presented one of them, and [`TlsConnection::peer_certificate`]
//! says which. A [`TlsConnection`] is one TCP connection kept alive across requests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::SharedHttpClient;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The DER bytes of the first certificate in a PEM file.
pub fn certificate_der(pem_path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem_path)
        .unwrap_or_else(|e| panic!("read certificates from {}: {e}", pem_path.display()))
        .next()
        .unwrap_or_else(|| panic!("{} holds no certificate", pem_path.display()))
        .unwrap_or_else(|e| panic!("parse the certificate in {}: {e}", pem_path.display()))
        .to_vec()
}

/// An HTTP client for the SDK (rustls on aws-lc, ALPN `h2`, `http/1.1`) that trusts
/// exactly the certificate(s) in `cert_pem`.
pub fn sdk_http_client(cert_pem: &[u8]) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(cert_pem.to_vec());
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(trust).build().expect("a valid TLS context"))
        .build_https()
}

/// A rustls client configuration that trusts the certificates in `trusted_pem_files`
/// and offers `alpn` (most preferred first).
pub fn client_config(trusted_pem_files: &[&Path], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for path in trusted_pem_files {
        roots.add(CertificateDer::from(certificate_der(path))).expect("trust the certificate");
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Which HTTP version to speak on a [`TlsConnection`]; it is also the only one
/// offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::Http1 => b"http/1.1",
            Protocol::Http2 => b"h2",
        }
    }
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One kept-alive TLS connection speaking HTTP/1.1 or HTTP/2.
pub struct TlsConnection {
    sender: Sender,
    protocol: Protocol,
    authority: String,
    peer_certificate: Vec<u8>,
    alpn: Option<Vec<u8>>,
}

/// A whole response read from a [`TlsConnection`].
#[derive(Debug, Clone)]
pub struct TlsResponse {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TlsResponse {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy), for assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TlsConnection {
    /// Connects to `address`, verifies the server as `server_name` against
    /// `trusted_pem_files`, offers only `protocol` by ALPN and starts HTTP on it.
    pub async fn open(
        address: SocketAddr,
        server_name: &str,
        trusted_pem_files: &[&Path],
        protocol: Protocol,
    ) -> Result<TlsConnection, String> {
        let config = client_config(trusted_pem_files, &[protocol.alpn()]);
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| format!("server name: {e}"))?;
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("TLS handshake: {e}"))
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("no TLS handshake with {address} within {CONNECT_TIMEOUT:?}"))??;
        let (_, session) = stream.get_ref();
        let peer_certificate = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.to_vec())
            .ok_or("the server presented no certificate")?;
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(stream);
        let sender = match protocol {
            Protocol::Http1 => {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            }
            Protocol::Http2 => {
                let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            }
        };
        let authority = format!("{server_name}:{}", address.port());
        Ok(TlsConnection { sender, protocol, authority, peer_certificate, alpn })
    }

    /// The DER of the leaf certificate the server presented on this connection.
    pub fn peer_certificate(&self) -> &[u8] {
        &self.peer_certificate
    }

    /// The protocol the server chose by ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// Sends one request on this connection and reads the whole response.
    /// `headers` should include `host` for HTTP/1.1 (hand-signed requests do);
    /// for HTTP/2 the authority goes in the URI and a `host` header is dropped.
    pub async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<TlsResponse, String> {
        let uri = match self.protocol {
            Protocol::Http1 => path_and_query.to_owned(),
            Protocol::Http2 => format!("https://{}{path_and_query}", self.authority),
        };
        let mut builder = http::Request::builder().method(method).uri(uri);
        builder = match self.protocol {
            Protocol::Http1 => builder.version(http::Version::HTTP_11),
            Protocol::Http2 => builder.version(http::Version::HTTP_2),
        };
        let mut has_host = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("host") {
                has_host = true;
                if self.protocol == Protocol::Http2 {
                    continue;
                }
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        if self.protocol == Protocol::Http1 && !has_host {
            builder = builder.header("host", self.authority.as_str());
        }
        let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| format!("build the request: {e}"))?;
        let exchange = async {
            let response = match &mut self.sender {
                Sender::Http1(sender) => {
                    sender.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
                    sender.send_request(request).await
                }
                Sender::Http2(sender) => {
                    sender.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
                    sender.send_request(request).await
                }
            }
            .map_err(|e| format!("{method} {path_and_query}: {e}"))?;
            let status = response.status().as_u16();
            let version = response.version();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("read the response body: {e}"))?
                .to_bytes()
                .to_vec();
            Ok(TlsResponse { status, version, headers, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path_and_query}: no response within {REQUEST_TIMEOUT:?}"))?
    }
}
