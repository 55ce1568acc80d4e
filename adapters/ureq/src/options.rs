//! What a [`crate::Client`] is made with besides the core's `Config`: timeouts, the
//! connection cap, extra trusted roots, the jitter seed.
//!
//! The same shape, names and defaults as `fullstory-batch-hyper`'s `ClientOptions` and
//! `BuildError`, so code moves between the two adapters unchanged.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The default [`ClientOptions::connect_timeout`]: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`ClientOptions::request_timeout`]: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`ClientOptions::max_connections`]: 32.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// Most worker threads a run uses, whatever [`ClientOptions::max_connections`] says.
pub const MAX_WORKERS: usize = 8;

/// How the [`crate::Client`] talks to the server. The API itself (base URL, key, body limit)
/// is the core's [`fullstory_batch::Config`].
///
/// ```
/// use std::time::Duration;
/// use fullstory_batch_ureq::ClientOptions;
///
/// let options = ClientOptions::new()
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_request_timeout(Duration::from_secs(10))
///     .with_max_connections(8);
/// assert_eq!(options.max_connections(), 8);
/// ```
#[derive(Clone)]
pub struct ClientOptions {
    connect_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    jitter_seed: Option<u64>,
}

impl ClientOptions {
    /// Connect timeout 10 s, request timeout 30 s, 32 connections, Mozilla's roots only, a
    /// fresh jitter seed for each run.
    pub fn new() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            roots: Vec::new(),
            jitter_seed: None,
        }
    }

    /// The longest opening a connection may take, DNS and TLS handshake included (default
    /// 10 s). A connect that takes longer fails as [`fullstory_batch::TransportKind::Timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one request may take, from start to the last byte of the body,
    /// connecting included (default 30 s). When a [`fullstory_batch::Policy`] has a
    /// deadline, a request is also cut short at the deadline. A request over time fails as
    /// [`fullstory_batch::TransportKind::Timeout`].
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most connections kept open for reuse, in all and per host (the API is one host),
    /// and the cap on the worker threads a run sends on: `min(max, 8)`
    /// ([`MAX_WORKERS`]), so that every worker can keep its connection (default 32; 0
    /// counts as 1). A run with one request out at a time (a wait, one import) sends on
    /// the calling thread. ureq opens a connection whenever none is idle, so at most one
    /// per worker is ever in use.
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Trusts this root certificate (DER) in addition to Mozilla's roots, for a private CA,
    /// a TLS proxy or a test server. The certificate is checked when the client is built.
    #[must_use]
    pub fn with_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Trusts every certificate in this PEM text in addition to Mozilla's roots (other
    /// blocks, such as keys, are skipped). Each is checked when the client is built.
    ///
    /// # Errors
    /// [`BuildError::Pem`] when the text is not PEM, [`BuildError::NoCertificateInPem`] when
    /// it holds no certificate.
    pub fn with_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, BuildError> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.roots.push(cert.map_err(BuildError::Pem)?);
            found += 1;
        }
        if found == 0 {
            return Err(BuildError::NoCertificateInPem);
        }
        Ok(self)
    }

    /// Seeds the jitter of poll waits, so that the same answers give the same schedule
    /// (default: a fresh random seed for each run).
    #[must_use]
    pub fn with_jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The connection cap: idle connections kept, and (up to [`MAX_WORKERS`]) workers.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The jitter seed, when one was set.
    pub fn jitter_seed(&self) -> Option<u64> {
        self.jitter_seed
    }

    /// The number of worker threads a run with up to `wanted` requests out at once uses.
    pub(crate) fn workers(&self, wanted: usize) -> usize {
        self.max_connections.min(MAX_WORKERS).min(wanted).max(1)
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("extra_roots", &self.roots.len())
            .field("jitter_seed", &self.jitter_seed)
            .finish()
    }
}

/// A [`crate::Client`] could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The PEM text could not be read.
    Pem(rustls::pki_types::pem::Error),
    /// The PEM text holds no certificate.
    NoCertificateInPem,
    /// A custom root certificate could not be parsed as a trust anchor (found when the
    /// client is built).
    InvalidRootCertificate(rustls::Error),
    /// rustls refused the TLS configuration. This adapter hands its TLS setup to ureq and
    /// does not report this today; the variant is here so that code matching on either
    /// adapter's `BuildError` reads the same.
    Tls(rustls::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pem(_) => "could not read pem certificates",
            Self::NoCertificateInPem => "pem text holds no certificate",
            Self::InvalidRootCertificate(_) => "invalid root certificate",
            Self::Tls(_) => "invalid tls configuration",
        })
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pem(e) => Some(e),
            Self::InvalidRootCertificate(e) | Self::Tls(e) => Some(e),
            Self::NoCertificateInPem => None,
        }
    }
}

/// Parses each extra root the way rustls will when it builds the root store, so a bad one
/// fails when the client is built rather than in the first handshake.
pub(crate) fn check_roots(roots: &[CertificateDer<'static>]) -> Result<(), BuildError> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(BuildError::InvalidRootCertificate)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_bounded() {
        let options = ClientOptions::new();
        assert_eq!(options.workers(100), MAX_WORKERS);
        assert_eq!(options.workers(3), 3);
        assert_eq!(options.workers(0), 1);
        assert_eq!(options.clone().with_max_connections(2).workers(100), 2);
        assert_eq!(options.with_max_connections(0).workers(100), 1);
    }

    #[test]
    fn defaults_and_getters() {
        let options = ClientOptions::default();
        assert_eq!(options.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(options.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(options.max_connections(), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(options.jitter_seed(), None);
        assert_eq!(options.with_jitter_seed(7).jitter_seed(), Some(7));
    }

    #[test]
    fn bad_pem_is_refused_when_given() {
        assert!(matches!(
            ClientOptions::new().with_root_certificates_pem(b"no pem here"),
            Err(BuildError::NoCertificateInPem)
        ));
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ClientOptions::new().with_root_certificates_pem(bad),
            Err(BuildError::Pem(_))
        ));
    }

    #[test]
    fn bad_der_is_refused_when_built() {
        let options = ClientOptions::new().with_root_certificate_der(b"not der".to_vec());
        assert!(matches!(
            check_roots(&options.roots),
            Err(BuildError::InvalidRootCertificate(_))
        ));
        let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].to_vec();
        let options = ClientOptions::new().with_root_certificate_der(mozilla);
        assert!(check_roots(&options.roots).is_ok());
        assert!(format!("{options:?}").contains("extra_roots: 1"));
    }
}
