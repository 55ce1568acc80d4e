//! `fsbatch`: check and wait for Fullstory batch-import jobs from the command line.
//!
//! Exit codes: 0 the call succeeded (`status`) or the job COMPLETED (`wait`); 1 the job
//! FAILED; 2 usage or configuration error; 3 an API or transport error that was not
//! retryable or outlived its retries; 4 the deadline passed; 130 interrupted.

// Doc comments on the arguments are `--help` text for a terminal, where a URL stays bare.
#![allow(rustdoc::bare_urls)]

mod args;
mod bulk;
mod demo;
mod import;
mod input;
mod output;
mod progress;
mod results;

use std::process::ExitCode;
use std::time::Duration;

use fullstory_batch::{ApiKey, BaseUrl, Config, JobId, JobRef, PageKind, Policy, Resource};
use fullstory_batch_ureq::{Client, ClientOptions, Event};

use crate::args::{Command, Global, Region};
use crate::output::{Exit, print_config_error, print_error, print_outcome, print_status};
use crate::progress::Progress;

fn main() -> ExitCode {
    let cli = args::parse();
    let exit = match &cli.command {
        Command::Demo => demo::run(),
        Command::Completions { shell } => {
            args::print_completions(*shell);
            Exit::Ok
        }
        Command::Man => match args::print_man() {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("error: could not write the man page: {e}");
                Exit::Api
            }
        },
        Command::Import {
            file,
            timeout,
            json,
            journal,
            imports_out,
            errors_out,
            batch_size,
        } => bulk::import_file(
            &cli.global,
            &bulk::ImportArgs {
                file: file.clone(),
                timeout: *timeout,
                json: *json,
                journal: journal.clone(),
                imports_out: imports_out.clone(),
                errors_out: errors_out.clone(),
                batch_size: *batch_size,
            },
        ),
        Command::Imports { job_id } => import::stream_pages(&cli.global, job_id, PageKind::Imports),
        Command::Errors { job_id } => import::stream_pages(&cli.global, job_id, PageKind::Errors),
        Command::Status { job_id, json } => status(&cli.global, job_id, *json),
        Command::Wait {
            job_id,
            timeout,
            interval,
            max_interval,
            json,
        } => match wait_policy(*timeout, *interval, *max_interval) {
            Ok(policy) => wait(&cli.global, job_id, policy, *json),
            Err(exit) => exit,
        },
    };
    exit.into()
}

fn status(global: &Global, job_id: &str, json: bool) -> Exit {
    let (client, job) = match setup(global, job_id) {
        Ok(ready) => ready,
        Err(exit) => return exit,
    };
    match client.status(&job) {
        Ok(status) => {
            print_status(&status, json);
            Exit::Ok
        }
        Err(e) => {
            print_error(&e, json);
            Exit::Api
        }
    }
}

fn wait(global: &Global, job_id: &str, policy: Policy, json: bool) -> Exit {
    let (client, job) = match setup(global, job_id) {
        Ok(ready) => ready,
        Err(exit) => return exit,
    };
    on_ctrl_c(resume_command(global, job_id));
    wait_with_progress(&client, job, policy, json)
}

/// What Ctrl-C prints: on stderr how to pick up again, and on stdout what `--json` owes.
/// Jobs keep running on the server either way.
static INTERRUPTED: std::sync::Mutex<(String, Option<String>)> =
    std::sync::Mutex::new((String::new(), None));

/// On Ctrl-C, print `resume` (the latest one set wins) and exit 130.
pub(crate) fn on_ctrl_c(resume: String) {
    on_ctrl_c_print(
        format!("\ninterrupted; the job goes on. To wait again, run:\n  {resume}\n"),
        None,
    );
}

/// On Ctrl-C, print `stderr` and `stdout` (the latest ones set win) and exit 130.
pub(crate) fn on_ctrl_c_print(stderr: String, stdout: Option<String>) {
    *INTERRUPTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = (stderr, stdout);
    // Installed once; later calls only change the text.
    let _ = ctrlc::set_handler(|| {
        let (stderr, stdout) = INTERRUPTED.lock().map(|r| r.clone()).unwrap_or_default();
        eprint!("{stderr}");
        if let Some(stdout) = stdout {
            println!("{stdout}");
        }
        std::process::exit(130);
    });
}

/// `--timeout`, `--interval` and `--max-interval` as a policy, or the usage error's exit
/// code once it is printed (an interval that would flood the API, say).
fn wait_policy(
    timeout: Duration,
    interval: Option<Duration>,
    max_interval: Option<Duration>,
) -> Result<Policy, Exit> {
    let mut builder = Policy::builder().timeout(timeout);
    if let Some(interval) = interval {
        builder = builder.min_interval(interval);
    }
    if let Some(max) = max_interval {
        builder = builder.max_interval(max);
    }
    builder.build().map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage
    })
}

/// Waits, showing progress on stderr, then prints the outcome.
pub(crate) fn wait_with_progress(client: &Client, job: JobRef, policy: Policy, json: bool) -> Exit {
    let mut progress = Progress::new();
    for (_, event) in client.watch(job, policy) {
        match event {
            Event::Progress(snapshot) => progress.update(&snapshot),
            Event::Done(outcome) => {
                progress.finish();
                return print_outcome(&outcome, json);
            }
            _ => {}
        }
    }
    unreachable!("a run with a job ends with its Done")
}

/// The client and job, or the usage error's exit code once it is printed.
fn setup(global: &Global, job_id: &str) -> Result<(Client, JobRef), Exit> {
    let client = client(global)?;
    let id = job_id_arg(job_id)?;
    Ok((client, JobRef::new(resource(global), id)))
}

pub(crate) fn job_id_arg(job_id: &str) -> Result<JobId, Exit> {
    JobId::new(job_id).map_err(|e| print_config_error("JOB_ID", &e))
}

pub(crate) fn resource(global: &Global) -> Resource {
    if global.users {
        Resource::Users
    } else {
        Resource::Events
    }
}

/// A client for the configured API, or the usage error's exit code once it is printed.
pub(crate) fn client(global: &Global) -> Result<Client, Exit> {
    let key = std::env::var("FULLSTORY_API_KEY").map_err(|_| {
        eprintln!(
            "error: set FULLSTORY_API_KEY to your API key (it is never taken as an argument)"
        );
        Exit::Usage
    })?;
    let key = ApiKey::new(&key).map_err(|e| print_config_error("FULLSTORY_API_KEY", &e))?;
    let base_url = base_url(global)?;
    args::warn_plain_http(global, &base_url);
    let mut config = Config::new(key).with_base_url(base_url);
    if let Some(limit) = global.max_page_bytes {
        config = config.with_page_limit(limit);
    }
    let options = ClientOptions::new().with_request_timeout(global.request_timeout);
    // No custom roots are given, so building cannot fail; say so if it ever does.
    Client::new(config, options).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage
    })
}

/// `--base-url`, else `--region`, else `FULLSTORY_BASE_URL`, else the US URL.
fn base_url(global: &Global) -> Result<BaseUrl, Exit> {
    let from_env = std::env::var("FULLSTORY_BASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    match (&global.base_url, global.region) {
        (Some(_), Some(_)) => {
            eprintln!("error: give --base-url or --region, not both");
            Err(Exit::Usage)
        }
        (None, Some(Region::Us)) => Ok(BaseUrl::us()),
        (None, Some(Region::Eu)) => Ok(BaseUrl::eu()),
        (Some(url), None) => parse_url(url, "--base-url"),
        (None, None) => from_env.map_or(Ok(BaseUrl::us()), |url| {
            parse_url(&url, "FULLSTORY_BASE_URL")
        }),
    }
}

/// The base URL an import goes to, as text (for naming its journal); empty when unset
/// or invalid (the client reports that).
pub(crate) fn base_url_text(global: &Global) -> String {
    base_url(global).map(|u| u.to_string()).unwrap_or_default()
}

fn parse_url(url: &str, what: &str) -> Result<BaseUrl, Exit> {
    BaseUrl::parse_allow_http(url).map_err(|e| print_config_error(what, &e))
}

/// The command that waits for the same job again.
pub(crate) fn resume_command(global: &Global, job_id: &str) -> String {
    let mut words = vec!["fsbatch".to_owned()];
    if let Some(url) = &global.base_url {
        words.push(format!("--base-url {}", shell_quote(url)));
    }
    if let Some(region) = global.region {
        words.push(format!(
            "--region {}",
            if region == Region::Eu { "eu" } else { "us" }
        ));
    }
    if global.users {
        words.push("--users".to_owned());
    }
    if global.request_timeout != Duration::from_secs(30) {
        words.push(format!(
            "--request-timeout {}",
            humantime::format_duration(global.request_timeout)
        ));
    }
    words.push(format!("wait {}", shell_quote(job_id)));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_=./:@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
