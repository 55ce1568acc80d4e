//! Pacing, in one place: the policy, the poll schedule, error backoff with jitter, the
//! `Retry-After` floor, the deadline, and saturating time arithmetic. Every state machine
//! of the crate paces its requests through one [`Pacer`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, TransportKind};
use crate::retry_after::DEFAULT_RETRY_AFTER_MAX;

/// The shortest poll interval and error backoff a [`Policy`] accepts: anything shorter
/// floods the API (and the organisation's shared rate limit) for no gain.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How a job's requests are paced: the poll schedule, error backoff, error limits and the
/// deadline. Made with [`Policy::builder`] (which refuses a policy that would flood the API)
/// or [`Policy::default`].
///
/// # The poll schedule, and its bound
/// While a job runs, the wait before the next status poll is
/// `clamp(age × age_fraction, min_interval, max_interval)`, shortened by a random share of
/// at most `poll_jitter`, where `age` is the time since the job's wait began (for an import,
/// since its create was answered). Jitter only ever shortens, so for a job that ends at age
/// `A` and whose polls are answered, the delay in noticing is at most
/// `min(max_interval, max(min_interval, age_fraction × A))`: with the defaults, 40 % of the
/// job's age, never more than 20 s, and never less than the 1 s floor allows. Errors, and a
/// server's `Retry-After`, can lengthen it: those waits are the server's to set.
///
/// With the defaults, on a simulated clock over 200 jitter seeds (`core/tests/job.rs`,
/// `the_poll_schedule_table`), against the schedule before (1 s growing ×1.5 to 20 s):
///
/// | job runs | status requests | noticed at most this late | before: requests, late |
/// |---|---|---|---|
/// | 5 s | 5 | 0.7 s (bound 2 s) | 5, 3.0 s |
/// | 20 s | 10 | 7.9 s (bound 8 s) | 8, 11.4 s |
/// | 2 min | 16 | 12.4 s (bound 20 s) | 14, 19.3 s |
/// | 10 min | 42 | 19.8 s (bound 20 s) | 39, 19.8 s |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// The derived code becomes `Policy::serialize`/`Policy::deserialize`; the trait impls below
// call them, checking a saved policy on the way back in.
#[serde(remote = "Self")]
pub struct Policy {
    min_interval: Duration,
    age_fraction: f64,
    max_interval: Duration,
    poll_jitter: f64,
    error_backoff: Duration,
    max_error_backoff: Duration,
    max_errors_in_row: u32,
    connect_attempts_at_start: u32,
    timeout: Option<Duration>,
    retry_after_max: Duration,
}

impl Default for Policy {
    /// Polls 1 s after the start, then at 40 % of the job's age, at most every 20 s, jitter
    /// 10 %; error backoff 0.5 s doubling to 30 s; 8 errors in a row end the wait (about 90 s
    /// of a failing server); 3 failed connections before any answer end it too (a wrong host
    /// fails in about 2 s, not 90); no timeout (a library cannot guess how long an import
    /// takes; the CLI sets one hour); `Retry-After` obeyed up to one hour.
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(1),
            age_fraction: 0.4,
            max_interval: Duration::from_secs(20),
            poll_jitter: 0.1,
            error_backoff: Duration::from_millis(500),
            max_error_backoff: Duration::from_secs(30),
            max_errors_in_row: 8,
            connect_attempts_at_start: 3,
            timeout: None,
            retry_after_max: DEFAULT_RETRY_AFTER_MAX,
        }
    }
}

impl Policy {
    /// A builder starting from [`Policy::default`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder(Self::default())
    }

    /// The same policy with an overall timeout: no request goes, and no wait ends, after
    /// `timeout` has passed since the machine was made.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The first wait, and the shortest between two polls.
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// The share of a job's age waited before the next poll.
    pub fn age_fraction(&self) -> f64 {
        self.age_fraction
    }

    /// The longest wait between two polls, and so the longest delay in noticing an end.
    pub fn max_interval(&self) -> Duration {
        self.max_interval
    }

    /// The largest share a poll wait is shortened by at random.
    pub fn poll_jitter(&self) -> f64 {
        self.poll_jitter
    }

    /// The first wait after an error; it doubles with each error in a row.
    pub fn error_backoff(&self) -> Duration {
        self.error_backoff
    }

    /// The longest wait after errors.
    pub fn max_error_backoff(&self) -> Duration {
        self.max_error_backoff
    }

    /// Errors in a row that end a job (an answered request resets the count).
    pub fn max_errors_in_row(&self) -> u32 {
        self.max_errors_in_row
    }

    /// Failed connections, before any answer came, that end a job.
    pub fn connect_attempts_at_start(&self) -> u32 {
        self.connect_attempts_at_start
    }

    /// The overall timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The longest `Retry-After` obeyed; longer ones are cut to this.
    pub fn retry_after_max(&self) -> Duration {
        self.retry_after_max
    }

    /// The deadline of a machine made at `now`.
    pub(crate) fn deadline_from(&self, now: SystemTime) -> Option<SystemTime> {
        self.timeout.map(|t| later(now, t))
    }

    /// The wait before retry number `n` (1-based) after errors, before jitter.
    pub(crate) fn error_wait(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.error_backoff
            .saturating_mul(factor)
            .min(self.max_error_backoff)
    }

    /// The poll wait, before jitter, for a job that has run `age`.
    pub(crate) fn poll_wait(&self, age: Duration) -> Duration {
        scale(age, self.age_fraction)
            .max(self.min_interval)
            .min(self.max_interval)
    }

    fn check(&self) -> Result<(), PolicyError> {
        for (field, value) in [
            ("min_interval", self.min_interval),
            ("error_backoff", self.error_backoff),
        ] {
            if value < MIN_INTERVAL {
                return Err(PolicyError::TooShort { field, value });
            }
        }
        if self.max_interval < self.min_interval {
            return Err(PolicyError::Order {
                shorter: "max_interval",
                longer: "min_interval",
            });
        }
        if self.max_error_backoff < self.error_backoff {
            return Err(PolicyError::Order {
                shorter: "max_error_backoff",
                longer: "error_backoff",
            });
        }
        let fraction_ok =
            self.age_fraction.is_finite() && (0.0..=10.0).contains(&self.age_fraction);
        if !fraction_ok {
            return Err(PolicyError::OutOfRange {
                field: "age_fraction",
                range: "0 to 10",
            });
        }
        if !(self.poll_jitter.is_finite() && (0.0..=1.0).contains(&self.poll_jitter)) {
            return Err(PolicyError::OutOfRange {
                field: "poll_jitter",
                range: "0 to 1",
            });
        }
        if self.max_errors_in_row == 0 || self.connect_attempts_at_start == 0 {
            return Err(PolicyError::OutOfRange {
                field: "max_errors_in_row and connect_attempts_at_start",
                range: "at least 1",
            });
        }
        Ok(())
    }
}

/// Builds a [`Policy`]; [`PolicyBuilder::build`] refuses one that would flood the API.
///
/// ```
/// use std::time::Duration;
/// use fullstory_batch::Policy;
///
/// let policy = Policy::builder()
///     .min_interval(Duration::from_millis(500))
///     .max_interval(Duration::from_secs(10))
///     .timeout(Duration::from_secs(600))
///     .build()?;
/// assert_eq!(policy.max_interval(), Duration::from_secs(10));
/// assert!(Policy::builder().min_interval(Duration::ZERO).build().is_err());
/// # Ok::<(), fullstory_batch::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PolicyBuilder(Policy);

impl PolicyBuilder {
    /// The first wait and the shortest between polls (default 1 s; at least [`MIN_INTERVAL`]).
    pub fn min_interval(mut self, d: Duration) -> Self {
        self.0.min_interval = d;
        self
    }

    /// The share of a job's age to wait before the next poll (default 0.4, 0 to 10): the
    /// bound on the detection delay, as a share of the job's age.
    pub fn age_fraction(mut self, fraction: f64) -> Self {
        self.0.age_fraction = fraction;
        self
    }

    /// The longest wait between polls (default 20 s).
    pub fn max_interval(mut self, d: Duration) -> Self {
        self.0.max_interval = d;
        self
    }

    /// The largest share a poll wait is shortened by at random (default 0.1, 0 to 1).
    pub fn poll_jitter(mut self, jitter: f64) -> Self {
        self.0.poll_jitter = jitter;
        self
    }

    /// The first wait after an error (default 500 ms; at least [`MIN_INTERVAL`]).
    pub fn error_backoff(mut self, d: Duration) -> Self {
        self.0.error_backoff = d;
        self
    }

    /// The longest wait after errors (default 30 s).
    pub fn max_error_backoff(mut self, d: Duration) -> Self {
        self.0.max_error_backoff = d;
        self
    }

    /// Errors in a row that end a job (default 8, at least 1).
    pub fn max_errors_in_row(mut self, n: u32) -> Self {
        self.0.max_errors_in_row = n;
        self
    }

    /// Failed connections before any answer that end a job (default 3, at least 1).
    pub fn connect_attempts_at_start(mut self, n: u32) -> Self {
        self.0.connect_attempts_at_start = n;
        self
    }

    /// The overall timeout (default none).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.0.timeout = Some(d);
        self
    }

    /// The longest `Retry-After` obeyed (default one hour).
    pub fn retry_after_max(mut self, d: Duration) -> Self {
        self.0.retry_after_max = d;
        self
    }

    /// The policy, once checked.
    ///
    /// # Errors
    /// [`PolicyError`] naming the setting that would flood the API or makes no sense.
    pub fn build(self) -> Result<Policy, PolicyError> {
        self.0.check()?;
        Ok(self.0)
    }
}

/// A [`Policy`] refused when it was built.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PolicyError {
    /// An interval shorter than [`MIN_INTERVAL`].
    TooShort {
        /// The setting.
        field: &'static str,
        /// What it was set to.
        value: Duration,
    },
    /// A maximum below its minimum.
    Order {
        /// The setting that is too short.
        shorter: &'static str,
        /// The setting it must not be below.
        longer: &'static str,
    },
    /// A number outside its range (or not finite).
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The range it must be in.
        range: &'static str,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { field, value } => write!(
                f,
                "{field} of {value:?} would flood the api; use at least {MIN_INTERVAL:?}"
            ),
            Self::Order { shorter, longer } => {
                write!(f, "{shorter} must not be shorter than {longer}")
            }
            Self::OutOfRange { field, range } => write!(f, "{field} must be {range}"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Policy::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let policy = Policy::deserialize(d)?;
        policy.check().map_err(serde::de::Error::custom)?;
        Ok(policy)
    }
}

/// Where a request stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// The next request is due at this instant.
    Due(SystemTime),
    /// A request went out at this instant and has no answer yet.
    InFlight(SystemTime),
    /// Finished.
    Done,
}

/// What the owner of a pacer should do at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the next request now.
    Send,
    /// Nothing to send now (not due yet, in flight, or done).
    Hold,
    /// The deadline passed before the next request could go.
    DeadlinePassed,
}

/// Why a request stream stops after an error.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Another try cannot help.
    GaveUp(Error),
    /// Too many errors in a row, or no answer at all from the start.
    TooManyErrors(Error),
    /// No request can go before the deadline (a `Retry-After` past it, say).
    DeadlinePassed,
}

/// The deadline would pass before the next request could go.
#[derive(Debug)]
pub(crate) struct DeadlinePassed;

/// Paces one job's requests: one at a time, errors backed off, `Retry-After` obeyed, the
/// deadline kept. The job adds what an answer means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pacer {
    /// Shared: a set's thousands of jobs hold one policy. Saved once, beside the pacer (by
    /// a lone job's `SavedJob`, or once for a whole set), never in it: states saved before
    /// held it here, and still read.
    #[serde(skip_serializing, default)]
    policy: Arc<Policy>,
    deadline: Option<SystemTime>,
    rng: Rng,
    attempts: u32,
    errors_in_row: u32,
    /// Whether the server ever answered: before it has, refused connections end early.
    answered: bool,
    /// No request before this instant: the latest `Retry-After`.
    not_before: SystemTime,
    phase: Phase,
}

impl Pacer {
    /// A pacer whose first request is due at `now`.
    pub(crate) fn new(
        policy: Arc<Policy>,
        now: SystemTime,
        seed: u64,
        deadline: Option<SystemTime>,
    ) -> Self {
        Self {
            policy,
            deadline,
            rng: Rng::new(seed),
            attempts: 0,
            errors_in_row: 0,
            answered: false,
            not_before: now,
            phase: Phase::Due(now),
        }
    }

    pub(crate) fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The policy a restored pacer follows.
    pub(crate) fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
    }

    pub(crate) fn deadline(&self) -> Option<SystemTime> {
        self.deadline
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn errors_in_row(&self) -> u32 {
        self.errors_in_row
    }

    /// The `Retry-After` floor: no request before it.
    pub(crate) fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the next request is due, while one is.
    pub(crate) fn next_due(&self) -> Option<SystemTime> {
        match self.phase {
            Phase::Due(at) => Some(at),
            Phase::InFlight(_) | Phase::Done => None,
        }
    }

    /// When the pacer next needs a look: the next request, or the deadline of the one out.
    pub(crate) fn next_wake(&self) -> Option<SystemTime> {
        match self.phase {
            Phase::Due(at) => Some(at),
            Phase::InFlight(_) => self.deadline,
            Phase::Done => None,
        }
    }

    pub(crate) fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::InFlight(_))
    }

    /// After a restart: a request in flight counts as lost and goes again when due.
    /// `false` when there is nothing to resume.
    pub(crate) fn resume(&mut self) -> bool {
        match self.phase {
            Phase::Done => false,
            Phase::InFlight(sent) => {
                self.phase = Phase::Due(sent.max(self.not_before));
                true
            }
            Phase::Due(_) => true,
        }
    }

    /// The next thing to do at `now`. A request may go up to and at the deadline, not after.
    /// A request still out at the deadline is given up on, whether or not the driver
    /// reports it timed out.
    pub(crate) fn poll(&mut self, now: SystemTime) -> Step {
        let past = |strict: bool| {
            self.deadline
                .is_some_and(|d| if strict { now > d } else { now >= d })
        };
        match self.phase {
            Phase::InFlight(_) if past(false) => Step::DeadlinePassed,
            Phase::Done | Phase::InFlight(_) => Step::Hold,
            Phase::Due(_) if past(true) => Step::DeadlinePassed,
            Phase::Due(at) if now < at => Step::Hold,
            Phase::Due(_) => {
                self.phase = Phase::InFlight(now);
                self.attempts = self.attempts.saturating_add(1);
                Step::Send
            }
        }
    }

    /// A useful answer came: the error streak ends.
    pub(crate) fn succeeded(&mut self) {
        self.errors_in_row = 0;
        self.answered = true;
    }

    /// The next poll of a job running since `since`, after the schedule's wait.
    pub(crate) fn poll_again(
        &mut self,
        since: SystemTime,
        now: SystemTime,
    ) -> Result<(), DeadlinePassed> {
        let wait = self.policy.poll_wait(until(since, now));
        let wait = self.rng.shorten(wait, self.policy.poll_jitter);
        self.schedule(later(now, wait), now)
    }

    /// The next request goes at once (another page, say), unless a `Retry-After` holds.
    pub(crate) fn next_now(&mut self, now: SystemTime) -> Result<(), DeadlinePassed> {
        self.schedule(now, now)
    }

    /// A request failed: back off, or say why to stop. A `Retry-After` on the answer sets
    /// a floor under the next request, whatever the backoff.
    pub(crate) fn failed(&mut self, error: Error, now: SystemTime) -> Result<(), Stop> {
        if !matches!(error, Error::Transport(_)) {
            self.answered = true;
        }
        // Kept even when this job stops here: a set pauses its other jobs by it.
        if let Error::Api(e) = &error
            && let Some(retry_after) = e.retry_after()
        {
            let floor = later(now, retry_after.delay(now, self.policy.retry_after_max));
            self.not_before = self.not_before.max(floor);
        }
        if !error.is_retryable() {
            return Err(Stop::GaveUp(error));
        }
        self.errors_in_row = self.errors_in_row.saturating_add(1);
        if self.errors_in_row >= self.policy.max_errors_in_row || self.unreachable(&error) {
            return Err(Stop::TooManyErrors(error));
        }
        let backoff = self.policy.error_wait(self.errors_in_row);
        // Equal jitter: half fixed, half random.
        let wait = self.rng.shorten(backoff, 0.5);
        self.schedule(later(now, wait), now)
            .map_err(|_| Stop::DeadlinePassed)
    }

    /// Raises the `Retry-After` floor to `at` (an organisation-wide pause, say), moving a due
    /// request later if it must.
    pub(crate) fn hold_until(&mut self, at: SystemTime) {
        self.not_before = self.not_before.max(at);
        if let Phase::Due(due) = self.phase {
            self.phase = Phase::Due(due.max(self.not_before));
        }
    }

    pub(crate) fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// No server has answered and connections keep failing: a wrong host or port, most
    /// likely, which a minute and a half of retries will not fix.
    fn unreachable(&self, error: &Error) -> bool {
        let connect = matches!(error, Error::Transport(t) if t.kind == TransportKind::Connect);
        connect && !self.answered && self.attempts >= self.policy.connect_attempts_at_start
    }

    /// Sets the next request at `due`, never before a `Retry-After` and never after the
    /// deadline; fails when no request can go in time.
    fn schedule(&mut self, due: SystemTime, now: SystemTime) -> Result<(), DeadlinePassed> {
        let due = due.max(self.not_before);
        match self.deadline {
            Some(deadline) if now >= deadline || self.not_before > deadline => {
                return Err(DeadlinePassed);
            }
            Some(deadline) => self.phase = Phase::Due(due.min(deadline)),
            None => self.phase = Phase::Due(due),
        }
        Ok(())
    }
}

/// About 34,800 years after 1970: later than any real wait, and representable on every
/// platform's `SystemTime`, so sums saturate here instead of overflowing.
pub(crate) fn far_future() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40)
}

/// `t + d`, saturating at [`far_future`].
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    let far = far_future();
    t.checked_add(d).map_or(far, |sum| sum.min(far))
}

/// `to - from`, or zero when `to` is not after `from`.
pub(crate) fn until(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or(Duration::ZERO)
}

/// `d × factor` for a finite factor ≥ 0, saturating at `Duration::MAX`.
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    let factor = if factor.is_finite() {
        factor.max(0.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// SplitMix64: tiny, fast, and good enough to spread waits; its whole state is one `u64`, so
/// the same seed gives the same schedule and the state saves with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `d` shortened by a random share of at most `jitter` (clamped to `0..=1`):
    /// a value in `(d × (1 − jitter), d]`.
    pub(crate) fn shorten(&mut self, d: Duration, jitter: f64) -> Duration {
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        scale(d, 1.0 - jitter * self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates() {
        assert_eq!(later(SystemTime::UNIX_EPOCH, Duration::MAX), far_future());
        assert_eq!(later(far_future(), Duration::from_secs(1)), far_future());
    }

    #[test]
    fn scale_never_panics() {
        assert_eq!(scale(Duration::MAX, 2.0), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(2), f64::NAN), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), -1.0), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), 1.5), Duration::from_secs(3));
    }

    #[test]
    fn shorten_stays_in_range() {
        let mut rng = Rng::new(7);
        let d = Duration::from_secs(10);
        for _ in 0..1000 {
            let s = rng.shorten(d, 0.1);
            assert!(s <= d && s > Duration::from_secs(9), "{s:?}");
        }
        assert_eq!(rng.shorten(d, 0.0), d);
        assert_eq!(rng.shorten(d, f64::NAN), d);
    }

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn flooding_policies_are_refused() {
        let refused = [
            Policy::builder().min_interval(Duration::ZERO).build(),
            Policy::builder()
                .min_interval(Duration::from_millis(99))
                .build(),
            Policy::builder().error_backoff(Duration::ZERO).build(),
            Policy::builder().age_fraction(f64::NAN).build(),
            Policy::builder().age_fraction(f64::INFINITY).build(),
            Policy::builder().poll_jitter(2.0).build(),
            Policy::builder().max_errors_in_row(0).build(),
            Policy::builder()
                .max_interval(Duration::from_millis(500))
                .build(),
        ];
        for r in refused {
            assert!(r.is_err(), "{r:?}");
        }
        let e = Policy::builder()
            .min_interval(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "min_interval of 0ns would flood the api; use at least 100ms"
        );
        assert!(Policy::builder().build().is_ok());
    }

    #[test]
    fn a_saved_policy_is_checked_on_the_way_back() {
        let json = serde_json::to_value(Policy::default()).unwrap();
        let back: Policy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, Policy::default());
        let mut bad = json;
        bad["min_interval"] = serde_json::json!({"secs": 0, "nanos": 0});
        assert!(serde_json::from_value::<Policy>(bad).is_err());
    }

    #[test]
    fn poll_wait_is_a_share_of_age_within_bounds() {
        let p = Policy::default();
        assert_eq!(p.poll_wait(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(p.poll_wait(Duration::from_secs(10)), Duration::from_secs(4));
        assert_eq!(
            p.poll_wait(Duration::from_secs(600)),
            Duration::from_secs(20)
        );
    }
}
