//! The rustls client configuration for `mqtts://`: the CA bundle and the optional client
//! certificate, read from PEM files with rustls' own PEM reader (`rustls::pki_types::pem`).
//! Handed to rumqttc ready-made, so rumqttc's PEM parsing (the unmaintained `rustls-pemfile`,
//! RUSTSEC-2025-0134) is never called. Certificate verification is rustls' own (its
//! `rustls-webpki`). Nothing about topics or sessions belongs here.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::MqttConfig;

/// Builds the TLS client configuration of `[mqtt]` (ring provider, TLS 1.2 and 1.3).
///
/// Errors, each naming the config key and the file: a file cannot be read, the CA file holds no
/// certificate rustls accepts, the client certificate file holds none, the key file holds no
/// private key (PKCS#8, PKCS#1 or SEC1), or rustls refuses the pair.
pub fn client_config(cfg: &MqttConfig) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let ca = read(&cfg.ca_file, "ca_file")?;
    let (added, _ignored) = roots.add_parsable_certificates(certs(&ca, &cfg.ca_file, "ca_file")?);
    if added == 0 {
        anyhow::bail!(
            "mqtt.ca_file {}: no usable CA certificate in it",
            cfg.ca_file.display()
        );
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &cfg.client_cert {
        Some((cert_path, key_path)) => {
            let chain = certs(&read(cert_path, "cert_file")?, cert_path, "cert_file")?;
            if chain.is_empty() {
                anyhow::bail!(
                    "mqtt.cert_file {}: no certificate in it",
                    cert_path.display()
                );
            }
            let key = PrivateKeyDer::from_pem_slice(&read(key_path, "key_file")?).map_err(|e| {
                anyhow::anyhow!("mqtt.key_file {}: no private key ({e})", key_path.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| anyhow::anyhow!("mqtt.cert_file/key_file: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read(p: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| anyhow::anyhow!("mqtt.{key} {}: {e}", p.display()))
}

/// Every `CERTIFICATE` block of a PEM file, in order.
fn certs(pem: &[u8], p: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("mqtt.{key} {}: {e}", p.display()))
}
