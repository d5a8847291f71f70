//! The whole crate at work, with one command and no Propexo account:
//!
//! ```sh
//! cargo run --example quickstart --features axum,sqlite
//! ```
//!
//! It starts an axum receiver on `POST /webhooks/propexo` whose inbox is a SQLite file in a
//! temporary directory (persist, then acknowledge), with workers that run the handlers. It sends
//! itself signed deliveries of every Propexo trigger, plus a tampered one, one signed with the
//! wrong secret, one of a trigger this crate does not know, one that is not JSON, one whose
//! handler fails twice before it succeeds and one whose handler always fails, over real HTTP. It
//! prints what each was answered (202 once stored), what the workers' handler saw, the retries,
//! the dead letters, and how re-sends are told from new events; then it exits (non-zero if
//! anything was not as expected) and removes its inbox. With `--serve` it keeps the receiver
//! running for your own requests.
//!
//! Configuration: `PROPEXO_WEBHOOK_SECRET` (a demo secret otherwise), `BIND` (an address) or
//! `PORT` (default 127.0.0.1:3000; without either and with that port busy, any free port).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use propexo_webhooks::{
    Delivery, Dispatcher, Field, Inbox, RawJson, Receiver, SqliteInbox, Verifier, WebhookEvent,
    WorkerConfig, Workers, sign,
};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";
const PATH: &str = "/webhooks/propexo";
/// Lets the handler tell which quickstart delivery it is looking at (the inbox keeps headers).
const CASE_HEADER: &str = "x-quickstart-case";
/// The handler fails the first two attempts of this case, then succeeds.
const FLAKY: &str = "JOB_FAILURE (handler fails 2x)";
/// The handler always fails this case: it ends as a dead letter.
const DOOMED: &str = "WRITE_OP (handler down)";
/// Attempts before a delivery becomes a dead letter.
const MAX_ATTEMPTS: u32 = 3;

/// One delivery the quickstart sends, and the status it expects back.
struct Case {
    name: &'static str,
    body: String,
    secret: Option<&'static str>,
    tamper: bool,
    expected: StatusCode,
}

impl Case {
    fn named(self, name: &'static str) -> Self {
        Self { name, ..self }
    }
}

fn cases() -> Vec<Case> {
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_else(|err| panic!("fixture {name}: {err}"))
    };
    let ok = |name, file: &str| Case {
        name,
        body: fixture(file),
        secret: None,
        tamper: false,
        expected: StatusCode::ACCEPTED,
    };
    vec![
        ok("DATA_NEW (lease)", "data_new.envelope"),
        ok("DATA_UPDATE (lease)", "data_update.envelope"),
        ok("DATA_UPDATE (simplified)", "data_update.simplified"),
        ok("SYNC_COMPLETE", "sync_complete.flat"),
        ok("FIRST_SYNC_COMPLETE", "first_sync_complete.envelope"),
        ok("JOB_FAILURE", "job_failure.flat"),
        ok("JOB_SUCCESS", "job_success.envelope"),
        ok(
            "WRITE_OPERATION_FAILURE",
            "write_operation_failure.envelope",
        ),
        ok("unknown trigger", "unknown_trigger"),
        ok("", "job_failure.envelope").named(FLAKY),
        ok("", "write_operation_failure.flat").named(DOOMED),
        Case {
            name: "tampered body",
            tamper: true,
            expected: StatusCode::UNAUTHORIZED,
            ..ok("", "job_failure.flat")
        },
        Case {
            name: "wrong secret",
            secret: Some("a-secret-that-is-not-ours"),
            expected: StatusCode::UNAUTHORIZED,
            ..ok("", "job_failure.flat")
        },
        Case {
            name: "not JSON",
            body: "{\"event\": \"JOB_FAILURE\", oops".to_owned(),
            ..ok("", "job_failure.flat")
        },
    ]
}

/// Sent again once the workers are done: how re-sends are told from new events.
fn resends() -> Vec<Case> {
    let again = cases();
    let pick = |name: &str| again.iter().position(|case| case.name == name);
    let mut out = Vec::new();
    if let Some(index) = pick("JOB_FAILURE") {
        let case = &again[index];
        out.push(Case {
            name: "JOB_FAILURE again",
            body: case.body.clone(),
            secret: None,
            tamper: false,
            expected: StatusCode::OK,
        });
    }
    if let Some(index) = pick("SYNC_COMPLETE") {
        let case = &again[index];
        out.push(Case {
            name: "SYNC_COMPLETE again",
            body: case.body.clone(),
            secret: None,
            tamper: false,
            expected: StatusCode::ACCEPTED,
        });
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_forever = std::env::args().any(|arg| arg == "--serve");
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        println!("PROPEXO_WEBHOOK_SECRET is not set: using the DEMO secret {DEMO_SECRET:?}\n");
        DEMO_SECRET.to_owned()
    });
    let directory = TempDir::new()?;
    let inbox = SqliteInbox::open(directory.0.join("inbox.sqlite3"))?;
    let seen = Seen::default();
    let config = WorkerConfig::default()
        .workers(2)
        .max_attempts(MAX_ATTEMPTS)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .poll_interval(Duration::from_millis(20));
    let workers = Workers::start(inbox.clone(), dispatcher(&seen), config);
    let verifier = Verifier::new(&secret)?;
    let app = Router::new().route(
        PATH,
        propexo_webhooks::axum::route(Receiver::with_inbox(verifier, inbox.clone())),
    );
    let listener = bind(serve_forever).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("receiver listening on http://{address}{PATH}");
    println!("inbox: SQLite file {}\n", inbox.path().display());

    if serve_forever {
        println!("try it:\n  body='{{\"event\":\"JOB_FAILURE\",\"job_id\":\"JOB_1\"}}'");
        println!(
            "  curl -i http://{address}{PATH} -H 'content-type: application/json' \\\n    -H \"propexo-signature: $(printf %s \"$body\" | openssl dgst -sha256 -hmac \"$PROPEXO_WEBHOOK_SECRET\" | cut -d' ' -f2)\" -d \"$body\""
        );
        server.await??;
        return Ok(());
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut all_as_expected = true;
    let mut answers = Vec::new();
    for case in cases() {
        let status = post(&client, address, &secret, &case).await?;
        all_as_expected &= status == case.expected;
        answers.push((case, status));
    }
    // The answers came once each delivery was stored; the workers run the handler after.
    settle(&inbox).await?;

    println!(
        "{:<30} {:>6}  what the workers' handler saw",
        "delivery", "answer"
    );
    println!("{}", "-".repeat(110));
    for (case, status) in &answers {
        let saw = seen.take(case.name).unwrap_or_else(|| match *status {
            StatusCode::ACCEPTED => {
                "(stored, but no handler run succeeded: see the dead letters)".to_owned()
            }
            _ => "(rejected before it was stored: no handler ran)".to_owned(),
        });
        print_row(case, *status, &saw);
    }

    println!("\nsent again after the workers were done:");
    for case in resends() {
        let status = post(&client, address, &secret, &case).await?;
        all_as_expected &= status == case.expected;
        settle(&inbox).await?;
        let saw = match status {
            StatusCode::OK => {
                "a re-send within its 3-hour window (it has a job id): not stored, not run"
                    .to_owned()
            }
            _ => seen.take(case.name).map_or_else(
                || "(stored, not handled?)".to_owned(),
                |saw| format!("no job id, so it may be the next sync: handled again. {saw}"),
            ),
        };
        print_row(&case, status, &saw);
    }

    let stats = inbox.stats().await?;
    println!(
        "\ninbox: {} pending, {} in flight, {} done, {} dead",
        stats.pending, stats.in_flight, stats.done, stats.dead
    );
    let dead = inbox.dead_letters(10).await?;
    println!("dead letters (kept with body and signature; `inbox.requeue(key)` runs one again):");
    for letter in &dead {
        let case = letter
            .delivery
            .headers
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{CASE_HEADER}: ")))
            .unwrap_or("?");
        println!(
            "  {}…  {case}: {} attempt(s): {}",
            &letter.key.to_string()[..12],
            letter.attempts,
            letter.reason
        );
    }
    let flaky_attempts = seen.attempts(FLAKY);
    all_as_expected &= stats.dead == 2 && dead.len() == 2 && flaky_attempts == 3;
    println!(
        "\nForged deliveries never reach the inbox; a failing handler is retried by the workers \
         (\"{FLAKY}\" took {flaky_attempts} attempts), and what keeps failing, or does not parse, \
         is kept as a dead letter. Run with --serve to keep the receiver up."
    );
    workers.shutdown().await;
    server.abort();
    if all_as_expected {
        Ok(())
    } else {
        Err("some deliveries were not answered or handled as expected".into())
    }
}

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    address: SocketAddr,
    secret: &str,
    case: &Case,
) -> Result<StatusCode, Box<dyn std::error::Error>> {
    let signature = sign(case.secret.unwrap_or(secret), case.body.as_bytes());
    let body = if case.tamper {
        case.body.replace("JOB_ID_002", "JOB_ID_999")
    } else {
        case.body.clone()
    };
    let request = Request::post(format!("http://{address}{PATH}"))
        .header("content-type", "application/json")
        .header("propexo-signature", signature)
        .header(CASE_HEADER, HeaderValue::from_static(case.name))
        .body(Full::new(Bytes::from(body)))?;
    Ok(client.request(request).await?.status())
}

fn print_row(case: &Case, status: StatusCode, saw: &str) {
    let mark = if status == case.expected {
        ""
    } else {
        "  <-- unexpected"
    };
    println!("{:<30} {:>6}  {saw}{mark}", case.name, status.as_u16());
}

/// Waits until the inbox holds nothing pending or in flight (at most 30 s).
async fn settle(inbox: &SqliteInbox) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = inbox.stats().await?;
        if stats.pending == 0 && stats.in_flight == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the workers did not finish: {stats:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory of this run, removed when it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("propexo-quickstart-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the handler saw, and how many attempts it took, by quickstart case.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, (String, u32)>>>);

impl Seen {
    /// Counts an attempt of `case`; returns how many there were.
    fn attempt(&self, case: &str) -> u32 {
        let Ok(mut seen) = self.0.lock() else {
            return 0;
        };
        let entry = seen.entry(case.to_owned()).or_default();
        entry.1 += 1;
        entry.1
    }

    fn note(&self, case: &str, line: String) {
        if case == "(your request)" {
            println!("handler: {line}");
        }
        if let Ok(mut seen) = self.0.lock() {
            seen.entry(case.to_owned()).or_default().0 = line;
        }
    }

    fn take(&self, case: &str) -> Option<String> {
        let mut seen = self.0.lock().ok()?;
        let (line, attempts) = seen.get(case)?.clone();
        seen.entry(case.to_owned()).or_default().0 = String::new();
        (!line.is_empty()).then(|| match attempts {
            0 | 1 => line,
            n => format!("{line}  [handled on attempt {n}]"),
        })
    }

    fn attempts(&self, case: &str) -> u32 {
        self.0
            .lock()
            .ok()
            .and_then(|seen| seen.get(case).map(|(_, attempts)| *attempts))
            .unwrap_or(0)
    }
}

/// One handler for every event; it fails on purpose for two of the quickstart's cases. A body
/// that does not parse has no `on_malformed` handler here: it becomes a dead letter.
fn dispatcher(seen: &Seen) -> Dispatcher {
    let seen = seen.clone();
    Dispatcher::new().fallback(move |delivery: Delivery| {
        let case = delivery
            .headers()
            .and_then(|headers| headers.get(CASE_HEADER))
            .and_then(|value| value.to_str().ok())
            .unwrap_or("(your request)")
            .to_owned();
        let attempt = seen.attempt(&case);
        if case == DOOMED {
            return Err(format!(
                "the handler's database is down (attempt {attempt})"
            ));
        }
        if case == FLAKY && attempt < 3 {
            return Err(format!("a timeout on attempt {attempt}"));
        }
        seen.note(&case, describe(delivery.event()));
        Ok(())
    })
}

/// One line about an event, the way a handler would look at it.
fn describe(event: &WebhookEvent) -> String {
    let vendor = event.vendor().map(ToString::to_string).unwrap_or_default();
    let object = event.object().map(ToString::to_string).unwrap_or_default();
    let record = event.record_id().unwrap_or("?");
    match event {
        WebhookEvent::DataNew(new) => format!(
            "new {object} {record} ({} fields); full record at {}",
            new.payload.len(),
            event
                .object()
                .and_then(|object| object.record_path(record))
                .unwrap_or_default()
        ),
        WebhookEvent::DataUpdate(update) => {
            let changes: Vec<String> = update
                .diff
                .changes()
                .map(|(field, change)| {
                    format!("{field}: {} -> {}", show(change.previous), show(change.new))
                })
                .collect();
            format!("{object} {record} changed: {}", changes.join(", "))
        }
        WebhookEvent::SyncComplete(sync) | WebhookEvent::FirstSyncComplete(sync) => format!(
            "{} from {vendor}: {} jobs ok, {} failed",
            event.event_type(),
            sync.successful_job_count.unwrap_or_default(),
            sync.failed_job_count.unwrap_or_default()
        ),
        WebhookEvent::JobFailure(job) | WebhookEvent::JobSuccess(job) => format!(
            "{} {} ({}) at {vendor}",
            event.event_type(),
            event.job_id().unwrap_or("?"),
            job.job_type.as_deref().unwrap_or("?")
        ),
        WebhookEvent::WriteOperationFailure(write) => format!(
            "write to {vendor} ended {}: {}",
            write
                .write_status
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            write.errors.join("; ")
        ),
        other => format!("{}", other.event_type()),
    }
}

fn show(side: Field<RawJson<'_>>) -> String {
    match side {
        Field::Value(value) => value.to_string(),
        Field::Null => "null".to_owned(),
        Field::Absent => "-".to_owned(),
    }
}

/// `BIND`, else `127.0.0.1:$PORT`, else 127.0.0.1:3000 — or any free port when that one is
/// taken and no address was asked for (not with `--serve`, where the address matters).
async fn bind(serve_forever: bool) -> std::io::Result<tokio::net::TcpListener> {
    let asked = std::env::var("BIND").ok().or_else(|| {
        std::env::var("PORT")
            .ok()
            .map(|port| format!("127.0.0.1:{port}"))
    });
    let address = asked.clone().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    match tokio::net::TcpListener::bind(&address).await {
        Err(err) if asked.is_none() && !serve_forever => {
            println!("{address} is busy ({err}); using a free port instead");
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
        }
        result => result,
    }
}
