//! The demo's import of a list in memory, and `fsbatch imports` and `errors`.

use std::io::Write;
use std::time::Duration;

use fullstory_batch::{
    BatchItem, EventRequest, JobRef, MAX_BATCH_ITEMS, PageKind, Policy, UserRequest,
};
use fullstory_batch_ureq::{Client, Event, Outcome, Run};

use crate::args::Global;
use crate::output::{Exit, print_outcome, print_stopped};
use crate::progress::Progress;

/// How many jobs an import keeps in progress at once: well under the org's limit of 100,
/// so other importers in the same organisation keep room.
const MAX_IN_PROGRESS: usize = 2;

/// Imports `items` as batches of at most 50,000, at most two jobs in progress, with
/// progress on stderr, and prints each batch's outcome. `on_event` sees every event (the
/// demo prints items).
pub fn import_batches<T: BatchItem>(
    client: &Client,
    items: Vec<T>,
    policy: Policy,
    json: bool,
    on_event: &mut dyn FnMut(&Event<T>),
) -> Exit {
    let run = client.import_all(items, MAX_BATCH_ITEMS, MAX_IN_PROGRESS, policy);
    let mut progress = Progress::new();
    let (mut jobs, mut worst) = (Vec::new(), Exit::Ok);
    let (mut imported, mut failed) = (0usize, 0usize);
    for (batch, event) in run {
        on_event(&event);
        match event {
            Event::Created(job) => {
                progress.note(&format!("batch {}: created job {}", batch.index(), job.id));
                jobs.push(job.id.to_string());
                crate::on_ctrl_c(format!(
                    "fsbatch wait JOB_ID, for each of: {}",
                    jobs.join(" ")
                ));
            }
            Event::Progress(snapshot) => progress.update(&snapshot),
            Event::Imported(items) => imported += items.len(),
            Event::Unread(items) => imported += items.len(),
            Event::Failed(items) => failed += items.len(),
            Event::Done(outcome) => {
                progress.finish();
                worst = worst.max(print_outcome(&outcome, json));
            }
            _ => {}
        }
    }
    if !json && (imported > 0 || failed > 0) {
        eprintln!("read {imported} imported and {failed} failed items");
    }
    worst
}

/// `fsbatch imports|errors JOB_ID`: one JSON line per item, as pages arrive.
pub fn stream_pages(global: &Global, job_id: &str, kind: PageKind) -> Exit {
    let (Ok(client), Ok(id)) = (crate::client(global), crate::job_id_arg(job_id)) else {
        return Exit::Usage;
    };
    crate::on_ctrl_c(crate::resume_command(global, job_id).replacen(
        " wait ",
        &format!(" {} ", kind.as_str()),
        1,
    ));
    let policy = Policy::default().with_timeout(Duration::from_secs(3600));
    let job = JobRef::new(crate::resource(global), id);
    if global.users {
        stream(client.pages::<UserRequest>(job, kind, policy))
    } else {
        stream(client.pages::<EventRequest>(job, kind, policy))
    }
}

fn stream<T: BatchItem>(pages: Run<T>) -> Exit {
    let mut out = std::io::stdout().lock();
    for (_, event) in pages {
        // A closed pipe (`| head`) ends the stream quietly.
        let written = match &event {
            Event::Imported(items) => items.iter().try_for_each(|item| write_line(&mut out, item)),
            // Items that do not fit the typed shape go out as the server sent them.
            Event::Unread(items) => items
                .iter()
                .try_for_each(|item| write_line(&mut out, &item.json)),
            Event::Failed(items) => items.iter().try_for_each(|item| write_line(&mut out, item)),
            Event::Done(outcome) => {
                return match outcome {
                    Outcome::Finished(_) => Exit::Ok,
                    Outcome::Stopped(stopped) => print_stopped(stopped, false),
                };
            }
            _ => Ok(()),
        };
        if written.is_err() {
            return Exit::Ok;
        }
    }
    Exit::Ok
}

fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
