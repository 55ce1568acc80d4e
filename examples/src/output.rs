//! What the tool prints: the job for people or as JSON, and errors that name the HTTP status,
//! the server's code and message, and never the key.

use std::error::Error as _;
use std::process::ExitCode;

use fullstory_batch::{ConfigError, Error, JobStatusResponse, Outcome};
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

/// Prints how waiting ended and says which exit code it means.
pub fn print_outcome(outcome: &Outcome, json: bool) -> Exit {
    match outcome {
        Outcome::Completed(status) => {
            print_status(status, json);
            Exit::Ok
        }
        Outcome::Failed(status) => {
            print_status(status, json);
            Exit::JobFailed
        }
        Outcome::GaveUp(e) => {
            print_error(e, json);
            Exit::Api
        }
        Outcome::TooManyErrors(e) => {
            if json {
                println!("{}", error_json(e));
            } else {
                eprintln!(
                    "error: gave up after too many errors in a row; the last: {}",
                    chain(e)
                );
            }
            Exit::Api
        }
        Outcome::DeadlineExceeded { last_status } => {
            let seen = last_status
                .as_ref()
                .map_or_else(|| "no status yet".to_owned(), |s| s.job.status.to_string());
            if json {
                let mut error = json!({"kind": "deadline_exceeded", "message": "the deadline passed before the job ended"});
                if let Some(status) = last_status {
                    error["last_status"] =
                        serde_json::to_value(status).expect("a status serialises");
                }
                println!("{}", json!({ "error": error }));
            } else {
                eprintln!("error: the deadline passed before the job ended (last seen: {seen})");
            }
            Exit::Deadline
        }
    }
}

/// A configuration error, always for people: it is a usage problem.
pub fn print_config_error(what: &str, error: &ConfigError) -> Exit {
    eprintln!("error: {what}: {error}");
    Exit::Usage
}

/// `{"error": {"kind", "status", "code", "message"}}`; fields that do not apply are left out.
fn error_json(error: &Error) -> Value {
    let mut body = json!({ "kind": error.kind(), "message": chain(error) });
    if let Error::Api(api) = error {
        body["status"] = json!(api.status().as_u16());
        if let Some(server) = api.error_response() {
            body["code"] = json!(server.code.as_str());
            body["message"] = json!(server.message);
        }
    }
    json!({ "error": body })
}

/// The error and its causes, each once.
fn chain(error: &Error) -> String {
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
