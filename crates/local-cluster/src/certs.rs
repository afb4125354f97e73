//! The control plane's certificates, keys, static admin token and kubeconfig.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::ControlPlaneError;

/// The admin's bearer token. The control plane listens on loopback only and lives as
/// long as one test run.
pub const ADMIN_TOKEN: &str = "kvbind-local-admin";

/// Paths of what [`write`] produced.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_public: PathBuf,
    pub service_account_private: PathBuf,
    pub token_file: PathBuf,
}

/// Writes a CA, a serving certificate for 127.0.0.1, a service-account key pair and the
/// token file into `dir`.
pub fn write(dir: &Path) -> Result<Pki, ControlPlaneError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "kvbind-local-ca");
    let ca = ca_params.self_signed(&ca_key)?;

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["localhost".to_owned()])?;
    serving.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let serving = serving.signed_by(&serving_key, &ca, &ca_key)?;

    let sa_key = KeyPair::generate()?;
    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_public: dir.join("sa.pub"),
        service_account_private: dir.join("sa.key"),
        token_file: dir.join("tokens.csv"),
    };
    let files = [
        (&pki.ca_cert, ca.pem()),
        (&pki.serving_cert, serving.pem()),
        (&pki.serving_key, serving_key.serialize_pem()),
        (&pki.service_account_public, sa_key.public_key_pem()),
        (&pki.service_account_private, sa_key.serialize_pem()),
        (&pki.token_file, format!("{ADMIN_TOKEN},kvbind-admin,kvbind-admin,system:masters\n")),
    ];
    for (path, text) in files {
        std::fs::write(path, text).map_err(|source| ControlPlaneError::Write { what: "certificates", source })?;
    }
    Ok(pki)
}

/// A kubeconfig for the admin.
pub fn kubeconfig(server: &str, pki: &Pki) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {ADMIN_TOKEN}
contexts:
- name: local
  context:
    cluster: local
    user: admin
current-context: local
"#,
        ca = pki.ca_cert.display()
    )
}
