//! The decisions of a `JobSet`, on the simulated server and clock of `sim`.

mod sim;

use std::collections::{HashMap, HashSet};

use fullstory_batch::http::Response;
use fullstory_batch::{
    Batch, Batcher, Budget, Error, EventRequest, Job, JobId, JobKey, JobRef, JobSet, Outcome,
    Pages, Policy, Resource, SavedJob, SavedJobSet, StopReason, TransportError, TransportKind,
};
use sim::{Fault, Scenario, Sim, batch, config, events, ms, secs, t0};

fn is_deadline(o: &Outcome) -> bool {
    matches!(o, Outcome::Stopped(s) if matches!(s.reason, StopReason::DeadlineExceeded))
}

/// The most jobs started (a first request sent) and not yet ended (`Done`) at any time.
fn most_in_progress(sim: &Sim<JobSet>) -> usize {
    let mut marks: Vec<(usize, i32)> = Vec::new();
    let mut started = HashSet::new();
    for r in &sim.requests {
        if started.insert(r.key) {
            marks.push((r.seq, 1));
        }
    }
    for (key, _, _) in sim.dones() {
        if started.contains(&key) {
            let seq = sim
                .events
                .iter()
                .find(|l| l.key == key && matches!(l.event, fullstory_batch::Event::Done(_)))
                .unwrap()
                .seq;
            marks.push((seq, -1));
        }
    }
    marks.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in marks {
        now += d;
        most = most.max(now);
    }
    usize::try_from(most).unwrap()
}

#[test]
fn a_budget_holds_across_jobs() {
    let rate = 50.0;
    let mut sim = Scenario::new().set_with(|set, now| set.with_budget(Budget::new(rate, 10), now));
    for _ in 0..500 {
        let job = sim.server.add_job(t0(), secs(30), 1, 0);
        sim.machine.add_job(job, t0());
    }
    sim.run();
    assert_eq!(sim.dones().len(), 500);
    assert!(sim.dones().iter().all(|(_, _, o)| o.is_completed()));
    let sends = sim.sends();
    for (i, start) in sends.iter().enumerate() {
        let in_window = sends[i..]
            .iter()
            .take_while(|t| t.duration_since(*start).unwrap() < secs(1))
            .count();
        assert!(
            in_window as f64 <= rate + 10.0,
            "{in_window} requests in one second"
        );
    }
    assert_eq!(sim.spins, 0, "no busy loop while out of tokens");
}

#[test]
fn a_429_on_one_job_pauses_every_job() {
    let mut sim = Scenario::new()
        .fault(10, Fault::RetryAfter(429, 9))
        .set_of(50, secs(5));
    sim.run();
    assert_eq!(sim.dones().len(), 50);
    assert!(sim.dones().iter().all(|(_, _, o)| o.is_completed()));
    let paused_at = sim.requests[9].at;
    let after = &sim.requests[10..];
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|r| r.at >= paused_at + secs(9)),
        "a job sent during the pause"
    );
}

#[test]
fn two_thousand_jobs_for_a_simulated_hour() {
    // The benchmark runs 10,000; a debug-build test keeps to fewer.
    let mut sim = Scenario::new()
        .seed(7)
        .set_with(|set, now| set.with_budget(Budget::new(500.0, 100), now));
    for _ in 0..2_000 {
        let job = sim.server.add_job(t0(), secs(3600), 1, 0);
        sim.machine.add_job(job, t0());
    }
    sim.run();
    assert_eq!(sim.dones().len(), 2_000);
    assert!(sim.dones().iter().all(|(_, _, o)| o.is_completed()));
    // The schedule: 40 % of the age up to 20 s (jitter 10 %), about 215 polls an hour.
    let per_job = sim.requests.len() as f64 / 2_000.0;
    assert!(per_job <= 215.0, "{per_job} requests a job");
    let last = sim.dones().iter().map(|d| d.1).max().unwrap();
    assert!(
        last <= t0() + secs(3600 + 20),
        "{:?}",
        last.duration_since(t0())
    );
}

#[test]
fn stale_keys_and_ids_are_ignored() {
    let now = t0();
    let mut set: JobSet = JobSet::new(config(), Policy::default(), now, 1);
    let mut server = sim::Server::default();
    let a = set.add_job(server.add_job(now, secs(1), 1, 0), now);
    let b = set.add_job(server.add_job(now, secs(3600), 1, 0), now);
    assert_ne!(a, b);
    let ta = set.poll_transmit(now).unwrap();
    let tb = set.poll_transmit(now).unwrap();
    assert!(set.poll_transmit(now).is_none(), "both requests are out");
    assert_eq!((ta.id.job(), tb.id.job()), (a, b));
    let done = Response::new(br#"{"job":{"id":"job=0","status":"COMPLETED"}}"#.to_vec());
    let running = Response::new(br#"{"job":{"id":"job=1","status":"PROCESSING"}}"#.to_vec());
    set.handle_response(ta.id, &done, now);
    assert!(set.job(a).is_none(), "a ended");
    // a's id again, and b's answer twice: the second is stale.
    set.handle_response(ta.id, &done, now);
    set.handle_send_failed(ta.id, TransportError::new(TransportKind::Reset), now);
    set.handle_response(tb.id, &running, now);
    set.handle_response(tb.id, &done, now);
    set.handle_send_failed(tb.id, TransportError::new(TransportKind::Reset), now);
    let p = set.progress(b).unwrap();
    assert_eq!((p.attempts, p.errors_in_row), (1, 0));
    assert_eq!(set.len(), 1);
    let mut dones = 0;
    while let Some((key, event)) = set.poll_event() {
        if let fullstory_batch::Event::Done(o) = event {
            assert_eq!(key, a);
            assert!(o.is_completed());
            dones += 1;
        }
    }
    assert_eq!(dones, 1);
}

#[test]
fn deadlines_finish_jobs_without_a_request() {
    let policy = Policy::default().with_timeout(secs(10));
    let deadline = t0() + secs(10);
    let mut sim = Scenario::new()
        .policy(policy)
        .latency(ms(40))
        .set_of(20, secs(3600));
    sim.run();
    assert_eq!(sim.dones().len(), 20);
    for (key, at, o) in sim.dones() {
        assert!(is_deadline(o), "{key}: {o:?}");
        assert!(o.clone().into_result().unwrap_err().last_status.is_some());
        assert!(at <= deadline);
    }
    assert!(sim.sends().iter().all(|t| *t <= deadline));
    assert!(sim.wakes.iter().all(|t| *t <= deadline));
    assert!(sim.requests.iter().all(|r| r.deadline == Some(deadline)));
}

#[test]
fn the_deadline_counts_from_the_set_start_not_each_batch() {
    let policy = Policy::default().with_timeout(secs(4));
    let deadline = t0() + secs(4);
    let mut sim = Scenario::new()
        .policy(policy)
        .latency(ms(40))
        .processing(secs(2))
        .set_with(|set, _| set.with_max_in_progress(1));
    // Three batches, one at a time: each takes about 3 s, so the later ones start late.
    for _ in 0..3 {
        let b = batch(5, 0);
        let now = sim.now;
        sim.machine.add_batch(b, now);
    }
    sim.run();
    assert_eq!(sim.dones().len(), 3);
    assert!(
        sim.sends().iter().all(|t| *t <= deadline),
        "{:?}",
        sim.sends().last().map(|t| t.duration_since(t0()))
    );
    assert!(sim.requests.iter().all(|r| r.deadline == Some(deadline)));
    assert!(sim.dones().iter().all(|d| d.1 <= deadline));
    assert!(sim.outcome_of(0).is_completed());
    assert!(is_deadline(sim.outcome_of(2)));
}

#[test]
fn at_most_max_in_progress_jobs_run_at_once() {
    let mut sim = Scenario::new()
        .latency(ms(40))
        .processing(secs(7))
        .fault(3, Fault::Status(503))
        .fault(7, Fault::Transport(TransportKind::Reset))
        .set_with(|set, _| set.with_max_in_progress(2).with_pages(Pages::All));
    for i in 0..7 {
        let now = sim.now;
        sim.machine.add_batch(batch(12, i % 3), now);
    }
    sim.run();
    assert_eq!(sim.dones().len(), 7);
    assert!(sim.dones().iter().all(|(_, _, o)| o.status().is_some()));
    assert_eq!(most_in_progress(&sim), 2);
    assert!(sim.most_in_flight <= 2);
    // Jobs start in the order they were added.
    let mut order: Vec<u64> = Vec::new();
    for r in &sim.requests {
        if !order.contains(&r.key) {
            order.push(r.key);
        }
    }
    assert_eq!(order, (0..7).collect::<Vec<_>>());
}

/// Feeds `items` events through a `Batcher` of `size`, handing the set a batch only when it
/// wants one. Returns the most batches the set held at once.
fn feed_lazily(sim: &mut Sim<JobSet>, items: usize, size: usize) -> usize {
    let mut source = events(items, 0).into_iter();
    let mut batcher = Some(Batcher::<EventRequest>::new(size));
    let mut keys: Vec<JobKey> = Vec::new();
    let mut most_held = 0;
    loop {
        while sim.machine.wants_batch() {
            let Some(b) = batcher.as_mut() else { break };
            let next: Option<Batch> = loop {
                match source.next() {
                    Some(item) => {
                        if let Some(full) = b.push(&item).unwrap() {
                            break Some(full);
                        }
                    }
                    None => break batcher.take().and_then(Batcher::finish),
                }
            };
            match next {
                Some(full) => {
                    let now = sim.now;
                    keys.push(sim.machine.add_batch(full, now));
                }
                None => break,
            }
        }
        let held = keys
            .iter()
            .filter(|k| sim.machine.job(**k).is_some_and(|j| j.batch().is_some()))
            .count();
        most_held = most_held.max(held);
        if !sim.step() && batcher.is_none() {
            return most_held;
        }
    }
}

#[test]
fn wants_batch_bounds_the_batches_held() {
    let mut sim = Scenario::new()
        .latency(ms(40))
        .server(|s| s.keep_items = false)
        .set_with(|set, _| set.with_max_in_progress(2));
    let most_held = feed_lazily(&mut sim, 120_000, 50_000);
    assert!(most_held <= 2 + 1, "{most_held} batches held at once");
    assert_eq!(sim.creates().len(), 3);
    assert_eq!(sim.dones().len(), 3);
}

#[test]
fn a_hundred_and_twenty_thousand_items_make_three_jobs_two_at_a_time() {
    let mut sim = Scenario::new()
        .latency(ms(40))
        .server(|s| s.page_size = 10_000) // about 400 KB a page, under the 1 MiB limit
        .set_with(|set, _| set.with_max_in_progress(2).with_pages(Pages::All));
    let most_held = feed_lazily(&mut sim, 120_000, 50_000);
    assert!(most_held <= 3);
    let sizes: Vec<u64> = sim.server.jobs.iter().map(|j| j.imports).collect();
    assert_eq!(sizes, [50_000, 50_000, 20_000]);
    assert_eq!(most_in_progress(&sim), 2);
    assert!(sim.dones().iter().all(|(_, _, o)| o.is_completed()));
    // Every item imported exactly once, by the server's count and by the events.
    assert_eq!(sim.server.served.len(), 120_000);
    assert!(sim.server.served.values().all(|n| *n == 1));
    let names: HashSet<&str> = sim.imported().iter().map(|e| e.name.as_str()).collect();
    assert_eq!((names.len(), sim.imported().len()), (120_000, 120_000));
}

#[test]
fn a_429_on_a_create_pauses_the_waits_of_the_other_batches() {
    let mut sim = Scenario::new()
        .latency(ms(40))
        .processing(secs(60))
        .set_with(|set, _| set.with_max_in_progress(4));
    for _ in 0..2 {
        let now = sim.now;
        sim.machine.add_batch(batch(3, 0), now);
    }
    sim.run_until(|s| s.now >= t0() + secs(5));
    assert_eq!(sim.server.jobs.len(), 2, "both created, waiting");
    sim.server.next_create_fault = Some(Fault::RetryAfter(429, 10));
    let now = sim.now;
    sim.machine.add_batch(batch(3, 0), now);
    sim.run();
    let hit = sim
        .requests
        .iter()
        .find(|r| r.is_create() && r.key == 2)
        .unwrap();
    assert_eq!(hit.result, sim::Fate::Answered(429, hit.at + ms(40)));
    assert!(hit.is_create() && hit.key == 2, "{hit:?}");
    let answered = hit.answered_at().unwrap();
    let during: Vec<_> = sim
        .requests
        .iter()
        .filter(|r| r.at >= answered && r.at < answered + secs(10))
        .collect();
    assert!(during.is_empty(), "sent during the pause: {during:?}");
    assert!(sim.dones().iter().all(|(_, _, o)| o.is_completed()));
    assert_eq!(sim.server.jobs.len(), 3);
}

#[test]
fn unreachable_at_start_stops_the_whole_set_quickly() {
    let mut sim = Scenario::new()
        .latency(ms(40))
        .server(|s| s.down = true)
        .set_with(|set, _| set.with_max_in_progress(2));
    for _ in 0..5 {
        let now = sim.now;
        sim.machine.add_batch(batch(3, 0), now);
    }
    sim.run();
    assert_eq!(sim.dones().len(), 5);
    for key in 0..5 {
        let o = sim.outcome_of(key);
        let Outcome::Stopped(s) = o else {
            panic!("{o:?}")
        };
        assert!(
            matches!(&s.reason, StopReason::TooManyErrors(Error::Transport(t)) if t.kind == TransportKind::Connect),
            "{key}: {s:?}"
        );
    }
    assert!(sim.requests.len() <= 6, "{} requests", sim.requests.len());
    assert!(
        sim.now < t0() + secs(5),
        "{:?}",
        sim.now.duration_since(t0())
    );
}

fn mid_run_set() -> Sim<JobSet> {
    let mut sim = Scenario::new()
        .seed(11)
        .processing(secs(9))
        .fault(2, Fault::RetryAfter(429, 3))
        .fault(6, Fault::Status(503))
        .fault(11, Fault::Transport(TransportKind::Reset))
        .server(|s| s.not_ready = 1)
        .set_with(|set, now| {
            set.with_max_in_progress(2)
                .with_pages(Pages::All)
                .with_budget(Budget::new(3.0, 2), now)
        });
    for i in 0..4 {
        sim.machine.add_batch(batch(14, i), t0());
    }
    let existing = sim.server.add_job(t0(), secs(4), 3, 1);
    sim.machine.add_job(existing, t0());
    sim
}

#[test]
fn save_and_restore_of_a_set_mid_run_change_nothing() {
    let mut plain = mid_run_set();
    plain.run();
    assert_eq!(plain.dones().len(), 5);
    let mut every_step = mid_run_set().save_every_step();
    every_step.run();
    assert_eq!(plain.transcript(), every_step.transcript());
    // Once, half way.
    let mut once = mid_run_set();
    once.run_until(|s| s.now >= t0() + secs(6));
    assert!(!once.machine.is_empty());
    sim::Machine::round_trip(&mut once.machine, &config());
    once.run();
    assert_eq!(plain.transcript(), once.transcript());
    assert_eq!(once.server.jobs.len(), 5);
}

#[test]
fn a_retry_after_past_the_deadline_ends_every_job_by_the_deadline() {
    let policy = Policy::default().with_timeout(secs(60));
    let deadline = t0() + secs(60);
    let mut sim = Scenario::new()
        .policy(policy)
        .latency(ms(40))
        .fault(30, Fault::RetryAfter(429, 600))
        .set_of(10, secs(3600));
    sim.run();
    assert_eq!(sim.dones().len(), 10);
    assert!(sim.dones().iter().all(|(_, _, o)| is_deadline(o)));
    assert!(sim.sends().iter().all(|t| *t <= deadline));
    assert!(
        sim.wakes.iter().all(|t| *t <= deadline),
        "slept past the deadline to {:?}",
        sim.wakes.last().map(|t| t.duration_since(t0()))
    );
}

#[test]
fn jobs_keep_their_own_outcomes() {
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(404))
        .set_with(|set, _| set.with_pages(Pages::All));
    let now = sim.now;
    let missing = fullstory_batch::JobRef::new(
        fullstory_batch::Resource::Events,
        fullstory_batch::JobId::new("job=99").unwrap(),
    );
    sim.machine.add_job(missing, now);
    sim.machine.add_batch(batch(5, 2), now);
    sim.run();
    let outcomes: HashMap<u64, bool> = (0..2)
        .map(|k| (k, sim.outcome_of(k).status().is_some()))
        .collect();
    assert_eq!(outcomes, HashMap::from([(0, false), (1, true)]));
    assert_eq!((sim.imported().len(), sim.failed_items()), (3, 2));
}

#[test]
fn a_create_only_batch_ends_at_its_create_beside_a_full_one() {
    let mut sim = Scenario::new()
        .fault(1, Fault::Status(503))
        .set_with(|set, _| set.with_pages(Pages::All));
    let now = sim.now;
    let only = sim.machine.add_create_only(batch(4, 0), now);
    let full = sim.machine.add_batch(batch(5, 2), now);
    sim.run();
    let created = sim.outcome_of(only.index()).status().cloned().unwrap();
    assert!(!created.is_terminal(), "the job as created: {created:?}");
    assert!(sim.outcome_of(full.index()).status().unwrap().is_terminal());
    assert_eq!(sim.server.jobs.len(), 2);
    let only_requests: Vec<_> = sim
        .requests
        .iter()
        .filter(|r| r.key == only.index())
        .collect();
    assert!(
        only_requests.iter().all(|r| r.is_create()),
        "{only_requests:?}"
    );
    assert_eq!(only_requests.len(), 2, "the 503, then the create again");
    assert_eq!((sim.imported().len(), sim.failed_items()), (3, 2));
}

/// A saved set holds its policy once, not once a job; a state saved when each job held a
/// copy (in its pacer) still reads, and restores the same set.
#[test]
fn a_saved_set_holds_its_policy_once_and_older_saves_still_read() {
    let policy = Policy::default().with_timeout(secs(3600));
    let mut scenario = Scenario::new().policy(policy.clone());
    let jobs: Vec<_> = (0..3)
        .map(|_| scenario.server.add_job(t0(), secs(30), 1, 0))
        .collect();
    let mut keys = Vec::new();
    let mut sim = scenario.set_with(|mut set, now| {
        keys.extend(jobs.into_iter().map(|job| set.add_job(job, now)));
        set
    });
    sim.run_until(|s| s.requests.len() >= 3);

    let new = serde_json::to_value(sim.machine.save()).unwrap();
    let text = new.to_string();
    assert_eq!(text.matches("retry_after_max").count(), 1, "{text}");
    let mut old = new.clone();
    for job in old["jobs"].as_array_mut().unwrap() {
        job["pacer"]["policy"] = new["policy"].clone();
    }
    assert_eq!(old.to_string().matches("retry_after_max").count(), 4);

    let restore = |value: serde_json::Value| {
        let state: SavedJobSet = serde_json::from_value(value).unwrap();
        let set: JobSet = JobSet::restore(config(), state).unwrap();
        for key in &keys {
            assert_eq!(set.job(*key).unwrap().policy(), &policy);
        }
        serde_json::to_value(set.save()).unwrap()
    };
    assert_eq!(restore(new.clone()), new);
    assert_eq!(restore(old), new);
}

/// A lone job saves its policy beside its pacer; one saved with it in the pacer still reads.
#[test]
fn a_saved_job_holds_its_policy_and_older_saves_still_read() {
    let policy = Policy::default().with_timeout(secs(600));
    let job_ref = JobRef::new(Resource::Events, JobId::new("j").unwrap());
    let job: Job = Job::wait(config(), job_ref, policy.clone(), t0(), 1);
    let new = serde_json::to_value(job.save()).unwrap();
    assert!(new["policy"].is_object() && new["pacer"].get("policy").is_none());
    let mut old = new.clone();
    let moved = old.as_object_mut().unwrap().remove("policy").unwrap();
    old["pacer"]["policy"] = moved;
    for value in [new.clone(), old] {
        let saved: SavedJob = serde_json::from_value(value).unwrap();
        let job: Job = Job::restore(config(), saved).unwrap();
        assert_eq!(job.policy(), &policy);
        assert_eq!(serde_json::to_value(job.save()).unwrap(), new);
    }
}

/// Found by the `restore` fuzz target: a saved state edited by hand. Two jobs under one key
/// are refused (one would hide the other); a cap of 0 and a next key already taken are read
/// as a save would have written them.
#[test]
fn a_damaged_saved_set_is_refused_or_read_as_a_save_would_write_it() {
    let now = t0();
    let mut set: JobSet = JobSet::new(config(), Policy::default(), now, 1).with_max_in_progress(1);
    for id in ["a", "b"] {
        set.add_job(JobRef::new(Resource::Events, JobId::new(id).unwrap()), now);
    }
    let mut state = serde_json::to_value(set.save()).unwrap();

    let mut twins = state.clone();
    twins["jobs"][1]["key"] = 0.into();
    let twins: SavedJobSet = serde_json::from_value(twins).unwrap();
    let e = JobSet::<EventRequest>::restore(config(), twins).unwrap_err();
    assert_eq!(
        e.to_string(),
        "saved state is damaged: two jobs share a key"
    );

    state["max_in_progress"] = 0.into();
    state["next_key"] = 1.into();
    let saved: SavedJobSet = serde_json::from_value(state).unwrap();
    let mut set = JobSet::<EventRequest>::restore(config(), saved).unwrap();
    let added = set.add_job(JobRef::new(Resource::Events, JobId::new("c").unwrap()), now);
    assert_eq!(added.index(), 2, "a new key after the saved ones");
    let t = set
        .poll_transmit(now)
        .expect("one job runs under a cap of 0");
    assert_eq!(t.id.job().index(), 0);
}
