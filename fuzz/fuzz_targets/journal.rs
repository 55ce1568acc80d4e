#![no_main]
//! The journal reader on any bytes, read twice: as a file's bytes (the framing, checksums and
//! torn lines), and with each line given its right checksum (so the record parser and the
//! replay are reached, not only the framing). Besides never panicking, for any input:
//!
//! - a journal that reads has a good prefix that ends at a line's end and reads the same on
//!   its own; the rest is a torn last line, and only that;
//! - its records encode and read back the same;
//! - replayed against its own header it builds a ledger or names the line that contradicts
//!   the others (never "the input changed"); the ledger's totals are the finished batches'
//!   counts, held at `u64::MAX`; the next batch is admitted, or refused with a typed error.

use fullstory_batch::journal::{self, JournalError, JournalRecord, Ledger, decode, encode, fnv1a64};
use fullstory_batch::{Batch, EventRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    check(&signed(data));
});

/// Every line of `data` with the checksum `journal::encode` would give it; a last line
/// without its `\n` stays without one.
fn signed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 17 * 8);
    let mut lines = data.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        out.extend_from_slice(format!("{:016x} ", fnv1a64(line)).as_bytes());
        out.extend_from_slice(line);
        if !last {
            out.push(b'\n');
        }
    }
    out
}

fn check(bytes: &[u8]) {
    let lines = bytes.split(|&b| b == b'\n').count();
    let decoded = match decode(bytes) {
        Ok(decoded) => decoded,
        Err(JournalError::Corrupt { line, reason }) => {
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {reason}");
            return;
        }
        Err(JournalError::Version(v)) => {
            assert_ne!(v, journal::JOURNAL_VERSION, "refused its own version");
            return;
        }
        Err(other) => panic!("decoding bytes gave {other:?}"),
    };
    let good = decoded.valid_len;
    assert!(good <= bytes.len());
    assert!(good == 0 || bytes[good - 1] == b'\n', "the good part ends mid-line");
    assert_eq!(decoded.torn, good < bytes.len(), "a torn tail, and only one, is dropped");
    let dropped = &bytes[good..];
    assert!(!dropped[..dropped.len().saturating_sub(1)].contains(&b'\n'), "more than the last line dropped");
    let prefix = decode(&bytes[..good]).expect("the good part reads on its own");
    assert_eq!(prefix.records, decoded.records);
    assert!(!prefix.torn);

    let text: String = decoded.records.iter().map(encode).collect();
    let again = decode(text.as_bytes()).expect("encoded records read back");
    assert_eq!(again.records, decoded.records, "records read back the same");
    assert_eq!(again.valid_len, text.len());

    if let Some(JournalRecord::Header(header)) = decoded.records.first() {
        replay(decoded.records.clone(), header);
    }
}

fn replay(records: Vec<JournalRecord>, header: &journal::Header) {
    let count = records.len();
    let mut ledger = match Ledger::replay(records, header) {
        Ok(ledger) => ledger,
        Err(JournalError::Corrupt { line, .. }) => {
            assert!((2..=count).contains(&line), "line {line} of {count} records");
            return;
        }
        Err(other) => panic!("a journal against its own header: {other:?}"),
    };
    assert!(ledger.resumed());
    let (mut imported, mut failed) = (0u128, 0u128);
    for finished in ledger.batches().filter_map(|b| b.finished.as_ref()) {
        imported += u128::from(finished.imported);
        failed += u128::from(finished.failed);
    }
    let held = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    assert_eq!(ledger.totals(), (held(imported), held(failed)), "totals of the finished batches");
    let items = [EventRequest { name: "e".into(), ..EventRequest::default() }];
    match ledger.admit(Batch::new(&items, None).expect("a valid batch")) {
        Ok(_) | Err(JournalError::Changed(_) | JournalError::Corrupt { .. }) => {}
        Err(other) => panic!("admitting a batch gave {other:?}"),
    }
}
