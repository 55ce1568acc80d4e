//! Roots that cannot be used are refused when the client is built. (HTTPS end to end, with
//! trusted and untrusted roots, is in the conformance suite.)

mod common;

use common::KEY;
use fullstory_batch_hyper::{ApiKey, BuildError, Client, ClientOptions, Config};

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
