//! The builder: every setting of a fake server, with defaults that match the
//! real API.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::fault::{Fault, FaultKind, RandomChoices, RandomFaults, RandomParams};
use crate::model::{Encoding, OrgLimits};
use crate::server::FakeServer;

/// A user-supplied rule deciding which items fail to import.
pub(crate) type FailRule = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Settings fixed at start.
#[derive(Clone)]
pub(crate) struct Config {
    pub keys: Vec<String>,
    pub read_only_keys: Vec<String>,
    pub processing: Duration,
    pub manual_clock: bool,
    pub fail_rule: Option<FailRule>,
    pub rate_limit: Option<(f64, u32)>,
    pub encoding: Encoding,
    pub random: Option<RandomFaults>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub page_size: usize,
    pub max_items: usize,
    pub max_body_bytes: usize,
    pub limits: OrgLimits,
    pub log_capacity: usize,
    pub idempotency_ttl: Duration,
    pub addr: SocketAddr,
    /// Salt for job ids; `None`: from the random-fault seed, else per server.
    pub id_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keys: Vec::new(),
            read_only_keys: Vec::new(),
            processing: Duration::from_secs(1),
            manual_clock: false,
            fail_rule: None,
            rate_limit: None,
            encoding: Encoding::default(),
            random: None,
            tls: None,
            page_size: 100,
            max_items: 50_000,
            max_body_bytes: 64 * 1024 * 1024,
            limits: OrgLimits::default(),
            log_capacity: 10_000,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            id_seed: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets: show only how many there are.
        f.debug_struct("Config")
            .field("keys", &self.keys.len())
            .field("read_only_keys", &self.read_only_keys.len())
            .field("processing", &self.processing)
            .field("manual_clock", &self.manual_clock)
            .field("custom_fail_rule", &self.fail_rule.is_some())
            .field("rate_limit", &self.rate_limit)
            .field("encoding", &self.encoding)
            .field("random", &self.random)
            .field("tls", &self.tls.is_some())
            .field("page_size", &self.page_size)
            .field("max_items", &self.max_items)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("limits", &self.limits)
            .field("log_capacity", &self.log_capacity)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("addr", &self.addr)
            .field("id_seed", &self.id_seed)
            .finish()
    }
}

/// Configures and starts a [`FakeServer`]. Get one from [`FakeServer::builder`].
///
/// Defaults: any `Basic` key is accepted until [`key`](Self::key) is called;
/// jobs process for 1 s of real time; items whose event `name` or user `uid`
/// starts with `"bad"` fail; no rate limit; the documented encoding; org
/// limits of 100 concurrent / 200 in-progress jobs / 500,000 in-progress items;
/// pages of 100; request bodies up to 64 MiB; the last 10,000 requests logged;
/// plain HTTP on `127.0.0.1:0`.
#[derive(Debug, Clone, Default)]
pub struct FakeServerBuilder {
    config: Config,
}

impl FakeServerBuilder {
    /// Accepts `key` (sent as `Authorization: Basic <key>`) with full permission.
    /// Once any key is given, unknown keys get 401.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.config.keys.push(key.into());
        self
    }

    /// Knows `key` but answers it 403 `forbidden` (a key lacking permission).
    pub fn key_without_permission(mut self, key: impl Into<String>) -> Self {
        self.config.read_only_keys.push(key.into());
        self
    }

    /// How long new jobs stay unfinished once they have a processing slot (default 1 s).
    pub fn processing_time(mut self, time: Duration) -> Self {
        self.config.processing = time;
        self
    }

    /// Time stands still except for [`FakeServer::advance`]. The default is
    /// real time (which `advance` can still jump forward).
    pub fn manual_clock(mut self) -> Self {
        self.config.manual_clock = true;
        self
    }

    /// Items for which `rule` is true fail to import (code `invalid_argument`).
    /// Replaces the default rule (event `name` / user `uid` starting with `"bad"`).
    pub fn fail_items_where(
        mut self,
        rule: impl Fn(&Value) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config.fail_rule = Some(Arc::new(rule));
        self
    }

    /// A token bucket per key: `burst` requests at once, refilled at
    /// `requests_per_sec` (on the fake clock). An empty bucket answers 429
    /// `too_many_requests` with `Retry-After` in whole seconds (at least 1).
    pub fn rate_limit(mut self, requests_per_sec: f64, burst: u32) -> Self {
        self.config.rate_limit = Some((requests_per_sec.max(f64::MIN_POSITIVE), burst));
        self
    }

    /// Wire-format quirks to exhibit (see [`Encoding`]).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.config.encoding = encoding;
        self
    }

    /// Answers a share `rate` (0.0 to 1.0) of requests with a fault of one of
    /// `kinds`, parameters drawn at random too. The draw for a request depends
    /// only on `seed`, the request (method, path, query, body) and how often
    /// that same request came before, so a run is reproducible even when
    /// requests interleave differently. Scripts take precedence.
    pub fn random_faults(mut self, rate: f64, seed: u64, kinds: &[FaultKind]) -> Self {
        let choices = RandomChoices::Kinds(kinds.to_vec(), RandomParams::default());
        self.config.random = Some(RandomFaults {
            rate,
            seed,
            choices,
        });
        self
    }

    /// Like [`random_faults`](Self::random_faults), with the stall and delay
    /// lengths to use.
    pub fn random_faults_with(
        mut self,
        rate: f64,
        seed: u64,
        kinds: &[FaultKind],
        params: RandomParams,
    ) -> Self {
        let choices = RandomChoices::Kinds(kinds.to_vec(), params);
        self.config.random = Some(RandomFaults {
            rate,
            seed,
            choices,
        });
        self
    }

    /// Like [`random_faults`](Self::random_faults), choosing among exactly these faults.
    pub fn random_fault_set(mut self, rate: f64, seed: u64, faults: Vec<Fault>) -> Self {
        self.config.random = Some(RandomFaults {
            rate,
            seed,
            choices: RandomChoices::Faults(faults),
        });
        self
    }

    /// Serves HTTPS with this configuration; [`FakeServer::base_url`] becomes
    /// `https://localhost:PORT`.
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.config.tls = Some(Arc::new(config));
        self
    }

    /// Results per imports / errors page (default 100, at least 1).
    pub fn page_size(mut self, size: usize) -> Self {
        self.config.page_size = size.max(1);
        self
    }

    /// Most items one create may carry (default 50,000, the API's limit).
    pub fn max_items(mut self, items: usize) -> Self {
        self.config.max_items = items;
        self
    }

    /// Largest request body accepted; larger ones get 413 (default 64 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Organisation limits on in-progress work (see [`OrgLimits`]).
    pub fn org_limits(mut self, limits: OrgLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Keeps at most this many requests in the log, dropping the oldest
    /// (default 10,000; 0 turns the log off).
    pub fn request_log_capacity(mut self, capacity: usize) -> Self {
        self.config.log_capacity = capacity;
        self
    }

    /// How long an `Idempotency-Key` stays bound to its job (default 24 h).
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.config.idempotency_ttl = ttl;
        self
    }

    /// Derives job ids from `seed`, so two servers given the same seed hand out
    /// the same ids in the same order.
    ///
    /// By default ids differ between servers and between runs (they mix in
    /// the clock, the process id and a counter), so a restarted fake never
    /// hands out an id a client saw before, except with
    /// [`random_faults`](Self::random_faults) and friends: then ids follow
    /// from the fault seed, because the fault drawn for a request depends on
    /// its path, and so on the job id in it.
    pub fn job_id_seed(mut self, seed: u64) -> Self {
        self.config.id_seed = Some(seed);
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Binds and serves in a task spawned on the current tokio runtime.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(self) -> io::Result<FakeServer> {
        FakeServer::start(self.config).await
    }

    /// Binds and serves on a runtime of its own in a background thread, for
    /// callers without a runtime (blocking clients). Works inside a runtime too.
    ///
    /// # Errors
    /// When the address cannot be bound or the runtime cannot be built.
    pub fn start_blocking(self) -> io::Result<FakeServer> {
        FakeServer::start_blocking(self.config)
    }
}
