//! `fullstory-batch-fake`: runs the fake Fullstory batch-import API until
//! Ctrl-C, printing its base URL on stdout.

use std::process::ExitCode;
use std::time::Duration;

use fullstory_batch_fake::{Encoding, FakeServer, FakeServerBuilder, FaultKind};

const USAGE: &str = "\
usage: fullstory-batch-fake [options]
  --port N                     port on 127.0.0.1 (default 0: any free port)
  --key KEY                    accepted API key (repeatable; default: any key)
  --key-without-permission KEY key answered 403 (repeatable)
  --processing DURATION        time jobs stay PROCESSING (default 1s; e.g. 500ms, 5s, 2m)
  --page-size N                results per imports/errors page (default 100)
  --rate-limit RPS[:BURST]     per-key token bucket (default off)
  --fault-rate R               share of requests (0..1) answered with a random fault
  --seed N                     seed for random faults (default 1)
  --real-world-encoding        every wire quirk: zero counts omitted, counts as strings,
                               unknown fields, PENDING first, empty fields omitted
  --help                       this text";

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

fn builder_from_args(args: Vec<String>) -> Result<FakeServerBuilder, String> {
    let mut builder = FakeServer::builder();
    let mut port = 0u16;
    let mut fault_rate = 0.0f64;
    let mut seed = 1u64;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        if flag == "--real-world-encoding" {
            builder = builder.encoding(Encoding::real_world());
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
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
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        };
    }
    if fault_rate > 0.0 {
        builder = builder.random_faults(fault_rate, seed, FaultKind::ALL);
    }
    Ok(builder.bind(([127, 0, 0, 1], port).into()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let builder = match builder_from_args(std::env::args().skip(1).collect()) {
        Ok(builder) => builder,
        Err(message) => {
            eprintln!("{message}");
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
        assert!(builder_from_args(args.iter().map(|s| s.to_string()).collect()).is_ok());
        assert!(builder_from_args(vec!["--bogus".into(), "1".into()]).is_err());
        assert!(builder_from_args(vec!["--port".into()]).is_err());
        assert!(builder_from_args(vec!["--help".into()]).is_err());
    }
}
