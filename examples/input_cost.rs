//! The client-side cost of an import's input path, against serde_json alone:
//!
//! - **ours**: JSON lines parsed to `EventRequest` (serde_json), each checked and serialised
//!   into its batch's create body by `Batcher` (what `fsbatch import` does per item);
//! - **serde_json**: the same lines parsed and serialised by serde_json alone into one
//!   buffer, no checks, no batches;
//! - and the serialising half on its own: `Batcher::push` (check + serialise) against
//!   `serde_json::to_writer` of the same parsed items.
//!
//! `cargo run --release -p fsbatch --example input_cost -- 1000000`

use std::time::Instant;

use fullstory_batch::{Batcher, EventRequest, MAX_BATCH_ITEMS};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{{\"name\":\"Order Completed\",\"user\":{{\"uid\":\"user-{}\"}},\"timestamp\":\"2024-05-01T12:00:00Z\",\"properties\":{{\"order\":{i},\"total\":19.99,\"sku\":\"SKU-{}\"}}}}\n",
                i % 10_000,
                i % 313
            )
        })
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let best = |f: &mut dyn FnMut() -> usize| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };

    let ours = best(&mut || {
        let mut batcher = Batcher::<EventRequest>::new(MAX_BATCH_ITEMS);
        let mut bytes = 0;
        for line in &lines {
            let item: EventRequest = serde_json::from_str(line).unwrap();
            if let Some(batch) = batcher.push(&item).unwrap() {
                bytes += batch.body().len();
            }
        }
        bytes + batcher.finish().map_or(0, |b| b.body().len())
    });
    let alone = best(&mut || {
        let mut out = Vec::new();
        for line in &lines {
            let item: EventRequest = serde_json::from_str(line).unwrap();
            serde_json::to_writer(&mut out, &item).unwrap();
            out.push(b',');
            if out.len() > 8 << 20 {
                out.clear();
            }
        }
        out.len()
    });
    let items: Vec<EventRequest> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let push = best(&mut || {
        let mut batcher = Batcher::<EventRequest>::new(MAX_BATCH_ITEMS);
        let mut bytes = 0;
        for item in &items {
            if let Some(batch) = batcher.push(item).unwrap() {
                bytes += batch.body().len();
            }
        }
        bytes + batcher.finish().map_or(0, |b| b.body().len())
    });
    let write = best(&mut || {
        let mut out = Vec::new();
        for item in &items {
            serde_json::to_writer(&mut out, item).unwrap();
            out.push(b',');
            if out.len() > 8 << 20 {
                out.clear();
            }
        }
        out.len()
    });
    let mb = text.len() as f64 / 1e6;
    println!("{n} items, {mb:.0} MB of JSON lines (best of 5)");
    println!(
        "read+validate+serialize (ours): {ours:.3}s ({:.0} MB/s)",
        mb / ours
    );
    println!(
        "parse+serialize (serde_json):   {alone:.3}s ({:.0} MB/s)  ratio {:.2}x",
        mb / alone,
        ours / alone
    );
    println!("validate+serialize (Batcher):   {push:.3}s");
    println!(
        "serialize (serde_json):         {write:.3}s  ratio {:.2}x",
        push / write
    );
}
