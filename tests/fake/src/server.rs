//! The running server: its shared state, the handle tests hold, and the
//! accept loop.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::builder::{Config, FakeServerBuilder};
use crate::clock::Clock;
use crate::codec::{mix, process_salt};
use crate::fault::{Script, ScriptId, ScriptState};
use crate::log::{LoggedRequest, RequestLog};
use crate::model::{JobSnapshot, Resource, ResourceExt};
use crate::state::{Created, Job, JobTiming, NewJob, State, stored};
use crate::stats::{Stats, Tally};
use crate::validate::{ItemFailure, default_fails, import_failure};

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub config: Config,
    pub timing: JobTiming,
    pub clock: Clock,
    state: Mutex<State>,
    pub log: Mutex<RequestLog>,
    tally: Mutex<Tally>,
    pub seq: AtomicU64,
    pub shutdown: watch::Sender<bool>,
}

impl Shared {
    fn new(config: Config) -> Shared {
        let timing = JobTiming {
            processing: config.processing,
            limits: config.limits,
            encoding: config.encoding.clone(),
            idempotency_ttl: config.idempotency_ttl,
        };
        let id_salt = config.id_seed.unwrap_or_else(|| match &config.random {
            // Reproducible faults need reproducible paths, so reproducible ids.
            Some(random) => mix(random.seed ^ 0x6A6F_6269_6473),
            None => process_salt(),
        });
        let mut state = State::default();
        state.id_salt = id_salt;
        Shared {
            clock: Clock::new(config.manual_clock),
            log: Mutex::new(RequestLog::new(config.log_capacity)),
            state: Mutex::new(state),
            tally: Mutex::new(Tally::default()),
            seq: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
            timing,
            config,
        }
    }

    /// The state lock; a panic elsewhere must not wedge the server.
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lock_log(&self) -> MutexGuard<'_, RequestLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lock_tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// All jobs, in creation order.
    pub fn jobs(&self) -> Vec<JobSnapshot> {
        let state = self.lock_state();
        let mut jobs: Vec<&Job> = state.jobs.values().collect();
        jobs.sort_by_key(|job| job.number);
        jobs.into_iter().map(|job| self.snapshot(job)).collect()
    }

    /// Which items fail, computed before the lock is taken (the rule is user code).
    pub fn failures(
        &self,
        resource: Resource,
        items: &[Value],
        shared_context: bool,
    ) -> Vec<(usize, ItemFailure)> {
        let rule = |item: &Value| match &self.config.fail_rule {
            Some(rule) => rule(item),
            None => default_fails(resource, item),
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                let failure = import_failure(resource, item, shared_context).or_else(|| {
                    rule(item).then(|| ItemFailure {
                        code: "invalid_argument",
                        message: format!("{} rejected by the server", resource.item_key()),
                    })
                });
                failure.map(|f| (index, f))
            })
            .collect()
    }

    fn snapshot(&self, job: &Job) -> JobSnapshot {
        let now = self.clock.now();
        let status = job.status(now, &self.config.encoding);
        JobSnapshot {
            id: job.id.clone(),
            resource: job.resource,
            status,
            items: job.items.len(),
            imports: job.imports(),
            errors: job.failed.len(),
            failed_indexes: job.failed.iter().map(|(i, _)| *i).collect(),
            created: self.clock.wall(job.created),
            finishes: self.clock.wall(job.finishes),
            idempotency_key: job.idempotency_key.clone(),
        }
    }

    fn stop(&self) {
        self.shutdown.send_replace(true);
    }
}

/// How the server runs: as a task on the caller's runtime, or on a runtime of
/// its own in a thread.
enum Runner {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
    Stopped,
}

/// A running fake Fullstory batch-import API. Dropping it stops the server
/// (without blocking for long, inside or outside a runtime).
pub struct FakeServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    runner: Runner,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("base_url", &self.base_url)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl FakeServer {
    /// A builder with the defaults described on [`FakeServerBuilder`].
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    fn new(shared: Arc<Shared>, addr: SocketAddr, runner: Runner) -> FakeServer {
        let scheme = if shared.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let host = match (scheme, addr.ip().is_loopback()) {
            ("https", true) => "localhost".to_owned(),
            _ if addr.is_ipv6() => format!("[{}]", addr.ip()),
            _ => addr.ip().to_string(),
        };
        let base_url = format!("{scheme}://{host}:{}", addr.port());
        FakeServer {
            shared,
            addr,
            base_url,
            runner,
        }
    }

    pub(crate) async fn start(config: Config) -> io::Result<FakeServer> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeServer::new(shared, addr, Runner::Task(task)))
    }

    pub(crate) fn start_blocking(config: Config) -> io::Result<FakeServer> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fullstory-batch-fake".into())
            .spawn(move || run_own_runtime(config, sender))?;
        match receiver.recv() {
            Ok(Ok((addr, shared))) => Ok(FakeServer::new(shared, addr, Runner::Thread(thread))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("fake server thread ended before binding")),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://localhost:PORT` with TLS), no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Moves the fake clock forward (jobs progress, buckets refill, idempotency
    /// keys age). Works with the real clock too, as a jump.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// The fake clock: time since start plus advances.
    pub fn clock(&self) -> Duration {
        self.shared.clock.now()
    }

    /// Creates a job directly, without HTTP, validation or org limits; the
    /// failure rule still applies. Returns the job id.
    pub fn insert_job(&self, resource: Resource, items: Vec<Value>) -> String {
        let failed = self.shared.failures(resource, &items, false);
        let job = NewJob {
            resource,
            items: stored(items),
            failed,
            idempotency: None,
        };
        let now = self.shared.clock.now();
        match self
            .shared
            .lock_state()
            .create(now, job, &self.shared.timing, false)
        {
            Created::New(id) | Created::Replay(id) => id,
            Created::KeyConflict | Created::Limited(_) => unreachable!("no key and no limits"),
        }
    }

    /// The true state of a job, if it exists.
    pub fn job(&self, id: &str) -> Option<JobSnapshot> {
        let state = self.shared.lock_state();
        state.jobs.get(id).map(|job| self.shared.snapshot(job))
    }

    /// All jobs, oldest first (in creation order).
    pub fn jobs(&self) -> Vec<JobSnapshot> {
        self.shared.jobs()
    }

    /// What the server has seen so far: jobs, items and requests by call, as
    /// `GET /fake/stats` serves them (see [`Stats`]).
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// How many jobs exist (created over HTTP or inserted).
    pub fn jobs_created(&self) -> usize {
        self.shared.lock_state().jobs.len()
    }

    /// Registers a scripted fault. Scripts are checked in order; each counts
    /// its own matches, and the first that fires answers.
    pub fn script(&self, script: Script) -> ScriptId {
        let mut state = self.shared.lock_state();
        state.scripts.push(ScriptState {
            script,
            seen: 0,
            fired: 0,
        });
        ScriptId(state.scripts.len() - 1)
    }

    /// How often a script has fired so far.
    pub fn script_fired(&self, id: ScriptId) -> usize {
        self.shared
            .lock_state()
            .scripts
            .get(id.0)
            .map_or(0, |s| s.fired)
    }

    /// Drops every script (their ids then report 0).
    pub fn clear_scripts(&self) {
        self.shared.lock_state().scripts.clear();
    }

    /// The logged requests in arrival order (up to the log capacity).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock_log().snapshot()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.lock_log().clear();
    }

    /// Stops the server: no new connections, open ones are closed, stalls end.
    /// With [`start_blocking`](FakeServerBuilder::start_blocking), waits (briefly)
    /// for the server thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops the server and waits until the listener is closed (for servers
    /// started with [`start`](FakeServerBuilder::start)).
    pub async fn shutdown_and_wait(mut self) {
        self.shared.stop();
        if let Runner::Task(task) = std::mem::replace(&mut self.runner, Runner::Stopped) {
            let _ = task.await;
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop();
        if let Runner::Thread(thread) = std::mem::replace(&mut self.runner, Runner::Stopped) {
            // The runtime shuts down within about a second once signalled.
            let _ = thread.join();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

type Started = io::Result<(SocketAddr, Arc<Shared>)>;

fn run_own_runtime(config: Config, started: std::sync::mpsc::Sender<Started>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fullstory-batch-fake-worker")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(config.addr).await {
            Ok(listener) => listener,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let shared = Arc::new(Shared::new(config));
        let addr = listener.local_addr();
        let _ = started.send(addr.map(|addr| (addr, Arc::clone(&shared))));
        accept_loop(listener, shared).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let tls = shared.config.tls.clone().map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, tls.clone(), Arc::clone(&shared)));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    match tls {
        None => serve_http(stream, shared).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
            let stream = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                result = handshake => match result {
                    Ok(Ok(stream)) => stream,
                    _ => return,
                },
            };
            serve_http(stream, shared).await;
        }
    }
}

async fn serve_http<I>(io: I, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.subscribe();
    let service = service_fn(move |request| crate::serve::respond(Arc::clone(&shared), request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}
