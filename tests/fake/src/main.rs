//! `fullstory-batch-fake`: runs the fake Fullstory batch-import API until
//! Ctrl-C, printing its base URL on stdout. `--help` says how.

use std::process::ExitCode;
use std::time::Duration;

use fullstory_batch_fake::{Encoding, FakeServer, FakeServerBuilder, FaultKind};

const USAGE: &str = "\
fullstory-batch-fake: a fake of Fullstory's batch-import job API, for testing clients.

Serves /v2/{events,users}/batch on 127.0.0.1 until Ctrl-C. Prints its base URL on stdout
(e.g. http://127.0.0.1:41234), so a script can read one line and point a client at it.
Jobs live in memory only; each run hands out new job ids.

Usage: fullstory-batch-fake [OPTIONS]

Options:
  --port N                     port on 127.0.0.1 (default 0: any free port)
  --key KEY                    accepted API key (repeatable; default: any key)
  --key-without-permission KEY key answered 403 (repeatable)
  --processing DURATION        time jobs stay PROCESSING (default 1s; e.g. 500ms, 5s, 2m)
  --page-size N                results per imports/errors page (default 100)
  --rate-limit RPS[:BURST]     per-key token bucket (default off)
  --fault-rate R               share of requests (0..1) answered with a random fault
  --seed N                     seed for random faults (default 1); with --fault-rate, job
                               ids follow from it too, so a run can be replayed
  --id-seed N                  derive job ids from N (default: new ids every run)
  --real-world-encoding        every wire quirk: zero counts omitted, counts as strings,
                               unknown fields, PENDING first, empty fields omitted
  -h, --help                   print this text
  -V, --version                print the version

Inspection endpoints (read-only, no API key, never logged, counted or faulted):
  GET /fake/stats     {\"jobs\",\"items\",\"requests\":{\"create\",\"status\",\"imports\",\"errors\",
                      \"other\"},\"faults\",\"by_resource\":{\"events\":{...},\"users\":{...}}}
  GET /fake/jobs      {\"jobs\":[{\"id\",\"resource\",\"status\",\"items\",\"imports\",\"errors\",
                      \"created\",\"finished\"}]}
  GET /fake/requests  {\"requests\":[{\"seq\",\"method\",\"path\",\"status\",...}]}
                      (Authorization shown as \"Basic [redacted]\")

Examples:
  fullstory-batch-fake --key test-key --processing 3s
  fullstory-batch-fake --port 8080 --fault-rate 0.2 --seed 7
  curl -s http://127.0.0.1:8080/fake/stats

Exit codes: 0 stopped by Ctrl-C (or --help), 1 could not start, 2 usage error.";

/// What the command line asks for.
enum Parsed {
    Run(Box<FakeServerBuilder>),
    Help,
    Version,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("bad duration unit in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {text:?}: {e}"))
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("bad value {value:?} for {flag}"))
}

/// The builder the arguments describe, or a short usage error (no usage text: that is
/// what `--help` is for).
fn builder_from_args(args: Vec<String>) -> Result<Parsed, String> {
    let mut builder = FakeServer::builder();
    let mut port = 0u16;
    let mut fault_rate = 0.0f64;
    let mut seed = 1u64;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--version" | "-V" => return Ok(Parsed::Version),
            "--real-world-encoding" => {
                builder = builder.encoding(Encoding::real_world());
                continue;
            }
            "--port"
            | "--key"
            | "--key-without-permission"
            | "--processing"
            | "--page-size"
            | "--rate-limit"
            | "--fault-rate"
            | "--seed"
            | "--id-seed" => {}
            _ => return Err(format!("unknown option {flag:?}")),
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        builder = match flag.as_str() {
            "--port" => {
                port = parse(&flag, &value)?;
                builder
            }
            "--key" => builder.key(value),
            "--key-without-permission" => builder.key_without_permission(value),
            "--processing" => builder.processing_time(parse_duration(&value)?),
            "--page-size" => builder.page_size(parse(&flag, &value)?),
            "--rate-limit" => {
                let (rate, burst) = value.split_once(':').unwrap_or((&value, "1"));
                builder.rate_limit(parse(&flag, rate)?, parse(&flag, burst)?)
            }
            "--fault-rate" => {
                fault_rate = parse(&flag, &value)?;
                builder
            }
            "--seed" => {
                seed = parse(&flag, &value)?;
                builder
            }
            "--id-seed" => builder.job_id_seed(parse(&flag, &value)?),
            _ => unreachable!("every flag that takes a value is listed above"),
        };
    }
    if fault_rate > 0.0 {
        builder = builder.random_faults(fault_rate, seed, FaultKind::ALL);
    }
    Ok(Parsed::Run(Box::new(
        builder.bind(([127, 0, 0, 1], port).into()),
    )))
}

#[tokio::main]
async fn main() -> ExitCode {
    let builder = match builder_from_args(std::env::args().skip(1).collect()) {
        Ok(Parsed::Run(builder)) => *builder,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("fullstory-batch-fake {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fullstory-batch-fake: {message}\nTry 'fullstory-batch-fake --help'.");
            return ExitCode::from(2);
        }
    };
    let fake = match builder.start().await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fullstory-batch-fake: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", fake.base_url());
    let _ = tokio::signal::ctrl_c().await;
    fake.shutdown_and_wait().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn args() {
        let args = [
            "--port",
            "0",
            "--key",
            "k",
            "--processing",
            "2s",
            "--rate-limit",
            "5:10",
            "--fault-rate",
            "0.2",
        ];
        let parsed =
            |args: &[&str]| builder_from_args(args.iter().map(|s| s.to_string()).collect());
        assert!(matches!(parsed(&args), Ok(Parsed::Run(_))));
        assert!(matches!(parsed(&["--id-seed", "9"]), Ok(Parsed::Run(_))));
        assert!(parsed(&["--bogus", "1"]).is_err());
        assert!(parsed(&["--bogus"]).is_err());
        assert!(parsed(&["--port"]).is_err());
        assert!(parsed(&["--port", "x"]).is_err());
        assert!(matches!(parsed(&["--help"]), Ok(Parsed::Help)));
        assert!(matches!(parsed(&["--port", "1", "-h"]), Ok(Parsed::Help)));
        assert!(matches!(parsed(&["-V"]), Ok(Parsed::Version)));
    }
}
