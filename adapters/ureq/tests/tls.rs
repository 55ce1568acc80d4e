//! HTTPS end to end against the fake served over TLS with a self-signed certificate.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fullstory_batch_ureq::{
    ApiKey, BaseUrl, Client, Config, Error, JobState, RootCertificate, TransportKind,
};
use rcgen::{CertifiedKey, generate_simple_self_signed};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

fn self_signed() -> CertifiedKey<rcgen::KeyPair> {
    generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate")
}

fn tls_fake(cert: &CertifiedKey<rcgen::KeyPair>) -> fullstory_batch_fake::FakeServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("a server config");
    fake()
        .processing_time(Duration::ZERO)
        .tls(server)
        .start_blocking()
        .unwrap()
}

fn https_config(base_url: &str) -> Config {
    assert!(base_url.starts_with("https://localhost:"), "{base_url}");
    Config::new(ApiKey::new(KEY).unwrap()).with_base_url(BaseUrl::parse(base_url).unwrap())
}

#[test]
fn https_with_a_trusted_pem_root() {
    let cert = self_signed();
    let fake = tls_fake(&cert);
    let (_, job) = insert_job(&fake);
    let roots = RootCertificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    assert_eq!(roots.len(), 1);
    let client = Client::with_options(
        https_config(fake.base_url()),
        quick_options().with_root_certificates(roots),
    );
    let status = client.status(&job).expect("a status over https");
    assert_eq!(status.job.status, JobState::Completed);
    let outcome = client.wait(&job, fast_policy());
    assert!(outcome.status().is_some(), "{outcome:?}");
}

#[test]
fn https_with_a_trusted_der_root() {
    let cert = self_signed();
    let fake = tls_fake(&cert);
    let (_, job) = insert_job(&fake);
    let root = RootCertificate::from_der(cert.cert.der().to_vec()).unwrap();
    let client = Client::with_options(
        https_config(fake.base_url()),
        quick_options().with_root_certificate(root),
    );
    assert!(client.status(&job).is_ok());
}

#[test]
fn https_without_the_root_is_a_tls_error() {
    let cert = self_signed();
    let fake = tls_fake(&cert);
    let (_, job) = insert_job(&fake);
    let client = Client::with_options(https_config(fake.base_url()), quick_options());
    let e = client.status(&job).expect_err("an untrusted certificate");
    assert!(
        matches!(&e, Error::Transport(t) if t.kind == TransportKind::Tls),
        "{e:?}"
    );
    assert_no_key(&e);
    assert!(fake.requests().is_empty(), "no request went out");
}

#[test]
fn another_root_does_not_help() {
    let cert = self_signed();
    let fake = tls_fake(&cert);
    let (_, job) = insert_job(&fake);
    let other = self_signed();
    let client = Client::with_options(
        https_config(fake.base_url()),
        quick_options()
            .with_root_certificate(RootCertificate::from_der(other.cert.der().to_vec()).unwrap()),
    );
    let e = client.status(&job).expect_err("an untrusted certificate");
    assert!(
        matches!(&e, Error::Transport(t) if t.kind == TransportKind::Tls),
        "{e:?}"
    );
}
