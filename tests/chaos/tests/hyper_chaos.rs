//! 1,000 imports through the async adapter (`fullstory-batch-hyper`), 100 at a time on one
//! tokio runtime, against the fake with 20% of answers faulty (every fault kind, seeded);
//! and an ignored long run of 20,000 imports, 500 at a time:
//!
//! ```text
//! cargo test -p fullstory-batch-chaos --release --test hyper_chaos -- --ignored --nocapture
//! ```
//!
//! The checks are in `common/mod.rs`; this file is the async driver.

mod common;

use std::time::Instant;

use common::{Plan, Run};
use fullstory_batch::Policy;
use fullstory_batch_hyper::{Client, ClientOptions};
use futures_util::StreamExt;

/// Sockets the client may hold open (and so requests in flight) at once.
const MAX_CONNECTIONS: usize = 64;

/// One size of run.
struct Size {
    /// Imports in the main run.
    imports: usize,
    /// Imports in progress at once.
    concurrency: usize,
    /// Requests the fake must be able to log: about 11 per import are expected.
    log_capacity: usize,
    /// Peak resident set allowed for the whole test process, the fake and its log included.
    peak_rss_bound_mib: u64,
}

/// Runs every plan, `concurrency` at a time, all on the calling task.
async fn run_all(
    client: &Client,
    plans: Vec<Plan>,
    policy: &Policy,
    concurrency: usize,
) -> Vec<Run> {
    let mut runs: Vec<Run> = futures_util::stream::iter(plans)
        .map(|plan| async move {
            let started = Instant::now();
            // The one job's events, as a stream, to its end.
            let events: Vec<_> = client
                .importer(&plan.items, plan.key.clone(), policy.clone())
                .expect("every planned batch is valid")
                .into_stream()
                .collect()
                .await;
            let ended = Instant::now();
            let (report, events) = common::report_of(events);
            Run {
                plan,
                started,
                ended,
                report,
                events,
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    runs.sort_by_key(|r| r.plan.index);
    runs
}

fn chaos(size: &Size) {
    common::count_panics();
    let fake = common::fake_builder(size.log_capacity)
        .start_blocking()
        .expect("the fake starts");
    let options = ClientOptions::new()
        .with_request_timeout(common::REQUEST_TIMEOUT)
        .with_connect_timeout(common::CONNECT_TIMEOUT)
        .with_max_connections(MAX_CONNECTIONS);
    let client = Client::new(common::config(&fake), options).expect("no custom roots");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");

    let policy = common::policy();
    let started = Instant::now();
    let plans = (0..size.imports).map(common::plan).collect();
    let runs = runtime.block_on(run_all(&client, plans, &policy, size.concurrency));
    let main_run = started.elapsed();
    // (b) Every import made its job once, whatever happened to its creates.
    assert_eq!(
        fake.jobs_created(),
        size.imports,
        "jobs made by the main run"
    );

    let limit_policy = common::error_limit_policy();
    fake.script(common::error_limit_script());
    let limit_plans = (0..common::SCENARIO_IMPORTS)
        .map(|i| common::scenario_plan("limit", i))
        .collect();
    let limit_runs = runtime.block_on(run_all(
        &client,
        limit_plans,
        &limit_policy,
        size.concurrency,
    ));
    fake.clear_scripts();

    let deadline_policy = common::deadline_policy();
    fake.script(common::deadline_script());
    let deadline_plans = (0..common::SCENARIO_IMPORTS)
        .map(|i| common::scenario_plan("deadline", i))
        .collect();
    let deadline_runs = runtime.block_on(run_all(
        &client,
        deadline_plans,
        &deadline_policy,
        size.concurrency,
    ));
    fake.clear_scripts();

    let view = common::LogView::settle(&fake);
    let mut summary = common::check_main(&view, &runs, &policy);
    common::check_error_limit(&view, &limit_runs, &limit_policy);
    common::check_deadline(&view, &deadline_runs, &deadline_policy);

    summary.adapter = "hyper";
    summary.main_run = main_run;
    summary.bound_mib = size.peak_rss_bound_mib;
    summary.peak_mib = common::check_peak_rss(size.peak_rss_bound_mib);
    summary.panics = common::panics();
    println!("{summary}");
    assert_eq!(summary.panics, 0, "something panicked");
}

#[test]
fn a_thousand_imports_through_hyper_with_twenty_percent_faults() {
    chaos(&Size {
        imports: 1_000,
        concurrency: 100,
        log_capacity: 100_000,
        // About 40 MiB measured.
        peak_rss_bound_mib: 128,
    });
}

/// The long run: `cargo test -p fullstory-batch-chaos --release -- --ignored --nocapture`.
#[test]
#[ignore = "long run: 20,000 imports, minutes even in release"]
fn twenty_thousand_imports_through_hyper_with_twenty_percent_faults() {
    chaos(&Size {
        imports: 20_000,
        concurrency: 500,
        log_capacity: 1_000_000,
        // About 440 MiB measured in release, most of it the fake's log of ~180,000
        // requests and the copy the checks read.
        peak_rss_bound_mib: 768,
    });
}
