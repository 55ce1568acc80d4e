//! Exactly once across crashes, black-box: `fsbatch import` run as a process against the
//! fake run as another process, SIGKILLed at random moments (reading, creating, waiting,
//! reading pages), the same command run again each time until it ends; then the fake's
//! `/fake/stats` must count exactly the input's items (a batch created twice under two keys
//! would count twice; one never created would be missing).
//!
//! CI runs a small size; `cargo test -p fsbatch --test crash -- --ignored --nocapture` runs
//! the full ones (200,000 events, 20 kills, with and without 20% faults) and prints figures.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fake server's binary, next to fsbatch's; built if it is not there yet.
fn fake_binary() -> PathBuf {
    let fsbatch = PathBuf::from(env!("CARGO_BIN_EXE_fsbatch"));
    let path = fsbatch.with_file_name(format!(
        "fullstory-batch-fake{}",
        std::env::consts::EXE_SUFFIX
    ));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "fullstory-batch-fake",
                "--bin",
                "fullstory-batch-fake",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "could not build the fake");
    }
    path
}

/// The fake, in its own process; killed when dropped.
struct Fake {
    child: Child,
    url: String,
}

impl Fake {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(fake_binary())
            .args(["--port", "0", "--processing", "300ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fake starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
        Self { child, url }
    }

    /// `GET /fake/stats`, with no crate for HTTP.
    fn stats(&self) -> serde_json::Value {
        use std::io::Write;
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /fake/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        // The body may come chunked: take the JSON object inside.
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end]).unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

struct Figures {
    runs: usize,
    kills: usize,
    took: Duration,
    stats: serde_json::Value,
    last: serde_json::Value,
}

fn run_until_done(
    events: usize,
    batch_size: usize,
    kills: usize,
    max_delay_ms: u64,
    fake_args: &[&str],
    seed: u64,
) -> Figures {
    let dir = std::env::temp_dir().join(format!(
        "fsbatch-crash-{}-{seed}-{events}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("events.jsonl");
    let text: String = (0..events)
        .map(|i| format!("{{\"name\":\"Crash Test {i}\",\"user\":{{\"uid\":\"u{}\"}},\"properties\":{{\"n\":{i}}}}}\n", i % 977))
        .collect();
    std::fs::write(&input, text).unwrap();

    let fake = Fake::start(fake_args);
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let (mut runs, mut killed) = (0, 0);
    let last = loop {
        runs += 1;
        assert!(runs < kills + 40, "no end after {runs} runs");
        let mut child = fsbatch(&dir, &input, &fake.url, batch_size);
        if killed < kills {
            let delay = Duration::from_millis(rng.between(5, max_delay_ms));
            let until = Instant::now() + delay;
            while Instant::now() < until && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL on unix
                child.wait().unwrap();
                killed += 1;
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "one JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        match code {
            Some(0 | 1) => break json,
            // Gave up on faults, or any other end: the same command again.
            _ => eprintln!("run {runs} ended with {code:?}: {}", json["error"]),
        }
    };
    let figures = Figures {
        runs,
        kills: killed,
        took: started.elapsed(),
        stats: fake.stats(),
        last,
    };
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

fn fsbatch(state: &Path, input: &Path, url: &str, batch_size: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fsbatch"))
        .arg("import")
        .arg(input)
        .args(["--json", "-q", "--timeout", "10m", "--base-url", url])
        .args(["--batch-size", &batch_size.to_string()])
        .env("FULLSTORY_API_KEY", "crash-test-key")
        .env("XDG_STATE_HOME", state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fsbatch starts")
}

fn check(name: &str, events: usize, f: &Figures) {
    eprintln!(
        "{name}: {events} events, {} runs, {} SIGKILLs, {:.1}s; fake: {} items in {} jobs, {} replayed creates, requests {}, faults {}",
        f.runs,
        f.kills,
        f.took.as_secs_f64(),
        f.stats["items"],
        f.stats["jobs"],
        f.stats["replayed_creates"],
        f.stats["requests"],
        f.stats["faults"],
    );
    assert_eq!(
        f.stats["items"].as_u64(),
        Some(events as u64),
        "{}",
        f.stats
    );
    assert_eq!(
        f.last["imports"].as_u64().unwrap() + f.last["errors"].as_u64().unwrap(),
        events as u64,
        "{}",
        f.last
    );
}

#[test]
fn killed_imports_resume_exactly_once() {
    let events = 20_000;
    let f = run_until_done(events, 2_000, 10, 400, &[], 7);
    check("ci", events, &f);
    assert!(f.kills >= 8, "too few kills to mean anything: {}", f.kills);
}

#[test]
#[ignore = "full size: a few minutes; run with --ignored --nocapture"]
fn killed_imports_resume_exactly_once_full() {
    let events = 200_000;
    let f = run_until_done(events, 10_000, 20, 1_500, &[], 11);
    check("full", events, &f);
    assert!(f.kills >= 20);
}

#[test]
#[ignore = "full size with 20% faults: a few minutes; run with --ignored --nocapture"]
fn killed_imports_resume_exactly_once_with_faults() {
    let events = 200_000;
    let f = run_until_done(
        events,
        10_000,
        20,
        4_000,
        &["--fault-rate", "0.2", "--seed", "5"],
        13,
    );
    check("faults", events, &f);
    assert!(f.kills >= 20);
}
