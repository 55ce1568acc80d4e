//! Sequential status calls start no thread: ureq's default resolver would start one per
//! request (it enforces the resolve timeout that way), and the client always sets timeouts.
//!
//! A thread that lived for a lookup is gone by the time anyone looks, so counting
//! `/proc/self/task` alone cannot see it. It did take a thread id, though, and Linux hands
//! ids out in increasing order: a thread started before the calls and one started after
//! them are at least `CALLS + 1` ids apart if every call started a thread. Other processes
//! on the machine take ids too, so a busy moment may widen the gap; many attempts are
//! allowed, and one narrower gap is enough (with a thread per call, no gap ever is).
//! Alone in this file, so no other test starts threads meanwhile.
//!
//! Only threads the client could have started count: the probe threads are this test's own,
//! and one just joined may still be listed in `/proc/self/task` while the kernel reaps it.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;

use common::{client, fake, insert_job};

const CALLS: u32 = 50;
const ATTEMPTS: usize = 20;

/// The id of a thread started now.
fn fresh_tid() -> u64 {
    std::thread::spawn(|| {
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        // "<pid>/task/<tid>"
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("a thread id")
    })
    .join()
    .expect("the probe thread")
}

fn live_threads() -> BTreeSet<u64> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn sequential_calls_start_no_thread() {
    let fake = fake().start_blocking().expect("the fake starts");
    let (_, job) = insert_job(&fake);
    let client = client(fake.base_url());
    for _ in 0..3 {
        client.status(&job).expect("a status"); // connect; let the fake settle
    }
    let before = live_threads();

    let mut probes = BTreeSet::new();
    let mut gaps = Vec::new();
    for _ in 0..ATTEMPTS {
        let first = fresh_tid();
        for _ in 0..CALLS {
            client.status(&job).expect("a status");
        }
        let last = fresh_tid();
        probes.extend([first, last]);
        // A wrap of the id space makes `last` smaller: that attempt tells nothing.
        if let Some(gap) = last.checked_sub(first + 1) {
            gaps.push(gap);
            if gap < u64::from(CALLS) {
                break;
            }
        }
    }
    assert!(
        gaps.iter().any(|&gap| gap < u64::from(CALLS)),
        "{CALLS} calls took at least {CALLS} thread ids in every attempt: {gaps:?}"
    );
    let left: Vec<u64> = live_threads()
        .difference(&before)
        .filter(|tid| !probes.contains(tid))
        .copied()
        .collect();
    assert!(left.is_empty(), "no thread is left behind either: {left:?}");
}
