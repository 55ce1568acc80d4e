//! The poller on a simulated clock: scripted server answers, no sleeping.

use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    Action, ApiError, ApiKey, Config, Error, JobId, JobRef, JobStatusResponse, Outcome, Policy,
    Poller, PollerState, Resource, RestoreError, TransportError, TransportKind,
};
use proptest::prelude::*;

const LATENCY: Duration = Duration::from_millis(40);

/// What the fake server answers to one request.
#[derive(Debug, Clone)]
enum Reply {
    Running,
    Completed,
    Failed,
    /// An error status, with `Retry-After` in seconds when set.
    Error(u16, Option<u64>),
    /// 429 with `Retry-After` as a date `secs` after the server's clock, which is `skew`
    /// seconds ahead of ours.
    DateRetry {
        secs: u64,
        skew: u64,
    },
    Transport,
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn config() -> Config {
    Config::new(ApiKey::new("k").unwrap())
}

fn job() -> JobRef {
    JobRef::new(Resource::Events, JobId::new("job-1").unwrap())
}

fn status_body(status: &str) -> String {
    format!(
        r#"{{"imports":3,"job":{{"id":"job-1","status":"{status}","created":"2024-01-01T00:00:00Z"}}}}"#
    )
}

/// The parsed answer, going through the real response parser.
fn answer(reply: &Reply, now: SystemTime) -> Result<JobStatusResponse, ApiError> {
    let mut builder = Response::builder();
    let body = match reply {
        Reply::Running => status_body("PROCESSING"),
        Reply::Completed => status_body("COMPLETED"),
        Reply::Failed => status_body("FAILED"),
        Reply::Error(status, retry) => {
            builder = builder.status(*status);
            if let Some(secs) = retry {
                builder = builder.header("retry-after", secs.to_string());
            }
            r#"{"message":"m","code":"c"}"#.to_owned()
        }
        Reply::DateRetry { secs, skew } => {
            let server_now = now + Duration::from_secs(*skew);
            builder = builder
                .status(429)
                .header("date", httpdate::fmt_http_date(server_now))
                .header(
                    "retry-after",
                    httpdate::fmt_http_date(server_now + Duration::from_secs(*secs)),
                );
            String::new()
        }
        Reply::Transport => unreachable!("no response for a transport failure"),
    };
    config().parse_status(&builder.body(body.into_bytes()).unwrap())
}

/// The earliest instant the reply allows the next request at, if it sets one.
fn floor(reply: &Reply, now: SystemTime, policy: &Policy) -> Option<SystemTime> {
    let wait = match reply {
        Reply::Error(s, Some(secs)) if [408, 429, 500, 502, 503, 504].contains(s) => {
            Duration::from_secs(*secs)
        }
        Reply::DateRetry { secs, .. } => Duration::from_secs(*secs),
        _ => return None,
    };
    Some(now + wait.min(policy.retry_after_max))
}

#[derive(Debug)]
struct Run {
    outcome: Outcome,
    sends: Vec<SystemTime>,
    waits: Vec<SystemTime>,
    end: SystemTime,
}

/// Drives a poller through `script` (then COMPLETED forever). With `save_each_step`, the
/// state goes through JSON and `restore` after every input, as after a restart.
fn drive(policy: Policy, seed: u64, script: &[Reply], save_each_step: bool) -> Run {
    let mut now = t0();
    let mut poller = Poller::new(job(), policy.clone(), now, seed);
    let (mut sends, mut waits) = (Vec::new(), Vec::new());
    let mut floors: Vec<SystemTime> = Vec::new();
    for _ in 0..10_000 {
        match poller.poll(now) {
            Action::Send { .. } => {
                assert!(
                    floors.iter().all(|f| now >= *f),
                    "sent at {now:?} before a Retry-After passed"
                );
                let reply = script.get(sends.len()).cloned().unwrap_or(Reply::Completed);
                sends.push(now);
                now += LATENCY;
                match &reply {
                    Reply::Transport => {
                        poller
                            .handle_transport_error(TransportError::new(TransportKind::Reset), now);
                    }
                    reply => poller.handle_response(answer(reply, now), now),
                }
                floors.extend(floor(&reply, now, &policy));
                if save_each_step && !poller.is_done() {
                    poller = round_trip(&poller);
                }
            }
            Action::Wait(t) => {
                assert!(t > now, "a wait must move time forward");
                waits.push(t);
                now = t;
            }
            Action::AwaitResponse => panic!("the driver always answers before polling"),
            Action::Done(outcome) => {
                return Run {
                    outcome,
                    sends,
                    waits,
                    end: now,
                };
            }
        }
    }
    panic!("the poller never finished");
}

fn round_trip(poller: &Poller) -> Poller {
    let json = serde_json::to_string(&poller.save()).unwrap();
    let state: PollerState = serde_json::from_str(&json).unwrap();
    Poller::restore(state, &job()).unwrap()
}

#[test]
fn completes_and_reports_the_final_status() {
    let run = drive(
        Policy::default(),
        1,
        &[Reply::Running, Reply::Running],
        false,
    );
    let Outcome::Completed(status) = run.outcome else {
        panic!("{:?}", run.outcome)
    };
    assert_eq!(status.imports, 3);
    assert_eq!(run.sends.len(), 3);
}

#[test]
fn failed_is_an_outcome_not_an_error() {
    let run = drive(
        Policy::default(),
        1,
        &[Reply::Running, Reply::Failed],
        false,
    );
    assert!(
        matches!(run.outcome, Outcome::Failed(ref s) if s.imports == 3),
        "{:?}",
        run.outcome
    );
}

#[test]
fn intervals_grow_geometrically_to_the_cap() {
    let policy = Policy {
        poll_jitter: 0.0,
        ..Policy::default()
    };
    let run = drive(policy, 1, &vec![Reply::Running; 12], false);
    let gaps: Vec<f64> = run
        .sends
        .windows(2)
        .map(|w| (w[1].duration_since(w[0]).unwrap() - LATENCY).as_secs_f64())
        .collect();
    let expected = [
        1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 20.0, 20.0, 20.0, 20.0,
    ];
    for (gap, want) in gaps.iter().zip(expected) {
        assert!((gap - want).abs() < 1e-6, "{gaps:?}");
    }
}

#[test]
fn jitter_only_shortens() {
    let run = drive(Policy::default(), 99, &vec![Reply::Running; 30], false);
    for w in run.sends.windows(2) {
        let gap = w[1].duration_since(w[0]).unwrap() - LATENCY;
        assert!(gap <= Duration::from_secs(20), "{gap:?}");
    }
    let other = drive(Policy::default(), 100, &vec![Reply::Running; 30], false);
    assert_ne!(
        run.sends, other.sends,
        "different seeds give different schedules"
    );
}

#[test]
fn non_retryable_errors_give_up_at_once() {
    for status in [400, 401, 403, 404, 409] {
        let run = drive(
            Policy::default(),
            1,
            &[Reply::Running, Reply::Error(status, None)],
            false,
        );
        let Outcome::GaveUp(Error::Api(e)) = &run.outcome else {
            panic!("{status}: {:?}", run.outcome)
        };
        assert_eq!(e.status().as_u16(), status);
        assert_eq!(run.sends.len(), 2);
    }
}

#[test]
fn too_many_errors_in_a_row() {
    let policy = Policy {
        max_errors_in_row: 3,
        ..Policy::default()
    };
    let script = [
        Reply::Error(503, None),
        Reply::Transport,
        Reply::Error(500, None),
    ];
    let run = drive(policy, 1, &script, false);
    assert!(
        matches!(run.outcome, Outcome::TooManyErrors(Error::Api(ref e)) if e.status() == 500),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.sends.len(), 3);
}

#[test]
fn a_success_resets_the_error_streak() {
    let policy = Policy {
        max_errors_in_row: 3,
        ..Policy::default()
    };
    let e = || Reply::Error(502, None);
    let script = [e(), e(), Reply::Running, e(), e(), Reply::Running, e(), e()];
    let run = drive(policy, 1, &script, false);
    assert!(
        matches!(run.outcome, Outcome::Completed(_)),
        "{:?}",
        run.outcome
    );
}

#[test]
fn error_backoff_doubles_with_equal_jitter() {
    let policy = Policy {
        max_errors_in_row: 20,
        ..Policy::default()
    };
    let run = drive(policy, 5, &vec![Reply::Transport; 10], false);
    for (i, w) in run.sends.windows(2).enumerate() {
        let gap = w[1].duration_since(w[0]).unwrap() - LATENCY;
        let nominal = Duration::from_millis(500 * (1 << i)).min(Duration::from_secs(30));
        assert!(
            gap <= nominal && gap >= nominal / 2,
            "retry {i}: {gap:?} vs {nominal:?}"
        );
    }
}

#[test]
fn retry_after_seconds_is_a_floor() {
    let run = drive(Policy::default(), 1, &[Reply::Error(429, Some(7))], false);
    let gap = run.sends[1].duration_since(run.sends[0]).unwrap();
    assert!(gap >= Duration::from_secs(7) + LATENCY, "{gap:?}");
    assert!(gap < Duration::from_secs(8), "{gap:?}");
}

#[test]
fn retry_after_date_is_measured_against_the_server_clock() {
    // The server's clock is an hour ahead; the date is 5 s after its now.
    let run = drive(
        Policy::default(),
        1,
        &[Reply::DateRetry {
            secs: 5,
            skew: 3600,
        }],
        false,
    );
    let gap = run.sends[1].duration_since(run.sends[0]).unwrap() - LATENCY;
    assert!(
        gap >= Duration::from_secs(5) && gap < Duration::from_secs(6),
        "{gap:?}"
    );
}

#[test]
fn retry_after_on_503_is_honoured() {
    let run = drive(Policy::default(), 1, &[Reply::Error(503, Some(12))], false);
    let gap = run.sends[1].duration_since(run.sends[0]).unwrap();
    assert!(gap >= Duration::from_secs(12), "{gap:?}");
}

#[test]
fn huge_retry_after_is_capped() {
    let policy = Policy {
        retry_after_max: Duration::from_secs(60),
        ..Policy::default()
    };
    let run = drive(policy, 1, &[Reply::Error(429, Some(u64::MAX))], false);
    let gap = run.sends[1].duration_since(run.sends[0]).unwrap();
    assert!(
        gap >= Duration::from_secs(60) && gap < Duration::from_secs(61),
        "{gap:?}"
    );
}

#[test]
fn retry_after_past_the_deadline_ends_at_once() {
    let policy = Policy::default().with_timeout(Duration::from_secs(30));
    let run = drive(
        policy,
        1,
        &[Reply::Running, Reply::Error(429, Some(60))],
        false,
    );
    let Outcome::DeadlineExceeded { last_status } = run.outcome else {
        panic!("{:?}", run.outcome)
    };
    assert_eq!(
        last_status.unwrap().imports,
        3,
        "the last running status is kept"
    );
    assert!(
        run.end < t0() + Duration::from_secs(5),
        "finished without sleeping: {:?}",
        run.end
    );
}

#[test]
fn deadline_bounds_sends_and_waits() {
    let policy = Policy::default().with_timeout(Duration::from_secs(45));
    let deadline = t0() + Duration::from_secs(45);
    let run = drive(policy, 3, &vec![Reply::Running; 1000], false);
    assert!(
        matches!(
            run.outcome,
            Outcome::DeadlineExceeded {
                last_status: Some(_)
            }
        ),
        "{:?}",
        run.outcome
    );
    assert!(run.sends.iter().all(|s| *s <= deadline));
    assert!(run.waits.iter().all(|w| *w <= deadline));
    assert_eq!(
        *run.sends.last().unwrap(),
        deadline,
        "a last look exactly at the deadline"
    );
}

#[test]
fn unknown_statuses_keep_waiting() {
    let body = |s: &str| status_body(s);
    let mut now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    for status in ["PENDING", "UNKNOWN", "PROCESSING"] {
        assert!(matches!(poller.poll(now), Action::Send { .. }));
        let response = Response::builder().body(body(status)).unwrap();
        poller.handle_response(config().parse_status(&response), now);
        assert!(!poller.is_done());
        let progress = poller.progress();
        assert_eq!(progress.last_status.unwrap().job.status.as_str(), status);
        now = progress.next_poll.unwrap();
    }
}

#[test]
fn progress_reports_attempts_and_next_poll() {
    let now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    assert!(matches!(poller.poll(now), Action::Send { deadline: None }));
    assert!(matches!(poller.poll(now), Action::AwaitResponse));
    poller.handle_transport_error(TransportError::new(TransportKind::Timeout), now);
    let p = poller.progress();
    assert_eq!((p.attempts, p.errors_in_row), (1, 1));
    assert!(p.next_poll.unwrap() > now && p.last_status.is_none());
}

#[test]
fn answers_nobody_waits_for_are_ignored() {
    let now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    poller.handle_response(answer(&Reply::Completed, now), now);
    poller.handle_transport_error(TransportError::new(TransportKind::Reset), now);
    assert!(!poller.is_done());
    assert_eq!(poller.progress().attempts, 0);
}

#[test]
fn restore_checks_the_job() {
    let poller = Poller::new(job(), Policy::default(), t0(), 1);
    let other = JobRef::new(Resource::Users, JobId::new("job-1").unwrap());
    assert!(matches!(
        Poller::restore(poller.save(), &other),
        Err(RestoreError::WrongJob { .. })
    ));
}

#[test]
fn restore_of_a_finished_poller_is_refused() {
    let now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    let _ = poller.poll(now);
    poller.handle_response(answer(&Reply::Completed, now), now);
    assert!(poller.is_done());
    assert_eq!(
        Poller::restore(poller.save(), &job()).err(),
        Some(RestoreError::Finished)
    );
}

#[test]
fn a_request_in_flight_at_save_is_sent_again() {
    let now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    assert!(matches!(poller.poll(now), Action::Send { .. }));
    let mut restored = Poller::restore(poller.save(), &job()).unwrap();
    assert!(matches!(
        restored.poll(now + Duration::from_secs(1)),
        Action::Send { .. }
    ));
}

#[test]
fn hostile_policies_do_not_panic() {
    let policies = [
        Policy {
            multiplier: f64::NAN,
            poll_jitter: f64::INFINITY,
            ..Policy::default()
        },
        Policy {
            multiplier: 1e300,
            max_interval: Duration::MAX,
            ..Policy::default()
        },
        Policy {
            multiplier: -3.0,
            poll_jitter: -1.0,
            initial_interval: Duration::ZERO,
            ..Policy::default()
        },
        Policy {
            error_backoff: Duration::MAX,
            max_error_backoff: Duration::MAX,
            ..Policy::default()
        },
        Policy {
            timeout: Some(Duration::MAX),
            ..Policy::default()
        },
        Policy {
            timeout: Some(Duration::ZERO),
            max_errors_in_row: 0,
            ..Policy::default()
        },
    ];
    for policy in policies {
        let run = drive(
            policy,
            1,
            &[Reply::Running, Reply::Transport, Reply::Running],
            false,
        );
        assert!(run.sends.len() <= 4, "{:?}", run.sends.len());
    }
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        6 => Just(Reply::Running),
        1 => Just(Reply::Failed),
        2 => (prop::sample::select(vec![408u16, 429, 500, 502, 503, 504]), prop::option::of(0u64..120))
            .prop_map(|(s, r)| Reply::Error(s, r)),
        1 => (0u64..90, 0u64..7200).prop_map(|(secs, skew)| Reply::DateRetry { secs, skew }),
        2 => Just(Reply::Transport),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (1u32..10, prop::option::of(10u64..600), 0.0f64..1.0).prop_map(
        |(max_errors, timeout, jitter)| Policy {
            max_errors_in_row: max_errors,
            timeout: timeout.map(Duration::from_secs),
            poll_jitter: jitter,
            ..Policy::default()
        },
    )
}

fn is_error(r: &Reply) -> bool {
    matches!(
        r,
        Reply::Error(..) | Reply::DateRetry { .. } | Reply::Transport
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Retry-After floors are checked inside `drive`; the rest here.
    #[test]
    fn scripted_runs_keep_every_promise(policy in policy(), seed: u64, script in prop::collection::vec(reply(), 0..40)) {
        let run = drive(policy.clone(), seed, &script, false);
        let deadline = policy.timeout.map(|t| t0() + t);
        if let Some(deadline) = deadline {
            prop_assert!(run.sends.iter().all(|s| *s <= deadline), "sent after the deadline");
            prop_assert!(run.waits.iter().all(|w| *w <= deadline), "waited past the deadline");
        }
        // Never more than the error limit in a row.
        let answered = &script[..run.sends.len().min(script.len())];
        let mut streak = 0;
        for r in answered {
            streak = if is_error(r) { streak + 1 } else { 0 };
            prop_assert!(streak <= policy.max_errors_in_row);
        }
        // Stops at the first terminal status.
        if let Some(first) = script.iter().position(|r| matches!(r, Reply::Failed)) {
            prop_assert!(run.sends.len() <= first + 1);
        }
        match &run.outcome {
            Outcome::TooManyErrors(_) => prop_assert_eq!(streak, policy.max_errors_in_row),
            Outcome::Failed(_) => prop_assert!(matches!(script.get(run.sends.len() - 1), Some(Reply::Failed))),
            Outcome::Completed(_) => prop_assert!(run.sends.len() > script.len()),
            Outcome::DeadlineExceeded { .. } => prop_assert!(deadline.is_some()),
            Outcome::GaveUp(e) => prop_assert!(!e.is_retryable()),
        }
    }

    #[test]
    fn same_seed_same_schedule(policy in policy(), seed: u64, script in prop::collection::vec(reply(), 0..30)) {
        let a = drive(policy.clone(), seed, &script, false);
        let b = drive(policy, seed, &script, false);
        prop_assert_eq!(a.sends, b.sends);
    }

    #[test]
    fn save_and_restore_change_nothing(policy in policy(), seed: u64, script in prop::collection::vec(reply(), 0..30)) {
        let plain = drive(policy.clone(), seed, &script, false);
        let restored = drive(policy, seed, &script, true);
        prop_assert_eq!(plain.sends, restored.sends);
        prop_assert_eq!(format!("{:?}", plain.outcome), format!("{:?}", restored.outcome));
    }

    /// A job running `secs` with no errors: about log₁.₅(T) + T/20 + 2 requests, and the end
    /// is seen within one maximum interval.
    #[test]
    fn request_count_and_detection_delay(secs in 1u64..20_000, seed: u64) {
        let policy = Policy::default();
        let mut now = t0();
        let end = t0() + Duration::from_secs(secs);
        let mut poller = Poller::new(job(), policy.clone(), now, seed);
        let mut sends = 0u32;
        let outcome = loop {
            match poller.poll(now) {
                Action::Send { .. } => {
                    sends += 1;
                    let reply = if now >= end { Reply::Completed } else { Reply::Running };
                    poller.handle_response(answer(&reply, now), now);
                }
                Action::Wait(t) => now = t,
                Action::AwaitResponse => unreachable!(),
                Action::Done(o) => break o,
            }
        };
        prop_assert!(matches!(outcome, Outcome::Completed(_)));
        let t = secs as f64;
        let bound = t.ln() / 1.5f64.ln() + t / (20.0 * (1.0 - policy.poll_jitter)) + 2.0;
        prop_assert!(f64::from(sends) <= bound.ceil(), "{} requests for {} s (bound {:.1})", sends, secs, bound);
        prop_assert!(now.duration_since(end).unwrap() <= policy.max_interval, "seen {:?} late", now.duration_since(end));
    }
}

#[test]
fn handle_result_sorts_each_kind_of_answer() {
    let now = t0();
    let mut poller = Poller::new(job(), Policy::default(), now, 1);
    let _ = poller.poll(now);
    poller.handle_result(
        Err(Error::Transport(TransportError::new(TransportKind::Reset))),
        now,
    );
    assert_eq!(poller.progress().errors_in_row, 1);
    let at = poller.next_due().unwrap();
    let _ = poller.poll(at);
    poller.handle_result(
        answer(&Reply::Error(503, Some(1)), at).map_err(Error::Api),
        at,
    );
    assert_eq!(poller.progress().errors_in_row, 2);
    let next = poller.next_due().unwrap();
    assert!(
        next >= at + Duration::from_secs(1),
        "the 503's Retry-After is a floor"
    );
    let _ = poller.poll(next);
    poller.handle_result(answer(&Reply::Completed, next).map_err(Error::Api), next);
    assert!(matches!(poller.outcome(), Some(Outcome::Completed(_))));
}
