//! TLS in transit (D6): rustls on aws-lc-rs, HTTP/1.1 and HTTP/2 by ALPN
//! (HTTP/1.1 preferred),
//! certificate reload without dropping connections, and self-signed
//! development certificates.
//!
//! The acceptor reads the current configuration for every new connection;
//! `reload` (on SIGHUP) swaps it, so connections already open keep the
//! certificate they started with and new ones get the new one. A reload that
//! fails (unreadable or mismatched files) keeps the old certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsReloader {
    pub fn new(files: TlsFiles) -> Result<TlsReloader, String> {
        let config = load(&files)?;
        Ok(TlsReloader { files, current: RwLock::new(config) })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the certificate and key; keeps the old ones on failure.
    pub fn reload(&self) -> Result<(), String> {
        let config = load(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }
}

fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", files.cert.display()));
    }
    // The key's contents never appear in errors or logs; only its path.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|_| format!("{}: no usable private key", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit together: {e}"))?;
    // Our order decides: a client offering both gets HTTP/1.1, as from Amazon S3
    // (which speaks only HTTP/1.1). The SDKs then spread concurrent requests
    // over a pool of connections; over HTTP/2 they multiplex them on one, and
    // that connection's TLS records and frames are sealed on one task at each
    // end: GETs ×16 over HTTP/2 moved half what they do over HTTP/1.1. A client
    // that offers only h2 still gets it.
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate (`cert.pem`) and its key (`key.pem`,
/// mode 0600) for development, valid for `names` (DNS names or IP addresses).
pub fn write_self_signed(out: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Bulwark development certificate");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    file.write_all(key.serialize_pem().as_bytes()).map_err(|e| format!("{}: {e}", key_path.display()))?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_loads_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_self_signed(dir.path(), &["localhost".into(), "127.0.0.1".into()]).expect("generate");
        let reloader = TlsReloader::new(TlsFiles { cert: cert.clone(), key: key.clone() }).expect("load");
        let first = reloader.current();
        write_self_signed(dir.path(), &["localhost".into()]).expect("regenerate");
        reloader.reload().expect("reload");
        assert!(!Arc::ptr_eq(&first, &reloader.current()), "a reload installs a new configuration");
        std::fs::write(&key, "not a key").expect("break the key");
        assert!(reloader.reload().is_err(), "a broken key is refused");
        let message = reloader.reload().expect_err("still broken");
        assert!(!message.contains("not a key"), "key material never appears in errors");
    }
}
