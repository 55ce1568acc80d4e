//! Roots that cannot be used are refused when the client is built, as on the hyper adapter.
//! (HTTPS end to end, with trusted and untrusted roots, is in the conformance suite.)

mod common;

use common::KEY;
use fullstory_batch_ureq::{ApiKey, BuildError, Client, ClientOptions, Config};

#[test]
fn bad_roots_are_refused_when_building() {
    assert!(matches!(
        ClientOptions::new().with_root_certificates_pem(b"not pem"),
        Err(BuildError::NoCertificateInPem)
    ));
    let config = Config::new(ApiKey::new(KEY).unwrap());
    let options = ClientOptions::new().with_root_certificate_der(b"not der".to_vec());
    let error = Client::new(config, options).unwrap_err();
    assert!(matches!(error, BuildError::InvalidRootCertificate(_)));
    assert_eq!(error.to_string(), "invalid root certificate");
    assert!(std::error::Error::source(&error).is_some());
}
