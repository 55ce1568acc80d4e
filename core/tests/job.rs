//! The decisions of one `Job`, on the simulated server and clock of `sim`.

mod sim;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use fullstory_batch::http::Response;
use fullstory_batch::{
    ApiError, CreateError, Error, Event, Job, JobState, Outcome, Pages, Policy, RestoreError,
    SavedJob, Stage, StopReason, TransportError, TransportKind, UserRequest,
};
use proptest::prelude::*;
use sim::{Fate, Fault, Scenario, Sim, batch, config, ms, secs, t0};

const LATENCY: Duration = Duration::from_millis(40);

fn gap(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap()
}

fn stopped(o: &Outcome) -> &fullstory_batch::Stopped {
    match o {
        Outcome::Stopped(s) => s,
        Outcome::Finished(s) => panic!("finished: {s:?}"),
    }
}

fn finished(o: &Outcome) -> &fullstory_batch::JobStatusResponse {
    o.status().unwrap_or_else(|| panic!("{o:?}"))
}

/// A job processing for an hour, waited for, with these faults by request number.
fn waiting_with(policy: Policy, faults: &[(usize, Fault)]) -> Sim<Job> {
    let mut s = Scenario::new().policy(policy).latency(LATENCY);
    for (k, f) in faults {
        s = s.fault(*k, f.clone());
    }
    s.waiting(secs(3600), 3, 0, Pages::None)
}

#[test]
fn completes_and_reports_the_final_status() {
    let mut sim = Scenario::new().waiting(secs(5), 3, 0, Pages::None);
    sim.run();
    let status = finished(sim.outcome_of(0));
    assert_eq!(status.job.status, JobState::Completed);
    assert_eq!(status.imports, 3);
    assert!(sim.requests.iter().all(|r| r.is_status()));
    // Polls at about 0, 1, 2.4, 3.4, 4.8 and 6.7 s: the end is seen within 40 % of 5 s.
    let last = sim.requests.last().unwrap().at;
    assert!(gap(t0() + secs(5), last) <= secs(2), "{:?}", sim.sends());
    assert_eq!(sim.machine.stage(), Stage::Done);
}

#[test]
fn failed_is_an_outcome_and_reads_imports_then_errors() {
    let mut sim = Scenario::new().creating(batch(25, 3));
    sim.run();
    let status = finished(sim.outcome_of(0));
    assert_eq!(status.job.status, JobState::Failed);
    assert_eq!((status.imports, status.errors), (22, 3));
    assert_eq!(
        sim.imported().len(),
        22,
        "a FAILED job's imports are read too"
    );
    assert_eq!(sim.failed_items(), 3);
    assert_eq!(sim.created(), ["job=0"]);
    let imports = sim.pages("imports");
    assert_eq!(imports.len(), 3, "22 items in pages of 10");
    assert!(imports[1].path.ends_with("?page_token=p10"), "{imports:?}");
    assert_eq!(sim.pages("errors").len(), 1);
    // Order: create, statuses, imports, then errors.
    let kinds: Vec<&str> = sim
        .requests
        .iter()
        .map(|r| match () {
            () if r.is_create() => "create",
            () if r.path.contains("/imports") => "imports",
            () if r.path.contains("/errors") => "errors",
            () => "status",
        })
        .collect();
    let mut dedup = kinds.clone();
    dedup.dedup();
    assert_eq!(dedup, ["create", "status", "imports", "errors"]);
    assert_eq!(sim.requests[1].path, "/v2/events/batch/job=0");
    // Events: Created first, Done last, Imported before Failed.
    assert!(matches!(sim.events[0].event, Event::Created(_)));
    let first_failed = sim
        .events
        .iter()
        .position(|l| matches!(l.event, Event::Failed(_)))
        .unwrap();
    let last_imported = sim
        .events
        .iter()
        .rposition(|l| matches!(l.event, Event::Imported(_)))
        .unwrap();
    assert!(last_imported < first_failed);
}

#[test]
fn completed_reads_imports_only() {
    let mut sim = Scenario::new().creating(batch(5, 0));
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    assert_eq!(sim.imported().len(), 5);
    assert!(sim.pages("errors").is_empty());
    // The same with a job waited for by id, `Pages::All`.
    let mut sim = Scenario::new().waiting(secs(3), 12, 0, Pages::All);
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    assert_eq!((sim.imported().len(), sim.pages("imports").len()), (12, 2));
    assert!(sim.pages("errors").is_empty());
}

#[test]
fn pages_none_and_errors_only() {
    let mut sim = Scenario::new().waiting(secs(3), 4, 2, Pages::None);
    sim.run();
    assert!(sim.requests.iter().all(|r| r.is_status()));
    let mut sim = Scenario::new().waiting(secs(3), 4, 2, Pages::Errors);
    sim.run();
    assert_eq!((sim.imported().len(), sim.failed_items()), (0, 2));
    assert!(sim.pages("imports").is_empty());
}

#[test]
fn non_retryable_errors_give_up_at_once() {
    for status in [400, 401, 403, 404, 409] {
        let mut sim = waiting_with(Policy::default(), &[(2, Fault::Status(status))]);
        sim.run();
        let s = stopped(sim.outcome_of(0));
        let StopReason::GaveUp(Error::Api(e)) = &s.reason else {
            panic!("{status}: {s:?}")
        };
        assert_eq!(e.status().as_u16(), status);
        assert_eq!(sim.requests.len(), 2);
        assert_eq!(s.stage, Stage::Wait);
        assert_eq!(
            s.last_status.as_ref().unwrap().job.status,
            JobState::Processing
        );
    }
}

#[test]
fn non_retryable_create_stops_with_no_job() {
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(401))
        .creating(batch(2, 0));
    sim.run();
    let s = stopped(sim.outcome_of(0));
    assert!(matches!(s.reason, StopReason::GaveUp(_)), "{s:?}");
    assert_eq!((s.stage, s.job.is_none()), (Stage::Create, true));
    assert_eq!(sim.requests.len(), 1);
}

#[test]
fn too_many_errors_in_a_row() {
    let policy = Policy::builder().max_errors_in_row(3).build().unwrap();
    let faults = [
        (1, Fault::Status(503)),
        (2, Fault::Transport(TransportKind::Reset)),
        (3, Fault::Html(500)),
    ];
    let mut sim = waiting_with(policy, &faults);
    sim.run();
    let s = stopped(sim.outcome_of(0));
    let StopReason::TooManyErrors(Error::Api(e)) = &s.reason else {
        panic!("{s:?}")
    };
    assert_eq!(e.status(), 500);
    let body = &e.details().unwrap().body;
    assert!(
        matches!(body, fullstory_batch::ErrorBody::Raw(html) if html.contains("502 Bad Gateway")),
        "{body:?}"
    );
    assert_eq!(sim.requests.len(), 3);
}

#[test]
fn a_success_resets_the_error_streak() {
    let policy = Policy::builder().max_errors_in_row(3).build().unwrap();
    let e = || Fault::Status(502);
    let faults = [(1, e()), (2, e()), (4, e()), (5, e()), (7, e()), (8, e())];
    let mut sim = Scenario::new().policy(policy).latency(LATENCY);
    for (k, f) in faults {
        sim = sim.fault(k, f);
    }
    let mut sim =
        sim.server(|s| s.done_from_request = Some(9))
            .waiting(secs(3600), 3, 0, Pages::None);
    sim.run();
    assert!(sim.outcome_of(0).is_completed(), "{:?}", sim.outcome_of(0));
    assert_eq!(sim.requests.len(), 9);
}

#[test]
fn error_backoff_doubles_with_equal_jitter() {
    let policy = Policy::builder().max_errors_in_row(20).build().unwrap();
    for seed in [1, 5, 77] {
        let mut sim = Scenario::new()
            .policy(policy.clone())
            .seed(seed)
            .latency(LATENCY)
            .server(|s| {
                s.fault_range = Some((1..=12, Fault::Transport(TransportKind::Reset)));
            })
            .waiting(secs(1), 3, 0, Pages::None);
        sim.run();
        assert!(sim.outcome_of(0).is_completed());
        for (i, w) in sim.sends().windows(2).take(12).enumerate() {
            let wait = gap(w[0], w[1]) - LATENCY;
            let nominal = (ms(500) * (1 << i)).min(secs(30));
            assert!(
                wait <= nominal && wait >= nominal / 2,
                "retry {i}: {wait:?} vs {nominal:?}"
            );
        }
    }
}

#[test]
fn retry_after_seconds_is_a_floor() {
    let mut sim = waiting_with(Policy::default(), &[(1, Fault::RetryAfter(429, 7))]);
    sim.run_until(|s| s.requests.len() == 2);
    let wait = gap(sim.requests[0].at, sim.requests[1].at);
    assert!(wait >= secs(7) + LATENCY, "{wait:?}");
    assert!(wait < secs(8), "{wait:?}");
}

#[test]
fn retry_after_date_is_measured_against_the_server_clock() {
    // The server's clock is an hour ahead, or an hour behind; the date is 5 s after its now.
    for skew in [3600, -3600, 0] {
        let fault = Fault::RetryAfterDate {
            status: 429,
            secs: 5,
            skew,
        };
        let mut sim = waiting_with(Policy::default(), &[(1, fault)]);
        sim.run_until(|s| s.requests.len() == 2);
        let wait = gap(sim.requests[0].at, sim.requests[1].at) - LATENCY;
        assert!(wait >= secs(5) && wait < secs(6), "skew {skew}: {wait:?}");
    }
}

#[test]
fn retry_after_on_503_is_honoured() {
    let mut sim = waiting_with(Policy::default(), &[(1, Fault::RetryAfter(503, 12))]);
    sim.run_until(|s| s.requests.len() == 2);
    let wait = gap(sim.requests[0].at, sim.requests[1].at);
    assert!(wait >= secs(12) + LATENCY && wait < secs(13), "{wait:?}");
}

#[test]
fn huge_retry_after_is_capped() {
    let policy = Policy::builder().retry_after_max(secs(60)).build().unwrap();
    let mut sim = waiting_with(policy, &[(1, Fault::RetryAfter(429, u64::MAX))]);
    sim.run_until(|s| s.requests.len() == 2);
    let wait = gap(sim.requests[0].at, sim.requests[1].at) - LATENCY;
    assert!(wait >= secs(60) && wait < secs(61), "{wait:?}");
    // The default cap is an hour.
    let mut sim = waiting_with(Policy::default(), &[(1, Fault::RetryAfter(429, 1 << 40))]);
    sim.run_until(|s| s.requests.len() == 2);
    let wait = gap(sim.requests[0].at, sim.requests[1].at) - LATENCY;
    assert!(wait >= secs(3600) && wait < secs(3601), "{wait:?}");
}

#[test]
fn retry_after_past_the_deadline_ends_at_once() {
    let policy = Policy::default().with_timeout(secs(30));
    let mut sim = waiting_with(policy, &[(2, Fault::RetryAfter(429, 60))]);
    sim.run();
    let s = stopped(sim.outcome_of(0));
    assert!(matches!(s.reason, StopReason::DeadlineExceeded), "{s:?}");
    assert_eq!(
        s.last_status.as_ref().unwrap().job.status,
        JobState::Processing,
        "the last running status is kept"
    );
    assert_eq!(sim.requests.len(), 2);
    let (_, at, _) = sim.dones()[0];
    assert!(at < t0() + secs(5), "ended without sleeping: {at:?}");
}

#[test]
fn the_deadline_bounds_sends_and_waits() {
    let policy = Policy::default().with_timeout(secs(45));
    let deadline = t0() + secs(45);
    for seed in [3, 4, 5] {
        let mut sim = Scenario::new()
            .policy(policy.clone())
            .seed(seed)
            .latency(LATENCY)
            .waiting(secs(3600), 1, 0, Pages::None);
        sim.run();
        let s = stopped(sim.outcome_of(0));
        assert!(matches!(s.reason, StopReason::DeadlineExceeded), "{s:?}");
        assert!(s.last_status.is_some());
        assert!(sim.sends().iter().all(|t| *t <= deadline));
        assert!(sim.wakes.iter().all(|t| *t <= deadline), "{:?}", sim.wakes);
        assert_eq!(
            *sim.sends().last().unwrap(),
            deadline,
            "a last look exactly at the deadline"
        );
        assert!(sim.dones()[0].1 <= deadline);
    }
}

#[test]
fn deadline_while_waiting_for_a_created_job() {
    let policy = Policy::default().with_timeout(secs(60));
    let mut sim = Scenario::new()
        .policy(policy)
        .processing(secs(3600))
        .creating(batch(2, 0));
    sim.run();
    let s = stopped(sim.outcome_of(0));
    assert!(matches!(s.reason, StopReason::DeadlineExceeded));
    assert_eq!(s.stage, Stage::Wait);
    assert_eq!(s.job.as_ref().unwrap().id.as_str(), "job=0");
    assert_eq!(
        s.last_status.as_ref().unwrap().job.status,
        JobState::Processing
    );
}

#[test]
fn every_transmit_carries_the_deadline() {
    let policy = Policy::default().with_timeout(secs(300));
    let mut sim = Scenario::new()
        .policy(policy)
        .latency(LATENCY)
        .fault(1, Fault::Status(503))
        .fault(3, Fault::Transport(TransportKind::Timeout))
        .creating(batch(25, 3));
    sim.run();
    assert!(sim.outcome_of(0).status().is_some());
    assert!(sim.requests.len() > 8);
    assert!(
        sim.requests
            .iter()
            .all(|r| r.deadline == Some(t0() + secs(300)))
    );
    let mut sim = Scenario::new().creating(batch(3, 0));
    sim.run();
    assert!(sim.requests.iter().all(|r| r.deadline.is_none()));
}

#[test]
fn a_stall_is_cut_off_at_the_transmit_deadline() {
    let policy = Policy::default().with_timeout(secs(60));
    let mut sim = waiting_with(policy, &[(2, Fault::Stall)]);
    sim.run();
    let s = stopped(sim.outcome_of(0));
    assert!(matches!(s.reason, StopReason::DeadlineExceeded), "{s:?}");
    assert_eq!(sim.requests.len(), 2);
    assert_eq!(
        sim.dones()[0].1,
        t0() + secs(60),
        "given up at the deadline"
    );
    // Without a deadline the driver's own timeout ends it, and the job goes on.
    let mut sim = waiting_with(Policy::default(), &[(2, Fault::Stall)]);
    sim.server.jobs[0].processing = secs(40);
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    assert_eq!(
        sim.requests[1].result,
        Fate::Failed(TransportKind::Timeout, sim.requests[1].at + secs(30))
    );
}

#[test]
fn unknown_statuses_keep_waiting() {
    let faults = [
        (1, Fault::State("PENDING")),
        (2, Fault::State("UNKNOWN")),
        (3, Fault::State("QUEUED")),
    ];
    let mut sim = waiting_with(Policy::default(), &faults);
    sim.server.jobs[0].processing = secs(5);
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    let seen: Vec<String> = sim
        .events
        .iter()
        .filter_map(|l| match &l.event {
            Event::Progress(p) => p
                .last_status
                .as_ref()
                .map(|s| s.job.status.as_str().to_owned()),
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(seen, ["PENDING", "UNKNOWN", "QUEUED"]);
}

#[test]
fn progress_carries_the_last_error_of_every_kind() {
    let faults = [
        (1, Fault::RetryAfter(429, 2)),
        (2, Fault::Status(503)),
        (3, Fault::Transport(TransportKind::Reset)),
    ];
    let mut sim = waiting_with(Policy::default(), &faults);
    sim.run_until(|s| s.requests.len() == 5);
    let progress: Vec<_> = sim
        .events
        .iter()
        .filter_map(|l| match &l.event {
            Event::Progress(p) => Some((l.at, p.clone())),
            _ => None,
        })
        .collect();
    let kinds: Vec<Option<&str>> = progress
        .iter()
        .map(|(_, p)| p.last_error.as_ref().map(Error::kind))
        .collect();
    assert_eq!(
        kinds[..4],
        [
            Some("rate_limited"),
            Some("server_error"),
            Some("reset"),
            None
        ]
    );
    let counts: Vec<(u32, u32)> = progress
        .iter()
        .map(|(_, p)| (p.attempts, p.errors_in_row))
        .collect();
    assert_eq!(counts[..4], [(1, 1), (2, 2), (3, 3), (4, 0)]);
    for (at, p) in &progress {
        assert!(p.next_request.unwrap() > *at);
        assert_eq!(p.stage, Stage::Wait);
        assert!(p.job.is_some());
    }
    assert!(progress[0].1.next_request.unwrap() >= progress[0].0 + secs(2));
}

#[test]
fn stale_answers_are_ignored() {
    let now = t0();
    let job_ref = fullstory_batch::JobRef::new(
        fullstory_batch::Resource::Events,
        fullstory_batch::JobId::new("j").unwrap(),
    );
    let mut job: Job = Job::wait(config(), job_ref, Policy::default(), now, 1);
    let running = Response::new(br#"{"job":{"id":"j","status":"PROCESSING"}}"#.to_vec());
    let done = Response::new(br#"{"job":{"id":"j","status":"COMPLETED"}}"#.to_vec());
    let first = job.poll_transmit(now).unwrap();
    assert!(job.poll_transmit(now).is_none(), "one request at a time");
    job.handle_response(first.id, &running, now);
    // The same answer again, a failure for it, and a COMPLETED for it: all stale.
    job.handle_response(first.id, &running, now);
    job.handle_send_failed(first.id, TransportError::new(TransportKind::Reset), now);
    job.handle_response(first.id, &done, now);
    assert!(job.outcome().is_none());
    let p = job.progress();
    assert_eq!((p.attempts, p.errors_in_row), (1, 0));
    let at = job.poll_timeout().unwrap();
    let second = job.poll_transmit(at).unwrap();
    assert_ne!(first.id, second.id);
    job.handle_response(first.id, &done, at);
    assert!(job.outcome().is_none());
    job.handle_response(second.id, &done, at);
    assert!(job.outcome().unwrap().is_completed());
    // After the end, nothing is taken.
    job.handle_response(second.id, &running, at);
    assert!(job.outcome().unwrap().is_completed());
    assert!(job.poll_timeout().is_none() && job.poll_transmit(at).is_none());
}

fn round_trip(job: &Job) -> Job {
    let json = serde_json::to_string(&job.save()).unwrap();
    let saved: SavedJob = serde_json::from_str(&json).unwrap();
    Job::restore(config(), saved).unwrap()
}

#[test]
fn save_and_restore_at_every_step_change_nothing() {
    let scenarios: Vec<Box<dyn Fn() -> Sim<Job>>> = vec![
        Box::new(|| Scenario::new().creating(batch(25, 3))),
        Box::new(|| {
            Scenario::new()
                .latency(LATENCY)
                .fault(1, Fault::Status(503))
                .fault(2, Fault::RetryAfter(429, 4))
                .fault(4, Fault::Transport(TransportKind::Reset))
                .fault(9, Fault::Html(502))
                .server(|s| s.not_ready = 2)
                .creating(batch(35, 12))
        }),
        Box::new(|| {
            Scenario::new()
                .policy(Policy::default().with_timeout(secs(40)))
                .seed(9)
                .processing(secs(3600))
                .creating(batch(3, 0))
        }),
    ];
    for make in scenarios {
        let mut plain = make();
        plain.run();
        let mut restored = make().save_every_step();
        restored.run();
        assert_eq!(plain.transcript(), restored.transcript());
        assert_eq!(plain.server.jobs.len(), 1);
    }
}

#[test]
fn a_request_in_flight_at_save_is_sent_again() {
    let now = t0();
    let mut server = sim::Server::default();
    let mut job: Job = Job::create(config(), batch(3, 0), Policy::default(), now, 1);
    let create = job.poll_transmit(now).unwrap();
    let key = create.request.headers()["idempotency-key"].clone();
    // The server makes the job; the process dies before the answer is read.
    let _ = server.handle(&create.request, now);
    let mut restored = round_trip(&job);
    let again = restored.poll_transmit(now + secs(1)).unwrap();
    assert_eq!(again.request.headers()["idempotency-key"], key);
    assert_eq!(again.request.body(), create.request.body());
    let sim::Answer::Http(response) = server.handle(&again.request, now + secs(1)) else {
        panic!()
    };
    // The lost request's answer, if it came now, is stale.
    restored.handle_response(create.id, &response, now + secs(1));
    assert!(restored.job().is_none());
    restored.handle_response(again.id, &response, now + secs(1));
    assert_eq!(restored.job().unwrap().id.as_str(), "job=0");
    assert_eq!(server.jobs.len(), 1, "one job, not two");
    // A status request in flight goes again as well.
    let at = restored.poll_timeout().unwrap();
    let status = restored.poll_transmit(at).unwrap();
    let mut again = round_trip(&restored);
    let resent = again.poll_transmit(at).unwrap();
    assert_eq!(resent.request.uri(), status.request.uri());
}

#[test]
fn restore_of_a_finished_job_is_refused() {
    let mut sim = Scenario::new().waiting(secs(1), 1, 0, Pages::None);
    sim.run();
    let saved = sim.machine.save();
    assert_eq!(
        Job::<fullstory_batch::EventRequest>::restore(config(), saved).err(),
        Some(RestoreError::Finished)
    );
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(401))
        .creating(batch(1, 0));
    sim.run();
    assert!(Job::<fullstory_batch::EventRequest>::restore(config(), sim.machine.save()).is_err());
}

#[test]
fn hostile_policies_are_refused() {
    let refused = [
        Policy::builder().min_interval(Duration::ZERO).build(),
        Policy::builder().min_interval(ms(99)).build(),
        Policy::builder().error_backoff(Duration::ZERO).build(),
        Policy::builder().error_backoff(ms(10)).build(),
        Policy::builder().age_fraction(f64::NAN).build(),
        Policy::builder().age_fraction(f64::INFINITY).build(),
        Policy::builder().age_fraction(-1.0).build(),
        Policy::builder().age_fraction(11.0).build(),
        Policy::builder().poll_jitter(f64::NAN).build(),
        Policy::builder().poll_jitter(f64::INFINITY).build(),
        Policy::builder().poll_jitter(-1.0).build(),
        Policy::builder().poll_jitter(1.5).build(),
        Policy::builder().max_errors_in_row(0).build(),
        Policy::builder().connect_attempts_at_start(0).build(),
        Policy::builder().max_interval(ms(500)).build(),
        Policy::builder()
            .error_backoff(secs(60))
            .max_error_backoff(secs(1))
            .build(),
    ];
    for r in refused {
        assert!(r.is_err(), "{r:?}");
    }
}

#[test]
fn extreme_but_safe_policies_do_not_panic() {
    let accepted = [
        Policy::builder()
            .age_fraction(10.0)
            .max_interval(Duration::MAX)
            .build(),
        Policy::builder()
            .error_backoff(Duration::MAX)
            .max_error_backoff(Duration::MAX)
            .build(),
        Policy::builder().timeout(Duration::MAX).build(),
        Policy::builder().timeout(Duration::ZERO).build(),
        Policy::builder()
            .max_errors_in_row(1)
            .poll_jitter(1.0)
            .retry_after_max(Duration::ZERO)
            .build(),
        Policy::builder().retry_after_max(Duration::MAX).build(),
    ];
    for policy in accepted {
        let policy = policy.unwrap();
        let mut sim = Scenario::new()
            .policy(policy.clone())
            .latency(LATENCY)
            .fault(2, Fault::Transport(TransportKind::Reset))
            .fault(3, Fault::RetryAfter(429, 1 << 40))
            .waiting(secs(3), 1, 0, Pages::None);
        sim.run();
        assert!(
            sim.requests.len() <= 5,
            "{policy:?}: {}",
            sim.requests.len()
        );
        let _ = sim.outcome_of(0);
    }
}

#[test]
fn a_created_job_with_no_id_stops() {
    let mut sim = Scenario::new().fault(1, Fault::NoId).creating(batch(3, 0));
    sim.run();
    let s = stopped(sim.outcome_of(0));
    let StopReason::GaveUp(Error::Api(ApiError::Malformed(m))) = &s.reason else {
        panic!("{s:?}")
    };
    assert_eq!(m.field_name(), Some("job.id"), "{m}");
    assert_eq!((s.stage, sim.requests.len()), (Stage::Create, 1));
}

#[test]
fn a_repeated_page_token_stops_instead_of_looping() {
    let mut sim = Scenario::new()
        .server(|s| s.repeat_token = true)
        .creating(batch(35, 0));
    sim.run();
    let s = stopped(sim.outcome_of(0));
    let StopReason::GaveUp(Error::Api(ApiError::Malformed(m))) = &s.reason else {
        panic!("{s:?}")
    };
    assert!(m.to_string().contains("repeated"), "{m}");
    assert_eq!(s.stage, Stage::Imports);
    assert_eq!(sim.pages("imports").len(), 2);
}

#[test]
fn pages_answer_202_and_are_asked_again() {
    let mut sim = Scenario::new()
        .server(|s| s.not_ready = 3)
        .reading_pages(4, 0);
    assert_eq!(sim.machine.stage(), Stage::Imports);
    sim.run();
    let start = sim.status_requests().last().unwrap().at;
    assert!(sim.outcome_of(0).is_completed());
    assert_eq!(sim.imported().len(), 4);
    let pages = sim.pages("imports");
    assert_eq!(pages.len(), 4);
    assert_eq!(
        pages[0].at, start,
        "the first page goes with the final status"
    );
    for w in pages.windows(2) {
        let wait = gap(w[0].at, w[1].at);
        assert!(wait >= ms(900) && wait <= secs(1), "{wait:?}");
    }
}

#[test]
fn resume_an_existing_job_by_id() {
    let mut sim = Scenario::new().waiting(secs(7), 5, 2, Pages::All);
    sim.run();
    assert!(sim.creates().is_empty());
    let status = finished(sim.outcome_of(0));
    assert_eq!(status.job.status, JobState::Failed);
    assert_eq!((sim.imported().len(), sim.failed_items()), (5, 2));
    assert!(sim.requests[0].path.ends_with("/batch/job=0"));
}

#[test]
fn users_end_to_end() {
    let users: Vec<UserRequest> = (0..12)
        .map(|i| UserRequest {
            uid: Some(if i == 0 {
                "bad".into()
            } else {
                format!("u{i}")
            }),
            ..UserRequest::default()
        })
        .collect();
    let mut sim =
        Scenario::new().creating_users(fullstory_batch::Batch::new(&users, None).unwrap());
    sim.run();
    assert_eq!(finished(sim.outcome_of(0)).job.status, JobState::Failed);
    assert_eq!((sim.imported().len(), sim.failed_items()), (11, 1));
    assert!(sim.requests[0].path.starts_with("/v2/users/batch"));
    assert!(
        sim.requests
            .iter()
            .skip(1)
            .all(|r| r.path.starts_with("/v2/users/batch/job=0"))
    );
    let failed: Vec<_> = sim
        .events
        .iter()
        .filter_map(|l| match &l.event {
            Event::Failed(items) => Some(items.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(failed[0].item.as_ref().unwrap().uid.as_deref(), Some("bad"));
}

#[test]
fn a_create_whose_answer_was_lost_is_retried_with_the_same_key() {
    let mut sim = Scenario::new()
        .latency(LATENCY)
        .fault(1, Fault::Status(503))
        .fault(2, Fault::Transport(TransportKind::Reset))
        .creating(batch(3, 0));
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    assert_eq!(sim.server.jobs.len(), 1, "exactly one job exists");
    let creates = sim.creates();
    assert_eq!(creates.len(), 3);
    assert!(
        creates
            .iter()
            .all(|c| c.idempotency_key == creates[0].idempotency_key)
    );
    assert_eq!(sim.created(), ["job=0"]);
}

#[test]
fn create_only_ends_at_the_create_retried_under_one_key() {
    let mut sim = Scenario::new()
        .latency(LATENCY)
        .fault(1, Fault::Status(503))
        .creating_only(batch(3, 0))
        .save_every_step();
    sim.run();
    // Finished, with the job as created: not ended, no counts.
    let status = finished(sim.outcome_of(0)).clone();
    assert_eq!(status.job.status, JobState::Processing);
    assert_eq!((status.imports, status.errors), (0, 0));
    assert_eq!(sim.created(), ["job=0"]);
    assert_eq!(sim.server.jobs.len(), 1);
    let creates = sim.creates();
    assert_eq!(
        (creates.len(), sim.requests.len()),
        (2, 2),
        "no status asked"
    );
    assert_eq!(creates[0].idempotency_key, creates[1].idempotency_key);
    assert_eq!(sim.machine.stage(), Stage::Done);
    assert!(
        sim.machine.batch().is_none(),
        "the batch's bytes are let go"
    );
    // Progress (the 503), Created, Done; and the events say which job.
    let events: Vec<Event> = sim.events.iter().map(|l| l.event.clone()).collect();
    assert!(matches!(
        events.as_slice(),
        [Event::Progress(_), Event::Created(_), Event::Done(_)]
    ));
    let job = CreateError::collect(events).unwrap().unwrap();
    assert_eq!(job.id.as_str(), "job=0");
}

#[test]
fn create_only_that_is_refused_says_why() {
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(401))
        .creating_only(batch(3, 0));
    sim.run();
    let events: Vec<Event> = sim.events.iter().map(|l| l.event.clone()).collect();
    let Some(Err(CreateError::Stopped(stop))) = CreateError::collect(events) else {
        panic!("{:?}", sim.events)
    };
    assert_eq!(stop.stage, Stage::Create);
    assert!(stop.job.is_none());
    assert_eq!(stop.reason.kind(), "unauthorized");
    let err = CreateError::Stopped(stop);
    assert_eq!(err.to_string(), "job not created");
    assert_eq!(
        err.source().map(ToString::to_string).as_deref(),
        Some("stopped creating the job")
    );
    assert!(matches!(
        CreateError::from(fullstory_batch::ValidationError::Empty),
        CreateError::Invalid(_)
    ));
    // Events that stop before `Done` give nothing.
    assert!(CreateError::collect(Vec::<Event>::new()).is_none());
}

#[test]
fn unreachable_from_the_start_stops_after_three_connections() {
    let mut sim = Scenario::new()
        .latency(LATENCY)
        .server(|s| s.down = true)
        .creating(batch(3, 0));
    sim.run();
    let s = stopped(sim.outcome_of(0));
    let StopReason::TooManyErrors(Error::Transport(t)) = &s.reason else {
        panic!("{s:?}")
    };
    assert_eq!(t.kind, TransportKind::Connect);
    assert_eq!(sim.requests.len(), 3, "connect_attempts_at_start, not 8");
    assert!(sim.now < t0() + secs(3), "{:?}", gap(t0(), sim.now));
    // The setting is honoured.
    let policy = Policy::builder()
        .connect_attempts_at_start(5)
        .build()
        .unwrap();
    let mut sim = Scenario::new()
        .policy(policy)
        .server(|s| s.down = true)
        .creating(batch(3, 0));
    sim.run();
    assert_eq!(sim.requests.len(), 5);
    // Once the server answered, refused connections count to the usual 8.
    let mut sim = Scenario::new()
        .faults_from(2, Fault::Transport(TransportKind::Connect))
        .creating(batch(3, 0));
    sim.run();
    assert!(matches!(
        stopped(sim.outcome_of(0)).reason,
        StopReason::TooManyErrors(_)
    ));
    assert_eq!(sim.requests.len(), 1 + 8);
}

#[test]
fn into_result_gives_stopped_for_a_401_and_names_the_error_once() {
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(401))
        .creating(batch(3, 0));
    sim.run();
    let outcome = sim.outcome_of(0).clone();
    let stopped = outcome.into_result().unwrap_err();
    assert_eq!(stopped.reason.kind(), "unauthorized");
    let mut chain = vec![stopped.to_string()];
    let mut source = stopped.source();
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let text = chain.join(" / ");
    assert_eq!(text.matches("unauthorized").count(), 1, "{text}");
    assert!(chain[0].contains("creating the job"), "{text}");
    // A finished job is Ok.
    let mut sim = Scenario::new().creating(batch(3, 0));
    sim.run();
    assert_eq!(sim.outcome_of(0).clone().into_result().unwrap().imports, 3);
}

// ---------------------------------------------------------------- properties

/// One scripted answer to a status request.
fn reply() -> impl Strategy<Value = Option<Fault>> {
    prop_oneof![
        6 => Just(None),
        1 => Just(Some(Fault::State("FAILED"))),
        1 => Just(Some(Fault::State("COMPLETED"))),
        1 => Just(Some(Fault::State("PENDING"))),
        3 => (prop::sample::select(vec![408u16, 429, 500, 502, 503, 504]), prop::option::of(0u64..120))
            .prop_map(|(s, r)| Some(r.map_or(Fault::Status(s), |r| Fault::RetryAfter(s, r)))),
        1 => prop::sample::select(vec![400u16, 401, 404]).prop_map(|s| Some(Fault::Status(s))),
        1 => (0u64..90, -7200i64..7200).prop_map(|(secs, skew)| Some(Fault::RetryAfterDate { status: 429, secs, skew })),
        1 => Just(Some(Fault::Html(502))),
        2 => prop::sample::select(vec![TransportKind::Reset, TransportKind::Timeout, TransportKind::Connect])
            .prop_map(|k| Some(Fault::Transport(k))),
        1 => Just(Some(Fault::Stall)),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        1u32..10,
        1u32..5,
        prop::option::of(10u64..600),
        0.0f64..=1.0,
    )
        .prop_map(|(max_errors, connects, timeout, jitter)| {
            let mut b = Policy::builder()
                .max_errors_in_row(max_errors)
                .connect_attempts_at_start(connects)
                .poll_jitter(jitter);
            if let Some(t) = timeout {
                b = b.timeout(secs(t));
            }
            b.build().unwrap()
        })
}

/// Waits for a job that runs for ever, answering request `k` with `script[k - 1]`, then
/// COMPLETED.
fn scripted(policy: &Policy, seed: u64, script: &[Option<Fault>], save: bool) -> Sim<Job> {
    let mut s = Scenario::new()
        .policy(policy.clone())
        .seed(seed)
        .latency(LATENCY)
        .server(|s| s.done_from_request = Some(script.len() + 1));
    for (i, f) in script.iter().enumerate() {
        if let Some(f) = f {
            s = s.fault(i + 1, f.clone());
        }
    }
    let mut sim = s.waiting(secs(1 << 30), 3, 0, Pages::None);
    if save {
        sim = sim.save_every_step();
    }
    sim.run();
    sim
}

fn is_error(f: &Option<Fault>) -> bool {
    !matches!(f, None | Some(Fault::State(_)))
}

/// The earliest next send a retryable answer with `Retry-After` allows.
fn floor(f: &Fault, answered: SystemTime, policy: &Policy) -> Option<SystemTime> {
    let wait = match f {
        Fault::RetryAfter(_, secs) => Duration::from_secs(*secs),
        Fault::RetryAfterDate { secs, .. } => Duration::from_secs(*secs),
        _ => return None,
    };
    Some(answered + wait.min(policy.retry_after_max()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn scripted_runs_keep_every_promise(
        policy in policy(),
        seed: u64,
        script in prop::collection::vec(reply(), 0..40),
    ) {
        let sim = scripted(&policy, seed, &script, false);
        let deadline = policy.timeout().map(|t| t0() + t);
        let sends = sim.sends();
        if let Some(deadline) = deadline {
            prop_assert!(sends.iter().all(|s| *s <= deadline), "sent after the deadline");
            prop_assert!(sim.wakes.iter().all(|w| *w <= deadline), "waited past the deadline");
            prop_assert!(sim.dones()[0].1 <= deadline);
        }
        prop_assert!(sim.requests.iter().all(|r| r.deadline == deadline));
        // Never before a Retry-After floor.
        for r in &sim.requests {
            let Some(fault) = script.get(r.n - 1).cloned().flatten() else { continue };
            let Some(Fate::Answered(_, at)) = Some(r.result.clone()) else { continue };
            if let Some(floor) = floor(&fault, at, &policy) {
                prop_assert!(sends.iter().all(|s| *s <= r.at || *s >= floor), "sent before a Retry-After");
            }
        }
        // Never more than the error limit in a row, never more than one after the script.
        prop_assert!(sends.len() <= script.len() + 1);
        let mut streak = 0;
        for r in &sim.requests {
            streak = if is_error(&script.get(r.n - 1).cloned().flatten()) { streak + 1 } else { 0 };
            prop_assert!(streak <= policy.max_errors_in_row());
        }
        // Stops at the first end.
        if let Some(first) = script.iter().position(|f| matches!(f, Some(Fault::State("FAILED" | "COMPLETED")))) {
            prop_assert!(sends.len() <= first + 1);
        }
        // Exactly one Done, last.
        let outcome = sim.outcome_of(0);
        match outcome {
            Outcome::Finished(_) => {}
            Outcome::Stopped(s) => match &s.reason {
                StopReason::DeadlineExceeded => prop_assert!(deadline.is_some()),
                StopReason::GaveUp(e) => prop_assert!(!e.is_retryable()),
                StopReason::TooManyErrors(e) => prop_assert!(e.is_retryable()),
                _ => {}
            },
        }
    }

    #[test]
    fn same_seed_same_schedule(policy in policy(), seed: u64, script in prop::collection::vec(reply(), 0..30)) {
        let a = scripted(&policy, seed, &script, false);
        let b = scripted(&policy, seed, &script, false);
        prop_assert_eq!(a.transcript(), b.transcript());
    }

    #[test]
    fn save_and_restore_change_nothing(policy in policy(), seed: u64, script in prop::collection::vec(reply(), 0..30)) {
        let plain = scripted(&policy, seed, &script, false);
        let restored = scripted(&policy, seed, &script, true);
        prop_assert_eq!(plain.transcript(), restored.transcript());
    }
}

// ---------------------------------------------------------------- the poll schedule

/// A job created at once that runs `runs_for` from the end of its create: the status
/// requests it costs, and how late its end was noticed.
fn new_schedule(runs_for: Duration, seed: u64) -> (usize, Duration) {
    let mut sim = Scenario::new()
        .seed(seed)
        .processing(runs_for)
        .creating(batch(1, 0));
    sim.run();
    assert!(sim.outcome_of(0).is_completed());
    let ends = sim.server.jobs[0].ends();
    let status = sim.status_requests();
    let seen = status.last().unwrap().at;
    (status.len(), gap(ends, seen))
}

/// The old default, for comparison: a poll at once, then 1 s growing ×1.5 to 20 s, each wait
/// shortened by up to 10 % at random.
fn old_schedule(runs_for: Duration, seed: u64) -> (usize, Duration) {
    let mut state = seed;
    let mut unit = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let end = runs_for.as_secs_f64();
    let (mut t, mut interval, mut requests) = (0.0f64, 1.0f64, 1);
    while t < end {
        t += interval * (1.0 - 0.1 * unit());
        interval = (interval * 1.5).min(20.0);
        requests += 1;
    }
    (requests, Duration::from_secs_f64(t - end))
}

fn worst(f: impl Fn(Duration, u64) -> (usize, Duration), runs_for: Duration) -> (usize, Duration) {
    (0..200u64)
        .map(|seed| f(runs_for, seed.wrapping_mul(0x2545_F491_4F6C_DD1D)))
        .fold((0, Duration::ZERO), |(r, d), (r2, d2)| {
            (r.max(r2), d.max(d2))
        })
}

fn bound(policy: &Policy, age: Duration) -> Duration {
    policy.max_interval().min(
        policy
            .min_interval()
            .max(age.mul_f64(policy.age_fraction())),
    )
}

#[test]
fn the_poll_schedule_table() {
    let policy = Policy::default();
    println!(
        "| job runs | old requests | old worst delay | new requests | new worst delay | bound |"
    );
    println!("|---|---|---|---|---|---|");
    for (runs_for, max_requests) in [(5, 6), (20, 10), (120, 20), (600, 48)] {
        let runs_for = secs(runs_for);
        let old = worst(old_schedule, runs_for);
        let new = worst(new_schedule, runs_for);
        let bound = bound(&policy, runs_for);
        println!(
            "| {runs_for:?} | {} | {:.2?} | {} | {:.2?} | {bound:?} |",
            old.0, old.1, new.0, new.1
        );
        assert!(new.1 <= bound, "{runs_for:?}: noticed {:?} late", new.1);
        assert!(new.0 <= max_requests, "{runs_for:?}: {} requests", new.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For the default policy and any seed, a job that ends at age A is noticed within
    /// `min(max_interval, max(min_interval, age_fraction × A))`.
    #[test]
    fn the_poll_schedule_bound(runs_for in 1u64..20_000, seed: u64) {
        let policy = Policy::default();
        let (requests, late) = new_schedule(secs(runs_for), seed);
        prop_assert!(late <= bound(&policy, secs(runs_for)), "{} s job noticed {:?} late", runs_for, late);
        if runs_for <= 20 {
            prop_assert!(requests <= 10);
        }
        if runs_for <= 600 {
            prop_assert!(requests <= 48);
        }
    }
}

/// A saved job edited to wait with no job id (found by the `restore` fuzz target), or to
/// read pages with no final status (found reading the code behind it), made its first
/// request or its last page panic. Both are refused at restore, by name.
#[test]
fn restore_of_a_state_no_save_makes_is_refused() {
    let wait = Job::<fullstory_batch::EventRequest>::wait(
        config(),
        fullstory_batch::JobRef::new(
            fullstory_batch::Resource::Events,
            fullstory_batch::JobId::new("j").unwrap(),
        ),
        Policy::default(),
        t0(),
        1,
    );
    let mut no_id = serde_json::to_value(wait.save()).unwrap();
    no_id["job"] = serde_json::Value::Null;
    let e = Job::<fullstory_batch::EventRequest>::restore(
        config(),
        serde_json::from_value(no_id).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "saved state is damaged: a job past its create has no id"
    );
    let mut pages = serde_json::to_value(wait.save()).unwrap();
    pages["step"] = serde_json::json!({"Pages": {"kind": "errors", "token": null, "seen": []}});
    let e = Job::<fullstory_batch::EventRequest>::restore(
        config(),
        serde_json::from_value(pages).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        RestoreError::Inconsistent("a job reading pages has no final status")
    );
}
