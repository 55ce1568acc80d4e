//! The result files of an import (failed items, and imported ones when asked), written
//! exactly once across crashes.
//!
//! A batch whose pages were being read when the process died is read again, in full, by the
//! next run. So a batch's lines first go to a part file of its own, and reach the result
//! file whole, in one append, when the batch ends. Before each append a marker (synced)
//! names the batch and the result files' lengths; the journal's `Finished` record for the
//! batch follows the append. On the next run, a marker whose batch the journal does not
//! hold as finished means that append may be cut short or may be about to be made again:
//! the files are cut back to the lengths it names.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The result files and the parts of the batches being read.
pub struct Results {
    errors: Output,
    imports: Option<Output>,
    marker: PathBuf,
    parts: PathBuf,
}

/// One result file, and a part per batch being read.
struct Output {
    path: PathBuf,
    /// `errors` or `imports`: the part files' suffix.
    kind: &'static str,
    parts: HashMap<u64, Part>,
}

struct Part {
    path: PathBuf,
    out: BufWriter<File>,
    lines: u64,
}

/// The append in progress: its batch, and each file's length before it.
#[derive(Serialize, Deserialize)]
struct Marker {
    batch: u64,
    errors: u64,
    imports: Option<u64>,
}

impl Results {
    /// The result files next to `state` (the journal's path): first undoes an append that
    /// a crash may have cut short, unless `finished` says its batch was journaled as done.
    pub fn open(
        errors: PathBuf,
        imports: Option<PathBuf>,
        state: &Path,
        finished: impl Fn(u64) -> bool,
    ) -> io::Result<Self> {
        let results = Self {
            errors: Output::new(errors, "errors"),
            imports: imports.map(|path| Output::new(path, "imports")),
            marker: state.with_extension("results"),
            parts: state.with_extension("parts"),
        };
        results.recover(finished)?;
        // Parts left by an earlier run belong to batches that will be read again.
        match std::fs::remove_dir_all(&results.parts) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(results)
    }

    /// Adds a failed item of `batch`.
    pub fn failed<V: Serialize>(
        &mut self,
        batch: u64,
        items: impl IntoIterator<Item = V>,
    ) -> io::Result<()> {
        self.errors.write(&self.parts, batch, items)
    }

    /// Adds imported items of `batch`, when they are asked for.
    pub fn imported<V: Serialize>(
        &mut self,
        batch: u64,
        items: impl IntoIterator<Item = V>,
    ) -> io::Result<()> {
        match &mut self.imports {
            Some(imports) => imports.write(&self.parts, batch, items),
            None => Ok(()),
        }
    }

    /// `batch` is finished: its lines go to the result files, whole and synced, before
    /// the journal records it. Gives how many failed items were added.
    pub fn commit(&mut self, batch: u64) -> io::Result<u64> {
        let marker = Marker {
            batch,
            errors: file_len(&self.errors.path)?,
            imports: self
                .imports
                .as_ref()
                .map(|i| file_len(&i.path))
                .transpose()?,
        };
        write_synced(&self.marker, &serde_json::to_vec(&marker)?)?;
        let added = self.errors.append(batch)?;
        if let Some(imports) = &mut self.imports {
            imports.append(batch)?;
        }
        Ok(added)
    }

    /// `batch` stopped short: its lines are dropped, as the next run reads them again.
    pub fn discard(&mut self, batch: u64) {
        for output in std::iter::once(&mut self.errors).chain(self.imports.as_mut()) {
            if let Some(part) = output.parts.remove(&batch) {
                drop(part.out);
                let _ = std::fs::remove_file(part.path);
            }
        }
    }

    fn recover(&self, finished: impl Fn(u64) -> bool) -> io::Result<()> {
        let marker: Marker = match std::fs::read(&self.marker) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(e.io_error_kind().unwrap_or(io::ErrorKind::InvalidData), e)
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !finished(marker.batch) {
            cut_back(&self.errors.path, marker.errors)?;
            if let (Some(imports), Some(len)) = (&self.imports, marker.imports) {
                cut_back(&imports.path, len)?;
            }
        }
        std::fs::remove_file(&self.marker)
    }
}

impl Output {
    fn new(path: PathBuf, kind: &'static str) -> Self {
        Self {
            path,
            kind,
            parts: HashMap::new(),
        }
    }

    fn write<V: Serialize>(
        &mut self,
        dir: &Path,
        batch: u64,
        items: impl IntoIterator<Item = V>,
    ) -> io::Result<()> {
        let part = match self.parts.entry(batch) {
            std::collections::hash_map::Entry::Occupied(part) => part.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(format!("batch-{batch}.{}.jsonl", self.kind));
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                let out = BufWriter::new(file);
                slot.insert(Part {
                    path,
                    out,
                    lines: 0,
                })
            }
        };
        for item in items {
            serde_json::to_writer(&mut part.out, &item)?;
            part.out.write_all(b"\n")?;
            part.lines += 1;
        }
        Ok(())
    }

    /// Appends `batch`'s part, if it has one, and syncs the file.
    fn append(&mut self, batch: u64) -> io::Result<u64> {
        let Some(part) = self.parts.remove(&batch) else {
            return Ok(0);
        };
        let mut part_file = part
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = File::options().create(true).append(true).open(&self.path)?;
        io::Seek::rewind(&mut part_file)?;
        io::copy(&mut part_file, &mut out)?;
        out.sync_data()?;
        drop(part_file);
        std::fs::remove_file(&part.path)?;
        Ok(part.lines)
    }
}

fn file_len(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Cuts `path` back to `len` bytes, if it is longer.
fn cut_back(path: &Path, len: u64) -> io::Result<()> {
    if file_len(path)? > len {
        let file = File::options().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_data()?;
    }
    Ok(())
}

/// Replaces `path` with `bytes`, synced: a crash leaves the old file or the new, whole.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("results.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fsbatch-results-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_batch_reaches_the_file_only_when_committed() {
        let dir = scratch("commit");
        let errors = dir.join("e.jsonl");
        let mut results = Results::open(errors.clone(), None, &dir.join("j"), |_| false).unwrap();
        results.failed(0, ["a", "b"]).unwrap();
        results.failed(1, ["x"]).unwrap();
        results.failed(0, ["c"]).unwrap();
        assert!(lines(&errors).is_empty());
        assert_eq!(results.commit(0).unwrap(), 3);
        assert_eq!(lines(&errors), [r#""a""#, r#""b""#, r#""c""#]);
        results.discard(1);
        assert_eq!(
            results.commit(1).unwrap(),
            0,
            "a discarded batch adds nothing"
        );
        assert_eq!(lines(&errors).len(), 3);
    }

    #[test]
    fn an_append_not_journaled_as_finished_is_cut_back_on_the_next_run() {
        let dir = scratch("recover");
        let (errors, imports, state) = (dir.join("e.jsonl"), dir.join("i.jsonl"), dir.join("j"));
        let open = |finished: fn(u64) -> bool| {
            Results::open(errors.clone(), Some(imports.clone()), &state, finished).unwrap()
        };
        let mut results = open(|_| false);
        results.failed(0, ["e0"]).unwrap();
        results.imported(0, ["i0"]).unwrap();
        results.commit(0).unwrap();
        results.failed(1, ["e1"]).unwrap();
        results.imported(1, ["i1"]).unwrap();
        results.commit(1).unwrap();
        // The process died before batch 1's Finished record: its lines go, batch 0's stay.
        drop(results);
        let mut results = open(|batch| batch == 0);
        assert_eq!(lines(&errors), [r#""e0""#]);
        assert_eq!(lines(&imports), [r#""i0""#]);
        // Read again in full, it is added once.
        results.failed(1, ["e1"]).unwrap();
        results.commit(1).unwrap();
        drop(results);
        // Journaled as finished this time: nothing is cut.
        drop(open(|_| true));
        assert_eq!(lines(&errors), [r#""e0""#, r#""e1""#]);
    }

    #[test]
    fn a_torn_append_is_cut_back() {
        let dir = scratch("torn");
        let (errors, state) = (dir.join("e.jsonl"), dir.join("j"));
        let mut results = Results::open(errors.clone(), None, &state, |_| false).unwrap();
        results.failed(0, ["whole"]).unwrap();
        results.commit(0).unwrap();
        drop(results);
        // Batch 1's append began (its marker synced) and was cut mid-line.
        let before = file_len(&errors).unwrap();
        write_synced(
            &state.with_extension("results"),
            format!(r#"{{"batch":1,"errors":{before}}}"#).as_bytes(),
        )
        .unwrap();
        File::options()
            .append(true)
            .open(&errors)
            .unwrap()
            .write_all(b"\"ha")
            .unwrap();
        Results::open(errors.clone(), None, &state, |batch| batch == 0).unwrap();
        assert_eq!(lines(&errors), [r#""whole""#]);
    }

    #[test]
    fn parts_left_by_an_earlier_run_are_dropped() {
        let dir = scratch("parts");
        let (errors, state) = (dir.join("e.jsonl"), dir.join("j"));
        let mut results = Results::open(errors.clone(), None, &state, |_| false).unwrap();
        results.failed(4, ["read before the crash"]).unwrap();
        drop(results);
        let mut results = Results::open(errors.clone(), None, &state, |_| false).unwrap();
        assert!(!state.with_extension("parts").exists());
        results.failed(4, ["read again"]).unwrap();
        results.commit(4).unwrap();
        assert_eq!(lines(&errors), [r#""read again""#]);
    }
}
