//! The command line, as a contract: see `fsbatch --help`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Check and wait for Fullstory batch-import jobs.
///
/// The API key is read from the FULLSTORY_API_KEY environment variable, never from the
/// command line (where other users of the machine could read it).
#[derive(Debug, Parser)]
#[command(name = "fsbatch", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// API base URL [env: FULLSTORY_BASE_URL] [default: https://api.fullstory.com]; plain http is allowed.
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,
    /// A preset base URL.
    #[arg(long, global = true, value_enum)]
    pub region: Option<Region>,
    /// Use the users batch API instead of events.
    #[arg(long, global = true)]
    pub users: bool,
    /// Time limit for one request, headers and body.
    #[arg(long, global = true, value_name = "DUR", default_value = "30s", value_parser = duration)]
    pub request_timeout: Duration,
    /// Largest imports or errors page to read, in bytes [default: 64 MiB].
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_page_bytes: Option<usize>,
}

/// The preset base URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Region {
    /// https://api.fullstory.com
    Us,
    /// https://api.eu1.fullstory.com
    Eu,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a job's status once (one request, no retries).
    Status {
        /// The job id the create call returned.
        job_id: String,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the job is COMPLETED or FAILED.
    Wait {
        /// The job id the create call returned.
        job_id: String,
        /// Give up after this long.
        #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration)]
        timeout: Duration,
        /// The first wait between polls [default: 1s].
        #[arg(long, value_name = "DUR", value_parser = duration)]
        interval: Option<Duration>,
        /// The longest wait between polls [default: 20s].
        #[arg(long, value_name = "DUR", value_parser = duration)]
        max_interval: Option<Duration>,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Import events (or users with --users) from a file: a JSON array or JSON lines of requests.
    Import {
        /// The file; `-` reads standard input.
        file: std::path::PathBuf,
        /// Give up after this long.
        #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration)]
        timeout: Duration,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a finished job's imported items as JSON lines (waits for the job first).
    Imports {
        /// The job id the create call returned.
        job_id: String,
    },
    /// Print a finished job's failed items as JSON lines (waits for the job first).
    Errors {
        /// The job id the create call returned.
        job_id: String,
    },
    /// Run the whole workflow against a fake server started in this process (no key, no network).
    Demo,
}

/// Human durations: `500ms`, `2s`, `10m`, `1h 30m`.
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 500ms, 2s, 10m)"))
}
