//! HTTPS with an rcgen self-signed certificate for `localhost`.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{KEY, encode_id, exchange, request};
use fullstory_batch_fake::FakeServer;
use hyper::Method;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn configs() -> (ServerConfig, ClientConfig) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

#[tokio::test]
async fn serves_the_api_over_https() {
    let (server, client) = configs();
    let fake = FakeServer::builder()
        .key(KEY)
        .manual_clock()
        .tls(server)
        .start()
        .await
        .unwrap();
    let port = fake.addr().port();
    assert_eq!(fake.base_url(), format!("https://localhost:{port}"));
    let connector = TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(fake.addr()).await.unwrap();
    let tls = connector.connect(name.clone(), tcp).await.unwrap();
    let body = Bytes::from(json!({"requests": [{"name": "signup"}]}).to_string());
    let created = exchange(
        tls,
        request(Method::POST, "/v2/events/batch", Some(KEY), &[], body),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 200);
    let id = created.json()["job"]["id"].as_str().unwrap().to_owned();

    let tcp = TcpStream::connect(fake.addr()).await.unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let path = format!("/v2/events/batch/{}", encode_id(&id));
    let status = exchange(
        tls,
        request(Method::GET, &path, Some(KEY), &[], Bytes::new()),
    )
    .await
    .unwrap();
    assert_eq!(status.json()["job"]["status"], "PROCESSING");
    assert_eq!(fake.jobs_created(), 1);
}

#[tokio::test]
async fn plain_http_to_the_https_port_gets_no_answer() {
    let (server, _) = configs();
    let fake = FakeServer::builder().tls(server).start().await.unwrap();
    let tcp = TcpStream::connect(fake.addr()).await.unwrap();
    let result = exchange(
        tcp,
        request(
            Method::GET,
            "/v2/events/batch/x",
            Some(KEY),
            &[],
            Bytes::new(),
        ),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn untrusted_certificates_are_refused_by_the_client() {
    let (server, _) = configs();
    let (_, other_client) = configs();
    let fake = FakeServer::builder().tls(server).start().await.unwrap();
    let connector = TlsConnector::from(Arc::new(other_client));
    let tcp = TcpStream::connect(fake.addr()).await.unwrap();
    let handshake = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(
        handshake.is_err(),
        "the test would pass vacuously if any cert were trusted"
    );
}
