//! A certificate authority made for one test: it issues the certificate
//! of a trunk's TLS server and the PBX's client certificate, and builds
//! the rustls server configuration of the trunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key, as DER and as PEM files.
pub struct Issued {
    pub certificate: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub certificate_path: PathBuf,
    pub key_path: PathBuf,
}

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// PEM file of the CA certificate, the trust anchor of both sides.
    pub path: PathBuf,
}

impl TestCa {
    /// Creates the CA and writes its certificate into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, issuer.pem()).expect("write the CA certificate");
        TestCa { issuer, path }
    }

    /// Issues a certificate for `names` and writes it and its key into
    /// `dir` under `label`.
    pub fn issue(&self, dir: &Path, label: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = CertificateParams::new(names).expect("certificate parameters");
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &self.issuer).expect("certificate");
        let certificate_path = dir.join(format!("{label}.pem"));
        let key_path = dir.join(format!("{label}-key.pem"));
        std::fs::write(&certificate_path, certificate.pem()).expect("write the certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
        Issued {
            certificate: certificate.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            certificate_path,
            key_path,
        }
    }

    /// Builds a TLS server presenting `server` that requires a client
    /// certificate issued by this CA (mutual TLS).
    pub fn server_config(&self, server: &Issued) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(ring_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.issuer.der().clone())
            .expect("CA as trust anchor");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server.certificate.clone()], server.key.clone_key())
            .expect("server certificate");
        Arc::new(config)
    }
}

#[allow(
    deprecated,
    reason = "the PBX uses ring too, so the test builds no second provider"
)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
