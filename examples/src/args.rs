//! The command line, as a contract: see `fsbatch --help`.
//!
//! The connection options (`--base-url`, `--region`, `--users`, `--request-timeout`,
//! `--quiet`) are not clap `global` arguments: they are added to the top level and to each
//! command that talks to the API, so `fsbatch --users status ID` and
//! `fsbatch status ID --users` both work while `fsbatch demo --help` does not list options
//! that would do nothing there. [`parse`] merges the two places into one [`Global`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use fullstory_batch::BaseUrl;

/// The commands that take the connection options.
const CONNECTED: [&str; 5] = ["import", "status", "wait", "imports", "errors"];

const ABOUT: &str = "Import events and users into Fullstory in batches, and follow the jobs";

const AFTER_HELP: &str = "\
Examples:
  export FULLSTORY_API_KEY=...               # Settings > Integrations > API Keys
  fsbatch import events.json                 # create the job, wait, print the outcome
  fsbatch --users import users.jsonl --json  # users; one JSON object on stdout
  fsbatch wait abd123= --timeout 30m         # wait for a job created elsewhere
  fsbatch errors abd123= > failed.jsonl      # the items that failed, one per line
  fsbatch demo                               # the whole workflow, no key or network

Environment:
  FULLSTORY_API_KEY   the API key (required by every command but demo; never an argument,
                      where other users of the machine could read it)
  FULLSTORY_BASE_URL  the API base URL [default: https://api.fullstory.com];
                      --base-url and --region take precedence

Exit codes:
  0    the call succeeded (status, imports, errors) or the job COMPLETED (wait, import)
  1    the job FAILED: some items were not imported
  2    usage or configuration error
  3    an API or transport error that was not retryable or outlived its retries
  4    the deadline (--timeout) passed before the job ended
  130  interrupted (Ctrl-C): the job goes on; the command that resumes is printed

Durations (DUR): 500ms, 2s, 10m, 1h 30m.
Plain http base URLs are allowed, with a warning on stderr (once; for localhost and
127.0.0.1 only when stderr is a terminal). --quiet silences warnings and progress.
'fsbatch help COMMAND' or 'fsbatch COMMAND --help' shows a command's options and examples.";

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    pub global: Global,
    pub command: Command,
}

/// The connection options, wherever they were given (after the command wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub base_url: Option<String>,
    pub region: Option<Region>,
    pub users: bool,
    pub request_timeout: Duration,
    pub quiet: bool,
    pub max_page_bytes: Option<usize>,
}

/// The default of `--request-timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// The connection options as clap sees them, once at the top and once per command. (Not a
// doc comment: clap would make it the about text of every command it is added to.)
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Connection options (before or after the command)")]
struct GlobalArgs {
    /// API base URL [env: FULLSTORY_BASE_URL] [default: https://api.fullstory.com]; plain http
    /// is allowed, with a warning.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// A preset base URL.
    #[arg(long, value_enum)]
    region: Option<Region>,
    /// Use the users batch API instead of events.
    #[arg(long)]
    users: bool,
    /// Time limit for one request, headers and body [default: 30s].
    #[arg(long, value_name = "DUR", value_parser = duration)]
    request_timeout: Option<Duration>,
    /// No warnings and no progress on stderr (errors and results still print).
    #[arg(short, long)]
    quiet: bool,
    /// Largest imports or errors page to read, in bytes [default: 64 MiB].
    #[arg(long, value_name = "BYTES")]
    max_page_bytes: Option<usize>,
}

impl GlobalArgs {
    fn is_empty(&self) -> bool {
        self.base_url.is_none()
            && self.region.is_none()
            && !self.users
            && self.request_timeout.is_none()
            && !self.quiet
            && self.max_page_bytes.is_none()
    }

    /// `self` given before the command, `after` after it: `after` wins.
    fn then(self, after: GlobalArgs) -> Global {
        Global {
            base_url: after.base_url.or(self.base_url),
            region: after.region.or(self.region),
            users: self.users || after.users,
            request_timeout: after
                .request_timeout
                .or(self.request_timeout)
                .unwrap_or(REQUEST_TIMEOUT),
            quiet: self.quiet || after.quiet,
            max_page_bytes: after.max_page_bytes.or(self.max_page_bytes),
        }
    }
}

/// Only for clap: [`command`] adds the connection options to each command that uses them.
#[derive(Debug, Parser)]
#[command(
    name = "fsbatch",
    version,
    about = ABOUT,
    long_about = None,
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct RawCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
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
    /// Import events (or users with --users) from a file of any size, exactly once.
    ///
    /// The file holds event requests (user requests with --users) as JSON lines, pretty
    /// objects one after another (jq without -c), a JSON array, or the API's create body
    /// {"requests": [...]}, in UTF-8 (a byte-order mark is skipped); CSV and UTF-16 are
    /// refused by name. It is read as it goes: memory holds a few batches, never the file. A
    /// file is checked whole first, so a bad item (named by its line) stops the import before
    /// anything is sent; standard input is checked as it is read, and stops before the batch
    /// holding a bad item is sent. Items go in batches of 50,000, at most two jobs in progress.
    ///
    /// The input may be gzip-compressed, file or standard input: it is known by its first two
    /// bytes (1f 8b), whatever its name, and decompressed as it is read (a file twice: once to
    /// check, once to send). A gzip stream cut short or corrupt stops the import with an error
    /// naming the input; for a file, nothing is sent.
    ///
    /// A journal, written and synced before each create, makes the import resumable: after
    /// Ctrl-C, kill -9, a timeout or a power loss, the same command carries on where it stopped
    /// (batches created are waited on, never created again; a create whose answer was lost is
    /// sent again under its idempotency key). It refuses a changed input (for gzip, the size
    /// and hash of the compressed bytes: the same file resumes, a recompressed one is refused).
    /// Counts come from the final statuses; failed items go to a file named in the summary.
    #[command(after_help = "\
Examples:
  fsbatch import events.jsonl
  fsbatch import events.jsonl.gz
  fsbatch import events.jsonl --errors-out failed.jsonl --imports-out imported.jsonl
  fsbatch --users import users.json --timeout 2h --journal users.journal
  jq -c '.[]' events.json | fsbatch import - --json
  curl -s https://example.com/events.jsonl.gz | fsbatch import -

Journal: $XDG_STATE_HOME/fsbatch/NAME-HASH.journal (default ~/.local/state/fsbatch/), named
after the input's path, the resource and the base URL; failed items go next to it
(NAME-HASH.errors.jsonl) unless --errors-out is given.")]
    Import {
        /// The file; `-` reads standard input.
        file: std::path::PathBuf,
        /// Give up after this long, counted from the start, reading the input included (run
        /// the same command again to continue).
        #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration)]
        timeout: Duration,
        /// Print exactly one JSON object on stdout, whatever happens.
        #[arg(long)]
        json: bool,
        /// The journal file [default: under $XDG_STATE_HOME/fsbatch/].
        #[arg(long, value_name = "PATH")]
        journal: Option<std::path::PathBuf>,
        /// Also read every imported item, and append them to FILE as JSON lines.
        #[arg(long, value_name = "FILE")]
        imports_out: Option<std::path::PathBuf>,
        /// Append failed items to FILE as JSON lines [default: next to the journal].
        #[arg(long, value_name = "FILE")]
        errors_out: Option<std::path::PathBuf>,
        /// Items per batch (1 to 50,000); a resume must use the same.
        #[arg(long, value_name = "N", default_value_t = 50_000, hide = true)]
        batch_size: usize,
    },
    /// Show a job's status once (one request, no retries).
    #[command(after_help = "\
Examples:
  fsbatch status abd123=
  fsbatch status abd123= --users --json")]
    Status {
        /// The job id the create call returned (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        job_id: String,
        /// Print exactly one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the job is COMPLETED or FAILED.
    #[command(after_help = "\
Examples:
  fsbatch wait abd123=
  fsbatch wait abd123= --timeout 30m --max-interval 5s --json")]
    Wait {
        /// The job id the create call returned (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
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
    /// Print a finished job's imported items as JSON lines (waits for the job first).
    #[command(after_help = "\
Examples:
  fsbatch imports abd123= > imported.jsonl
  fsbatch imports abd123= --users | jq -r .uid")]
    Imports {
        /// The job id the create call returned (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        job_id: String,
    },
    /// Print a finished job's failed items as JSON lines (waits for the job first).
    #[command(after_help = "\
Examples:
  fsbatch errors abd123= > failed.jsonl
  fsbatch errors abd123= | jq -r .message | sort | uniq -c")]
    Errors {
        /// The job id the create call returned (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        job_id: String,
    },
    /// Run the whole workflow against a fake server started in this process (no key, no network).
    #[command(after_help = "\
Example:
  fsbatch demo")]
    Demo,
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  fsbatch completions bash > ~/.local/share/bash-completion/completions/fsbatch
  fsbatch completions zsh > \"${fpath[1]}/_fsbatch\"
  fsbatch completions fish > ~/.config/fish/completions/fsbatch.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "\
Examples:
  fsbatch man | man -l -
  fsbatch man > ~/.local/share/man/man1/fsbatch.1")]
    Man,
}

/// The whole command line as clap sees it: [`RawCli`] with the connection options added to
/// each command in [`CONNECTED`]. Parsing, completions and the man page all use this.
pub fn command() -> clap::Command {
    CONNECTED.into_iter().fold(RawCli::command(), |cli, name| {
        cli.mut_subcommand(name, GlobalArgs::augment_args)
    })
}

/// Parses the process's arguments; on `--help`, `--version` or a usage error, prints and
/// exits (0, or 2 for errors) as clap does.
pub fn parse() -> Cli {
    let mut cli = command();
    let matches = cli
        .try_get_matches_from_mut(std::env::args_os())
        .unwrap_or_else(|e| exit_with(&e));
    let parsed = (|| {
        let before = GlobalArgs::from_arg_matches(&matches)?;
        let command = Command::from_arg_matches(&matches)?;
        let after = match matches.subcommand() {
            Some((name, sub)) if CONNECTED.contains(&name) => GlobalArgs::from_arg_matches(sub)?,
            Some((name, _)) if !before.is_empty() => {
                let message = format!("connection options do nothing with '{name}'");
                return Err(cli.error(ErrorKind::ArgumentConflict, message));
            }
            _ => GlobalArgs::default(),
        };
        Ok(Cli {
            global: before.then(after),
            command,
        })
    })();
    let parsed: Cli = parsed.unwrap_or_else(|e: clap::Error| exit_with(&e));
    QUIET.store(parsed.global.quiet, Ordering::Relaxed);
    parsed
}

/// Prints a parse error (or `--help`) as clap does and exits; `--json` promises one JSON
/// object on stdout, so a usage error prints one there too.
fn exit_with(e: &clap::Error) -> ! {
    if e.use_stderr() && std::env::args().any(|a| a == "--json") {
        let message = e.kind().as_str().unwrap_or("usage error");
        let error =
            serde_json::json!({"result": "error", "error": {"kind": "usage", "message": message}});
        println!("{error}");
    }
    e.exit()
}

/// `--quiet`, for the code that prints progress without a [`Global`] at hand.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Warns on stderr that `base_url` is plain http, at most once per process and never with
/// `--quiet`. For a loopback host (the key stays on this machine) only when stderr is a
/// terminal, so scripts and tests against a local fake stay quiet.
pub fn warn_plain_http(global: &Global, base_url: &BaseUrl) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let terminal = std::io::stderr().is_terminal();
    if let Some(warning) = plain_http_warning(global.quiet, terminal, base_url)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        eprintln!("{warning}");
    }
}

fn plain_http_warning(quiet: bool, terminal: bool, base_url: &BaseUrl) -> Option<String> {
    let warn = !quiet && !base_url.is_https() && (terminal || !base_url.is_loopback());
    warn.then(|| {
        format!("warning: {base_url} is plain http: the API key travels unencrypted (-q: silence)")
    })
}

/// Prints the completion script for `shell` on stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut command(), "fsbatch", &mut std::io::stdout());
}

/// Prints the man page (roff) on stdout: clap's sections, then the examples, environment
/// and exit codes of `--help` as sections of their own, kept as laid out. A closed pipe
/// (`fsbatch man | head`) is not an error.
pub fn print_man() -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    page.extend_from_slice(roff_sections(AFTER_HELP).as_bytes());
    man.render_version_section(&mut page)?;
    match std::io::Write::write_all(&mut std::io::stdout().lock(), &page) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `Title:` blocks of the help text as roff sections, each kept as laid out (`.nf`); a block
/// without a title goes under NOTES.
fn roff_sections(text: &str) -> String {
    let escape = |line: &str| {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        // A line may not start with a control character.
        if line.starts_with(['.', '\'']) {
            format!("\\&{line}")
        } else {
            line
        }
    };
    let mut out = String::new();
    for block in text.split("\n\n") {
        let (title, body) = match block.split_once(":\n") {
            Some((title, body)) if !title.contains('\n') => (title.to_uppercase(), body),
            _ => ("NOTES".to_owned(), block),
        };
        out.push_str(&format!(".SH \"{title}\"\n.nf\n"));
        for line in body.lines() {
            out.push_str(&escape(line));
            out.push('\n');
        }
        out.push_str(".fi\n");
    }
    out
}

/// Human durations: `500ms`, `2s`, `10m`, `1h 30m`.
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 500ms, 2s, 10m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches_from(args)?;
        let before = GlobalArgs::from_arg_matches(&matches)?;
        let command = Command::from_arg_matches(&matches)?;
        let (_, sub) = matches.subcommand().unwrap();
        let after = GlobalArgs::from_arg_matches(sub).unwrap_or_default();
        Ok(Cli {
            global: before.then(after),
            command,
        })
    }

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn connection_options_before_or_after_the_command() {
        let before = parse_from(&[
            "fsbatch",
            "--users",
            "--base-url",
            "http://a",
            "status",
            "x",
        ]);
        let after = parse_from(&[
            "fsbatch",
            "status",
            "x",
            "--users",
            "--base-url",
            "http://a",
        ]);
        let (before, after) = (before.unwrap(), after.unwrap());
        assert_eq!(before.global, after.global);
        assert!(before.global.users);
        assert_eq!(before.global.request_timeout, REQUEST_TIMEOUT);
        let both = parse_from(&[
            "fsbatch",
            "--request-timeout",
            "1s",
            "wait",
            "x",
            "--request-timeout",
            "2s",
            "-q",
        ]);
        let both = both.unwrap().global;
        assert_eq!(both.request_timeout, Duration::from_secs(2), "after wins");
        assert!(both.quiet);
        assert!(parse_from(&["fsbatch", "demo", "--base-url", "http://a"]).is_err());
    }

    #[test]
    fn job_ids_may_start_with_a_hyphen() {
        let cli = parse_from(&["fsbatch", "wait", "-Dx_=", "--json", "-q"]).unwrap();
        assert!(
            matches!(cli.command, Command::Wait { job_id, json: true, .. } if job_id == "-Dx_=")
        );
        assert!(cli.global.quiet);
        let cli = parse_from(&["fsbatch", "status", "--users", "-abc"]).unwrap();
        assert!(matches!(cli.command, Command::Status { job_id, .. } if job_id == "-abc"));
    }

    #[test]
    fn the_plain_http_warning() {
        let local = BaseUrl::parse_allow_http("http://127.0.0.1:9").unwrap();
        let remote = BaseUrl::parse_allow_http("http://proxy.example").unwrap();
        let https = BaseUrl::us();
        assert!(plain_http_warning(false, true, &local).is_some());
        assert!(plain_http_warning(false, false, &local).is_none());
        assert!(plain_http_warning(false, false, &remote).is_some());
        assert!(plain_http_warning(true, true, &remote).is_none());
        assert!(plain_http_warning(false, true, &https).is_none());
    }
}
