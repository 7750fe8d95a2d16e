//! TLS for SIP over TLS (RFC 3261 §26.2, port 5061) and secure WebSocket
//! (RFC 7118 `wss`), with rustls (ring provider).
//!
//! The server side presents the configured certificate chain and key. The
//! client side (connections the gateway opens for TLS transmits) trusts the
//! Mozilla roots (webpki-roots) and any extra CA file configured, and checks
//! the peer's name: the host of the URI it is sending to, or the IP address
//! when the URI has one.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// What the transports need for TLS.
#[derive(Clone)]
pub struct TlsConfig {
    /// For accepted TLS and WSS connections; `None` when no TLS listener is
    /// configured.
    pub server: Option<Arc<ServerConfig>>,
    /// For TLS connections the gateway opens.
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

/// ring, not aws-lc-rs: a build that needs no cmake (docs/decisions/0009).
/// rustls marks ring's provider deprecated because it has no post-quantum
/// key exchange; SIP peers offer none either today.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Reads the PEM files: `cert` (the chain, leaf first) and `key` for the
    /// server side (both or neither), `ca` for extra trust anchors.
    pub fn load(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<TlsConfig, String> {
        let server = match (cert, key) {
            (Some(cert), Some(key)) => Some(Arc::new(server_config(cert, key)?)),
            (None, None) => None,
            _ => return Err("a TLS certificate needs its key, and a key its certificate".into()),
        };
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = ca {
            for c in certificates(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
        }
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig {
            server,
            client: Arc::new(client),
        })
    }

    /// The name a server's certificate must carry: an IP address as such,
    /// else the host name.
    pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_owned())
            .map_err(|e| format!("{host}: not a TLS server name: {e}"))
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))
}
