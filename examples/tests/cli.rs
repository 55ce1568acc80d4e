//! `fsbatch` run as a process against the fake server: exit codes, `--json` shapes, and the
//! key never printed.

use std::process::{Command, Output};
use std::time::Duration;

use fullstory_batch_fake::{FakeServer, Resource};
use serde_json::{Value, json};

const KEY: &str = "MARKER-key-5f3a9c";

fn fake(processing: Duration) -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .processing_time(processing)
        .start_blocking()
        .unwrap()
}

fn job(fake: &FakeServer, resource: Resource, bad: usize) -> String {
    let items = (0..10)
        .map(|i| match resource {
            Resource::Events => {
                json!({"name": if i < bad { format!("bad-{i}") } else { format!("e{i}") }})
            }
            Resource::Users => {
                json!({"uid": if i < bad { format!("bad-{i}") } else { format!("u{i}") }})
            }
        })
        .collect();
    fake.insert_job(resource, items)
}

fn fsbatch(fake: &FakeServer, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fsbatch"));
    command
        .args(args)
        .env("FULLSTORY_BASE_URL", fake.base_url())
        // Journals in a directory of this test run's own.
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join(format!("fsbatch-cli-state-{}", std::process::id())),
        )
        .env_remove("FULLSTORY_API_KEY");
    if let Some(key) = key {
        command.env("FULLSTORY_API_KEY", key);
    }
    let output = command.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("MARKER-key"), "the key was printed: {all}");
    output
}

fn stdout_json(output: &Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one JSON object: {text:?}");
    serde_json::from_str(&text).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn status_json_is_the_api_shape() {
    let fake = fake(Duration::ZERO);
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(&fake, Some(KEY), &["status", &id, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["job"]["id"], id.as_str());
    assert_eq!(v["job"]["status"], "COMPLETED");
    assert_eq!(
        (v["imports"].as_u64(), v["errors"].as_u64()),
        (Some(10), Some(0))
    );
    assert!(v["job"]["created"].is_string() && v["job"]["finished"].is_string());
}

#[test]
fn status_of_a_failed_job_succeeds_and_prints_for_people() {
    let fake = fake(Duration::ZERO);
    let id = job(&fake, Resource::Events, 3);
    let out = fsbatch(&fake, Some(KEY), &["status", &id]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FAILED") && text.contains("imports  7") && text.contains("errors   3"),
        "{text}"
    );
}

#[test]
fn status_of_a_running_job_leaves_finished_out() {
    let fake = fake(Duration::from_secs(600));
    let id = job(&fake, Resource::Events, 0);
    let v = stdout_json(&fsbatch(&fake, Some(KEY), &["status", &id, "--json"]));
    assert_eq!(v["job"]["status"], "PROCESSING");
    assert!(v["job"].get("finished").is_none());
}

#[test]
fn wait_exit_codes_for_completed_and_failed() {
    let fake = fake(Duration::from_millis(300));
    let ok = job(&fake, Resource::Events, 0);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["wait", &ok, "--interval", "100ms", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["job"]["status"], "COMPLETED");

    let failed = job(&fake, Resource::Events, 2);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["wait", &failed, "--interval", "100ms", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["errors"], 2);
}

#[test]
fn wait_shows_plain_progress_lines_without_a_terminal() {
    let fake = fake(Duration::from_millis(400));
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(&fake, Some(KEY), &["wait", &id, "--interval", "100ms"]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("status ")).collect();
    assert_eq!(lines.len(), 1, "one line per change, not per poll: {err}");
    assert!(lines[0].contains("PROCESSING"), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}'),
        "no terminal control codes: {err:?}"
    );
}

#[test]
fn the_deadline_exits_4() {
    let fake = fake(Duration::from_secs(3600));
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &[
            "wait",
            &id,
            "--timeout",
            "700ms",
            "--interval",
            "200ms",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["kind"], "deadline_exceeded");
    assert_eq!(v["error"]["last_status"]["job"]["status"], "PROCESSING");
}

#[test]
fn api_errors_exit_3_with_status_code_and_message() {
    let fake = fake(Duration::ZERO);
    let out = fsbatch(
        &fake,
        Some("MARKER-key-wrong"),
        &["status", "nope", "--json"],
    );
    assert_eq!(out.status.code(), Some(3));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["kind"], "unauthorized");
    assert_eq!(v["error"]["status"], 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(v["error"]["message"].is_string());

    let out = fsbatch(&fake, Some(KEY), &["status", "no-such-job"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("404") && err.contains("resource_not_found"),
        "{err}"
    );

    let out = fsbatch(&fake, Some(KEY), &["wait", "no-such-job", "--json"]);
    assert_eq!(out.status.code(), Some(3), "404 is not retried");
    assert_eq!(stdout_json(&out)["error"]["status"], 404);
}

#[test]
fn transport_errors_exit_3() {
    let fake = fake(Duration::ZERO);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["--base-url", &closed, "status", "x", "--json"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout_json(&out)["error"]["kind"], "connect");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let fake = fake(Duration::ZERO);
    let cases: [(Option<&str>, &[&str]); 7] = [
        (None, &["status", "x"]),
        (Some("MARKER-key\nInjected: 1"), &["status", "x"]),
        (Some(KEY), &["--base-url", "ftp://x", "status", "x"]),
        (
            Some(KEY),
            &[
                "--base-url",
                "http://127.0.0.1:1",
                "--region",
                "eu",
                "status",
                "x",
            ],
        ),
        (Some(KEY), &["status", ""]),
        (Some(KEY), &["wait", "x", "--timeout", "soon"]),
        (Some(KEY), &["frobnicate"]),
    ];
    for (key, args) in cases {
        let out = fsbatch(&fake, key, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn users_and_options_after_the_subcommand() {
    let fake = fake(Duration::ZERO);
    let id = job(&fake, Resource::Users, 0);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &[
            "status",
            &id,
            "--users",
            "--request-timeout",
            "5s",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = fake.requests().pop().unwrap();
    assert!(last.path.starts_with("/v2/users/batch/"), "{}", last.path);
    assert_eq!(last.header("authorization").unwrap(), "Basic [redacted]");
}

#[test]
fn the_demo_finishes_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_fsbatch"))
        .arg("demo")
        .env_remove("FULLSTORY_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FAILED") && text.contains("imports  975"),
        "{text}"
    );
    assert!(
        text.contains("imported items: 975") && text.contains("failed items: 25"),
        "{text}"
    );
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("fsbatch-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn import_a_json_array_of_events() {
    let fake = fake(Duration::from_millis(200));
    let items: Vec<Value> = (0..30)
        .map(|i| json!({"name": if i < 4 { format!("bad-{i}") } else { format!("e{i}") }}))
        .collect();
    let file = temp_file("events.json", &serde_json::to_string(&items).unwrap());
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["import", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a partial failure: {}",
        stderr(&out)
    );
    let v = stdout_json(&out);
    assert_eq!(
        (v["imports"].as_u64(), v["errors"].as_u64()),
        (Some(26), Some(4))
    );
    assert_eq!(fake.jobs_created(), 1);
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert!(
        create
            .header("idempotency-key")
            .is_some_and(|k| !k.is_empty())
    );
}

#[test]
fn import_json_lines_of_users() {
    let fake = fake(Duration::from_millis(100));
    let file = temp_file(
        "users.jsonl",
        "{\"uid\":\"u1\",\"email\":\"a@b.c\"}\n\n{\"uid\":\"u2\"}\n",
    );
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["--users", "import", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v2/users/batch")
    );
}

#[test]
fn import_refuses_bad_files_before_sending() {
    let fake = fake(Duration::ZERO);
    let cases = [
        ("broken.json", "[{\"name\":"),
        ("empty-name.jsonl", "{\"name\":\"ok\"}\n{\"name\":\"\"}\n"),
        ("empty.json", "[]"),
    ];
    for (name, content) in cases {
        let file = temp_file(name, content);
        let out = fsbatch(&fake, Some(KEY), &["import", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
    }
    let file = temp_file("empty-name2.jsonl", "{\"name\":\"ok\"}\n{\"name\":\"\"}\n");
    let err = stderr(&fsbatch(
        &fake,
        Some(KEY),
        &["import", file.to_str().unwrap()],
    ));
    assert!(err.contains("line 2") && err.contains("name"), "{err}");
    assert!(fake.requests().is_empty(), "nothing was sent");
}

#[test]
fn imports_and_errors_stream_json_lines() {
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::ZERO)
        .page_size(3)
        .start_blocking()
        .unwrap();
    let id = job(&fake, Resource::Events, 2);
    let out = fsbatch(&fake, Some(KEY), &["imports", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert!(
        lines
            .iter()
            .all(|l| l["name"].as_str().is_some_and(|n| n.starts_with('e')))
    );

    let out = fsbatch(&fake, Some(KEY), &["errors", &id]);
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| {
        l["event"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("bad"))
            && l["code"].is_string()
    }));
}

#[test]
fn ctrl_c_prints_how_to_resume() {
    let fake = fake(Duration::from_secs(3600));
    let id = job(&fake, Resource::Users, 0);
    let child = Command::new(env!("CARGO_BIN_EXE_fsbatch"))
        .args(["wait", &id, "--users"])
        .env("FULLSTORY_BASE_URL", fake.base_url())
        .env("FULLSTORY_API_KEY", KEY)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has polled once, so the handler is installed.
    let started = std::time::Instant::now();
    while fake.requests().is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("fsbatch --users wait {id}"))
            || err.contains(&format!("fsbatch --users wait '{id}'")),
        "{err}"
    );
    assert!(!err.contains(KEY));
}

/// `n` events as JSON lines, in a temporary file.
fn events_file(n: usize) -> tempfile_path::TempFile {
    let text: String = (0..n).map(|i| format!("{{\"name\":\"e{i}\"}}\n")).collect();
    tempfile_path::TempFile::new(&text)
}

/// A file deleted when dropped, with no crate for it.
mod tempfile_path {
    pub struct TempFile(pub std::path::PathBuf);

    impl TempFile {
        pub fn new(text: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "fsbatch-cli-{}-{}.jsonl",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        pub fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Regression: a batch import sent its requests with no deadline, so a stalled create
/// waited out the whole request timeout (30 s) whatever `--timeout` said.
#[test]
fn import_timeout_cuts_a_stalled_create() {
    use fullstory_batch_fake::{Fault, Route, Script};
    let fake = fake(Duration::from_millis(100));
    fake.script(
        Script::on(Route::Create)
            .always()
            .respond(Fault::Stall(STALL)),
    );
    const STALL: Duration = Duration::from_secs(20);
    let file = events_file(3);
    let started = std::time::Instant::now();
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["import", file.arg(), "--timeout", "1500ms", "--json"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // Cut by the timeout, not by the stall's end (how much sooner is the machine's to say).
    assert!(took < STALL, "took {took:?}");
    assert_eq!(stdout_json(&out)["error"]["kind"], "deadline_exceeded");
}

/// Regression: each batch's deadline counted from that batch's own start, so a
/// three-batch import went on polling past `--timeout`.
#[test]
fn import_timeout_holds_across_batches() {
    let fake = fake(Duration::from_secs(3600));
    // Five items in batches of two: three batches, two in progress at once.
    let file = events_file(5);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["import", file.arg(), "--batch-size", "2", "--timeout", "3s"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // The command started before its first request, so its deadline is at most 3 s after
    // that request (on a busy machine the process may start, and read its input, late).
    let requests = fake.requests();
    let first = requests.first().expect("a create").instant;
    let deadline = first + Duration::from_secs(3);
    let late: Vec<_> = requests
        .into_iter()
        .filter(|r| r.instant > deadline + Duration::from_secs(1))
        .collect();
    assert!(late.is_empty(), "requests after the timeout: {late:?}");
}

/// A policy that would flood the API is refused where it is made.
#[test]
fn a_flooding_interval_is_refused() {
    let fake = fake(Duration::ZERO);
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(&fake, Some(KEY), &["wait", &id, "--interval", "0s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("would flood the api"),
        "{}",
        stderr(&out)
    );
    assert!(fake.requests().is_empty());
}

/// A closed port fails in seconds, not after a minute and a half of retries.
#[test]
fn a_closed_port_fails_fast() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = closed.local_addr().unwrap().to_string();
    let url = format!("http://{target}");
    drop(closed);
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fsbatch"))
        .args(["--base-url", &url, "wait", "some-job"])
        .env("FULLSTORY_API_KEY", KEY)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Where it could not connect, said once in the error (not once per attempt or per
    // cause); the one retry line before it says where too, once.
    let text = stderr(&out);
    let error = text
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        error.contains(&format!("could not connect to {target}")),
        "{text}"
    );
    assert_eq!(error.matches(&target).count(), 1, "{text}");
    for line in text.lines() {
        assert!(line.matches(&target).count() <= 1, "{text}");
    }
    assert!(text.matches(&target).count() <= 2, "{text}");
    assert!(!text.contains(KEY), "{text}");
}

/// `fsbatch ARGS` with no key and no base URL in the environment.
fn fsbatch_alone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fsbatch"))
        .args(args)
        .env_remove("FULLSTORY_API_KEY")
        .env_remove("FULLSTORY_BASE_URL")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn help_describes_the_tool_its_environment_exit_codes_and_examples() {
    for flag in ["--help", "-h"] {
        let out = fsbatch_alone(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = stdout(&out);
        assert!(
            text.starts_with("Import events and users into Fullstory"),
            "{flag}: opens with what the tool does: {text}"
        );
        assert!(!text.contains("project's examples"), "{text}");
        for needle in [
            "Commands:",
            "import",
            "wait",
            "completions",
            "Examples:",
            "fsbatch import events.json",
            "FULLSTORY_API_KEY",
            "FULLSTORY_BASE_URL",
            "Exit codes:",
            "130",
            "--quiet",
        ] {
            assert!(text.contains(needle), "{flag}: no {needle:?} in {text}");
        }
        for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "130 "] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(code)),
                "{flag}: exit code {code}in {text}"
            );
        }
    }
}

#[test]
fn every_command_help_has_an_example() {
    let commands = [
        "import",
        "status",
        "wait",
        "imports",
        "errors",
        "demo",
        "completions",
        "man",
    ];
    for command in commands {
        let out = fsbatch_alone(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command}");
        let text = stdout(&out);
        assert!(
            text.contains("Example") && text.contains(&format!("fsbatch {command}"))
                || text.contains(&format!("fsbatch --users {command}")),
            "{command}: {text}"
        );
    }
}

#[test]
fn demo_help_lists_no_connection_options() {
    let out = fsbatch_alone(&["demo", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for option in [
        "--base-url",
        "--region",
        "--users",
        "--request-timeout",
        "--quiet",
    ] {
        assert!(!text.contains(option), "{option} in {text}");
    }
    // They are still taken before and after the commands that use them.
    let status = fsbatch_alone(&["status", "--help"]);
    assert!(stdout(&status).contains("--base-url"));
    // And refused where they would do nothing.
    for args in [
        &["--users", "demo"][..],
        &["demo", "--base-url", "http://x"],
    ] {
        let out = fsbatch_alone(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn completions_print_a_script() {
    let cases = [
        ("bash", "complete -F _fsbatch"),
        ("zsh", "#compdef fsbatch"),
        ("fish", "complete -c fsbatch"),
    ];
    for (shell, needle) in cases {
        let out = fsbatch_alone(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("base-url"), "{shell}: knows the options");
    }
    assert_eq!(
        fsbatch_alone(&["completions", "tcsh"]).status.code(),
        Some(2)
    );
}

#[test]
fn man_prints_roff() {
    let out = fsbatch_alone(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = stdout(&out);
    assert!(page.contains(".TH fsbatch 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH \"EXIT CODES\"",
        ".SH \"ENVIRONMENT\"",
    ] {
        assert!(page.contains(section), "no {section}: {page}");
    }
    assert!(page.contains("FULLSTORY_API_KEY"));
}

#[test]
fn quiet_silences_the_plain_http_warning() {
    // A plain-http host that is not loopback warns even without a terminal. The empty job
    // id then stops the command (exit 2) before anything is sent.
    let remote = ["--base-url", "http://192.0.2.1:9", "status", ""];
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fsbatch"))
            .args(extra)
            .args(remote)
            .env("FULLSTORY_API_KEY", KEY)
            .env_remove("FULLSTORY_BASE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        stderr(&out)
    };
    let loud = run(&[]);
    assert_eq!(loud.matches("plain http").count(), 1, "{loud}");
    assert!(!loud.contains(KEY));
    for quiet in ["--quiet", "-q"] {
        let err = run(&[quiet]);
        assert!(!err.contains("plain http"), "{quiet}: {err}");
        assert!(err.contains("JOB_ID"), "errors still print: {err}");
    }

    // A loopback fake, no terminal: no warning, quiet or not.
    let fake = fake(Duration::ZERO);
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(&fake, Some(KEY), &["status", &id]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("plain http"), "{}", stderr(&out));
}

#[test]
fn quiet_silences_progress_but_not_the_outcome() {
    let fake = fake(Duration::from_millis(300));
    let id = job(&fake, Resource::Events, 0);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["wait", &id, "--interval", "100ms", "-q"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("status "),
        "no progress lines: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));
}

/// `--json` keeps its promise of one object on stdout on a usage error and on a bad item.
#[test]
fn import_json_is_one_object_on_usage_errors() {
    let fake = fake(Duration::ZERO);
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["import", "x.jsonl", "--batch-size", "many", "--json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout_json(&out)["error"]["kind"], "usage");
    let file = temp_file("bad-line.jsonl", "{\"name\":\"ok\"}\n\n{\"name\":\"\"}\n");
    let out = fsbatch(
        &fake,
        Some(KEY),
        &["import", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 3"),
        "{v}"
    );
    assert!(fake.requests().is_empty(), "nothing was sent");
}

/// `FileJournal` is one file held by both adapters (see its module's doc): they must not
/// drift apart. Checked here, in the crate that is never published, which has both.
#[test]
fn both_adapters_hold_the_same_file_journal() {
    let ureq = include_str!("../../adapters/ureq/src/journal.rs");
    let hyper = include_str!("../../adapters/hyper/src/journal.rs");
    assert!(
        ureq == hyper,
        "adapters/{{ureq,hyper}}/src/journal.rs differ: copy one onto the other"
    );
}
