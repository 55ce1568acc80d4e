//! 200 imports through the blocking adapter (`fullstory-batch-ureq`), 16 threads pulling
//! from a shared queue, against the fake with 20% of answers faulty (every fault kind,
//! seeded). The checks are in `common/mod.rs`; this file is the blocking driver.
//!
//! Run with `cargo test -p fullstory-batch-chaos --test ureq_chaos -- --nocapture` to see
//! the summary line.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::{Plan, Run};
use fullstory_batch::Policy;
use fullstory_batch_ureq::{Client, ClientOptions};

/// Imports in the main run (the number for this adapter).
const IMPORTS: usize = 200;
/// Threads running imports, each one import at a time.
const THREADS: usize = 16;
/// Requests the fake must be able to log: about 11 per import are expected.
const LOG_CAPACITY: usize = 100_000;
/// Peak resident set allowed for the whole test process, the fake included (about 30 MiB
/// measured): 16 threads' stacks, the 2 MiB oversized answers being built, the log.
const PEAK_RSS_BOUND_MIB: u64 = 128;

/// Runs every plan on `THREADS` threads, each taking the next plan from a shared counter.
fn run_all(client: &Client, plans: Vec<Plan>, policy: &Policy) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let runs = Mutex::new(Vec::with_capacity(plans.len()));
    std::thread::scope(|scope| {
        for _ in 0..THREADS.min(plans.len()) {
            scope.spawn(|| {
                while let Some(plan) = plans.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let started = Instant::now();
                    // The run is an iterator of the one job's events, to its end.
                    let events = client
                        .importer(&plan.items, plan.key.clone(), policy.clone())
                        .expect("every planned batch is valid");
                    let (report, events) = common::report_of(events);
                    let ended = Instant::now();
                    let run = Run {
                        plan: plan.clone(),
                        started,
                        ended,
                        report,
                        events,
                    };
                    runs.lock().expect("no import thread panics").push(run);
                }
            });
        }
    });
    let mut runs = runs.into_inner().expect("no import thread panicked");
    runs.sort_by_key(|r| r.plan.index);
    runs
}

#[test]
fn two_hundred_imports_through_ureq_with_twenty_percent_faults() {
    common::count_panics();
    let fake = common::fake_builder(LOG_CAPACITY)
        .start_blocking()
        .expect("the fake starts");
    let options = ClientOptions::new()
        .with_request_timeout(common::REQUEST_TIMEOUT)
        .with_connect_timeout(common::CONNECT_TIMEOUT);
    let client = Client::new(common::config(&fake), options).expect("no custom roots");

    let policy = common::policy();
    let started = Instant::now();
    let runs = run_all(&client, (0..IMPORTS).map(common::plan).collect(), &policy);
    let main_run = started.elapsed();
    // (b) Every import made its job once, whatever happened to its creates.
    assert_eq!(fake.jobs_created(), IMPORTS, "jobs made by the main run");

    let limit_policy = common::error_limit_policy();
    fake.script(common::error_limit_script());
    let limit_plans = (0..common::SCENARIO_IMPORTS)
        .map(|i| common::scenario_plan("limit", i))
        .collect();
    let limit_runs = run_all(&client, limit_plans, &limit_policy);
    fake.clear_scripts();

    let deadline_policy = common::deadline_policy();
    fake.script(common::deadline_script());
    let deadline_plans = (0..common::SCENARIO_IMPORTS)
        .map(|i| common::scenario_plan("deadline", i))
        .collect();
    let deadline_runs = run_all(&client, deadline_plans, &deadline_policy);
    fake.clear_scripts();

    let view = common::LogView::settle(&fake);
    let mut summary = common::check_main(&view, &runs, &policy);
    common::check_error_limit(&view, &limit_runs, &limit_policy);
    common::check_deadline(&view, &deadline_runs, &deadline_policy);

    summary.adapter = "ureq";
    summary.main_run = main_run;
    summary.bound_mib = PEAK_RSS_BOUND_MIB;
    summary.peak_mib = common::check_peak_rss(PEAK_RSS_BOUND_MIB);
    summary.panics = common::panics();
    println!("{summary}");
    assert_eq!(summary.panics, 0, "something panicked");
}
