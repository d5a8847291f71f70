//! The built `propexo-webhooks` binary against real receivers started here: the crate's axum
//! receiver on 127.0.0.1:0, and the binary's own `capture`.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use propexo_webhooks::{
    Delivery, Dispatcher, Inbox, Receiver, Retry, SqliteInbox, VerifiedBody, Verifier, sign,
};
use serde_json::Value;

const SECRET: &str = "cli-test-secret-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_propexo-webhooks");

fn cli() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("PROPEXO_WEBHOOK_SECRET");
    command
}

/// Runs the binary off the async runtime, so an in-test receiver keeps answering.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// The crate's axum receiver; counts handled deliveries and keeps their bodies.
struct TestReceiver {
    url: String,
    handled: Arc<AtomicU64>,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

async fn receiver() -> TestReceiver {
    let handled = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (count, kept) = (handled.clone(), bodies.clone());
    let dispatcher = Dispatcher::new().fallback(move |delivery: Delivery| {
        count.fetch_add(1, Ordering::SeqCst);
        kept.lock().unwrap().push(delivery.body().clone());
        Ok::<_, Infallible>(())
    });
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap(), dispatcher);
    let app =
        axum::Router::new().route("/webhooks/propexo", propexo_webhooks::axum::route(receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestReceiver {
        url: format!("http://{address}/webhooks/propexo"),
        handled,
        bodies,
    }
}

fn fixture_names() -> Vec<String> {
    let output = cli().args(["fixtures", "list", "--json"]).output().unwrap();
    assert!(output.status.success());
    json_lines(&output)
        .iter()
        .map(|line| line["name"].as_str().unwrap().to_owned())
        .collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let output = cli().args(["fixtures", "show", name]).output().unwrap();
    assert!(output.status.success(), "{name}");
    output.stdout
}

#[test]
fn sign_then_verify_round_trip_and_openssl_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.json");
    // Bytes as Propexo may send them: pretty-printed, non-ASCII, a trailing newline.
    let body = "{\n  \"event\": \"JOB_FAILURE\",\n  \"job_id\": \"clz8job\u{e9}\"\n}\n";
    std::fs::write(&path, body).unwrap();

    let signed = cli()
        .args(["sign", "--secret", SECRET])
        .arg(&path)
        .output()
        .unwrap();
    assert!(signed.status.success());
    let signature = stdout(&signed).trim().to_owned();
    assert_eq!(signature, sign(SECRET, body.as_bytes()));
    assert!(
        !stdout(&signed).contains(SECRET)
            && !String::from_utf8_lossy(&signed.stderr).contains(SECRET)
    );

    // The same from stdin, with the secret from the environment.
    let mut child = cli()
        .args(["sign", "--header"])
        .env("PROPEXO_WEBHOOK_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let header = child.wait_with_output().unwrap();
    assert_eq!(
        stdout(&header).trim(),
        format!("propexo-signature: {signature}")
    );

    let verified = cli()
        .args([
            "verify",
            "--secret",
            "another-secret-000",
            "--secret",
            SECRET,
            "--json",
            "-s",
            &signature,
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    assert_eq!(json_lines(&verified)[0]["secret"], 2);

    // A wrong secret: exit 1, and the diagnosis says why.
    let wrong = cli()
        .args([
            "verify",
            "--secret",
            "another-secret-000",
            "--json",
            "-s",
            &signature,
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        json_lines(&wrong)[0]["diagnoses"][0]["kind"],
        "wrong_secret"
    );

    // Propexo signed the compact body; something pretty-printed it before verification:
    // the diagnosis names the re-serialization.
    let compact = serde_json::to_string(&serde_json::from_str::<Value>(body).unwrap()).unwrap();
    let compact_signature = sign(SECRET, compact.as_bytes());
    let reserialized = cli()
        .args([
            "verify",
            "--secret",
            SECRET,
            "--json",
            "-s",
            &compact_signature,
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(reserialized.status.code(), Some(1));
    assert_eq!(
        json_lines(&reserialized)[0]["diagnoses"][0]["kind"],
        "body_reserialized"
    );

    // openssl computes the same HMAC, and verify accepts its signature.
    match Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET, "-r"])
        .arg(&path)
        .output()
    {
        Ok(output) if output.status.success() => {
            let text = stdout(&output);
            let theirs = text.split_whitespace().next().unwrap();
            assert_eq!(theirs, signature);
            let ok = cli()
                .args(["verify", "--secret", SECRET, "-s", theirs])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(ok.status.code(), Some(0));
        }
        _ => println!("SKIPPED: the openssl comparison: no working `openssl` on this machine"),
    }

    // Usage errors exit 2 and say what to do.
    let no_secret = cli().args(["sign"]).arg(&path).output().unwrap();
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("PROPEXO_WEBHOOK_SECRET"));
    let missing = cli()
        .args(["sign", "--secret", SECRET, "/no/such/file"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        cli().args(["verify"]).output().unwrap().status.code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_of_every_fixture_gets_200() {
    let receiver = receiver().await;
    let names = fixture_names();
    assert!(names.len() > 150, "{}", names.len());
    let output = run({
        let mut command = cli();
        command.args([
            "send",
            &receiver.url,
            "--all-fixtures",
            "--json",
            "--secret",
            SECRET,
        ]);
        command
    })
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), names.len());
    for (line, name) in lines.iter().zip(&names) {
        assert_eq!(line["body"], name.as_str());
        assert_eq!(line["status"], 200, "{line}");
    }
    // Every fixture is a distinct body, handled once.
    assert_eq!(receiver.handled.load(Ordering::SeqCst), names.len() as u64);
    let bodies = receiver.bodies.lock().unwrap().clone();
    for (body, name) in bodies.iter().zip(&names) {
        assert_eq!(body.as_ref(), fixture(name).as_slice(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_bad_signature_gets_401_and_exit_1() {
    let receiver = receiver().await;
    let bad = run({
        let mut command = cli();
        command.args([
            "send",
            &receiver.url,
            "--bad-signature",
            "--json",
            "--secret",
            SECRET,
        ]);
        command
    })
    .await;
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(json_lines(&bad)[0]["status"], 401);
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 0);

    // --set changes the body, which is then signed as sent.
    let set = run({
        let mut command = cli();
        command.args([
            "send",
            &receiver.url,
            "--json",
            "--secret",
            SECRET,
            "--set",
            r#"data.diff.new.status_normalized="TERMINATED""#,
        ]);
        command
    })
    .await;
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let body = receiver.bodies.lock().unwrap()[0].clone();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        value["data"]["diff"]["new"]["status_normalized"],
        "TERMINATED"
    );

    // A --set value that is not JSON is a usage error that says how to quote.
    let unquoted = run({
        let mut command = cli();
        command.args([
            "send",
            &receiver.url,
            "--secret",
            SECRET,
            "--set",
            "data.x=approved",
        ]);
        command
    })
    .await;
    assert_eq!(unquoted.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unquoted.stderr).contains("quote strings"));
}

/// Starts `capture`, returns the child and the URL it listens on.
fn start_capture(dir: &Path, count: usize, extra: &[&str]) -> (std::process::Child, String) {
    let mut child = cli()
        .args([
            "capture",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--count",
            &count.to_string(),
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    let line: Value = serde_json::from_str(&first).unwrap();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, line["listening"].as_str().unwrap().to_owned())
}

fn captured_bodies(dir: &Path) -> Vec<Vec<u8>> {
    let mut dirs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("meta.json").is_file())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|path| std::fs::read(path.join("body.bin")).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_then_replay_redelivers_byte_identical_bodies() {
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first");
    let second = work.path().join("second");
    let odd = work.path().join("odd.json");
    // Whitespace, key order and escapes that a re-serialization would change.
    std::fs::write(&odd, b"{ \"trigger\":\"JOB_SUCCESS\" ,\"data\":{\"event\":\"JOB_SUCCESS\",\"job_id\":\"j\\u00e9\"} }\r\n").unwrap();
    let names = [
        "data_update.envelope",
        "data_new.flat",
        "sync_complete.envelope",
    ];

    let (mut capture, url) = start_capture(&first, names.len() + 1, &["--secret", SECRET]);
    let mut send = cli();
    send.args([
        "send",
        &format!("{url}webhooks/propexo"),
        "--secret",
        SECRET,
        "-H",
        "x-trace: 7",
    ]);
    for name in names {
        send.args(["--fixture", name]);
    }
    assert!(run(send).await.status.success());
    let mut send_odd = cli();
    send_odd
        .args(["send", &url, "--secret", SECRET, "--body"])
        .arg(&odd);
    assert!(run(send_odd).await.status.success());
    assert!(
        tokio::task::spawn_blocking(move || capture.wait().unwrap())
            .await
            .unwrap()
            .success()
    );

    let sent: Vec<Vec<u8>> = names
        .iter()
        .map(|name| fixture(name))
        .chain([std::fs::read(&odd).unwrap()])
        .collect();
    assert_eq!(captured_bodies(&first), sent);
    let meta: Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(&first)
                .unwrap()
                .map(|e| e.unwrap().path())
                .min()
                .unwrap()
                .join("meta.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["verified"], true);
    assert!(
        meta["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "x-trace" && h[1] == "7")
    );

    // Dry run: lists, sends nothing.
    let mut dry = cli();
    dry.args(["replay", "http://127.0.0.1:9/", "--dry-run", "--json"])
        .arg(&first);
    let dry = run(dry).await;
    assert_eq!(dry.status.code(), Some(0));
    assert_eq!(json_lines(&dry).len(), sent.len() + 1);

    // Replay into a second capture: the same bytes, with the original signatures.
    let (mut capture, url) = start_capture(&second, sent.len(), &["--secret", SECRET]);
    let mut replay = cli();
    replay
        .args(["replay", &url, "--json", "-c", "2"])
        .arg(&first);
    let replayed = run(replay).await;
    assert_eq!(replayed.status.code(), Some(0), "{}", stdout(&replayed));
    assert!(
        tokio::task::spawn_blocking(move || capture.wait().unwrap())
            .await
            .unwrap()
            .success()
    );
    let mut expected = sent.clone();
    expected.sort();
    let mut got = captured_bodies(&second);
    got.sort();
    assert_eq!(got, expected);

    // And into the crate's receiver, filtered, with a checkpoint that makes a re-run a no-op.
    let receiver = receiver().await;
    let checkpoint = work.path().join("replay.done");
    let replay_filtered = || {
        let mut command = cli();
        command
            .args([
                "replay",
                &receiver.url,
                "--json",
                "--trigger",
                "data_update",
                "--trigger",
                "JOB_SUCCESS",
            ])
            .arg("--checkpoint")
            .arg(&checkpoint)
            .arg(&first);
        command
    };
    let once = run(replay_filtered()).await;
    assert_eq!(once.status.code(), Some(0), "{}", stdout(&once));
    let summary = json_lines(&once).pop().unwrap();
    assert_eq!(summary["delivered"], 2, "{summary}");
    assert_eq!(summary["filtered_out"], 2);
    let handled = receiver.bodies.lock().unwrap().clone();
    assert_eq!(handled.len(), 2);
    assert!(handled.iter().all(|body| sent.contains(&body.to_vec())));
    let again = run(replay_filtered()).await;
    let summary = json_lines(&again).pop().unwrap();
    assert_eq!(summary["already_in_checkpoint"], 2, "{summary}");
    assert_eq!(summary["delivered"], 0);
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_sqlite_inbox_reruns_its_dead_letters() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("inbox.sqlite");
    let names = ["data_new.leases", "data_update.units", "job_failure.flat"];
    let verifier = Verifier::new(SECRET).unwrap();
    {
        let inbox = SqliteInbox::open(&path).unwrap();
        for name in names {
            let body = fixture(name);
            let signature = sign(SECRET, &body);
            let delivery = VerifiedBody::verify_signature(&verifier, body, &signature).unwrap();
            inbox.store(&delivery).await.unwrap();
        }
        let leased = inbox.claim(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(leased.len(), names.len());
        for leased in leased {
            let dead = Retry::Dead {
                reason: "handler failed: the CRM was down".into(),
            };
            assert!(inbox.fail(&leased.lease, dead).await.unwrap());
        }
        assert_eq!(inbox.stats().await.unwrap().dead, names.len() as u64);
    }

    let receiver = receiver().await;
    // A filter by object first: only the lease.
    let mut leases = cli();
    leases
        .args(["replay", &receiver.url, "--json", "--object", "leases"])
        .arg(&path);
    let leases = run(leases).await;
    assert_eq!(
        leases.status.code(),
        Some(0),
        "{}{}",
        stdout(&leases),
        String::from_utf8_lossy(&leases.stderr)
    );
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 1);
    assert_eq!(
        receiver.bodies.lock().unwrap()[0].as_ref(),
        fixture("data_new.leases").as_slice()
    );

    let mut all = cli();
    all.args(["replay", &receiver.url, "--json"]).arg(&path);
    let all = run(all).await;
    assert_eq!(all.status.code(), Some(0), "{}", stdout(&all));
    let lines = json_lines(&all);
    assert_eq!(lines.last().unwrap()["delivered"], 3);
    assert!(lines[..3].iter().all(|line| line["status"] == 200));
    // The lease was replayed twice: the receiver runs a re-sent DATA_NEW again (no job-id window
    // applies without an idempotency store), so 4 handled in all, every body a dead letter's.
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 4);
    let handled = receiver.bodies.lock().unwrap().clone();
    for name in names {
        assert!(
            handled
                .iter()
                .any(|body| body.as_ref() == fixture(name).as_slice()),
            "{name}"
        );
    }

    // Time filters, in a dry run: all were received within the hour, none before 2020.
    for (flag, value, selected) in [("--since", "1h", 3), ("--until", "2020-01-01T00:00:00Z", 0)] {
        let mut dry = cli();
        dry.args(["replay", &receiver.url, "--dry-run", "--json", flag, value])
            .arg(&path);
        let dry = run(dry).await;
        assert_eq!(dry.status.code(), Some(0));
        let summary = json_lines(&dry).pop().unwrap();
        assert_eq!(summary["selected"], selected, "{flag} {value}: {summary}");
    }
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 4);

    // A source that is neither: a clear usage error.
    let mut bad = cli();
    bad.args(["replay", &receiver.url, "/no/such/source"]);
    let bad = run(bad).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("capture directory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_what_the_receiver_handled() {
    let receiver = receiver().await;
    let output = run({
        let mut command = cli();
        command.args([
            "bench",
            &receiver.url,
            "-c",
            "8",
            "-n",
            "600",
            "-t",
            "1",
            "--json",
            "--secret",
            SECRET,
        ]);
        command
    })
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = &json_lines(&output)[0];
    assert_eq!(report["requests"], 600);
    assert_eq!(report["ok"], 600);
    assert_eq!(report["statuses"]["200"], 600);
    assert_eq!(report["errors"], 0);
    // Distinct deliveries: the receiver ran its handler for every one.
    assert_eq!(receiver.handled.load(Ordering::SeqCst), 600);
    let distinct: std::collections::HashSet<_> =
        receiver.bodies.lock().unwrap().iter().cloned().collect();
    assert_eq!(distinct.len(), 600);
    let latency = &report["latency_ms"];
    let (p50, p90, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p90"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{latency}"
    );
    assert!(report["throughput_per_s"].as_f64().unwrap() > 0.0);

    // A rate limit holds: 30 deliveries at 100/s take at least 0.29 s.
    let paced = run({
        let mut command = cli();
        command.args([
            "bench",
            &receiver.url,
            "-c",
            "4",
            "-n",
            "30",
            "--rate",
            "100",
            "--json",
            "--secret",
            SECRET,
        ]);
        command
    })
    .await;
    assert_eq!(paced.status.code(), Some(0));
    let paced = &json_lines(&paced)[0];
    assert_eq!(paced["ok"], 30);
    assert!(paced["seconds"].as_f64().unwrap() >= 0.29, "{paced}");

    // A bad secret: every answer 401, exit 1.
    let bad = run({
        let mut command = cli();
        command.args([
            "bench",
            &receiver.url,
            "-c",
            "2",
            "-n",
            "10",
            "--json",
            "--secret",
            "not-the-secret-000",
        ]);
        command
    })
    .await;
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(json_lines(&bad)[0]["statuses"]["401"], 10);
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [
        vec!["--help"],
        vec!["sign", "--help"],
        vec!["verify", "--help"],
        vec!["inspect", "--help"],
        vec!["fixtures", "--help"],
        vec!["fixtures", "list", "--help"],
        vec!["fixtures", "show", "--help"],
        vec!["send", "--help"],
        vec!["capture", "--help"],
        vec!["replay", "--help"],
        vec!["bench", "--help"],
    ] {
        let output = cli()
            .args(&command)
            .env("PROPEXO_WEBHOOK_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(output.status.success(), "{command:?}");
        let text = stdout(&output);
        assert!(text.contains("Examples:"), "{command:?}");
        assert!(!text.contains(SECRET), "{command:?} prints the secret");
    }
    assert_eq!(
        cli().arg("no-such-command").output().unwrap().status.code(),
        Some(2)
    );
}

#[test]
fn inspect_tells_absent_from_null_and_names_the_shape() {
    let output = cli()
        .args(["inspect", "--json", "--data"])
        .arg(r#"{"meta":{"object":"leases","integration_id":"i1"},"record_id":"r1","diff":{"previous":{"status":"pending","notes":"x"},"new":{"status":"approved","notes":null,"rent":5}},"vendor":"NEWVENDOR"}"#)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report = &json_lines(&output)[0];
    assert_eq!(report["shape"], "simplified");
    assert_eq!(report["trigger"], "DATA_UPDATE");
    assert_eq!(report["record_path"], "/v1/leases/r1");
    let diff = report["diff"].as_array().unwrap();
    let notes = diff.iter().find(|c| c["field"] == "notes").unwrap();
    assert!(notes["new"].is_null());
    let rent = diff.iter().find(|c| c["field"] == "rent").unwrap();
    assert_eq!(rent["previous"]["absent"], true);

    let envelope = cli()
        .args(["inspect", "--json", "--data"])
        .arg(String::from_utf8(fixture("data_update.envelope")).unwrap())
        .output()
        .unwrap();
    assert_eq!(json_lines(&envelope)[0]["shape"], "envelope");
    let unknown = cli()
        .args(["inspect", "--json", "--data"])
        .arg(String::from_utf8(fixture("unknown_values")).unwrap())
        .output()
        .unwrap();
    assert!(
        !json_lines(&unknown)[0]["unknown_values"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let garbage = cli()
        .args(["inspect", "--data", "not json"])
        .output()
        .unwrap();
    assert_eq!(garbage.status.code(), Some(1));
    assert!(stdout(&garbage).contains("error"));
}
