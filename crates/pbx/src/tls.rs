//! Server side TLS for SIP over TLS and secure WebSocket: loads a PEM
//! certificate chain and private key into a rustls configuration that uses
//! the ring crypto provider.

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
            | TlsFileError::InvalidPem { path, .. } => path,
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
    fn truncated_pem_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = write_pair(dir.path());
        let text = std::fs::read_to_string(&chain).unwrap();
        std::fs::write(&chain, &text[..text.len() / 2]).unwrap();
        let error = server_config(&chain, &key).unwrap_err();
        assert!(matches!(error, TlsFileError::InvalidPem { .. }), "{error}");
    }
}
