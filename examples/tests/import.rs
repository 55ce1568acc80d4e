//! `fsbatch import` run as a process against the fake server: Ctrl-C with `--json`, and
//! gzip input (from a file and from stdin, cut short or corrupt, interrupted and resumed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use fullstory_batch_fake::{FakeServer, Route};
use serde_json::Value;

const KEY: &str = "MARKER-key-7c21e0";

fn fake(processing: Duration) -> FakeServer {
    FakeServer::builder()
        .key(KEY)
        .processing_time(processing)
        .start_blocking()
        .unwrap()
}

/// A directory of this test's own (journals, inputs), emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fsbatch-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` events as JSON lines.
fn events(n: usize) -> String {
    (0..n).map(|i| format!("{{\"name\":\"e{i}\"}}\n")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `fsbatch ARGS`, the key in the environment and the journals in `dir`.
fn fsbatch(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fsbatch"));
    command.args(args);
    in_env(command, dir)
}

fn in_env(mut command: Command, dir: &Path) -> Command {
    command
        .env("FULLSTORY_API_KEY", KEY)
        .env("XDG_STATE_HOME", dir)
        .env_remove("FULLSTORY_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The output, checked never to show the key.
fn finished(output: Output) -> Output {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("MARKER-key"), "the key was printed: {all}");
    output
}

fn run(dir: &Path, args: &[&str]) -> Output {
    finished(fsbatch(dir, args).output().unwrap())
}

/// Stdout as exactly one JSON object.
fn one_json(output: &Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one JSON object: {text:?}");
    serde_json::from_str(&text).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Imports `file` (12 events) in batches of 5 against a fake whose jobs take 3 s, sends
/// SIGINT once the first job is being polled, checks the one JSON object and the resume
/// command, then runs that command and checks every event is imported exactly once.
fn interrupt_then_resume(dir: &Path, file: &Path) {
    let fake = fake(Duration::from_secs(3));
    let url = fake.base_url();
    let args = [
        "import",
        file.to_str().unwrap(),
        "--json",
        "--batch-size",
        "5",
        "--base-url",
        url,
    ];
    let child = fsbatch(dir, &args).spawn().unwrap();
    // A status poll comes after the create's answer was handled: the job is journaled and
    // in the report, and the import is mid-way.
    let started = Instant::now();
    while !fake
        .requests()
        .iter()
        .any(|r| r.route == Some(Route::Status))
    {
        assert!(started.elapsed() < Duration::from_secs(20), "never polled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = finished(child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));

    let v = one_json(&out);
    assert_eq!(v["result"], "interrupted", "{v}");
    assert_eq!(v["error"]["kind"], "interrupted", "{v}");
    let batches = v["batches"].as_array().unwrap();
    assert!(!batches.is_empty(), "{v}");
    assert_eq!(batches[0]["batch"], 0);
    assert_eq!(batches[0]["first_item"], 1);
    assert_eq!(batches[0]["items"], 5);
    assert!(batches[0]["job"].is_string(), "{v}");
    assert_eq!(batches[0]["status"], "created", "{v}");
    let journal = v["journal"].as_str().unwrap();
    assert!(Path::new(journal).is_file(), "{journal}");
    assert!(v["todo"].is_string(), "{v}");
    // Every word is plain, so the command is the arguments as given.
    let resume = format!("fsbatch {}", args.join(" "));
    assert_eq!(v["resume"], resume.as_str());
    assert!(
        stderr(&out).contains(&format!("run the same command again:\n  {resume}\n")),
        "{}",
        stderr(&out)
    );

    // The printed command, run by a shell, with this build's fsbatch first on the path.
    let bin = Path::new(env!("CARGO_BIN_EXE_fsbatch")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Command::new("sh");
    shell.args(["-c", &resume]).env("PATH", path);
    let out = finished(in_env(shell, dir).output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = one_json(&out);
    assert_eq!(v["result"], "completed", "{v}");
    assert_eq!(v["imports"], 12, "{v}");
    assert_eq!(v["journal"], journal);
    let stats = fake.stats();
    assert_eq!((stats.items, stats.jobs), (12, 3), "{stats:?}");
}

#[test]
fn ctrl_c_with_json_prints_one_object_and_the_command_that_resumes() {
    let dir = scratch("ctrl-c");
    let file = dir.join("events.jsonl");
    std::fs::write(&file, events(12)).unwrap();
    interrupt_then_resume(&dir, &file);
}

#[test]
fn a_gzip_input_resumes_after_ctrl_c() {
    let dir = scratch("ctrl-c-gzip");
    let file = dir.join("events.jsonl.gz");
    std::fs::write(&file, gzip(events(12).as_bytes())).unwrap();
    interrupt_then_resume(&dir, &file);
}

#[test]
fn a_gzip_file_imports_every_item_whatever_its_name() {
    let fake = fake(Duration::from_millis(100));
    let dir = scratch("gzip-file");
    let lines = dir.join("events.jsonl.gz");
    std::fs::write(&lines, gzip(events(30).as_bytes())).unwrap();
    // A JSON array, compressed, under a name that does not say so.
    let items: Vec<Value> = (0..20)
        .map(|i| serde_json::json!({"name": format!("a{i}")}))
        .collect();
    let array = dir.join("events.json");
    std::fs::write(&array, gzip(&serde_json::to_vec(&items).unwrap())).unwrap();
    let url = fake.base_url();
    for (file, n) in [(&lines, 30), (&array, 20)] {
        let file = file.to_str().unwrap();
        let out = run(&dir, &["import", file, "--json", "--base-url", url]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let v = one_json(&out);
        assert_eq!(
            (v["imports"].as_u64(), v["items_total"].as_u64()),
            (Some(n), Some(n))
        );
    }
    assert_eq!((fake.stats().items, fake.stats().jobs), (50, 2));
}

#[test]
fn gzip_on_stdin_imports_every_item() {
    let fake = fake(Duration::from_millis(100));
    let dir = scratch("gzip-stdin");
    let mut child = fsbatch(
        &dir,
        &["import", "-", "--json", "--base-url", fake.base_url()],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let bytes = gzip(events(40).as_bytes());
    child.stdin.take().unwrap().write_all(&bytes).unwrap(); // dropped: end of input
    let out = finished(child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(one_json(&out)["imports"], 40);
    assert_eq!(fake.stats().items, 40);
}

/// Five events named `{shape}-0` to `{shape}-4`.
fn named(shape: &str) -> Vec<Value> {
    (0..5)
        .map(|i| serde_json::json!({"name": format!("{shape}-{i}")}))
        .collect()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

/// The inputs people have, each with its events.
fn shapes() -> Vec<(&'static str, Vec<u8>, Vec<Value>)> {
    // JSON lines from a Windows tool: a byte-order mark and CRLF.
    let bom = named("bom");
    let mut bom_text = b"\xef\xbb\xbf".to_vec();
    for event in &bom {
        bom_text.extend(serde_json::to_vec(event).unwrap());
        bom_text.extend(b"\r\n");
    }
    // `jq '.[]' events.json` without `-c`.
    let jq = named("jq");
    let jq_text: String = jq.iter().map(pretty).collect();
    // The API's own create body, as the docs show it.
    let body = named("body");
    let body_text = pretty(&serde_json::json!({ "requests": body }));
    // A mix: a line, a pretty object, two on a line, a create body.
    let mix = named("mix");
    let mix_text = format!(
        "{}\n{}{} {}\n{{\"requests\": [{}]}}\n",
        mix[0],
        pretty(&mix[1]),
        mix[2],
        mix[3],
        mix[4]
    );
    vec![
        ("bom", bom_text, bom),
        ("jq", jq_text.into_bytes(), jq),
        ("body", body_text.into_bytes(), body),
        ("mix", mix_text.into_bytes(), mix),
    ]
}

/// Runs `fsbatch import` on `input`, as a file or on stdin, in a directory of its own.
fn import(name: &str, input: &[u8], stdin: bool, url: &str) -> (std::process::Child, PathBuf) {
    let dir = scratch(name);
    let file = dir.join("input");
    std::fs::write(&file, input).unwrap();
    let imported = dir.join("imported.jsonl");
    let arg = if stdin { "-" } else { file.to_str().unwrap() };
    let args = [
        "import",
        arg,
        "--json",
        "--base-url",
        url,
        "--imports-out",
        imported.to_str().unwrap(),
    ];
    let mut child = fsbatch(&dir, &args).stdin(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if stdin {
        pipe.write_all(input).unwrap();
    }
    drop(pipe); // the end of the input
    (child, imported)
}

#[test]
fn each_shape_imports_exactly_its_items_from_a_file_and_stdin_plain_and_gzip() {
    let fake = fake(Duration::from_millis(50));
    let mut runs = Vec::new();
    for (shape, text, events) in shapes() {
        for (gz, stdin) in [(false, false), (false, true), (true, false), (true, true)] {
            let name = format!("{shape}-gz{gz}-stdin{stdin}");
            let input = if gz { gzip(&text) } else { text.clone() };
            let (child, imported) = import(&name, &input, stdin, fake.base_url());
            runs.push((name, events.clone(), child, imported));
        }
    }
    for (name, events, child, imported) in runs {
        let out = finished(child.wait_with_output().unwrap());
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let v = one_json(&out);
        assert_eq!(v["imports"], events.len(), "{name}: {v}");
        // Each event once (the fake adds a timestamp to what it keeps).
        let mut got: Vec<Value> = std::fs::read_to_string(&imported)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["name"].clone())
            .collect();
        got.sort_by_key(Value::to_string);
        let sent: Vec<Value> = events.iter().map(|e| e["name"].clone()).collect();
        assert_eq!(got, sent, "{name}");
    }
    assert_eq!(fake.stats().items, 4 * 4 * 5);
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let units = bom.then_some(0xfeff).into_iter().chain(text.encode_utf16());
    units
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

#[test]
fn other_inputs_are_refused_by_what_they_look_like_and_their_line() {
    let fake = fake(Duration::ZERO);
    let event = "{\"name\":\"ok\"}\n";
    let cases = [
        (
            "csv",
            b"name,uid\nOrder Completed,u1\n".to_vec(),
            "line 1: looks like CSV (`name,uid`), not JSON: convert it to JSON lines, e.g. ",
        ),
        (
            "utf16",
            utf16(event, false, true),
            "line 1: looks like UTF-16 (little-endian, byte-order mark FF FE)",
        ),
        (
            "utf16be",
            utf16(event, true, false),
            "line 1: looks like UTF-16 (big-endian, every other byte NUL)",
        ),
        (
            "wrapped",
            format!("{event}{{\"events\": [{event}]}}").into_bytes(),
            "line 2: an object without `requests` (its first key `events` holds an array)",
        ),
        (
            "body-and-more",
            b"{\"requests\": [{\"name\":\"a\"}], \"extra\": 1}".to_vec(),
            "line 1, column 28: the create body goes on after its `requests` array",
        ),
    ];
    let mut runs = Vec::new();
    for (shape, text, seen) in cases {
        for (gz, stdin) in [(false, false), (false, true), (true, false)] {
            let name = format!("refused-{shape}-gz{gz}-stdin{stdin}");
            let input = if gz { gzip(&text) } else { text.clone() };
            let (child, _) = import(&name, &input, stdin, fake.base_url());
            runs.push((name, seen, child));
        }
    }
    for (name, seen, child) in runs {
        let out = finished(child.wait_with_output().unwrap());
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let v = one_json(&out);
        assert_eq!(v["error"]["kind"], "invalid_input", "{name}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(seen), "{name}: {message}");
    }
    assert_eq!(fake.stats().items, 0, "nothing was imported");
}

#[test]
fn a_cut_or_corrupt_gzip_file_is_refused_before_sending() {
    let fake = fake(Duration::ZERO);
    let dir = scratch("gzip-corrupt");
    let whole = gzip(events(200).as_bytes());
    let mut bad_checksum = whole.clone();
    let crc = bad_checksum.len() - 8; // the trailer: CRC-32, then the length
    bad_checksum[crc] ^= 0xff;
    let cases = [
        ("cut.jsonl.gz", whole[..whole.len() / 2].to_vec()),
        ("checksum.jsonl.gz", bad_checksum),
        ("header.jsonl.gz", b"\x1f\x8bnot gzip at all".to_vec()),
    ];
    let url = fake.base_url();
    for (name, bytes) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let file = file.to_str().unwrap();
        let out = run(&dir, &["import", file, "--json", "--base-url", url]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let v = one_json(&out);
        assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(file) && message.contains("gzip stream is cut short or corrupt"),
            "{name}: {message}"
        );
    }
    // A bad item inside a gzip file is named by its line, as in a plain one.
    let file = dir.join("bad-item.jsonl.gz");
    std::fs::write(&file, gzip(b"{\"name\":\"ok\"}\n{\"name\":\"\"}\n")).unwrap();
    let out = run(&dir, &["import", file.to_str().unwrap(), "--base-url", url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert!(fake.requests().is_empty(), "nothing was sent");
}

#[test]
fn a_bad_item_on_stdin_leaves_the_rest_to_do() {
    let fake = fake(Duration::ZERO);
    let dir = scratch("stdin-bad-item");
    let mut child = fsbatch(
        &dir,
        &[
            "import",
            "-",
            "--json",
            "--batch-size",
            "5",
            "--base-url",
            fake.base_url(),
        ],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    // Items 1 to 5 make a batch that is sent; item 7 is bad; 8 to 10 are never read.
    let mut input = events(6);
    input.push_str("{\"name\":\"\"}\n");
    input.push_str(&events(3));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = finished(child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = one_json(&out);
    assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
    let todo = v["todo"].as_str().unwrap();
    assert!(!todo.contains("every item was read"), "{todo}");
    assert!(todo.contains("after item 5 never sent"), "{todo}");
    assert_eq!(fake.stats().items, 5);
}

/// Regression: failed items went to the errors file as each page came, so a batch whose
/// pages were being read when the process was killed wrote those lines again on the next
/// run, which reads the batch's pages from the start.
#[test]
fn a_kill_while_reading_pages_writes_each_failed_item_once() {
    use fullstory_batch_fake::{Fault, Script};
    let fake = FakeServer::builder()
        .key(KEY)
        .processing_time(Duration::from_millis(100))
        .page_size(10)
        .start_blocking()
        .unwrap();
    // The second errors page stalls, once: the first page's items are in hand by then.
    fake.script(
        Script::on(Route::Errors)
            .nth(2)
            .respond(Fault::Stall(Duration::from_secs(30))),
    );
    let dir = scratch("kill-in-pages");
    let file = dir.join("bad.jsonl");
    let bad: String = (0..30)
        .map(|i| format!("{{\"name\":\"bad {i}\"}}\n"))
        .collect();
    std::fs::write(&file, bad).unwrap();
    let args = [
        "import",
        file.to_str().unwrap(),
        "--json",
        "--base-url",
        fake.base_url(),
    ];

    let mut child = fsbatch(&dir, &args).spawn().unwrap();
    let started = Instant::now();
    // A request is logged once answered: after the first page, the second is stalling.
    while !fake
        .requests()
        .iter()
        .any(|r| r.route == Some(Route::Errors))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never read page 1"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still reading pages");
    child.kill().unwrap(); // SIGKILL, mid-way through the pages
    child.wait().unwrap();

    let out = run(&dir, &args);
    let v = one_json(&out);
    assert_eq!(v["result"], "completed_with_failures", "{v}");
    let errors = std::fs::read_to_string(v["errors_file"].as_str().unwrap()).unwrap();
    let mut names: Vec<String> = errors
        .lines()
        .map(|line| {
            let item: Value = serde_json::from_str(line).unwrap();
            item.to_string()
        })
        .collect();
    assert_eq!(names.len(), 30, "{errors}");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 30, "a failed item written twice: {errors}");
    assert_eq!(fake.stats().jobs, 1);
}
