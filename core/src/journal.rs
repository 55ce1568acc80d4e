//! Exactly once across crashes: the records an import must make durable, their encoding,
//! and the decisions on resume. No I/O: a driver appends the records it is handed to a
//! [`JournalSink`] (a file, flushed and synced, in the adapters) and hands them back on
//! resume through [`decode`] and [`Ledger::replay`].
//!
//! # The rule
//!
//! A batch's [`JournalRecord::Batch`] (its index, items, body hash and idempotency key) is
//! durable **before** its create is sent. [`Ledger::admit`] hands it over with the batch;
//! the sink appends it, and only then does the batch go to the [`JobSet`](crate::JobSet).
//! [`Intake`](crate::Intake) applies these decisions for a driver, in one place: it owns
//! the ledger and the sink, and calls the sink at the points the rule sets.
//! `Created` (the job id) and `Finished` (the final counts, after the pages were read) are
//! written after the fact: losing them costs a request, never an item.
//!
//! # Resume
//!
//! The same input is read again, batch by batch, with the same batch size. For each batch:
//! - **finished** in the journal: skipped (its counts are in the ledger);
//! - **created**: waited on by job id ([`JobSet::add_job`](crate::JobSet::add_job)), then
//!   read, never created again;
//! - **planned** but not known created (the create's answer may have been lost): created
//!   again under the **same** idempotency key, so the server hands back the same job;
//! - **not in the journal**: planned and created fresh.
//!
//! A batch whose body hash differs from the one journaled, a different resource, batch
//! size or input fingerprint refuses the resume ([`JournalError::Changed`]): continuing
//! onto different data would import items twice or lose some.
//!
//! # Encoding (version 1)
//!
//! One record a line: 16 hex digits of the FNV-1a 64 hash of the JSON text, a space, the
//! JSON text, `\n`. The first record is the [`Header`], whose `v` is the format's version.
//! A last line that is cut short or fails its checksum is a torn write (a crash in the
//! middle of an append) and is dropped: its batch was never sent. A bad line followed by
//! good ones is corruption and refuses the journal ([`JournalError::Corrupt`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::batch::IdempotencyKey;
use crate::config::{JobId, JobRef, Resource};
use crate::input::Batch;
use crate::job::{Event, JobKey, Outcome};
use crate::model::JobState;

/// The journal format this crate writes and reads.
pub const JOURNAL_VERSION: u32 = 1;

/// FNV-1a, 64 bits: a stable hash (unlike std's), for checksums and body hashes. Not
/// meant to resist an adversary, only to notice a changed input or a damaged line.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// What identifies the input, as far as the driver knows it (a file's size and hash, say;
/// standard input has neither, and relies on the per-batch hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Its size in bytes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// A hash of its bytes (all, or a prefix: the driver says which by its choice), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// How many items it holds, if known (after a validating pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
}

impl Fingerprint {
    /// Where `self` (journaled) and `now` (the input read again) differ, each known on
    /// both sides.
    fn differs(&self, now: &Fingerprint) -> Option<String> {
        fn both<T: PartialEq + fmt::Display>(
            name: &str,
            a: &Option<T>,
            b: &Option<T>,
        ) -> Option<String> {
            match (a, b) {
                (Some(a), Some(b)) if a != b => Some(format!("{name} was {a}, is now {b}")),
                _ => None,
            }
        }
        both("size in bytes", &self.bytes, &now.bytes)
            .or_else(|| both("hash", &self.hash, &now.hash))
            .or_else(|| both("item count", &self.items, &now.items))
    }
}

/// The first record: what the journal is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format's version ([`JOURNAL_VERSION`]).
    pub v: u32,
    /// A random id, part of every idempotency key the journal hands out.
    pub id: String,
    /// Events or users.
    pub resource: Resource,
    /// Items per batch: a resume must cut the input the same way.
    pub batch_size: usize,
    /// The input.
    pub input: Fingerprint,
}

impl Header {
    /// A header for a new import, with a fresh random id.
    pub fn new(resource: Resource, batch_size: usize, input: Fingerprint) -> Self {
        let key = IdempotencyKey::generate();
        let id: String = key
            .as_str()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        Self {
            v: JOURNAL_VERSION,
            id,
            resource,
            batch_size,
            input,
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JournalRecord {
    /// What the journal is for; always first.
    Header(Header),
    /// A batch about to be created: durable before its create is sent.
    Batch {
        /// Its place among the input's batches, from 0.
        i: u64,
        /// The index of its first item in the input, from 0.
        first: u64,
        /// How many items it holds.
        n: usize,
        /// FNV-1a 64 of its create body, hex.
        hash: String,
        /// The idempotency key its create carries, every time.
        key: String,
    },
    /// The create was answered: the job exists.
    Created {
        /// The batch.
        i: u64,
        /// The job.
        job: String,
    },
    /// The job ended and its pages were read: nothing more to do for this batch.
    Finished {
        /// The batch.
        i: u64,
        /// The job.
        job: String,
        /// `COMPLETED` or `FAILED`.
        status: String,
        /// Items imported, from the final status.
        imported: u64,
        /// Items that failed, from the final status.
        failed: u64,
    },
}

/// Why a journal cannot be used, or a resume cannot go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// A line in the middle is damaged (1-based line number).
    Corrupt {
        /// The line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Written by another version of the format.
    Version(u32),
    /// The input, or how it is cut, is not the one the journal is for.
    Changed(String),
    /// The sink could not make a record durable: nothing that needed it was sent.
    Write(std::io::Error),
    /// The journal could not be opened or read.
    Read(std::io::Error),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt { line, reason } => {
                write!(f, "the journal is damaged at line {line} ({reason})")
            }
            Self::Version(v) => write!(
                f,
                "the journal is format version {v}; this build reads version {JOURNAL_VERSION}"
            ),
            Self::Changed(what) => write!(
                f,
                "the input is not the one this journal is for: {what}; refusing to continue \
                 onto different data"
            ),
            Self::Write(e) => write!(f, "could not write the journal: {e}"),
            Self::Read(e) => write!(f, "could not read the journal: {e}"),
        }
    }
}

impl std::error::Error for JournalError {}

/// Where a driver makes records durable: append, flush and sync before returning `Ok`.
pub trait JournalSink {
    /// Makes `record` durable.
    ///
    /// # Errors
    /// Any I/O error: the driver then sends nothing that needed the record.
    fn append(&mut self, record: &JournalRecord) -> std::io::Result<()>;
}

/// A boxed sink, so a driver can hold any sink under one type (`Box<dyn JournalSink + Send>`).
impl<S: JournalSink + ?Sized> JournalSink for Box<S> {
    fn append(&mut self, record: &JournalRecord) -> std::io::Result<()> {
        (**self).append(record)
    }
}

/// Records kept in memory: for tests, or a caller that persists them its own way.
impl JournalSink for Vec<JournalRecord> {
    fn append(&mut self, record: &JournalRecord) -> std::io::Result<()> {
        self.push(record.clone());
        Ok(())
    }
}

/// One record as a line of the journal, `\n` included.
pub fn encode(record: &JournalRecord) -> String {
    let json = serde_json::to_string(record).expect("journal records serialise");
    format!("{:016x} {json}\n", fnv1a64(json.as_bytes()))
}

/// A journal's records, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The good records, in order.
    pub records: Vec<JournalRecord>,
    /// How many bytes they take: a writer truncates the file to this before appending, so
    /// a torn tail never sits between good records.
    pub valid_len: usize,
    /// Whether a torn last line was dropped.
    pub torn: bool,
}

/// Reads a journal's bytes: drops a torn last line, refuses a damaged one elsewhere.
///
/// # Errors
/// [`JournalError::Corrupt`] or [`JournalError::Version`]; never panics.
pub fn decode(bytes: &[u8]) -> Result<Decoded, JournalError> {
    let mut records = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < bytes.len() {
        line_no += 1;
        let end = bytes[pos..].iter().position(|&b| b == b'\n');
        let (line, next) = match end {
            Some(n) => (&bytes[pos..pos + n], pos + n + 1),
            None => (&bytes[pos..], bytes.len()),
        };
        let parsed = parse_line(line).filter(|_| end.is_some());
        match parsed {
            Ok(record) => {
                if let JournalRecord::Header(h) = &record
                    && h.v != JOURNAL_VERSION
                {
                    return Err(JournalError::Version(h.v));
                }
                if records.is_empty() != matches!(record, JournalRecord::Header(_)) {
                    return Err(JournalError::Corrupt {
                        line: line_no,
                        reason: "the header must come first, once".into(),
                    });
                }
                records.push(record);
                pos = next;
            }
            // The last line: a write cut short.
            Err(_) if next >= bytes.len() => {
                return Ok(Decoded {
                    records,
                    valid_len: pos,
                    torn: true,
                });
            }
            Err(reason) => {
                return Err(JournalError::Corrupt {
                    line: line_no,
                    reason,
                });
            }
        }
    }
    Ok(Decoded {
        records,
        valid_len: pos,
        torn: false,
    })
}

trait ResultExt<T> {
    fn filter(self, ok: impl FnOnce(&T) -> bool) -> Result<T, String>;
}

impl<T> ResultExt<T> for Result<T, String> {
    fn filter(self, ok: impl FnOnce(&T) -> bool) -> Result<T, String> {
        match self {
            Ok(v) if ok(&v) => Ok(v),
            Ok(_) => Err("no end of line".into()),
            Err(e) => Err(e),
        }
    }
}

fn parse_line(line: &[u8]) -> Result<JournalRecord, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (sum, json) = text
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_owned())?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| "bad checksum".to_owned())?;
    if sum != fnv1a64(json.as_bytes()) {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("not a record: {e}"))
}

/// Where one batch stands, as the journal says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchState {
    /// Its place among the input's batches, from 0.
    pub index: u64,
    /// The index of its first item in the input.
    pub first_item: u64,
    /// How many items it holds.
    pub items: usize,
    /// FNV-1a 64 of its body, hex.
    #[serde(skip)]
    pub hash: String,
    /// Its idempotency key.
    #[serde(skip)]
    pub key: String,
    /// Its job, once created.
    pub job: Option<String>,
    /// How it ended, once finished and read.
    pub finished: Option<Finished>,
}

/// A batch's final counts, from its final status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finished {
    /// `COMPLETED` or `FAILED`.
    pub status: String,
    /// Items imported.
    pub imported: u64,
    /// Items that failed.
    pub failed: u64,
}

/// What to do with the next batch read from the input.
#[derive(Debug)]
pub enum Admit {
    /// Finished before: nothing to send.
    Skip {
        /// The batch.
        index: u64,
    },
    /// Created before: wait for the job and read it, never create it again.
    Wait {
        /// The batch.
        index: u64,
        /// Its job.
        job: JobRef,
    },
    /// Create it: first make `record` durable (when there is one: a batch planned before
    /// has its record already), then hand `batch` to the set.
    Create {
        /// The batch.
        index: u64,
        /// The batch under its journaled key.
        batch: Batch,
        /// To append, synced, before the batch goes to the set.
        record: Option<JournalRecord>,
    },
}

/// The journal's view of one import: what each batch is owed, and the records to write as
/// the import moves. One per import; [`Ledger::new`] for a fresh journal, [`Ledger::replay`]
/// for a journal read back.
#[derive(Debug, Clone)]
pub struct Ledger {
    header: Header,
    batches: BTreeMap<u64, BatchState>,
    next_index: u64,
    jobs: HashMap<JobKey, u64>,
    resumed: bool,
}

impl Ledger {
    /// A fresh journal's ledger; write [`Ledger::header`] first.
    pub fn new(header: Header) -> Self {
        Self {
            header,
            batches: BTreeMap::new(),
            next_index: 0,
            jobs: HashMap::new(),
            resumed: false,
        }
    }

    /// The ledger of a journal read back, checked against what this run will read:
    /// `expected` is this run's header (its id is ignored).
    ///
    /// # Errors
    /// [`JournalError::Changed`] when the resource, batch size or input differ, or
    /// [`JournalError::Corrupt`] when the records contradict themselves.
    pub fn replay(records: Vec<JournalRecord>, expected: &Header) -> Result<Self, JournalError> {
        let mut records = records.into_iter();
        let Some(JournalRecord::Header(header)) = records.next() else {
            return Ok(Self::new(expected.clone()));
        };
        if header.resource != expected.resource {
            return Err(JournalError::Changed(format!(
                "the journal is for {}, not {}",
                header.resource.as_str(),
                expected.resource.as_str()
            )));
        }
        if header.batch_size != expected.batch_size {
            return Err(JournalError::Changed(format!(
                "the journal cut batches of {} items, not {}",
                header.batch_size, expected.batch_size
            )));
        }
        if let Some(what) = header.input.differs(&expected.input) {
            return Err(JournalError::Changed(what));
        }
        let mut ledger = Self::new(header);
        ledger.resumed = true;
        for (n, record) in records.enumerate() {
            let line = n + 2;
            let bad = |reason: &str| JournalError::Corrupt {
                line,
                reason: reason.to_owned(),
            };
            match record {
                JournalRecord::Header(_) => return Err(bad("a second header")),
                JournalRecord::Batch {
                    i,
                    first,
                    n,
                    hash,
                    key,
                } => {
                    if ledger.batches.contains_key(&i) {
                        return Err(bad("a batch planned twice"));
                    }
                    ledger.batches.insert(
                        i,
                        BatchState {
                            index: i,
                            first_item: first,
                            items: n,
                            hash,
                            key,
                            job: None,
                            finished: None,
                        },
                    );
                }
                JournalRecord::Created { i, job } => {
                    let state = ledger
                        .batches
                        .get_mut(&i)
                        .ok_or_else(|| bad("a job for a batch never planned"))?;
                    state.job = Some(job);
                }
                JournalRecord::Finished {
                    i,
                    job,
                    status,
                    imported,
                    failed,
                } => {
                    let state = ledger
                        .batches
                        .get_mut(&i)
                        .ok_or_else(|| bad("a batch finished but never planned"))?;
                    state.job = Some(job);
                    state.finished = Some(Finished {
                        status,
                        imported,
                        failed,
                    });
                }
            }
        }
        Ok(ledger)
    }

    /// The header record, to write first in a fresh journal.
    pub fn header(&self) -> JournalRecord {
        JournalRecord::Header(self.header.clone())
    }

    /// Items per batch: the input must be cut this way.
    pub fn batch_size(&self) -> usize {
        self.header.batch_size
    }

    /// The journal's id.
    pub fn id(&self) -> &str {
        &self.header.id
    }

    /// Whether this ledger came from a journal read back.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Every batch the journal knows, in input order.
    pub fn batches(&self) -> impl Iterator<Item = &BatchState> {
        self.batches.values()
    }

    /// The batch of a job in the set.
    pub fn batch_of(&self, key: JobKey) -> Option<u64> {
        self.jobs.get(&key).copied()
    }

    /// The idempotency key of batch `index` with body hash `hash`: derived, so a record's
    /// key is a function of what it stands for. Only the id's first 64 visible ASCII
    /// characters count (all of a generated one), so a header read back or built by hand
    /// with any id still makes a valid key.
    fn key_for(&self, index: u64, hash: &str) -> IdempotencyKey {
        let id: String = self
            .header
            .id
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        IdempotencyKey::new(format!("fsb1-{id}-{index}-{hash}"))
            .expect("at most 107 visible ASCII characters make a valid key")
    }

    /// Decides what to do with the next batch read from the input (batches come in input
    /// order, cut at the header's batch size).
    ///
    /// # Errors
    /// [`JournalError::Changed`] when the batch is not the one journaled at its place.
    pub fn admit(&mut self, batch: Batch) -> Result<Admit, JournalError> {
        let index = self.next_index;
        let hash = format!("{:016x}", fnv1a64(batch.body()));
        if let Some(known) = self.batches.get(&index) {
            if known.hash != hash
                || known.first_item != batch.first_item()
                || known.items != batch.len()
            {
                return Err(JournalError::Changed(format!(
                    "batch {index} (items {} to {}) differs from the one sent before",
                    batch.first_item() + 1,
                    batch.first_item() + batch.len() as u64
                )));
            }
            self.next_index += 1;
            if known.finished.is_some() {
                return Ok(Admit::Skip { index });
            }
            if let Some(job) = &known.job
                && let Ok(id) = JobId::new(job)
            {
                return Ok(Admit::Wait {
                    index,
                    job: JobRef::new(self.header.resource, id),
                });
            }
            let key =
                IdempotencyKey::new(known.key.clone()).map_err(|_| JournalError::Corrupt {
                    line: 0,
                    reason: format!("batch {index} has an unusable key"),
                })?;
            return Ok(Admit::Create {
                index,
                batch: batch.with_key(key),
                record: None,
            });
        }
        self.next_index += 1;
        let key = self.key_for(index, &hash);
        let record = JournalRecord::Batch {
            i: index,
            first: batch.first_item(),
            n: batch.len(),
            hash: hash.clone(),
            key: key.as_str().to_owned(),
        };
        self.batches.insert(
            index,
            BatchState {
                index,
                first_item: batch.first_item(),
                items: batch.len(),
                hash,
                key: key.as_str().to_owned(),
                job: None,
                finished: None,
            },
        );
        Ok(Admit::Create {
            index,
            batch: batch.with_key(key),
            record: Some(record),
        })
    }

    /// Ties batch `index` to its job's key in the set (after `add_batch` or `add_job`).
    pub fn bind(&mut self, key: JobKey, index: u64) {
        self.jobs.insert(key, index);
    }

    /// The record an event calls for, if any: `Created` on a create's answer, `Finished`
    /// when a job ended and was read. Append it after the caller handled the events before
    /// it (the failed items written, say).
    pub fn on_event<T>(&mut self, key: JobKey, event: &Event<T>) -> Option<JournalRecord> {
        let index = *self.jobs.get(&key)?;
        let state = self.batches.get_mut(&index)?;
        match event {
            Event::Created(job) => {
                if state.job.as_deref() == Some(job.id.as_str()) {
                    return None;
                }
                state.job = Some(job.id.to_string());
                Some(JournalRecord::Created {
                    i: index,
                    job: job.id.to_string(),
                })
            }
            Event::Done(Outcome::Finished(status))
                if matches!(status.job.status, JobState::Completed | JobState::Failed) =>
            {
                let job = state.job.clone().unwrap_or_else(|| status.job.id.clone());
                let finished = Finished {
                    status: status.job.status.to_string(),
                    imported: status.imports,
                    failed: status.errors,
                };
                state.job = Some(job.clone());
                state.finished = Some(finished.clone());
                Some(JournalRecord::Finished {
                    i: index,
                    job,
                    status: finished.status,
                    imported: finished.imported,
                    failed: finished.failed,
                })
            }
            _ => None,
        }
    }

    /// Items imported and failed in the finished batches, from their final statuses.
    pub fn totals(&self) -> (u64, u64) {
        self.batches
            .values()
            .filter_map(|b| b.finished.as_ref())
            .fold((0, 0), |(i, f), b| {
                // A journal edited by hand may hold any counts: held at the top, not wrapped.
                (i.saturating_add(b.imported), f.saturating_add(b.failed))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batcher, EventRequest};

    fn batches(n: usize, size: usize) -> Vec<Batch> {
        let mut batcher = Batcher::<EventRequest>::new(size);
        let mut out = Vec::new();
        for i in 0..n {
            let item = EventRequest {
                name: format!("e{i}"),
                ..EventRequest::default()
            };
            out.extend(batcher.push(&item).unwrap());
        }
        out.extend(batcher.finish());
        out
    }

    fn header() -> Header {
        Header::new(
            Resource::Events,
            2,
            Fingerprint {
                bytes: Some(10),
                ..Fingerprint::default()
            },
        )
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut ledger = Ledger::new(header());
        let mut text = encode(&ledger.header());
        for batch in batches(3, 2) {
            if let Admit::Create {
                record: Some(r), ..
            } = ledger.admit(batch).unwrap()
            {
                text.push_str(&encode(&r));
            }
        }
        let whole = decode(text.as_bytes()).unwrap();
        assert_eq!(whole.records.len(), 3);
        assert!(!whole.torn);
        for cut in 1..text.len() {
            let Ok(part) = decode(&text.as_bytes()[..cut]) else {
                panic!("a cut at {cut} is a torn tail, not corruption");
            };
            assert!(part.records.len() <= 3);
            assert_eq!(part.torn, !text[..cut].ends_with('\n'));
        }
    }

    #[test]
    fn a_damaged_middle_line_is_refused_and_a_new_version_too() {
        let ledger = Ledger::new(header());
        let mut text = encode(&ledger.header());
        text.push_str(&encode(&JournalRecord::Created {
            i: 0,
            job: "j".into(),
        }));
        let mut bad = text.clone().into_bytes();
        bad[30] ^= 1;
        assert!(matches!(
            decode(&bad),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
        let mut h = header();
        h.v = 9;
        assert!(matches!(
            decode(encode(&JournalRecord::Header(h)).as_bytes()),
            Err(JournalError::Version(9))
        ));
        assert!(decode(b"\xff\xfe garbage\nmore\n").is_err());
    }

    #[test]
    fn resume_skips_waits_recreates_with_the_same_key_and_plans_the_rest() {
        let mut ledger = Ledger::new(header());
        let mut journal = vec![ledger.header()];
        let mut keys = Vec::new();
        for (n, batch) in batches(7, 2).into_iter().take(3).enumerate() {
            let Admit::Create {
                batch,
                record: Some(r),
                ..
            } = ledger.admit(batch).unwrap()
            else {
                panic!()
            };
            keys.push(batch.key().clone());
            journal.push(r);
            ledger.bind(JobKey::new(n as u64), n as u64);
        }
        journal.push(JournalRecord::Created {
            i: 0,
            job: "a".into(),
        });
        journal.push(JournalRecord::Finished {
            i: 0,
            job: "a".into(),
            status: "COMPLETED".into(),
            imported: 2,
            failed: 0,
        });
        journal.push(JournalRecord::Created {
            i: 1,
            job: "b".into(),
        });
        let mut resumed = Ledger::replay(journal.clone(), &header()).unwrap();
        let plan: Vec<Admit> = batches(7, 2)
            .into_iter()
            .map(|b| resumed.admit(b).unwrap())
            .collect();
        assert!(matches!(plan[0], Admit::Skip { index: 0 }));
        assert!(matches!(&plan[1], Admit::Wait { job, .. } if job.id.as_str() == "b"));
        assert!(
            matches!(&plan[2], Admit::Create { batch, record: None, .. } if batch.key() == &keys[2])
        );
        assert!(matches!(
            &plan[3],
            Admit::Create {
                record: Some(_),
                ..
            }
        ));
        assert_eq!(resumed.totals(), (2, 0));

        // Different data at a journaled place is refused.
        let mut changed = Ledger::replay(journal.clone(), &header()).unwrap();
        changed.admit(batches(7, 2).remove(0)).unwrap();
        let x = EventRequest {
            name: "x".into(),
            ..EventRequest::default()
        };
        let mut batcher = Batcher::new(2);
        let b: Vec<Batch> = (0..4).filter_map(|_| batcher.push(&x).unwrap()).collect();
        let b = b[1].clone();
        assert!(matches!(changed.admit(b), Err(JournalError::Changed(_))));
        let mut bigger = header();
        bigger.input.bytes = Some(11);
        assert!(matches!(
            Ledger::replay(journal.clone(), &bigger),
            Err(JournalError::Changed(_))
        ));
        let mut cut = header();
        cut.batch_size = 3;
        assert!(Ledger::replay(journal, &cut).is_err());
    }

    /// A header id with a space made `admit` panic (found by the `journal` fuzz target), and
    /// counts near `u64::MAX` wrapped the totals (found while fixing it).
    #[test]
    fn a_hand_edited_journal_neither_panics_nor_wraps() {
        let mut odd = header();
        odd.id = "an id with spaces and \u{e9}".into();
        let head = JournalRecord::Header(odd.clone());
        let batch = |i| JournalRecord::Batch {
            i,
            first: 0,
            n: 1,
            hash: "0".into(),
            key: "k".into(),
        };
        let finished = |i, imported, failed| JournalRecord::Finished {
            i,
            job: "j".into(),
            status: "COMPLETED".into(),
            imported,
            failed,
        };
        // A batch finished but never planned: named, not a panic.
        assert!(matches!(
            Ledger::replay(vec![head.clone(), finished(7, u64::MAX, 1)], &odd),
            Err(JournalError::Corrupt { line: 2, .. })
        ));
        let mut ledger = Ledger::replay(vec![head.clone()], &odd).unwrap();
        let Admit::Create { batch: created, .. } = ledger.admit(batches(1, 2).remove(0)).unwrap()
        else {
            panic!("a fresh batch is created");
        };
        assert!(
            created
                .key()
                .as_str()
                .starts_with("fsb1-anidwithspacesand-0-")
        );
        let planned = vec![
            head,
            batch(7),
            batch(8),
            finished(8, 2, u64::MAX),
            finished(7, u64::MAX, 1),
        ];
        let ledger = Ledger::replay(planned, &odd).unwrap();
        assert_eq!(ledger.totals(), (u64::MAX, u64::MAX));
    }
}
