//! What the tool prints: the job for people or as JSON, and errors that name the HTTP status,
//! the server's code and message, and never the key.

use std::process::ExitCode;

use fullstory_batch::{
    ConfigError, Error, JobState, JobStatusResponse, Outcome, StopReason, Stopped,
};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

/// The exit codes, part of the interface; a later one is a worse end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// The call succeeded (`status`) or the job COMPLETED (`wait`).
    Ok = 0,
    /// The job FAILED.
    JobFailed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// An API or transport error that was not retryable or outlived its retries.
    Api = 3,
    /// The deadline passed.
    Deadline = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Prints a job: a few aligned lines, or the API's own JSON shape.
pub fn print_status(status: &JobStatusResponse, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(status).expect("a status serialises")
        );
        return;
    }
    let job = &status.job;
    println!("job      {}", job.id);
    println!("status   {}", job.status);
    println!("imports  {}", status.imports);
    println!("errors   {}", status.errors);
    for (name, at) in [("created", job.created), ("finished", job.finished)] {
        if let Some(at) = at.and_then(|t| t.format(&Rfc3339).ok()) {
            println!("{name:<8} {at}");
        }
    }
}

/// Prints an error on stderr, or as `{"error": {...}}` on stdout with `json`.
pub fn print_error(error: &Error, json: bool) {
    if json {
        println!("{}", error_json(error));
    } else {
        eprintln!("error: {}", chain(error));
    }
}

/// Prints how a job ended and says which exit code it means.
pub fn print_outcome(outcome: &Outcome, json: bool) -> Exit {
    match outcome {
        Outcome::Finished(status) => {
            print_status(status, json);
            if status.job.status == JobState::Completed {
                Exit::Ok
            } else {
                Exit::JobFailed
            }
        }
        Outcome::Stopped(stopped) => print_stopped(stopped, json),
    }
}

/// Prints why a job stopped: the stop, then its cause, each once.
pub fn print_stopped(stopped: &Stopped, json: bool) -> Exit {
    let exit = match &stopped.reason {
        StopReason::DeadlineExceeded => Exit::Deadline,
        StopReason::InvalidInput(_) => Exit::Usage,
        _ => Exit::Api,
    };
    if !json {
        let seen = stopped
            .last_status
            .as_ref()
            .map(|s| format!(" (last seen: {})", s.job.status))
            .unwrap_or_default();
        eprintln!("error: {}{seen}", chain(stopped));
        return exit;
    }
    println!("{}", json!({ "error": stopped_json(stopped) }));
    exit
}

/// Why a job stopped, as the `error` object of `--json`.
pub fn stopped_json(stopped: &Stopped) -> Value {
    let mut error = match stopped.reason.error() {
        Some(e) => error_body(e),
        None => json!({ "kind": stopped.reason.kind(), "message": chain(stopped) }),
    };
    error["stage"] = json!(stopped.stage.to_string());
    if let Some(job) = &stopped.job {
        error["job"] = json!(job.id.as_str());
    }
    if let Some(status) = &stopped.last_status {
        error["last_status"] = serde_json::to_value(status).expect("a status serialises");
    }
    error
}

/// Why a job stopped, for people: the stop, then its cause, each once.
pub fn stopped_text(stopped: &Stopped) -> String {
    chain(stopped)
}

/// A configuration error, always for people: it is a usage problem.
pub fn print_config_error(what: &str, error: &ConfigError) -> Exit {
    eprintln!("error: {what}: {error}");
    Exit::Usage
}

/// `{"error": {"kind", "status", "code", "message"}}`; fields that do not apply are left out.
fn error_json(error: &Error) -> Value {
    json!({ "error": error_body(error) })
}

fn error_body(error: &Error) -> Value {
    let mut body = json!({ "kind": error.kind(), "message": chain(error) });
    if let Error::Api(api) = error {
        body["status"] = json!(api.status().as_u16());
        if let Some(server) = api.error_response() {
            body["code"] = json!(server.code.as_str());
            body["message"] = json!(server.message);
        }
    }
    body
}

/// The error and its causes, each once.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        // Errors of other crates may print their cause and return it too: say it once.
        if !line.is_empty() && !last.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        last = line;
        source = cause.source();
    }
    text
}
