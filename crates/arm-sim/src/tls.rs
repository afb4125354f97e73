//! HTTPS for the simulator: a CA and a serving certificate for 127.0.0.1 and localhost,
//! generated at start. Clients trust the CA's PEM, which [`crate::Simulator::ca_pem`] returns.

use std::net::{IpAddr, Ipv4Addr};

use axum_server::tls_rustls::RustlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the certificates failed.
    #[error("generating the simulator's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// rustls refused them.
    #[error("loading the simulator's certificates: {0}")]
    Load(#[from] std::io::Error),
}

/// A serving configuration and the CA that signed it (PEM).
pub async fn self_signed() -> Result<(RustlsConfig, String), TlsError> {
    // kvbind uses ring everywhere; a second provider in the tree makes rustls ask which.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "kvbind ARM simulator CA");
    let ca = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()])?;
    leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.distinguished_name.push(DnType::CommonName, "kvbind ARM simulator");
    let leaf = leaf.signed_by(&key, &ca, &ca_key)?;
    let config = RustlsConfig::from_pem(leaf.pem().into_bytes(), key.serialize_pem().into_bytes()).await?;
    Ok((config, ca.pem()))
}
