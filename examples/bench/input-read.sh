#!/usr/bin/env bash
# The CLI's input reader alone, before and after a change: `open`, then
# `next_item::<EventRequest>` to the end, over N JSON lines (default 2,000,000, the events
# import-rss.sh writes). The reader of BASE (default 8b366f1) and the work tree's are built
# into one binary (a scratch crate outside the workspace) and run alternating on the same
# file; it prints wall and CPU times (this thread's, from /proc) and their medians.
#   examples/bench/input-read.sh [N] [RUNS] [BASE]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-2000000}
runs=${2:-9}
base=${3:-8b366f1}
work=${INPUT_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/input-read.XXXXXX")}
mkdir -p "$work/src"
git -C "$root" show "$base:examples/src/input.rs" > "$work/src/old_input.rs"
cp "$root/examples/src/input.rs" "$work/src/new_input.rs"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "input-bench"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
fullstory-batch = { path = "$root/core" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
flate2 = "1"

[profile.release]
debug = "line-tables-only"

[workspace]
TOML
cat > "$work/src/main.rs" <<'RUST'
//! The input reader alone, before (8b366f1) and after, on the same file in the same run:
//! `open` then `next_item::<EventRequest>` to the end, runs alternating; medians.
use std::path::Path;
use std::time::Instant;

use fullstory_batch::EventRequest;

#[path = "old_input.rs"]
#[allow(dead_code, missing_docs)]
mod old;
#[path = "new_input.rs"]
#[allow(dead_code, missing_docs)]
mod new;

fn old_reader(path: &Path) -> u64 {
    let mut items = old::open(path, old::Counter::default()).unwrap();
    let mut n = 0;
    while let Some((item, _)) = items.next_item::<EventRequest>().unwrap() {
        std::hint::black_box(item);
        n += 1;
    }
    n
}

fn new_reader(path: &Path) -> u64 {
    let mut items = new::open(path, new::Counter::default()).unwrap();
    let mut n = 0;
    while let Some((item, _)) = items.next_item::<EventRequest>().unwrap() {
        std::hint::black_box(item);
        n += 1;
    }
    n
}

/// This thread's CPU time (user + system), from /proc, in seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("FILE");
    let runs: usize = args.next().map_or(7, |r| r.parse().unwrap());
    let path = Path::new(&path);
    if let Ok(which) = std::env::var("ONLY") {
        let n = if which == "old" { old_reader(path) } else { new_reader(path) };
        println!("{which}: {n} items");
        return;
    }
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let (mut before_cpu, mut after_cpu, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c) = (Instant::now(), cpu());
        let a = old_reader(path);
        before.push(t.elapsed().as_secs_f64());
        before_cpu.push(cpu() - c);
        let (t, c) = (Instant::now(), cpu());
        let b = new_reader(path);
        after.push(t.elapsed().as_secs_f64());
        after_cpu.push(cpu() - c);
        assert_eq!(a, b, "both read the same items");
        ratios.push(after_cpu.last().unwrap() / before_cpu.last().unwrap());
    }
    println!("wall before: {before:.3?}\nwall after:  {after:.3?}");
    println!("cpu before:  {before_cpu:.2?}\ncpu after:   {after_cpu:.2?}");
    let (b, a) = (median(before), median(after));
    println!("median wall before {b:.3} s, after {a:.3} s, after/before {:.3}", a / b);
    let (b, a) = (median(before_cpu), median(after_cpu));
    println!("median cpu before {b:.2} s, after {a:.2} s, after/before {:.3}", a / b);
    println!("median of the runs' cpu ratios {:.3}", median(ratios));
}
RUST
if [ ! -s "$work/events-$n.jsonl" ]; then
  python3 - "$n" > "$work/events-$n.jsonl" <<'PY'
import sys
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    w('{"name":"Order Completed","user":{"uid":"user-%d"},"timestamp":"2024-05-01T12:00:00Z","properties":{"order":%d,"total":19.99,"sku":"SKU-%d"}}\n' % (i % 10000, i, i % 313))
PY
fi
CARGO_TARGET_DIR="$work/target" cargo build --release --offline --manifest-path "$work/Cargo.toml" >&2
"$work/target/release/input-bench" "$work/events-$n.jsonl" "$runs"
