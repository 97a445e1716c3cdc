//! TLS for SIP, with the ring crypto provider: the server side of the TLS
//! and secure WebSocket listeners (a PEM certificate chain and private
//! key), and the client side of the connections the PBX opens to trunks
//! (trust anchors from a CA file or the system, and an optional client
//! certificate for mutual TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Error loading the certificate or key files for TLS.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsFileError {
    #[error("failed to read {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} contains no PEM certificate; expected \"BEGIN CERTIFICATE\" blocks")]
    NoCertificate { path: PathBuf },
    #[error("{path:?} contains no PEM private key; expected a PKCS#8, PKCS#1 or SEC1 key")]
    NoPrivateKey { path: PathBuf },
    #[error("{path:?} is not valid PEM: {source}")]
    InvalidPem { path: PathBuf, source: pem::Error },
    #[error("{path:?} contains a certificate that cannot be a trust anchor: {source}")]
    InvalidTrustAnchor {
        path: PathBuf,
        source: rustls::Error,
    },
    /// rustls rejects the pair, for example a key that does not match the
    /// certificate or a key type ring cannot sign with.
    #[error("the key in {key:?} cannot be used with the certificate in {chain:?}: {source}")]
    Rejected {
        chain: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl TlsFileError {
    /// File the error is about; the key file for a rejected pair.
    pub(crate) fn path(&self) -> &Path {
        match self {
            TlsFileError::Read { path, .. }
            | TlsFileError::NoCertificate { path }
            | TlsFileError::NoPrivateKey { path }
            | TlsFileError::InvalidPem { path, .. }
            | TlsFileError::InvalidTrustAnchor { path, .. } => path,
            TlsFileError::Rejected { key, .. } => key,
        }
    }
}

/// Loads `chain` (leaf first) and `key` and builds a server configuration
/// without client authentication.
pub(crate) fn server_config(
    chain: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let certificates = load_chain(chain)?;
    let private_key = load_private_key(key)?;
    let rejected = |source| TlsFileError::Rejected {
        chain: chain.to_owned(),
        key: key.to_owned(),
        source,
    };
    let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(certificates, private_key)
        .map_err(rejected)?;
    Ok(Arc::new(config))
}

/// Builds the client configuration of outbound TLS connections. The
/// server certificate must chain to a certificate of `ca_file`, or to one
/// of the operating system's trust anchors when it is None, and carry the
/// server name. `client` is the certificate chain and key presented for
/// mutual TLS.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    let roots = match ca_file {
        Some(path) => file_roots(path)?,
        None => system_roots(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsFileError::InvalidTrustAnchor {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            source,
        })?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let certificates = load_chain(chain)?;
            let private_key = load_private_key(key)?;
            builder
                .with_client_auth_cert(certificates, private_key)
                .map_err(|source| TlsFileError::Rejected {
                    chain: chain.to_owned(),
                    key: key.to_owned(),
                    source,
                })?
        }
    };
    Ok(Arc::new(config))
}

fn file_roots(path: &Path) -> Result<rustls::RootCertStore, TlsFileError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in load_chain(path)? {
        roots
            .add(certificate)
            .map_err(|source| TlsFileError::InvalidTrustAnchor {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// Loads the operating system's trust anchors. Unreadable ones are
/// skipped with a warning, so one bad file in /etc/ssl/certs does not stop
/// the PBX. With none at all, every outbound TLS handshake fails and logs
/// the reason.
fn system_roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "failed to load a system trust anchor");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(
            ignored,
            "no system trust anchors; set sip.tls_ca_file to verify trunks over TLS"
        );
    }
    roots
}

/// Returns the ring provider, chosen because its C and assembly part builds
/// in seconds while aws-lc-rs compiles a large C library.
// NOTE: rustls 0.23.48 deprecates ring's provider because it offers no
// post-quantum key exchange; switching to aws-lc-rs adds X25519MLKEM768.
#[allow(deprecated, reason = "ring is the chosen provider; see the note above")]
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let text = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsFileError::InvalidPem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsFileError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsFileError::InvalidPem {
            path: path.to_owned(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let chain = dir.join("chain.pem");
        let key = dir.join("key.pem");
        std::fs::write(&chain, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        (chain, key)
    }

    #[test]
    fn generated_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = write_pair(dir.path());
        assert!(server_config(&chain, &key).is_ok());
    }

    #[test]
    fn missing_chain_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path());
        let error = server_config(&dir.path().join("absent.pem"), &key).unwrap_err();
        assert!(matches!(error, TlsFileError::Read { .. }), "{error}");
        assert!(error.to_string().contains("absent.pem"), "{error}");
    }

    #[test]
    fn key_in_place_of_chain_has_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path());
        let error = server_config(&key, &key).unwrap_err();
        assert!(
            matches!(error, TlsFileError::NoCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn chain_in_place_of_key_has_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, _) = write_pair(dir.path());
        let error = server_config(&chain, &chain).unwrap_err();
        assert!(
            matches!(error, TlsFileError::NoPrivateKey { .. }),
            "{error}"
        );
        assert_eq!(error.path(), chain);
    }

    #[test]
    fn key_of_another_certificate_is_rejected() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let (chain, _) = write_pair(first.path());
        let (_, other_key) = write_pair(second.path());
        let error = server_config(&chain, &other_key).unwrap_err();
        assert!(matches!(error, TlsFileError::Rejected { .. }), "{error}");
    }

    #[test]
    fn client_config_loads_ca_and_client_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = write_pair(dir.path());
        assert!(client_config(Some(&chain), None).is_ok());
        assert!(client_config(Some(&chain), Some((&chain, &key))).is_ok());
    }

    #[test]
    fn client_config_rejects_key_as_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path());
        let error = client_config(Some(&key), None).unwrap_err();
        assert!(
            matches!(error, TlsFileError::NoCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn client_config_rejects_foreign_key() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let (chain, _) = write_pair(first.path());
        let (_, other_key) = write_pair(second.path());
        let error = client_config(Some(&chain), Some((&chain, &other_key))).unwrap_err();
        assert!(matches!(error, TlsFileError::Rejected { .. }), "{error}");
    }

    #[test]
    fn truncated_pem_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = write_pair(dir.path());
        let text = std::fs::read_to_string(&chain).unwrap();
        std::fs::write(&chain, &text[..text.len() / 2]).unwrap();
        let error = server_config(&chain, &key).unwrap_err();
        assert!(matches!(error, TlsFileError::InvalidPem { .. }), "{error}");
    }
}
