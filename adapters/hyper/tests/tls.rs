//! HTTPS end to end against the fake served over TLS with a self-signed certificate.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fullstory_batch_fake::{FakeServer, Resource as FakeResource};
use fullstory_batch_hyper::{
    ApiKey, BaseUrl, BuildError, Client, ClientOptions, Config, Error, JobState, Outcome,
    TransportKind,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

struct TlsFake {
    fake: FakeServer,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

async fn tls_fake() -> TlsFake {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_der = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key.into())
    .unwrap();
    let fake = fake_builder()
        .tls(server)
        .processing_time(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    TlsFake {
        fake,
        cert_der,
        cert_pem: certified.cert.pem(),
    }
}

fn https_config(fake: &FakeServer) -> Config {
    assert!(fake.base_url().starts_with("https://localhost:"));
    // `parse`, not `parse_allow_http`: the client speaks HTTPS only.
    Config::new(ApiKey::new(KEY).unwrap()).with_base_url(BaseUrl::parse(fake.base_url()).unwrap())
}

#[tokio::test]
async fn https_with_a_custom_der_root() {
    let tls = tls_fake().await;
    let id = tls.fake.insert_job(FakeResource::Events, one_event());
    let options = ClientOptions::new().with_root_certificate_der(tls.cert_der.to_vec());
    let client = Client::new(https_config(&tls.fake), options).unwrap();
    let status = client.status(&events_job(&id)).await.unwrap();
    assert_eq!(status.job.status, JobState::Processing);
    assert!(matches!(
        client.wait(&events_job(&id), fast_policy()).await,
        Outcome::Completed(_)
    ));
}

#[tokio::test]
async fn https_with_a_custom_pem_root() {
    let tls = tls_fake().await;
    let id = tls.fake.insert_job(FakeResource::Events, one_event());
    let options = ClientOptions::new()
        .with_root_certificates_pem(tls.cert_pem.as_bytes())
        .unwrap();
    let client = Client::new(https_config(&tls.fake), options).unwrap();
    client.status(&events_job(&id)).await.unwrap();
}

#[tokio::test]
async fn https_without_the_root_fails_as_tls() {
    let tls = tls_fake().await;
    let id = tls.fake.insert_job(FakeResource::Events, one_event());
    let client = Client::new(https_config(&tls.fake), ClientOptions::new()).unwrap();
    match client.status(&events_job(&id)).await {
        Err(e @ Error::Transport(_)) => {
            assert_error_has_no_key(&e);
            let Error::Transport(t) = e else {
                unreachable!()
            };
            assert_eq!(t.kind, TransportKind::Tls, "{t:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(tls.fake.requests().is_empty(), "no request got through");
}

#[test]
fn bad_roots_are_refused_when_building() {
    assert!(matches!(
        ClientOptions::new().with_root_certificates_pem(b"not pem"),
        Err(BuildError::NoCertificateInPem)
    ));
    let config = Config::new(ApiKey::new(KEY).unwrap());
    let options = ClientOptions::new().with_root_certificate_der(b"not der".to_vec());
    assert!(matches!(
        Client::new(config, options),
        Err(BuildError::InvalidRootCertificate(_))
    ));
}
