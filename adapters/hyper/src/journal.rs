//! [`FileJournal`]: the core's journal records in a file, each appended, flushed and synced
//! before the call that needs it returns.
//!
//! # Why this file is in both adapters
//! The core is sans-IO, so the file cannot live there; one adapter re-exporting the other's
//! would make every hyper user build ureq (or the reverse); a third crate for ninety lines
//! is more to publish than to read. So `fullstory-batch-ureq` and `fullstory-batch-hyper`
//! each hold this same file, byte for byte (`examples/tests/cli.rs` checks that they do).
//! It uses only `std::fs`: under hyper an append blocks the calling task for one write and
//! one `sync_data`, once per batch and twice more per job, which is the point (the create
//! must not go out before its record is on the disk).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fullstory_batch::journal::{
    Header, JournalError, JournalRecord, JournalSink, Ledger, decode, encode,
};

/// A journal file: one line a record (see [`fullstory_batch::journal`] for the format).
/// Each [`JournalSink::append`] writes the whole line, then `sync_data`s, so a record is on
/// the disk before the create it guards is sent.
#[derive(Debug)]
pub struct FileJournal {
    file: File,
    path: PathBuf,
}

impl FileJournal {
    /// Opens the journal at `path` (creating it and its directory if need be), reads back
    /// its records, and checks them against this run's `expected` header: the ledger to
    /// import with, and the journal to append to. A torn last record is cut off the file;
    /// a fresh journal gets its header, synced.
    ///
    /// # Errors
    /// [`JournalError::Read`]/[`JournalError::Write`] for I/O, else as [`decode`] and
    /// [`Ledger::replay`]: a damaged journal, another version, or a changed input.
    pub fn open(path: &Path, expected: &Header) -> Result<(Ledger, Self), JournalError> {
        let fresh = !path.exists();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(JournalError::Write)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(JournalError::Read)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(JournalError::Read)?;
        let decoded = decode(&bytes)?;
        if decoded.valid_len < bytes.len() {
            file.set_len(decoded.valid_len as u64)
                .and_then(|()| file.sync_data())
                .map_err(JournalError::Write)?;
        }
        file.seek(SeekFrom::End(0)).map_err(JournalError::Write)?;
        let ledger = Ledger::replay(decoded.records, expected)?;
        let mut journal = Self {
            file,
            path: path.to_owned(),
        };
        if !ledger.resumed() {
            journal
                .append(&ledger.header())
                .map_err(JournalError::Write)?;
            if fresh {
                sync_dir(path);
            }
        }
        Ok((ledger, journal))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl JournalSink for FileJournal {
    fn append(&mut self, record: &JournalRecord) -> std::io::Result<()> {
        self.file.write_all(encode(record).as_bytes())?;
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// Makes a new file's directory entry durable too (a power loss could otherwise lose the
/// whole file). Best effort: not every platform opens directories.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}
