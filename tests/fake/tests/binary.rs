//! The `fullstory-batch-fake` binary run as a process: its help, its usage errors, the
//! inspection endpoint, and new job ids on every run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fullstory-batch-fake");

#[test]
fn help_goes_to_stdout_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = Command::new(BIN).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = String::from_utf8(out.stdout).unwrap();
        for needle in [
            "Usage: fullstory-batch-fake",
            "--port",
            "/fake/stats",
            "Examples:",
        ] {
            assert!(text.contains(needle), "{flag}: no {needle:?} in {text}");
        }
        assert!(out.stderr.is_empty(), "{flag}");
    }
}

#[test]
fn usage_errors_exit_2_with_a_short_message() {
    for args in [&["--bogus"][..], &["--port"], &["--port", "many"]] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.lines().count() <= 2,
            "short, not the whole usage: {err}"
        );
        assert!(err.contains("--help"), "{err}");
    }
}

/// A running fake; killed on drop.
struct Running {
    child: Child,
    addr: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("a base url first: {line:?}"))
            .to_owned();
        Running { child, addr }
    }

    /// One HTTP/1.1 exchange: the status and the JSON body.
    fn send(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let auth = key.map_or(String::new(), |k| format!("Authorization: Basic {k}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: fake\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn create(&self) -> String {
        let body = r#"{"requests":[{"name":"signup"}]}"#;
        let (status, v) = self.send("POST", "/v2/events/batch", Some("k"), body);
        assert_eq!(status, 200, "{v}");
        v["job"]["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn it_serves_stats_and_every_run_hands_out_new_ids() {
    let one = Running::start(&["--key", "k", "--processing", "0s"]);
    let first = one.create();
    assert_ne!(first, one.create());
    let (status, stats) = one.send("GET", "/fake/stats", None, "");
    assert_eq!(status, 200, "no key needed");
    assert_eq!(stats["jobs"], 2);
    assert_eq!(stats["items"], 2);
    assert_eq!(stats["requests"]["create"], 2);
    let (_, jobs) = one.send("GET", "/fake/jobs", None, "");
    assert_eq!(jobs["jobs"][0]["id"], first.as_str());

    let two = Running::start(&["--key", "k"]);
    let other = two.create();
    assert_ne!(first, other, "a second run hands out other ids");

    let seeded = || Running::start(&["--id-seed", "3"]).create();
    assert_eq!(seeded(), seeded(), "--id-seed makes them repeat");
}
