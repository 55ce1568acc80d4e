//! `fsbatch import FILE`: a file of any size, streamed batch by batch, exactly once across
//! crashes (a journal written ahead of every create), one result.
//!
//! 1. A seekable file is read once to check every item (nothing is sent if one is bad) and
//!    to count them; standard input is checked as it is read (see the README for what is
//!    sent then). A gzip input is decompressed as it is read, so a file twice.
//! 2. The journal (default under `$XDG_STATE_HOME/fsbatch/`, or `--journal`) is opened and
//!    replayed: the core's [`Ledger`] decides, batch by batch, what to skip, wait on,
//!    create again under its key, or plan.
//! 3. The input is read again, cut into batches, each journaled before its create.
//! 4. Counts come from the final statuses; failed items go to the errors file, imported
//!    items only to `--imports-out`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fullstory_batch::journal::{Fingerprint, Header, JournalError, Ledger, fnv1a64};
use fullstory_batch::{
    BatchItem, EventRequest, JobKey, JobState, MAX_BATCH_ITEMS, Pages, Policy, StopReason,
    UserRequest, ValidationError,
};
use fullstory_batch_ureq::{Event, FileJournal, Outcome};
use serde_json::{Value, json};

use crate::args::Global;
use crate::input::{self, Counter, Place};
use crate::output::{Exit, stopped_json, stopped_text};
use crate::progress::ImportProgress;
use crate::results::Results;

/// How many jobs an import keeps in progress at once: well under the org's limit of 100,
/// so other importers in the same organisation keep room.
const MAX_IN_PROGRESS: usize = 2;

/// What `fsbatch import` was asked.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    pub file: PathBuf,
    pub timeout: Duration,
    pub json: bool,
    pub journal: Option<PathBuf>,
    pub imports_out: Option<PathBuf>,
    pub errors_out: Option<PathBuf>,
    pub batch_size: usize,
}

pub fn import_file(global: &Global, args: &ImportArgs) -> Exit {
    let started = Instant::now();
    let mut report = Report::new(args);
    let exit = if global.users {
        import_typed::<UserRequest>(global, args, started, &mut report)
    } else {
        import_typed::<EventRequest>(global, args, started, &mut report)
    };
    report.print(exit, args.json);
    exit
}

/// The one result of an import, printed once on every path (as one JSON object with
/// `--json`), and kept up to date for Ctrl-C.
struct Report {
    input: String,
    result: &'static str,
    error: Option<Value>,
    items_total: Option<u64>,
    items_read: u64,
    batches: Vec<Value>,
    imports: u64,
    errors: u64,
    journal: Option<PathBuf>,
    errors_file: Option<PathBuf>,
    errors_written: u64,
    imports_file: Option<PathBuf>,
    todo: Option<String>,
    resume: Option<String>,
}

impl Report {
    fn new(args: &ImportArgs) -> Self {
        Self {
            input: args.file.display().to_string(),
            result: "error",
            error: None,
            items_total: None,
            items_read: 0,
            batches: Vec::new(),
            imports: 0,
            errors: 0,
            journal: None,
            errors_file: None,
            errors_written: 0,
            imports_file: args.imports_out.clone(),
            todo: None,
            resume: None,
        }
    }

    fn fail(&mut self, kind: &str, message: String) {
        self.error = Some(json!({ "kind": kind, "message": message }));
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "result": self.result,
            "input": self.input,
            "imports": self.imports,
            "errors": self.errors,
            "items_read": self.items_read,
            "batches": self.batches,
        });
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| json!(p.display().to_string()));
        for (name, value) in [
            ("items_total", self.items_total.map(|n| json!(n))),
            ("journal", path(&self.journal)),
            (
                "errors_file",
                path(&self.errors_file).filter(|_| self.errors_written > 0),
            ),
            ("imports_file", path(&self.imports_file)),
            ("error", self.error.clone()),
            ("todo", self.todo.clone().map(Value::from)),
            ("resume", self.resume.clone().map(Value::from)),
        ] {
            if let Some(value) = value {
                v[name] = value;
            }
        }
        v
    }

    fn text(&self) -> String {
        let mut out = String::new();
        if let Some(error) = &self.error {
            out.push_str(&format!(
                "error: {}\n",
                error["message"].as_str().unwrap_or_default()
            ));
        }
        if !self.batches.is_empty() || self.journal.is_some() {
            out.push_str(&format!(
                "{}: {} imported, {} failed, in {} batch{} ({})\n",
                self.input,
                self.imports,
                self.errors,
                self.batches.len(),
                if self.batches.len() == 1 { "" } else { "es" },
                self.result
            ));
        }
        if let (Some(path), true) = (
            &self.errors_file,
            self.errors_written > 0 || self.errors > 0,
        ) {
            out.push_str(&format!("failed items: {}\n", path.display()));
        }
        if let Some(path) = &self.imports_file {
            out.push_str(&format!("imported items: {}\n", path.display()));
        }
        if let Some(path) = &self.journal {
            out.push_str(&format!("journal: {}\n", path.display()));
        }
        if let Some(todo) = &self.todo {
            out.push_str(&format!("still to do: {todo}\n"));
        }
        if let Some(resume) = &self.resume {
            out.push_str(&format!(
                "to continue, run the same command again:\n  {resume}\n"
            ));
        }
        out
    }

    fn print(&self, exit: Exit, json: bool) {
        if json {
            println!("{}", self.json());
        } else {
            let text = self.text();
            // A summary for people: on stdout when all went well, else with the error.
            if exit == Exit::Ok || exit == Exit::JobFailed {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
        }
    }

    /// What Ctrl-C prints, as of now.
    fn arm_ctrl_c(&self, json: bool) {
        let mut interrupted = Self {
            result: "interrupted",
            ..self.clone_light()
        };
        interrupted.fail(
            "interrupted",
            "interrupted (Ctrl-C); the jobs created go on".into(),
        );
        interrupted.resume = Some(resume_command());
        let stdout = json.then(|| interrupted.json().to_string());
        let text = format!("\n{}", interrupted.text());
        crate::on_ctrl_c_print(text, stdout);
    }

    fn clone_light(&self) -> Self {
        Self {
            input: self.input.clone(),
            result: self.result,
            error: self.error.clone(),
            items_total: self.items_total,
            items_read: self.items_read,
            batches: self.batches.clone(),
            imports: self.imports,
            errors: self.errors,
            journal: self.journal.clone(),
            errors_file: self.errors_file.clone(),
            errors_written: self.errors_written,
            imports_file: self.imports_file.clone(),
            todo: self.todo.clone(),
            resume: None,
        }
    }
}

/// The exact command line of this process, quoted for a shell: the command that continues.
fn resume_command() -> String {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let program = if Path::new(&program)
        .file_name()
        .is_some_and(|n| n == "fsbatch")
    {
        "fsbatch".to_owned()
    } else {
        program
    };
    std::iter::once(program)
        .chain(args)
        .map(|a| crate::shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The journal's default place: `$XDG_STATE_HOME/fsbatch/` (else `~/.local/state/fsbatch/`,
/// else the temporary directory), named after what the import is: the input's canonical
/// path, the resource and the base URL.
fn default_journal(global: &Global, file: &Path) -> PathBuf {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir)
        .join("fsbatch");
    let input = if file == Path::new("-") {
        "-".to_owned()
    } else {
        std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_owned())
            .display()
            .to_string()
    };
    let base = crate::base_url_text(global);
    let what = format!("{input}\n{}\n{base}", crate::resource(global).as_str());
    let stem = Path::new(&input)
        .file_name()
        .map(|n| {
            n.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                "_",
            )
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "stdin".into());
    dir.join(format!("{stem}-{:016x}.journal", fnv1a64(what.as_bytes())))
}

/// Reads the whole file once, checking every item: how many there are, or the first bad
/// one's place and problem. Nothing is kept.
fn validate_all<T: BatchItem>(file: &Path) -> Result<u64, String> {
    let mut items = input::open(file, Counter::default())?;
    let mut n = 0u64;
    loop {
        match items.next_item::<T>() {
            Ok(None) => break,
            Ok(Some((item, place))) => {
                if let Err((field, problem)) = item.validate() {
                    return Err(format!("{place}: `{field}` {problem}"));
                }
                n += 1;
            }
            Err((place, message)) => return Err(format!("{place}: {message}")),
        }
    }
    if n == 0 {
        return Err("no items".into());
    }
    Ok(n)
}

fn import_typed<T: BatchItem>(
    global: &Global,
    args: &ImportArgs,
    started: Instant,
    report: &mut Report,
) -> Exit {
    let file = args.file.as_path();
    let stdin = file == Path::new("-");
    let batch_size = args.batch_size.clamp(1, MAX_BATCH_ITEMS);
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(global, file));
    report.journal = Some(journal_path.clone());
    report.errors_file = Some(
        args.errors_out
            .clone()
            .unwrap_or_else(|| journal_path.with_extension("errors.jsonl")),
    );
    report.arm_ctrl_c(args.json);

    // 1. A file is checked whole before anything is sent.
    let mut fingerprint = Fingerprint::default();
    if !stdin {
        let checked = input::fingerprint(file).and_then(|mut f| {
            progress_note(&format!("checking {}", file.display()));
            f.items = Some(validate_all::<T>(file)?);
            Ok(f)
        });
        match checked {
            Ok(f) => fingerprint = f,
            Err(message) => {
                report.fail("invalid_input", format!("{}: {message}", file.display()));
                report.journal = None;
                return Exit::Usage;
            }
        }
        report.items_total = fingerprint.items;
    }
    let client = match crate::client(global) {
        Ok(client) => client,
        Err(exit) => {
            report.fail(
                "usage",
                "the client could not be configured (see above)".into(),
            );
            report.journal = None;
            return exit;
        }
    };

    // 2. The journal: fresh, or replayed.
    let header = Header::new(crate::resource(global), batch_size, fingerprint);
    let (ledger, journal) = match FileJournal::open(&journal_path, &header) {
        Ok(opened) => opened,
        Err(e) => {
            let hint = match e {
                JournalError::Changed(_)
                | JournalError::Corrupt { .. }
                | JournalError::Version(_) => format!(
                    " (to start a new import of this input, remove {} or pass another --journal)",
                    journal_path.display()
                ),
                _ => String::new(),
            };
            report.fail("journal", format!("{}: {e}{hint}", journal_path.display()));
            return Exit::Usage;
        }
    };
    if ledger.resumed() {
        let known = ledger.batches().count();
        let done = ledger.batches().filter(|b| b.finished.is_some()).count();
        progress_note(&format!(
            "resuming from {}: {done} of {known} journaled batches finished",
            journal_path.display()
        ));
    }

    // 3. The input, read again, batch by batch.
    let read = Counter::default();
    let mut items = match input::open(file, read.clone()) {
        Ok(items) => items,
        Err(message) => {
            report.fail("invalid_input", format!("{}: {message}", file.display()));
            return Exit::Usage;
        }
    };
    let last_place: Rc<Cell<Option<Place>>> = Rc::default();
    let unreadable: Rc<RefCell<Option<String>>> = Rc::default();
    let mut refused = false;
    let items_read = Rc::new(Cell::new(0u64));
    let (place, bad, count) = (
        Rc::clone(&last_place),
        Rc::clone(&unreadable),
        Rc::clone(&items_read),
    );
    let source = std::iter::from_fn(move || match items.next_item::<T>() {
        Ok(Some((item, at))) => {
            place.set(Some(at));
            count.set(count.get() + 1);
            Some(Ok(item))
        }
        Ok(None) => None,
        Err((at, message)) => {
            *bad.borrow_mut() = Some(format!("{at}: {message}"));
            Some(Err(ValidationError::Item {
                index: 0,
                field: "(json)",
                problem: "is not a valid request",
            }))
        }
    });
    let pages = if args.imports_out.is_some() {
        Pages::All
    } else {
        Pages::Errors
    };
    // `--timeout` counts from the command's start: the validating pass spends of it too.
    let policy = Policy::default().with_timeout(args.timeout.saturating_sub(started.elapsed()));
    let opened = Results::open(
        report.errors_file.clone().expect("set above"),
        args.imports_out.clone(),
        &journal_path,
        |i| is_finished(&ledger, i),
    );
    let mut results = match opened {
        Ok(results) => results,
        Err(e) => {
            report.fail("output", format!("could not open the result files: {e}"));
            return Exit::Api;
        }
    };
    let mut run = client
        .import_from(source, batch_size, MAX_IN_PROGRESS, policy)
        .with_pages(pages)
        .with_journal(ledger, journal);

    let total_bytes = (!stdin)
        .then(|| std::fs::metadata(file).map(|m| m.len()).ok())
        .flatten();
    let mut progress = ImportProgress::new(read, total_bytes, report.items_total);
    let mut live: HashMap<JobKey, (u64, u64)> = HashMap::new();
    let mut stops: HashMap<u64, Value> = HashMap::new();
    let mut worst = Exit::Ok;
    let mut deadline = false;

    while let Some((key, event)) = run.next() {
        let batch = run.ledger().and_then(|l| l.batch_of(key));
        let mut changed = false;
        let written = match &event {
            Event::Created(job) => {
                if let Some(i) = batch {
                    progress.line(&format!("batch {}: created job {}", i + 1, job.id));
                }
                changed = true;
                Ok(())
            }
            Event::Progress(snapshot) => {
                if let Some(s) = &snapshot.last_status {
                    live.insert(key, (s.imports, s.errors));
                }
                Ok(())
            }
            Event::Imported(items) => results.imported(journaled(batch), items.iter()),
            Event::Unread(items) => {
                results.imported(journaled(batch), items.iter().map(|i| &i.json))
            }
            Event::Failed(items) => results.failed(journaled(batch), items.iter()),
            Event::Done(outcome) => {
                live.remove(&key);
                changed = true;
                // Only a batch the journal holds as finished is not read again. (A refused
                // input ends as a job of no batch.)
                let ledger = run.ledger().expect("journaled");
                match batch {
                    Some(i)
                        if matches!(outcome, Outcome::Finished(_)) && is_finished(ledger, i) =>
                    {
                        match results.commit(i) {
                            Ok(added) => report.errors_written += added,
                            Err(e) => {
                                report.fail("output", format!("could not write results: {e}"));
                                worst = worst.max(Exit::Api);
                                break;
                            }
                        }
                    }
                    Some(i) => results.discard(i),
                    None => {}
                }
                match outcome {
                    Outcome::Finished(status) => {
                        let failed = status.job.status != JobState::Completed;
                        if failed {
                            worst = worst.max(Exit::JobFailed);
                        }
                        if let Some(i) = batch {
                            progress.line(&format!(
                                "batch {}: {} {}, {} imported, {} failed",
                                i + 1,
                                status.job.id,
                                status.job.status,
                                status.imports,
                                status.errors
                            ));
                        }
                    }
                    Outcome::Stopped(stopped) => {
                        let exit = match &stopped.reason {
                            StopReason::DeadlineExceeded => Exit::Deadline,
                            StopReason::InvalidInput(_) => Exit::Usage,
                            _ => Exit::Api,
                        };
                        worst = worst.max(exit);
                        match (&stopped.reason, batch) {
                            (StopReason::InvalidInput(invalid), _) => {
                                refused = true;
                                let message = unreadable.borrow_mut().take().unwrap_or_else(|| {
                                    let at = last_place
                                        .get()
                                        .map_or_else(|| "an item".to_owned(), |p| p.to_string());
                                    match invalid {
                                        ValidationError::Item { field, problem, .. } => {
                                            format!("{at}: `{field}` {problem}")
                                        }
                                        other => format!("{at}: {other}"),
                                    }
                                });
                                report.fail(
                                    "invalid_input",
                                    format!(
                                        "{}: {message}; the batch holding it was not sent",
                                        file.display()
                                    ),
                                );
                            }
                            (reason, Some(i)) => {
                                if matches!(reason, StopReason::DeadlineExceeded) {
                                    deadline = true;
                                }
                                progress.line(&format!(
                                    "batch {}: stopped: {}",
                                    i + 1,
                                    stopped_text(stopped)
                                ));
                                stops.insert(i, stopped_json(stopped));
                                if report.error.is_none() {
                                    report.error = Some(stopped_json(stopped));
                                }
                            }
                            (_, None) => {}
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = written {
            report.fail("output", format!("could not write results: {e}"));
            worst = worst.max(Exit::Api);
            break;
        }
        if let Some(ledger) = run.ledger() {
            let (done_in, failed_in) = ledger.totals();
            let (run_in, run_failed) = live.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
            progress.update(
                items_read.get(),
                ledger.batches().filter(|b| b.job.is_some()).count(),
                ledger.batches().filter(|b| b.finished.is_some()).count(),
                done_in + run_in,
                failed_in + run_failed,
                run.set().len(),
            );
            if changed {
                fill(report, ledger, &stops, items_read.get());
                report.todo = Some(todo(ledger, report.items_total, false));
                report.arm_ctrl_c(args.json);
            }
        }
        if deadline {
            break; // the overall --timeout passed: the rest waits for the next run
        }
    }
    progress.finish();
    if let Some(e) = run.journal_error() {
        report.fail("journal", format!("{}: {e}", journal_path.display()));
        worst = worst.max(Exit::Usage);
    }
    // The run's input is over once refused or stopped by the journal, too: only an input
    // read to its end has nothing left to send.
    let input_done = run.input_done() && !refused && run.journal_error().is_none();
    let ledger = run.ledger().expect("journaled").clone();
    let set_left = run.set().len();
    drop(run); // writes the last records
    fill(report, &ledger, &stops, items_read.get());
    let finished = ledger.batches().all(|b| b.finished.is_some());
    if ledger
        .batches()
        .any(|b| b.finished.as_ref().is_some_and(|f| f.status != "COMPLETED"))
    {
        worst = worst.max(Exit::JobFailed);
    }
    if worst <= Exit::JobFailed && (!input_done || !finished || set_left > 0) {
        worst = Exit::Api;
    }
    report.result = match worst {
        Exit::Ok => "completed",
        Exit::JobFailed => "completed_with_failures",
        Exit::Deadline => "timeout",
        Exit::Usage => "error",
        Exit::Api => "error",
    };
    report.todo = None;
    if worst >= Exit::Usage {
        report.todo = Some(todo(&ledger, report.items_total, input_done));
        if matches!(worst, Exit::Deadline | Exit::Api) {
            report.resume = Some(resume_command());
        }
    }
    worst
}

/// Whether the journal holds batch `i` as finished (its results are then never read again).
fn is_finished(ledger: &Ledger, i: u64) -> bool {
    ledger
        .batches()
        .any(|b| b.index == i && b.finished.is_some())
}

/// The batch of a job of the import: every one is journaled.
fn journaled(batch: Option<u64>) -> u64 {
    batch.expect("every job of a journaled import has its batch")
}

/// What is left, in words.
fn todo(ledger: &Ledger, total: Option<u64>, input_done: bool) -> String {
    let created = ledger
        .batches()
        .filter(|b| b.job.is_some() && b.finished.is_none())
        .count();
    let planned = ledger.batches().filter(|b| b.job.is_none()).count();
    let journaled: u64 = ledger.batches().map(|b| b.items as u64).sum();
    let mut parts = vec![
        format!("{created} batch(es) created and not finished (to wait on and read)"),
        format!("{planned} planned but never created (to create under the same key)"),
    ];
    match (total, input_done) {
        (_, true) => parts.push("every item was read".into()),
        (Some(total), false) => {
            parts.push(format!("items {} to {total} never sent", journaled + 1))
        }
        (None, false) => parts.push(format!("the input after item {journaled} never sent")),
    }
    parts.join("; ")
}

/// The report's batches and totals, from the ledger (which holds earlier runs' too).
fn fill(report: &mut Report, ledger: &Ledger, stops: &HashMap<u64, Value>, read: u64) {
    report.items_read = read;
    let (imports, errors) = ledger.totals();
    report.imports = imports;
    report.errors = errors;
    report.batches = ledger
        .batches()
        .map(|b| {
            let mut v = json!({
                "batch": b.index,
                "first_item": b.first_item + 1,
                "items": b.items,
            });
            if let Some(job) = &b.job {
                v["job"] = json!(job);
            }
            match &b.finished {
                Some(f) => {
                    v["status"] = json!(f.status);
                    v["imports"] = json!(f.imported);
                    v["errors"] = json!(f.failed);
                }
                None => {
                    v["status"] = json!(if b.job.is_some() {
                        "created"
                    } else {
                        "planned"
                    });
                    if let Some(stop) = stops.get(&b.index) {
                        v["error"] = stop.clone();
                    }
                }
            }
            v
        })
        .collect();
}

fn progress_note(text: &str) {
    if !crate::args::quiet() {
        eprintln!("{text}");
    }
}
