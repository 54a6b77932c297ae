//! The emulator's HTTPS: a local development certificate authority and a certificate for this
//! machine's loopback names, made once in the data folder, and a listener that serves the same
//! API over TLS.
//!
//! HTTPS exists because Microsoft Entra ID tokens only travel over it: every Azure SDK (and so the
//! Functions host's eventGrid output binding under `func start`) refuses to send a bearer token
//! over plain http. Clients trust the CA (`<data>/tls/ca.pem`) as [`DevCertificate::trust_hint`]
//! says.
//!
//! Invariants:
//! - the CA's private key never leaves the data folder and is readable by its owner only; the
//!   CA signs nothing but the one loopback certificate (names `localhost`, `*.localhost`,
//!   `127.0.0.1`, `::1`), so trusting it exposes no other host;
//! - TLS handshakes run in their own tasks with a deadline, so a slow or silent client never
//!   holds up the accept loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Certificates are made for ten years: they name this machine's loopback only.
const VALIDITY: time::Duration = time::Duration::days(3650);

/// The files of the development CA and certificate in `<data>/tls`.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    pub dir: PathBuf,
}

impl DevCertificate {
    /// The CA certificate clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    fn certificate(&self) -> PathBuf {
        self.dir.join("localhost.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("localhost.key")
    }

    /// Loads the CA and certificate under `data_dir/tls`, making them first if any is missing.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(Self, rustls::ServerConfig)> {
        let this = Self {
            dir: data_dir.join("tls"),
        };
        let complete = [this.ca(), this.ca_key(), this.certificate(), this.key()]
            .iter()
            .all(|p| p.is_file());
        if !complete {
            this.create()?;
            tracing::info!(ca = %this.ca().display(), "made a local development CA for the emulator's HTTPS; {}", this.trust_hint());
        }
        let config = this.server_config()?;
        Ok((this, config))
    }

    fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let now = time::OffsetDateTime::now_utc();
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name
            .push(DnType::CommonName, "ordergrid local development CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - time::Duration::days(1);
        ca.not_after = now + VALIDITY;
        let ca_key = KeyPair::generate().context("failed to make the CA's key")?;
        let ca_certificate = ca.self_signed(&ca_key)?;
        let mut leaf = CertificateParams::new(vec![
            "localhost".to_owned(),
            "*.localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "ordergrid emulator (localhost)");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = ca.not_before;
        leaf.not_after = ca.not_after;
        let leaf_key = KeyPair::generate().context("failed to make the certificate's key")?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_certificate = leaf.signed_by(&leaf_key, &issuer)?;
        write_file(&self.ca(), ca_certificate.pem().as_bytes(), 0o644)?;
        write_file(&self.ca_key(), ca_key_pem.as_bytes(), 0o600)?;
        write_file(&self.key(), leaf_key.serialize_pem().as_bytes(), 0o600)?;
        // The chain: the certificate, then the CA that signed it.
        let chain = leaf_certificate.pem() + &ca_certificate.pem();
        write_file(&self.certificate(), chain.as_bytes(), 0o644)
    }

    fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(self.certificate())
            .and_then(Iterator::collect)
            .with_context(|| {
                format!(
                    "{} is not a PEM certificate chain",
                    self.certificate().display()
                )
            })?;
        let key = PrivateKeyDer::from_pem_file(self.key())
            .with_context(|| format!("{} is not a PEM private key", self.key().display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("failed to set up TLS")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the emulator's certificate and key do not match")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// How to make clients trust the CA, in one line.
    pub fn trust_hint(&self) -> String {
        let ca = self.ca();
        format!(
            "trust it with: sudo cp {ca} /usr/local/share/ca-certificates/ordergrid-dev.crt && sudo update-ca-certificates \
             (Debian/Ubuntu; .NET and curl use that store), or per client: REQUESTS_CA_BUNDLE={ca} (Python), \
             NODE_EXTRA_CA_CERTS={ca} (Node.js), SSL_CERT_FILE={ca} (OpenSSL, Rust)",
            ca = ca.display()
        )
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write {}", path.display()))
}

/// A TLS listener for `axum::serve`: accepts TCP connections, completes each handshake in its
/// own task, and yields the connections that finished it.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, usually: give the others time to close.
                        tracing::warn!(error = %e, "failed to accept an HTTPS connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (made, _) = DevCertificate::load_or_create(dir.path()).unwrap();
        let ca = std::fs::read(made.ca()).unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(made.ca_key()), 0o600);
        assert_eq!(mode(made.key()), 0o600);
        let (again, _) = DevCertificate::load_or_create(dir.path()).unwrap();
        assert_eq!(std::fs::read(again.ca()).unwrap(), ca, "kept, not remade");
        assert!(made.trust_hint().contains("ca.pem"));
    }
}
