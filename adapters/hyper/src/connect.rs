//! The connector: TCP (no Nagle, connect timeout), rustls on ring, and a hard cap on open
//! sockets.
//!
//! Why a cap here as well as on requests: hyper-util's legacy pool races an idle-connection
//! checkout against a new connect and keeps both, and a connection goes back to the pool
//! only a moment after its body was read (a spawned task notices). So a cap on requests in
//! flight alone still lets sockets pile up (ADAPTER-NOTES: 64 in flight opened ~120). Each
//! socket this connector opens holds a permit until it is dropped, so no more than the cap
//! are ever open. A connect that finds every permit taken waits: with at most `cap`
//! requests in flight, one of the open connections is idle or about to be, and the pool's
//! checkout wins the race. The wait is bounded by the connect timeout so that a connect
//! the pool spawned into the background (after the checkout won) gives up instead of
//! lingering.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use crate::options::{BuildError, ClientOptions};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The TLS setup: Mozilla's roots plus the caller's, ring as the crypto provider.
pub(crate) fn tls_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<ClientConfig, BuildError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for der in extra_roots {
        roots
            .add(der.clone())
            .map_err(BuildError::InvalidRootCertificate)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(BuildError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// TCP plus TLS, capped. `https_only` refuses plain `http` URIs.
pub(crate) fn connector(
    options: &ClientOptions,
    https_only: bool,
) -> Result<CappedConnector, BuildError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    let tls = HttpsConnectorBuilder::new().with_tls_config(tls_config(&options.roots)?);
    let https = if https_only {
        tls.https_only().enable_http1().wrap_connector(http)
    } else {
        tls.https_or_http().enable_http1().wrap_connector(http)
    };
    Ok(CappedConnector {
        inner: https,
        slots: Arc::new(Semaphore::new(options.max_connections)),
        slot_wait: options.connect_timeout,
    })
}

/// An [`HttpsConnector`] whose sockets each hold a permit of a shared semaphore.
#[derive(Clone)]
pub(crate) struct CappedConnector {
    inner: HttpsConnector<HttpConnector>,
    slots: Arc<Semaphore>,
    slot_wait: Duration,
}

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

impl Service<Uri> for CappedConnector {
    type Response = Capped<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // Futures are lazy: nothing is dialled before the permit is held.
        let connecting = self.inner.call(dst);
        let slots = Arc::clone(&self.slots);
        let slot_wait = self.slot_wait;
        Box::pin(async move {
            let slot = match tokio::time::timeout(slot_wait, slots.acquire_owned()).await {
                Ok(slot) => slot.expect("the connection semaphore is never closed"),
                Err(_) => return Err(Box::new(NoFreeConnection(slot_wait)) as BoxError),
            };
            let io = connecting.await?;
            Ok(Capped { io, _slot: slot })
        })
    }
}

/// Every connection slot stayed taken for the whole wait.
#[derive(Debug)]
pub(crate) struct NoFreeConnection(pub(crate) Duration);

impl fmt::Display for NoFreeConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no connection slot came free within {:?}", self.0)
    }
}

impl std::error::Error for NoFreeConnection {}

/// A socket holding one connection permit; dropping it closes the socket and frees the permit.
pub(crate) struct Capped<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

impl<T: Read + Unpin> Read for Capped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Capped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Capped<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
